"""One-call Python API, a thin facade: ``tune``, ``embed``, ``rank``, ``predict``.

    import taskscout
    run = taskscout.tune("sst2", method="lora", store="runs", max_train=2000)
    emb = taskscout.embed("sst2", method="lora", checkpoint="early", store="runs")
    table = taskscout.rank("rte", pool="runs", method="lora")      # pandas DataFrame

Calls are idempotent (a stored run is not trained again); they check their arguments before
any work and wire the layers below (tuning, embeddings, predictors, affinity).
"""

from __future__ import annotations

import os

import pandas as pd

from taskscout import affinity  # noqa: F401  (registers the ``affinity`` predictor)
from taskscout.backbone import resolve_backbone
from taskscout.data import TaskData
from taskscout.embeddings.task_embedding import TaskEmbedding, embedding_of_run, stored_run
from taskscout.pools import open_pool, pool_defaults
from taskscout.predictors import Pool, get_predictor
from taskscout.predictors.ranking import (
    TASK_OPTIONS,
    is_data_path,
    predict_scores,
    prepare_target,
    rank_sources,
    split_options,
)
from taskscout.store import RunRecord, Store, closing_unless_given, open_store
from taskscout.tuning.config import CHECKPOINTS, TuneConfig, checkpoint_kind
from taskscout.tuning.methods import get_method
from taskscout.tuning.run import tune_into_store
from taskscout.util import set_torch_threads

__all__ = [
    "CHECKPOINTS",
    "TASK_OPTIONS",
    "TaskEmbedding",
    "TuneConfig",
    "checkpoint_kind",
    "embed",
    "predict",
    "rank",
    "tune",
]


def tune(
    task: str | os.PathLike | TaskData,
    *,
    store: Store = "runs",
    seed: int = 0,
    threads: int | None = None,
    progress: bool = True,
    device: str | None = None,
    **options,
) -> RunRecord:
    """Tune a method on ``task`` over the frozen backbone and store the run.

    ``task``: a catalog name (``data_dir`` or $TASKSCOUT_DATA_DIR, else the bundled demo suite),
    a file or folder (``type=`` and column names, see :func:`taskscout.data.load_task`),
    ``hf:<dataset>``, or a loaded :class:`TaskData`. ``options``: the fields of
    :class:`TuneConfig` (method, backbone, max_train, epochs, lr, ...) and task options.
    Returns the stored :class:`RunRecord` (dev scores per epoch in metric points x100, the loss
    curve, wall time, checkpoints ``early`` and ``best``). ``device``: ``cpu`` (default, or
    $TASKSCOUT_DEVICE), ``cuda`` or ``auto``; recorded with the run, not part of its id.
    """
    task_options, tuning = split_options(options)
    config = TuneConfig.from_options(**tuning)  # bad options fail here, before any work
    data = task if isinstance(task, TaskData) else config.load(task, seed, **task_options)
    with closing_unless_given(open_store(store), store) as db:  # after the data: none if bad
        return tune_into_store(
            data, config, db, seed=seed, device=device, threads=threads, progress=progress
        )


def embed(
    task: str | os.PathLike | TaskData,
    *,
    method: str = "lora",
    checkpoint: str = "early",
    layer_reduce: str = "mean",
    store: Store = "runs",
    backbone: str | None = None,
    run_id: str | None = None,
    **tune_options,
) -> TaskEmbedding:
    """The task embedding of ``task`` for ``method`` (shape (D,), or (L, H) for ``prompt``).

    Without tuning options, the latest complete run of (task, method, backbone) in the store is
    used (``run_id=`` picks one, which must be a run of that task and method); with tuning
    options (``max_train``, ``epochs``, ...) :func:`tune` is called with them (a no-op when that
    exact run is stored). ``checkpoint`` and ``layer_reduce`` are checked before any tuning.
    """
    checkpoint = checkpoint_kind(checkpoint)
    get_method(method).embedding_reduce(layer_reduce)
    name = task.spec.name if isinstance(task, TaskData) else str(task)
    explicit = {k: v for k, v in tune_options.items() if v is not None}
    tuning_args = set(explicit) - {"data_dir", "progress", "threads", "device"}
    if run_id is not None or (not tuning_args and not is_data_path(name)):
        with closing_unless_given(open_store(store, create=False), store) as db:
            backbone_id = resolve_backbone(backbone).backbone_id
            run = stored_run(db, None if is_data_path(name) else name, method, backbone_id, run_id)
            if run is not None:
                return embedding_of_run(db, run, checkpoint, layer_reduce)
    run = tune(task, store=store, method=method, backbone=backbone, **explicit)
    with closing_unless_given(open_store(store), store) as db:
        return embedding_of_run(db, run, checkpoint, layer_reduce)


