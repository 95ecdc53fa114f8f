"""What every study shares: the pool copy, the gold, the baselines, evaluation with intervals.

Baselines beside every row: ``random`` (the exact expectation over uniformly random rankings,
from :func:`~taskscout.evaluation.longform.evaluate_long`), ``datasize`` (number of training
examples of the source) and ``source-prior`` (a source's mean gain over the gold's other
targets, computed per held-out target without any pair that involves it:
:func:`taskscout.affinity.protocols.source_prior_scores`). Intervals: 90 % bootstrap over
targets (:mod:`taskscout.report.intervals`).
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from taskscout.affinity.protocols import similarity_scores, source_prior_scores, task_families
from taskscout.evaluation.external import load_taskweb_gold
from taskscout.evaluation.files import read_gold_csv
from taskscout.evaluation.longform import evaluate_long
from taskscout.predictors import Pool
from taskscout.report import Report
from taskscout.report.figures import interval_bars
from taskscout.report.intervals import bootstrap_summary, format_intervals
from taskscout.store import RunStore
from taskscout.tuning.config import TuneConfig

RANDOM = "random"
BASELINES = ("datasize", "source-prior")
BASELINE_ROWS = frozenset({RANDOM, *BASELINES})
SCORE_COLUMNS = ["target", "source", "predictor", "score"]


@dataclass
class StudyInputs:
    """A study's inputs: ``store`` (a run store folder; only a temporary copy is written),
    ``gold`` (long-form ``target, source, gain[, performance]``) and its description,
    ``backbone`` (None = default), ``data_dir`` (catalog tasks, for tuning and datasize),
    ``progress`` (rich bars on stderr), ``seed``, and where re-tunes train: ``device``
    (None: cpu or $TASKSCOUT_DEVICE) and ``threads`` (torch threads; None: all cores)."""

    store: Path
    gold: pd.DataFrame
    gold_description: str
    backbone: str | None = None
    data_dir: Path | None = None
    progress: bool = True
    seed: int = 0
    command: str | None = None
    device: str | None = None
    threads: int | None = None


@dataclass
class Study:
    """A finished study: named tables (bootstrap summaries) and the report showing them."""

    name: str
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    report: Report | None = None


@contextlib.contextmanager
def store_copy(store: str | Path) -> Iterator[Path]:
    """A temporary copy of the run store folder ``store`` (removed afterwards), so that
    embeddings or runs a study computes never touch the original. ``FileNotFoundError`` when
    ``store`` holds no ``store.sqlite``."""
    src = Path(store)
    if not (src / "store.sqlite").is_file():
        raise FileNotFoundError(f"{src} is not a run store (no store.sqlite)")
    with tempfile.TemporaryDirectory(prefix="taskscout-study-") as tmp:
        dst = Path(tmp) / "pool"
        shutil.copytree(src, dst, ignore=shutil.ignore_patterns("*.sqlite-shm"))
        yield dst


def open_study_pool(
    store: str | Path, backbone: str | None, checkpoint: str, data_dir: str | Path | None = None
) -> Pool:
    """A :class:`Pool` over ``store`` (opened, never created) at ``checkpoint``."""
    return Pool.open(
        RunStore(store, create=False), backbone, checkpoint=checkpoint, data_dir=data_dir
    )


RECIPE_KEYS = (
    "epochs",
    "batch_size",
    "eval_batch_size",
    "lr",
    "max_len",
    "weight_decay",
    "warmup_ratio",
    "max_grad_norm",
    "bf16",
    "min_steps",
)


def same_recipe(
    pool: Pool, task: str, method: str, *, max_train: int, data_dir: str | Path | None
) -> TuneConfig:
    """The tuning config of the pool's run of (``task``, ``method``) with ``max_train``
    examples instead (same method options and training settings, so the embeddings stay
    comparable): its ``train`` settings round-trip, i.e. ``same_recipe(...).resolved(d)
    .train_dict(seed)`` equals the run's on every device ``d``, precision (bf16 or not) and
    step budget included; ``ValueError`` when the pool has no such run."""
    run = pool.run(task, method)
    if run is None:
        raise ValueError(f"the pool has no {method} run of {task!r} to copy the recipe of")
    train = run.config.get("train") or {}
    recipe = {k: train[k] for k in RECIPE_KEYS if train.get(k) is not None}
    if isinstance(train.get("early_epochs"), int):  # with a step budget: "2/3 of the epochs"
        recipe["early_epochs"] = train["early_epochs"]
    return TuneConfig(
        method=method,
        backbone=pool.backbone_location() or run.backbone,
        data_dir=str(data_dir) if data_dir else None,
        max_train=max_train,
        method_options=dict(run.config.get("method_config") or {}),
        **recipe,
    )


def load_gold(
    *,
    gold_csv: str | Path | None,
    taskweb_pairs: str | Path | None,
    setting: str,
    tasks: list[str],
) -> tuple[pd.DataFrame, str]:
    """The gold restricted to pairs among ``tasks``: our long-form/wide CSV or TaskWeb's
    ``pairs.csv`` at ``setting`` (gain = 100 x avg_pct_change); and its description.
    ``ValueError`` when both or neither are given, or no pair is left."""
    if (gold_csv is None) == (taskweb_pairs is None):
        raise ValueError("give exactly one gold: a gold CSV or TaskWeb's pairs.csv")
    if gold_csv is not None:
        gold = read_gold_csv(gold_csv)
        desc = str(gold_csv)
    else:
        gold = load_taskweb_gold(taskweb_pairs, setting)
        desc = f"TaskWeb {setting} (gain = 100 x avg_pct_change)"
    keep = gold["target"].isin(tasks) & gold["source"].isin(tasks)
    gold = gold[keep].reset_index(drop=True)
    if gold.empty:
        raise ValueError(f"the gold has no (target, source) pair among the pool's tasks {tasks}")
    return gold, desc


def baseline_scores(
    pool: Pool,
    gold: pd.DataFrame,
    *,
    protocol: str = "leave-one-target-out",
    families: dict | None = None,
) -> tuple[pd.DataFrame, dict[str, str]]:
    """Long-form scores of ``datasize`` and ``source-prior`` (under ``protocol``) on the gold
    pairs, and the reasons of any baseline the pool could not serve."""
    size, skipped = similarity_scores(pool, gold, ["datasize"])
    prior = source_prior_scores(gold, protocol=protocol, families=families)
    return pd.concat([size, prior[SCORE_COLUMNS]], ignore_index=True), skipped


def families_of(pool: Pool, tasks: list[str]) -> dict[str, str]:
    """task -> family from the pool's stored specs, then the catalog."""
    return task_families(pool, tasks, pool.data_dir)


