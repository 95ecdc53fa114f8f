"""``taskscout demo``: rank 5 bundled source tasks for a held-out bundled target, end to end on
CPU.

:func:`run_demo` tunes the method (default LoRA) on each bundled demo task (DEMO_SOURCES and
DEMO_TARGET, <= 300 training examples each) to the early checkpoint (``epochs``, default 2) on
the packaged all-MiniLM-L6-v2, embeds them (TuPaTE, mean over layers) and ranks the sources for
the target with the default ``gain-model`` (predicted gain with its 90 % interval; features the
demo pool cannot give, e.g. bitfit, are left out and the ones used are printed).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer

from taskscout import api
from taskscout.cli.common import (
    BackboneOpt,
    DeviceOpt,
    MaxDevOpt,
    MaxTrainOpt,
    MethodOpt,
    NoProgressOpt,
    StoreOpt,
    ThreadsOpt,
    err,
    given,
    guard,
    out,
    table,
)
from taskscout.data import DEMO_SOURCES, DEMO_TARGET, demo_data_dir


def run_demo(
    store: str | Path = "taskscout-demo",
    *,
    method: str = "lora",
    epochs: int = 2,
    backbone: str | None = None,
    max_train: int | None = None,
    max_dev: int | None = None,
    device: str | None = None,
    threads: int | None = None,
    progress: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Returns (ranking of the sources for the target by the default ``gain-model``: source,
    score (predicted gain), low, high, likely_harmful, rank, num_train, family;
    per-task timings in seconds: task, role, num_train, dev_score, tune_s, embed_s).
    ``max_train`` / ``max_dev`` subsample every task (seeded; default: all of the bundled rows).
    Status lines go to stderr."""
    data_dir = demo_data_dir()
    compute = given(device=device, threads=threads)
    sizes = {k: v for k, v in {"max_train": max_train, "max_dev": max_dev}.items() if v}
    timings = []
    for task in (*DEMO_SOURCES, DEMO_TARGET):
        start = time.perf_counter()
        run = api.tune(
            task,
            method=method,
            store=store,
            data_dir=data_dir,
            epochs=epochs,
            early_epochs=epochs,
            backbone=backbone,
            progress=progress,
            **sizes,
            **compute,
        )
        tuned = time.perf_counter()
        api.embed(
            task,
            method=method,
            checkpoint="early",
            store=store,
            backbone=backbone,
            run_id=run.run_id,
        )
        done = time.perf_counter()
        timings.append(
            {
                "task": task,
                "role": "target" if task == DEMO_TARGET else "source",
                "num_train": run.num_train,
                "dev_score": run.checkpoints["early"].dev_score,
                "tune_s": tuned - start,
                "embed_s": done - tuned,
            }
        )
        err.print(
            f"[green]✓[/green] {task}: {method} tuned to epoch {epochs} "
            f"(dev {run.checkpoints['early'].dev_score:.1f}) in {tuned - start:.1f} s, "
            f"embedded in {done - tuned:.1f} s"
        )
    start = time.perf_counter()
    ranking = api.rank(
        DEMO_TARGET,
        store=store,
        method=method,
        checkpoint="early",
        backbone=backbone,
        sources=list(DEMO_SOURCES),
        data_dir=data_dir,
        tune_target=False,
        progress=False,
    )
    err.print(
        f"[green]✓[/green] ranked {len(DEMO_SOURCES)} sources for {DEMO_TARGET} in "
        f"{time.perf_counter() - start:.2f} s"
    )
    return ranking, pd.DataFrame(timings)


def demo(
    store: StoreOpt = Path("taskscout-demo"),
    method: MethodOpt = "lora",
    epochs: Annotated[
        int, typer.Option("--epochs", min=1, help="Tune to this epoch (the early checkpoint).")
    ] = 2,
    backbone: BackboneOpt = None,
    max_train: MaxTrainOpt = None,
    max_dev: MaxDevOpt = None,
    device: DeviceOpt = None,
    threads: ThreadsOpt = None,
    no_progress: NoProgressOpt = False,
) -> None:
    """Tune 5 bundled source tasks and 1 held-out target on the packaged MiniLM, embed them and
    rank the sources for the target (a few minutes on a laptop CPU)."""
    err.print(
        f"[bold]taskscout demo[/bold]: target [cyan]{DEMO_TARGET}[/cyan], sources "
        f"{', '.join(DEMO_SOURCES)}; {method} on {backbone or 'all-MiniLM-L6-v2'}, "
        f"{epochs} epochs; store {store}/"
    )
    start = time.perf_counter()
    with guard():
        ranking, timings = run_demo(
            store,
            method=method,
            epochs=epochs,
            backbone=backbone,
            max_train=max_train,
            max_dev=max_dev,
            device=device,
            threads=threads,
            progress=not no_progress and sys.stderr.isatty(),
        )
    out.print(
        table(
            ranking,
            title=f"Sources ranked for {DEMO_TARGET} by the gain model: predicted gain "
            "(% of the no-transfer score) with its 90% interval [low, high]",
        )
    )
    if "features_used" in ranking.attrs:
        err.print(f"features used: {', '.join(ranking.attrs['features_used'])}")
    out.print(table(timings, title="time per task (s)", floats="{:.1f}"))
    err.print(
        f"total {time.perf_counter() - start:.1f} s. Explore the store: "
        f"`taskscout runs --store {store}`, `taskscout rank {DEMO_TARGET} --store {store}`."
    )


def register(app: typer.Typer) -> None:
    """Add ``demo`` to ``app``."""
    app.command()(demo)
