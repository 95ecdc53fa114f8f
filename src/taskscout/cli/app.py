"""The root ``taskscout`` app: wires every command group's commands and sub-apps onto it.

Command modules never import this module; each exposes ``register(app)``.
"""

from __future__ import annotations

import typer

from taskscout.cli import (
    affinity,
    demo,
    evaluation,
    pool,
    ranking,
    report,
    runs,
    study,
    tasks,
    transfer,
    tuning,
)
from taskscout.cli.common import close_command_stores

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Which source task should your low-resource target train on first? "
    "Tune, embed and rank tasks by their tuned parameters.",
)


@app.callback()
def _command_scope(ctx: typer.Context) -> None:
    # runs before every command: the stores it opens are closed when it ends
    ctx.call_on_close(close_command_stores)


tasks.register(app)  # tasks
tuning.register(app)  # tune, embed
ranking.register(app)  # rank, predict
runs.register(app)  # runs [list|delete|gc], gc
demo.register(app)  # demo
evaluation.register(app)  # evaluate
transfer.register(app)  # transfer, gains
pool.register(app)  # pool build / info / import / export
app.add_typer(affinity.app, name="affinity")  # affinity fit / evaluate
report.register(app)  # report
app.add_typer(study.app, name="study")  # study tupate / feng
