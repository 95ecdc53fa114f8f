"""``taskscout transfer`` and ``taskscout gains``: measure the transfer matrix, read its gains.

Both default to the measured protocol (``benchmarks/README.md``, "ground truth"): ``--method
lora``, 500 training examples per task, dev sets capped at 1,000 rows (seeded, label-stratified;
``--max-dev``; the cap is part of every run's settings), the step budget ``--min-steps 180`` (12
epochs at 500 examples), 3 paired seeds (a transfer and its no-transfer baseline share the seed)
and ``--checkpoint best`` (a transfer initialises the target from the source's best checkpoint).
``transfer --adaptive`` races each target's sources (:mod:`taskscout.transfer.adaptive`).
"""

from __future__ import annotations

import contextlib
import json
import math
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
    NoProgressOpt,
    PoolOpt,
    PrecisionOpt,
    StoreOpt,
    ThreadsOpt,
    TuneMethod,
    check_epochs,
    csv_list,
    err,
    fail,
    flag,
    guard,
    min_steps_option,
    open_store,
    out,
    output_folder,
    precision_option,
    table,
)
from taskscout.store import RunStore
from taskscout.transfer.adaptive import RaceResult, run_adaptive
from taskscout.transfer.executors import make_executor
from taskscout.transfer.gains import (
    DEFAULT_LEVEL,
    cost_summary,
    gains_table,
    per_seed_export,
    per_seed_gains,
    reliability_by_target,
    uncertainty_summary,
)
from taskscout.transfer.scheduler import describe_plan, estimate_seconds, plan_matrix, run_matrix
from taskscout.transfer.verify import verify as run_verify
from taskscout.tuning.config import RECIPE_MIN_STEPS, TuneConfig, checkpoint_kind

TransferMethodOpt = Annotated[
    TuneMethod,
    typer.Option(
        "--method",
        "-m",
        help="lora (default: the measured protocol) | full (full intermediate fine-tuning, "
        "the stronger signal where measured) | prompt | prefix | bitfit.",
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
    method: TransferMethodOpt = "lora",
    seeds: Annotated[
        str | None,
        typer.Option(
            "--seeds",
            help="Comma-separated seeds (default 0,1,2: paired seeds, the fewest that give an "
            "interval; with --adaptive: the ordered seeds a pair may use, default 0,1,2,3,4).",
        ),
    ] = None,
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
    ] = 500,
    max_dev: Annotated[
        int,
        typer.Option(
            "--max-dev",
            min=1,
            help="Cap dev sets at this many rows (seeded, label-stratified sample).",
        ),
    ] = 1000,
    epochs: Annotated[
        int, typer.Option("--epochs", min=1, help="Epochs of every run (at least).")
    ] = 3,
    early_epochs: Annotated[
        int | None,
        typer.Option(
            "--early-epochs",
            min=1,
            help="Epoch of the early checkpoint (<= --epochs; default: 2/3 of the epochs run).",
        ),
    ] = None,
    min_steps: Annotated[
        int,
        typer.Option(
            "--min-steps",
            min=0,
            help="Step budget: at least this many optimiser updates per run (the recipe; more "
            "epochs for small tasks, at most 50). 0: none.",
        ),
    ] = RECIPE_MIN_STEPS,
    precision: PrecisionOpt = "auto",
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
    adaptive: Annotated[
        bool,
        flag(
            "--adaptive",
            help="Race the sources: start with --start-seeds seeds per pair, add seeds only to "
            "pairs still tied with the target's best, stop when it is separated or a budget "
            "is spent.",
        ),
    ] = False,
    start_seeds: Annotated[
        int,
        typer.Option(
            "--start-seeds",
            min=1,
            help="--adaptive: seeds every pair starts with (3: the fewest paired seeds that "
            "can separate two sources).",
        ),
    ] = 3,
    max_runs: Annotated[
        int | None,
        typer.Option(
            "--max-runs", min=1, help="--adaptive: budget of training runs (transfers + tunes)."
        ),
    ] = None,
    no_progress: NoProgressOpt = False,
) -> None:
    """Measure transfers: every source -> target pair (s != t) x seeds, resumable; sources and
    no-transfer baselines are tuned first. Gains: `taskscout gains`."""
    check_epochs(epochs, early_epochs)
    tgts = csv_list(targets)
    srcs = csv_list(sources) or list(tgts)
    seed_list = _seeds(seeds or ("0,1,2,3,4" if adaptive else "0,1,2"))
    if adaptive and top_k is not None:
        fail("--adaptive races all given sources; choose them with --sources, not --top-k")
    if adaptive and start_seeds > len(seed_list):
        fail(f"--start-seeds {start_seeds} exceeds the {len(seed_list)} seeds of --seeds")
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
            min_steps=min_steps_option(min_steps),
            bf16=precision_option(precision),
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
        first = seed_list[:start_seeds] if adaptive else seed_list
        plan = plan_matrix(db, settings, srcs, tgts, first, include_transfers=top_k is None, **kw)
        if adaptive:
            err.print(
                f"adaptive: first round {len(first)} seed(s) per pair; then more seeds, up to "
                f"{len(seed_list)} ({','.join(map(str, seed_list))}), only for pairs still tied "
                f"with the best; run budget {max_runs or 'none'}"
            )
        err.print(describe_plan(plan, estimate_seconds(db, plan, workers), workers))
        if dry_run:
            return
        pool = make_executor(kind, workers, plan.threads, ray_address=ray_address, device=device)
        if adaptive:
            with pool:
                race, failed = run_adaptive(
                    db,
                    settings,
                    srcs,
                    tgts,
                    seed_list,
                    start_seeds=start_seeds,
                    max_runs=max_runs,
                    executor=pool,
                    progress=not no_progress,
                    on_round=_print_round,
                    **kw,
                )
            _print_race(race, failed)
            if failed:
                raise typer.Exit(1)
            return
        with pool:  # Ctrl-C: the workers stop too; every finished run is in the store
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


