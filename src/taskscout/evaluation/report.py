"""Presentation of :func:`~taskscout.evaluation.longform.evaluate_long` results: column headers
with the direction of each metric, JSON-safe records and markdown tables; and
:func:`evaluate_files`, gold and score files to those results (the engine of
``taskscout evaluate``)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

import pandas as pd

from taskscout.evaluation.external import (
    load_taskweb_gold,
    load_taskweb_predictors,
    parse_tasks,
)
from taskscout.evaluation.files import read_gold_csv, read_scores_csv
from taskscout.evaluation.longform import RANDOM_BASELINE, evaluate_long
from taskscout.evaluation.metrics import higher_is_better, parse_metric_key

__all__ = [
    "LOWER_MARK",
    "FileEvaluation",
    "evaluate_files",
    "parse_ks",
    "is_metric",
    "metric_header",
    "per_target_records",
    "summary_markdown",
    "summary_records",
    "summary_table",
]

LOWER_MARK = "↓"
"""Appended to the header of metrics where lower is better (rank_of_best, regret@k)."""


def is_metric(column: str) -> bool:
    """Whether a column of an ``evaluate_long`` table is a metric key (vs. a count)."""
    try:
        parse_metric_key(column)
    except ValueError:
        return False
    return True


def metric_header(column: str) -> str:
    """``"rank_of_best"`` -> ``"rank_of_best ↓"``; higher-is-better metrics and other columns
    unchanged."""
    if is_metric(column) and not higher_is_better(column):
        return f"{column} {LOWER_MARK}"
    return column


def _clean(value):
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item"):  # numpy scalar
        return _clean(value.item())
    return value


def summary_records(summary: pd.DataFrame) -> dict[str, dict]:
    """``{predictor: {column: value}}`` with NaN -> None and counts as ints."""
    out: dict[str, dict] = {}
    for predictor, row in summary.iterrows():
        out[str(predictor)] = {str(col): _clean(row[col]) for col in summary.columns}
        for col in ("n_targets", "n_nan"):
            if out[str(predictor)].get(col) is not None:
                out[str(predictor)][col] = int(out[str(predictor)][col])
    return out


def per_target_records(per_target: pd.DataFrame) -> list[dict]:
    """One dict per (predictor, target) row, NaN -> None."""
    return [
        {str(col): _clean(value) for col, value in row.items()}
        for row in per_target.to_dict(orient="records")
    ]


def summary_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The summary with ``predictor`` as a column and direction-marked metric headers."""
    df = summary.reset_index()
    df.columns = [metric_header(str(c)) for c in df.columns]
    for col in ("n_targets", "n_nan"):
        if col in df.columns:
            df[col] = df[col].astype(int)
    return df


