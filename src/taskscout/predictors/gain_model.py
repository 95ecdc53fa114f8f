"""The default predictor: a learned gain model over cheap per-pair features (``gain-model``).

For a target t and a candidate source s it predicts the transfer gain of s -> t in the training
gold's units (TaskWeb: 100 x avg_pct_change, i.e. percent of the no-transfer score) with a 90 %
interval, and flags a source whose whole interval is below zero as ``likely harmful``.

Model (chosen from ``benchmarks/default_predictor.py``): ridge regression (unpenalised intercept)
of the gain on :func:`~taskscout.predictors.features.normalise`'d features, i.e. per-target
z-scores + missing indicators + the raw source prior. The ridge penalty is chosen from
:data:`ALPHAS` by leave-one-target-out (LOTO) squared error *within the training targets*. The
point prediction is the fit on every training target; ``sd`` is the spread of :data:`N_BOOT`
fits on bootstrap resamples of the training targets (seeded); the interval is
``mean +- q * sqrt(sd^2 + sigma0^2)``, where sigma0 is the RMS of the training LOTO residuals and
q the conformal (finite-sample) ``level`` quantile of the LOTO residuals standardised the same
way, so its coverage is calibrated on targets the fit did not see.

Features the target's pool cannot give (no bitfit runs, LogME unsupported, unknown source, ...)
are left out: the model is refitted on the shipped training features restricted to the features
actually available (deterministic, milliseconds), and the output names the features it used.

Everything is numpy float64, seeded, and serialised as JSON (no pickle): the shipped file
``models/gain_model.json`` holds the training features and gold (so any feature subset can be
refitted) and the fitted parameters for the full feature set.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from taskscout.predictors.base import Pool, Reads, Scores, check_sources
from taskscout.predictors.features import (
    FEATURES,
    FeatureTable,
    compute_features,
    normalise,
    source_prior,
)
from taskscout.predictors.registry import register

ALPHAS: tuple[float, ...] = (0.3, 1.0, 3.0, 10.0, 30.0, 100.0)
"""Ridge penalties searched by inner leave-one-target-out."""
N_BOOT = 50
"""Bootstrap fits (resampled training targets) behind each prediction's spread."""
LEVEL = 0.9
"""Nominal coverage of the interval."""
FORMAT = "taskscout-gain-model/1"
SHIPPED = "gain_model.json"

Gold = Sequence[tuple[str, str, float]]


# --- ridge ----------------------------------------------------------------------------------


def fit_ridge(
    x: np.ndarray, y: np.ndarray, alpha: float, weights: np.ndarray | None = None
) -> np.ndarray:
    """Weighted ridge regression with an unpenalised intercept: returns (P + 1,) = (w, b)
    minimising sum_i v_i (y_i - x_i w - b)^2 + alpha ||w||^2 (``weights`` v, default 1).
    ``x`` (n, P), ``y`` (n,)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or y.shape != (x.shape[0],) or x.shape[0] == 0:
        raise ValueError(f"ridge needs x (n, P) and y (n,), got {x.shape} and {y.shape}")
    v = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=np.float64)
    v = v / v.mean()
    mx, my = (v @ x) / v.sum(), float(v @ y) / v.sum()
    xc = x - mx
    w = np.linalg.solve(xc.T @ (v[:, None] * xc) + alpha * np.eye(x.shape[1]),
                        xc.T @ (v * (y - my)))  # fmt: skip
    return np.concatenate([w, [my - mx @ w]])


def ridge_predict(params: np.ndarray, x: np.ndarray) -> np.ndarray:
    """x @ w + b for params (P + 1,) or (B, P + 1) -> (n,) or (B, n)."""
    params = np.asarray(params, dtype=np.float64)
    return params[..., :-1] @ np.asarray(x, dtype=np.float64).T + params[..., -1:]


def _target_weights(gains: list[np.ndarray], weighting: str) -> list[np.ndarray]:
    """Per-row weights: ``none`` = 1; ``target`` = 1 / var of the target's gains (each target
    counts alike whatever its spread; the variance floored at 0.25 gain points^2)."""
    if weighting == "none":
        return [np.ones(len(g)) for g in gains]
    if weighting == "target":
        return [np.full(len(g), 1.0 / max(float(np.var(g)), 0.25)) for g in gains]
    raise ValueError(f"weighting must be 'none' or 'target', not {weighting!r}")


def _stack(designs, gains, keep: Iterable[int], weights=None):
    keep = list(keep)
    out = [np.concatenate([designs[i] for i in keep]), np.concatenate([gains[i] for i in keep])]
    if weights is not None:
        out.append(np.concatenate([weights[i] for i in keep]))
    return out


def _fit(designs, gains, keep, weights, alpha: float) -> np.ndarray:
    x, y, v = _stack(designs, gains, keep, weights)
    return fit_ridge(x, y, alpha, v)


def _bootstrap(designs, gains, weights, alpha: float, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, P + 1) ridge fits on resamples (with replacement) of the training targets."""
    rng = np.random.default_rng(seed)
    members = []
    for _ in range(n_boot):
        pick = rng.integers(0, len(designs), size=len(designs))
        members.append(_fit(designs, gains, pick, weights, alpha=alpha))
    return np.stack(members)


