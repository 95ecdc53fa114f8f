"""``taskscout pool build|info|import|export``: a source pool as a product.

``build`` tunes tasks x methods into a store (resumable; worker processes or Ray), ``info``
lists its entries, ``import`` turns a PEFT LoRA adapter folder into an entry, ``export`` writes
an entry's LoRA as a PEFT adapter folder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

import pandas as pd
import typer

from taskscout.cli.common import (
    BackboneOpt,
    CheckpointOpt,
    DataDirOpt,
    DeviceOpt,
    EarlyEpochsOpt,
    EpochsOpt,
    JsonOpt,
    MaxDevOpt,
    MaxLenOpt,
    MaxTrainOpt,
    NoProgressOpt,
    PoolOpt,
    SeedOpt,
    check_epochs,
    csv_list,
    err,
    flag,
    given,
    guard,
    open_store,
    out,
    print_frame,
)
from taskscout.data import load_task
from taskscout.pools import (
    build_pool,
    export_adapter,
    import_adapter,
    pool_info,
    standard_pool_summary,
)
from taskscout.tuning.config import TuneConfig

app = typer.Typer(no_args_is_help=True, help="Build, inspect, import into and export a pool.")

Executor = Literal["inprocess", "local", "ray"]


@app.command("build")
def build(
    tasks: Annotated[str, typer.Argument(help="Comma-separated catalog task names or paths.")],
    methods: Annotated[
        str, typer.Option("--methods", help="Comma-separated methods to tune per task.")
    ] = "lora,bitfit",
    store: PoolOpt = Path("runs"),
    data_dir: DataDirOpt = None,
    backbone: BackboneOpt = None,
    max_train: MaxTrainOpt = None,
    max_dev: MaxDevOpt = None,
    epochs: EpochsOpt = None,
    early_epochs: EarlyEpochsOpt = None,
    max_len: MaxLenOpt = None,
    seed: SeedOpt = None,
    executor: Annotated[
        Executor,
        typer.Option("--executor", help="inprocess | local (worker processes) | ray."),
    ] = "inprocess",
    workers: Annotated[int, typer.Option("--workers", min=1, help="Jobs at once.")] = 1,
    threads: Annotated[
        int | None, typer.Option("--threads", min=1, help="torch threads per job.")
    ] = None,
    ray_address: Annotated[
        str | None, typer.Option("--ray-address", help="Join this Ray cluster ('auto').")
    ] = None,
    device: DeviceOpt = None,
    no_progress: NoProgressOpt = False,
) -> None:
    """Tune every TASK x method into the pool (runs already stored are skipped, so a killed
    build resumes) and store the task embeddings of both checkpoints. Prints a JSON summary."""
    check_epochs(epochs, early_epochs)
    with guard():
        settings = TuneConfig.from_options(
            **given(
                backbone=backbone,
                data_dir=None if data_dir is None else str(data_dir),
                max_train=max_train,
                max_dev=max_dev,
                epochs=epochs,
                early_epochs=early_epochs,
                max_len=max_len,
            )
        )
        summary = build_pool(
            open_store(store, create=True),
            csv_list(tasks),
            csv_list(methods),
            settings,
            seed=seed or 0,
            executor=executor,
            workers=workers,
            threads=threads,
            device=device,
            ray_address=ray_address,
            progress=not no_progress,
        )
    out.print_json(json.dumps(summary.to_dict()))
    if summary.failed:
        raise typer.Exit(1)


@app.command("info")
def info(
    store: Annotated[
        Path | None,
        typer.Option(
            "--store",
            "--pool",
            help="Run store directory. Default: describe the standard pool shipped with "
            "taskscout (the pool `rank` uses without --pool).",
            show_default=False,
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """One row per (task, method) entry of the pool: its run, origin (tuned | imported),
    training size, dev scores and stored embeddings. Without --pool: the standard pool's tasks
    (type, family, size, early dev scores, licence), methods, recipe, backbone and size."""
    if store is None:
        with guard():
            summary = standard_pool_summary()
        if as_json:
            out.print_json(json.dumps(summary))
            return
        rows = summary.pop("tasks")
        excluded = summary.pop("excluded")
        recipe = ", ".join(f"{k}={v}" for k, v in summary["recipe"].items() if v is not None)
        err.print(
            f"standard pool {summary['version']}: {len(rows)} tasks x "
            f"{', '.join(summary['methods'])} on {summary['backbone']['id']} "
            f"(weights sha256 {summary['backbone']['sha256'][:16]}...), "
            f"{summary['size_bytes'] / 1e6:.1f} MB\n"
            f"  recipe: {recipe}\n"
            f"  built {summary['build_date']} on {summary['device']} by {summary['command']} "
            f"(taskscout {summary['taskscout_commit'][:10]})\n"
            f"  packaged in {summary['folder']}; rank uses the copy {summary['copy']}\n"
            f"  not shipped (licence): {', '.join(f'{t} ({r})' for t, r in excluded.items())}"
        )
        print_frame(
            pd.DataFrame(rows), as_json=False, csv=None, title="standard pool", floats="{:.1f}"
        )
        return
    with guard():
        rows = pool_info(open_store(store))
    df = pd.DataFrame(rows)
    if df.empty:
        err.print(f"pool {store} holds no complete runs")
    print_frame(df, as_json=as_json, csv=None, title=f"pool {store}", floats="{:.1f}")


@app.command("import")
def import_(
    folder: Annotated[
        Path, typer.Argument(help="PEFT adapter folder (adapter_config.json + safetensors).")
    ],
    task: Annotated[str, typer.Option("--task", help="Task name of the new pool entry.")],
    store: PoolOpt = Path("runs"),
    backbone: BackboneOpt = None,
    data: Annotated[
        str | None,
        typer.Option("--data", help="The task's data (catalog name or path) to record its size."),
    ] = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Import a PEFT LoRA adapter trained on the pool's backbone as TASK's lora entry, with its
    task embeddings. Other base models, target modules, ranks or shapes are refused before
    anything is written."""
    with guard():
        task_data = None
        if data is not None:
            named = {"name": task} if Path(data).exists() else {}
            task_data = load_task(data, data_dir=data_dir, **named)
        run = import_adapter(store, folder, task, backbone=backbone, data=task_data)
    out.print_json(json.dumps({"run_id": run.run_id, "task": run.task, "store": str(store)}))


@app.command("export")
def export(
    folder: Annotated[Path, typer.Argument(help="Folder to write the PEFT adapter into.")],
    task: Annotated[str | None, typer.Option("--task", help="The entry's task.")] = None,
    run_id: Annotated[str | None, typer.Option("--run-id", help="A lora run id.")] = None,
    store: PoolOpt = Path("runs"),
    checkpoint: CheckpointOpt = "best",
    backbone: BackboneOpt = None,
    no_head: Annotated[bool, flag("--no-head", help="Do not write the task head.")] = False,
    overwrite: Annotated[bool, flag("--overwrite", help="Replace an adapter there.")] = False,
) -> None:
    """Write a pool entry's lora checkpoint as a PEFT adapter folder
    (``PeftModel.from_pretrained(base, FOLDER)`` loads it) and its task head beside it."""
    with guard():
        path = export_adapter(
            store,
            folder,
            task=task,
            run_id=run_id,
            checkpoint=checkpoint,
            backbone=backbone,
            head=not no_head,
            overwrite=overwrite,
        )
    out.print_json(json.dumps({"folder": str(path)}))


def register(root: typer.Typer) -> None:
    """Add ``pool`` (build / info / import / export) to ``root``."""
    root.add_typer(app, name="pool")
