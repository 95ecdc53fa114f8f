"""The store's ``transfers`` table (schema v2 of :mod:`taskscout.store`).

One row per (source run, target config, seed, source checkpoint): status ``complete`` with the
target's score, or ``failed`` with the error. Written only by the driver, one transaction per
row; a complete row is never replaced, a failed one is replaced by its retry. The optional
tensor file (the target's best-epoch tuned state) is written inside the same transaction,
before the row, like run checkpoints.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load as st_load

from taskscout.store import (
    TENSOR_DIR,
    RunStore,
    StoreError,
    _dumps,
    _now,
    _prepare_tensors,
)

STATUSES = ("complete", "failed")


@dataclass
class TransferRecord:
    """One measured transfer (scores in metric points x100, times in seconds)."""

    transfer_id: str
    source_run_id: str
    source_task: str
    target: str
    backbone: str
    method: str
    seed: int
    config_hash: str  # the target's tuning config hash = its no-transfer run id
    settings_hash: str
    checkpoint: str  # early | best (of the source run)
    status: str = "complete"
    score: float | None = None  # dev score at the target's best epoch
    baseline_run_id: str = ""
    best_epoch: int | None = None
    dev_scores: list[float] = field(default_factory=list)
    wall_time_s: float = 0.0
    examples_seen: int = 0
    device: str | None = None
    config: dict = field(default_factory=dict)
    file: str | None = None
    sha256: str | None = None
    error: str | None = None
    created_at: str = field(default_factory=_now)

    @staticmethod
    def make_id(source_run_id: str, baseline_run_id: str, checkpoint: str) -> str:
        """Deterministic id: the source run, the target's run config (seed included), the
        source checkpoint kind."""
        return RunStore.config_hash(
            {
                "kind": "transfer",
                "source_run_id": source_run_id,
                "target_run_id": baseline_run_id,
                "checkpoint": checkpoint,
                "format": 1,
            }
        )


class TransferTable:
    """Reads and (driver-side) writes of the ``transfers`` table of one :class:`RunStore`."""

    def __init__(self, db: RunStore):
        self.db = db

    @staticmethod
    def _from_row(row) -> TransferRecord:
        d = dict(row)
        d["dev_scores"] = json.loads(d["dev_scores"])
        d["config"] = json.loads(d["config"])
        return TransferRecord(**d)

    def get(self, transfer_id: str) -> TransferRecord | None:
        row = self.db.conn.execute(
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
        sql = "SELECT * FROM transfers" + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY target, source_task, seed, checkpoint, transfer_id"
        return [self._from_row(r) for r in self.db.conn.execute(sql, args).fetchall()]

    def save(
        self, record: TransferRecord, state: dict[str, torch.Tensor] | None = None
    ) -> TransferRecord:
        """Store ``record`` (complete or failed) in one transaction. A complete row with its id
        is kept as is (returned); a failed one is replaced. ``state`` (complete only): the
        target's tuned state, written to ``tensors/xfer-<id>.safetensors``."""
        if record.status not in STATUSES:
            raise StoreError(f"transfer status must be one of {STATUSES}, not {record.status!r}")
        if record.status == "failed" and not record.error:
            raise StoreError("a failed transfer needs its error text")
        db = self.db
        path: Path | None = None
        try:
            with db._write() as conn:
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
                    name = f"xfer-{record.transfer_id}.safetensors"
                    path = db.tensor_dir / name
                    tensors = _prepare_tensors(state, f"transfer {record.transfer_id}")
                    record.sha256 = db._write_tensor_file(
                        name, tensors, {"transfer_id": record.transfer_id}
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
                        _dumps([float(x) for x in record.dev_scores]),
                        float(record.wall_time_s),
                        int(record.examples_seen),
                        record.device,
                        _dumps(record.config),
                        record.file,
                        record.sha256,
                        record.error,
                        record.created_at or _now(),
                    ),
                )
        except Exception:
            if path is not None:  # rolled back: nothing references the file
                with contextlib.suppress(OSError):
                    path.unlink()
            raise
        stored = self.get(record.transfer_id)
        assert stored is not None
        return stored

    def load_state(self, transfer_id: str) -> dict[str, torch.Tensor]:
        """The kept tuned state of a transfer (sha256-verified)."""
        rec = self.get(transfer_id)
        if rec is None or rec.file is None:
            raise StoreError(f"run store {self.db.root}: transfer {transfer_id!r} kept no state")
        return st_load(self.db._read_verified(rec.file, rec.sha256, transfer_id))
