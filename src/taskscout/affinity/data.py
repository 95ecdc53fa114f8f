"""Training pairs for the affinity scorers: gold gains x a pool of task embeddings.

* :func:`check_gold` validates a long-form gold table ``target, source, gain`` (gains in metric
  points, x100): finite gains, no duplicate pairs, every task known to the pool.
* :class:`EmbeddingSet` holds one embedding per task, all of one (backbone, method, checkpoint,
  layer reduction, shape): prompt matrices (L, H) for the backbone scorer, vectors (D,) for the
  light scorer.
* :func:`sample_pairs` draws M training pairs at random (seeded, independent of global RNG).
* :class:`GainScaler` z-scores gains for training: ``z = (gain - mean) / std`` with the mean and
  standard deviation of the *training* gains; predictions are mapped back to metric points by
  ``gain = z * std + mean`` (a standard deviation in z units scales by ``std``). The smooth-L1
  threshold ``beta`` is therefore in units of training-gain standard deviations.

The embedding-compatibility names (``EmbeddingKey``, ``IncompatibleEmbeddingError``,
``check_compatible``) are imported here, and only here, within :mod:`taskscout.affinity`; the
other affinity modules take them from this module.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from taskscout.affinity.train import numpy_generator
from taskscout.embeddings.similarity import (
    EmbeddingKey,
    IncompatibleEmbeddingError,
    check_compatible,
)

GOLD_COLUMNS = ("target", "source", "gain")


class AffinityDataError(ValueError):
    """Gold gains or embeddings unusable for training or scoring (the message says why)."""


def _examples(df: pd.DataFrame, limit: int = 5) -> str:
    rows = df[["target", "source"]].head(limit).itertuples(index=False)
    return ", ".join(f"({t}, {s})" for t, s in rows)


def check_gold(gold: pd.DataFrame, tasks: Iterable[str] | None = None) -> pd.DataFrame:
    """A clean copy of ``gold`` with columns ``target, source, gain`` (+ ``performance``).

    Raises :class:`AffinityDataError` for missing columns, non-finite gains (NaN, inf, text),
    duplicate (target, source) pairs, or (when ``tasks`` is given) task names outside
    ``tasks`` -- the error lists them. Rows with target == source are dropped.
    """
    missing = [c for c in GOLD_COLUMNS if c not in gold.columns]
    if missing:
        raise AffinityDataError(
            f"gold gains need columns {list(GOLD_COLUMNS)}; missing {missing} "
            f"(got {list(gold.columns)})"
        )
    cols = list(GOLD_COLUMNS) + (["performance"] if "performance" in gold.columns else [])
    out = gold[cols].copy()
    for col in ("target", "source"):
        out[col] = out[col].astype(str).str.strip()
    out["gain"] = pd.to_numeric(out["gain"], errors="coerce").astype(float)
    bad = ~np.isfinite(out["gain"].to_numpy())
    if bad.any():
        raise AffinityDataError(
            f"gold has {int(bad.sum())} non-finite gain(s) (NaN, inf or not a number), e.g. "
            f"{_examples(out[bad])}; drop or fix those rows"
        )
    out = out[out["target"] != out["source"]]
    dup = out.duplicated(["target", "source"], keep=False)
    if dup.any():
        raise AffinityDataError(f"gold has duplicate (target, source) pairs: {_examples(out[dup])}")
    if out.empty:
        raise AffinityDataError("gold holds no (target, source) pair with target != source")
    if tasks is not None:
        known = set(tasks)
        unknown = sorted((set(out["target"]) | set(out["source"])) - known)
        if unknown:
            raise AffinityDataError(
                f"gold names task(s) {unknown} that have no embedding in the pool "
                f"(pool tasks: {sorted(known)}); tune/embed them first or restrict the gold"
            )
    return out.reset_index(drop=True)


def sample_pairs(pairs: pd.DataFrame, m: int | None, seed: int = 0) -> pd.DataFrame:
    """``m`` rows of ``pairs`` drawn uniformly without replacement by the ``"sample_pairs"``
    generator of ``seed`` (>= 0; see :func:`taskscout.affinity.train.derive_seed`), in their
    original order; ``m=None`` keeps all. ``m`` outside 1..len(pairs) raises
    :class:`AffinityDataError`."""
    if m is None or m == len(pairs):
        return pairs.reset_index(drop=True)
    if m < 1 or m > len(pairs):
        raise AffinityDataError(f"--pairs must be between 1 and {len(pairs)} (available), not {m}")
    rng = numpy_generator(seed, "sample_pairs")
    keep = np.sort(rng.choice(len(pairs), size=m, replace=False))
    return pairs.iloc[keep].reset_index(drop=True)


@dataclass
class GainScaler:
    """z-scoring of gains (metric points, x100) with the training mean and standard deviation
    (population std; 1.0 when the gains are constant or there is only one)."""

    mean: float = 0.0
    std: float = 1.0

    @classmethod
    def fit(cls, gains) -> GainScaler:
        """Fit on gains (N,) in metric points."""
        g = np.asarray(gains, dtype=float)
        std = float(g.std()) if len(g) > 1 else 0.0
        return cls(float(g.mean()), std if std > 1e-8 else 1.0)

    def transform(self, gains) -> np.ndarray:
        """Metric points -> z units, float64, same shape."""
        return (np.asarray(gains, dtype=float) - self.mean) / self.std

    def inverse(self, z) -> np.ndarray:
        """z units -> metric points, float64, same shape."""
        return np.asarray(z, dtype=float) * self.std + self.mean


@dataclass
class EmbeddingSet:
    """One embedding per task, all sharing ``key`` (backbone, method, layer reduction, shape)
    and ``checkpoint``. Tensors are float32: (L, H) prompt matrices or (D,) vectors."""

    tensors: dict[str, torch.Tensor]
    key: EmbeddingKey
    checkpoint: str = "early"
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_tensors(
        cls,
        tensors: Mapping[str, torch.Tensor],
        *,
        backbone: str,
        method: str,
        checkpoint: str = "early",
        layer_reduce: str = "none",
    ) -> EmbeddingSet:
        """From plain tensors (all of one shape; e.g. synthetic pools, tests)."""
        if not tensors:
            raise AffinityDataError("no embeddings given")
        shapes = {tuple(t.shape) for t in tensors.values()}
        if len(shapes) != 1:
            raise IncompatibleEmbeddingError(f"embeddings of different shapes: {sorted(shapes)}")
        shape = shapes.pop()
        key = EmbeddingKey(backbone, method, layer_reduce, shape)
        return cls({k: v.detach().float() for k, v in tensors.items()}, key, checkpoint)

    @classmethod
    def from_pool(cls, pool, method: str, tasks: Iterable[str] | None = None) -> EmbeddingSet:
        """The ``method`` embeddings of the pool's tasks (all, or ``tasks``; missing ones
        raise), checked compatible. ``pool`` is a :class:`taskscout.predictors.Pool`."""
        emb = pool.embeddings(method)
        names = sorted(emb) if tasks is None else list(dict.fromkeys(tasks))
        missing = [t for t in names if t not in emb]
        if missing:
            pool.refuse_other_backbones(missing, method)
            raise AffinityDataError(
                f"no {method} embedding in store {pool.store.root} (backbone {pool.backbone!r})"
                f" for task(s) {missing}; tune them with --method {method}"
            )
        if not names:
            raise AffinityDataError(
                f"store {pool.store.root} holds no {method} embedding for backbone "
                f"{pool.backbone!r}"
            )
        first = emb[names[0]]
        check_compatible(first.key, [(t, emb[t].key) for t in names[1:]])
        return cls({t: emb[t].tensor.float() for t in names}, first.key, pool.checkpoint)

    # --- views -----------------------------------------------------------------------------
    @property
    def tasks(self) -> list[str]:
        """Task names, sorted."""
        return sorted(self.tensors)

    def __contains__(self, task: str) -> bool:
        return task in self.tensors

    def as_vectors(self) -> EmbeddingSet:
        """Vector form: matrices (L, H) become their token mean (H,) (TuPaTE of ``prompt``)."""
        if len(self.key.shape) == 1:
            return self
        tensors = {t: v.mean(dim=0) for t, v in self.tensors.items()}
        shape = (self.key.shape[-1],)
        key = EmbeddingKey(self.key.backbone, self.key.method, self.key.layer_reduce, shape)
        return EmbeddingSet(tensors, key, self.checkpoint, dict(self.extra))

    def stack(self, names: Iterable[str]) -> torch.Tensor:
        """(N, *shape) float32 of the named tasks; unknown names raise."""
        names = list(names)
        missing = sorted({n for n in names if n not in self.tensors})
        if missing:
            raise AffinityDataError(f"no embedding for task(s) {missing}")
        return torch.stack([self.tensors[n] for n in names])


__all__ = [
    "GOLD_COLUMNS",
    "AffinityDataError",
    "EmbeddingKey",
    "EmbeddingSet",
    "GainScaler",
    "IncompatibleEmbeddingError",
    "check_compatible",
    "check_gold",
    "sample_pairs",
]
