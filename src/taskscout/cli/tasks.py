"""``taskscout tasks``: the tasks of a catalog."""

from __future__ import annotations

import typer

from taskscout.cli.common import DataDirOpt, JsonOpt, guard, out, table
from taskscout.data import catalog_table, resolve_data_dir


def tasks(data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """List the tasks of a catalog: name, type, family, metric, sizes."""
    with guard():
        df = catalog_table(data_dir)
        where = resolve_data_dir(data_dir)
    if as_json:
        out.print_json(df.to_json(orient="records"))
    else:
        out.print(table(df, title=f"tasks in {where}"))


def register(app: typer.Typer) -> None:
    """Add ``tasks`` to ``app``."""
    app.command()(tasks)
