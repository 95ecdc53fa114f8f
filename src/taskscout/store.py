"""The run store: a SQLite index plus safetensors files under one directory.

Layout::

    <root>/store.sqlite              tasks, runs, checkpoints, embeddings, transfers (+ meta)
    <root>/tensors/<run_id>-<kind>.safetensors       trainable parameters of one checkpoint
    <root>/tensors/emb-<embedding_id>.safetensors    one task embedding (tensor key "embedding")

Guarantees:

* Every write is one SQLite transaction taken with ``BEGIN IMMEDIATE``. A run's tensor files are
  written (temp file, fsync, ``os.replace``) *inside* that transaction, before its rows are
  inserted, so a process killed at any point leaves either the complete run or no row at all;
  what it may leave are unreferenced files, which :meth:`RunStore.gc` removes.
* Every tensor file's sha256 is recorded and verified on load (:class:`CorruptTensorError`).
* Saving a run whose complete record exists already is a no-op (re-runs skip finished work).
* Several processes may read while one writes (WAL mode, 30 s busy timeout).

The schema is versioned (``meta.schema_version``); to extend it, append a migration to
``_MIGRATIONS`` and bump ``SCHEMA_VERSION``. Stores are upgraded when opened.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import sqlite3
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as _st_load
from safetensors.torch import save as _st_save

__all__ = [
    "CHECKPOINT_KINDS",
    "LAYER_REDUCES",
    "SCHEMA_VERSION",
    "CheckpointRecord",
    "CorruptTensorError",
    "EmbeddingRecord",
    "RunRecord",
    "RunStore",
    "StoreError",
]

SCHEMA_VERSION = 2
DB_NAME = "store.sqlite"
TENSOR_DIR = "tensors"
CHECKPOINT_KINDS: tuple[str, ...] = ("early", "best")
LAYER_REDUCES: tuple[str, ...] = ("mean", "concat", "none")
RUN_STATUSES: tuple[str, ...] = ("complete", "failed")
BUSY_TIMEOUT_MS = 30_000
_TMP_PREFIX = ".tmp-"
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_EMBEDDING_KEY = "embedding"


class StoreError(RuntimeError):
    """Any error of the run store; the message names the store path or file concerned."""


class CorruptTensorError(StoreError):
    """A tensor file is missing, truncated, unreadable or does not match its recorded sha256."""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass
class CheckpointRecord:
    run_id: str
    kind: str  # "early" | "best"
    epoch: int
    dev_score: float | None
    file: str  # relative to the store root
    sha256: str
    num_params: int


@dataclass
class RunRecord:
    run_id: str
    task: str
    backbone: str
    method: str
    seed: int
    config: dict
    status: str = "complete"  # "complete" | "failed"
    num_train: int = 0
    num_dev: int = 0
    dev_scores: list[float] = field(default_factory=list)  # per epoch, metric x100
    loss_curve: list[float] = field(default_factory=list)  # training loss per logging step
    train_loss_steps: list[int] = field(default_factory=list)  # global step of each loss point
    wall_time_s: float = 0.0
    examples_seen: int = 0
    best_epoch: int | None = None
    error: str | None = None
    created_at: str = field(default_factory=_now)  # ISO 8601, UTC
    checkpoints: dict[str, CheckpointRecord] = field(default_factory=dict)  # "early" / "best"


@dataclass
class EmbeddingRecord:
    embedding_id: str
    run_id: str
    task: str
    backbone: str
    method: str
    checkpoint: str  # "early" | "best"
    layer_reduce: str  # "mean" | "concat" | "none"
    shape: tuple[int, ...]
    file: str  # relative to the store root
    sha256: str
    created_at: str
    extra: dict = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# schema

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

# version -> statements that bring a store from version-1 to version. Append, never edit.
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

_MIGRATIONS: dict[int, tuple[str, ...]] = {1: _SCHEMA_V1, 2: _SCHEMA_V2}


# --------------------------------------------------------------------------------------------
# helpers


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return obj.as_posix()
    if isinstance(obj, set | frozenset):
        return sorted(obj)
    item = getattr(obj, "item", None)  # numpy / torch scalars
    if callable(item):
        with contextlib.suppress(Exception):
            return item()
    raise TypeError(f"value of type {type(obj).__name__} is not JSON serialisable: {obj!r}")


def _dumps(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=_json_default)


def _check_id(what: str, value: str) -> str:
    if not isinstance(value, str) or not _SAFE_ID.match(value):
        raise StoreError(
            f"invalid {what} {value!r}: use 1-128 characters from [A-Za-z0-9_.-], "
            "starting with a letter or digit (it becomes part of a file name)"
        )
    return value


def _prepare_tensors(tensors: Mapping[str, torch.Tensor], what: str) -> dict[str, torch.Tensor]:
    """Detached, contiguous CPU tensors that share no storage (safetensors refuses sharing)."""
    if not isinstance(tensors, Mapping):
        raise StoreError(
            f"{what}: expected a dict[str, torch.Tensor], got {type(tensors).__name__}"
        )
    out: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for name, t in tensors.items():
        if not isinstance(name, str) or not isinstance(t, torch.Tensor):
            raise StoreError(
                f"{what}: expected dict[str, torch.Tensor], found {name!r}: {type(t).__name__}"
            )
        t = t.detach().to("cpu").contiguous()
        ptr = t.untyped_storage().data_ptr()
        if ptr in seen and t.numel() > 0:
            t = t.clone()
            ptr = t.untyped_storage().data_ptr()
        seen.add(ptr)
        out[name] = t
    return out


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not supported on every platform / file system
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _reopen(root: str) -> RunStore:
    return RunStore(root, create=False)


# --------------------------------------------------------------------------------------------
# the store


class RunStore:
    """Tuning runs, their checkpoints and task embeddings, under one directory."""

    def __init__(self, root: str | Path, *, create: bool = True) -> None:
        self.root = Path(root).expanduser().resolve()
        self.db_path = self.root / DB_NAME
        self.tensor_dir = self.root / TENSOR_DIR
        if self.root.exists() and not self.root.is_dir():
            raise StoreError(f"run store {self.root}: exists and is not a directory")
        if not self.db_path.exists():
            if not create:
                raise StoreError(
                    f"no run store at {self.root} (missing {DB_NAME}); "
                    "open it with create=True to create one"
                )
            self.root.mkdir(parents=True, exist_ok=True)
        self.tensor_dir.mkdir(exist_ok=True)
        self._conn: sqlite3.Connection | None = None
        try:
            conn = sqlite3.connect(
                self.db_path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None
            )
        except sqlite3.Error as e:
            raise StoreError(f"run store {self.root}: cannot open {self.db_path}: {e}") from e
        self._conn = conn
        try:
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA foreign_keys = ON")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreError(f"run store {self.root}: cannot enable WAL mode (got {mode!r})")
            self._migrate()
        except sqlite3.DatabaseError as e:
            self.close()
            raise StoreError(f"run store {self.root}: {self.db_path} is unusable: {e}") from e
        except BaseException:
            self.close()
            raise

    # -- connection / lifecycle --------------------------------------------------------------

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"run store {self.root} is closed")
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        # Pickles as "reopen the same directory" so executors (processes, Ray) can ship it.
        return (_reopen, (str(self.root),))

    def __repr__(self) -> str:
        return f"RunStore({str(self.root)!r})"

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; takes the database write lock up front."""
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            raise

    def _migrate(self) -> None:
        with self._write() as conn:
            has_meta = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
            ).fetchone()
            version = 0
            if has_meta:
                row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
                version = int(row[0]) if row else 0
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"run store {self.root} has schema version {version}, newer than this "
                    f"taskscout supports ({SCHEMA_VERSION}); upgrade taskscout"
                )
            for v in range(version + 1, SCHEMA_VERSION + 1):
                for stmt in _MIGRATIONS[v]:
                    conn.execute(stmt)
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (str(v),),
                )
            if version == 0:
                conn.execute("INSERT OR IGNORE INTO meta VALUES ('created_at', ?)", (_now(),))

    @property
    def schema_version(self) -> int:
        row = self.conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        return int(row[0])

    # -- hashing -----------------------------------------------------------------------------

    @staticmethod
    def config_hash(config: dict) -> str:
        """First 16 hex chars of the sha256 of canonical JSON (sorted keys, no whitespace)."""
        return hashlib.sha256(_dumps(config).encode("utf-8")).hexdigest()[:16]

    # -- tasks -------------------------------------------------------------------------------

    def check_task_source(self, name: str, source: str) -> None:  # replaced by the store split
        return None

    def put_task(
        self, name: str, spec: dict, fingerprint: str, num_train: int, num_dev: int, source=""
    ) -> None:
        now = _now()
        with self._write() as conn:
            conn.execute(
                "INSERT INTO tasks (name, spec, fingerprint, num_train, num_dev, created_at, "
                "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
                "spec = excluded.spec, fingerprint = excluded.fingerprint, "
                "num_train = excluded.num_train, num_dev = excluded.num_dev, "
                "updated_at = excluded.updated_at",
                (name, _dumps(spec), fingerprint, int(num_train), int(num_dev), now, now),
            )

    @staticmethod
    def _task_dict(row: sqlite3.Row) -> dict:
        d = dict(row)
        d["spec"] = json.loads(d["spec"])
        return d

    def get_task(self, name: str) -> dict | None:
        row = self.conn.execute("SELECT * FROM tasks WHERE name = ?", (name,)).fetchone()
        return None if row is None else self._task_dict(row)

    def list_tasks(self) -> list[dict]:
        rows = self.conn.execute("SELECT * FROM tasks ORDER BY name").fetchall()
        return [self._task_dict(r) for r in rows]

    # -- runs --------------------------------------------------------------------------------

    def _checkpoints_of(self, run_id: str) -> dict[str, CheckpointRecord]:
        rows = self.conn.execute(
            "SELECT * FROM checkpoints WHERE run_id = ? ORDER BY kind", (run_id,)
        ).fetchall()
        return {r["kind"]: CheckpointRecord(**dict(r)) for r in rows}

    def _run_from_row(self, row: sqlite3.Row) -> RunRecord:
        d = dict(row)
        d.pop("config_hash")
        for key in ("config", "dev_scores", "loss_curve", "train_loss_steps"):
            d[key] = json.loads(d[key])
        d["checkpoints"] = self._checkpoints_of(d["run_id"])
        return RunRecord(**d)

    def get_run(self, run_id: str) -> RunRecord | None:
        row = self.conn.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return None if row is None else self._run_from_row(row)

    def find_runs(
        self,
        *,
        task: str | None = None,
        method: str | None = None,
        backbone: str | None = None,
        status: str | None = "complete",
    ) -> list[RunRecord]:
        """Runs matching every given filter (None = any), ordered by task, backbone, method,
        seed."""
        where, args = [], []
        for col, val in (
            ("task", task),
            ("method", method),
            ("backbone", backbone),
            ("status", status),
        ):
            if val is not None:
                where.append(f"{col} = ?")
                args.append(val)
        sql = "SELECT * FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY task, backbone, method, seed, run_id"
        return [self._run_from_row(r) for r in self.conn.execute(sql, args).fetchall()]

    def latest_runs(self, *, method: str, backbone: str) -> dict[str, RunRecord]:
        """task -> its latest complete run of ``method`` on ``backbone`` ("latest": the greatest
        (created_at, seed, run_id); one rule for every caller that wants "the run of a task")."""
        rows = self.conn.execute(
            "SELECT * FROM runs WHERE method = ? AND backbone = ? AND status = 'complete' "
            "ORDER BY created_at, seed, run_id",
            (method, backbone),
        ).fetchall()
        out: dict[str, RunRecord] = {}
        for row in rows:  # later runs of a task overwrite earlier ones
            out[row["task"]] = row
        return {task: self._run_from_row(row) for task, row in out.items()}

    def latest_run(
        self,
        task: str,
        *,
        method: str | None = None,
        backbone: str | None = None,
        seed: int | None = None,
    ) -> RunRecord | None:
        """The latest complete run of ``task`` matching every given filter (None = any), by the
        rule of :meth:`latest_runs`; None if there is none."""
        where, args = ["task = ?", "status = 'complete'"], [task]
        for col, val in (("method", method), ("backbone", backbone), ("seed", seed)):
            if val is not None:
                where.append(f"{col} = ?")
                args.append(val)
        row = self.conn.execute(
            f"SELECT * FROM runs WHERE {' AND '.join(where)} "  # noqa: S608 - fixed column names
            "ORDER BY created_at DESC, seed DESC, run_id DESC LIMIT 1",
            args,
        ).fetchone()
        return None if row is None else self._run_from_row(row)

    def task_names(self, *, backbone: str, method: str | None = None) -> list[str]:
        """Sorted names of the tasks with a complete run on ``backbone`` (of ``method``)."""
        sql = "SELECT DISTINCT task FROM runs WHERE backbone = ? AND status = 'complete'"
        args: list = [backbone]
        if method is not None:
            sql += " AND method = ?"
            args.append(method)
        return sorted(r[0] for r in self.conn.execute(sql, args).fetchall())

    def methods(self, *, backbone: str) -> set[str]:
        """The methods of the complete runs on ``backbone``."""
        rows = self.conn.execute(
            "SELECT DISTINCT method FROM runs WHERE backbone = ? AND status = 'complete'",
            (backbone,),
        ).fetchall()
        return {r[0] for r in rows}

    def task_summaries(self) -> dict[str, dict]:
        """task -> ``{"num_train", "num_dev", "family"}`` for every task record, without
        parsing each spec in Python."""
        rows = self.conn.execute(
            "SELECT name, num_train, num_dev, json_extract(spec, '$.family') FROM tasks"
        ).fetchall()
        return {
            name: {"num_train": n_train, "num_dev": n_dev, "family": family}
            for name, n_train, n_dev, family in rows
        }

    def latest_embedding_entries(
        self, *, method: str, backbone: str, checkpoint: str, layer_reduce: str
    ) -> list[tuple[str, str, str | None, str | None, tuple[int, ...] | None]]:
        """``(task, run_id, embedding_id, sha256, shape)`` of the latest complete ``method`` run
        of every task on ``backbone`` (rule of :meth:`latest_runs`), with its stored embedding
        for (checkpoint, layer_reduce) or None in the last three fields; one SQL query."""
        rows = self.conn.execute(
            "SELECT r.task, r.run_id, e.embedding_id, e.sha256, e.shape FROM runs r "
            "LEFT JOIN embeddings e ON e.run_id = r.run_id AND e.checkpoint = ? "
            "AND e.layer_reduce = ? WHERE r.method = ? AND r.backbone = ? "
            "AND r.status = 'complete' ORDER BY r.created_at, r.seed, r.run_id",
            (checkpoint, layer_reduce, method, backbone),
        ).fetchall()
        latest: dict[str, tuple] = {}
        shapes: dict[str, tuple[int, ...]] = {}  # parse each distinct shape text once
        for task, run_id, emb_id, sha, shape in rows:  # later runs overwrite earlier ones
            if shape is not None and shape not in shapes:
                shapes[shape] = tuple(json.loads(shape))
            latest[task] = (task, run_id, emb_id, sha, None if shape is None else shapes[shape])
        return list(latest.values())

    def _insert_run(
        self, conn: sqlite3.Connection, r: RunRecord, status: str, error: str | None
    ) -> None:
        conn.execute(
            "INSERT INTO runs (run_id, task, backbone, method, seed, config, config_hash, status, "
            "num_train, num_dev, dev_scores, loss_curve, train_loss_steps, wall_time_s, "
            "examples_seen, best_epoch, error, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                r.run_id,
                r.task,
                r.backbone,
                r.method,
                int(r.seed),
                _dumps(r.config),
                self.config_hash(r.config),
                status,
                int(r.num_train),
                int(r.num_dev),
                _dumps([float(x) for x in r.dev_scores]),
                _dumps([float(x) for x in r.loss_curve]),
                _dumps([int(x) for x in r.train_loss_steps]),
                float(r.wall_time_s),
                int(r.examples_seen),
                None if r.best_epoch is None else int(r.best_epoch),
                error,
                r.created_at or _now(),
            ),
        )

    def _write_tensor_file(
        self, name: str, tensors: dict[str, torch.Tensor], metadata: dict[str, str]
    ) -> str:
        """Atomically writes tensors/<name>; returns the sha256 of the file's bytes."""
        data = _st_save(tensors, metadata=metadata)
        digest = hashlib.sha256(data).hexdigest()
        final = self.tensor_dir / name
        tmp = self.tensor_dir / f"{_TMP_PREFIX}{uuid.uuid4().hex}-{name}"
        try:
            with open(tmp, "xb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, final)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        _fsync_dir(self.tensor_dir)
        return digest

    def save_run(
        self,
        record: RunRecord,
        checkpoints: Mapping[str, tuple[Mapping[str, torch.Tensor], int, float | None]],
    ) -> RunRecord:
        """Stores a complete run and its checkpoints (kind -> (state_dict, epoch, dev_score)).

        Idempotent: if a complete run with ``record.run_id`` exists, nothing is written and the
        stored record is returned. A failed run with that id is replaced. Tensor files are
        written before, and rows inserted in, one transaction, so a killed process leaves no
        row (only unreferenced files, see :meth:`gc`). Returns the record as stored.
        """
        run_id = _check_id("run_id", record.run_id)
        if record.status != "complete":
            raise StoreError(
                f"run store {self.root}: save_run({run_id!r}) needs status 'complete', "
                f"got {record.status!r}; use record_failure for failed runs"
            )
        for kind in checkpoints:
            if kind not in CHECKPOINT_KINDS:
                raise StoreError(
                    f"run store {self.root}: unknown checkpoint kind {kind!r} for run {run_id!r}; "
                    f"expected one of {CHECKPOINT_KINDS}"
                )
        written: list[Path] = []
        try:
            with self._write() as conn:
                row = conn.execute("SELECT status FROM runs WHERE run_id = ?", (run_id,)).fetchone()
                if row is not None and row["status"] == "complete":
                    return self._run_from_row(
                        conn.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
                    )
                ckpt_rows = []
                for kind, value in checkpoints.items():
                    try:
                        state, epoch, dev_score = value
                    except (TypeError, ValueError) as e:
                        raise StoreError(
                            f"run store {self.root}: checkpoint {kind!r} of run {run_id!r} must "
                            "be (state_dict, epoch, dev_score)"
                        ) from e
                    tensors = _prepare_tensors(state, f"checkpoint {kind!r} of run {run_id!r}")
                    name = f"{run_id}-{kind}.safetensors"
                    meta = {
                        "run_id": run_id,
                        "kind": kind,
                        "epoch": str(int(epoch)),
                        "taskscout_schema": str(SCHEMA_VERSION),
                    }
                    written.append(self.tensor_dir / name)
                    digest = self._write_tensor_file(name, tensors, meta)
                    ckpt_rows.append(
                        (
                            run_id,
                            kind,
                            int(epoch),
                            None if dev_score is None else float(dev_score),
                            f"{TENSOR_DIR}/{name}",
                            digest,
                            sum(t.numel() for t in tensors.values()),
                        )
                    )
                if row is not None:  # a failed run with this id: replaced
                    conn.execute("DELETE FROM runs WHERE run_id = ?", (run_id,))
                self._insert_run(conn, record, "complete", None)
                conn.executemany(
                    "INSERT INTO checkpoints (run_id, kind, epoch, dev_score, file, sha256, "
                    "num_params) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    ckpt_rows,
                )
        except Exception:
            for path in written:  # nothing references them: the transaction was rolled back
                with contextlib.suppress(OSError):
                    path.unlink()
            raise
        stored = self.get_run(run_id)
        assert stored is not None
        return stored

    def record_failure(self, record: RunRecord, error: str) -> None:
        """Records a failed run (no checkpoints). A complete run with the same id is kept as it
        is (nothing happens); an earlier failure with that id is replaced."""
        run_id = _check_id("run_id", record.run_id)
        with self._write() as conn:
            row = conn.execute("SELECT status FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            if row is not None:
                if row["status"] == "complete":
                    return
                conn.execute("DELETE FROM runs WHERE run_id = ?", (run_id,))
            self._insert_run(conn, record, "failed", str(error))

    def _read_verified(self, rel: str, sha256: str, owner: str) -> bytes:
        path = self.root / rel
        how = (
            f"To recover, delete the run with RunStore({str(self.root)!r}).delete_run("
            f"{owner!r}) and re-run it."
        )
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise CorruptTensorError(f"tensor file {path} is missing. {how}") from None
        except OSError as e:
            raise CorruptTensorError(f"tensor file {path} is unreadable ({e}). {how}") from e
        actual = hashlib.sha256(data).hexdigest()
        if actual != sha256:
            raise CorruptTensorError(
                f"tensor file {path} is corrupt or truncated: sha256 {actual[:16]}... differs "
                f"from the recorded {sha256[:16]}... ({len(data)} bytes). {how}"
            )
        return data

    def _decode(self, data: bytes, rel: str, owner: str) -> dict[str, torch.Tensor]:
        try:
            return _st_load(data)
        except Exception as e:  # sha matched but the file does not parse: written corrupt
            raise CorruptTensorError(
                f"tensor file {self.root / rel} cannot be read as safetensors ({e}). To recover, "
                f"delete the run with RunStore({str(self.root)!r}).delete_run({owner!r}) and "
                "re-run it."
            ) from e

    def load_checkpoint(self, run_id: str, kind: str = "early") -> dict[str, torch.Tensor]:
        """The trainable parameters of one checkpoint (sha256-verified, CPU tensors)."""
        row = self.conn.execute(
            "SELECT * FROM checkpoints WHERE run_id = ? AND kind = ?", (run_id, kind)
        ).fetchone()
        if row is None:
            run = self.conn.execute(
                "SELECT status, error FROM runs WHERE run_id = ?", (run_id,)
            ).fetchone()
            if run is None:
                ids = [
                    r[0]
                    for r in self.conn.execute("SELECT run_id FROM runs ORDER BY run_id LIMIT 21")
                ]
                listing = ", ".join(ids[:20]) + (", ..." if len(ids) > 20 else "")
                raise StoreError(
                    f"run store {self.root}: no run {run_id!r}; stored runs: {listing or 'none'}"
                )
            kinds = sorted(self._checkpoints_of(run_id))
            detail = f" (the run failed: {run['error']})" if run["status"] == "failed" else ""
            raise StoreError(
                f"run store {self.root}: run {run_id!r} has no {kind!r} checkpoint{detail}; "
                f"available: {', '.join(kinds) or 'none'}"
            )
        data = self._read_verified(row["file"], row["sha256"], run_id)
        return self._decode(data, row["file"], run_id)

    # -- embeddings --------------------------------------------------------------------------

    @staticmethod
    def _embedding_from_row(row: sqlite3.Row) -> EmbeddingRecord:
        d = dict(row)
        d["shape"] = tuple(json.loads(d["shape"]))
        d["extra"] = json.loads(d["extra"])
        return EmbeddingRecord(**d)

    @classmethod
    def embedding_id(cls, run_id: str, checkpoint: str, layer_reduce: str) -> str:
        return cls.config_hash(
            {"run_id": run_id, "checkpoint": checkpoint, "layer_reduce": layer_reduce}
        )

    def save_embedding(
        self,
        *,
        run_id: str,
        task: str,
        backbone: str,
        method: str,
        checkpoint: str,
        layer_reduce: str,
        tensor: torch.Tensor,
        extra: dict | None = None,
    ) -> EmbeddingRecord:
        """Stores one task embedding. Idempotent: if an embedding of (run_id, checkpoint,
        layer_reduce) exists, nothing is written and the stored record is returned."""
        _check_id("run_id", run_id)
        if checkpoint not in CHECKPOINT_KINDS:
            raise StoreError(
                f"run store {self.root}: checkpoint must be one of {CHECKPOINT_KINDS}, "
                f"got {checkpoint!r}"
            )
        if layer_reduce not in LAYER_REDUCES:
            raise StoreError(
                f"run store {self.root}: layer_reduce must be one of {LAYER_REDUCES}, "
                f"got {layer_reduce!r}"
            )
        if not isinstance(tensor, torch.Tensor):
            raise StoreError(
                f"run store {self.root}: embedding must be a torch.Tensor, "
                f"got {type(tensor).__name__}"
            )
        emb_id = self.embedding_id(run_id, checkpoint, layer_reduce)
        name = f"emb-{emb_id}.safetensors"
        path = self.tensor_dir / name
        try:
            with self._write() as conn:
                row = conn.execute(
                    "SELECT * FROM embeddings WHERE embedding_id = ?", (emb_id,)
                ).fetchone()
                if row is not None:
                    return self._embedding_from_row(row)
                run = conn.execute(
                    "SELECT task, backbone, method FROM runs WHERE run_id = ?", (run_id,)
                ).fetchone()
                if run is not None and tuple(run) != (task, backbone, method):
                    raise StoreError(
                        f"run store {self.root}: embedding of run {run_id!r} says task/backbone/"
                        f"method {(task, backbone, method)}, the run says {tuple(run)}"
                    )
                t = _prepare_tensors({_EMBEDDING_KEY: tensor}, f"embedding of run {run_id!r}")
                meta = {
                    "embedding_id": emb_id,
                    "run_id": run_id,
                    "checkpoint": checkpoint,
                    "layer_reduce": layer_reduce,
                    "taskscout_schema": str(SCHEMA_VERSION),
                }
                digest = self._write_tensor_file(name, t, meta)
                conn.execute(
                    "INSERT INTO embeddings (embedding_id, run_id, task, backbone, method, "
                    "checkpoint, layer_reduce, shape, file, sha256, created_at, extra) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        emb_id,
                        run_id,
                        task,
                        backbone,
                        method,
                        checkpoint,
                        layer_reduce,
                        _dumps(list(t[_EMBEDDING_KEY].shape)),
                        f"{TENSOR_DIR}/{name}",
                        digest,
                        _now(),
                        _dumps(extra or {}),
                    ),
                )
        except Exception:
            if (
                self.conn.execute(
                    "SELECT 1 FROM embeddings WHERE embedding_id = ?", (emb_id,)
                ).fetchone()
                is None
            ):
                with contextlib.suppress(OSError):
                    path.unlink()
            raise
        row = self.conn.execute(
            "SELECT * FROM embeddings WHERE embedding_id = ?", (emb_id,)
        ).fetchone()
        return self._embedding_from_row(row)

    def get_embedding(
        self, *, run_id: str, checkpoint: str, layer_reduce: str
    ) -> EmbeddingRecord | None:
        row = self.conn.execute(
            "SELECT * FROM embeddings WHERE run_id = ? AND checkpoint = ? AND layer_reduce = ?",
            (run_id, checkpoint, layer_reduce),
        ).fetchone()
        return None if row is None else self._embedding_from_row(row)

    def load_embedding(self, embedding: str | EmbeddingRecord) -> torch.Tensor:
        """The embedding tensor (sha256-verified), by id or record."""
        emb_id = embedding.embedding_id if isinstance(embedding, EmbeddingRecord) else embedding
        row = self.conn.execute(
            "SELECT * FROM embeddings WHERE embedding_id = ?", (emb_id,)
        ).fetchone()
        if row is None:
            raise StoreError(f"run store {self.root}: no embedding {emb_id!r}")
        data = self._read_verified(row["file"], row["sha256"], row["run_id"])
        tensors = self._decode(data, row["file"], row["run_id"])
        if _EMBEDDING_KEY not in tensors:
            raise CorruptTensorError(
                f"tensor file {self.root / row['file']} holds no {_EMBEDDING_KEY!r} tensor"
            )
        return tensors[_EMBEDDING_KEY]

    def find_embeddings(
        self,
        *,
        task: str | None = None,
        method: str | None = None,
        backbone: str | None = None,
        checkpoint: str | None = None,
        layer_reduce: str | None = None,
    ) -> list[EmbeddingRecord]:
        where, args = [], []
        for col, val in (
            ("task", task),
            ("method", method),
            ("backbone", backbone),
            ("checkpoint", checkpoint),
            ("layer_reduce", layer_reduce),
        ):
            if val is not None:
                where.append(f"{col} = ?")
                args.append(val)
        sql = "SELECT * FROM embeddings"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY task, backbone, method, checkpoint, layer_reduce, run_id"
        return [self._embedding_from_row(r) for r in self.conn.execute(sql, args).fetchall()]

    # -- deletion / cleanup ------------------------------------------------------------------

    def delete_run(self, run_id: str) -> None:
        """Removes a run, its checkpoints and embeddings (rows, then files). Unknown id: no-op."""
        with self._write() as conn:
            files = [
                r[0]
                for r in conn.execute(
                    "SELECT file FROM checkpoints WHERE run_id = ? "
                    "UNION SELECT file FROM embeddings WHERE run_id = ?",
                    (run_id, run_id),
                )
            ]
            conn.execute("DELETE FROM embeddings WHERE run_id = ?", (run_id,))
            conn.execute("DELETE FROM runs WHERE run_id = ?", (run_id,))  # cascades checkpoints
        # Rows first: a crash here leaves unreferenced files (gc), never rows without files.
        for rel in files:
            with contextlib.suppress(FileNotFoundError):
                (self.root / rel).unlink()

    def gc(self) -> list[Path]:
        """Removes files under tensors/ that no row references (left by killed processes).

        Runs under the write lock, so it cannot race a save in another process.
        Returns the removed paths.
        """
        removed: list[Path] = []
        with self._write() as conn:
            referenced = {
                (self.root / r[0]).resolve()
                for r in conn.execute(
                    "SELECT file FROM checkpoints UNION SELECT file FROM embeddings "
                    "UNION SELECT file FROM transfers WHERE file IS NOT NULL"
                )
            }
            for path in sorted(self.tensor_dir.iterdir()):
                if path.is_file() and path.resolve() not in referenced:
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
                        removed.append(path)
        return removed
