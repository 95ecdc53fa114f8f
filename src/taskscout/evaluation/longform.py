"""Every predictor on every target, from long-form gold and score tables (DESIGN.md section 5).

:func:`evaluate_long` checks the two frames, evaluates each (predictor, target) with
:func:`~taskscout.evaluation.metrics.evaluate_target`, adds the exact random-ranking baseline as
the row :data:`RANDOM_BASELINE` and averages over targets. The frames' schema is that of
:mod:`taskscout.evaluation.files` (:data:`~taskscout.evaluation.files.GOLD_COLUMNS`,
:data:`~taskscout.evaluation.files.SCORE_COLUMNS`).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from taskscout.evaluation.files import (
    GOLD_COLUMNS,
    SCORE_COLUMNS,
    EvaluationInputError,
    describe_rows,
)
from taskscout.evaluation.metrics import check_ks, evaluate_target, metric_keys, random_target

__all__ = ["RANDOM_BASELINE", "evaluate_long"]

RANDOM_BASELINE = "random (expected)"
"""Label of the row holding the exact expectation of every metric over uniformly random
rankings. Distinct from ``random``, the registered seeded-random predictor, whose scores are
evaluated like any other predictor's."""


def _require_columns(df: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    if not isinstance(df, pd.DataFrame):
        raise EvaluationInputError(f"{what} must be a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise EvaluationInputError(
            f"{what} is missing column(s) {missing}; expected {list(columns)}, "
            f"got {list(df.columns)}"
        )


def _check_no_duplicates(df: pd.DataFrame, keys: Sequence[str], what: str) -> None:
    dup = df.duplicated(list(keys), keep=False)
    if dup.any():
        raise EvaluationInputError(
            f"{what} has duplicate ({', '.join(keys)}) rows: {describe_rows(df[dup], keys)}"
        )


def _check_numeric(df: pd.DataFrame, col: str, keys: Sequence[str], what: str) -> pd.DataFrame:
    values = pd.to_numeric(df[col], errors="coerce")
    bad = ~np.isfinite(values.to_numpy(dtype=float))
    if bad.any():
        raise EvaluationInputError(
            f"{what} column {col!r} must be finite numbers; bad values at "
            f"{describe_rows(df[bad], keys)}"
        )
    df = df.copy()
    df[col] = values.astype(float)
    return df


def _drop_self_pairs(df: pd.DataFrame, what: str) -> pd.DataFrame:
    self_pair = df["target"] == df["source"]
    if self_pair.any():
        warnings.warn(
            f"dropping {int(self_pair.sum())} {what} row(s) with target == source "
            f"({describe_rows(df[self_pair], ['target'])})",
            UserWarning,
            stacklevel=3,
        )
        df = df[~self_pair]
    return df


def evaluate_long(
    gold: pd.DataFrame,
    scores: pd.DataFrame,
    ks: Iterable[int] = (1, 3),
    *,
    random_label: str = RANDOM_BASELINE,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Evaluate every predictor on every target from long-form tables.

    Parameters
    ----------
    gold
        Columns ``target, source, gain`` and optionally ``performance`` (absolute target
        score after transfer; enables ``ndcg_perf`` and ``regret@k``).
    scores
        Columns ``target, source, predictor, score`` (higher = predicted more helpful). Any
        predictor name other than ``random_label`` is allowed, ``random`` included.
    ks
        The k of ``regret@k`` and ``gain@k``.
    random_label
        Name of the random-baseline row (default :data:`RANDOM_BASELINE`,
        ``"random (expected)"``); it must not be the name of a predictor in ``scores``.

    Returns
    -------
    per_target
        One row per (predictor, target): columns ``predictor, target, n_sources`` and the
        metric keys of :func:`~taskscout.evaluation.metrics.evaluate_target`. The last
        predictor is ``random_label``: the exact random-ranking expectations
        (:func:`~taskscout.evaluation.metrics.random_target`).
    summary
        Index ``predictor`` (same order: predictors in order of first appearance in
        ``scores``, then ``random_label``): the mean of every metric over targets, skipping
        NaN (only spearman/pearson can be NaN: constant scores or gains), plus ``n_targets``
        (targets evaluated) and ``n_nan`` (targets where some metric, i.e. the correlations,
        was NaN and therefore left out of its mean).

    Validation (:class:`~taskscout.evaluation.files.EvaluationInputError`, a ``ValueError``,
    with the offending rows): missing columns; no rows (or only target == source rows);
    duplicate (target, source) in ``gold`` or (target, source, predictor) in ``scores``;
    non-finite gain/performance/score; a predictor named ``random_label``; a target in
    ``scores`` absent from ``gold``; a scored (target, source) pair absent from ``gold``; a
    gold pair without a score from some predictor; a metric undefined on some target (e.g.
    performance <= 0). Rows with target == source are dropped from both tables and targets
    left with fewer than 2 sources are skipped, each with a ``UserWarning``.
    """
    ks = check_ks(ks)
    if not isinstance(random_label, str) or not random_label:
        raise ValueError(f"random_label must be a non-empty string, got {random_label!r}")
    _require_columns(gold, GOLD_COLUMNS, "gold")
    _require_columns(scores, SCORE_COLUMNS, "scores")
    has_perf = "performance" in gold.columns
    gold = gold[list(GOLD_COLUMNS) + (["performance"] if has_perf else [])]
    scores = scores[list(SCORE_COLUMNS)]
    if scores.empty:
        raise EvaluationInputError("scores has no rows")
    if gold.empty:
        raise EvaluationInputError("gold has no rows")

    gold = _drop_self_pairs(gold, "gold")
    scores = _drop_self_pairs(scores, "scores")
    for what, df in (("gold", gold), ("scores", scores)):
        if df.empty:
            raise EvaluationInputError(f"{what} has no rows with target != source")
    pair = ["target", "source"]
    _check_no_duplicates(gold, pair, "gold")
    _check_no_duplicates(scores, [*pair, "predictor"], "scores")
    gold = _check_numeric(gold, "gain", pair, "gold")
    if has_perf:
        gold = _check_numeric(gold, "performance", pair, "gold")
    scores = _check_numeric(scores, "score", [*pair, "predictor"], "scores")

    predictors = list(pd.unique(scores["predictor"]))
    if random_label in predictors:
        raise EvaluationInputError(
            f"predictor name {random_label!r} is the label of the random-baseline row; "
            "rename that predictor or pass another random_label"
        )
    gold_targets = list(pd.unique(gold["target"]))
    unknown = scores.loc[~scores["target"].isin(set(gold_targets))]
    if not unknown.empty:
        raise EvaluationInputError(
            f"scores has target(s) not in gold: {describe_rows(unknown, ['target'])}"
        )
    merged = scores.merge(gold[pair], on=pair, how="left", indicator=True)
    extra = merged[merged["_merge"] == "left_only"]
    if not extra.empty:
        raise EvaluationInputError(
            "scores has (target, source) pair(s) not in gold: "
            f"{describe_rows(extra, ['predictor', *pair])}"
        )
    expected = gold[pair].merge(pd.DataFrame({"predictor": predictors}), how="cross")
    have = expected.merge(scores, on=[*pair, "predictor"], how="left", indicator=True)
    lacking = have[have["_merge"] == "left_only"]
    if not lacking.empty:
        raise EvaluationInputError(
            "missing score(s) for gold pair(s): " + describe_rows(lacking, ["predictor", *pair])
        )

    sizes = gold.groupby("target", sort=False).size()
    small = [t for t in gold_targets if sizes[t] < 2]
    if small:
        warnings.warn(
            f"skipping {len(small)} target(s) with fewer than 2 sources: {small[:10]}",
            UserWarning,
            stacklevel=2,
        )
    targets = [t for t in gold_targets if sizes[t] >= 2]
    if not targets:
        raise EvaluationInputError("no target has 2 or more sources to evaluate")

    keep = set(targets)
    gold_by_target = {t: df for t, df in gold.groupby("target", sort=False) if t in keep}
    score_index = scores.set_index([*pair, "predictor"])["score"]
    rows: list[dict] = []
    for predictor in [*predictors, None]:  # None: the random baseline, last
        label = random_label if predictor is None else predictor
        for target in targets:
            g_t = gold_by_target[target]
            perf = g_t["performance"].to_numpy() if has_perf else None
            try:
                if predictor is None:
                    values = random_target(g_t["gain"].to_numpy(), perf, ks)
                else:
                    idx = pd.MultiIndex.from_arrays(
                        [g_t["target"], g_t["source"], [predictor] * len(g_t)]
                    )
                    s = score_index.loc[idx].to_numpy()
                    values = evaluate_target(s, g_t["gain"].to_numpy(), perf, ks)
            except ValueError as exc:
                raise EvaluationInputError(
                    f"predictor {label!r}, target {target!r}: {exc}"
                ) from exc
            rows.append({"predictor": label, "target": target, "n_sources": len(g_t), **values})
    per_target = pd.DataFrame(rows)
    metric_cols = metric_keys(has_perf, ks)
    grouped = per_target.groupby("predictor", sort=False)
    summary = grouped[metric_cols].mean()
    summary["n_targets"] = grouped.size()
    summary["n_nan"] = grouped[metric_cols].apply(lambda df: int(df.isna().any(axis=1).sum()))
    summary.index.name = "predictor"
    return per_target, summary
