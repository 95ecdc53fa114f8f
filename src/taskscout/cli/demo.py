"""``taskscout demo``: the real job on a bundled target, end to end on CPU.

Default (``--sources standard``): a bundled target (STANDARD_DEMO_TARGET, 300
examples) is tuned with the standard pool's recipe for the methods the default ``gain-model``
reads (lora and bitfit), and the standard pool's sources (:mod:`taskscout.pools.standard`,
shipped in the package, ranked in its per-user copy) are ranked for it: predicted gain with its
90 % interval and the likely-harmful flag, as ``taskscout rank`` does for a user's data.

``--sources bundled``: a self-contained demo on any backbone: the 5 bundled source tasks
(DEMO_SOURCES) and the target are tuned into ``--store`` to the early checkpoint (``epochs``),
embedded (TuPaTE) and ranked with ``gain-model`` (features the small pool cannot give are left out
and the ones used are printed).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Literal

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
from taskscout.pools import (
    check_standard_backbone,
    standard_pool_summary,
    standard_provenance,
    standard_recipe,
    standard_store,
)
from taskscout.predictors import get_predictor

#: the bundled target of the standard-pool demo: short texts, so its two tunings with the pool's
#: recipe (at least 180 updates each) fit the demo's few minutes on a CPU
STANDARD_DEMO_TARGET = "sms_spam"
#: its task name in the standard pool's store (the pool holds the full sms_spam task too)
DEMO_NAME = f"{STANDARD_DEMO_TARGET}_demo"


def run_standard_demo(
    *,
    predictor: str = "gain-model",
    device: str | None = None,
    threads: int | None = None,
    progress: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rank the standard pool's sources (but its own task) for the bundled
    STANDARD_DEMO_TARGET sample, tuned first with the pool's recipe under the name DEMO_NAME.
    Returns (ranking as :func:`taskscout.api.rank` gives it; timings in seconds:
    stage, seconds). Status lines go to stderr."""
    check_standard_backbone(None)
    recipe = standard_recipe()
    data_dir = demo_data_dir()
    compute = given(device=device, threads=threads)
    # the bundled target is a sample of a pool task: its own name, and that task is no source
    named = {"name": DEMO_NAME}
    pool_tasks = [t["task"] for t in standard_pool_summary()["tasks"]]
    sources = [t for t in pool_tasks if t != STANDARD_DEMO_TARGET]
    with standard_store() as pool:  # made on first use; the tunings go into it
        pool_root = pool.root
    timings = []
    methods = set(standard_provenance()["methods"])
    for method in get_predictor(predictor).reads.target_methods(methods):
        start = time.perf_counter()
        run = api.tune(
            STANDARD_DEMO_TARGET,
            method=method,
            store=pool_root,
            data_dir=data_dir,
            progress=progress,
            **named,
            **recipe,
            **compute,
        )
        seconds = time.perf_counter() - start
        timings.append({"stage": f"tune {DEMO_NAME} ({method})", "seconds": seconds})
        err.print(
            f"[green]✓[/green] {DEMO_NAME}: {method} tuned with the pool's recipe, "
            f"{len(run.dev_scores)} epochs (dev best {run.checkpoints['best'].dev_score:.1f}) "
            f"in {seconds:.1f} s"
        )
    start = time.perf_counter()
    ranking = api.rank(
        STANDARD_DEMO_TARGET,
        predictor=predictor,
        data_dir=data_dir,
        sources=sources,
        progress=progress,
        **named,
        **compute,
    )
    seconds = time.perf_counter() - start
    timings.append({"stage": "rank (LogME, features, gain model)", "seconds": seconds})
    err.print(
        f"[green]✓[/green] ranked {len(ranking)} sources of the standard pool for "
        f"{DEMO_NAME} in {seconds:.1f} s"
    )
    return ranking, pd.DataFrame(timings)


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
    sources: Annotated[
        Literal["standard", "bundled"],
        typer.Option(
            "--sources",
            help="standard: rank the standard pool's sources (shipped, MiniLM) for the bundled "
            "target; bundled: tune the 5 bundled sources too, on any backbone, into --store.",
        ),
    ] = "standard",
    store: StoreOpt = Path("taskscout-demo"),
    method: MethodOpt = "lora",
    epochs: Annotated[
        int,
        typer.Option("--epochs", min=1, help="--sources bundled: tune to this epoch (early)."),
    ] = 2,
    backbone: BackboneOpt = None,
    max_train: MaxTrainOpt = None,
    max_dev: MaxDevOpt = None,
    device: DeviceOpt = None,
    threads: ThreadsOpt = None,
    no_progress: NoProgressOpt = False,
) -> None:
    """Rank source tasks for a bundled target end to end (a few minutes on a laptop CPU): by
    default the standard pool's sources with the default gain model (--store, --method,
    --epochs, --backbone, --max-train and --max-dev apply to --sources bundled)."""
    start = time.perf_counter()
    progress = not no_progress and sys.stderr.isatty()
    with guard():
        if sources == "standard":
            bundled_only = (
                given(backbone=backbone, max_train=max_train, max_dev=max_dev)
                or str(store) != "taskscout-demo"
            )
            if bundled_only:
                raise ValueError(
                    "--store, --backbone, --max-train and --max-dev apply to --sources bundled; "
                    "the standard pool fixes its backbone (all-MiniLM-L6-v2) and recipe"
                )
            err.print(
                f"[bold]taskscout demo[/bold]: target [cyan]{DEMO_NAME}[/cyan] (bundled "
                f"{STANDARD_DEMO_TARGET} sample), "
                f"sources: the standard pool ({len(standard_pool_summary()['tasks'])} tasks), "
                "predictor gain-model"
            )
            ranking, timings = run_standard_demo(device=device, threads=threads, progress=progress)
        else:
            err.print(
                f"[bold]taskscout demo[/bold]: target [cyan]{DEMO_TARGET}[/cyan], sources "
                f"{', '.join(DEMO_SOURCES)}; {method} on {backbone or 'all-MiniLM-L6-v2'}, "
                f"{epochs} epochs; store {store}/"
            )
            ranking, timings = run_demo(
                store,
                method=method,
                epochs=epochs,
                backbone=backbone,
                max_train=max_train,
                max_dev=max_dev,
                device=device,
                threads=threads,
                progress=progress,
            )
    out.print(
        table(
            ranking,
            title=f"Sources ranked for {DEMO_TARGET if sources == 'bundled' else DEMO_NAME} by "
            "the gain model: predicted gain "
            "(% of the no-transfer score) with its 90% interval [low, high]",
        )
    )
    if "features_used" in ranking.attrs:
        err.print(f"features used: {', '.join(ranking.attrs['features_used'])}")
    title = "time per stage (s)" if sources == "standard" else "time per task (s)"
    out.print(table(timings, title=title, floats="{:.1f}"))
    where = "" if sources == "standard" else f" --store {store}"
    err.print(
        f"total {time.perf_counter() - start:.1f} s. Next: `taskscout rank my.csv --type ... "
        f"--text-col ... --label-col ...`{'' if sources == 'standard' else where}; "
        "`taskscout verify TARGET --pool PATH` measures the top picks for real."
    )


def register(app: typer.Typer) -> None:
    """Add ``demo`` to ``app``."""
    app.command()(demo)
