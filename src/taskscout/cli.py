"""The ``taskscout`` command line (typer). Long work shows rich progress bars on stderr."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from taskscout.util import console

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Which source task should your low-resource target train on first? "
    "Tune, embed and rank tasks by their tuned parameters.",
)
# stdout console for tables / JSON; wide when piped so tables are not truncated
out = Console() if sys.stdout.isatty() else Console(width=160)

Store = Annotated[Path, typer.Option("--store", help="Run store directory.")]
PoolStore = Annotated[
    Path, typer.Option("--store", "--pool", help="Run store directory (the pool of sources).")
]
DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        envvar="TASKSCOUT_DATA_DIR",
        help="Folder with catalog.json and <task>/{train,dev}.jsonl "
        "(default: the bundled demo suite).",
    ),
]
Method = Annotated[str, typer.Option("--method", "-m", help="lora | bitfit | prefix | prompt")]
Backbone = Annotated[
    str | None,
    typer.Option("--backbone", help="Local model folder or hub id (default: packaged MiniLM)."),
]
Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _fail(exc: Exception) -> None:
    console.print(f"[bold red]error:[/bold red] {exc}")
    raise typer.Exit(2)


def _guard(fn, *args, **kwargs):
    """Run ``fn`` turning expected user errors into a one-line message and exit code 2."""
    from taskscout.backbone import BackboneError
    from taskscout.data import TaskDataError
    from taskscout.store import StoreError

    try:
        return fn(*args, **kwargs)
    except (TaskDataError, BackboneError, StoreError, ValueError, FileNotFoundError) as exc:
        _fail(exc)


def _table(df, title: str | None = None, floats: str = "{:.4f}") -> Table:
    table = Table(title=title)
    for col in df.columns:
        table.add_column(str(col), justify="right" if df[col].dtype.kind in "if" else "left")
    for row in df.itertuples(index=False):
        table.add_row(*[floats.format(v) if isinstance(v, float) else str(v) for v in row])
    return table


def _task_options(
    type_, text_col, text_pair_col, label_col, tokens_col, tags_col, choices_col, dev_file, metric
) -> dict:
    opts = {
        "type": type_,
        "text_col": text_col,
        "text_pair_col": text_pair_col,
        "label_col": label_col,
        "tokens_col": tokens_col,
        "tags_col": tags_col,
        "choices_col": choices_col,
        "dev_file": dev_file,
        "metric": metric,
    }
    return {k: v for k, v in opts.items() if v is not None}


# options shared by tune and embed, for user files
TypeOpt = Annotated[
    str | None,
    typer.Option(
        "--type",
        help="Task type of a user file: "
        "classification | pair_classification | regression | token_classification "
        "| multiple_choice",
    ),
]
TextCol = Annotated[str | None, typer.Option("--text-col")]
TextPairCol = Annotated[str | None, typer.Option("--text-pair-col")]
LabelCol = Annotated[str | None, typer.Option("--label-col")]
TokensCol = Annotated[str | None, typer.Option("--tokens-col")]
TagsCol = Annotated[str | None, typer.Option("--tags-col")]
ChoicesCol = Annotated[str | None, typer.Option("--choices-col")]
DevFile = Annotated[
    Path | None,
    typer.Option(
        "--dev-file", help="Dev split of a user file (default: 20 % carved from it, seeded)."
    ),
]
MetricOpt = Annotated[str | None, typer.Option("--metric")]


@app.command()
def tasks(data_dir: DataDir = None, as_json: Json = False) -> None:
    """List the tasks of a catalog: name, type, family, metric, sizes."""
    from taskscout.data import catalog_table, resolve_data_dir

    df = _guard(catalog_table, data_dir)
    if as_json:
        out.print_json(df.to_json(orient="records"))
    else:
        out.print(_table(df, title=f"tasks in {resolve_data_dir(data_dir)}"))


def _tune_kwargs(max_train, max_dev, epochs, early_epochs, seed, batch_size, lr, max_len) -> dict:
    kw = {
        "max_train": max_train,
        "max_dev": max_dev,
        "epochs": epochs,
        "early_epochs": early_epochs,
        "seed": seed,
        "batch_size": batch_size,
        "lr": lr,
        "max_len": max_len,
    }
    return {k: v for k, v in kw.items() if v is not None}


@app.command()
def tune(
    task: Annotated[str, typer.Argument(help="Catalog task name, data file/folder, or hf:<name>.")],
    method: Method = "lora",
    store: Store = Path("runs"),
    data_dir: DataDir = None,
    backbone: Backbone = None,
    max_train: Annotated[int | None, typer.Option(help="Subsample train (seeded).")] = None,
    max_dev: Annotated[int | None, typer.Option(help="Subsample dev (seeded).")] = None,
    epochs: int = 3,
    early_epochs: Annotated[int, typer.Option(help="Epoch of the early checkpoint.")] = 2,
    seed: int = 0,
    batch_size: int = 32,
    lr: Annotated[float | None, typer.Option(help="Default: the method's own.")] = None,
    max_len: int = 128,
    type_: TypeOpt = None,
    text_col: TextCol = None,
    text_pair_col: TextPairCol = None,
    label_col: LabelCol = None,
    tokens_col: TokensCol = None,
    tags_col: TagsCol = None,
    choices_col: ChoicesCol = None,
    dev_file: DevFile = None,
    metric: MetricOpt = None,
    as_json: Json = False,
    no_progress: Annotated[bool, typer.Option("--no-progress")] = False,
    device: Annotated[
        str | None,
        typer.Option("--device", envvar="TASKSCOUT_DEVICE", help="cpu (default), cuda or auto."),
    ] = None,
) -> None:
    """Tune a PEFT method on a task over the frozen backbone; store early + best checkpoints."""
    from taskscout import api

    start = time.perf_counter()
    run = _guard(
        api.tune,
        task,
        method=method,
        store=store,
        data_dir=data_dir,
        backbone=backbone,
        progress=not no_progress,
        device=device,
        **_tune_kwargs(max_train, max_dev, epochs, early_epochs, seed, batch_size, lr, max_len),
        **_task_options(
            type_,
            text_col,
            text_pair_col,
            label_col,
            tokens_col,
            tags_col,
            choices_col,
            dev_file,
            metric,
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


@app.command()
def embed(
    task: Annotated[str, typer.Argument(help="Catalog task name, data file/folder, or hf:<name>.")],
    method: Method = "lora",
    checkpoint: Annotated[str, typer.Option(help="early | best (alias late)")] = "early",
    layer_reduce: Annotated[str, typer.Option(help="mean | concat over layers")] = "mean",
    store: Store = Path("runs"),
    data_dir: DataDir = None,
    backbone: Backbone = None,
    run_id: Annotated[str | None, typer.Option(help="Embed this stored run.")] = None,
    max_train: int | None = None,
    max_dev: int | None = None,
    epochs: int | None = None,
    early_epochs: int | None = None,
    seed: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    max_len: int | None = None,
    type_: TypeOpt = None,
    text_col: TextCol = None,
    text_pair_col: TextPairCol = None,
    label_col: LabelCol = None,
    tokens_col: TokensCol = None,
    tags_col: TagsCol = None,
    choices_col: ChoicesCol = None,
    dev_file: DevFile = None,
    metric: MetricOpt = None,
    as_json: Json = False,
    no_progress: Annotated[bool, typer.Option("--no-progress")] = False,
) -> None:
    """Task embedding of a tuned run (tunes first if the store has none)."""
    from taskscout import api

    emb = _guard(
        api.embed,
        task,
        method=method,
        checkpoint=checkpoint,
        layer_reduce=layer_reduce,
        store=store,
        backbone=backbone,
        run_id=run_id,
        data_dir=data_dir,
        progress=not no_progress,
        **_tune_kwargs(max_train, max_dev, epochs, early_epochs, seed, batch_size, lr, max_len),
        **_task_options(
            type_,
            text_col,
            text_pair_col,
            label_col,
            tokens_col,
            tags_col,
            choices_col,
            dev_file,
            metric,
        ),
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


@app.command()
def rank(
    target: Annotated[
        str,
        typer.Argument(
            help="Target: a task with a run in the store, a catalog task, hf:<name>, or a data "
            "file/folder (with --type and columns). Tuned first if the store has no run of it."
        ),
    ],
    store: PoolStore = Path("runs"),
    predictor: Annotated[
        str,
        typer.Option(
            help="tupate (cosine of --method TuPaTE vectors), tupate-{lora,bitfit,prefix,prompt}, "
            "ensemble, ensemble-rank, prompt-{mean,token}-{manhattan,euclidean,cosine}, "
            "datasize, curvegrad, textemb, taskemb, logme, random"
        ),
    ] = "tupate",
    method: Method = "lora",
    checkpoint: Annotated[str, typer.Option(help="early | best (alias late)")] = "early",
    backbone: Backbone = None,
    data_dir: DataDir = None,
    max_train: Annotated[int | None, typer.Option(help="Tuning a new target: subsample.")] = None,
    max_dev: int | None = None,
    epochs: int | None = None,
    early_epochs: int | None = None,
    seed: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    max_len: int | None = None,
    type_: TypeOpt = None,
    text_col: TextCol = None,
    text_pair_col: TextPairCol = None,
    label_col: LabelCol = None,
    tokens_col: TokensCol = None,
    tags_col: TagsCol = None,
    choices_col: ChoicesCol = None,
    dev_file: DevFile = None,
    metric: MetricOpt = None,
    no_tune: Annotated[
        bool, typer.Option("--no-tune", help="Fail instead of tuning a target the store lacks.")
    ] = False,
    threads: Annotated[
        int | None, typer.Option(help="torch threads when tuning (default: all cores).")
    ] = None,
    as_json: Json = False,
    csv: Annotated[
        str | None,
        typer.Option("--csv", help="Also write the table as CSV to this path ('-': stdout only)."),
    ] = None,
    no_progress: Annotated[bool, typer.Option("--no-progress")] = False,
    scorer: Annotated[
        Path | None,
        typer.Option("--scorer", help="--predictor affinity: folder of a fitted scorer."),
    ] = None,
) -> None:
    """Rank the store's source tasks for TARGET (default: cosine of TuPaTE vectors): table of
    source, score, rank, num_train, family (or --json / --csv)."""
    from taskscout import api

    df = _guard(
        api.rank,
        target,
        store=store,
        method=method,
        checkpoint=checkpoint,
        backbone=backbone,
        predictor=predictor,
        data_dir=data_dir,
        tune_target=not no_tune,
        progress=not no_progress,
        threads=threads,
        scorer=scorer,
        **_tune_kwargs(max_train, max_dev, epochs, early_epochs, seed, batch_size, lr, max_len),
        **_task_options(
            type_,
            text_col,
            text_pair_col,
            label_col,
            tokens_col,
            tags_col,
            choices_col,
            dev_file,
            metric,
        ),
    )
    if csv == "-":
        sys.stdout.write(df.to_csv(index=False))
        return
    if csv:
        df.to_csv(csv, index=False)
    name = f"tupate-{method}" if predictor == "tupate" else predictor
    if as_json:
        out.print_json(df.to_json(orient="records"))
    else:
        out.print(_table(df, title=f"sources for {target} ({name}, {checkpoint})"))


@app.command()
def runs(store: Store = Path("runs"), as_json: Json = False) -> None:
    """List the runs in a store."""
    import pandas as pd

    from taskscout.store import RunStore

    db = _guard(RunStore, store, create=False)
    rows = [
        {
            "run_id": r.run_id,
            "task": r.task,
            "method": r.method,
            "seed": r.seed,
            "status": r.status,
            "num_train": r.num_train,
            "early": (r.checkpoints.get("early").dev_score if r.checkpoints else None),
            "best": (r.checkpoints.get("best").dev_score if r.checkpoints else None),
            "wall_time_s": round(r.wall_time_s, 1),
            "created_at": r.created_at,
        }
        for r in db.find_runs(status=None)
    ]
    df = pd.DataFrame(rows)
    if as_json:
        out.print_json(df.to_json(orient="records"))
    else:
        out.print(_table(df, title=f"runs in {store}", floats="{:.1f}"))


@app.command()
def demo(
    store: Store = Path("taskscout-demo"),
    method: Method = "lora",
    epochs: Annotated[int, typer.Option(help="Tune to this epoch (the early checkpoint).")] = 2,
    no_progress: Annotated[bool, typer.Option("--no-progress")] = False,
) -> None:
    """Tune 5 bundled source tasks and 1 held-out target on the packaged MiniLM, embed them and
    rank the sources for the target (a few minutes on a laptop CPU)."""
    from taskscout.data import DEMO_SOURCES, DEMO_TARGET
    from taskscout.demo import run_demo

    console.print(
        f"[bold]taskscout demo[/bold]: target [cyan]{DEMO_TARGET}[/cyan], sources "
        f"{', '.join(DEMO_SOURCES)}; {method} on all-MiniLM-L6-v2, {epochs} epochs; "
        f"store {store}/"
    )
    start = time.perf_counter()
    ranking, timings = _guard(
        run_demo,
        store,
        method=method,
        epochs=epochs,
        progress=not no_progress and sys.stderr.isatty(),
    )
    out.print(
        _table(
            ranking,
            title=f"Sources ranked for {DEMO_TARGET} by cosine similarity "
            f"of {method} TuPaTE vectors",
        )
    )
    out.print(_table(timings, title="time per task (s)", floats="{:.1f}"))
    out.print(
        f"total {time.perf_counter() - start:.1f} s. Explore the store: "
        f"`taskscout runs --store {store}`, `taskscout rank {DEMO_TARGET} --store {store}`."
    )


@app.command()
def evaluate(
    gold: Annotated[
        Path | None,
        typer.Option(
            "--gold",
            help="Ground truth CSV: long form (target,source,gain[,performance]) or a wide "
            "matrix (source rows x target columns of scores after transfer, plus a "
            "no-transfer row).",
        ),
    ] = None,
    scores: Annotated[
        list[Path] | None,
        typer.Option(
            "--scores",
            help="Predictor scores CSV (target,source[,predictor],score; higher = more "
            "helpful). Repeatable.",
        ),
    ] = None,
    no_transfer_row: Annotated[
        str, typer.Option("--no-transfer-row", help="Name of the no-transfer row of a wide gold.")
    ] = "none",
    taskweb_pairs: Annotated[
        Path | None,
        typer.Option("--taskweb-pairs", help="Use TaskWeb's pairs.csv as the gold instead."),
    ] = None,
    setting: Annotated[
        str, typer.Option("--setting", help="TaskWeb setting, e.g. ALL(avg), finetune:roberta.")
    ] = "ALL(avg)",
    taskweb_gain: Annotated[
        str,
        typer.Option("--taskweb-gain", help="TaskWeb gain: avg_pct_change | combined_score."),
    ] = "avg_pct_change",
    task_list: Annotated[
        str | None,
        typer.Option("--tasks", help="Comma-separated tasks: keep pairs with both among them."),
    ] = None,
    taskweb_predictors: Annotated[
        Path | None,
        typer.Option(
            "--taskweb-predictors",
            help="Add TaskWeb's released predictors (released_predictor_scores.csv) as rows.",
        ),
    ] = None,
    ks: Annotated[str, typer.Option("--ks", help="k of regret@k and gain@k.")] = "1,3",
    per_target: Annotated[
        bool, typer.Option("--per-target", help="Also print one row per (predictor, target).")
    ] = False,
    as_json: Json = False,
) -> None:
    """Score source-ranking predictors against ground-truth transfer gains (DESIGN.md section 5):
    rank of the best source, NDCG, correlations, regret@k, gain@k, beside the random baseline."""
    from rich.text import Text

    from taskscout.evaluation.report import (
        evaluate_files,
        metric_header,
        per_target_records,
        summary_records,
        summary_table,
    )

    result = _guard(
        evaluate_files,
        gold,
        scores,
        no_transfer_row=no_transfer_row,
        taskweb_pairs=taskweb_pairs,
        setting=setting,
        taskweb_gain=taskweb_gain,
        tasks=task_list,
        taskweb_predictors=taskweb_predictors,
        ks=ks,
    )
    per_target_df, summary, notes, gold_desc = result
    for note in notes:
        console.print(Text(f"warning: {note}", style="yellow"))
    if as_json:
        payload = {
            "summary": summary_records(summary),
            "per_target": per_target_records(per_target_df),
            "warnings": notes,
        }
        out.print_json(json.dumps(payload))
        return
    n_targets = int(summary["n_targets"].max())
    out.print(
        _table(
            summary_table(summary),
            title=f"predictors vs {gold_desc}: mean over {n_targets} targets "
            "(↓ = lower is better; random = expectation over random rankings)",
        )
    )
    if per_target:
        df = per_target_df.rename(columns=metric_header)
        out.print(_table(df, title="per (predictor, target)"))


@app.command()
def predict(
    targets: Annotated[str, typer.Option("--targets", help="Comma-separated target tasks.")],
    store: PoolStore = Path("runs"),
    predictors: Annotated[
        str, typer.Option("--predictors", help="Comma-separated predictor names, or 'all'.")
    ] = "all",
    checkpoint: Annotated[str, typer.Option(help="early | best (alias late)")] = "early",
    backbone: Backbone = None,
    data_dir: DataDir = None,
    out_csv: Annotated[Path, typer.Option("--out", help="Long-form scores CSV to write.")] = Path(
        "scores.csv"
    ),
) -> None:
    """Score every source for several targets with several predictors (long-form CSV:
    target,source,predictor,score), ready for `taskscout evaluate --scores`."""
    from taskscout import api

    frame, skipped = _guard(
        api.predict,
        [t for t in targets.split(",") if t],
        store=store,
        predictors=predictors,
        checkpoint=checkpoint,
        backbone=backbone,
        data_dir=data_dir,
    )
    for name, reason in skipped.items():
        console.print(f"[yellow]skipped {name}:[/yellow] {reason}")
    frame.to_csv(out_csv, index=False)
    used = sorted(frame["predictor"].unique()) if len(frame) else []
    out.print(f"wrote {len(frame)} scores ({len(used)} predictors: {', '.join(used)}) to {out_csv}")


from taskscout.cli_transfer import register as _register_transfer  # noqa: E402

_register_transfer(app)  # taskscout transfer / gains
from taskscout.cli_affinity import app as _affinity_app  # noqa: E402

app.add_typer(_affinity_app, name="affinity")  # taskscout affinity fit / evaluate

if __name__ == "__main__":  # pragma: no cover
    app()
