"""SQLite connections of the run store: opening, the pragmas, and write transactions."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from taskscout.store.errors import StoreError

__all__ = ["BUSY_TIMEOUT_MS", "backup_copy", "connect", "enable_wal", "write_transaction"]

BUSY_TIMEOUT_MS = 30_000  # how long a writer waits for another process's write lock


def connect(db_path: Path, what: str) -> sqlite3.Connection:
    """An autocommit connection (explicit transactions only) with rows as :class:`sqlite3.Row`,
    the busy timeout and foreign keys on. Changes nothing in the file. ``what`` names the store
    in errors."""
    try:
        conn = sqlite3.connect(db_path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    except sqlite3.Error as e:
        raise StoreError(f"run store {what}: cannot open {db_path}: {e}") from e
    try:
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA foreign_keys = ON")
    except BaseException:
        conn.close()
        raise
    return conn


def backup_copy(src: str | Path, dst: str | Path) -> Path:
    """A consistent copy of the SQLite file ``src`` at ``dst`` through SQLite's backup API:
    what a live writer has committed (its write-ahead log included) and nothing half-written;
    ``src`` is opened read-only. Returns ``dst``; :class:`StoreError` if ``src`` is no file."""
    src, dst = Path(src), Path(dst)
    if not src.is_file():
        raise StoreError(f"no SQLite file at {src}")
    with (
        contextlib.closing(sqlite3.connect(f"{src.resolve().as_uri()}?mode=ro", uri=True)) as a,
        contextlib.closing(sqlite3.connect(dst)) as b,
    ):
        a.backup(b)
    return dst


def enable_wal(conn: sqlite3.Connection, what: str) -> None:
    """Puts the database in WAL mode (several readers while one process writes); persistent."""
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise StoreError(f"run store {what}: cannot enable WAL mode (got {mode!r})")


@contextlib.contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction (``BEGIN IMMEDIATE``: the database write lock is taken up front);
    committed when the block ends, rolled back if it raises."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        raise
