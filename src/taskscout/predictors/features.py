"""Cheap per-pair features of (target t, source s) for the learned gain model.

Each feature is one already registered predictor or one store query; a feature that cannot be
computed (the pool lacks the method, LogME does not support the target's type, the gold does not
know the source, ...) is NaN and its reason is recorded, never a crash:

=====================  ===========================================================================
``logme``              LogME evidence of t's labels under s's lora checkpoint (``logme``)
``tupate_lora_delta``  cos(e_t - e_0, e_s - e_0) of lora TuPaTE vectors (``tupate-lora-delta``)
``tupate_bitfit_delta`` the same for bitfit (``tupate-bitfit-delta``)
``textemb``            cos of the frozen backbone's mean text embeddings (``textemb``)
``log_size``           log10 of s's number of training examples in the pool
``same_type``          1 if s has t's :class:`~taskscout.data.TaskType`, else 0
``same_family``        1 if s has t's catalog family, else 0 (NaN when either is unknown)
``source_prior``       mean gold gain of s over the gold's targets other than t (and s), in the
                       gold's units (TaskWeb: 100 x avg_pct_change)
=====================  ===========================================================================

:func:`normalise` turns a target's raw feature table into model inputs: every feature z-scored
over *that target's* candidate sources only (missing values imputed with 0 = the target's mean,
plus a 0/1 missing indicator per feature), and the raw ``source_prior`` kept in gain units.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import torch

from taskscout.data import TaskSpec
from taskscout.embeddings.similarity import IncompatibleEmbeddingError, cosine_scores
from taskscout.predictors.base import Pool, check_sources
from taskscout.predictors.baselines import TextEmbPredictor
from taskscout.predictors.logme import LogMEPredictor
from taskscout.predictors.tupate import TupateDeltaPredictor

FEATURES: tuple[str, ...] = (
    "logme",
    "tupate_lora_delta",
    "tupate_bitfit_delta",
    "textemb",
    "log_size",
    "same_type",
    "same_family",
    "source_prior",
)
"""Every feature, in the column order of :class:`FeatureTable`."""

LOGME_OPTIONS: dict = {"method": "lora", "checkpoint": "early", "max_examples": 128}
"""How ``logme`` is computed (as the training features were: 128 target examples, early)."""


@dataclass
class FeatureTable:
    """Raw features of one target: ``values[i, j]`` = feature ``names[j]`` of ``sources[i]``
    (float64, NaN = missing); ``reasons``: feature -> why it is (partly) missing."""

    target: str
    sources: list[str]
    values: np.ndarray
    names: tuple[str, ...] = FEATURES
    reasons: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.values = np.asarray(self.values, dtype=np.float64)
        if self.values.shape != (len(self.sources), len(self.names)):
            raise ValueError(
                f"feature values of shape {self.values.shape}, expected "
                f"({len(self.sources)}, {len(self.names)})"
            )

    def column(self, name: str) -> np.ndarray:
        return self.values[:, self.names.index(name)]

    def used(self) -> list[str]:
        """The features with a value for at least one source."""
        return [n for j, n in enumerate(self.names) if np.isfinite(self.values[:, j]).any()]

    def subset(self, sources: list[str]) -> FeatureTable:
        """The rows of ``sources`` (in that order)."""
        index = {s: i for i, s in enumerate(self.sources)}
        rows = [index[s] for s in sources]
        return FeatureTable(
            self.target, list(sources), self.values[rows], self.names, dict(self.reasons)
        )

    def with_prior(self, prior: np.ndarray) -> FeatureTable:
        """A copy whose ``source_prior`` column is ``prior`` (N,)."""
        values = self.values.copy()
        values[:, self.names.index("source_prior")] = prior
        reasons = dict(self.reasons)
        reasons.pop("source_prior", None)
        if not np.isfinite(prior).all():
            reasons["source_prior"] = "the gold does not know some source(s)"
        return FeatureTable(self.target, list(self.sources), values, self.names, reasons)


def source_prior(
    gold: Iterable[tuple[str, str, float]],
    target: str,
    sources: list[str],
    exclude: Iterable[str] = (),
) -> np.ndarray:
    """prior(s) = mean gain(u, s) over the gold's (u, s, gain) rows with u not in
    {target, s} | ``exclude`` and s not in ``exclude``; NaN where no such row. (N,) float64."""
    skip = {target, *exclude}
    sums: dict[str, list[float]] = {}
    for u, s, g in gold:
        if u in skip or s in skip or u == s:
            continue
        sums.setdefault(s, []).append(float(g))
    return np.array([float(np.mean(sums[s])) if s in sums else math.nan for s in sources])


def _spec(pool: Pool, task: str) -> TaskSpec | None:
    if task in pool.tasks:
        return pool.tasks[task].spec
    info = pool.task_info(task)
    return TaskSpec.from_dict(info["spec"]) if info and info.get("spec") else None


def _family(pool: Pool, task: str) -> str | None:
    info = pool.task_info(task)
    family = info.get("family") if info else None
    if family is None and info and isinstance(info.get("spec"), dict):
        family = info["spec"].get("family")
    return family


def _reason(exc: Exception) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"


def compute_features(
    target: str,
    sources: list[str],
    pool: Pool,
    *,
    gold: Iterable[tuple[str, str, float]] = (),
    skip: Iterable[str] = (),
    precomputed: Mapping[str, Mapping[str, float]] | None = None,
    logme_options: dict | None = None,
) -> FeatureTable:
    """The raw :class:`FeatureTable` of ``target`` over ``sources`` (the target left out).

    ``skip``: features not to compute (left missing, e.g. ``logme`` when time is short);
    ``precomputed``: feature -> {source: value} used instead of computing (e.g. LogME scores
    read from a file); ``gold``: (target, source, gain) rows for ``source_prior``. A feature
    whose predictor raises is missing for every source, with the reason in ``reasons`` --
    except :class:`IncompatibleEmbeddingError` (another backbone or shape: refused, never a
    silent omission). A source without any run on the pool's backbone is a ValueError.
    """
    names = check_sources(target, sources)
    absent = [s for s in names if pool.run(s) is None]
    if absent:
        pool.refuse_other_backbones(absent, None)
        raise ValueError(
            f"no run in store {pool.store.root} for source(s) {absent} on backbone "
            f"{pool.backbone!r}"
        )
    skip = set(skip)
    unknown = skip - set(FEATURES)
    if unknown:
        raise ValueError(f"unknown feature(s) {sorted(unknown)}; choose from {list(FEATURES)}")
    precomputed = dict(precomputed or {})
    values = np.full((len(names), len(FEATURES)), np.nan)
    reasons: dict[str, str] = {}

    def put(feature: str, column: dict[str, float]) -> None:
        j = FEATURES.index(feature)
        for i, s in enumerate(names):
            if s in column and column[s] is not None and math.isfinite(column[s]):
                values[i, j] = float(column[s])
        if not np.isfinite(values[:, j]).all():
            reasons.setdefault(feature, "no value for some source(s)")

    scorers = {
        "logme": lambda: LogMEPredictor(**{**LOGME_OPTIONS, **(logme_options or {})}),
        "tupate_lora_delta": lambda: TupateDeltaPredictor(method="lora"),
        "tupate_bitfit_delta": lambda: TupateDeltaPredictor(method="bitfit"),
    }
    for feature, make in scorers.items():
        if feature in skip:
            reasons[feature] = "skipped"
        elif feature in precomputed:
            put(feature, dict(precomputed[feature]))
        else:
            try:
                put(feature, dict(make().score(target, names, pool)))
            except IncompatibleEmbeddingError:
                raise
            except Exception as exc:  # noqa: BLE001 - a missing feature, recorded
                reasons[feature] = _reason(exc)

    if "textemb" in skip:
        reasons["textemb"] = "skipped"
    elif "textemb" in precomputed:
        put("textemb", dict(precomputed["textemb"]))
    else:
        textemb = TextEmbPredictor(max_examples=1000)
        try:
            t_vec = textemb.vector(pool, target)
            column = {}
            for s in names:
                try:
                    cos = cosine_scores(t_vec, torch.stack([textemb.vector(pool, s)]))
                    column[s] = float(cos[0])
                except Exception as exc:  # noqa: BLE001 - this source's text is unavailable
                    reasons["textemb"] = _reason(exc)
            put("textemb", column)
        except Exception as exc:  # noqa: BLE001 - the target's text is unavailable
            reasons["textemb"] = _reason(exc)

    sizes = {}
    for s in names:
        info = pool.task_info(s)
        run = None if info is not None else pool.run(s)
        n = info["num_train"] if info is not None else (run.num_train if run else None)
        if n:
            sizes[s] = math.log10(float(n))
    put("log_size", precomputed.get("log_size", sizes))

    t_spec, t_family = _spec(pool, target), _family(pool, target)
    same_type, same_family = {}, {}
    for s in names:
        s_spec, s_family = _spec(pool, s), _family(pool, s)
        if t_spec is not None and s_spec is not None:
            same_type[s] = float(t_spec.type == s_spec.type)
        if t_family is not None and s_family is not None:
            same_family[s] = float(t_family == s_family)
    put("same_type", same_type)
    put("same_family", same_family)
    if t_spec is None:
        reasons["same_type"] = f"the type of target {target!r} is unknown"
    if t_family is None:
        reasons["same_family"] = f"the family of target {target!r} is unknown"

    table = FeatureTable(target, names, values, FEATURES, reasons)
    gold = list(gold)
    if "source_prior" in skip:
        table.reasons["source_prior"] = "skipped"
        return table
    if not gold:
        table.reasons["source_prior"] = "no gold transfers to average"
        return table
    return table.with_prior(source_prior(gold, target, names))


def normalise(table: FeatureTable, features: Iterable[str] | None = None) -> np.ndarray:
    """Model inputs of one target, (N, 2 * F + 1) float64 for the F ``features`` (default all,
    in :data:`FEATURES` order): for each feature its z-score over this table's sources
    ((x - mean) / std over the sources that have it; 0 if missing or if the std is 0), then for
    each feature a 0/1 missing indicator, then the raw ``source_prior`` (gain units, 0 when
    missing or not among ``features``). Uses nothing but this table."""
    chosen = list(FEATURES if features is None else features)
    n = len(table.sources)
    z = np.zeros((n, len(chosen)))
    miss = np.zeros((n, len(chosen)))
    for k, name in enumerate(chosen):
        x = table.column(name)
        ok = np.isfinite(x)
        miss[:, k] = (~ok).astype(np.float64)
        if ok.sum() >= 2:
            mean, std = x[ok].mean(), x[ok].std()
            if std > 1e-12:
                z[ok, k] = (x[ok] - mean) / std
    prior = table.column("source_prior") if "source_prior" in chosen else np.zeros(n)
    prior = np.where(np.isfinite(prior), prior, 0.0)
    return np.concatenate([z, miss, prior[:, None]], axis=1)
