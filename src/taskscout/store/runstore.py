"""The :class:`RunStore`: tuning runs, their checkpoints, task embeddings and task records
under one directory.

Layout::

    <root>/store.sqlite              tasks, runs, checkpoints, embeddings, transfers (+ meta)
    <root>/tensors/<run_id>-<kind>.safetensors       trainable parameters of one checkpoint
    <root>/tensors/emb-<embedding_id>.safetensors    one task embedding (tensor key "embedding")
    <root>/tensors/xfer-<transfer_id>.safetensors    a measured transfer's kept tuned state
    <root>/tensors/vec-<vector_id>.safetensors       a per-task statistic (e.g. text embedding)

Guarantees:

* ``store.sqlite`` exists only as a complete store: a new store is built under a temporary
  name and linked into place. An existing ``store.sqlite`` that is not a taskscout store (empty,
  other bytes, a foreign SQLite database) is refused with :class:`StoreError` and left untouched;
  ``create=False`` never creates anything.
* Every write is one SQLite transaction taken with ``BEGIN IMMEDIATE``. A run's tensor files are
  written (temp file, fsync, ``os.replace``) *inside* that transaction, before its rows are
  inserted, so a process killed at any point leaves either the complete run or no row at all;
  what it may leave are unreferenced files, which :meth:`RunStore.gc` removes.
* Every tensor file's sha256 is recorded and verified on load (:class:`CorruptTensorError`).
* Saving a run whose complete record exists already is a no-op (re-runs skip finished work).
* Several processes may read while one writes (WAL mode, 30 s busy timeout).
* Stores of an older schema version are upgraded when opened (:mod:`taskscout.store.schema`).
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch

from taskscout.store.codec import canonical_json, check_id, config_hash, utc_now
from taskscout.store.connection import connect, enable_wal, write_transaction
from taskscout.store.errors import CorruptTensorError, StoreError
from taskscout.store.records import (
    CHECKPOINT_KINDS,
    LAYER_REDUCES,
    CheckpointRecord,
    EmbeddingRecord,
    RunRecord,
)
from taskscout.store.schema import (
    SCHEMA_VERSION,
    check_store_file,
    migrate,
    read_schema_version,
)
from taskscout.store.tensors import (
    TENSOR_DIR,
    TMP_PREFIX,
    decode_tensors,
    prepare_tensors,
    read_verified,
    write_tensor_file,
)
from taskscout.store.transfers import TransferTable

__all__ = ["DB_NAME", "RunStore"]

DB_NAME = "store.sqlite"
EMBEDDING_KEY = "embedding"


def reopen_store(root: str) -> RunStore:
    """The store at ``root``, opened without creating anything (how a pickled store loads)."""
    return RunStore(root, create=False)


def initialise_store(root: Path, db_path: Path) -> None:
    """Creates ``root`` and a new, complete ``db_path`` in it. The database is built under a
    temporary name and hard-linked into place, so ``db_path`` never exists half-initialised and
    a store another process created meanwhile is kept (never replaced)."""
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f"{TMP_PREFIX}{uuid.uuid4().hex}-{DB_NAME}"
    try:
        conn = connect(tmp, str(root))
        try:
            enable_wal(conn, str(root))
            with write_transaction(conn):
                migrate(conn, 0, str(root))
        finally:
            conn.close()  # the last connection: SQLite checkpoints and removes -wal / -shm
        try:
            os.link(tmp, db_path)
        except FileExistsError:
            pass  # another process initialised it first: use theirs
        except OSError:  # no hard links on this file system
            if not db_path.exists():
                os.replace(tmp, db_path)
    finally:
        for suffix in ("", "-wal", "-shm", "-journal"):
            with contextlib.suppress(OSError):
                Path(f"{tmp}{suffix}").unlink()


#: how catalog sources began before they named their content (``catalog:<absolute path>``);
#: such a source says nothing about the data, so it never conflicts (see ``check_task_source``)
LEGACY_CATALOG_SOURCE = "catalog:/"


class RunStore:
    """Tuning runs, their checkpoints, task embeddings and task records under one directory.

    ``RunStore(root)`` opens the store at ``root``, creating it (directory, ``store.sqlite``,
    ``tensors/``) if ``root`` holds no ``store.sqlite``. ``RunStore(root, create=False)`` opens
    an existing store only and creates nothing on disk (read-only commands). Either way an
    existing ``store.sqlite`` that is not a taskscout store is refused (:class:`StoreError`) and
    left untouched. All SQL of the store lives in this package; callers use the methods.
    """

    def __init__(self, root: str | Path, *, create: bool = True) -> None:
        self.root = Path(root).expanduser().resolve()
        self.db_path = self.root / DB_NAME
        self.tensor_dir = self.root / TENSOR_DIR
        self._conn: sqlite3.Connection | None = None
        if self.root.exists() and not self.root.is_dir():
            raise StoreError(f"run store {self.root}: exists and is not a directory")
        if not self.db_path.exists():
            if not create:
                raise StoreError(
                    f"no run store at {self.root} (no {DB_NAME}): check the --store/--pool path"
                )
            initialise_store(self.root, self.db_path)
        check_store_file(self.db_path)
        conn = connect(self.db_path, str(self.root))
        self._conn = conn
        try:
            version = read_schema_version(conn, self.db_path)  # reads only: refuses foreign files
            enable_wal(conn, str(self.root))
            if version != SCHEMA_VERSION:
                with write_transaction(conn):  # re-read under the lock: another process may
                    migrate(conn, read_schema_version(conn, self.db_path), str(self.root))
            if create:
                self.tensor_dir.mkdir(exist_ok=True)
        except sqlite3.DatabaseError as e:
            self.close()
            raise StoreError(f"run store {self.root}: {self.db_path} is unusable: {e}") from e
        except BaseException:
            self.close()
            raise
        self.transfers = TransferTable(self)
        """The measured transfers of this store (:class:`TransferTable`)."""

    # -- connection / lifecycle --------------------------------------------------------------

    @property
    def conn(self) -> sqlite3.Connection:
        """The store's SQLite connection: for the modules of :mod:`taskscout.store` only; code
        outside the package uses the query methods."""
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
        return (reopen_store, (str(self.root),))

    def __repr__(self) -> str:
        return f"RunStore({str(self.root)!r})"

    @property
    def schema_version(self) -> int:
        return read_schema_version(self.conn, self.db_path)

    # -- hashing -----------------------------------------------------------------------------

    @staticmethod
    def config_hash(config: dict) -> str:
        """First 16 hex chars of the sha256 of canonical JSON (sorted keys, no whitespace)."""
        return config_hash(config)

    # -- tasks -------------------------------------------------------------------------------

    def _source_conflict(self, conn: sqlite3.Connection, name: str, source: str) -> str | None:
        if not source:
            return None
        row = conn.execute("SELECT source FROM tasks WHERE name = ?", (name,)).fetchone()
        if row is None or not row["source"] or row["source"] == source:
            return None
        if row["source"].startswith(LEGACY_CATALOG_SOURCE) or source.startswith(
            LEGACY_CATALOG_SOURCE
        ):
            return None  # a catalog recorded by its path (before content ids): unknown data
        return (
            f"run store {self.root}: task {name!r} is already stored from {row['source']!r}; "
            f"this data comes from {source!r}. Two data sets cannot share a task name: give "
            "this task another name (--name NAME on the command line, name= in Python)"
        )

    def check_task_source(self, name: str, source: str) -> None:
        """Raises :class:`StoreError` if the store holds task ``name`` from a different data
        source than ``source`` (``TaskData.source``). An empty source on either side means
        "unknown" and never conflicts, nor does a catalog source recorded by its path
        (``catalog:/...``, before catalog sources named their content). Reads only."""
        problem = self._source_conflict(self.conn, name, source)
        if problem:
            raise StoreError(problem)

    def put_task(
        self,
        name: str,
        spec: dict,
        fingerprint: str,
        num_train: int,
        num_dev: int,
        source: str = "",
    ) -> None:
        """Records (or updates) task ``name``: its spec, data fingerprint, split sizes and data
        ``source`` (``TaskData.source``; "" = unknown, which keeps a recorded source). Refused
        with :class:`StoreError`, changing nothing, if the task is stored from another source
        (:meth:`check_task_source`)."""
        now = utc_now()
        with write_transaction(self.conn) as conn:
            problem = self._source_conflict(conn, name, source)
            if problem:
                raise StoreError(problem)
            conn.execute(
                "INSERT INTO tasks (name, spec, fingerprint, num_train, num_dev, created_at, "
                "updated_at, source) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE "
                "SET spec = excluded.spec, fingerprint = excluded.fingerprint, "
                "num_train = excluded.num_train, num_dev = excluded.num_dev, "
                "updated_at = excluded.updated_at, source = CASE WHEN excluded.source = '' "
                "THEN tasks.source ELSE excluded.source END",
                (
                    name,
                    canonical_json(spec),
                    fingerprint,
                    int(num_train),
                    int(num_dev),
                    now,
                    now,
                    str(source),
                ),
            )

    @staticmethod
    def _task_dict(row: sqlite3.Row) -> dict:
        d = dict(row)
        d["spec"] = json.loads(d["spec"])
        return d

    def get_task(self, name: str) -> dict | None:
        """The task record (``name, spec, fingerprint, num_train, num_dev, source, created_at,
        updated_at``) or None."""
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

    def backbones(self) -> set[str]:
        """The backbones of the complete runs in the store."""
        rows = self.conn.execute(
            "SELECT DISTINCT backbone FROM runs WHERE status = 'complete'"
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
                canonical_json(r.config),
                self.config_hash(r.config),
                status,
                int(r.num_train),
                int(r.num_dev),
                canonical_json([float(x) for x in r.dev_scores]),
                canonical_json([float(x) for x in r.loss_curve]),
                canonical_json([int(x) for x in r.train_loss_steps]),
                float(r.wall_time_s),
                int(r.examples_seen),
                None if r.best_epoch is None else int(r.best_epoch),
                error,
                r.created_at or utc_now(),
            ),
        )

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
        run_id = check_id("run_id", record.run_id)
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
            with write_transaction(self.conn) as conn:
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
                    tensors = prepare_tensors(state, f"checkpoint {kind!r} of run {run_id!r}")
                    name = f"{run_id}-{kind}.safetensors"
                    meta = {
                        "run_id": run_id,
                        "kind": kind,
                        "epoch": str(int(epoch)),
                        "taskscout_schema": str(SCHEMA_VERSION),
                    }
                    written.append(self.tensor_dir / name)
                    digest = write_tensor_file(self.tensor_dir, name, tensors, meta)
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
        if stored is None:  # pragma: no cover - the transaction above committed it
            raise StoreError(f"run store {self.root}: run {run_id} vanished after saving")
        return stored

    def record_failure(self, record: RunRecord, error: str) -> None:
        """Records a failed run (no checkpoints). A complete run with the same id is kept as it
        is (nothing happens); an earlier failure with that id is replaced."""
        run_id = check_id("run_id", record.run_id)
        with write_transaction(self.conn) as conn:
            row = conn.execute("SELECT status FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            if row is not None:
                if row["status"] == "complete":
                    return
                conn.execute("DELETE FROM runs WHERE run_id = ?", (run_id,))
            self._insert_run(conn, record, "failed", str(error))

    def _load_verified(self, rel: str, sha256: str, run_id: str) -> dict[str, torch.Tensor]:
        path = self.root / rel
        how = (
            f"To recover, delete the run (`taskscout runs delete {run_id} --store "
            f"{self.root} --yes`; Python: RunStore(...).delete_run({run_id!r})) and re-run it."
        )
        return decode_tensors(read_verified(path, sha256, how), path, how)

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
        return self._load_verified(row["file"], row["sha256"], run_id)

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
        check_id("run_id", run_id)
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
            with write_transaction(self.conn) as conn:
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
                t = prepare_tensors({EMBEDDING_KEY: tensor}, f"embedding of run {run_id!r}")
                meta = {
                    "embedding_id": emb_id,
                    "run_id": run_id,
                    "checkpoint": checkpoint,
                    "layer_reduce": layer_reduce,
                    "taskscout_schema": str(SCHEMA_VERSION),
                }
                digest = write_tensor_file(self.tensor_dir, name, t, meta)
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
                        canonical_json(list(t[EMBEDDING_KEY].shape)),
                        f"{TENSOR_DIR}/{name}",
                        digest,
                        utc_now(),
                        canonical_json(extra or {}),
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
        tensors = self._load_verified(row["file"], row["sha256"], row["run_id"])
        if EMBEDDING_KEY not in tensors:
            raise CorruptTensorError(
                f"tensor file {self.root / row['file']} holds no {EMBEDDING_KEY!r} tensor"
            )
        return tensors[EMBEDDING_KEY]

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

    # -- per-task vectors (statistics of a task's data) --------------------------------------

    def save_task_vector(
        self,
        *,
        task: str,
        backbone: str,
        kind: str,
        settings: dict,
        fingerprint: str,
        tensor: torch.Tensor,
    ) -> None:
        """Stores one statistic of task ``task``'s data on ``backbone`` (``kind``, e.g.
        ``textemb``; ``settings``: how it was computed; ``fingerprint``: of the data it was
        computed from). Replaces a stored vector of the same (task, backbone, kind, settings).
        The task must have a task record (:meth:`put_task`)."""
        if not isinstance(tensor, torch.Tensor):
            raise StoreError(
                f"run store {self.root}: a task vector must be a torch.Tensor, "
                f"got {type(tensor).__name__}"
            )
        key = {"task": task, "backbone": backbone, "kind": kind, "settings": settings}
        vec_id = self.config_hash(key)
        name = f"vec-{vec_id}.safetensors"
        with write_transaction(self.conn) as conn:
            if conn.execute("SELECT 1 FROM tasks WHERE name = ?", (task,)).fetchone() is None:
                raise StoreError(f"run store {self.root}: no task {task!r} to store a vector of")
            t = prepare_tensors({EMBEDDING_KEY: tensor}, f"{kind} vector of task {task!r}")
            meta = {"vector_id": vec_id, "task": task, "kind": kind}
            digest = write_tensor_file(self.tensor_dir, name, t, meta)
            conn.execute("DELETE FROM task_vectors WHERE vector_id = ?", (vec_id,))
            conn.execute(
                "INSERT INTO task_vectors (vector_id, task, backbone, kind, settings, "
                "fingerprint, shape, file, sha256, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    vec_id,
                    task,
                    backbone,
                    kind,
                    canonical_json(settings),
                    str(fingerprint),
                    canonical_json(list(t[EMBEDDING_KEY].shape)),
                    f"{TENSOR_DIR}/{name}",
                    digest,
                    utc_now(),
                ),
            )

    def load_task_vector(
        self, *, task: str, backbone: str, kind: str, settings: dict
    ) -> torch.Tensor | None:
        """The stored ``kind`` vector of ``task`` on ``backbone`` computed with exactly
        ``settings`` (sha256-verified), or None if there is none."""
        row = self.conn.execute(
            "SELECT file, sha256 FROM task_vectors WHERE task = ? AND backbone = ? AND kind = ? "
            "AND settings = ?",
            (task, backbone, kind, canonical_json(settings)),
        ).fetchone()
        if row is None:
            return None
        how = (
            f"Recompute it from the task's data (give --data-dir) or restore the store {self.root}."
        )
        path = self.root / row["file"]
        tensors = decode_tensors(read_verified(path, row["sha256"], how), path, how)
        return tensors[EMBEDDING_KEY]

    def task_vector_kinds(self) -> dict[str, int]:
        """kind -> how many task vectors of it the store holds."""
        rows = self.conn.execute("SELECT kind, COUNT(*) FROM task_vectors GROUP BY kind")
        return {kind: int(n) for kind, n in rows.fetchall()}

    # -- deletion / cleanup ------------------------------------------------------------------

    def delete_task(self, name: str) -> None:
        """Removes task ``name``'s record and its task vectors (rows, then files). Refused with
        :class:`StoreError` while the store holds runs or transfers of it (delete those first);
        an unknown name is a no-op."""
        with write_transaction(self.conn) as conn:
            runs = conn.execute("SELECT COUNT(*) FROM runs WHERE task = ?", (name,)).fetchone()[0]
            xfers = conn.execute(
                "SELECT COUNT(*) FROM transfers WHERE target = ? OR source_task = ?", (name, name)
            ).fetchone()[0]
            if runs or xfers:
                raise StoreError(
                    f"run store {self.root}: task {name!r} still has {runs} run(s) and {xfers} "
                    "transfer(s); delete them first"
                )
            files = [
                r[0] for r in conn.execute("SELECT file FROM task_vectors WHERE task = ?", (name,))
            ]
            conn.execute("DELETE FROM task_vectors WHERE task = ?", (name,))
            conn.execute("DELETE FROM tasks WHERE name = ?", (name,))
        for rel in files:
            with contextlib.suppress(FileNotFoundError):
                (self.root / rel).unlink()

    def compact(self) -> None:
        """Rewrites ``store.sqlite`` without free pages (``VACUUM``), e.g. after deletions
        before a store is shipped. Takes the write lock for its duration."""
        self.conn.execute("VACUUM")

    def delete_run(self, run_id: str) -> None:
        """Removes a run, its checkpoints and embeddings (rows, then files). Unknown id: no-op."""
        with write_transaction(self.conn) as conn:
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
        with write_transaction(self.conn) as conn:
            referenced = {
                (self.root / r[0]).resolve()
                for r in conn.execute(
                    "SELECT file FROM checkpoints UNION SELECT file FROM embeddings "
                    "UNION SELECT file FROM task_vectors "
                    "UNION SELECT file FROM transfers WHERE file IS NOT NULL"
                )
            }
            present = sorted(self.tensor_dir.iterdir()) if self.tensor_dir.is_dir() else []
            for path in present:
                if path.is_file() and path.resolve() not in referenced:
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
                        removed.append(path)
        return removed


#: A run store given as a path or already open.
Store = str | os.PathLike | RunStore


@contextlib.contextmanager
def closing_unless_given(db: RunStore, *given: object) -> Iterator[RunStore]:
    """``db`` for a ``with`` block, closed when the block ends unless it is one of ``given``
    (the caller passed it in already open: its owner closes it). A function that opens a store
    from a path thus leaves no SQLite connection behind for the garbage collector."""
    try:
        yield db
    finally:
        if not any(db is g for g in given):
            db.close()


def open_store(store: Store | None, pool: Store | None = None, *, create: bool = True) -> RunStore:
    """The run store given as ``store=`` or its alias ``pool=`` (default ``runs``), opened
    unless it already is. A read-only caller passes ``create=False`` and gets
    :class:`StoreError` ("no run store at ...") instead of a new, empty store."""
    if store is not None and pool is not None:
        a, b = (open_store(x, create=create) for x in (store, pool))
        if a.root != b.root:
            raise ValueError("give the pool directory once: store= or pool= (an alias), not both")
    chosen = store if store is not None else pool if pool is not None else "runs"
    return chosen if isinstance(chosen, RunStore) else RunStore(chosen, create=create)