def _print_round(n: int, decisions) -> None:
    parts = [
        f"{t}: best {d.best}, {len(d.contenders)} tied"
        + (f", +1 seed for {len(d.grow)}" if d.grow else f" ({d.reason})")
        for t, d in decisions.items()
    ]
    err.print(f"round {n}: " + "; ".join(parts))


def _print_race(race: RaceResult, failed: dict[str, str]) -> None:
    """The race's outcome per target (stdout) and the compute it saved (stdout)."""
    table = Table(title="adaptive seeds: best source per target")
    for col in ("target", "best", "separated", "tied with best", "seeds per pair", "stopped"):
        table.add_column(col)
    for t, o in race.outcomes.items():
        counts = sorted(o.seeds.values())
        table.add_row(
            t,
            str(o.best),
            "yes" if o.separated else "no",
            ", ".join(c for c in o.contenders if c != o.best) or "-",
            f"{counts[0]}-{counts[-1]}" if counts[0] != counts[-1] else str(counts[0]),
            o.reason,
        )
    out.print(table)
    r, f, m = race.runs, race.fixed, race.fixed_max
    out.print(
        f"runs used: {r['transfers']} transfers + {r['tunes']} tune runs = {r['total']} in "
        f"{race.rounds} round(s); a fixed design with the same seeds per target for every pair "
        f"needs {f['total']} ({f['transfers']} + {f['tunes']}): saved {race.saved * 100:.0f}%; "
        f"all {len(race.seeds)} seeds for every pair: {m['total']}"
    )
    for label, error in failed.items():
        err.print(f"  [red]failed[/red] {label}: {error}")