def _loto_sq_error(designs, gains, weights, alpha: float) -> float:
    errs = []
    for j in range(len(designs)):
        rest = [i for i in range(len(designs)) if i != j]
        params = _fit(designs, gains, rest, weights, alpha=alpha)
        errs.append(weights[j] * (ridge_predict(params, designs[j]) - gains[j]) ** 2)
    return float(np.concatenate(errs).mean())


def conformal_quantile(scores: np.ndarray, level: float) -> float:
    """The ceil((n + 1) level) / n empirical quantile of ``scores`` (split conformal); the
    largest score when that exceeds 1."""
    s = np.sort(np.asarray(scores, dtype=np.float64))
    if len(s) == 0:
        raise ValueError("no residuals to calibrate the interval")
    k = min(len(s), math.ceil((len(s) + 1) * level))
    return float(s[k - 1])


# --- the fitted model -----------------------------------------------------------------------


@dataclass
class GainModel:
    """A fitted gain model over ``features``: ``full`` (P + 1,) ridge parameters on every
    training target, ``members`` (B, P + 1) bootstrap fits, interval scale ``sigma0`` and
    multiplier ``q`` (see the module doc). P = 2 * len(features) + 1."""

    features: tuple[str, ...]
    alpha: float
    full: np.ndarray
    members: np.ndarray
    sigma0: float
    q: float
    level: float = LEVEL
    seed: int = 0

    def predict(self, table: FeatureTable) -> dict[str, np.ndarray]:
        """``mean``, ``sd``, ``low``, ``high`` (N,) for a raw feature table (normalised here,
        over its own sources only), in gain units."""
        x = normalise(table, self.features)
        mean = ridge_predict(self.full, x)
        sd = ridge_predict(self.members, x).std(axis=0) if len(self.members) else 0 * mean
        half = self.q * np.sqrt(sd**2 + self.sigma0**2)
        return {"mean": mean, "sd": sd, "low": mean - half, "high": mean + half}

    def to_dict(self) -> dict:
        return {
            "features": list(self.features),
            "alpha": self.alpha,
            "full": self.full.tolist(),
            "members": self.members.tolist(),
            "sigma0": self.sigma0,
            "q": self.q,
            "level": self.level,
            "seed": self.seed,
        }

    @classmethod
    def from_dict(cls, d: dict) -> GainModel:
        features = tuple(d["features"])
        unknown = set(features) - set(FEATURES)
        if unknown:
            raise ValueError(f"gain model has unknown feature(s) {sorted(unknown)}")
        full = np.asarray(d["full"], dtype=np.float64)
        members = np.asarray(d["members"], dtype=np.float64).reshape(-1, len(full))
        if full.shape != (2 * len(features) + 2,):
            raise ValueError(f"gain model parameters of shape {full.shape} for {features}")
        return cls(
            features, float(d["alpha"]), full, members, float(d["sigma0"]), float(d["q"]),
            float(d.get("level", LEVEL)), int(d.get("seed", 0)),
        )  # fmt: skip


