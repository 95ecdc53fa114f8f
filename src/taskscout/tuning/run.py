"""Running a tune: the one function that trains a task (:func:`train_task`), and the one that
stores the result as a run (:func:`tune_into_store`).

:func:`train_task` is the whole computation of a run: load the backbone, encode the data
(cached), build the model exactly as every run builds it (:func:`taskscout.tuning.model.
build_task_model`: seeded method initialisation, then a fresh head), optionally overwrite the
method's parameters with a source's tuned state (a transfer run), and train. ``tune``, transfer
runs, pool building and the benchmarks all go through it, so a transfer run with no source state
*is* the target's ordinary run, score for score.
"""

from __future__ import annotations

import os
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import torch

from taskscout.backbone import PACKAGED_ID, load_backbone
from taskscout.data import TaskData
from taskscout.encode import encode_task
from taskscout.store import RunRecord, RunStore
from taskscout.tuning.config import TuneConfig
from taskscout.tuning.device import resolve_device
from taskscout.tuning.model import TaskModel, build_task_model
from taskscout.tuning.trainer import TrainResult, train_model
from taskscout.util import set_torch_threads


@dataclass
class TrainedTask:
    """What :func:`train_task` produced: the trainer's result plus the run's identity."""

    config: dict  # the hashed run config (TuneConfig.run_config)
    run_id: str  # its hash: the id of the task's ordinary (no-transfer) run
    result: TrainResult
    device: str
    threads: int
    backbone_location: str | None
    extra: dict = field(default_factory=dict)

    @property
    def score(self) -> float:
        """Dev score at the best epoch (metric x100)."""
        return self.result.best_score


def build_model(
    config: TuneConfig,
    data: TaskData,
    encoder: torch.nn.Module,
    seed: int,
    init_state: dict[str, torch.Tensor] | None = None,
) -> TaskModel:
    """The model of a run before training; with ``init_state`` (a stored checkpoint: keys
    ``method.*``; any ``head.*`` is ignored, the head stays fresh) the method's parameters are
    then set from it. ValueError if the state does not fit (other method, backbone, config)."""
    model = build_task_model(config.method, encoder, data.spec, config.method_options, seed=seed)
    if init_state is not None:
        if not any(k.startswith("method.") for k in init_state):
            raise ValueError("the initial checkpoint holds no method.* parameters")
        model.load_trainable_state(init_state, head=False)
    return model


def train_task(
    data: TaskData,
    config: TuneConfig,
    *,
    seed: int,
    init_state: dict[str, torch.Tensor] | None = None,
    device: str | None = None,
    threads: int | None = None,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
    description: str | None = None,
    run_config: dict | None = None,
) -> TrainedTask:
    """Train ``config.method`` on ``data`` with ``seed`` (from ``init_state`` if given).

    ``config`` must be resolved (:meth:`TuneConfig.resolved`). ``threads``: torch intra-op
    threads (fix it for bit-identical CPU results across processes). ``cache_dir``: where
    encoded splits are cached. Checkpoint states in the result are CPU tensors. ``run_config``:
    ``config.run_config(data, seed)`` when the caller has it already (it hashes every row).
    """
    threads = set_torch_threads(threads)
    run_config = run_config or config.run_config(data, seed)
    ref, tokenizer, encoder = load_backbone(config.backbone)
    train_split, dev_split = encode_task(
        data, tokenizer, config.max_len, cache_dir=None if cache_dir is None else Path(cache_dir)
    )
    model = build_model(config, data, encoder, seed, init_state)
    result = train_model(
        model,
        train_split,
        dev_split,
        config,
        seed=seed,
        pad_id=tokenizer.pad_token_id,
        progress=progress,
        description=description or f"{config.method} on {data.spec.name}",
        device=device,
    )
    return TrainedTask(
        config=run_config,
        run_id=RunStore.config_hash(run_config),
        result=result,
        device=str(resolve_device(device)),
        threads=threads,
        backbone_location=ref.location,
    )


def tune_into_store(
    data: TaskData,
    config: TuneConfig,
    store: RunStore,
    *,
    seed: int = 0,
    device: str | None = None,
    threads: int | None = None,
    progress: bool = True,
) -> RunRecord:
    """The stored run of ``data`` with ``config`` and ``seed``, training it only if the store
    lacks it (an identical config is the same run). A failure is recorded in the store and
    re-raised. The task's record (spec, fingerprint, sizes, source) is stored with the run; a
    different data source under the same task name is refused before any training."""
    config = config.resolved(device)
    run_config = config.run_config(data, seed)
    run_id = RunStore.config_hash(run_config)
    existing = store.get_run(run_id)
    if existing is not None and existing.status == "complete":
        return existing
    store.check_task_source(data.spec.name, data.source)
    record = RunRecord(
        run_id=run_id,
        task=data.spec.name,
        backbone=run_config["backbone"],
        method=config.method,
        seed=seed,
        config=run_config,
        num_train=len(data.train),
        num_dev=len(data.dev),
    )
    try:
        trained = train_task(
            data,
            config,
            seed=seed,
            device=device,
            threads=threads,
            cache_dir=store.root / "cache",
            progress=progress,
            run_config=run_config,
        )
    except Exception as exc:
        store.record_failure(
            record, f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=5)}"
        )
        raise
    result = trained.result
    record.dev_scores = result.dev_scores
    record.loss_curve = result.loss_curve
    record.train_loss_steps = result.loss_steps
    record.wall_time_s = result.wall_time_s
    record.examples_seen = result.examples_seen
    record.best_epoch = result.best_epoch
    # not hashed: where the weights were loaded from, and how long the phases took
    record.config = {
        **run_config,
        "backbone_location": trained.backbone_location,
        "timing": {"train_s": result.train_time_s, "eval_s": result.eval_time_s},
        "device": trained.device,
    }
    store.put_task(
        data.spec.name,
        data.spec.to_dict(),
        run_config["task_fingerprint"],
        len(data.train),
        len(data.dev),
        source=data.source,
    )
    early_score = result.dev_scores[result.early_epoch - 1]
    return store.save_run(
        record,
        {
            "early": (result.early_state, result.early_epoch, early_score),
            "best": (result.best_state, result.best_epoch, result.best_score),
        },
    )


def run_backbone_location(run: RunRecord) -> str | None:
    """The backbone argument that reloads a stored run's encoder (None: the packaged one)."""
    if run.backbone == PACKAGED_ID:
        return None
    return run.config.get("backbone_location") or run.backbone.split("@")[0].removeprefix("local:")
