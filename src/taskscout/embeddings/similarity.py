"""Similarity of task embeddings: cosine over vectors (TuPaTE), with compatibility checks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch


class IncompatibleEmbeddingError(ValueError):
    """Embeddings from different backbones, methods, layer reductions or dimensions."""


@dataclass(frozen=True)
class EmbeddingKey:
    """What must match for two embeddings to be comparable."""

    backbone: str
    method: str
    layer_reduce: str
    shape: tuple[int, ...]


def check_compatible(target: EmbeddingKey, sources: Sequence[tuple[str, EmbeddingKey]]) -> None:
    """Raise :class:`IncompatibleEmbeddingError` naming the first source that differs."""
    for name, key in sources:
        for field in ("backbone", "method", "layer_reduce", "shape"):
            if getattr(key, field) != getattr(target, field):
                raise IncompatibleEmbeddingError(
                    f"cannot compare embeddings: source {name!r} has {field}="
                    f"{getattr(key, field)!r} but the target has {getattr(target, field)!r}"
                )


def cosine_scores(target: torch.Tensor, sources: torch.Tensor) -> torch.Tensor:
    """cos(e_t, e_s) = e_t.e_s / (|e_t| |e_s|) for each row s of ``sources``.

    target: (D,), sources: (N, D) -> (N,) in [-1, 1]; a zero vector gives similarity 0.
    Computed in float64 in chunks, so memory stays bounded for large pools.
    """
    if target.ndim != 1 or sources.ndim != 2 or sources.shape[1] != target.shape[0]:
        raise IncompatibleEmbeddingError(
            f"shape mismatch: target {tuple(target.shape)}, sources {tuple(sources.shape)}"
        )
    t = target.double()
    t = t / t.norm().clamp(min=1e-12)
    out = torch.empty(sources.shape[0], dtype=torch.float64)
    for start in range(0, sources.shape[0], 4096):
        chunk = sources[start : start + 4096].double()
        out[start : start + 4096] = (chunk @ t) / chunk.norm(dim=1).clamp(min=1e-12)
    return out
