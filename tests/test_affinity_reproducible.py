"""Affinity fits are reproducible: the same config seed gives bit-identical learning-rate
searches and predictions, whatever the caller's global RNG state, and a fit leaves the caller's
global torch / numpy RNG state untouched (defect k: the learning-rate search trained heads whose
dropout drew from the unseeded global generator)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from taskscout.affinity.data import EmbeddingSet
from taskscout.affinity.ensemble import AffinityConfig, fit_affinity
from taskscout.affinity.light import LightHead
from taskscout.backbone import resolve_backbone


def _pool(n_tasks: int, shape: tuple[int, ...], seed: int = 0):
    """Random embeddings of ``shape`` per task and a gain depending on both tasks."""
    g = torch.Generator().manual_seed(seed)
    emb = {f"t{i:02d}": torch.randn(*shape, generator=g) for i in range(n_tasks)}
    u = torch.randn(shape[-1], generator=g)
    rows = []
    for t, et in emb.items():
        for s, es in emb.items():
            if s != t:
                vt, vs = et.reshape(-1, shape[-1]).mean(0), es.reshape(-1, shape[-1]).mean(0)
                cos = torch.nn.functional.cosine_similarity(vt, vs, dim=0)
                rows.append((t, s, 3.0 * float(vs @ u) + 2.0 * float(cos)))
    return emb, pd.DataFrame(rows, columns=["target", "source", "gain"])


def _fit_and_predict(gold, emb, config, backbone_location=None):
    model = fit_affinity(gold, emb, config, backbone_location=backbone_location, progress=False)
    mean, std = model.predict(gold["target"].tolist(), gold["source"].tolist(), emb)
    return model, torch.as_tensor(mean), torch.as_tensor(std)


def _global_state():
    return torch.get_rng_state(), np.random.get_state()


def _assert_same_global_state(before, after):
    assert torch.equal(before[0], after[0]), "the fit changed the caller's torch RNG state"
    b, a = before[1], after[1]
    assert b[0] == a[0] and np.array_equal(b[1], a[1]) and b[2:] == a[2:], (
        "the fit changed the caller's numpy RNG state"
    )


def _check_reproducible(gold, emb, config, backbone_location=None):
    torch.manual_seed(123)
    np.random.seed(123)
    before = _global_state()
    first, mean1, std1 = _fit_and_predict(gold, emb, config, backbone_location)
    after = _global_state()
    second, mean2, std2 = _fit_and_predict(gold, emb, config, backbone_location)
    # perturb the global generators: the fit must not depend on them
    torch.rand(7)
    np.random.rand(5)
    torch.manual_seed(987654)
    third, mean3, std3 = _fit_and_predict(gold, emb, config, backbone_location)

    assert first.info.lr_search, "the learning-rate search did not run"
    for other, mean, std in ((second, mean2, std2), (third, mean3, std3)):
        assert other.info.lr == first.info.lr
        assert other.info.lr_search == first.info.lr_search  # every candidate's exact scores
        assert other.info.loss_curves == first.info.loss_curves
        assert torch.equal(mean, mean1)
        assert torch.equal(std, std1)
    # ... and the fit left the caller's global RNG state as it was
    _assert_same_global_state(before, after)
    # the ensemble members really differ (member k trains with seed + k)
    assert len(first.heads) >= 2 and bool((std1 > 0).any())
    # another seed gives another fit
    _, mean_other, _ = _fit_and_predict(
        gold,
        emb,
        AffinityConfig(**{**config.__dict__, "seed": config.seed + 10}),
        backbone_location,
    )
    assert not torch.equal(mean_other, mean1)


def test_light_scorer_fit_is_bit_reproducible_and_independent_of_global_rng():
    vectors, gold = _pool(10, (24,))
    emb = EmbeddingSet.from_tensors(vectors, backbone="synthetic", method="lora")
    config = AffinityConfig(
        kind="light",
        method="lora",
        ensemble=2,
        epochs=15,
        lr_grid=(1e-3, 3e-3, 1e-2),
        dropout=0.3,
        seed=4,
    )
    _check_reproducible(gold, emb, config)


def test_backbone_scorer_fit_is_bit_reproducible_and_independent_of_global_rng(tiny_backbone):
    prompts, gold = _pool(6, (3, 32))
    bid = resolve_backbone(str(tiny_backbone)).backbone_id
    emb = EmbeddingSet.from_tensors(prompts, backbone=bid, method="prompt")
    config = AffinityConfig(
        kind="backbone", ensemble=2, epochs=2, batch_size=8, lr_grid=(3e-4, 1e-3), seed=1
    )
    _check_reproducible(gold, emb, config, backbone_location=str(tiny_backbone))


def test_light_head_dropout_is_seeded_by_the_head_and_off_in_eval():
    x = torch.randn(64, 9)
    a, b = LightHead(9, 16, seed=3, dropout=0.5), LightHead(9, 16, seed=3, dropout=0.5)
    before = _global_state()
    a.train()
    b.train()
    ya1, ya2 = a(x), a(x)
    yb1 = b(x)
    assert torch.equal(ya1, yb1)  # same seed: same init and same dropout masks
    assert not torch.equal(ya1, ya2)  # dropout is active in training mode
    a.eval()
    assert torch.equal(a(x), a(x))  # and off in eval mode
    _assert_same_global_state(before, _global_state())
    other = LightHead(9, 16, seed=4, dropout=0.5)
    assert not torch.equal(other.state_dict()["net.0.weight"], a.state_dict()["net.0.weight"])


def test_negative_seed_is_refused_before_training():
    with pytest.raises(ValueError, match="seed"):
        AffinityConfig(seed=-1).resolved()