def _fmt(value, digits: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "nan"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def summary_markdown(
    summary: pd.DataFrame, digits: int = 4, bold_best: bool = True, columns: Sequence[str] = ()
) -> str:
    """A GitHub markdown table of an ``evaluate_long`` summary: one row per predictor (the
    random-baseline row included), metric columns marked ↓ where lower is better, then
    ``n_targets`` and ``n_nan``. With ``bold_best`` the best value of each metric among the
    rows other than :data:`~taskscout.evaluation.longform.RANDOM_BASELINE` is bold."""
    df = summary if not columns else summary[list(columns)]
    metrics = [c for c in df.columns if is_metric(str(c))]
    best: dict[str, float] = {}
    if bold_best:
        real = df.drop(index=[i for i in df.index if i == RANDOM_BASELINE])
        for col in metrics:
            values = real[col].dropna()
            if len(values) > 1:
                best[col] = values.min() if not higher_is_better(col) else values.max()
    headers = ["predictor", *[metric_header(str(c)) for c in df.columns]]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for predictor, row in df.iterrows():
        cells = [str(predictor)]
        for col in df.columns:
            value = row[col]
            if col in ("n_targets", "n_nan"):
                cells.append(str(int(value)))
                continue
            text = _fmt(float(value), digits)
            if col in best and value == best[col]:
                text = f"**{text}**"
            cells.append(text)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# files -> evaluation (the engine of ``taskscout evaluate``)
# --------------------------------------------------------------------------------------------
class FileEvaluation(NamedTuple):
    per_target: pd.DataFrame
    summary: pd.DataFrame
    notes: list[str]
    """Warnings raised while evaluating (skipped targets, dropped rows), as text."""
    gold_description: str


def parse_ks(ks: str | Iterable[int]) -> tuple[int, ...]:
    """``"1,3"`` -> ``(1, 3)``; ``ValueError`` unless all are integers >= 1."""
    try:
        if isinstance(ks, str):
            values = tuple(int(k) for k in ks.split(",") if k.strip())
        else:
            values = tuple(int(k) for k in ks)
    except (TypeError, ValueError):
        values = ()
    if not values or min(values) < 1:
        raise ValueError(f"ks must be comma-separated integers >= 1 (e.g. 1,3), got {ks!r}")
    return values


def evaluate_files(
    gold: str | Path | None = None,
    scores: Iterable[str | Path] | None = None,
    *,
    no_transfer_row: str = "none",
    taskweb_pairs: str | Path | None = None,
    setting: str = "ALL(avg)",
    taskweb_gain: str = "avg_pct_change",
    tasks: Iterable[str] | str | None = None,
    taskweb_predictors: str | Path | None = None,
    ks: str | Iterable[int] = (1, 3),
) -> FileEvaluation:
    """Read gold and scores from files and run :func:`evaluate_long`.

    Exactly one gold source: ``gold`` (:func:`read_gold_csv`: long form or wide matrix with a
    ``no_transfer_row``) or ``taskweb_pairs`` (:func:`load_taskweb_gold` with ``setting`` and
    ``taskweb_gain``). Scores: every file of ``scores`` (:func:`read_scores_csv`,
    concatenated; a (target, source, predictor) repeated across files is an error) plus,
    with ``taskweb_predictors``, TaskWeb's released predictors restricted to the gold pairs
    (the release covers extra tasks; how many rows were left out goes into ``notes``).
    ``tasks`` keeps only pairs whose target and source are both listed, in gold and scores.
    Warnings of :func:`evaluate_long` are caught and returned as ``notes``. User errors raise
    ``ValueError`` / ``FileNotFoundError``.
    """
    k_values = parse_ks(ks)
    if (gold is None) == (taskweb_pairs is None):
        raise ValueError("give exactly one gold source: --gold FILE or --taskweb-pairs FILE")
    task_names = parse_tasks(tasks)
    notes: list[str] = []

    def restrict(df: pd.DataFrame) -> pd.DataFrame:
        if task_names is None:
            return df
        keep = set(task_names)
        return df[df["target"].isin(keep) & df["source"].isin(keep)]

    if gold is not None:
        gold_df = restrict(read_gold_csv(gold, no_transfer_row=no_transfer_row))
        if gold_df.empty:
            raise ValueError(f"{gold}: no (target, source) pair among the tasks {task_names}")
        description = str(gold)
    else:
        gold_df = load_taskweb_gold(taskweb_pairs, setting, task_names, gain_column=taskweb_gain)
        description = f"TaskWeb {setting} ({taskweb_gain} x 100)"
    frames = [restrict(read_scores_csv(path)) for path in scores or []]
    if taskweb_predictors is not None:
        released = load_taskweb_predictors(taskweb_predictors, task_names)
        inside = released.merge(gold_df[["target", "source"]], on=["target", "source"])
        dropped = len(released) - len(inside)
        if dropped:
            notes.append(
                f"{dropped} TaskWeb predictor score(s) for pairs outside the gold were left out"
            )
        frames.append(inside)
    if not frames:
        raise ValueError("no scores: give --scores FILE (repeatable) and/or --taskweb-predictors")
    score_df = pd.concat(frames, ignore_index=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        per_target, summary = evaluate_long(gold_df, score_df, ks=k_values)
    notes += [str(w.message) for w in caught]
    return FileEvaluation(per_target, summary, notes, description)
