"""One transfer run: target t tuned with the method's parameters initialised from source s.

Everything but the initial values of the method's tuned parameters is the target's ordinary
no-transfer run (``api.tune`` with the same settings and seed): the same data subsample,
encoding, hyper-parameters and seed; the model is built exactly as ``api.tune`` builds it
(:func:`taskscout.tuning.model.build_task_model`), so the fresh head's initialisation, batch
order and dropout masks match, and only then are the method's parameters overwritten with the
source's. With ``source_state=None`` :func:`run_transfer` reproduces the no-transfer run
itself (the tests check it does, score for score).

Score rule (transfer and baseline alike): the target's dev score at its best epoch, metric x100.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from taskscout.backbone import load_backbone
from taskscout.data import TaskData
from taskscout.encode import encode_task
from taskscout.store import RunStore
from taskscout.transfer.settings import TuneSettings
from taskscout.tuning.model import TaskModel, build_task_model
from taskscout.tuning.trainer import TrainConfig, resolve_device, train_model
from taskscout.util import set_torch_threads


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


def build_target_model(
    settings: TuneSettings,
    data: TaskData,
    encoder: torch.nn.Module,
    seed: int,
    source_state: dict[str, torch.Tensor] | None,
) -> TaskModel:
    """The target's model before training: built as ``api.tune`` builds it (same RNG use), then
    the method's tuned parameters set from ``source_state`` (a stored checkpoint: keys
    ``method.*``, any ``head.*`` ignored: the head stays fresh). ValueError if the state does
    not fit (other method, backbone or method config)."""
    model = build_task_model(
        settings.method, encoder, data.spec, settings.method_options, seed=seed
    )
    if source_state is not None:
        if not any(k.startswith("method.") for k in source_state):
            raise ValueError("source checkpoint holds no method.* parameters")
        model.load_trainable_state(source_state, head=False)
    return model


def run_transfer(
    target: str | TaskData,
    source_state: dict[str, torch.Tensor] | None,
    settings: TuneSettings,
    *,
    seed: int,
    device: str | None = None,
    threads: int | None = None,
    cache_dir: str | Path | None = None,
    keep_state: bool = False,
    progress: bool = False,
    description: str | None = None,
) -> TransferOutcome:
    """Train ``target`` from ``source_state`` (None: the no-transfer run) and score it.

    ``settings`` must be resolved (``settings.resolved(device)``). ``threads``: torch intra-op
    threads for this run (fix it to get bit-identical CPU results across executors).
    ``cache_dir``: where encoded splits are cached (as ``api.tune`` uses ``<store>/cache``).
    Checkpoint states are CPU tensors whatever ``device`` trains.
    """
    threads = set_torch_threads(threads)
    data = target if isinstance(target, TaskData) else settings.load(target, seed)
    train_config = settings.train_config(seed)
    config = settings.run_config(data, seed)
    _, tokenizer, encoder = load_backbone(settings.backbone)
    train_split, dev_split = encode_task(
        data, tokenizer, settings.max_len, cache_dir=None if cache_dir is None else Path(cache_dir)
    )
    model = build_target_model(settings, data, encoder, seed, source_state)
    result = train_model(
        model,
        train_split,
        dev_split,
        TrainConfig(**{**train_config.to_dict(), "lr": config["train"]["lr"]}),
        pad_id=tokenizer.pad_token_id,
        progress=progress,
        description=description or f"{settings.method} on {data.spec.name}",
        device=device,
    )
    return TransferOutcome(
        target=data.spec.name,
        seed=seed,
        baseline_run_id=RunStore.config_hash(config),
        dev_scores=list(result.dev_scores),
        best_epoch=result.best_epoch,
        wall_time_s=result.wall_time_s,
        examples_seen=result.examples_seen,
        device=str(resolve_device(device)),
        threads=threads,
        state=result.best_state if keep_state else {},
    )
