"""``taskscout tune`` and ``taskscout embed``: tune a PEFT method on a task, and its task
embedding."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

from taskscout import api
from taskscout.cli.common import (
    BackboneOpt,
    BatchSizeOpt,
    CheckpointOpt,
    ChoicesColOpt,
    DataDirOpt,
    DevFileOpt,
    DeviceOpt,
    EarlyEpochsOpt,
    EpochsOpt,
    JsonOpt,
    LabelColOpt,
    LayerReduceOpt,
    LrOpt,
    MaxDevOpt,
    MaxLenOpt,
    MaxTrainOpt,
    MethodOpt,
    MetricOpt,
    MinStepsOpt,
    NameOpt,
    NoProgressOpt,
    PositiveLabelOpt,
    PrecisionOpt,
    SeedOpt,
    StoreOpt,
    TagsColOpt,
    TextColOpt,
    TextPairColOpt,
    ThreadsOpt,
    TokensColOpt,
    TuneMethodOpt,
    TypeOpt,
    check_epochs,
    given,
    guard,
    min_steps_option,
    open_store,
    out,
    precision_option,
)

TaskArg = Annotated[str, typer.Argument(help="Catalog task name, data file/folder, or hf:<name>.")]


def tune(
    task: TaskArg,
    method: TuneMethodOpt = "lora",
    store: StoreOpt = Path("runs"),
    data_dir: DataDirOpt = None,
    backbone: BackboneOpt = None,
    max_train: MaxTrainOpt = None,
    max_dev: MaxDevOpt = None,
    epochs: EpochsOpt = None,
    early_epochs: EarlyEpochsOpt = None,
    min_steps: MinStepsOpt = None,
    precision: PrecisionOpt = "auto",
    seed: SeedOpt = None,
    batch_size: BatchSizeOpt = None,
    lr: LrOpt = None,
    max_len: MaxLenOpt = None,
    type_: TypeOpt = None,
    name: NameOpt = None,
    text_col: TextColOpt = None,
    text_pair_col: TextPairColOpt = None,
    label_col: LabelColOpt = None,
    tokens_col: TokensColOpt = None,
    tags_col: TagsColOpt = None,
    choices_col: ChoicesColOpt = None,
    dev_file: DevFileOpt = None,
    metric: MetricOpt = None,
    positive_label: PositiveLabelOpt = None,
    device: DeviceOpt = None,
    threads: ThreadsOpt = None,
    as_json: JsonOpt = False,
    no_progress: NoProgressOpt = False,
) -> None:
    """Tune a PEFT method on a task over the frozen backbone; store early + best checkpoints
    (an identical run already in the store is reused)."""
    check_epochs(epochs, early_epochs)
    start = time.perf_counter()
    with guard():
        run = api.tune(
            task,
            method=method,
            store=store,
            data_dir=data_dir,
            backbone=backbone,
            progress=not no_progress,
            **given(device=device, threads=threads),
            **given(
                max_train=max_train,
                max_dev=max_dev,
                epochs=epochs,
                early_epochs=early_epochs,
                min_steps=min_steps_option(min_steps),
                bf16=precision_option(precision),
                seed=seed,
                batch_size=batch_size,
                lr=lr,
                max_len=max_len,
            ),
            **given(
                type=type_,
                name=name,
                text_col=text_col,
                text_pair_col=text_pair_col,
                label_col=label_col,
                tokens_col=tokens_col,
                tags_col=tags_col,
                choices_col=choices_col,
                dev_file=dev_file,
                metric=metric,
                positive_label=positive_label,
            ),
        )
    elapsed = time.perf_counter() - start
    info = {
        "run_id": run.run_id,
        "task": run.task,
        "method": run.method,
        "backbone": run.backbone,
        "seed": run.seed,
        "num_train": run.num_train,
        "num_dev": run.num_dev,
        "dev_scores": run.dev_scores,
        "best_epoch": run.best_epoch,
        "early": run.checkpoints["early"].dev_score,
        "best": run.checkpoints["best"].dev_score,
        "wall_time_s": round(run.wall_time_s, 2),
        "reused": elapsed < 0.5 * run.wall_time_s,
        "store": str(store),
    }
    if as_json:
        out.print_json(json.dumps(info))
        return
    scores = ", ".join(f"{s:.1f}" for s in run.dev_scores)
    state = "already in the store" if info["reused"] else f"tuned in {run.wall_time_s:.1f} s"
    out.print(
        f"{run.task} / {run.method}: {state}; run {run.run_id}; dev per epoch [{scores}]; "
        f"early {info['early']:.1f}, best {info['best']:.1f} (epoch {run.best_epoch})"
    )


def embed(
    task: TaskArg,
    method: MethodOpt = "lora",
    checkpoint: CheckpointOpt = "early",
    layer_reduce: LayerReduceOpt = "mean",
    store: StoreOpt = Path("runs"),
    data_dir: DataDirOpt = None,
    backbone: BackboneOpt = None,
    run_id: Annotated[
        str | None, typer.Option("--run-id", help="Embed this stored run (see `taskscout runs`).")
    ] = None,
    max_train: MaxTrainOpt = None,
    max_dev: MaxDevOpt = None,
    epochs: EpochsOpt = None,
    early_epochs: EarlyEpochsOpt = None,
    min_steps: MinStepsOpt = None,
    precision: PrecisionOpt = "auto",
    seed: SeedOpt = None,
    batch_size: BatchSizeOpt = None,
    lr: LrOpt = None,
    max_len: MaxLenOpt = None,
    type_: TypeOpt = None,
    name: NameOpt = None,
    text_col: TextColOpt = None,
    text_pair_col: TextPairColOpt = None,
    label_col: LabelColOpt = None,
    tokens_col: TokensColOpt = None,
    tags_col: TagsColOpt = None,
    choices_col: ChoicesColOpt = None,
    dev_file: DevFileOpt = None,
    metric: MetricOpt = None,
    positive_label: PositiveLabelOpt = None,
    device: DeviceOpt = None,
    threads: ThreadsOpt = None,
    as_json: JsonOpt = False,
    no_progress: NoProgressOpt = False,
) -> None:
    """Task embedding of a tuned run. Without tuning or task options it reads the store (which
    must exist) and tunes with the defaults only if the store has no run of the task; with them,
    that exact run is tuned first (reused when stored)."""
    check_epochs(epochs, early_epochs)
    tuning = given(
        max_train=max_train,
        max_dev=max_dev,
        epochs=epochs,
        early_epochs=early_epochs,
        min_steps=min_steps_option(min_steps),
        bf16=precision_option(precision),
        seed=seed,
        batch_size=batch_size,
        lr=lr,
        max_len=max_len,
    )
    task_opts = given(
        type=type_,
        name=name,
        text_col=text_col,
        text_pair_col=text_pair_col,
        label_col=label_col,
        tokens_col=tokens_col,
        tags_col=tags_col,
        choices_col=choices_col,
        dev_file=dev_file,
        metric=metric,
        positive_label=positive_label,
    )
    with guard():
        # reading a stored run never creates a store; tuning a new one may
        tunes = bool(tuning or task_opts) or (run_id is None and Path(task).exists())
        db = open_store(store, create=tunes)
        emb = api.embed(
            task,
            method=method,
            checkpoint=checkpoint,
            layer_reduce=layer_reduce,
            store=db,
            backbone=backbone,
            run_id=run_id,
            data_dir=data_dir,
            progress=not no_progress,
            **given(device=device, threads=threads),
            **tuning,
            **task_opts,
        )
    info = emb.to_dict()
    info["file"] = str(Path(store) / info["file"])
    if as_json:
        out.print_json(json.dumps(info))
    else:
        out.print(
            f"{emb.task} / {emb.method} ({emb.checkpoint}, {emb.layer_reduce}): "
            f"shape {tuple(emb.tensor.shape)}, norm {info['norm']:.3f}, file {info['file']}"
        )


def register(app: typer.Typer) -> None:
    """Add ``tune`` and ``embed`` to ``app``."""
    app.command()(tune)
    app.command()(embed)
