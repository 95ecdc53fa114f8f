"""The run store's SQL schema and its versioned migrations.

``meta.schema_version`` holds the version of a store; :func:`migrate` brings a store up to
:data:`SCHEMA_VERSION`. To extend the schema, append a migration to ``MIGRATIONS`` and bump
``SCHEMA_VERSION``; never edit a released migration.

A file is a taskscout run store only if it is an SQLite database with a ``meta`` table holding
an integer ``schema_version`` (:func:`read_schema_version`); anything else is refused and left
untouched.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from taskscout.store.codec import utc_now
from taskscout.store.errors import StoreError

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "check_store_file", "migrate", "read_schema_version"]

SCHEMA_VERSION = 4
SQLITE_HEADER = b"SQLite format 3\x00"

_SCHEMA_V1 = (
    """
    CREATE TABLE IF NOT EXISTS meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    )
    """,
    """
    CREATE TABLE tasks (
        name        TEXT PRIMARY KEY,
        spec        TEXT NOT NULL,          -- JSON
        fingerprint TEXT NOT NULL,
        num_train   INTEGER NOT NULL,
        num_dev     INTEGER NOT NULL,
        created_at  TEXT NOT NULL,
        updated_at  TEXT NOT NULL
    )
    """,
    """
    CREATE TABLE runs (
        run_id           TEXT PRIMARY KEY,
        task             TEXT NOT NULL,
        backbone         TEXT NOT NULL,
        method           TEXT NOT NULL,
        seed             INTEGER NOT NULL,
        config           TEXT NOT NULL,     -- JSON
        config_hash      TEXT NOT NULL,
        status           TEXT NOT NULL CHECK (status IN ('complete', 'failed')),
        num_train        INTEGER NOT NULL,
        num_dev          INTEGER NOT NULL,
        dev_scores       TEXT NOT NULL,     -- JSON list
        loss_curve       TEXT NOT NULL,     -- JSON list
        train_loss_steps TEXT NOT NULL,     -- JSON list
        wall_time_s      REAL NOT NULL,
        examples_seen    INTEGER NOT NULL,
        best_epoch       INTEGER,
        error            TEXT,
        created_at       TEXT NOT NULL
    )
    """,
    "CREATE INDEX runs_lookup ON runs (task, method, backbone, status)",
    """
    CREATE TABLE checkpoints (
        run_id     TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
        kind       TEXT NOT NULL,
        epoch      INTEGER NOT NULL,
        dev_score  REAL,
        file       TEXT NOT NULL UNIQUE,
        sha256     TEXT NOT NULL,
        num_params INTEGER NOT NULL,
        PRIMARY KEY (run_id, kind)
    )
    """,
    # run_id is deliberately not a foreign key: an embedding may come from outside a tuning run
    # of this store (imported adapters, baselines). delete_run removes a run's embeddings itself.
    """
    CREATE TABLE embeddings (
        embedding_id TEXT PRIMARY KEY,
        run_id       TEXT NOT NULL,
        task         TEXT NOT NULL,
        backbone     TEXT NOT NULL,
        method       TEXT NOT NULL,
        checkpoint   TEXT NOT NULL,
        layer_reduce TEXT NOT NULL,
        shape        TEXT NOT NULL,         -- JSON list
        file         TEXT NOT NULL UNIQUE,
        sha256       TEXT NOT NULL,
        created_at   TEXT NOT NULL,
        extra        TEXT NOT NULL,         -- JSON object
        UNIQUE (run_id, checkpoint, layer_reduce)
    )
    """,
    "CREATE INDEX embeddings_lookup ON embeddings (task, method, backbone)",
)

# v2: measured transfers (taskscout.transfer); ``file`` holds the target's tuned state if kept.
_SCHEMA_V2 = (
    """
    CREATE TABLE transfers (
        transfer_id     TEXT PRIMARY KEY,
        source_run_id   TEXT NOT NULL,
        source_task     TEXT NOT NULL,
        target          TEXT NOT NULL,
        backbone        TEXT NOT NULL,
        method          TEXT NOT NULL,
        seed            INTEGER NOT NULL,
        config_hash     TEXT NOT NULL,      -- the target's tuning config = its no-transfer run id
        settings_hash   TEXT NOT NULL,      -- the tuning settings the whole matrix shares
        checkpoint      TEXT NOT NULL,      -- source checkpoint used: early | best
        status          TEXT NOT NULL CHECK (status IN ('complete', 'failed')),
        score           REAL,               -- target dev score at its best epoch, metric x100
        baseline_run_id TEXT NOT NULL,
        best_epoch      INTEGER,
        dev_scores      TEXT NOT NULL,      -- JSON list, metric x100 per epoch
        wall_time_s     REAL NOT NULL,
        examples_seen   INTEGER NOT NULL,
        device          TEXT,
        config          TEXT NOT NULL,      -- JSON
        file            TEXT UNIQUE,
        sha256          TEXT,
        error           TEXT,
        created_at      TEXT NOT NULL,
        UNIQUE (source_run_id, config_hash, seed, checkpoint)
    )
    """,
    "CREATE INDEX transfers_lookup ON transfers (method, backbone, target, status)",
)

# v3: where each task's data came from (``TaskData.source``); '' = unknown (stores written
# before v3), which never conflicts with any source.
_SCHEMA_V3 = ("ALTER TABLE tasks ADD COLUMN source TEXT NOT NULL DEFAULT ''",)

# v4: per-task statistics computed from a task's data (e.g. the frozen backbone's mean text
# embedding), so a pool can be used without the sources' data. One tensor file per row; the
# settings (JSON) and the data fingerprint say how and from what it was computed.
_SCHEMA_V4 = (
    """
    CREATE TABLE task_vectors (
        vector_id   TEXT PRIMARY KEY,
        task        TEXT NOT NULL,
        backbone    TEXT NOT NULL,
        kind        TEXT NOT NULL,
        settings    TEXT NOT NULL,          -- JSON object
        fingerprint TEXT NOT NULL,          -- of the data it was computed from
        shape       TEXT NOT NULL,          -- JSON list
        file        TEXT NOT NULL UNIQUE,
        sha256      TEXT NOT NULL,
        created_at  TEXT NOT NULL,
        UNIQUE (task, backbone, kind, settings)
    )
    """,
)

# version -> statements that bring a store from version-1 to version. Append, never edit.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: _SCHEMA_V1,
    2: _SCHEMA_V2,
    3: _SCHEMA_V3,
    4: _SCHEMA_V4,
}


def _not_a_store(db_path: Path, why: str) -> StoreError:
    return StoreError(
        f"{db_path} is not a taskscout run store: {why}. It was left untouched; move it away "
        "or choose another --store/--pool path"
    )


def check_store_file(db_path: Path) -> None:
    """Raises :class:`StoreError` unless ``db_path`` starts like an SQLite database (an empty
    file, or one of other bytes, is not a store). Reads only the first bytes."""
    try:
        with open(db_path, "rb") as f:
            head = f.read(len(SQLITE_HEADER))
    except OSError as e:
        raise StoreError(f"run store file {db_path} cannot be read: {e}") from e
    if not head:
        raise _not_a_store(db_path, "the file is empty (0 bytes)")
    if head != SQLITE_HEADER:
        raise _not_a_store(db_path, "the file is not an SQLite database")


def read_schema_version(conn: sqlite3.Connection, db_path: Path) -> int:
    """The ``meta.schema_version`` of the open database ``db_path``; :class:`StoreError` if it
    is not a taskscout store (unreadable, no ``meta`` table, no integer version). Reads only."""
    try:
        has_meta = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
        ).fetchone()
        if not has_meta:
            raise _not_a_store(db_path, "an SQLite database without a taskscout 'meta' table")
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    except sqlite3.DatabaseError as e:
        raise _not_a_store(db_path, f"SQLite cannot read it ({e})") from e
    if row is None:
        raise _not_a_store(db_path, "its 'meta' table has no schema_version")
    try:
        return int(row[0])
    except (TypeError, ValueError):
        raise _not_a_store(db_path, f"its schema_version {row[0]!r} is not an integer") from None


def migrate(conn: sqlite3.Connection, version: int, what: str) -> int:
    """Applies the migrations after ``version`` (0: a new, empty database) inside the caller's
    write transaction; returns :data:`SCHEMA_VERSION`. A store newer than this taskscout is
    refused (``what`` names it)."""
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"run store {what} has schema version {version}, newer than this taskscout "
            f"supports ({SCHEMA_VERSION}); upgrade taskscout"
        )
    for v in range(version + 1, SCHEMA_VERSION + 1):
        for stmt in MIGRATIONS[v]:
            conn.execute(stmt)
        conn.execute(
            "INSERT INTO meta (key, value) VALUES ('schema_version', ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (str(v),),
        )
    if version == 0:
        conn.execute("INSERT OR IGNORE INTO meta VALUES ('created_at', ?)", (utc_now(),))
    return SCHEMA_VERSION
