"""The demo: rank 5 bundled source tasks for a held-out bundled target, end to end on CPU.

Tunes LoRA on each of the bundled demo tasks (DEMO_SOURCES and DEMO_TARGET, <= 300 training
examples each) to the early checkpoint (2 epochs) on the packaged all-MiniLM-L6-v2, embeds them
(TuPaTE, mean over layers) and ranks the sources for the target by cosine similarity.
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from taskscout import api
from taskscout.data import DEMO_SOURCES, DEMO_TARGET, demo_data_dir
from taskscout.util import console


def run_demo(
    store: str | Path = "taskscout-demo",
    *,
    method: str = "lora",
    epochs: int = 2,
    backbone: str | None = None,
    progress: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Returns (ranking of the sources for the target, per-step timings)."""
    data_dir = demo_data_dir()
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
        console.print(
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
    )
    console.print(
        f"[green]✓[/green] ranked {len(DEMO_SOURCES)} sources for {DEMO_TARGET} in "
        f"{time.perf_counter() - start:.2f} s"
    )
    return ranking, pd.DataFrame(timings)
