"""Ranking a target's sources with any predictor, tuning the target first where it is new.

:func:`prepare_target` finds (or tunes) the runs of the target that a predictor reads, after
checking that the pool has sources to rank, so no tuning is wasted; :func:`rank_sources` scores
and sorts; :func:`predict_scores` gives the long-form scores of several targets and predictors
(the exchange format of ``taskscout evaluate``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from taskscout.data import TaskData
from taskscout.embeddings.similarity import IncompatibleEmbeddingError
from taskscout.predictors.base import Pool, Predictor
from taskscout.predictors.registry import PREDICTORS, get_predictor
from taskscout.store import RunRecord, RunStore
from taskscout.tuning.config import TuneConfig
from taskscout.tuning.run import tune_into_store
from taskscout.util import make_progress

#: Keyword options of a task loaded from a file (``taskscout.data.load_task``).
TASK_OPTIONS: tuple[str, ...] = (
    "type",
    "name",
    "text_col",
    "text_pair_col",
    "label_col",
    "tokens_col",
    "tags_col",
    "choices_col",
    "dev_file",
    "metric",
    "positive_label",
)


def split_options(options: dict) -> tuple[dict, dict]:
    """(task options, tuning options) of keyword ``options`` (None values dropped): the task
    options of :data:`TASK_OPTIONS` and the fields of :class:`TuneConfig`; TypeError naming
    any other."""
    options = {k: v for k, v in options.items() if v is not None}
    tuning = set(TuneConfig.option_names())
    unknown = set(options) - set(TASK_OPTIONS) - tuning
    if unknown:
        raise TypeError(f"unknown option(s) {sorted(unknown)}")
    return (
        {k: v for k, v in options.items() if k in TASK_OPTIONS},
        {k: v for k, v in options.items() if k in tuning},
    )


@dataclass
class Target:
    """A target ready to rank: its task name, its runs by method, its data if it was loaded."""

    name: str
    runs: dict[str, RunRecord]
    data: TaskData | None = None


def is_data_path(target: str | os.PathLike) -> bool:
    """True when ``target`` names a data file or folder (not a task name or ``hf:`` id)."""
    text = str(target)
    return not text.startswith("hf:") and Path(text).expanduser().exists()


def prepare_target(
    db: RunStore,
    target: str | os.PathLike,
    predictor: Predictor,
    config: TuneConfig,
    *,
    backbone_id: str,
    seed: int = 0,
    task_options: dict | None = None,
    allow_tune: bool = True,
    device: str | None = None,
    threads: int | None = None,
    progress: bool = True,
) -> Target:
    """The target's runs of every method ``predictor.reads`` needs, tuning the missing ones with
    ``config`` (``config.method`` is ignored: each needed method is tuned) and ``seed``.

    A stored task name with runs of every needed method is used as it is (the latest runs);
    a data file or folder, ``hf:`` id, or explicit ``task_options`` load the data and tune (a
    no-op where that exact run is stored). Checked before any tuning: the file's task type is
    given, tuning is allowed, and the pool has at least one source besides the target.
    """
    task_options = {k: v for k, v in (task_options or {}).items() if v is not None}
    unknown = set(task_options) - set(TASK_OPTIONS)
    if unknown:
        raise TypeError(f"unknown task option(s) {sorted(unknown)}")
    text = str(target)
    if is_data_path(target) and "type" not in task_options:
        raise ValueError(
            f"target {text!r} is a data file or folder: give its task type (--type / type=: "
            "classification, pair_classification, regression, token_classification, "
            "multiple_choice) and its columns (--text-col, --label-col, ...) so it can be "
            "tuned before ranking"
        )
    methods = predictor.reads.target_methods(db.methods(backbone=backbone_id))
    pool_tasks = set(db.task_names(backbone=backbone_id))
    name_guess = task_options.get("name") or (Path(text).stem if is_data_path(target) else text)
    if not pool_tasks - {name_guess}:
        elsewhere: dict[str, set[str]] = {}
        for run in db.find_runs():
            if run.task != name_guess:
                elsewhere.setdefault(run.task, set()).add(run.backbone)
        if elsewhere:  # comparing across backbones is an error, not a silent omission
            raise IncompatibleEmbeddingError(
                f"cannot compare tasks of different backbones: the target uses {backbone_id!r}, "
                f"but the pool's sources have runs only on other backbones "
                f"{ {t: sorted(b) for t, b in sorted(elsewhere.items())} }; tune them with "
                "this backbone"
            )
        raise ValueError(
            f"the pool {db.root} holds no source task besides {name_guess!r} for backbone "
            f"{backbone_id!r}: build a pool first (`taskscout tune TASK --store {db.root}` "
            "for each source)"
        )
    runs: dict[str, RunRecord] = {}
    simple = not is_data_path(target) and not text.startswith("hf:") and not task_options
    if simple:
        for m in methods:
            run = db.latest_run(text, method=m, backbone=backbone_id)
            if run is not None:
                runs[m] = run
        if len(runs) == len(methods):
            return Target(text, runs)
    todo = [m for m in methods if m not in runs]
    if not allow_tune and todo:
        raise ValueError(
            f"target {text!r} has no {'/'.join(todo)} run in store {db.root} for backbone "
            f"{backbone_id!r}; run `taskscout tune {text} --method {todo[0]}` first "
            "(or let rank tune it)"
        )
    data = config.load(target, seed, **task_options)
    for m in todo:
        runs[m] = tune_into_store(
            data,
            config.replace(
                method=m, method_options=config.method_options if m == config.method else {}
            ),
            db,
            seed=seed,
            device=device,
            threads=threads,
            progress=progress,
        )
    return Target(data.spec.name, runs, data)


def score_table(db: RunStore, names: list[str], scores: list[float]) -> pd.DataFrame:
    """The ranking table: ``source, score, rank, num_train, family`` sorted by descending
    score (stable for ties), rank 1 = predicted most helpful."""
    tasks = db.task_summaries()
    table = (
        pd.DataFrame(
            {
                "source": names,
                "score": scores,
                "num_train": [tasks.get(s, {}).get("num_train") for s in names],
                "family": [tasks.get(s, {}).get("family") for s in names],
            }
        )
        .sort_values("score", ascending=False, kind="stable")
        .reset_index(drop=True)
    )
    table.insert(2, "rank", range(1, len(table) + 1))
    return table


def rank_sources(
    predictor: Predictor, pool: Pool, target: str, sources: list[str] | None = None
) -> pd.DataFrame:
    """Score ``sources`` (default: every other task with a run on the pool's backbone) for
    ``target`` and return :func:`score_table`; a learned scorer's per-source standard
    deviation becomes a ``std`` column; a predictor with an interval (the ``gain-model``) adds
    ``low``, ``high`` (its bounds, in the score's units) and ``likely_harmful`` (the whole
    interval below zero) after ``score``. ``table.attrs`` keeps the predictor's ``info``
    (e.g. ``features_used``, ``missing``)."""
    every = pool.store.task_names(backbone=pool.backbone)
    names = [s for s in (sources or every) if s != target]
    if not names:
        raise ValueError("the pool holds no source task besides the target")
    scored = predictor.score(target, names, pool)
    table = score_table(pool.store, names, [float(scored[s]) for s in names])
    info = getattr(scored, "info", {})
    if "std" in info:
        table.insert(2, "std", table["source"].map(info["std"]))
    if "low" in info and "high" in info:
        table.insert(2, "low", table["source"].map(info["low"]))
        table.insert(3, "high", table["source"].map(info["high"]))
        harmful = info.get("likely_harmful") or {}
        table.insert(4, "likely_harmful", table["source"].map(lambda s: bool(harmful.get(s))))
    table.attrs = {k: v for k, v in info.items() if k in ("features_used", "missing", "units")}
    return table


def predict_scores(
    pool: Pool,
    targets: list[str],
    predictors: list[str] | None = None,
    *,
    sources: list[str] | None = None,
    predictor_options: dict[str, dict] | None = None,
) -> tuple[pd.DataFrame, dict[str, str]]:
    """Long-form ``target, source, predictor, score`` for several targets and predictors.

    ``predictors`` None: every registered predictor, skipping those the pool cannot serve
    (second return value: name -> reason); named predictors that fail raise. A progress bar
    (with ETA) on stderr when ``pool.progress``."""
    every = pool.store.task_names(backbone=pool.backbone)
    unknown = [t for t in targets if t not in every]
    if unknown:
        raise ValueError(
            f"target(s) {unknown} have no run in store {pool.store.root} for backbone "
            f"{pool.backbone!r}; tasks there: {every}"
        )
    explicit = predictors is not None
    names = list(predictors) if explicit else sorted(PREDICTORS)
    rows, skipped = [], {}
    with make_progress(pool.progress, extra=False) as bar:
        job = bar.add_task("predictor x target", total=len(names) * len(targets))
        for name in names:
            try:
                scorer = get_predictor(name, **(predictor_options or {}).get(name, {}))
                for target in targets:
                    bar.update(job, description=f"{name} -> {target}")
                    cands = [s for s in (sources or every) if s != target]
                    scored = scorer.score(target, cands, pool)
                    rows += [(target, s, name, float(scored[s])) for s in cands]
                    bar.update(job, advance=1)
            except Exception as exc:  # noqa: BLE001 - reported, never silent
                if explicit:
                    raise
                rows = [r for r in rows if r[2] != name]
                skipped[name] = f"{type(exc).__name__}: {exc}"
    frame = pd.DataFrame(rows, columns=["target", "source", "predictor", "score"])
    return frame, skipped
