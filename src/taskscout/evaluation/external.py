"""External ground truth: TaskWeb's published pairwise transfer results (Kim et al., EMNLP 2023).

TaskWeb (github.com/danieljkim0118/TaskWeb) measured intermediate-task transfer between 22 NLP
tasks in 7 settings (full fine-tuning of T5 small/base/large, GPT-2 medium and RoBERTa, Pfeiffer
adapters and BitFit on T5-base), 8 seeds each. ``/work/shared/benchmarks/taskweb`` holds it
flattened to CSV (see that folder's README):

* ``pairs.csv``: ``target, source, setting, avg_pct_change, prop_positive, combined_score``;
* ``released_predictor_scores.csv``: ``target, source, predictor, score``.

This module turns them into the long-form frames of :mod:`taskscout.evaluation.longform`
(:func:`load_taskweb_gold`, :func:`load_taskweb_predictors`), with TaskWeb's task names mapped
to ours (:data:`TASKWEB_TO_OURS`), and re-implements TaskWeb's own NDCG
(:func:`taskweb_ndcg`) independently of :func:`~taskscout.evaluation.metrics.ndcg_rank`, so
that the two can be checked against each other.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

__all__ = [
    "OURS_TO_TASKWEB",
    "TASKWEB_GAIN_COLUMNS",
    "TASKWEB_OVERLAP",
    "TASKWEB_PAIR_COLUMNS",
    "TASKWEB_TO_OURS",
    "load_taskweb_gold",
    "load_taskweb_predictors",
    "taskweb_ndcg",
    "to_our_name",
    "to_taskweb_name",
]

TASKWEB_TO_OURS: dict[str, str] = {"cosmosqa": "cosmos_qa"}
"""TaskWeb task name -> our task name, where they differ (identity for every other name)."""

OURS_TO_TASKWEB: dict[str, str] = {ours: tw for tw, ours in TASKWEB_TO_OURS.items()}

TASKWEB_OVERLAP: tuple[str, ...] = (
    "boolq",
    "cb",
    "copa",
    "cosmos_qa",
    "imdb",
    "mrpc",
    "qnli",
    "rotten_tomatoes",
    "rte",
    "snli",
    "stsb",
    "wic",
)
"""The 12 TaskWeb tasks (our names) that also have data in ``../shared/data``."""

TASKWEB_PAIR_COLUMNS = ("target", "source", "setting", "avg_pct_change")
TASKWEB_GAIN_COLUMNS = ("avg_pct_change", "combined_score")
_PREDICTOR_COLUMNS = ("target", "source", "predictor", "score")


def to_our_name(name: str) -> str:
    """TaskWeb task name -> ours (``cosmosqa`` -> ``cosmos_qa``; identity otherwise)."""
    return TASKWEB_TO_OURS.get(name, name)


def to_taskweb_name(name: str) -> str:
    """Our task name -> TaskWeb's (inverse of :func:`to_our_name`)."""
    return OURS_TO_TASKWEB.get(name, name)


