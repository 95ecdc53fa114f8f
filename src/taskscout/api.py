"""One-call Python API: ``tune``, ``embed``, ``rank``.

    import taskscout
    run = taskscout.tune("sst2", method="lora", store="runs", max_train=2000,
                         data_dir="../shared/data")
    emb = taskscout.embed("sst2", method="lora", checkpoint="early", store="runs")
    table = taskscout.rank("rte", store="runs", method="lora")      # pandas DataFrame

Every call is idempotent: a run whose full configuration (data fingerprint, backbone, method
config, training config, seed) is already in the store is returned without training again.
"""

from __future__ import annotations

import os
import traceback
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from taskscout.backbone import load_backbone, resolve_backbone
from taskscout.data import TaskData, load_task
from taskscout.embeddings.tupate import method_embedding
from taskscout.encode import encode_task
from taskscout.predictors.similarity import (
    EmbeddingKey,
    IncompatibleEmbeddingError,
    check_compatible,
)
from taskscout.store import EmbeddingRecord, RunRecord, RunStore
from taskscout.tuning.methods import build_method, get_method
from taskscout.tuning.model import build_task_model
from taskscout.tuning.trainer import (
    TrainConfig,
    cpu_has_fast_bf16,
    resolve_device,
    train_model,
)
from taskscout.util import set_torch_threads

CHECKPOINT_ALIASES = {"early": "early", "best": "best", "late": "best"}
TASK_OPTIONS = (
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


def _open_store(store: str | os.PathLike | RunStore) -> RunStore:
    return store if isinstance(store, RunStore) else RunStore(store)


def _checkpoint(name: str) -> str:
    try:
        return CHECKPOINT_ALIASES[name]
    except KeyError:
        raise ValueError(
            f"checkpoint must be 'early' or 'best' (alias 'late'), not {name!r}"
        ) from None


def run_config(
    data: TaskData, backbone_id: str, method: str, method_options: dict | None, train: TrainConfig
) -> dict:
    """The full configuration of a tuning run; its hash is the run id."""
    cls = get_method(method)
    method_config = cls.config_class(**(method_options or {})).to_dict()
    train_dict = train.to_dict()
    if train_dict["lr"] is None:
        train_dict["lr"] = cls.default_lr
    return {
        "task": data.spec.name,
        "task_fingerprint": data.fingerprint(),
        "backbone": backbone_id,
        "method": method,
        "method_config": method_config,
        "train": train_dict,
        "format": 1,
    }


def tune(
    task: str | os.PathLike | TaskData,
    *,
    method: str = "lora",
    store: str | os.PathLike | RunStore = "runs",
    backbone: str | None = None,
    data_dir: str | os.PathLike | None = None,
    max_train: int | None = None,
    max_dev: int | None = None,
    seed: int = 0,
    epochs: int = 3,
    early_epochs: int = 2,
    batch_size: int = 32,
    lr: float | None = None,
    max_len: int = 128,
    bf16: bool | None = None,
    method_options: dict | None = None,
    threads: int | None = None,
    progress: bool = True,
    device: str | None = None,
    **task_options,
) -> RunRecord:
    """Tune ``method`` on ``task`` over the frozen backbone and store the run.

    ``task``: a catalog name (``data_dir`` or $TASKSCOUT_DATA_DIR, else the bundled demo suite),
    a file or folder (pass ``type=`` and column names as keyword arguments, see
    :func:`taskscout.data.load_task`), ``hf:<dataset>``, or a loaded :class:`TaskData`.
    Returns the stored :class:`RunRecord` (dev scores per epoch in metric points x100, the loss
    curve, wall time, checkpoints ``early`` and ``best``).
    ``device``: ``cpu`` (default, or $TASKSCOUT_DEVICE), ``cuda`` or ``auto``; recorded with the
    run but not part of its id.
    """
    unknown = set(task_options) - set(TASK_OPTIONS)
    if unknown:
        raise TypeError(f"unknown option(s) {sorted(unknown)}")
    data = (
        task
        if isinstance(task, TaskData)
        else load_task(
            task, data_dir=data_dir, max_train=max_train, max_dev=max_dev, seed=seed, **task_options
        )
    )
    ref = resolve_backbone(backbone)
    train_config = TrainConfig(
        epochs=epochs,
        early_epochs=early_epochs,
        batch_size=batch_size,
        lr=lr,
        max_len=max_len,
        seed=seed,
        # bf16 only where the CPU has it natively; fp32 on GPUs keeps runs comparable
        bf16=(cpu_has_fast_bf16() and resolve_device(device).type == "cpu")
        if bf16 is None
        else bf16,
    )
    config = run_config(data, ref.backbone_id, method, method_options, train_config)
    run_id = RunStore.config_hash(config)
    db = _open_store(store)
    existing = db.get_run(run_id)
    if existing is not None and existing.status == "complete":
        return existing
    set_torch_threads(threads)
    record = RunRecord(
        run_id=run_id,
        task=data.spec.name,
        backbone=ref.backbone_id,
        method=method,
        seed=seed,
        config=config,
        num_train=len(data.train),
        num_dev=len(data.dev),
    )
    try:
        ref, tokenizer, encoder = load_backbone(backbone)
        train_split, dev_split = encode_task(data, tokenizer, max_len, cache_dir=db.root / "cache")
        model = build_task_model(method, encoder, data.spec, method_options, seed=seed)
        result = train_model(
            model,
            train_split,
            dev_split,
            TrainConfig(**{**train_config.to_dict(), "lr": config["train"]["lr"]}),
            pad_id=tokenizer.pad_token_id,
            progress=progress,
            description=f"{method} on {data.spec.name}",
            device=device,
        )
    except Exception as exc:
        db.record_failure(record, f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=5)}")
        raise
    record.dev_scores = result.dev_scores
    record.loss_curve = result.loss_curve
    record.train_loss_steps = result.loss_steps
    record.wall_time_s = result.wall_time_s
    record.examples_seen = result.examples_seen
    record.best_epoch = result.best_epoch
    # not hashed: where the weights were loaded from, and how long the phases took
    record.config = {
        **config,
        "backbone_location": ref.location,
        "timing": {"train_s": result.train_time_s, "eval_s": result.eval_time_s},
        "device": str(resolve_device(device)),
    }
    db.put_task(
        data.spec.name, data.spec.to_dict(), data.fingerprint(), len(data.train), len(data.dev)
    )
    early_score = result.dev_scores[result.early_epoch - 1]
    return db.save_run(
        record,
        {
            "early": (result.early_state, result.early_epoch, early_score),
            "best": (result.best_state, result.best_epoch, result.best_score),
        },
    )


