"""90 % bootstrap intervals over targets for per-target metric tables.

Input: the ``per_target`` frame of :func:`taskscout.evaluation.longform.evaluate_long`
(columns ``predictor, target`` and one column per metric). Targets are resampled with
replacement (the same draws for every predictor evaluated on the same targets, so intervals
of different rows are comparable and paired differences are exact about the draws); the
interval is the percentile interval of the mean. NaN metric values (constant correlations)
are skipped inside each mean, as in ``evaluate_long``'s summary.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from taskscout.evaluation.report import is_metric

LEVEL = 0.9
N_BOOT = 2000


def _draws(n_targets: int, n_boot: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, n_targets, size=(n_boot, n_targets))


def _nanmean_rows(values: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        counts = np.sum(np.isfinite(values), axis=1)
        sums = np.nansum(values, axis=1)
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def metric_columns(per_target: pd.DataFrame) -> list[str]:
    """The metric columns of a per-target frame, in order."""
    return [c for c in per_target.columns if is_metric(c)]


def bootstrap_summary(
    per_target: pd.DataFrame,
    metrics: list[str] | None = None,
    *,
    n_boot: int = N_BOOT,
    level: float = LEVEL,
    seed: int = 0,
) -> pd.DataFrame:
    """Per predictor (in order of appearance): the mean of each metric over its targets and
    the ``level`` percentile bootstrap interval (columns ``<m>``, ``<m> lo``, ``<m> hi``),
    plus ``n_targets``. ``ValueError`` for an empty frame or a level outside (0, 1)."""
    if per_target.empty:
        raise ValueError("per_target has no rows")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    metrics = metrics or metric_columns(per_target)
    q = [(1 - level) / 2 * 100, (1 + level) / 2 * 100]
    rows = []
    for predictor, grp in per_target.groupby("predictor", sort=False):
        grp = grp.sort_values("target")
        idx = _draws(len(grp), n_boot, seed)
        row: dict = {"predictor": predictor}
        for m in metrics:
            v = grp[m].to_numpy(float)
            row[m] = float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")
            boots = _nanmean_rows(v[idx])
            boots = boots[np.isfinite(boots)]
            lo, hi = np.percentile(boots, q) if boots.size else (np.nan, np.nan)
            row[f"{m} lo"], row[f"{m} hi"] = float(lo), float(hi)
        row["n_targets"] = len(grp)
        rows.append(row)
    return pd.DataFrame(rows)


def paired_difference(
    per_target: pd.DataFrame,
    predictor: str,
    baseline: str,
    metric: str,
    *,
    n_boot: int = N_BOOT,
    level: float = LEVEL,
    seed: int = 0,
) -> dict:
    """Mean over shared targets of ``metric(predictor) - metric(baseline)`` with its paired
    bootstrap interval: ``{"diff", "lo", "hi", "n_targets", "verdict"}``; verdict is
    ``better`` / ``worse`` only when the interval excludes 0 (``rank_of_best`` and ``regret@k``
    are lower-is-better), ``no difference shown`` otherwise, ``undefined`` (NaN values) when
    the metric is NaN on every shared target (constant scores)."""
    a = per_target[per_target["predictor"] == predictor].set_index("target")[metric]
    b = per_target[per_target["predictor"] == baseline].set_index("target")[metric]
    shared = sorted(set(a.index) & set(b.index))
    if not shared:
        raise ValueError(f"{predictor!r} and {baseline!r} share no target")
    d = (a.loc[shared] - b.loc[shared]).to_numpy(float)
    boots = _nanmean_rows(d[_draws(len(d), n_boot, seed)])
    boots = boots[np.isfinite(boots)]
    if not boots.size:  # the metric is undefined on every shared target
        nan = float("nan")
        return {"diff": nan, "lo": nan, "hi": nan, "n_targets": len(shared), "verdict": "undefined"}
    lo, hi = np.percentile(boots, [(1 - level) / 2 * 100, (1 + level) / 2 * 100])
    lower_better = metric == "rank_of_best" or metric.startswith("regret")
    if lo > 0 or hi < 0:
        up = lo > 0
        verdict = "better" if up != lower_better else "worse"
    else:
        verdict = "no difference shown"
    return {
        "diff": float(np.nanmean(d)),
        "lo": float(lo),
        "hi": float(hi),
        "n_targets": len(shared),
        "verdict": verdict,
    }


def format_intervals(summary: pd.DataFrame, metrics: list[str], digits: int = 3) -> pd.DataFrame:
    """``summary`` of :func:`bootstrap_summary` as text cells ``mean [lo, hi]`` per metric
    (headers marked ``↓`` for lower-is-better), plus ``n_targets``."""
    out = {"predictor": summary["predictor"].tolist()}
    for m in metrics:
        lower = m == "rank_of_best" or m.startswith("regret")
        out[m + (" ↓" if lower else "")] = [
            f"{r[m]:.{digits}f} [{r[m + ' lo']:.{digits}f}, {r[m + ' hi']:.{digits}f}]"
            for _, r in summary.iterrows()
        ]
    out["n_targets"] = summary["n_targets"].tolist()
    return pd.DataFrame(out)
