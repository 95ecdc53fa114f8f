"""Ensembles of the per-method TuPaTE similarities.

``ensemble``:      p(s) = (1/|M|) sum_{m in M} cos(e_t^m, e_s^m)
``ensemble-rank``: p(s) = -(1/|M|) sum_{m in M} rank_m(s)   (rank 1 = most similar under m;
                   ties get their average rank), so higher is better.

``ensemble-delta`` / ``ensemble-rank-delta``: the same over the ``tupate-<m>-delta`` similarities
(updates from the seeded init, :mod:`taskscout.predictors.tupate`).

M = the tuning methods (lora, bitfit, prefix, prompt, or those given) for which the pool holds an
embedding of the target *and of every source*; it is listed in ``scores.info["methods"]``. An
empty M is an error.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata

from taskscout.predictors.base import (
    TUPATE_METHODS,
    Pool,
    Reads,
    Scores,
    check_sources,
    method_cosines,
)
from taskscout.predictors.registry import register
from taskscout.predictors.tupate import TupateDeltaPredictor


def available_methods(
    pool: Pool, target: str, sources: list[str], methods: tuple[str, ...] = TUPATE_METHODS
) -> list[str]:
    """The methods among ``methods`` with embeddings of the target and all sources."""
    out = []
    for method in methods:
        emb = pool.embeddings(method)
        if all(t in emb for t in [target, *sources]):
            out.append(method)
    return out


@dataclass
class EnsemblePredictor:
    """Mean of per-method cosines (``by="score"``) or of per-method ranks (``by="rank"``)."""

    by: str = "score"
    methods: tuple[str, ...] = TUPATE_METHODS
    delta: bool = False  # compare updates from the init instead of the raw vectors

    def __post_init__(self) -> None:
        if self.by not in ("score", "rank"):
            raise ValueError(f"ensemble by must be 'score' or 'rank', not {self.by!r}")

    @property
    def reads(self) -> Reads:
        return Reads(methods=tuple(self.methods), any_of_methods=True, checkpoint=True)

    @property
    def name(self) -> str:
        name = "ensemble" if self.by == "score" else "ensemble-rank"
        return f"{name}-delta" if self.delta else name

    def score(self, target: str, sources: list[str], pool: Pool) -> Scores:
        names = check_sources(target, sources)
        used = available_methods(pool, target, names, tuple(self.methods))
        if not used:
            raise ValueError(
                f"{self.name}: no tuning method among {list(self.methods)} has embeddings of the "
                f"target {target!r} and all sources in store {pool.store.root} "
                f"(backbone {pool.backbone!r})"
            )
        rows = []
        for method in used:
            if self.delta:
                scored = TupateDeltaPredictor(method=method).score(target, names, pool)
                cos = np.array([scored[s] for s in names])
            else:
                cos = method_cosines(pool, method, target, names).numpy()
            rows.append(cos if self.by == "score" else -rankdata(-cos, method="average"))
        mean = np.mean(np.stack(rows), axis=0)
        return Scores(zip(names, mean.tolist(), strict=True), {"methods": used})


register("ensemble", lambda **kw: EnsemblePredictor(by="score", **kw))
register("ensemble-rank", lambda **kw: EnsemblePredictor(by="rank", **kw))
register("ensemble-delta", lambda **kw: EnsemblePredictor(by="score", delta=True, **kw))
register("ensemble-rank-delta", lambda **kw: EnsemblePredictor(by="rank", delta=True, **kw))
