"""The records the run store reads and writes: runs, checkpoints, embeddings, transfers.

Scores are in metric points x100, times in seconds, timestamps ISO 8601 in UTC.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from taskscout.store.codec import config_hash, utc_now

__all__ = [
    "CHECKPOINT_KINDS",
    "LAYER_REDUCES",
    "RUN_STATUSES",
    "CheckpointRecord",
    "EmbeddingRecord",
    "RunRecord",
    "TransferRecord",
]

CHECKPOINT_KINDS: tuple[str, ...] = ("early", "best")
LAYER_REDUCES: tuple[str, ...] = ("mean", "concat", "none")
RUN_STATUSES: tuple[str, ...] = ("complete", "failed")


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
    created_at: str = field(default_factory=utc_now)  # ISO 8601, UTC
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
    created_at: str = field(default_factory=utc_now)

    @staticmethod
    def make_id(source_run_id: str, baseline_run_id: str, checkpoint: str) -> str:
        """Deterministic id: the source run, the target's run config (seed included), the
        source checkpoint kind."""
        return config_hash(
            {
                "kind": "transfer",
                "source_run_id": source_run_id,
                "target_run_id": baseline_run_id,
                "checkpoint": checkpoint,
                "format": 1,
            }
        )