def gains(
    store: StoreOpt = Path("runs"),
    method: TransferMethodOpt = "lora",
    checkpoint: SourceCheckpointOpt = "best",
    backbone: BackboneOpt = None,
    settings_hash: Annotated[
        str | None,
        typer.Option("--settings-hash", help="Only transfers of these tuning settings."),
    ] = None,
    per_seed: Annotated[
        bool,
        flag(
            "--per-seed",
            help="The raw per-seed rows instead: target,source,method,seed,score,"
            "baseline_score,gain (+ max_dev, dev_examples).",
        ),
    ] = False,
    level: Annotated[
        float,
        typer.Option("--level", min=0.5, max=0.999, help="Two-sided interval level."),
    ] = DEFAULT_LEVEL,
    csv: CsvOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Transfer gains from the store as long-form gold: target,source,gain,performance,
    gain_std,n_seeds, baseline, wall_s, examples, gain_se, ci_low, ci_high (t interval over
    paired seeds), excludes_zero, tied_best (cannot be told apart from the target's best),
    max_dev, dev_examples; a target x source matrix and the compute the brute-force matrix
    took versus a single tune. Reads the store only."""
    with guard():
        db = open_store(store)
        ckpt = checkpoint_kind(checkpoint)
        bid = resolve_backbone(backbone).backbone_id if backbone else None
        frame, warnings = gains_table(
            db,
            method=method,
            backbone=bid,
            checkpoint=ckpt,
            settings_hash=settings_hash,
            level=level,
        )
        seeds, _ = per_seed_gains(
            db, method=method, backbone=bid, checkpoint=ckpt, settings_hash=settings_hash
        )
    for w in warnings:
        err.print(f"[yellow]warning:[/yellow] {w}")
    if frame.empty:
        fail(f"no complete {method} transfers in {store}", code=1)
    if per_seed:
        _emit_per_seed(per_seed_export(seeds), csv, as_json)
        return
    if csv == "-":
        typer.echo(frame.to_csv(index=False), nl=False)
        return
    if csv is not None:
        frame.to_csv(csv, index=False)
        err.print(f"wrote {len(frame)} pairs to {csv}")
    cost = cost_summary(db, seeds)
    summary = uncertainty_summary(frame)
    summary["reliability"] = reliability_by_target(seeds)
    if as_json:
        records = json.loads(frame.to_json(orient="records"))
        summary["reliability"] = {  # JSON has no NaN / Infinity: null
            t: {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                for k, v in r.items()}
            for t, r in summary["reliability"].items()
        }  # fmt: skip
        typer.echo(json.dumps({"gains": records, "uncertainty": summary, "cost": cost}))
        return
    out.print(_grid(frame, method, level))
    out.print(
        f"{len(frame)} pairs, {int(frame['n_seeds'].sum())} transfer runs; "
        f"{(frame['gain'] > 0).mean() * 100:.0f}% of pairs gain; mean gain "
        f"{frame['gain'].mean():+.2f}, best {frame['gain'].max():+.2f}"
    )
    single = summary["pairs"] - summary["pairs_with_interval"]
    if summary["pairs_with_interval"]:
        out.print(
            f"{level * 100:g}% t intervals over paired seeds: "
            f"{summary['excludes_zero_share'] * 100:.0f}% of {summary['pairs_with_interval']} "
            f"pairs exclude zero; |gain| > 2 SE for {summary['gain_over_2se_share'] * 100:.0f}%"
        )
    if single:
        out.print(f"{single} pair(s) have one seed: no interval (measure more seeds)")
    tied = ", ".join(f"{t} {n}" for t, n in summary["tied_with_best"].items())
    out.print(f"sources that cannot be told apart from the best (incl. it), per target: {tied}")
    if summary["reliability"]:
        out.print(
            "seed noise against the sources (ICC(3,1) over the sources measured with every "
            "seed: the expected correlation of two seeds' gains; n seeds: the seeds a mean "
            "needs for 0.5):"
        )
        for t, r in summary["reliability"].items():
            out.print(
                f"  {t}: sources differ p {r['p_value']:.3g}; source sd {r['sd_source']:.2f}, "
                f"seed noise sd {r['sd_noise']:.2f} points; one seed {r['icc']:.2f}, "
                f"a {r['seeds']}-seed mean "
                + (f"{r['icc_mean']:.2f}" if not r["icc"] <= 0 else "<= 0")
                + f"; n seeds {r['seeds_for_goal']}"
            )
    if cost:
        out.print(
            f"compute: {cost['transfer_runs']} transfer runs {cost['transfer_s']:.0f} s "
            f"({cost['transfer_examples']:,} examples) + {cost['tune_runs']} tune runs "
            f"{cost['tune_s']:.0f} s = {cost['total_s']:.0f} s, i.e. "
            f"{cost['tunes_equivalent']:.1f}x a single tune ({cost['mean_tune_s']:.1f} s); "
            "ranking a new target costs one tune"
        )


def _emit_per_seed(rows, csv: str | None, as_json: bool) -> None:
    if csv == "-":
        typer.echo(rows.to_csv(index=False), nl=False)
        return
    if csv is not None:
        rows.to_csv(csv, index=False)
        err.print(f"wrote {len(rows)} per-seed rows to {csv}")
    if as_json:
        typer.echo(rows.to_json(orient="records"))
    elif csv is None:
        typer.echo(rows.to_csv(index=False), nl=False)


def _grid(frame, method: str, level: float = DEFAULT_LEVEL) -> Table:
    """The source x target matrix of mean gains (green > 0, red <= 0, ± standard error over
    paired seeds; * the interval excludes zero; = tied with the target's best)."""
    targets = sorted(frame["target"].unique())
    sources = sorted(frame["source"].unique())
    grid = Table(
        title=f"{method} transfer gain (points x100; mean ± SE over paired seeds; * "
        f"{level * 100:g}% interval excludes 0; = tied with the best) source -> target"
    )
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
                se = "" if r.gain_se != r.gain_se else f"±{r.gain_se:.1f}"
                star = "*" if r.n_seeds > 1 and bool(r.excludes_zero) else ""
                tie = "=" if r.tied_best else ""
                color = "green" if r.gain > 0 else "red"
                cells.append(f"[{color}]{r.gain:+.1f}[/{color}]{se}{star}{tie}")
        grid.add_row(s, *cells)
    base = frame.groupby("target")["baseline"].first()
    grid.add_row("[dim]baseline[/dim]", *[f"[dim]{base[t]:.1f}[/dim]" for t in targets])
    return grid


def verify(
    target: Annotated[str, typer.Argument(help="Target task (a catalog or bundled task name).")],
    top_k: Annotated[
        int, typer.Option("--top-k", min=1, help="Measure the k sources ranked highest.")
    ] = 3,
    predictor: Annotated[
        str, typer.Option("--predictor", help="Predictor that ranks the sources.")
    ] = "default",
    sources: Annotated[
        str | None,
        typer.Option("--sources", help="Comma-separated candidate sources (default: the pool)."),
    ] = None,
    method: Annotated[
        TuneMethod,
        typer.Option("--method", "-m", help="Method of the measured runs (lora: exportable)."),
    ] = "lora",
    seeds: Annotated[
        str, typer.Option("--seeds", help="Ordered seeds a pair may use (paired with baseline).")
    ] = "0,1,2,3,4",
    start_seeds: Annotated[
        int,
        typer.Option(
            "--start-seeds",
            min=2,
            help="Seeds every pair starts with (3: the fewest paired seeds that can separate "
            "two sources).",
        ),
    ] = 3,
    max_runs: Annotated[
        int | None, typer.Option("--max-runs", min=1, help="Budget of training runs in all.")
    ] = None,
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out",
            callback=output_folder,
            help="Save the best transferred model here as a PEFT adapter folder with its head.",
        ),
    ] = None,
    store: PoolOpt = Path("runs"),
    data_dir: DataDirOpt = None,
    backbone: BackboneOpt = None,
    max_train: Annotated[
        int | None,
        typer.Option("--max-train", min=1, help="Subsample train to this many (seeded)."),
    ] = 500,
    max_dev: Annotated[
        int, typer.Option("--max-dev", min=1, help="Cap dev sets (seeded, stratified).")
    ] = 1000,
    epochs: Annotated[
        int, typer.Option("--epochs", min=1, help="Epochs of every run (at least).")
    ] = 3,
    min_steps: Annotated[
        int,
        typer.Option(
            "--min-steps", min=0, help="Step budget of every run (the recipe: 180). 0: none."
        ),
    ] = RECIPE_MIN_STEPS,
    precision: PrecisionOpt = "auto",
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Batch size.")] = 32,
    lr: LrOpt = None,
    device: DeviceOpt = None,
    threads: ThreadsOpt = None,
    as_json: JsonOpt = False,
    no_progress: NoProgressOpt = False,
) -> None:
    """Check a pick for real: rank the pool's sources for TARGET, measure the top-k and the
    no-transfer baseline with paired seeds (adding seeds only while the best is not yet
    separated), print measured gains with 90 % intervals beside the predictions, and save the
    best transferred model (--out) as a PEFT adapter folder with its task head."""
    seed_list = _seeds(seeds)
    with guard():
        settings = TuneConfig.from_options(
            method=method,
            backbone=backbone,
            data_dir=None if data_dir is None else str(data_dir),
            max_train=max_train,
            max_dev=max_dev,
            epochs=epochs,
            min_steps=min_steps_option(min_steps),
            bf16=precision_option(precision),
            batch_size=batch_size,
            lr=lr,
        )
        result = run_verify(
            open_store(store),
            target,
            settings,
            predictor=predictor,
            top_k=top_k,
            sources=csv_list(sources) or None,
            seeds=seed_list,
            start_seeds=start_seeds,
            max_runs=max_runs,
            out=out_dir,
            device=device,
            threads=threads,
            progress=not no_progress,
        )
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2, default=str))
    else:
        outcome = result.race.outcomes.get(result.target)
        title = (
            f"{result.target}: measured gains (metric points, {int(DEFAULT_LEVEL * 100)} % "
            f"interval) beside {result.predictor}'s predictions ({result.predicted_units})"
        )
        out.print(table(result.table, title=title, floats="{:.2f}"))
        if outcome is not None:
            state = "separated" if outcome.separated else "not separated"
            err.print(
                f"best: {result.best_source} ({state}: {outcome.reason}); runs "
                f"{result.race.runs['total']} vs {result.race.fixed['total']} for fixed seeds "
                f"(saved {result.race.saved:.0%})"
            )
        if result.adapter_dir is not None:
            err.print(
                f"saved {result.best_source} -> {result.target} (seed {result.best_seed}) as a "
                f"PEFT adapter with its head: {result.adapter_dir}"
            )
    for label, error in result.failed.items():
        err.print(f"  [red]failed[/red] {label}: {error}")
    if result.failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``transfer``, ``gains`` and ``verify`` to ``app``."""
    app.command()(transfer)
    app.command()(gains)
    app.command()(verify)