def fit_gain_model(
    tables: list[FeatureTable],
    gains: list[np.ndarray],
    *,
    features: Sequence[str] | None = None,
    alphas: Sequence[float] = ALPHAS,
    n_boot: int = N_BOOT,
    level: float = LEVEL,
    weighting: str = "none",
    seed: int = 0,
) -> GainModel:
    """Fit on training targets: ``tables[k]`` the raw features of target k's sources,
    ``gains[k]`` (N_k,) their gold gains. Alpha by inner LOTO over these targets only; the
    interval calibrated on their LOTO residuals. ``weighting``: ``none`` (every pair alike,
    the default: it ranked best in ``benchmarks/default_predictor.py``) or ``target`` (each
    target alike, rows weighted by 1 / the variance of its gains). Deterministic given
    ``seed``."""
    chosen = tuple(FEATURES if features is None else features)
    if len(tables) != len(gains) or len(tables) < 3:
        raise ValueError(f"need >= 3 training targets with gains, got {len(tables)}")
    gains = [np.asarray(g, dtype=np.float64) for g in gains]
    for t, g in zip(tables, gains, strict=True):
        if g.shape != (len(t.sources),) or not np.isfinite(g).all():
            raise ValueError(f"target {t.target!r}: gains must be finite, one per source")
    designs = [normalise(t, chosen) for t in tables]
    weights = _target_weights(gains, weighting)
    alpha = min(alphas, key=lambda a: (_loto_sq_error(designs, gains, weights, a), a))
    residuals, sds = [], []
    for j in range(len(designs)):
        rest = [i for i in range(len(designs)) if i != j]
        params = _fit(designs, gains, rest, weights, alpha=alpha)
        members = _bootstrap([designs[i] for i in rest], [gains[i] for i in rest],
                             [weights[i] for i in rest], alpha, max(n_boot // 2, 2),
                             seed + 1 + j)  # fmt: skip
        residuals.append(gains[j] - ridge_predict(params, designs[j]))
        sds.append(ridge_predict(members, designs[j]).std(axis=0))
    r, sd = np.concatenate(residuals), np.concatenate(sds)
    sigma0 = float(np.sqrt(np.mean(r**2)))
    q = conformal_quantile(np.abs(r) / np.sqrt(sd**2 + sigma0**2), level)
    full = _fit(designs, gains, range(len(designs)), weights, alpha=alpha)
    members = _bootstrap(designs, gains, weights, alpha, n_boot, seed)
    return GainModel(chosen, float(alpha), full, members, sigma0, q, level, seed)


# --- training sets from raw features and a gold ----------------------------------------------


def training_tables(
    raw: dict[str, FeatureTable],
    gold: Gold,
    exclude: Iterable[str] = (),
) -> tuple[list[FeatureTable], list[np.ndarray]]:
    """(tables, gains) of every target in ``raw`` except ``exclude``: each target's sources
    that the gold knows for it, minus ``exclude``; ``source_prior`` recomputed from the gold
    without that target and without ``exclude`` (as target and as source)."""
    exclude = set(exclude)
    known = {(u, s): float(g) for u, s, g in gold}
    gold = [(u, s, g) for u, s, g in gold if u not in exclude and s not in exclude]
    tables, gains = [], []
    for target in sorted(raw):
        if target in exclude:
            continue
        table = raw[target]
        sources = [s for s in table.sources if s not in exclude and (target, s) in known]
        if len(sources) < 2:
            continue
        sub = table.subset(sources)
        tables.append(sub.with_prior(source_prior(gold, target, sources)))
        gains.append(np.array([known[(target, s)] for s in sources]))
    return tables, gains


def loto_predictions(
    raw: dict[str, FeatureTable],
    gold: Gold,
    targets: Iterable[str] | None = None,
    **fit_options,
) -> list[dict]:
    """Leave-one-target-out: for each held-out target t (default every target of ``raw``), a
    model fitted on the other targets with t excluded as target *and* as source everywhere
    (features' normalisation, the source prior, the penalty search, the interval calibration)
    predicts t's sources. Rows ``target, source, mean, sd, low, high, features``."""
    rows = []
    wanted = fit_options.pop("features", None) or FEATURES
    for held in targets or sorted(raw):
        tables, gains = training_tables(raw, gold, exclude=[held])
        table = raw[held]
        training_gold = [(u, s, g) for u, s, g in gold if held not in (u, s)]
        table = table.with_prior(source_prior(training_gold, held, table.sources))
        used = tuple(f for f in wanted if f in table.used())
        model = fit_gain_model(tables, gains, features=used, **fit_options)
        pred = model.predict(table)
        for i, s in enumerate(table.sources):
            rows.append(
                {"target": held, "source": s, "features": ",".join(used),
                 **{k: float(v[i]) for k, v in pred.items()}}
            )  # fmt: skip
    return rows


# --- the shipped bundle -----------------------------------------------------------------------


@dataclass
class GainModelBundle:
    """What ships: the training features (``raw``), the gold (``gold``: target, source, gain),
    where both came from (``provenance``), and fitted models by feature set (``models``; the
    full set is fitted when the bundle is made, others on demand with the same settings)."""

    raw: dict[str, FeatureTable]
    gold: list[tuple[str, str, float]]
    provenance: dict = field(default_factory=dict)
    models: dict[tuple[str, ...], GainModel] = field(default_factory=dict)
    seed: int = 0

    @classmethod
    def fit(cls, raw, gold, provenance=None, seed: int = 0) -> GainModelBundle:
        bundle = cls(dict(raw), [(u, s, float(g)) for u, s, g in gold], dict(provenance or {}),
                     seed=seed)  # fmt: skip
        bundle.model_for(FEATURES)
        return bundle

    def model_for(self, features: Iterable[str]) -> GainModel:
        """The model over ``features`` (in :data:`FEATURES` order), fitted once."""
        key = tuple(f for f in FEATURES if f in set(features))
        if not key:
            raise ValueError("the gain model needs at least one feature")
        if key not in self.models:
            tables, gains = training_tables(self.raw, self.gold)
            self.models[key] = fit_gain_model(tables, gains, features=key, seed=self.seed)
        return self.models[key]

    def to_dict(self) -> dict:
        return {
            "format": FORMAT,
            "provenance": self.provenance,
            "seed": self.seed,
            "features": list(FEATURES),
            "training": [
                {
                    "target": t.target,
                    "sources": t.sources,
                    "values": [
                        [None if not math.isfinite(v) else v for v in row]
                        for row in t.values.tolist()
                    ],
                    "reasons": t.reasons,
                }  # fmt: skip
                for t in self.raw.values()
            ],
            "gold": [list(row) for row in self.gold],
            "models": [m.to_dict() for m in self.models.values()],
        }

    @classmethod
    def from_dict(cls, d: dict) -> GainModelBundle:
        if d.get("format") != FORMAT:
            raise ValueError(f"not a gain model file (format {d.get('format')!r}, want {FORMAT})")
        names = tuple(d["features"])
        if names != FEATURES:
            raise ValueError(f"gain model file has features {names}, this version {FEATURES}")
        raw = {}
        for item in d["training"]:
            values = np.array(
                [[math.nan if v is None else v for v in row] for row in item["values"]],
                dtype=np.float64,
            ).reshape(len(item["sources"]), len(names))
            raw[item["target"]] = FeatureTable(
                item["target"], list(item["sources"]), values, names, dict(item["reasons"])
            )
        models = {tuple(m["features"]): GainModel.from_dict(m) for m in d.get("models", [])}
        gold = [(str(u), str(s), float(g)) for u, s, g in d["gold"]]
        return cls(raw, gold, dict(d.get("provenance", {})), models, int(d.get("seed", 0)))

    def save(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1) + "\n")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike | None = None) -> GainModelBundle:
        """A saved bundle (default: the one shipped with the package)."""
        if path is None:
            text = resources.files("taskscout.predictors").joinpath("models", SHIPPED).read_text()
        else:
            text = Path(path).read_text()
        return cls.from_dict(json.loads(text))


