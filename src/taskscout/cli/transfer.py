"""``taskscout transfer`` and ``taskscout gains``: measure the transfer matrix, read its gains.

Both default to ``--method prompt`` (the method of the transfer literature this reproduces) and
``--checkpoint best`` (a transfer initialises the target from the source's best checkpoint),
unlike tune / embed / rank (``lora``, ``early``).
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.table import Table

from taskscout.backbone import resolve_backbone
from taskscout.cli.common import (
    BackboneOpt,
    Checkpoint,
    CsvOpt,
    DataDirOpt,
    DeviceOpt,
    JsonOpt,
    LrOpt,
    MaxDevOpt,
    NoProgressOpt,
    StoreOpt,
    TuneMethod,
    check_epochs,
    csv_list,
    err,
    fail,
    flag,
    guard,
    open_store,
    out,
)
from taskscout.store import RunStore
from taskscout.transfer.executors import make_executor
from taskscout.transfer.gains import cost_summary, gains_table, per_seed_gains
from taskscout.transfer.scheduler import describe_plan, estimate_seconds, plan_matrix, run_matrix
from taskscout.tuning.config import TuneConfig, checkpoint_kind

TransferMethodOpt = Annotated[
    TuneMethod,
    typer.Option(
        "--method",
        "-m",
        help="prompt (default: the transfer papers' method) | prefix | lora | bitfit | full "
        "(full intermediate fine-tuning).",
    ),
]
SourceCheckpointOpt = Annotated[
    Checkpoint,
    typer.Option(
        "--checkpoint",
        help="Source checkpoint a transfer starts from: best (default: transfers initialise "
        "from the source's best checkpoint) | early; late is an alias of best.",
    ),
]


def _seeds(value: str) -> list[int]:
    try:
        return [int(v) for v in csv_list(value)]
    except ValueError:
        raise typer.BadParameter(
            f"seeds must be comma-separated integers, not {value!r}", param_hint="'--seeds'"
        ) from None


def transfer(
    targets: Annotated[str, typer.Option("--targets", help="Comma-separated target tasks.")],
    sources: Annotated[
        str | None,
        typer.Option("--sources", help="Comma-separated source tasks (default: the targets)."),
    ] = None,
    method: TransferMethodOpt = "prompt",
    seeds: Annotated[str, typer.Option("--seeds", help="Comma-separated seeds.")] = "0",
    store: StoreOpt = Path("runs"),
    workers: Annotated[int, typer.Option("--workers", min=1, help="Runs in parallel.")] = 1,
    executor: Annotated[
        Literal["inprocess", "local", "ray"] | None,
        typer.Option(
            "--executor",
            help="inprocess | local | ray (default: local if --workers > 1, else inprocess)",
        ),
    ] = None,
    ray_address: Annotated[
        str | None, typer.Option("--ray-address", help="Ray cluster address ('auto': running).")
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option(
            "--threads",
            "--threads-per-worker",
            min=1,
            help="Torch threads per run (default: cores // workers, whatever the executor).",
        ),
    ] = None,
    data_dir: DataDirOpt = None,
    backbone: BackboneOpt = None,
    max_train: Annotated[
        int | None,
        typer.Option("--max-train", min=1, help="Subsample train to this many (seeded)."),
    ] = 1000,
    max_dev: MaxDevOpt = None,
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="Epochs of every run.")] = 3,
    early_epochs: Annotated[
        int,
        typer.Option("--early-epochs", min=1, help="Epoch of the early checkpoint (<= --epochs)."),
    ] = 2,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Batch size.")] = 32,
    lr: LrOpt = None,
    max_len: Annotated[int, typer.Option("--max-len", min=8, help="Max tokens per example.")] = 128,
    checkpoint: SourceCheckpointOpt = "best",
    top_k: Annotated[
        int | None,
        typer.Option("--top-k", min=1, help="Only the K best-ranked sources per target."),
    ] = None,
    predictor: Annotated[
        str | None, typer.Option("--predictor", help="Ranks sources for --top-k.")
    ] = None,
    retry_failed: Annotated[
        bool, flag("--retry-failed", help="Run again the transfers that failed before.")
    ] = False,
    keep_state: Annotated[
        bool, flag("--keep-state", help="Store each transfer's tuned target state.")
    ] = False,
    device: DeviceOpt = None,
    dry_run: Annotated[
        bool, flag("--dry-run", help="Print the plan and time estimate only.")
    ] = False,
    no_progress: NoProgressOpt = False,
) -> None:
    """Measure transfers: every source -> target pair (s != t) x seeds, resumable; sources and
    no-transfer baselines are tuned first. Gains: `taskscout gains`."""
    check_epochs(epochs, early_epochs)
    tgts = csv_list(targets)
    srcs = csv_list(sources) or list(tgts)
    seed_list = _seeds(seeds)
    kind = executor or ("local" if workers > 1 else "inprocess")
    with guard(), contextlib.ExitStack() as stack:
        settings = TuneConfig.from_options(
            method=method,
            backbone=backbone,
            data_dir=None if data_dir is None else str(data_dir),
            max_train=max_train,
            max_dev=max_dev,
            epochs=epochs,
            early_epochs=early_epochs,
            batch_size=batch_size,
            lr=lr,
            max_len=max_len,
        )
        if dry_run and not (Path(store) / "store.sqlite").exists():
            # a plan changes nothing: against a store that does not exist yet, plan on an
            # empty scratch store instead of creating the user's
            scratch = tempfile.TemporaryDirectory(prefix="taskscout-plan-")
            stack.callback(scratch.cleanup)
            db = RunStore(scratch.name)
        else:
            db = RunStore(store)
        stack.callback(db.close)
        kw = dict(
            checkpoint=checkpoint,
            device=device,
            threads=threads,
            workers=workers,
            retry_failed=retry_failed,
            keep_state=keep_state,
        )
        plan = plan_matrix(
            db, settings, srcs, tgts, seed_list, include_transfers=top_k is None, **kw
        )
        err.print(describe_plan(plan, estimate_seconds(db, plan, workers), workers))
        if dry_run:
            return
        pool = make_executor(kind, workers, plan.threads, ray_address=ray_address, device=device)
        try:
            summary = run_matrix(
                db,
                settings,
                srcs,
                tgts,
                seed_list,
                executor=pool,
                top_k=top_k,
                predictor=predictor,
                progress=not no_progress,
                **kw,
            )
        finally:
            pool.close()
    err.print(
        f"done in {summary.wall_s:.1f} s: {summary.completed['tune']} tune runs, "
        f"{summary.completed['transfer']} transfers, {len(summary.failed)} failed"
    )
    for label, error in summary.failed.items():
        err.print(f"  [red]failed[/red] {label}: {error}")
    if summary.plan is not None and summary.plan.top_k:
        for t, chosen in summary.plan.top_k.items():
            err.print(f"  top-{top_k} sources for {t}: {', '.join(chosen)}")
    if summary.failed:
        raise typer.Exit(1)


def gains(
    store: StoreOpt = Path("runs"),
    method: TransferMethodOpt = "prompt",
    checkpoint: SourceCheckpointOpt = "best",
    backbone: BackboneOpt = None,
    settings_hash: Annotated[
        str | None,
        typer.Option("--settings-hash", help="Only transfers of these tuning settings."),
    ] = None,
    csv: CsvOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Transfer gains from the store as long-form gold: target,source,gain,performance,
    gain_std,n_seeds (+ baseline, wall_s, examples); a target x source matrix and the compute
    the brute-force matrix took versus a single tune. Reads the store only."""
    with guard():
        db = open_store(store)
        ckpt = checkpoint_kind(checkpoint)
        bid = resolve_backbone(backbone).backbone_id if backbone else None
        frame, warnings = gains_table(
            db, method=method, backbone=bid, checkpoint=ckpt, settings_hash=settings_hash
        )
        seeds, _ = per_seed_gains(
            db, method=method, backbone=bid, checkpoint=ckpt, settings_hash=settings_hash
        )
    for w in warnings:
        err.print(f"[yellow]warning:[/yellow] {w}")
    if frame.empty:
        fail(f"no complete {method} transfers in {store}", code=1)
    if csv == "-":
        typer.echo(frame.to_csv(index=False), nl=False)
        return
    if csv is not None:
        frame.to_csv(csv, index=False)
        err.print(f"wrote {len(frame)} pairs to {csv}")
    cost = cost_summary(db, seeds)
    if as_json:
        typer.echo(json.dumps({"gains": frame.to_dict(orient="records"), "cost": cost}))
        return
    out.print(_grid(frame, method))
    out.print(
        f"{len(frame)} pairs, {int(frame['n_seeds'].sum())} transfer runs; "
        f"{(frame['gain'] > 0).mean() * 100:.0f}% of pairs gain; mean gain "
        f"{frame['gain'].mean():+.2f}, best {frame['gain'].max():+.2f}"
    )
    if cost:
        out.print(
            f"compute: {cost['transfer_runs']} transfer runs {cost['transfer_s']:.0f} s "
            f"({cost['transfer_examples']:,} examples) + {cost['tune_runs']} tune runs "
            f"{cost['tune_s']:.0f} s = {cost['total_s']:.0f} s, i.e. "
            f"{cost['tunes_equivalent']:.1f}x a single tune ({cost['mean_tune_s']:.1f} s); "
            "ranking a new target costs one tune"
        )


def _grid(frame, method: str) -> Table:
    """The source x target matrix of mean gains (green > 0, red <= 0, ± std over seeds)."""
    targets = sorted(frame["target"].unique())
    sources = sorted(frame["source"].unique())
    grid = Table(title=f"{method} transfer gain (points x100; mean over seeds) source -> target")
    grid.add_column("source \\ target")
    for t in targets:
        grid.add_column(t, justify="right")
    lookup = {(r.source, r.target): r for r in frame.itertuples()}
    for s in sources:
        cells = []
        for t in targets:
            r = lookup.get((s, t))
            if r is None:
                cells.append("")
            else:
                std = "" if r.gain_std != r.gain_std else f"±{r.gain_std:.1f}"
                color = "green" if r.gain > 0 else "red"
                cells.append(f"[{color}]{r.gain:+.1f}[/{color}]{std}")
        grid.add_row(s, *cells)
    base = frame.groupby("target")["baseline"].first()
    grid.add_row("[dim]baseline[/dim]", *[f"[dim]{base[t]:.1f}[/dim]" for t in targets])
    return grid


def register(app: typer.Typer) -> None:
    """Add ``transfer`` and ``gains`` to ``app``."""
    app.command()(transfer)
    app.command()(gains)
