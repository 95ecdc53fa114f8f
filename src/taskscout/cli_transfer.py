"""``taskscout transfer`` and ``taskscout gains``: measure the transfer matrix, read its gains.

Registered on the main app by :func:`register` (called from :mod:`taskscout.cli`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from taskscout.util import console


def _csv_list(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def _seeds(value: str) -> list[int]:
    try:
        return [int(v) for v in _csv_list(value)]
    except ValueError:
        raise typer.BadParameter(f"seeds must be comma-separated integers, not {value!r}") from None


def transfer(
    targets: Annotated[str, typer.Option("--targets", help="Comma-separated target tasks.")],
    sources: Annotated[
        str | None,
        typer.Option("--sources", help="Comma-separated source tasks (default: the targets)."),
    ] = None,
    method: Annotated[
        str, typer.Option("--method", "-m", help="prompt | prefix | lora | bitfit | full")
    ] = "prompt",
    seeds: Annotated[str, typer.Option("--seeds", help="Comma-separated seeds.")] = "0",
    store: Annotated[Path, typer.Option("--store", help="Run store directory.")] = Path("runs"),
    workers: Annotated[int, typer.Option("--workers", help="Runs in parallel.")] = 1,
    executor: Annotated[
        str | None,
        typer.Option(
            "--executor",
            help="inprocess | local | ray (default: local if --workers > 1, else inprocess)",
        ),
    ] = None,
    ray_address: Annotated[
        str | None, typer.Option("--ray-address", help="Ray cluster address ('auto': running).")
    ] = None,
    threads_per_worker: Annotated[
        int | None,
        typer.Option(
            "--threads-per-worker",
            help="Torch threads per run (default: cores // workers, whatever the executor).",
        ),
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", envvar="TASKSCOUT_DATA_DIR")
    ] = None,
    backbone: Annotated[str | None, typer.Option("--backbone")] = None,
    max_train: Annotated[int | None, typer.Option("--max-train")] = 1000,
    max_dev: Annotated[int | None, typer.Option("--max-dev")] = None,
    epochs: Annotated[int, typer.Option("--epochs")] = 3,
    early_epochs: Annotated[int, typer.Option("--early-epochs")] = 2,
    batch_size: Annotated[int, typer.Option("--batch-size")] = 32,
    lr: Annotated[float | None, typer.Option("--lr", help="Default: the method's.")] = None,
    max_len: Annotated[int, typer.Option("--max-len")] = 128,
    checkpoint: Annotated[
        str, typer.Option("--checkpoint", help="Source checkpoint: best | early")
    ] = "best",
    top_k: Annotated[
        int | None, typer.Option("--top-k", help="Only the K best-ranked sources per target.")
    ] = None,
    predictor: Annotated[
        str | None, typer.Option("--predictor", help="Ranks sources for --top-k.")
    ] = None,
    retry_failed: Annotated[bool, typer.Option("--retry-failed")] = False,
    keep_state: Annotated[
        bool, typer.Option("--keep-state", help="Store each transfer's tuned target state.")
    ] = False,
    device: Annotated[
        str | None, typer.Option("--device", help="cpu | cuda | auto (default cpu)")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan and time estimate only.")
    ] = False,
) -> None:
    """Measure transfers: every source -> target pair (s != t) x seeds, resumable; sources and
    no-transfer baselines are tuned first. Gains: `taskscout gains`."""
    from taskscout.store import RunStore, StoreError
    from taskscout.transfer.executors import make_executor
    from taskscout.transfer.scheduler import (
        describe_plan,
        estimate_seconds,
        plan_matrix,
        run_matrix,
    )
    from taskscout.transfer.settings import TuneSettings

    tgts = _csv_list(targets)
    srcs = _csv_list(sources) or list(tgts)
    seed_list = _seeds(seeds)
    kind = executor or ("local" if workers > 1 else "inprocess")
    try:
        settings = TuneSettings(
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
        db = RunStore(store)
        kw = dict(
            checkpoint=checkpoint,
            device=device,
            threads=threads_per_worker,
            workers=workers,
            retry_failed=retry_failed,
            keep_state=keep_state,
        )
        plan = plan_matrix(
            db, settings, srcs, tgts, seed_list, include_transfers=top_k is None, **kw
        )
        console.print(describe_plan(plan, estimate_seconds(db, plan, workers), workers))
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
                **kw,
            )
        finally:
            pool.close()
    except (ValueError, StoreError, FileNotFoundError, ImportError) as exc:
        console.print(f"[bold red]error:[/bold red] {exc}")
        raise typer.Exit(2) from None
    console.print(
        f"done in {summary.wall_s:.1f} s: {summary.completed['tune']} tune runs, "
        f"{summary.completed['transfer']} transfers, {len(summary.failed)} failed"
    )
    for label, err in summary.failed.items():
        console.print(f"  [red]failed[/red] {label}: {err}")
    if summary.plan is not None and summary.plan.top_k:
        for t, chosen in summary.plan.top_k.items():
            console.print(f"  top-{top_k} sources for {t}: {', '.join(chosen)}")
    if summary.failed:
        raise typer.Exit(1)


def gains(
    store: Annotated[Path, typer.Option("--store", help="Run store directory.")] = Path("runs"),
    method: Annotated[str, typer.Option("--method", "-m")] = "prompt",
    checkpoint: Annotated[str, typer.Option("--checkpoint", help="best | early")] = "best",
    backbone: Annotated[str | None, typer.Option("--backbone")] = None,
    settings_hash: Annotated[str | None, typer.Option("--settings-hash")] = None,
    csv: Annotated[Path | None, typer.Option("--csv", help="Long-form gold CSV to write.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """Transfer gains from the store as long-form gold: target,source,gain,performance,
    gain_std,n_seeds (+ baseline, wall_s, examples); a target x source matrix and the compute
    the brute-force matrix took versus a single tune."""
    from rich.table import Table

    from taskscout.backbone import resolve_backbone
    from taskscout.store import RunStore, StoreError
    from taskscout.transfer.gains import cost_summary, gains_table, per_seed_gains
    from taskscout.transfer.settings import checkpoint_kind

    try:
        db = RunStore(store, create=False)
        ckpt = checkpoint_kind(checkpoint)
        bid = resolve_backbone(backbone).backbone_id if backbone else None
        table, warnings = gains_table(
            db, method=method, backbone=bid, checkpoint=ckpt, settings_hash=settings_hash
        )
        seeds, _ = per_seed_gains(
            db, method=method, backbone=bid, checkpoint=ckpt, settings_hash=settings_hash
        )
    except (ValueError, StoreError) as exc:
        console.print(f"[bold red]error:[/bold red] {exc}")
        raise typer.Exit(2) from None
    for w in warnings:
        console.print(f"[yellow]warning:[/yellow] {w}")
    if table.empty:
        console.print(f"no complete {method} transfers in {store}")
        raise typer.Exit(1)
    if csv is not None:
        table.to_csv(csv, index=False)
        console.print(f"wrote {len(table)} pairs to {csv}")
    cost = cost_summary(db, seeds)
    if as_json:
        typer.echo(json.dumps({"gains": table.to_dict(orient="records"), "cost": cost}))
        return
    from taskscout.cli import out

    targets = sorted(table["target"].unique())
    sources = sorted(table["source"].unique())
    grid = Table(title=f"{method} transfer gain (points x100; mean over seeds) source -> target")
    grid.add_column("source \\ target")
    for t in targets:
        grid.add_column(t, justify="right")
    lookup = {(r.source, r.target): r for r in table.itertuples()}
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
    base = table.groupby("target")["baseline"].first()
    grid.add_row("[dim]baseline[/dim]", *[f"[dim]{base[t]:.1f}[/dim]" for t in targets])
    out.print(grid)
    out.print(
        f"{len(table)} pairs, {int(table['n_seeds'].sum())} transfer runs; "
        f"{(table['gain'] > 0).mean() * 100:.0f}% of pairs gain; mean gain "
        f"{table['gain'].mean():+.2f}, best {table['gain'].max():+.2f}"
    )
    if cost:
        out.print(
            f"compute: {cost['transfer_runs']} transfer runs {cost['transfer_s']:.0f} s "
            f"({cost['transfer_examples']:,} examples) + {cost['tune_runs']} tune runs "
            f"{cost['tune_s']:.0f} s = {cost['total_s']:.0f} s, i.e. "
            f"{cost['tunes_equivalent']:.1f}x a single tune ({cost['mean_tune_s']:.1f} s); "
            "ranking a new target costs one tune"
        )


def register(app: typer.Typer) -> None:
    """Add ``transfer`` and ``gains`` to the main CLI."""
    app.command()(transfer)
    app.command()(gains)