def evaluate(gold: pd.DataFrame, scores: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, list]:
    """``evaluate_long`` (random row ``random``) on the scored gold pairs, then the bootstrap
    summary; returns (per_target, summary with intervals, warnings as text)."""
    keys = ["target", "source"]
    scores = scores[SCORE_COLUMNS]
    pairs = scores[keys].drop_duplicates()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        per_target, _ = evaluate_long(gold.merge(pairs, on=keys), scores, random_label=RANDOM)
    return per_target, bootstrap_summary(per_target), [str(w.message) for w in caught]


def show(
    rep: Report, summary: pd.DataFrame, *, fig_id: str, title: str, metric: str = "spearman"
) -> None:
    """A summary as a table (every metric, ``mean [lo, hi]``) and one interval-bar figure."""
    metrics = [c for c in summary.columns if c in METRIC_ORDER]
    rep.table(format_intervals(summary, metrics), baseline_rows=BASELINE_ROWS)
    rep.figure(
        fig_id,
        interval_bars(summary, metric=metric, title=title, baselines=BASELINE_ROWS, salt=fig_id),
        f"{title}: mean {metric} over targets with its 90 % bootstrap interval; grey = baselines.",
    )


METRIC_ORDER = (
    "rank_of_best",
    "ndcg_rank",
    "ndcg_perf",
    "spearman",
    "pearson",
    "regret@1",
    "regret@3",
    "gain@1",
    "gain@3",
)