def rank(
    target: str | os.PathLike,
    *,
    store: Store | None = None,
    pool: Store | None = None,
    method: str = "lora",
    checkpoint: str = "early",
    layer_reduce: str = "mean",
    backbone: str | None = None,
    sources: list[str] | None = None,
    predictor: str = "gain-model",
    data_dir: str | os.PathLike | None = None,
    tune_target: bool = True,
    progress: bool = True,
    threads: int | None = None,
    device: str | None = None,
    seed: int = 0,
    scorer: str | os.PathLike | None = None,
    **options,
) -> pd.DataFrame:
    """Rank the pool's sources for ``target``: a DataFrame ``source, score, rank, num_train,
    family`` by descending score (rank 1 = most helpful). The default ``gain-model`` scores the
    predicted gain (percent of the no-transfer score), adds ``low``, ``high`` (90 % interval),
    ``likely_harmful``, and names its features in ``table.attrs``; affinity adds ``std``.
    The pool: ``store=`` (alias ``pool=``); default the standard pool (its backbone only, its
    recipe as default tuning options; :mod:`taskscout.pools.standard`). ``target``: a task with
    runs in the pool, a catalog task, ``hf:<dataset>`` or a data file/folder (task options
    ``type``, ``text_col``, ...). Runs of the methods the predictor reads that the pool lacks
    are tuned first with the tuning ``options``; ``tune_target=False`` makes that an error.
    Everything is checked before any tuning. ``predictor``: ``gain-model`` (alias ``default``),
    ``tupate`` (cosine of ``method`` TuPaTE vectors) or any name of :data:`taskscout.predictors.
    PREDICTORS`; ``scorer``: a fitted affinity scorer's folder. Other backbones, methods or
    shapes are refused, never compared."""
    task_options, tuning = split_options(options)
    name = f"tupate-{method}" if predictor == "tupate" else predictor
    scorer_obj = get_predictor(name, **({"scorer": scorer} if scorer is not None else {}))
    tuning = {**pool_defaults(store, pool, backbone), **tuning}  # the user's options win
    config = TuneConfig.from_options(method=method, backbone=backbone, data_dir=data_dir, **tuning)
    with closing_unless_given(open_pool(store, pool, create=tune_target), store, pool) as db:
        pool_obj = Pool(
            db,
            resolve_backbone(backbone).backbone_id,
            checkpoint=checkpoint,
            layer_reduce=get_method(method).embedding_reduce(layer_reduce),
            data_dir=data_dir,
            progress=progress,
        )
        target_ = prepare_target(
            pool_obj.store,
            target,
            scorer_obj,
            config,
            backbone_id=pool_obj.backbone,
            seed=seed,
            task_options=task_options,
            allow_tune=tune_target,
            device=device,
            threads=threads,
            progress=progress,
        )
        if target_.data is not None:
            pool_obj.tasks[target_.name] = target_.data
        return rank_sources(scorer_obj, pool_obj, target_.name, sources)


def predict(
    targets: list[str],
    *,
    store: Store | None = None,
    predictors: list[str] | str = "all",
    checkpoint: str = "early",
    backbone: str | None = None,
    sources: list[str] | None = None,
    data_dir: str | os.PathLike | None = None,
    predictor_options: dict[str, dict] | None = None,
    tasks: dict[str, TaskData] | None = None,
    device: str | None = None,
    threads: int | None = None,
    progress: bool = False,
) -> tuple[pd.DataFrame, dict[str, str]]:
    """Long-form scores ``target, source, predictor, score`` (what ``taskscout evaluate``
    reads) for several stored targets and predictors, and the skipped predictors' reasons.

    ``store``: the pool (default: the standard pool). Sources: every other task with a run on
    this backbone. ``predictors="all"`` tries every registered predictor, skipping those the
    pool cannot serve (no prefix runs, ...); named predictors that fail raise.
    ``predictor_options``: constructor keywords by predictor name (``{"logme": {"max_examples":
    200}}``); ``tasks``: task data by name, used instead of ``data_dir``; ``progress``: a bar."""
    del device  # accepted for symmetry: predictors compute on the CPU today
    if threads is not None:
        set_torch_threads(threads)
    names = (
        None
        if predictors == "all"
        else (predictors.split(",") if isinstance(predictors, str) else list(predictors))
    )
    for name in names or []:
        get_predictor(name, **(predictor_options or {}).get(name, {}))  # unknown: error now
    with closing_unless_given(open_pool(store, create=False, backbone=backbone), store) as db:
        pool = Pool(
            db,
            resolve_backbone(backbone).backbone_id,
            checkpoint=checkpoint,
            data_dir=data_dir,
            tasks=dict(tasks or {}),
            progress=progress,
        )
        return predict_scores(
            pool, targets, names, sources=sources, predictor_options=predictor_options
        )
