"""The training loop shared by both scorers, and the learning-rate search on held-out pairs.

A *head* is an ``nn.Module`` mapping a batch of precomputed pair features (``(B, ...)``) to
predicted z-scored gains ``(B,)``. :func:`fit_head` trains it with smooth-L1 loss (threshold
``beta``, in z units), AdamW and a linearly decaying learning rate; :func:`search_lr` picks the
learning rate from a grid by the mean per-target Spearman correlation on a seeded inner split
that holds out whole training *targets* (the way the scorer is used: on unseen targets).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy.stats import spearmanr
from torch import nn
from torch.nn import functional as F


@dataclass
class TrainSettings:
    """Optimisation settings of one head fit (``lr`` = peak learning rate of AdamW)."""

    lr: float
    epochs: int
    batch_size: int = 16
    beta: float = 1.0
    weight_decay: float = 0.01
    seed: int = 0


def fit_head(
    head: nn.Module, features: torch.Tensor, y: torch.Tensor, settings: TrainSettings
) -> list[float]:
    """Train ``head`` in place on ``features`` (N, ...) -> ``y`` (N,) z-scored gains.

    Smooth-L1 loss with ``settings.beta``; AdamW (weight decay on every parameter); learning
    rate decays linearly from ``lr`` to 0 over all steps; minibatches reshuffled each epoch by a
    generator seeded with ``settings.seed``. Returns the mean training loss of each epoch.
    """
    if len(features) != len(y):
        raise ValueError(f"features ({len(features)}) and targets ({len(y)}) differ in length")
    if len(y) == 0:
        raise ValueError("no training pairs")
    gen = torch.Generator().manual_seed(settings.seed)
    params = [p for p in head.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay)
    n = len(y)
    steps_per_epoch = max(1, -(-n // settings.batch_size))
    total = settings.epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: max(0.0, 1.0 - step / total))
    y = y.float()
    losses: list[float] = []
    head.train()
    for _ in range(settings.epochs):
        order = torch.randperm(n, generator=gen)
        running = 0.0
        for start in range(0, n, settings.batch_size):
            idx = order[start : start + settings.batch_size]
            pred = head(features[idx])
            loss = F.smooth_l1_loss(pred, y[idx], beta=settings.beta)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            running += float(loss.detach()) * len(idx)
        losses.append(running / n)
    head.eval()
    return losses


@torch.no_grad()
def predict_head(head: nn.Module, features: torch.Tensor, batch_size: int = 256) -> np.ndarray:
    """Predicted z-scored gains (N,) of a trained head, in eval mode (no dropout)."""
    head.eval()
    out = [head(features[i : i + batch_size]) for i in range(0, len(features), batch_size)]
    return torch.cat(out).double().numpy() if out else np.zeros(0)


def mean_target_spearman(pred: np.ndarray, y: np.ndarray, targets: Sequence[str]) -> float:
    """Spearman of ``pred`` vs ``y`` within each target (>= 3 pairs, non-constant), averaged;
    NaN if no target qualifies."""
    targets = np.asarray(targets)
    values = []
    for t in np.unique(targets):
        m = targets == t
        if m.sum() >= 3 and np.ptp(pred[m]) > 0 and np.ptp(y[m]) > 0:
            values.append(spearmanr(pred[m], y[m]).statistic)
    return float(np.mean(values)) if values else float("nan")


def inner_split(targets: Sequence[str], seed: int, frac: float = 0.25) -> np.ndarray:
    """Boolean mask (N,) of held-out pairs: all pairs of a seeded ``frac`` of the distinct
    targets (at least 1, and at least 1 target left for training)."""
    targets = np.asarray(targets)
    unique = np.unique(targets)
    if len(unique) < 2:
        raise ValueError("the learning-rate search needs pairs of at least 2 targets")
    k = min(len(unique) - 1, max(1, round(frac * len(unique))))
    held = np.random.default_rng(seed).choice(unique, size=k, replace=False)
    return np.isin(targets, held)


def search_lr(
    make_head: Callable[[int], nn.Module],
    prepare: Callable[[np.ndarray], torch.Tensor],
    y: np.ndarray,
    targets: Sequence[str],
    grid: Sequence[float],
    settings: TrainSettings,
) -> tuple[float, list[dict]]:
    """The learning rate of ``grid`` with the best held-out mean per-target Spearman (ties and
    NaN: lower held-out smooth-L1 loss), and the table of every candidate.

    ``make_head(seed)`` builds a fresh head; ``prepare(train_mask)`` returns the features of all
    N pairs with any data-dependent preprocessing fitted on the masked training pairs only.
    ``y`` are z-scored gains (N,), ``targets`` the pairs' target names (for the inner split).
    """
    if len(grid) == 1:
        return float(grid[0]), []
    held = inner_split(targets, settings.seed)
    train = ~held
    features = prepare(train)
    yt = torch.as_tensor(y, dtype=torch.float32)
    rows = []
    for lr in grid:
        head = make_head(settings.seed)
        fit_head(head, features[train], yt[train], TrainSettings(**{**settings.__dict__, "lr": lr}))
        pred = predict_head(head, features[held])
        loss = float(F.smooth_l1_loss(torch.as_tensor(pred), yt[held].double(), beta=settings.beta))
        rho = mean_target_spearman(pred, y[held], np.asarray(targets)[held])
        rows.append({"lr": float(lr), "val_spearman": rho, "val_loss": loss})
    best = max(
        rows,
        key=lambda r: (
            -np.inf if np.isnan(r["val_spearman"]) else r["val_spearman"],
            -r["val_loss"],
        ),
    )
    return best["lr"], rows
