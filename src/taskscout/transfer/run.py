"""One transfer run: target t tuned with the method's parameters initialised from source s.

Everything but the initial values of the method's tuned parameters is the target's ordinary
no-transfer run: the same data subsample, encoding, hyper-parameters, seed and model
construction (:func:`taskscout.tuning.run.train_task`, the one function every run goes
through), so the fresh head's initialisation, batch order and dropout masks match; only then
are the method's parameters overwritten with the source's. With ``source_state=None``
:func:`run_transfer` reproduces the no-transfer run itself (the tests check it, score for
score).

Score rule (transfer and baseline alike): the target's dev score at its best epoch, metric x100.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from taskscout.data import TaskData
from taskscout.tuning.config import TuneConfig
from taskscout.tuning.run import train_task


@dataclass
class TransferOutcome:
    """What one (transfer or no-transfer) training of the target produced."""

    target: str
    seed: int
    baseline_run_id: str  # the target's ordinary run id (= its config hash)
    dev_scores: list[float]  # per epoch, metric x100
    best_epoch: int
    wall_time_s: float  # training + per-epoch evaluation
    examples_seen: int
    device: str
    threads: int
    state: dict[str, torch.Tensor] = field(default_factory=dict)  # best-epoch state, if kept

    @property
    def score(self) -> float:
        """Dev score at the best epoch (metric x100)."""
        return self.dev_scores[self.best_epoch - 1]


def run_transfer(
    target: str | TaskData,
    source_state: dict[str, torch.Tensor] | None,
    settings: TuneConfig,
    *,
    seed: int,
    device: str | None = None,
    threads: int | None = None,
    cache_dir: str | Path | None = None,
    keep_state: bool = False,
    progress: bool = False,
    description: str | None = None,
) -> TransferOutcome:
    """Train ``target`` from ``source_state`` (a stored checkpoint, keys ``method.*``; None:
    the no-transfer run) and score it.

    ``settings`` must be resolved (``settings.resolved(device)``). ``threads``: torch intra-op
    threads for this run (fix it to get bit-identical CPU results across executors).
    ``cache_dir``: where encoded splits are cached. Checkpoint states are CPU tensors whatever
    ``device`` trains.
    """
    data = target if isinstance(target, TaskData) else settings.load(target, seed)
    trained = train_task(
        data,
        settings,
        seed=seed,
        init_state=source_state,
        device=device,
        threads=threads,
        cache_dir=cache_dir,
        progress=progress,
        description=description,
    )
    result = trained.result
    return TransferOutcome(
        target=data.spec.name,
        seed=seed,
        baseline_run_id=trained.run_id,
        dev_scores=list(result.dev_scores),
        best_epoch=result.best_epoch,
        wall_time_s=result.wall_time_s,
        examples_seen=result.examples_seen,
        device=trained.device,
        threads=trained.threads,
        state=result.best_state if keep_state else {},
    )
