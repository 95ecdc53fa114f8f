"""Learned affinity scorers on synthetic prompt matrices over the tiny backbone: learning,
save/load, pool compatibility, leak-free protocols, gold validation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from taskscout.affinity.data import AffinityDataError, EmbeddingSet, GainScaler, check_gold
from taskscout.affinity.ensemble import AffinityConfig, fit_affinity
from taskscout.affinity.io import load_model, save_model
from taskscout.affinity.protocols import (
    Split,
    assert_no_leak,
    cross_validate,
    leave_one_family_out,
    leave_one_target_out,
)
from taskscout.affinity.train import mean_target_spearman
from taskscout.backbone import resolve_backbone
from taskscout.embeddings.similarity import IncompatibleEmbeddingError
from taskscout.evaluation.longform import RANDOM_BASELINE, evaluate_long

L, H, T = 4, 32, 16


def _synthetic(n_tasks: int = T, length: int = L, hidden: int = H, seed: int = 0):
    """Random prompt matrices and a gain that depends on both tasks: a source-quality direction,
    a target-specific offset and the similarity of the two token means."""
    g = torch.Generator().manual_seed(seed)
    prompts = {f"t{i:02d}": torch.randn(length, hidden, generator=g) for i in range(n_tasks)}
    u, v = torch.randn(hidden, generator=g), torch.randn(hidden, generator=g)
    rows = []
    for t, pt in prompts.items():
        for s, ps in prompts.items():
            if s != t:
                cos = torch.nn.functional.cosine_similarity(pt.mean(0), ps.mean(0), dim=0)
                gain = 3.0 * float(ps.mean(0) @ u) + float(pt.mean(0) @ v) + 2.0 * float(cos)
                rows.append((t, s, gain))
    return prompts, pd.DataFrame(rows, columns=["target", "source", "gain"])


@pytest.fixture(scope="module")
def synthetic(tiny_backbone):
    prompts, gold = _synthetic()
    bid = resolve_backbone(str(tiny_backbone)).backbone_id
    return EmbeddingSet.from_tensors(prompts, backbone=bid, method="prompt"), gold


def _held_out_split(gold, held):
    train = gold[~gold["target"].isin(held) & ~gold["source"].isin(held)]
    test = gold[gold["target"].isin(held)]
    return train, test


@pytest.mark.parametrize("kind", ["light", "backbone"])
def test_scorer_learns_a_synthetic_gain_function(kind, synthetic, tiny_backbone):
    emb, gold = synthetic
    held = ["t12", "t13", "t14", "t15"]
    train, test = _held_out_split(gold, held)
    model = fit_affinity(
        train,
        emb,
        AffinityConfig(kind=kind, ensemble=2),
        backbone_location=str(tiny_backbone),
        progress=False,
    )
    for curve in model.info.loss_curves:
        assert curve[-1] < 0.7 * curve[0], curve  # the training loss falls
    assert model.info.lr in model.config.lr_grid and len(model.info.lr_search) == len(
        model.config.lr_grid
    )
    mean, std = model.predict(test["target"].tolist(), test["source"].tolist(), emb)
    rho = mean_target_spearman(mean, test["gain"].to_numpy(), test["target"].tolist())
    assert rho > 0.6, rho  # on targets (and their pairs) never seen in training
    assert np.all(std >= 0) and np.isfinite(std).all()
    # predictions are in metric points, not z units
    assert abs(mean.mean() - test["gain"].mean()) < 2 * test["gain"].std()
    # a scorer trained on shuffled gains does not rank held-out sources (sanity of the bar)
    shuffled = train.assign(gain=np.random.default_rng(0).permutation(train["gain"].to_numpy()))
    broken = fit_affinity(
        shuffled,
        emb,
        AffinityConfig(kind=kind, ensemble=1, lr=model.info.lr),
        backbone_location=str(tiny_backbone),
        progress=False,
    )
    bad, _ = broken.predict(test["target"].tolist(), test["source"].tolist(), emb)
    assert mean_target_spearman(bad, test["gain"].to_numpy(), test["target"].tolist()) < rho - 0.3


@pytest.mark.parametrize("kind", ["light", "backbone"])
def test_save_load_round_trip_gives_identical_predictions(kind, synthetic, tiny_backbone, tmp_path):
    emb, gold = synthetic
    model = fit_affinity(
        gold,
        emb,
        AffinityConfig(kind=kind, ensemble=2, lr=1e-3, epochs=3),
        backbone_location=str(tiny_backbone),
        progress=False,
    )
    save_model(model, tmp_path / "scorer")
    loaded = load_model(tmp_path / "scorer", backbone_location=str(tiny_backbone))
    targets, sources = gold["target"].tolist()[:40], gold["source"].tolist()[:40]
    a_mean, a_std = model.predict(targets, sources, emb)
    b_mean, b_std = loaded.predict(targets, sources, emb)
    np.testing.assert_array_equal(a_mean, b_mean)
    np.testing.assert_array_equal(a_std, b_std)
    assert loaded.info == model.info


def test_mismatched_pool_is_refused(synthetic, tiny_backbone, tiny_backbone_h48, tmp_path):
    emb, gold = synthetic
    model = fit_affinity(
        gold,
        emb,
        AffinityConfig(kind="backbone", ensemble=1, lr=1e-3, epochs=1),
        backbone_location=str(tiny_backbone),
        progress=False,
    )
    pair = (["t00"], ["t01"])
    # another prompt length
    longer, _ = _synthetic(n_tasks=3, length=L + 2)
    other = EmbeddingSet.from_tensors(longer, backbone=emb.key.backbone, method="prompt")
    with pytest.raises(IncompatibleEmbeddingError, match="prompt length L=6 vs 4"):
        model.predict(*pair, other)
    # another backbone (and hidden size)
    h48_id = resolve_backbone(str(tiny_backbone_h48)).backbone_id
    wide, _ = _synthetic(n_tasks=3, hidden=48)
    with pytest.raises(IncompatibleEmbeddingError, match="backbone"):
        model.predict(*pair, EmbeddingSet.from_tensors(wide, backbone=h48_id, method="prompt"))
    # same backbone id, other dimension
    with pytest.raises(IncompatibleEmbeddingError, match="embedding shape"):
        model.predict(
            *pair, EmbeddingSet.from_tensors(wide, backbone=emb.key.backbone, method="prompt")
        )
    # other checkpoint / method
    best = EmbeddingSet(emb.tensors, emb.key, checkpoint="best")
    with pytest.raises(IncompatibleEmbeddingError, match="checkpoint"):
        model.predict(*pair, best)
    # a saved scorer refuses to load on another backbone
    save_model(model, tmp_path / "s")
    with pytest.raises(IncompatibleEmbeddingError, match="trained on backbone"):
        load_model(tmp_path / "s", backbone_location=str(tiny_backbone_h48))
    # the light scorer refuses vectors of another dimension
    light = fit_affinity(
        gold, emb, AffinityConfig(kind="light", ensemble=1, lr=1e-3, epochs=1), progress=False
    )
    with pytest.raises(IncompatibleEmbeddingError, match="embedding shape"):
        light.predict(
            *pair,
            EmbeddingSet.from_tensors(
                {k: v.mean(0) for k, v in wide.items()}, backbone=emb.key.backbone, method="prompt"
            ),
        )


def test_leave_one_target_out_never_trains_on_the_held_out_task(synthetic):
    _, gold = synthetic
    splits = list(leave_one_target_out(gold))
    assert [s.name for s in splits] == sorted(gold["target"].unique())
    for split in splits:
        (t,) = split.held_out
        assert not (split.train["target"] == t).any()
        assert not (split.train["source"] == t).any()
        assert (split.test["target"] == t).all()
        assert len(split.test) == T - 1 and len(split.train) == (T - 1) * (T - 2)
    leaky = Split("x", frozenset({"t00"}), gold[gold["source"] == "t00"], gold.iloc[:0])
    with pytest.raises(AssertionError, match="involve held-out"):
        assert_no_leak(leaky)


def test_leave_one_family_out_holds_out_whole_families(synthetic):
    _, gold = synthetic
    families = {f"t{i:02d}": f"f{i % 4}" for i in range(T)}
    splits = list(leave_one_family_out(gold, families))
    assert [s.name for s in splits] == ["family:f0", "family:f1", "family:f2", "family:f3"]
    for split in splits:
        fam = {families[t] for t in split.held_out}
        assert len(fam) == 1 and len(split.held_out) == 4
        assert not split.train["target"].map(families).isin(fam).any()
        assert not split.train["source"].map(families).isin(fam).any()
    with pytest.raises(AffinityDataError, match="no family known"):
        list(leave_one_family_out(gold, {"t00": "a"}))


def test_cross_validation_scores_are_evaluable(synthetic):
    emb, gold = synthetic
    small = gold[
        gold["target"].isin([f"t{i:02d}" for i in range(8)])
        & gold["source"].isin([f"t{i:02d}" for i in range(8)])
    ]
    scores = cross_validate(
        small, emb, AffinityConfig(kind="light", ensemble=2, epochs=40), progress=False
    )
    assert set(scores.columns) == {"target", "source", "predictor", "score", "std"}
    assert len(scores) == len(small)
    _, summary = evaluate_long(small, scores)
    assert {"affinity", RANDOM_BASELINE} <= set(summary.index)
    assert summary.loc["affinity", "n_targets"] == 8


def test_gold_validation_errors(synthetic, tiny_backbone):
    emb, gold = synthetic
    nan = gold.copy()
    nan.loc[3, "gain"] = float("nan")
    with pytest.raises(AffinityDataError, match="non-finite gain"):
        check_gold(nan)
    with pytest.raises(AffinityDataError, match="non-finite gain"):
        fit_affinity(nan, emb, AffinityConfig(kind="light"), progress=False)
    unknown = pd.concat([gold, pd.DataFrame([("t00", "nope", 1.0)], columns=gold.columns)])
    with pytest.raises(AffinityDataError, match=r"task\(s\) \['nope'\] that have no embedding"):
        fit_affinity(unknown, emb, AffinityConfig(kind="light"), progress=False)
    dup = pd.concat([gold, gold.iloc[:1]])
    with pytest.raises(AffinityDataError, match="duplicate"):
        check_gold(dup)
    with pytest.raises(AffinityDataError, match="missing"):
        check_gold(gold.rename(columns={"gain": "g"}))
    with pytest.raises(ValueError, match="use --method prompt"):
        AffinityConfig(kind="backbone", method="lora").resolved()


def test_gain_scaler_round_trip():
    s = GainScaler.fit([1.0, 3.0, 5.0])
    np.testing.assert_allclose(s.inverse(s.transform([2.0, 7.0])), [2.0, 7.0])
    assert GainScaler.fit([2.0, 2.0]).std == 1.0  # constant gains: no division by zero
