"""TuPaTE predictors: cosine similarity of tuned-parameter task embeddings.

``tupate-<method>`` (Zhou et al. 2022): p(s) = cos(e_t, e_s) of the TuPaTE vectors (prompt: the
token mean of P), read from the packed pool matrix (:mod:`taskscout.embeddings.packed`, built
once per set of stored embeddings), so a pool of thousands of sources is one chunked
matrix-vector product.

``tupate-<method>-delta`` (ours, not in the paper): every run of a method starts from the same
seeded initialisation, and on small tasks the tuned parameters stay close to it, so the raw
vector e = e_0 + d is dominated by the shared e_0 and cos(e_t, e_s) mostly measures how far each
task moved (about its number of optimiser steps, i.e. its data size). This variant compares the
updates: p(s) = cos(e_t - e_0(t), e_s - e_0(s)), with e_0(r) rebuilt exactly as run r built it
(:func:`taskscout.embeddings.task_embedding.init_embedding`), so it needs no stored init.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from taskscout.embeddings.packed import cosine_to_pool, packed_pool
from taskscout.embeddings.similarity import (
    EmbeddingKey,
    IncompatibleEmbeddingError,
    check_compatible,
    cosine_scores,
)
from taskscout.embeddings.task_embedding import TaskEmbedding, embedding_of_run, init_embedding
from taskscout.embeddings.tupate import as_vector
from taskscout.predictors.base import (
    TUPATE_METHODS,
    Pool,
    Reads,
    Scores,
    check_sources,
    method_embeddings,
)
from taskscout.predictors.registry import register


@dataclass
class TupatePredictor:
    """``tupate-<method>``: cosine similarity of TuPaTE vectors, from the packed pool."""

    method: str = "lora"

    @property
    def name(self) -> str:
        return f"tupate-{self.method}"

    @property
    def reads(self) -> Reads:
        return Reads(methods=(self.method,), checkpoint=True)

    def score(self, target: str, sources: list[str], pool: Pool) -> Scores:
        names = check_sources(target, sources)
        run = pool.require_run(target, self.method)
        t = embedding_of_run(pool.store, run, pool.checkpoint, pool.layer_reduce)
        packed = packed_pool(
            pool.store,
            method=self.method,
            backbone=pool.backbone,
            checkpoint=pool.checkpoint,
            layer_reduce=pool.layer_reduce,
            shape=tuple(t.tensor.shape),
            progress=pool.progress,
        )
        index = packed.index_of()
        missing = [s for s in names if s not in index]
        if missing:  # of another shape (refused), another backbone (refused), or absent
            check_compatible(
                t.key,
                [
                    (
                        s,
                        EmbeddingKey(
                            pool.backbone, self.method, t.layer_reduce, packed.excluded[s]
                        ),
                    )
                    for s in missing
                    if s in packed.excluded
                ],
            )
            pool.refuse_other_backbones(missing, self.method)
            raise ValueError(
                f"no {self.method} embedding in store {pool.store.root} for source(s) {missing}"
            )
        cos = cosine_to_pool(packed, t.tensor)
        return Scores(
            zip(names, (float(cos[index[s]]) for s in names), strict=True),
            {"method": self.method},
        )


def delta_vector(pool: Pool, emb: TaskEmbedding) -> torch.Tensor:
    """e - e_0 of a stored embedding as a float64 vector (prompt: token means)."""
    run = pool.store.get_run(emb.record.run_id)
    if run is None:
        raise ValueError(f"embedding {emb.record.embedding_id} has no run in the store")
    init = init_embedding(run, emb.layer_reduce)
    if tuple(init.shape) != tuple(emb.tensor.shape):
        raise IncompatibleEmbeddingError(
            f"init of run {run.run_id} has shape {tuple(init.shape)}, its embedding "
            f"{tuple(emb.tensor.shape)}"
        )
    return as_vector(emb.tensor).double() - as_vector(init).double()


@dataclass
class TupateDeltaPredictor:
    """``tupate-<method>-delta``: cos(e_t - e_0, e_s - e_0); see the module doc."""

    method: str = "lora"

    @property
    def name(self) -> str:
        return f"tupate-{self.method}-delta"

    @property
    def reads(self) -> Reads:
        return Reads(methods=(self.method,), checkpoint=True)

    def score(self, target: str, sources: list[str], pool: Pool) -> Scores:
        names = check_sources(target, sources)
        t, ss = method_embeddings(pool, self.method, target, names)
        cos = cosine_scores(delta_vector(pool, t), torch.stack([delta_vector(pool, s) for s in ss]))
        return Scores(zip(names, cos.tolist(), strict=True), {"method": self.method})


for _m in TUPATE_METHODS:
    register(f"tupate-{_m}", lambda _m=_m, **kw: TupatePredictor(method=_m, **kw))
    register(f"tupate-{_m}-delta", lambda _m=_m, **kw: TupateDeltaPredictor(method=_m, **kw))