@dataclass
class TaskEmbedding:
    """A stored task embedding with everything needed to compare it safely."""

    task: str
    method: str
    backbone: str
    checkpoint: str  # "early" | "best"
    layer_reduce: str  # "mean" | "concat" | "none" (prompt matrix)
    tensor: torch.Tensor  # (D,) or (L, H) for prompt
    record: EmbeddingRecord

    @property
    def key(self) -> EmbeddingKey:
        return EmbeddingKey(self.backbone, self.method, self.layer_reduce, tuple(self.tensor.shape))

    def to_dict(self) -> dict:
        return {
            "task": self.task,
            "method": self.method,
            "backbone": self.backbone,
            "checkpoint": self.checkpoint,
            "layer_reduce": self.layer_reduce,
            "shape": list(self.tensor.shape),
            "run_id": self.record.run_id,
            "embedding_id": self.record.embedding_id,
            "file": self.record.file,
            "norm": float(self.tensor.norm()),
        }


def _pick_run(
    db: RunStore, task: str, method: str, backbone: str, seed: int | None
) -> RunRecord | None:
    runs = [
        r
        for r in db.find_runs(task=task, method=method, backbone=backbone)
        if seed is None or r.seed == seed
    ]
    return max(runs, key=lambda r: r.created_at) if runs else None


