"""``taskscout runs [list|delete|gc]`` and ``taskscout gc``: look after a run store. None of
these commands creates a store: a mistyped ``--store`` is an error."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pandas as pd
import typer

from taskscout.cli.common import JsonOpt, StoreOpt, err, fail, flag, guard, open_store, out, table
from taskscout.store import RunRecord

app = typer.Typer(
    no_args_is_help=False,
    invoke_without_command=True,
    help="The runs of a store: list them (the default), delete some, remove orphaned files.",
)


def _score(run: RunRecord, kind: str) -> float | None:
    ckpt = (run.checkpoints or {}).get(kind)
    return None if ckpt is None else ckpt.dev_score


def _frame(runs: list[RunRecord]) -> pd.DataFrame:
    columns = ["run_id", "task", "method", "seed", "status", "num_train", "early", "best"]
    rows = [
        {
            "run_id": r.run_id,
            "task": r.task,
            "method": r.method,
            "seed": r.seed,
            "status": r.status,
            "num_train": r.num_train,
            "early": _score(r, "early"),
            "best": _score(r, "best"),
            "wall_time_s": round(r.wall_time_s, 1),
            "created_at": r.created_at,
        }
        for r in runs
    ]
    return pd.DataFrame(rows, columns=[*columns, "wall_time_s", "created_at"])


def list_runs(store: StoreOpt = Path("runs"), as_json: JsonOpt = False) -> None:
    """List the runs in a store (every status)."""
    with guard():
        db = open_store(store)
        df = _frame(db.find_runs(status=None))
    if as_json:
        out.print_json(df.to_json(orient="records"))
    else:
        out.print(table(df, title=f"runs in {store}", floats="{:.1f}"))


@app.callback()
def runs(ctx: typer.Context, store: StoreOpt = Path("runs"), as_json: JsonOpt = False) -> None:
    """The runs of a store: without a subcommand, list them."""
    if ctx.invoked_subcommand is None:
        list_runs(store=store, as_json=as_json)


@app.command("list")
def list_command(store: StoreOpt = Path("runs"), as_json: JsonOpt = False) -> None:
    """List the runs in a store (every status)."""
    list_runs(store=store, as_json=as_json)


@app.command("delete")
def delete(
    run_ids: Annotated[
        list[str] | None,
        typer.Argument(help="Run ids to delete (see `taskscout runs`).", show_default=False),
    ] = None,
    store: StoreOpt = Path("runs"),
    task: Annotated[
        str | None, typer.Option("--task", help="Delete every run of this task.")
    ] = None,
    method: Annotated[
        str | None,
        typer.Option("--method", "-m", help="Delete every run of this method (with --task: both)."),
    ] = None,
    yes: Annotated[
        bool, flag("--yes", "-y", help="Delete without asking for confirmation.")
    ] = False,
) -> None:
    """Delete runs with their checkpoints and embeddings (by id, or every run matching --task
    and/or --method), after a confirmation unless --yes."""
    if not run_ids and task is None and method is None:
        raise typer.BadParameter("give RUN_ID(s), --task or --method", param_hint="RUN_IDS")
    with guard():
        db = open_store(store)
        chosen: dict[str, RunRecord] = {}
        missing = []
        for run_id in run_ids or []:
            run = db.get_run(run_id)
            if run is None:
                missing.append(run_id)
            else:
                chosen[run_id] = run
        if missing:
            fail(
                f"no run {', '.join(missing)} in store {db.root}; see `taskscout runs --store "
                f"{store}`"
            )
        if task is not None or method is not None:
            matched = db.find_runs(task=task, method=method, status=None)
            if not matched:
                what = " and ".join(
                    f"{k} {v!r}" for k, v in (("task", task), ("method", method)) if v
                )
                fail(f"no run of {what} in store {db.root}")
            chosen.update({r.run_id: r for r in matched})
    err.print(table(_frame(list(chosen.values())), title="runs to delete", floats="{:.1f}"))
    if not yes:
        typer.confirm(f"delete these {len(chosen)} run(s) from {store}?", abort=True, err=True)
    with guard():
        for run_id in chosen:
            db.delete_run(run_id)
    err.print(f"deleted {len(chosen)} run(s) from {store}")


def gc(store: StoreOpt = Path("runs")) -> None:
    """Remove tensor files no run, embedding or transfer refers to (left by killed processes)."""
    with guard():
        db = open_store(store)
        removed = db.gc()
    for path in removed:
        out.print(str(path))
    err.print(f"removed {len(removed)} unreferenced file(s) from {db.tensor_dir}")


app.command("gc")(gc)


def register(root: typer.Typer) -> None:
    """Add ``runs`` (list / delete / gc) and ``gc`` to ``root``."""
    root.add_typer(app, name="runs")
    root.command("gc")(gc)
