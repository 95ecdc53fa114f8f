"""The trainer: AdamW, linear warmup/decay, length-grouped dynamic batches, dev evaluation each
epoch with the task's metric, early + best checkpoints of the trainable parameters only.

Deterministic on CPU for a fixed seed and thread count: batch order comes from
``random.Random(seed + epoch)``, dropout from ``torch.manual_seed(seed)`` set before training.
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from dataclasses import dataclass, field

import torch

from taskscout.data import TaskSpec, TaskType
from taskscout.encode import (
    IGNORE_INDEX,
    EncodedSplit,
    collate,
    length_grouped_batches,
    sorted_batches,
)
from taskscout.tuning import task_metrics
from taskscout.tuning.config import TuneConfig
from taskscout.tuning.device import resolve_device
from taskscout.tuning.model import TaskModel
from taskscout.util import make_progress


@dataclass
class TrainResult:
    """What one training run produced. Scores are the task metric x100 on dev."""

    dev_scores: list[float]
    loss_curve: list[float]  # mean training loss of each optimiser step
    loss_steps: list[int]  # 1-based global step of each loss value
    early_epoch: int  # the config's resolved early_epochs
    early_state: dict[str, torch.Tensor]
    best_epoch: int  # 1-based epoch with the highest dev score (earliest on ties)
    best_state: dict[str, torch.Tensor]
    wall_time_s: float
    train_time_s: float
    eval_time_s: float
    examples_seen: int  # training examples processed (epochs x |train|)
    extra: dict = field(default_factory=dict)

    @property
    def best_score(self) -> float:
        return self.dev_scores[self.best_epoch - 1]


def autocast_context(bf16: bool, device: torch.device | str = "cpu"):
    if bf16:
        return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _to(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    if device.type == "cpu":
        return batch
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def _device_of(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def predict(
    model: TaskModel, split: EncodedSplit, *, pad_id: int, batch_size: int = 128, bf16: bool = False
) -> list:
    """Decoded predictions for every row of ``split``, in row order: label names, floats
    (regression), tag-name lists over the first sub-token of each word, or choice indices."""
    was_training = model.training
    model.eval()
    spec = model.spec
    out: list = [None] * len(split)
    device = _device_of(model)
    for idx in sorted_batches(split.lengths, batch_size):
        batch = _to(collate(split, idx, pad_id), device)
        with autocast_context(bf16, device):
            logits = model(batch).float().cpu()
        if spec.type is TaskType.REGRESSION:
            values = logits.tolist()
        elif spec.type is TaskType.TOKEN_CLASSIFICATION:
            best = logits.argmax(-1)
            split_labels = batch["labels"].cpu().tolist()
            values = [
                [
                    spec.labels[t]
                    for t, g in zip(best[r].tolist(), split_labels[r], strict=True)
                    if g != IGNORE_INDEX
                ]
                for r in range(len(idx))
            ]
        elif spec.type is TaskType.MULTIPLE_CHOICE:
            values = logits.argmax(-1).tolist()
        else:
            values = [spec.labels[i] for i in logits.argmax(-1).tolist()]
        for row, value in zip(idx, values, strict=True):
            out[row] = value
    model.train(was_training)
    return out


def gold_values(spec: TaskSpec, split: EncodedSplit) -> list:
    """The gold labels of ``split`` decoded like :func:`predict`'s output."""
    if spec.type is TaskType.TOKEN_CLASSIFICATION:
        return [[spec.labels[g] for g in row if g != IGNORE_INDEX] for row in split.labels]
    if spec.type in (TaskType.REGRESSION, TaskType.MULTIPLE_CHOICE):
        return list(split.labels)
    return [spec.labels[i] for i in split.labels]


def evaluate(
    model: TaskModel, split: EncodedSplit, *, pad_id: int, batch_size: int = 128, bf16: bool = False
) -> float:
    """The task's metric x100 on ``split``."""
    pred = predict(model, split, pad_id=pad_id, batch_size=batch_size, bf16=bf16)
    spec = model.spec
    return task_metrics.score(
        spec.metric, pred, gold_values(spec, split), positive_label=spec.positive_label
    )