def embedding_of_run(
    db: RunStore, run: RunRecord, checkpoint: str = "early", layer_reduce: str = "mean"
) -> TaskEmbedding:
    """Compute (or fetch) the embedding of a stored run's checkpoint."""
    checkpoint = _checkpoint(checkpoint)
    effective = "none" if run.method == "prompt" else layer_reduce
    stored = db.get_embedding(run_id=run.run_id, checkpoint=checkpoint, layer_reduce=effective)
    if stored is None:
        _, _, encoder = load_backbone(_backbone_location(run))
        method = build_method(run.method, encoder, run.config["method_config"])
        state = db.load_checkpoint(run.run_id, checkpoint)
        method.load_tuned_state(
            {k.removeprefix("method."): v for k, v in state.items() if k.startswith("method.")}
        )
        tensor, effective = method_embedding(method, layer_reduce)
        stored = db.save_embedding(
            run_id=run.run_id,
            task=run.task,
            backbone=run.backbone,
            method=run.method,
            checkpoint=checkpoint,
            layer_reduce=effective,
            tensor=tensor,
            extra={
                "epoch": run.checkpoints[checkpoint].epoch,
                "dev_score": run.checkpoints[checkpoint].dev_score,
            },
        )
    tensor = db.load_embedding(stored)
    return TaskEmbedding(
        run.task, run.method, run.backbone, checkpoint, stored.layer_reduce, tensor, stored
    )


def _backbone_location(run: RunRecord) -> str | None:
    """The backbone argument that reloads a run's encoder (packaged id maps to the package)."""
    from taskscout.backbone import PACKAGED_ID

    if run.backbone == PACKAGED_ID:
        return None
    return run.config.get("backbone_location") or run.backbone.split("@")[0].removeprefix("local:")


def embed(
    task: str | os.PathLike | TaskData,
    *,
    method: str = "lora",
    checkpoint: str = "early",
    layer_reduce: str = "mean",
    store: str | os.PathLike | RunStore = "runs",
    backbone: str | None = None,
    run_id: str | None = None,
    **tune_kwargs,
) -> TaskEmbedding:
    """The task embedding of ``task`` for ``method``; tunes first if the store has no run.

    Without tuning arguments, the most recent complete run of (task name, method, backbone) in
    the store is used (``run_id=`` picks one). With tuning arguments (``max_train``, ``epochs``,
    ...), :func:`tune` is called with them (a no-op when that exact run is stored).
    """
    db = _open_store(store)
    if run_id is not None:
        run = db.get_run(run_id)
        if run is None:
            raise ValueError(f"no run {run_id!r} in store {db.root}")
    else:
        run = None
        ref = resolve_backbone(backbone)
        explicit = {k: v for k, v in tune_kwargs.items() if v is not None}
        tuning_args = set(explicit) - {"data_dir", "progress", "threads"}
        if not tuning_args and isinstance(task, str) and not Path(task).exists():
            run = _pick_run(db, task, method, ref.backbone_id, None)
        if run is None:
            run = tune(task, method=method, store=db, backbone=backbone, **explicit)
    return embedding_of_run(db, run, checkpoint, layer_reduce)


def pool_embeddings(
    db: RunStore,
    *,
    method: str,
    backbone: str,
    checkpoint: str = "early",
    layer_reduce: str = "mean",
) -> dict[str, TaskEmbedding]:
    """The latest embedding of every task in the store for (method, backbone, checkpoint),
    computing embeddings of stored runs that have none yet."""
    out: dict[str, TaskEmbedding] = {}
    runs = sorted(db.find_runs(method=method, backbone=backbone), key=lambda r: r.created_at)
    for run in runs:  # later runs of a task overwrite earlier ones
        out[run.task] = embedding_of_run(db, run, checkpoint, layer_reduce)
    return out


TUNE_OPTIONS = (
    "max_train",
    "max_dev",
    "seed",
    "epochs",
    "early_epochs",
    "batch_size",
    "lr",
    "max_len",
    "bf16",
    "method_options",
    "device",
)


def _store_or_pool(store, pool) -> RunStore:
    """The run store given as ``store=`` or its alias ``pool=`` (default ``runs``)."""
    if store is not None and pool is not None:
        same = (
            isinstance(store, RunStore | str | os.PathLike)
            and isinstance(pool, RunStore | str | os.PathLike)
            and _open_store(store).root == _open_store(pool).root
        )
        if not same:
            raise ValueError("give the pool directory once: store= or pool= (an alias), not both")
    return _open_store(store if store is not None else pool if pool is not None else "runs")


