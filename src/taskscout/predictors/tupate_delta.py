"""``tupate-<method>-delta``: cosine of TuPaTE vectors after subtracting the method's init.

Why: every run of a method starts from the same seeded initialisation (LoRA's A matrices,
prefixes, the prompt encoder), and on small tasks the tuned parameters stay close to it. The
raw TuPaTE vector e = e_0 + d is then dominated by the shared e_0, so cos(e_t, e_s) mostly
measures how far each task moved (about its number of optimiser steps, i.e. its data size), not
where it moved. This variant compares the updates: p(s) = cos(e_t - e_0(t), e_s - e_0(s)), with
e_0(r) the embedding of run r's method *before training*, rebuilt exactly as
:func:`taskscout.api.tune` builds it (:func:`taskscout.tuning.model.init_method` with the run's
seed, backbone and method config), so it needs no stored init. Not part of Zhou et al.
(2022); an extension evaluated beside the original.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass

import torch

from taskscout.predictors.base import (
    TUPATE_METHODS,
    Pool,
    Scores,
    _check_sources,
    method_embeddings,
    register,
)
from taskscout.predictors.similarity import cosine_scores
from taskscout.store import RunRecord


@functools.lru_cache(maxsize=16)
def _init_embedding(
    backbone_location: str | None, method: str, method_config: str, seed: int, layer_reduce: str
) -> torch.Tensor:
    from taskscout.backbone import load_backbone
    from taskscout.embeddings.tupate import method_embedding
    from taskscout.tuning.model import init_method

    _, _, encoder = load_backbone(backbone_location)
    saved_rng = torch.random.get_rng_state()
    try:
        tuned = init_method(method, encoder, json.loads(method_config), seed=seed)
        tensor, _ = method_embedding(tuned, layer_reduce)
    finally:
        torch.random.set_rng_state(saved_rng)  # leave the caller's RNG stream untouched
    return tensor


def init_embedding(run: RunRecord, layer_reduce: str = "mean") -> torch.Tensor:
    """The embedding (same shape as the run's stored one) of ``run``'s method at
    initialisation, before any training step."""
    from taskscout.api import _backbone_location

    effective = "none" if run.method == "prompt" else layer_reduce
    return _init_embedding(
        _backbone_location(run),
        run.method,
        json.dumps(run.config["method_config"], sort_keys=True),
        int(run.seed),
        effective,
    )


@dataclass
class TupateDeltaPredictor:
    """cos(e_t - e_0, e_s - e_0) of TuPaTE vectors (prompt: token mean of P); see module doc."""

    method: str = "lora"

    @property
    def name(self) -> str:
        return f"tupate-{self.method}-delta"

    def score(self, target: str, sources: list[str], pool: Pool) -> Scores:
        from taskscout.embeddings.tupate import as_vector

        names = _check_sources(target, sources)
        t, ss = method_embeddings(pool, self.method, target, names)

        def delta(emb) -> torch.Tensor:
            run = pool.store.get_run(emb.record.run_id)
            if run is None:
                raise ValueError(f"embedding {emb.record.embedding_id} has no run in the store")
            init = init_embedding(run, emb.layer_reduce)
            if tuple(init.shape) != tuple(emb.tensor.shape):
                raise ValueError(
                    f"init of run {run.run_id} has shape {tuple(init.shape)}, its embedding "
                    f"{tuple(emb.tensor.shape)}"
                )
            return as_vector(emb.tensor).double() - as_vector(init).double()

        cos = cosine_scores(delta(t), torch.stack([delta(s) for s in ss]))
        return Scores(zip(names, cos.tolist(), strict=True), {"method": self.method})


for _m in TUPATE_METHODS:
    register(f"tupate-{_m}-delta", lambda _m=_m, **kw: TupateDeltaPredictor(method=_m, **kw))