# --------------------------------------------------------------------------------------------
# loaders
# --------------------------------------------------------------------------------------------
def _read_csv(path: Path, required: Sequence[str], what: str) -> pd.DataFrame:
    if not path.is_file():
        raise FileNotFoundError(f"{what} file not found: {path}")
    try:
        df = pd.read_csv(path, dtype={"target": str, "source": str}, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: malformed CSV ({exc})") from exc
    df.columns = [str(c).strip() for c in df.columns]
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ValueError(
            f"{path}: missing column(s) {missing} for a TaskWeb {what} file; "
            f"expected {list(required)}, got {list(df.columns)}"
        )
    for col in ("target", "source"):
        df[col] = df[col].astype(str).str.strip().map(to_our_name)
    return df


def parse_tasks(tasks: Iterable[str] | str | None) -> list[str] | None:
    if tasks is None:
        return None
    if isinstance(tasks, str):
        tasks = tasks.split(",")
    out = [to_our_name(t.strip()) for t in tasks if t.strip()]
    if not out:
        raise ValueError("tasks is empty: give at least one task name or None for all tasks")
    return list(dict.fromkeys(out))


def _restrict(df: pd.DataFrame, tasks: list[str] | None, path: Path) -> pd.DataFrame:
    """Keep rows whose target and source are both in ``tasks``; unknown task names raise."""
    if tasks is None:
        return df
    known = set(df["target"]) | set(df["source"])
    unknown = [t for t in tasks if t not in known]
    if unknown:
        raise ValueError(
            f"{path}: task(s) {unknown} not in this TaskWeb file; it has {sorted(known)}"
        )
    keep = set(tasks)
    return df[df["target"].isin(keep) & df["source"].isin(keep)]


def _finite(df: pd.DataFrame, col: str, path: Path) -> pd.Series:
    values = pd.to_numeric(df[col], errors="coerce").astype(float)
    bad = ~np.isfinite(values.to_numpy())
    if bad.any():
        row = df[bad].iloc[0]
        raise ValueError(
            f"{path}: column {col!r} must hold finite numbers; bad value {row[col]!r} "
            f"for target={row['target']!r}, source={row['source']!r}"
        )
    return values


def load_taskweb_gold(
    path,
    setting: str = "ALL(avg)",
    tasks: Iterable[str] | str | None = None,
    gain_column: Literal["avg_pct_change", "combined_score"] = "avg_pct_change",
) -> pd.DataFrame:
    """TaskWeb's pairwise transfer results as a gold frame ``target, source, gain, performance``.

    Parameters
    ----------
    path
        TaskWeb's ``pairs.csv`` (columns ``target, source, setting, avg_pct_change`` and, for
        ``gain_column="combined_score"``, ``combined_score``).
    setting
        One of the file's settings: ``ALL(avg)`` (the average over the 7 settings, default),
        ``finetune:{t5s,t5b,t5l,gpt2m,roberta}``, ``pfeiffer:t5b``, ``bitfit:t5b``.
        ``ValueError`` listing the available ones otherwise.
    tasks
        Optional task names (ours or TaskWeb's; a list or a comma-separated string): keep only
        pairs whose target **and** source are among them. Names the file does not hold raise.
    gain_column
        What ``gain`` is made of: ``avg_pct_change`` (default) or TaskWeb's own gold score
        ``combined_score`` (0.5 * change + 0.5 * (0.2 * prop_positive - 0.1)).

    Returns
    -------
    DataFrame ``target, source, gain, performance`` (plus nothing else), in file order:

    * ``gain = 100 * avg_pct_change`` -- the relative change of the target metric after
      intermediate training on the source, in percent (0.05 -> 5.0);
      ``100 * combined_score`` with ``gain_column="combined_score"``.
    * ``performance = 100 * (1 + avg_pct_change)`` -- the target score after transfer
      relative to no transfer, in percent of the no-transfer score. TaskWeb does not release
      the no-transfer baselines, so absolute scores are unknown; DESIGN.md section 5 takes
      M(s) = 1 + change(s). We scale it by 100 (points, like every other performance in
      taskscout) because ``ndcg_perf`` uses gain 2**M - 1: with M = 1 + change in [0.6, 1.5]
      all gains are nearly equal and ``ndcg_perf`` comes out at ~0.98-0.99 for every
      predictor, random included, i.e. it cannot tell predictors apart. ``regret@k`` is a
      ratio and does not change with the scaling.

    Task names are mapped to ours (``cosmosqa`` -> ``cosmos_qa``, :data:`TASKWEB_TO_OURS`).
    Rows with target == source are dropped (TaskWeb has none, hand-made files may).
    ``FileNotFoundError`` for a missing file; ``ValueError`` naming the file for missing
    columns, non-numeric values or duplicate (target, source) rows within the setting.
    """
    path = Path(path)
    if gain_column not in TASKWEB_GAIN_COLUMNS:
        raise ValueError(
            f"gain_column must be one of {list(TASKWEB_GAIN_COLUMNS)}, got {gain_column!r}"
        )
    required = list(TASKWEB_PAIR_COLUMNS)
    if gain_column != "avg_pct_change":
        required.append(gain_column)
    df = _read_csv(path, required, "pairs")
    df["setting"] = df["setting"].astype(str).str.strip()
    available = list(dict.fromkeys(df["setting"]))
    if setting not in available:
        raise ValueError(f"{path}: unknown setting {setting!r}; available: {available}")
    df = df[df["setting"] == setting]
    df = _restrict(df, parse_tasks(tasks), path)
    df = df[df["target"] != df["source"]]
    dup = df.duplicated(["target", "source"], keep=False)
    if dup.any():
        first = df[dup].iloc[0]
        raise ValueError(
            f"{path}: duplicate rows for setting {setting!r}, "
            f"target={first['target']!r}, source={first['source']!r}"
        )
    change = _finite(df, "avg_pct_change", path)
    gain = change if gain_column == "avg_pct_change" else _finite(df, gain_column, path)
    out = pd.DataFrame(
        {
            "target": df["target"].to_numpy(),
            "source": df["source"].to_numpy(),
            "gain": 100.0 * gain.to_numpy(),
            "performance": 100.0 * (1.0 + change.to_numpy()),
        }
    )
    if out.empty:
        raise ValueError(f"{path}: no (target, source) pair left for setting {setting!r}")
    return out


def load_taskweb_predictors(
    path,
    tasks: Iterable[str] | str | None = None,
    predictors: Iterable[str] | None = None,
) -> pd.DataFrame:
    """TaskWeb's released source-ranking scores as ``target, source, predictor, score``.

    ``path`` is ``released_predictor_scores.csv`` (columns ``target, source, predictor,
    score``; higher = predicted more helpful). Task names are mapped to ours, ``tasks``
    restricts to pairs whose target and source are both listed (as in
    :func:`load_taskweb_gold`), ``predictors`` keeps only the named predictors (unknown names
    raise, listing the available ones), rows with target == source are dropped. Note that the
    release covers a few tasks TaskWeb's gold does not have as targets (``story_cloze``,
    ``squad_v2``): restrict to the gold pairs before :func:`evaluate_long`.
    """
    path = Path(path)
    df = _read_csv(path, _PREDICTOR_COLUMNS, "predictor scores")
    df["predictor"] = df["predictor"].astype(str).str.strip()
    if predictors is not None:
        wanted = list(dict.fromkeys(predictors))
        available = list(dict.fromkeys(df["predictor"]))
        unknown = [p for p in wanted if p not in available]
        if unknown:
            raise ValueError(f"{path}: unknown predictor(s) {unknown}; available: {available}")
        df = df[df["predictor"].isin(set(wanted))]
    df = _restrict(df, parse_tasks(tasks), path)
    df = df[df["target"] != df["source"]]
    dup = df.duplicated(["target", "source", "predictor"], keep=False)
    if dup.any():
        first = df[dup].iloc[0]
        raise ValueError(
            f"{path}: duplicate rows for predictor={first['predictor']!r}, "
            f"target={first['target']!r}, source={first['source']!r}"
        )
    out = df[list(_PREDICTOR_COLUMNS)].copy()
    out["score"] = _finite(df, "score", path).to_numpy()
    return out.reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# TaskWeb's NDCG, transcribed from its definition
# --------------------------------------------------------------------------------------------
def taskweb_ndcg(
    scores,
    gold_scores,
    *,
    gold_ties: Literal["shared", "input_order"] = "shared",
    score_ties: Literal["expected", "input_order"] = "expected",
) -> float:
    """TaskWeb's NDCG of a predicted source ranking for one target.

    Written from TaskWeb's definition (``taskshop/metrics.py`` of the TaskWeb repository and
    the benchmarks README) with plain Python sorting, independently of
    :func:`taskscout.evaluation.metrics.ndcg_rank`, as a cross-check:

    1. gold ranking = the sources sorted by ``gold_scores``, descending;
    2. the source at gold rank r (0-based) among N sources has relevance N - r and gain
       2**(N - r) - 1;
    3. predicted ranking = the sources sorted by ``scores``, descending;
       DCG = sum over predicted positions i (0-based) of gain / log2(i + 2);
    4. NDCG = DCG / DCG of the gold ranking.

    Ties, which TaskWeb's code leaves to Python's stable sort (input order):

    * ``gold_ties="shared"`` (default): sources with equal gold scores share the rank of the
      first of them (ranks 0, 1, 1, 3), so their order does not matter -- the convention of
      ``ndcg_rank``; ``"input_order"``: consecutive ranks in input order, literally as
      TaskWeb's code does.
    * ``score_ties="expected"`` (default): the exact expectation over uniformly random orders
      of each group of equal scores (every position of the group gets the group's mean
      gain); ``"input_order"``: input order, literally as TaskWeb's code.

    With no ties both options give TaskWeb's value exactly. Inputs: equal-length 1-D
    sequences of finite numbers, at least one source.
    """
    if np.ndim(scores) != 1 or np.ndim(gold_scores) != 1:
        raise ValueError("scores and gold_scores must be 1-D")
    s = [float(x) for x in np.asarray(scores, dtype=float)]
    g = [float(x) for x in np.asarray(gold_scores, dtype=float)]
    if len(s) != len(g) or not s:
        raise ValueError(
            f"scores and gold_scores must be non-empty and of equal length, "
            f"got {len(s)} and {len(g)}"
        )
    if not all(math.isfinite(x) for x in s + g):
        raise ValueError("scores and gold_scores must be finite")
    if gold_ties not in ("shared", "input_order"):
        raise ValueError(f"gold_ties must be 'shared' or 'input_order', got {gold_ties!r}")
    if score_ties not in ("expected", "input_order"):
        raise ValueError(f"score_ties must be 'expected' or 'input_order', got {score_ties!r}")
    n = len(s)

    gold_order = sorted(range(n), key=lambda i: g[i], reverse=True)
    rank = [0] * n
    for pos, i in enumerate(gold_order):
        prev = gold_order[pos - 1] if pos else None
        if gold_ties == "shared" and prev is not None and g[i] == g[prev]:
            rank[i] = rank[prev]
        else:
            rank[i] = pos
    gain = [float(2 ** (n - rank[i]) - 1) for i in range(n)]

    pred_order = sorted(range(n), key=lambda i: s[i], reverse=True)
    position_gain = [gain[i] for i in pred_order]
    if score_ties == "expected":
        start = 0
        while start < n:
            end = start
            while end + 1 < n and s[pred_order[end + 1]] == s[pred_order[start]]:
                end += 1
            mean = sum(position_gain[start : end + 1]) / (end + 1 - start)
            for pos in range(start, end + 1):
                position_gain[pos] = mean
            start = end + 1

    def dcg(gains: list[float]) -> float:
        return sum(x / math.log2(pos + 2) for pos, x in enumerate(gains))

    ideal = dcg([gain[i] for i in gold_order])
    return dcg(position_gain) / ideal
