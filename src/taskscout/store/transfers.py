"""The store's ``transfers`` table (schema v2): measured intermediate-task transfers.

One row per (source run, target config, seed, source checkpoint): status ``complete`` with the
target's score, or ``failed`` with the error. Written only by the driver, one transaction per
row; a complete row is never replaced, a failed one is replaced by its retry. The optional
tensor file (the target's best-epoch tuned state) is written inside the same transaction,
before the row, like run checkpoints.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from taskscout.store.codec import canonical_json, check_id, utc_now
from taskscout.store.connection import write_transaction
from taskscout.store.errors import StoreError
from taskscout.store.records import RUN_STATUSES, TransferRecord
from taskscout.store.tensors import (
    TENSOR_DIR,
    decode_tensors,
    prepare_tensors,
    read_verified,
    write_tensor_file,
)

if TYPE_CHECKING:  # the store imports this module; the reverse import is for typing only
    from taskscout.store.runstore import RunStore

__all__ = ["TransferTable"]


class TransferTable:
    """Reads and (driver-side) writes of the ``transfers`` table of one run store.

    Get it as ``RunStore.transfers``; ``TransferTable(store)`` is the same thing.
    """

    def __init__(self, store: RunStore):
        self.store = store

    @staticmethod
    def _from_row(row: sqlite3.Row) -> TransferRecord:
        d = dict(row)
        d["dev_scores"] = json.loads(d["dev_scores"])
        d["config"] = json.loads(d["config"])
        return TransferRecord(**d)

    def get(self, transfer_id: str) -> TransferRecord | None:
        row = self.store.conn.execute(
            "SELECT * FROM transfers WHERE transfer_id = ?", (transfer_id,)
        ).fetchone()
        return None if row is None else self._from_row(row)

    def find(
        self,
        *,
        method: str | None = None,
        backbone: str | None = None,
        target: str | None = None,
        source_task: str | None = None,
        checkpoint: str | None = None,
        settings_hash: str | None = None,
        status: str | None = "complete",
    ) -> list[TransferRecord]:
        """Rows matching every given filter (None = any), ordered by target, source, seed."""
        where, args = [], []
        for col, val in (
            ("method", method),
            ("backbone", backbone),
            ("target", target),
            ("source_task", source_task),
            ("checkpoint", checkpoint),
            ("settings_hash", settings_hash),
            ("status", status),
        ):
            if val is not None:
                where.append(f"{col} = ?")
                args.append(val)
        # only fixed column names are formatted in; every value is a bound parameter
        sql = "SELECT * FROM transfers" + (" WHERE " + " AND ".join(where) if where else "")  # noqa: S608
        sql += " ORDER BY target, source_task, seed, checkpoint, transfer_id"
        return [self._from_row(r) for r in self.store.conn.execute(sql, args).fetchall()]

    def save(
        self, record: TransferRecord, state: dict[str, torch.Tensor] | None = None
    ) -> TransferRecord:
        """Store ``record`` (complete or failed) in one transaction. A complete row with its id
        is kept as is (returned); a failed one is replaced. ``state`` (complete only): the
        target's tuned state, written to ``tensors/xfer-<id>.safetensors``."""
        if record.status not in RUN_STATUSES:
            raise StoreError(
                f"transfer status must be one of {RUN_STATUSES}, not {record.status!r}"
            )
        if record.status == "failed" and not record.error:
            raise StoreError("a failed transfer needs its error text")
        store = self.store
        path: Path | None = None
        try:
            with write_transaction(store.conn) as conn:
                row = conn.execute(
                    "SELECT status FROM transfers WHERE transfer_id = ?", (record.transfer_id,)
                ).fetchone()
                if row is not None and row["status"] == "complete":
                    return self._from_row(
                        conn.execute(
                            "SELECT * FROM transfers WHERE transfer_id = ?",
                            (record.transfer_id,),
                        ).fetchone()
                    )
                if row is not None:
                    conn.execute(
                        "DELETE FROM transfers WHERE transfer_id = ?", (record.transfer_id,)
                    )
                if state and record.status == "complete":
                    check_id("transfer_id", record.transfer_id)
                    name = f"xfer-{record.transfer_id}.safetensors"
                    path = store.tensor_dir / name
                    tensors = prepare_tensors(state, f"transfer {record.transfer_id}")
                    record.sha256 = write_tensor_file(
                        store.tensor_dir, name, tensors, {"transfer_id": record.transfer_id}
                    )
                    record.file = f"{TENSOR_DIR}/{name}"
                conn.execute(
                    "INSERT INTO transfers (transfer_id, source_run_id, source_task, target, "
                    "backbone, method, seed, config_hash, settings_hash, checkpoint, status, "
                    "score, baseline_run_id, best_epoch, dev_scores, wall_time_s, "
                    "examples_seen, device, config, file, sha256, error, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        record.transfer_id,
                        record.source_run_id,
                        record.source_task,
                        record.target,
                        record.backbone,
                        record.method,
                        int(record.seed),
                        record.config_hash,
                        record.settings_hash,
                        record.checkpoint,
                        record.status,
                        None if record.score is None else float(record.score),
                        record.baseline_run_id,
                        None if record.best_epoch is None else int(record.best_epoch),
                        canonical_json([float(x) for x in record.dev_scores]),
                        float(record.wall_time_s),
                        int(record.examples_seen),
                        record.device,
                        canonical_json(record.config),
                        record.file,
                        record.sha256,
                        record.error,
                        record.created_at or utc_now(),
                    ),
                )
        except Exception:
            if path is not None:  # rolled back: nothing references the file
                with contextlib.suppress(OSError):
                    path.unlink()
            raise
        stored = self.get(record.transfer_id)
        if stored is None:  # pragma: no cover - the transaction above committed it
            raise StoreError(f"transfer {record.transfer_id} vanished after saving")
        return stored

    def load_state(self, transfer_id: str) -> dict[str, torch.Tensor]:
        """The kept tuned state of a transfer (sha256-verified CPU tensors)."""
        rec = self.get(transfer_id)
        if rec is None or rec.file is None or rec.sha256 is None:
            raise StoreError(f"run store {self.store.root}: transfer {transfer_id!r} kept no state")
        path = self.store.root / rec.file
        how = "The transfer's kept state is lost; re-run the transfer to measure it again."
        return decode_tensors(read_verified(path, rec.sha256, how), path, how)