def _methods_for(predictor: str, method: str, db: RunStore, backbone_id: str) -> list[str]:
    """The tuning methods whose run of the target ``predictor`` reads."""
    from taskscout.predictors.base import TUPATE_METHODS

    if predictor == "tupate":
        return [method]
    if predictor.startswith("prompt-"):
        return ["prompt"]
    if predictor.startswith("ensemble"):
        rows = db.conn.execute(
            "SELECT DISTINCT method FROM runs WHERE backbone = ? AND status = 'complete'",
            (backbone_id,),
        ).fetchall()
        present = [m for m in TUPATE_METHODS if m in {r[0] for r in rows}]
        return present or [method]
    return [method]


def _ensure_target(
    db: RunStore,
    target: str | os.PathLike,
    methods: list[str],
    *,
    backbone: str | None,
    data_dir,
    allow_tune: bool,
    progress: bool,
    threads: int | None,
    options: dict,
) -> tuple[str, dict[str, RunRecord], TaskData | None]:
    """(task name, method -> run of the target, loaded TaskData or None), tuning the target for
    every method of ``methods`` the store has no run of (or, with tuning or task options, whose
    run with exactly those options is missing; :func:`tune` is a no-op for a stored config)."""
    text = str(target)
    is_path = not text.startswith("hf:") and Path(text).expanduser().exists()
    if is_path and "type" not in options:
        raise ValueError(
            f"target {text!r} is a data file or folder: give its task type (--type / type=: "
            "classification, pair_classification, regression, token_classification, "
            "multiple_choice) and its columns (--text-col, --label-col, ...) so it can be "
            "tuned before ranking"
        )
    ref = resolve_backbone(backbone)
    runs: dict[str, RunRecord] = {}
    if not is_path and not text.startswith("hf:") and not options:
        for m in methods:
            run = _pick_run(db, text, m, ref.backbone_id, None)
            if run is not None:
                runs[m] = run
        if len(runs) == len(methods):
            return text, runs, None
    todo = [m for m in methods if m not in runs]
    if not allow_tune:
        raise ValueError(
            f"target {text!r} has no {'/'.join(todo)} run in store {db.root} for backbone "
            f"{ref.backbone_id!r}; run `taskscout tune {text} --method {todo[0]}` first "
            "(or let rank tune it)"
        )
    task_opts = {k: v for k, v in options.items() if k in TASK_OPTIONS}
    load_opts = {k: options[k] for k in ("max_train", "max_dev", "seed") if k in options}
    data = load_task(target, data_dir=data_dir, **load_opts, **task_opts)
    tune_opts = {k: v for k, v in options.items() if k not in TASK_OPTIONS}
    for m in todo:
        runs[m] = tune(
            data,
            method=m,
            store=db,
            backbone=backbone,
            progress=progress,
            threads=threads,
            **tune_opts,
        )
    return data.spec.name, runs, data


