"""The ``taskscout`` command line (typer), one module per command group.

- :mod:`~taskscout.cli.app` — the root app (``taskscout = "taskscout.cli:app"``);
- :mod:`~taskscout.cli.tasks` (tasks), :mod:`~taskscout.cli.tuning` (tune, embed),
  :mod:`~taskscout.cli.ranking` (rank, predict), :mod:`~taskscout.cli.evaluation` (evaluate),
  :mod:`~taskscout.cli.runs` (runs list / delete / gc, gc), :mod:`~taskscout.cli.transfer`
  (transfer, gains), :mod:`~taskscout.cli.affinity` (affinity fit / evaluate),
  :mod:`~taskscout.cli.demo` (demo);
- :mod:`~taskscout.cli.common` — option types declared once, the error guard, the table renderer.

Streams: **data** (tables, JSON, CSV) goes to **stdout**, so ``taskscout rank t --csv - > x.csv``
and ``--json | jq`` work; **progress bars, status lines, warnings and errors** go to **stderr**.

Exit codes: 0 success; 2 bad input (an unknown option value, a missing store or file, data the
readers reject: one red ``error:`` line on stderr, no traceback, nothing written); 1 the work ran
but failed or found nothing (failed transfers, no gains, a declined confirmation). Any other
exception is a bug and keeps its traceback.
"""

from taskscout.cli.app import app

__all__ = ["app"]
