"""The six prompt-similarity metrics of Feng et al. (2023) over prompt matrices.

P_t, P_s are (L, H) prompt matrices (L prompt tokens, H hidden size) of the target and a source;
every metric is "higher = more similar". With p = (1/L) sum_i P[i] the token mean:

    mean-manhattan:   -sum_h |p_t[h] - p_s[h]|
    mean-euclidean:   -||p_t - p_s||_2
    mean-cosine:      p_t.p_s / (||p_t|| ||p_s||)
    token-manhattan:  (1/L) sum_i -sum_h |P_t[i,h] - P_s[i,h]|
    token-euclidean:  (1/L) sum_i -||P_t[i] - P_s[i]||_2
    token-cosine:     (1/L) sum_i cos(P_t[i], P_s[i])

Computed in float64; a zero vector has cosine 0 with anything.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from taskscout.embeddings.similarity import IncompatibleEmbeddingError
from taskscout.predictors.base import Pool, Reads, Scores, check_sources, method_embeddings
from taskscout.predictors.registry import register

PROMPT_METRICS: tuple[str, ...] = (
    "mean-manhattan",
    "mean-euclidean",
    "mean-cosine",
    "token-manhattan",
    "token-euclidean",
    "token-cosine",
)


def _check(p_t: torch.Tensor, p_s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if p_t.ndim != 2 or p_s.ndim != 2:
        raise IncompatibleEmbeddingError(
            f"prompt metrics need (L, H) matrices, got {tuple(p_t.shape)} and {tuple(p_s.shape)}"
        )
    if p_t.shape[0] != p_s.shape[0]:
        raise IncompatibleEmbeddingError(
            f"prompt lengths differ: L={p_t.shape[0]} vs L={p_s.shape[0]}"
        )
    if p_t.shape[1] != p_s.shape[1]:
        raise IncompatibleEmbeddingError(
            f"prompt hidden sizes differ: H={p_t.shape[1]} vs H={p_s.shape[1]}"
        )
    return p_t.double(), p_s.double()


def _cos(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cosine along the last dim; 0 where either vector is zero."""
    return (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1)).clamp(min=1e-300)


def mean_manhattan(p_t: torch.Tensor, p_s: torch.Tensor) -> float:
    """-||mean_i P_t[i] - mean_i P_s[i]||_1; (L, H), (L, H) -> float."""
    a, b = _check(p_t, p_s)
    return -float((a.mean(0) - b.mean(0)).abs().sum())


def mean_euclidean(p_t: torch.Tensor, p_s: torch.Tensor) -> float:
    """-||mean_i P_t[i] - mean_i P_s[i]||_2; (L, H), (L, H) -> float."""
    a, b = _check(p_t, p_s)
    return -float((a.mean(0) - b.mean(0)).norm())


def mean_cosine(p_t: torch.Tensor, p_s: torch.Tensor) -> float:
    """cos(mean_i P_t[i], mean_i P_s[i]); (L, H), (L, H) -> float in [-1, 1]."""
    a, b = _check(p_t, p_s)
    return float(_cos(a.mean(0), b.mean(0)))


def token_manhattan(p_t: torch.Tensor, p_s: torch.Tensor) -> float:
    """(1/L) sum_i -||P_t[i] - P_s[i]||_1; (L, H), (L, H) -> float."""
    a, b = _check(p_t, p_s)
    return -float((a - b).abs().sum(1).mean())


def token_euclidean(p_t: torch.Tensor, p_s: torch.Tensor) -> float:
    """(1/L) sum_i -||P_t[i] - P_s[i]||_2; (L, H), (L, H) -> float."""
    a, b = _check(p_t, p_s)
    return -float((a - b).norm(dim=1).mean())


def token_cosine(p_t: torch.Tensor, p_s: torch.Tensor) -> float:
    """(1/L) sum_i cos(P_t[i], P_s[i]); (L, H), (L, H) -> float in [-1, 1]."""
    a, b = _check(p_t, p_s)
    return float(_cos(a, b).mean())


METRIC_FUNCTIONS = {
    "mean-manhattan": mean_manhattan,
    "mean-euclidean": mean_euclidean,
    "mean-cosine": mean_cosine,
    "token-manhattan": token_manhattan,
    "token-euclidean": token_euclidean,
    "token-cosine": token_cosine,
}


@dataclass
class PromptMetricPredictor:
    """``prompt-<metric>``: one of the six metrics over the stored prompt matrices (method
    ``prompt``) of the target and each source."""

    metric: str = "mean-cosine"
    reads = Reads(methods=("prompt",), checkpoint=True)

    def __post_init__(self) -> None:
        if self.metric not in METRIC_FUNCTIONS:
            raise ValueError(f"unknown prompt metric {self.metric!r}; choose from {PROMPT_METRICS}")

    @property
    def name(self) -> str:
        return f"prompt-{self.metric}"

    def score(self, target: str, sources: list[str], pool: Pool) -> Scores:
        names = check_sources(target, sources)
        t, ss = method_embeddings(pool, "prompt", target, names)
        fn = METRIC_FUNCTIONS[self.metric]
        return Scores(
            {name: fn(t.tensor, s.tensor) for name, s in zip(names, ss, strict=True)},
            {"method": "prompt", "metric": self.metric},
        )


for _metric in PROMPT_METRICS:
    register(f"prompt-{_metric}", lambda _m=_metric, **kw: PromptMetricPredictor(metric=_m, **kw))