#: devices whose AdamW has a fused kernel (one pass over every tensor, the same update)
FUSED_ADAMW_DEVICES = ("cpu", "cuda")


def make_optimizer(model: TaskModel, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """AdamW over the trainable parameters: weight decay on matrices (ndim >= 2) only. Fused
    where torch has the kernel: the same update as the per-tensor loop (up to float rounding)
    in one pass, which matters for ``full``, whose every step updates all 22M parameters
    (the optimizer's share of a step: benchmarks/train_efficiency.py)."""
    decay, no_decay = [], []
    for param in model.parameters():
        if param.requires_grad:
            (decay if param.ndim >= 2 else no_decay).append(param)
    devices = {p.device.type for p in decay + no_decay}
    return torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=lr,
        fused=bool(devices) and devices <= set(FUSED_ADAMW_DEVICES),
    )


def train_model(
    model: TaskModel,
    train: EncodedSplit,
    dev: EncodedSplit,
    config: TuneConfig,
    *,
    seed: int,
    pad_id: int,
    progress: bool = True,
    description: str = "tuning",
    device: torch.device | str | None = None,
) -> TrainResult:
    """Train ``model`` in place on ``train``; evaluate on ``dev`` after every epoch.

    Hyper-parameters come from ``config`` with its defaults resolved (lr: the method's; epochs
    and early checkpoint: :meth:`TuneConfig.epochs_for` / :meth:`TuneConfig.early_epoch_for`
    of the train size, which a step budget raises; ``bf16`` None counts as False), the
    batch order and dropout from ``seed``.
    ``device`` (see :func:`resolve_device`; default CPU) is where the model is moved for
    training; checkpoint states are always CPU tensors."""
    if len(train) == 0 or len(dev) == 0:
        raise ValueError("train and dev splits must not be empty")
    lr = config.resolved_lr
    bf16 = bool(config.bf16)
    device = resolve_device(str(device) if device is not None else None)
    model.to(device)
    torch.manual_seed(seed)
    steps_per_epoch = math.ceil(len(train) / config.batch_size)
    epochs = config.epochs_for(len(train))
    total = steps_per_epoch * epochs
    warmup = max(1, round(config.warmup_ratio * total))
    optimizer = make_optimizer(model, lr, config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: (
            (s + 1) / warmup if s < warmup else max(0.0, (total - s) / max(1, total - warmup))
        ),
    )
    params = [p for p in model.parameters() if p.requires_grad]
    early_epoch = config.early_epoch_for(len(train))
    result = TrainResult([], [], [], early_epoch, {}, 0, {}, 0.0, 0.0, 0.0, 0)
    best = -math.inf
    start = time.perf_counter()
    step = 0
    with make_progress(enabled=progress) as bar:
        task = bar.add_task(description, total=total, loss=float("nan"), score=float("nan"))
        for epoch in range(1, epochs + 1):
            model.train()
            t0 = time.perf_counter()
            batches = length_grouped_batches(
                train.lengths, config.batch_size, random.Random(seed * 1000 + epoch)
            )
            for idx in batches:
                batch = _to(collate(train, idx, pad_id), device)
                with autocast_context(bf16, device):
                    logits = model(batch)
                loss = model.loss(logits, batch["labels"])
                if not torch.isfinite(loss):
                    raise FloatingPointError(
                        f"training loss became {loss.item()} at step {step + 1}; lower the "
                        f"learning rate (now {lr})"
                    )
                loss.backward()
                if config.max_grad_norm:
                    torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                result.loss_curve.append(float(loss.item()))
                result.loss_steps.append(step)
                result.examples_seen += len(idx)
                bar.update(task, advance=1, loss=result.loss_curve[-1])
            t1 = time.perf_counter()
            score = evaluate(
                model, dev, pad_id=pad_id, batch_size=config.eval_batch_size, bf16=bf16
            )
            result.train_time_s += t1 - t0
            result.eval_time_s += time.perf_counter() - t1
            result.dev_scores.append(score)
            bar.update(task, score=score)
            if epoch == early_epoch:
                result.early_state = model.trainable_state()
            if score > best:
                best, result.best_epoch = score, epoch
                result.best_state = model.trainable_state()
    result.wall_time_s = time.perf_counter() - start
    return result
