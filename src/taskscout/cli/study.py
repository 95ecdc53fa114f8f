"""``taskscout study tupate|feng``: rerun a paper's study on a pool and a gold, write a report."""

from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from taskscout.backbone import resolve_backbone
from taskscout.cli.common import (
    BackboneOpt,
    DataDirOpt,
    DeviceOpt,
    NoProgressOpt,
    PoolOpt,
    ThreadsOpt,
    err,
    flag,
    guard,
)
from taskscout.cli.report import (
    GoldOpt,
    OutOpt,
    ScreenshotOpt,
    SettingOpt,
    TaskwebDirOpt,
    resolve_gold,
    write_report,
)
from taskscout.store import RunStore
from taskscout.studies import StudyInputs, feng_study, tupate_study
from taskscout.studies.common import store_copy
from taskscout.util import set_torch_threads

app = typer.Typer(no_args_is_help=True, help="Rerun a paper's study and write an HTML report.")

SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of every draw and fit.")]


def _inputs(
    store, gold, taskweb_dir, setting, backbone, data_dir, no_progress, seed, device, threads
):
    if threads is not None:  # every step of the study (fits too), not only the re-tunes
        set_torch_threads(threads)
    # opening a store may touch it: read a copy
    with store_copy(store) as copy, RunStore(copy, create=False) as db:
        tasks = db.task_names(backbone=resolve_backbone(backbone).backbone_id)
    gold_df, desc = resolve_gold(gold, taskweb_dir, setting, tasks, required=True)
    return StudyInputs(
        store=Path(store),
        gold=gold_df,
        gold_description=desc,
        backbone=backbone,
        data_dir=data_dir,
        progress=not no_progress,
        seed=seed,
        command="taskscout " + shlex.join(sys.argv[1:]),
        device=device,
        threads=threads,
    )


def _csv_ints(text: str, what: str) -> tuple[int, ...]:
    try:
        values = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        values = ()
    if not values or min(values) < 1:
        raise ValueError(f"{what} must be comma-separated integers >= 1, got {text!r}")
    return values


@app.command()
def tupate(
    out: OutOpt,
    store: PoolOpt = Path("runs"),
    gold: GoldOpt = None,
    taskweb_dir: TaskwebDirOpt = None,
    setting: SettingOpt = "ALL(avg)",
    limited: Annotated[
        int,
        typer.Option(
            "--limited",
            min=0,
            help="Examples per task of the limited-data pool (0: skip that section).",
        ),
    ] = 100,
    backbone: BackboneOpt = None,
    data_dir: DataDirOpt = None,
    seed: SeedOpt = 0,
    shot: ScreenshotOpt = None,
    device: DeviceOpt = None,
    threads: ThreadsOpt = None,
    no_progress: NoProgressOpt = False,
) -> None:
    """Zhou et al. 2022: each method and the ensembles, early vs best checkpoint, in-class vs
    all-class sources, limited vs full source data; beside random, datasize and the source
    prior with 90 % bootstrap intervals over targets."""
    with guard():
        inp = _inputs(
            store,
            gold,
            taskweb_dir,
            setting,
            backbone,
            data_dir,
            no_progress,
            seed,
            device,
            threads,
        )
        start = time.perf_counter()
        study = tupate_study(inp, limited=limited or None)
        err.print(f"study took {time.perf_counter() - start:.0f} s")
        write_report(study.report, out, shot)


@app.command()
def feng(
    out: OutOpt,
    store: PoolOpt = Path("runs"),
    gold: GoldOpt = None,
    taskweb_dir: TaskwebDirOpt = None,
    setting: SettingOpt = "ALL(avg)",
    checkpoint: Annotated[str, typer.Option("--checkpoint", help="early | best")] = "early",
    ensemble: Annotated[
        int, typer.Option("--ensemble", min=1, max=10, help="Members of the light scorer.")
    ] = 1,
    backbone_scorer: Annotated[
        bool,
        flag(
            "--backbone-scorer/--no-backbone-scorer",
            help="Also the paper's transformer scorer, in every section (1 member; a "
            "leave-one-target-out fold of 110 pairs: ~10-15 s on 2 CPU cores).",
        ),
    ] = True,
    backbone_epochs: Annotated[
        int, typer.Option("--backbone-epochs", min=1, help="Epochs of the backbone scorer.")
    ] = 10,
    m_values: Annotated[
        str, typer.Option("--m", help="Training pairs per fold of the M ablation ('all' too).")
    ] = "50,100,all",
    betas: Annotated[str, typer.Option("--betas", help="Betas of the beta ablation.")] = "0.5,1,2",
    low_resource: Annotated[
        str, typer.Option("--low-resource", help="Target training sizes ('' to skip).")
    ] = "100,500",
    low_targets: Annotated[
        str | None,
        typer.Option("--low-targets", help="Targets re-tuned small (default: every target)."),
    ] = None,
    backbone: BackboneOpt = None,
    data_dir: DataDirOpt = None,
    seed: SeedOpt = 0,
    shot: ScreenshotOpt = None,
    device: DeviceOpt = None,
    threads: ThreadsOpt = None,
    no_progress: NoProgressOpt = False,
) -> None:
    """Feng et al. 2023: the six prompt-similarity metrics, the affinity scorer (light and
    backbone) with ablations of M and beta, leave-one-task-type-out, low-resource targets;
    beside random, datasize and the source prior with 90 % bootstrap intervals over targets."""
    with guard():
        ms = tuple(
            None if x.strip() == "all" else _csv_ints(x, "--m")[0]
            for x in m_values.split(",")
            if x.strip()
        )
        try:
            beta_values = tuple(float(b) for b in betas.split(",") if b.strip())
        except ValueError as exc:
            raise ValueError(f"--betas must be comma-separated numbers, got {betas!r}") from exc
        if not beta_values or min(beta_values) <= 0:
            raise ValueError(f"--betas must be > 0, got {betas!r}")
        sizes = _csv_ints(low_resource, "--low-resource") if low_resource.strip() else ()
        targets = tuple(t.strip() for t in low_targets.split(",")) if low_targets else None
        inp = _inputs(
            store,
            gold,
            taskweb_dir,
            setting,
            backbone,
            data_dir,
            no_progress,
            seed,
            device,
            threads,
        )
        start = time.perf_counter()
        study = feng_study(
            inp,
            checkpoint=checkpoint,
            ensemble=ensemble,
            backbone_kind=backbone_scorer,
            backbone_epochs=backbone_epochs,
            m_values=ms,
            betas=beta_values,
            low_resource=sizes,
            low_targets=targets,
        )
        err.print(f"study took {time.perf_counter() - start:.0f} s")
        write_report(study.report, out, shot)