def rank(
    target: str | os.PathLike,
    *,
    store: str | os.PathLike | RunStore | None = None,
    pool: str | os.PathLike | RunStore | None = None,
    method: str = "lora",
    checkpoint: str = "early",
    layer_reduce: str = "mean",
    backbone: str | None = None,
    sources: list[str] | None = None,
    predictor: str = "tupate",
    data_dir: str | os.PathLike | None = None,
    tune_target: bool = True,
    progress: bool = True,
    threads: int | None = None,
    scorer: str | os.PathLike | None = None,
    **options,
) -> pd.DataFrame:
    """Rank the pool's source tasks for ``target``; returns a DataFrame with columns
    ``source, score, rank, num_train, family`` sorted by descending score (rank 1 = predicted
    most helpful). With ``predictor="affinity"``, ``scorer`` is the folder of a fitted affinity
    scorer (``taskscout affinity fit``): ``score`` is the predicted gain in metric points and a
    ``std`` column holds the ensemble's standard deviation.

    ``target``: a task with a run in the store (``store=``, alias ``pool=``; default ``runs``),
    a catalog task (``data_dir``), ``hf:<dataset>`` or a data file/folder (``type=`` and column
    options as for :func:`tune`). If the store has no run of the target for the method(s) the
    predictor reads, the target is tuned first with ``options`` (tuning options of :func:`tune`
    such as ``max_train``, ``epochs``; task options such as ``type``, ``text_col``) and a
    progress bar; ``tune_target=False`` makes that an error instead.

    ``predictor``: ``"tupate"`` (cosine of ``method`` TuPaTE vectors, the default),
    ``"tupate-<method>"``, or any name of :data:`taskscout.predictors.PREDICTORS`. TuPaTE
    ranking reads the packed pool matrix (:mod:`taskscout.embeddings.packed`, built once per
    set of stored embeddings) and scores all sources in one chunked matrix-vector product.
    Other predictors score the given ``sources``, default every other task with a run on this
    backbone; ``data_dir`` is where predictors that read task data (textemb, taskemb, logme)
    find it. Embeddings of other backbones, methods or shapes are refused
    (:class:`IncompatibleEmbeddingError`), never compared.
    """
    from taskscout.predictors import Pool, get_predictor
    from taskscout.predictors.base import TUPATE_METHODS

    unknown = set(options) - set(TASK_OPTIONS) - set(TUNE_OPTIONS)
    if unknown:
        raise TypeError(f"unknown option(s) {sorted(unknown)}")
    options = {k: v for k, v in options.items() if v is not None}
    if predictor.startswith("tupate-") and predictor.removeprefix("tupate-") in TUPATE_METHODS:
        method, predictor = predictor.removeprefix("tupate-"), "tupate"
    if predictor == "affinity" and scorer is not None:  # the target needs the scorer's method
        from taskscout.affinity.io import read_scorer_config

        method = read_scorer_config(scorer)[1].method
    predictor_options = {"scorer": scorer} if scorer is not None else {}
    scorer = (  # the predictor object from here on; unknown name: ValueError
        None if predictor == "tupate" else get_predictor(predictor, **predictor_options)
    )
    get_method(method)  # unknown method: ValueError before any work
    checkpoint = _checkpoint(checkpoint)
    db = _store_or_pool(store, pool)
    ref = resolve_backbone(backbone)
    name, runs, data = _ensure_target(
        db,
        target,
        _methods_for(predictor, method, db, ref.backbone_id),
        backbone=backbone,
        data_dir=data_dir,
        allow_tune=tune_target,
        progress=progress,
        threads=threads,
        options=options,
    )
    if scorer is not None:
        pool_ = Pool(
            db,
            ref.backbone_id,
            checkpoint=checkpoint,
            layer_reduce=layer_reduce,
            data_dir=data_dir,
            tasks={name: data} if data is not None else {},
        )
        every = sorted({r.task for r in db.find_runs(backbone=ref.backbone_id)})
        names = [s for s in (sources or every) if s != name]
        scored = scorer.score(name, names, pool_)
        table = _score_table(db, names, [scored[s] for s in names])
        if "std" in getattr(scored, "info", {}):  # learned scorers: uncertainty per source
            table.insert(2, "std", table["source"].map(scored.info["std"]))
        return table
    return _rank_packed(
        db, name, runs[method], ref.backbone_id, sources, checkpoint, layer_reduce, progress
    )


def _rank_packed(
    db: RunStore,
    target: str,
    run: RunRecord,
    backbone_id: str,
    sources: list[str] | None,
    checkpoint: str,
    layer_reduce: str,
    progress: bool,
) -> pd.DataFrame:
    """TuPaTE cosine ranking of ``run``'s embedding against the packed pool of its method."""
    from taskscout.embeddings.packed import cosine_to_pool, packed_pool

    method = run.method
    t = embedding_of_run(db, run, checkpoint, layer_reduce)
    packed = packed_pool(
        db,
        method=method,
        backbone=backbone_id,
        checkpoint=checkpoint,
        layer_reduce=layer_reduce,
        shape=tuple(t.tensor.shape),
        progress=progress,
    )
    names = [s for s in (sources or [*packed.tasks, *packed.excluded]) if s != target]
    index = packed.index_of()
    missing = [s for s in names if s not in index]
    if missing:  # of another shape (refused), another backbone (refused), or absent
        check_compatible(
            t.key,
            [
                (s, EmbeddingKey(backbone_id, method, t.layer_reduce, packed.excluded[s]))
                for s in missing
                if s in packed.excluded
            ],
        )
        elsewhere = {
            s: sorted({r.backbone for r in db.find_runs(task=s, method=method)}) for s in missing
        }
        elsewhere = {s: b for s, b in elsewhere.items() if b}
        if elsewhere:  # comparing across backbones is an error, not a silent omission
            raise IncompatibleEmbeddingError(
                f"cannot compare embeddings of different backbones: the target {target!r} uses "
                f"backbone {backbone_id!r}, but source(s) have {method} runs only for "
                f"{elsewhere}; tune them with this backbone"
            )
        raise ValueError(f"no {method} embedding in the store for source(s) {missing}")
    if not names:
        raise ValueError("the pool holds no source task besides the target")
    scores = cosine_to_pool(packed, t.tensor)
    return _score_table(db, names, scores[[index[s] for s in names]])


