"""``python -m taskscout.cli``: the ``taskscout`` command."""

from taskscout.cli import app

app()