_SHIPPED_CACHE: dict[str, GainModelBundle] = {}


# --- the predictor -----------------------------------------------------------------------------


@dataclass
class GainModelPredictor:
    """``gain-model`` (also ``default``): score = predicted gain of s -> t in the gold's units;
    ``scores.info`` holds ``low``/``high`` (the interval), ``sd``, ``likely_harmful`` (the whole
    interval below 0), ``features_used``, ``missing`` (feature -> reason) and ``units``.

    ``model``: a bundle file (default the shipped one); ``skip``: features not to compute
    (e.g. ``("logme",)`` to save LogME's cost); ``logme_examples``: target examples LogME reads.
    """

    model: str | os.PathLike | None = None
    skip: tuple[str, ...] = ()
    logme_examples: int = 128
    name: str = "gain-model"
    reads = Reads(methods=("lora", "bitfit"), any_of_methods=True, checkpoint=True, task_data=True)

    def __post_init__(self) -> None:
        self.skip = tuple(self.skip)
        unknown = set(self.skip) - set(FEATURES)
        if unknown:
            raise ValueError(f"unknown feature(s) {sorted(unknown)}; choose from {list(FEATURES)}")
        if self.model is not None and not Path(self.model).is_file():
            raise ValueError(f"gain model file {self.model} does not exist")

    def bundle(self) -> GainModelBundle:
        key = str(self.model or "")
        if key not in _SHIPPED_CACHE:
            _SHIPPED_CACHE[key] = GainModelBundle.load(self.model)
        return _SHIPPED_CACHE[key]

    def score(self, target: str, sources: list[str], pool: Pool) -> Scores:
        names = check_sources(target, sources)
        bundle = self.bundle()
        table = compute_features(
            target, names, pool, gold=bundle.gold, skip=self.skip,
            logme_options={"max_examples": self.logme_examples},
        )  # fmt: skip
        used = table.used()
        model = bundle.model_for(used)
        pred = model.predict(table)
        per = {k: dict(zip(names, map(float, v), strict=True)) for k, v in pred.items()}
        return Scores(
            per["mean"],
            {
                "low": per["low"],
                "high": per["high"],
                "sd": per["sd"],
                "likely_harmful": {s: per["high"][s] < 0 for s in names},
                "features_used": list(model.features),
                "missing": dict(table.reasons),
                "level": model.level,
                "units": bundle.provenance.get("units", "gold gain units"),
            },
        )


register("gain-model", lambda **kw: GainModelPredictor(**kw))
register("default", lambda **kw: GainModelPredictor(**{"name": "default", **kw}))