def _score_table(db: RunStore, names: list[str], scores) -> pd.DataFrame:
    """The ranking table of :func:`rank`: sources sorted by descending score, rank 1 first."""
    rows = db.conn.execute(  # two fields of every task, without parsing each spec in Python
        "SELECT name, num_train, json_extract(spec, '$.family') FROM tasks"
    ).fetchall()
    tasks = {name: (num_train, family) for name, num_train, family in rows}
    table = (
        pd.DataFrame(
            {
                "source": names,
                "score": scores,
                "num_train": [tasks.get(s, (None, None))[0] for s in names],
                "family": [tasks.get(s, (None, None))[1] for s in names],
            }
        )
        .sort_values("score", ascending=False, kind="stable")
        .reset_index(drop=True)
    )
    table.insert(2, "rank", range(1, len(table) + 1))
    return table


def predict(
    targets: list[str],
    *,
    store: str | os.PathLike | RunStore = "runs",
    predictors: list[str] | str = "all",
    checkpoint: str = "early",
    backbone: str | None = None,
    sources: list[str] | None = None,
    data_dir: str | os.PathLike | None = None,
    predictor_options: dict[str, dict] | None = None,
    tasks: dict[str, TaskData] | None = None,
) -> tuple[pd.DataFrame, dict[str, str]]:
    """Long-form scores ``target, source, predictor, score`` (the exchange format that
    ``taskscout evaluate`` reads) for several targets and predictors.

    Sources default to every other task with a run on this backbone. With ``predictors="all"``
    every registered predictor is tried and those the pool cannot serve (e.g. no prefix runs, no
    task data for textemb) are skipped; the second return value maps each skipped predictor to
    its reason. Named predictors that fail raise. ``predictor_options`` maps a predictor name to
    keyword arguments of its constructor (e.g. ``{"logme": {"max_examples": 200}}``).
    ``tasks``: already loaded task data by name, used instead of loading from ``data_dir``.
    """
    from taskscout.predictors import PREDICTORS, Pool, get_predictor

    db = _open_store(store)
    ref = resolve_backbone(backbone)
    explicit = predictors != "all"
    names = (
        sorted(PREDICTORS)
        if not explicit
        else (predictors.split(",") if isinstance(predictors, str) else list(predictors))
    )
    every = sorted({r.task for r in db.find_runs(backbone=ref.backbone_id)})
    unknown = [t for t in targets if t not in every]
    if unknown:
        raise ValueError(
            f"target(s) {unknown} have no run in store {db.root} for backbone "
            f"{ref.backbone_id!r}; tasks there: {every}"
        )
    pool = Pool(
        db,
        ref.backbone_id,
        checkpoint=_checkpoint(checkpoint),
        data_dir=data_dir,
        tasks=dict(tasks or {}),
    )
    rows, skipped = [], {}
    for name in names:
        scorer = get_predictor(name, **(predictor_options or {}).get(name, {}))
        try:
            for target in targets:
                cands = [s for s in (sources or every) if s != target]
                scored = scorer.score(target, cands, pool)
                rows += [(target, s, name, float(scored[s])) for s in cands]
        except Exception as exc:  # noqa: BLE001 - reported, never silent
            if explicit:
                raise
            rows = [r for r in rows if r[2] != name]
            skipped[name] = f"{type(exc).__name__}: {exc}"
    frame = pd.DataFrame(rows, columns=["target", "source", "predictor", "score"])
    return frame, skipped
checkpoint_kind = _checkpoint
CHECKPOINTS = ("early", "best")
