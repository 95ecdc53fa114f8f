"""``taskscout report``: one self-contained HTML page about a pool (and a target).

Also the pieces ``rank --report``, ``evaluate --report`` and ``study`` share: the gold options
(our CSV or TaskWeb's ``pairs.csv``), locating TaskWeb's files, writing a report (and an
optional screenshot through headless chromium).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer

from taskscout.cli.common import (
    BackboneOpt,
    CheckpointOpt,
    DataDirOpt,
    NoProgressOpt,
    PoolOpt,
    err,
    guard,
)
from taskscout.evaluation.external import load_taskweb_gold, load_taskweb_predictors, parse_tasks
from taskscout.evaluation.files import read_gold_csv, read_scores_csv
from taskscout.report import PoolReportInputs, Report, pool_report
from taskscout.report.browser import screenshot
from taskscout.studies.common import load_gold, open_study_pool, store_copy
from taskscout.studies.pool_report import pool_report_inputs

TASKWEB_ENV = "TASKSCOUT_TASKWEB_DIR"

GoldOpt = Annotated[
    Path | None,
    typer.Option("--gold", help="Gold CSV (long form target,source,gain[,performance] or wide)."),
]
TaskwebDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--taskweb-dir",
        envvar=TASKWEB_ENV,
        help="Folder with TaskWeb's pairs.csv (default: shared/benchmarks/taskweb in this "
        "folder or a parent). Used when --gold is not given.",
    ),
]
SettingOpt = Annotated[
    str, typer.Option("--gold-setting", "--setting", help="TaskWeb setting of the gold.")
]
OutOpt = Annotated[Path, typer.Option("--out", "-o", help="HTML file to write.")]
ScreenshotOpt = Annotated[
    Path | None,
    typer.Option("--screenshot", help="Also save a PNG of the page (needs chromium)."),
]


def find_taskweb_dir(given: Path | None) -> Path | None:
    """``given``, else ``shared/benchmarks/taskweb`` in the working folder or a parent."""
    if given is not None:
        return given
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        cand = folder / "shared" / "benchmarks" / "taskweb"
        if (cand / "pairs.csv").is_file():
            return cand
    return None


def resolve_gold(
    gold: Path | None,
    taskweb_dir: Path | None,
    setting: str,
    tasks: list[str],
    *,
    required: bool,
) -> tuple[pd.DataFrame | None, str]:
    """The gold among ``tasks``: ``--gold`` if given, else TaskWeb's pairs at ``setting``;
    (None, reason) when there is none and it is not ``required`` (ValueError otherwise)."""
    pairs = None
    if gold is None:
        folder = find_taskweb_dir(taskweb_dir)
        if folder is None:
            if required:
                raise ValueError(
                    f"no gold: give --gold FILE or --taskweb-dir DIR (or set {TASKWEB_ENV})"
                )
            return None, "no gold given"
        pairs = folder / "pairs.csv"
    return load_gold(gold_csv=gold, taskweb_pairs=pairs, setting=setting, tasks=tasks)


def write_report(rep: Report, out: Path, shot: Path | None) -> None:
    """Write ``rep`` to ``out`` (and a screenshot to ``shot``); say where on stderr."""
    path = rep.write(out)
    size = os.path.getsize(path)
    err.print(f"wrote {path} ({size / 1024:.0f} KiB, {len(rep.figure_ids)} figures)")
    for note in rep.notes:
        err.print(f"[yellow]omitted:[/yellow] {note}")
    if shot is not None:
        err.print(f"wrote {screenshot(path, shot)}")


def report(
    out: OutOpt,
    store: PoolOpt = Path("runs"),
    target: Annotated[
        str | None, typer.Option("--target", help="A task of the pool to rank sources for.")
    ] = None,
    gold: GoldOpt = None,
    taskweb_dir: TaskwebDirOpt = None,
    setting: SettingOpt = "ALL(avg)",
    measured: Annotated[
        Path | None,
        typer.Option(
            "--measured",
            help="Gains measured on this pool (`taskscout gains` CSV: target,source,gain,"
            "gain_std,n_seeds); shown as a heatmap with their spread.",
        ),
    ] = None,
    method: Annotated[
        str, typer.Option("--method", help="TuPaTE method of the map and the scorer.")
    ] = "lora",
    checkpoint: CheckpointOpt = "early",
    backbone: BackboneOpt = None,
    data_dir: DataDirOpt = None,
    ensemble: Annotated[int, typer.Option("--ensemble", min=1, help="Scorer members.")] = 3,
    lr: Annotated[
        str,
        typer.Option(
            "--lr",
            help="Learning rate of the light scorer, or 'search' (per fit, about 4x slower).",
        ),
    ] = "0.001",
    seed: Annotated[int, typer.Option("--seed", help="Seed of the scorer.")] = 0,
    shot: ScreenshotOpt = None,
    no_progress: NoProgressOpt = False,
) -> None:
    """Write one self-contained HTML report about the pool: the ranked sources for --target
    (predicted gain and 90 % interval, measured gain where known), a 2-D map of the task
    embeddings, the transfer-gain heatmaps, the predictors against the gold with bootstrap
    intervals and a predicted-vs-measured scatter. Works on a temporary copy of the pool."""
    with guard():
        if out.suffix.lower() not in (".html", ".htm"):
            raise ValueError(f"--out must end in .html, got {out}")
        try:
            lr_value = None if lr == "search" else float(lr)
        except ValueError as exc:
            raise ValueError(f"--lr must be a number or 'search', got {lr!r}") from exc
        if lr_value is not None and not lr_value > 0:
            raise ValueError(f"--lr must be > 0, got {lr!r}")
        measured_df = read_gold_csv(measured) if measured is not None else None
        if measured is not None:
            raw = pd.read_csv(measured)
            extra = [c for c in ("gain_std", "n_seeds") if c in raw]
            if extra:
                measured_df = measured_df.merge(raw[["target", "source", *extra]])
        with store_copy(store) as copy:
            pool = open_study_pool(copy, backbone, checkpoint, data_dir)
            tasks = pool.store.task_names(backbone=pool.backbone)
            if target is not None and target not in tasks:
                raise ValueError(f"--target {target!r} has no run in {store}; tasks: {tasks}")
            gold_df, gold_desc = resolve_gold(gold, taskweb_dir, setting, tasks, required=False)
            inp = pool_report_inputs(
                pool,
                title=f"taskscout report: {store}" + (f", target {target}" if target else ""),
                subtitle=f"pool {store} ({len(tasks)} tasks, backbone {pool.backbone}, "
                f"{checkpoint} checkpoint); gold: {gold_desc}",
                target=target,
                gold=gold_df,
                gold_description=gold_desc,
                measured=measured_df,
                measured_description=f"measured ({measured})" if measured else "measured",
                map_method=method,
                affinity_method=method,
                ensemble=ensemble,
                lr=lr_value,
                seed=seed,
                progress=not no_progress,
            )
            rep = pool_report(inp)
        write_report(rep, out, shot)


ReportOpt = Annotated[
    Path | None,
    typer.Option("--report", help="Also write a self-contained HTML report (figures inline)."),
]


def check_report_path(path: Path | None) -> None:
    """``ValueError`` unless ``path`` is None or ends in .html (checked before any work)."""
    if path is not None and path.suffix.lower() not in (".html", ".htm"):
        raise ValueError(f"--report must end in .html, got {path}")


def rank_report(
    ranking: pd.DataFrame,
    *,
    target: str,
    predictor: str,
    db,
    backbone: str | None,
    checkpoint: str,
    method: str,
    out: Path,
) -> None:
    """``rank --report``: the ranking and the pool's task map; no gold, so the heatmap and
    the predictor table are omitted with a sentence."""
    pool = open_study_pool(db.root, backbone, checkpoint)
    inp = pool_report_inputs(
        pool,
        title=f"taskscout rank: sources for {target}",
        subtitle=f"pool {db.root}; predictor {predictor}, {checkpoint} checkpoint",
        target=target,
        ranking=ranking,
        ranking_predictor=predictor,
        map_method=method if method in ("lora", "bitfit", "prefix", "prompt") else "lora",
        progress=False,
    )
    write_report(pool_report(inp), out, None)


def evaluation_frames(
    gold: Path | None,
    scores: list[Path] | None,
    *,
    no_transfer_row: str,
    taskweb_pairs: Path | None,
    setting: str,
    taskweb_gain: str,
    tasks: str | None,
    taskweb_predictors: Path | None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The gold and score frames ``evaluate`` read (same files, same restriction to
    ``tasks``), for its report; call after :func:`evaluate_files` accepted them."""
    names = parse_tasks(tasks)

    def restrict(df: pd.DataFrame) -> pd.DataFrame:
        if names is None:
            return df
        return df[df["target"].isin(names) & df["source"].isin(names)]

    if gold is not None:
        gold_df = restrict(read_gold_csv(gold, no_transfer_row=no_transfer_row))
    else:
        gold_df = load_taskweb_gold(taskweb_pairs, setting, names, gain_column=taskweb_gain)
    frames = [restrict(read_scores_csv(p)) for p in scores or []]
    if taskweb_predictors is not None:
        released = load_taskweb_predictors(taskweb_predictors, names)
        frames.append(released.merge(gold_df[["target", "source"]], on=["target", "source"]))
    return gold_df.reset_index(drop=True), pd.concat(frames, ignore_index=True)


def evaluation_report(
    gold: pd.DataFrame, scores: pd.DataFrame, *, gold_description: str, out: Path
) -> None:
    """``evaluate --report``: the gold heatmap, the predictor table with intervals and the
    scatter of the first predictor; no pool, so the ranking and the map are omitted."""
    names = list(pd.unique(scores["predictor"]))
    inp = PoolReportInputs(
        title="taskscout evaluate",
        subtitle=f"gold: {gold_description}; predictors: {', '.join(names)}",
        gold=gold,
        gold_description=gold_description,
        scores=scores,
        main_predictor=names[0] if names else None,
        notes=["No pool was given (evaluate reads files), so no ranking and no task map."],
    )
    write_report(pool_report(inp), out, None)


def register(app: typer.Typer) -> None:
    """Add ``report`` to ``app``."""
    app.command()(report)
