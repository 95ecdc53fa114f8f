"""The default predictor (``gain-model``): the ridge gain model on synthetic features (seeded
bit-for-bit, missing features, interval coverage, no leak of the held-out target in LOTO), the
shipped parameters file, and ``rank`` using it by default on a tiny random-BERT store."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from taskscout import api
from taskscout.cli import app
from taskscout.predictors import get_predictor
from taskscout.predictors.features import FEATURES, FeatureTable, normalise, source_prior
from taskscout.predictors.gain_model import (
    GainModelBundle,
    GainModelPredictor,
    fit_gain_model,
    loto_predictions,
    training_tables,
)

TASKS = [f"t{i}" for i in range(8)]


def synthetic(seed: int = 0, noise: float = 0.5, missing: bool = False):
    """Raw feature tables of 8 tasks (each the others' target) and a gold where
    gain = 3 * logme + 1.5 * same_type + noise; ``missing``: LogME absent for target t0 and
    a few NaN cells elsewhere."""
    rng = np.random.default_rng(seed)
    raw, gold = {}, []
    for t in TASKS:
        sources = [s for s in TASKS if s != t]
        values = rng.normal(size=(len(sources), len(FEATURES)))
        values[:, FEATURES.index("same_type")] = rng.integers(0, 2, size=len(sources))
        values[:, FEATURES.index("source_prior")] = np.nan  # recomputed from the gold
        gains = (
            3 * values[:, FEATURES.index("logme")]
            + 1.5 * values[:, FEATURES.index("same_type")]
            + noise * rng.normal(size=len(sources))
        )
        if missing and t == "t0":
            values[:, FEATURES.index("logme")] = np.nan
        if missing:
            values[rng.integers(0, len(sources)), FEATURES.index("textemb")] = np.nan
        raw[t] = FeatureTable(t, sources, values)
        gold += [(t, s, float(g)) for s, g in zip(sources, gains, strict=True)]
    return raw, gold


def test_fit_and_predict_are_deterministic_bit_for_bit():
    raw, gold = synthetic()
    tables, gains = training_tables(raw, gold)
    a = fit_gain_model(tables, gains, seed=3)
    b = fit_gain_model(tables, gains, seed=3)
    assert np.array_equal(a.full, b.full) and np.array_equal(a.members, b.members)
    assert (a.alpha, a.sigma0, a.q) == (b.alpha, b.sigma0, b.q)
    pa, pb = a.predict(tables[0]), b.predict(tables[0])
    assert all(np.array_equal(pa[k], pb[k]) for k in pa)
    other = fit_gain_model(tables, gains, seed=4)  # the seed matters (bootstrap members)
    assert not np.array_equal(a.members, other.members)
    # it learned the generating weights' direction: logme and same_type carry the gain
    z = dict(zip(FEATURES, a.full[: len(FEATURES)], strict=True))
    assert z["logme"] > 1.0 and z["same_type"] > 0.3 and abs(z["textemb"]) < 0.5


def test_missing_features_are_imputed_with_indicators_never_a_crash():
    raw, gold = synthetic(missing=True)
    table = raw["t0"].with_prior(source_prior(gold, "t0", raw["t0"].sources))
    x = normalise(table)
    n_f = len(FEATURES)
    assert x.shape == (7, 2 * n_f + 1) and np.isfinite(x).all()
    j = FEATURES.index("logme")
    assert (x[:, j] == 0).all() and (x[:, n_f + j] == 1).all()  # imputed, flagged
    assert "logme" not in table.used() and "textemb" in table.used()
    t = FEATURES.index("textemb")
    hole = ~np.isfinite(table.column("textemb"))
    assert hole.sum() == 1 and x[hole, n_f + t] == 1 and x[hole, t] == 0
    # a model over the features the target has; and one over everything copes with the NaNs
    tables, gains = training_tables(raw, gold, exclude=["t0"])
    sub = fit_gain_model(tables, gains, features=table.used())
    assert "logme" not in sub.features and np.isfinite(sub.predict(table)["mean"]).all()
    full = fit_gain_model(tables, gains)
    assert np.isfinite(full.predict(table)["low"]).all()
    with pytest.raises(ValueError, match="gains must be finite"):
        fit_gain_model(tables, [g * np.nan for g in gains])


def test_interval_covers_held_out_gains_near_its_level():
    raw, gold = synthetic(seed=1, noise=1.0)
    rows = loto_predictions(raw, gold)
    truth = {(u, s): g for u, s, g in gold}
    inside = [r["low"] <= truth[(r["target"], r["source"])] <= r["high"] for r in rows]
    assert all(r["low"] < r["mean"] < r["high"] for r in rows)
    assert 0.8 <= np.mean(inside) <= 1.0, np.mean(inside)  # nominal 90 %, 56 held-out pairs
    # and it is informative, not infinitely wide: narrower than the spread of the gains
    widths = np.array([r["high"] - r["low"] for r in rows])
    assert widths.mean() < 2 * 1.645 * np.std([g for _, _, g in gold])


def test_loto_never_sees_the_held_out_target():
    raw, gold = synthetic(seed=2)
    before = [r for r in loto_predictions(raw, gold, targets=["t3"])]
    # perturb every gold gain involving t3 (as target and as source): its predictions stay
    changed = [(u, s, g + (100.0 if "t3" in (u, s) else 0.0)) for u, s, g in gold]
    after = loto_predictions(raw, changed, targets=["t3"])
    assert [r["mean"] for r in after] == [r["mean"] for r in before]
    assert [r["high"] for r in after] == [r["high"] for r in before]
    # the check can fail: perturbing another target's gold does move t3's predictions
    other = [(u, s, g + (5.0 if u == "t5" else 0.0)) for u, s, g in gold]
    moved = loto_predictions(raw, other, targets=["t3"])
    assert [r["mean"] for r in moved] != [r["mean"] for r in before]


def test_shipped_file_loads_round_trips_and_is_the_fit_of_its_data(tmp_path):
    bundle = GainModelBundle.load()
    assert set(bundle.raw) >= {"rte", "boolq", "cosmos_qa"} and len(bundle.gold) == 132
    assert "100 x avg_pct_change" in bundle.provenance["units"]
    shipped = bundle.models[FEATURES]
    table = bundle.raw["rte"].with_prior(
        source_prior(bundle.gold, "rte", bundle.raw["rte"].sources)
    )
    pred = shipped.predict(table)
    again = GainModelBundle.load(bundle.save(tmp_path / "m.json"))
    p2 = again.models[FEATURES].predict(table)
    assert all(np.array_equal(pred[k], p2[k]) for k in pred)
    refit = GainModelBundle(bundle.raw, bundle.gold, seed=bundle.seed).model_for(FEATURES)
    assert np.allclose(refit.full, shipped.full, atol=1e-9)
    assert np.allclose(refit.members, shipped.members, atol=1e-9)
    text = json.loads((tmp_path / "m.json").read_text())
    assert text["format"].startswith("taskscout-gain-model")  # JSON, never a pickle
    with pytest.raises(ValueError, match="not a gain model file"):
        GainModelBundle.from_dict({"format": "other"})
    with pytest.raises(ValueError, match="does not exist"):
        GainModelPredictor(model=tmp_path / "absent.json")
    with pytest.raises(ValueError, match="unknown feature"):
        GainModelPredictor(skip=("nope",))


# --- on a real (tiny random BERT) store ------------------------------------------------------

POOL = ("mnli", "snli", "sms_spam")
SMALL = {"max_train": 32, "max_dev": 16, "epochs": 2, "batch_size": 16}
QUIET = {"progress": False, "threads": 1}


@pytest.fixture(scope="module")
def lora_store(tmp_path_factory, tiny_backbone):
    """lora runs of three bundled demo tasks (no bitfit: that feature must be missing)."""
    root = tmp_path_factory.mktemp("gainpool") / "store"
    for task in POOL:
        api.tune(task, store=root, backbone=str(tiny_backbone), **SMALL, **QUIET)
    return root


def test_rank_uses_the_gain_model_by_default(lora_store, tiny_backbone):
    table = api.rank("mnli", store=lora_store, backbone=str(tiny_backbone), tune_target=False)
    assert list(table.columns)[:5] == ["source", "score", "low", "high", "likely_harmful"]
    assert sorted(table["source"]) == ["sms_spam", "snli"]
    assert (table["low"] < table["score"]).all() and (table["score"] < table["high"]).all()
    assert table["likely_harmful"].tolist() == (table["high"] < 0).tolist()
    used = table.attrs["features_used"]
    assert {"tupate_lora_delta", "logme", "textemb", "log_size", "same_type"} <= set(used)
    assert "tupate_bitfit_delta" not in used and "tupate_bitfit_delta" in table.attrs["missing"]
    # the same as the registered predictor, under both of its names
    direct = api.rank(
        "mnli", store=lora_store, backbone=str(tiny_backbone), tune_target=False,
        predictor="default",
    )  # fmt: skip
    assert direct["score"].tolist() == table["score"].tolist()
    assert isinstance(get_predictor("gain-model"), GainModelPredictor)
    # raw TuPaTE stays available by name, with its own (cosine) scores
    raw = api.rank(
        "mnli", store=lora_store, backbone=str(tiny_backbone), tune_target=False,
        predictor="tupate",
    )  # fmt: skip
    assert list(raw.columns) == ["source", "score", "rank", "num_train", "family"]
    assert all(-1 <= s <= 1 for s in raw["score"])


def test_rank_cli_without_predictor_prints_interval_and_features(lora_store, tiny_backbone):
    res = CliRunner().invoke(
        app,
        ["rank", "mnli", "--pool", str(lora_store), "--backbone", str(tiny_backbone),
         "--no-tune", "--json"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    records = json.loads(res.stdout)
    assert {"low", "high", "likely_harmful"} <= set(records[0])
    assert all(math.isfinite(r["low"]) for r in records)
    assert "gain-model: features used:" in res.stderr and "tupate_bitfit_delta" in res.stderr
