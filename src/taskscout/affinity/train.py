"""The training loop shared by both scorers, the learning-rate search on held-out pairs, and
the seeding that makes every fit reproducible.

A *head* is an ``nn.Module`` mapping a batch of precomputed pair features (``(B, ...)``) to
predicted z-scored gains ``(B,)``. :func:`fit_head` trains it with smooth-L1 loss (threshold
``beta``, in z units of the training gains), AdamW and a linearly decaying learning rate;
:func:`search_lr` picks the learning rate from a grid by the mean per-target Spearman
correlation on a seeded inner split that holds out whole training *targets* (the way the scorer
is used: on unseen targets).

**Seeding.** Every random draw of a fit comes from a generator derived from one non-negative
integer seed and a named *stream* (:data:`STREAMS`: weight initialisation, dropout, minibatch
order, inner split, pair sampling, third-party modules), by :func:`derive_seed`
(``numpy.random.SeedSequence(seed, spawn_key=(stream,))``), so the streams are independent of
each other and of the caller's global RNG state. Heads own explicit ``torch.Generator`` s for
their initialisation and their dropout (:class:`SeededDropout`, :func:`init_linear`).
Third-party modules that draw from torch's *global* generator (the dropout inside a
transformer layer of the backbone scorer) run inside :func:`seeded_global_rng`, which seeds the
global generator from the ``"global"`` stream and restores the caller's state afterwards.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from scipy.stats import spearmanr
from torch import nn
from torch.nn import functional as F

STREAMS = ("init", "dropout", "shuffle", "inner_split", "sample_pairs", "global")
"""The named random streams of a fit (each gets its own generator, see :func:`derive_seed`)."""


def check_seed(seed: int) -> int:
    """``seed`` as an int; ``ValueError`` unless it is a non-negative integer."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, not {seed!r}")
    return int(seed)


def derive_seed(seed: int, stream: str) -> int:
    """A 63-bit seed for the named ``stream`` (one of :data:`STREAMS`) of base ``seed`` (>= 0).

    Deterministic across runs and platforms; different streams of one seed, and one stream of
    different seeds, give unrelated generators."""
    if stream not in STREAMS:
        raise ValueError(f"unknown random stream {stream!r}; one of {STREAMS}")
    seq = np.random.SeedSequence(check_seed(seed), spawn_key=(STREAMS.index(stream),))
    return int(seq.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def torch_generator(seed: int, stream: str) -> torch.Generator:
    """A CPU ``torch.Generator`` for ``stream`` of ``seed`` (see :func:`derive_seed`)."""
    return torch.Generator().manual_seed(derive_seed(seed, stream))


def numpy_generator(seed: int, stream: str) -> np.random.Generator:
    """A ``numpy.random.Generator`` for ``stream`` of ``seed`` (see :func:`derive_seed`)."""
    return np.random.default_rng(derive_seed(seed, stream))


@contextlib.contextmanager
def seeded_global_rng(seed: int) -> Iterator[None]:
    """Run the block with torch's global CPU generator seeded from the ``"global"`` stream of
    ``seed``; the caller's global state is restored on exit (also on error)."""
    with torch.random.fork_rng(devices=[]):  # CPU only: the scorers train on the CPU
        torch.default_generator.manual_seed(derive_seed(seed, "global"))  # not CUDA's
        yield


class SeededDropout(nn.Module):
    """Inverted dropout (like ``nn.Dropout``) whose masks come from its own generator.

    ``forward(x)``: any shape -> same shape; in training mode each element is zeroed with
    probability ``p`` and the rest scaled by ``1 / (1 - p)``; identity in eval mode or for
    ``p = 0``. The generator (not part of the state dict) is seeded from the ``"dropout"``
    stream of ``seed``; ``p`` in [0, 1).
    """

    def __init__(self, p: float, seed: int):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), not {p}")
        self.p = float(p)
        self.generator = torch_generator(seed, "dropout")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = torch.rand(x.shape, generator=self.generator, dtype=x.dtype) >= self.p
        return x * keep.to(x.device) / (1.0 - self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def init_linear(layer: nn.Linear, generator: torch.Generator, std: float | None = None) -> None:
    """(Re)initialise ``layer`` in place from ``generator`` only (no global RNG draw).

    ``std=None``: PyTorch's default for ``nn.Linear`` (weight kaiming-uniform with
    ``a = sqrt(5)``, bias uniform in +-1/sqrt(fan_in)); else weight ~ N(0, std^2), zero bias.
    """
    with torch.no_grad():
        if std is None:
            nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
            if layer.bias is not None:
                bound = 1.0 / math.sqrt(layer.in_features) if layer.in_features > 0 else 0.0
                nn.init.uniform_(layer.bias, -bound, bound, generator=generator)
        else:
            layer.weight.copy_(torch.randn(layer.weight.shape, generator=generator) * std)
            if layer.bias is not None:
                layer.bias.zero_()


def seeded_linear(
    in_features: int, out_features: int, generator: torch.Generator, std: float | None = None
) -> nn.Linear:
    """A new ``nn.Linear`` initialised by :func:`init_linear` from ``generator``; building it
    draws nothing from the global generator (it is created on the meta device first)."""
    layer = nn.Linear(in_features, out_features, device="meta").to_empty(device="cpu")
    init_linear(layer, generator, std)
    return layer


@dataclass
class TrainSettings:
    """Optimisation settings of one head fit.

    ``lr``: peak learning rate of AdamW (> 0); ``epochs``: passes over the pairs;
    ``batch_size``: pairs per step; ``beta``: smooth-L1 threshold in z units of the training
    gains; ``seed``: base seed (>= 0) of the minibatch order and of the global-RNG draws of
    third-party modules (see :func:`seeded_global_rng`).
    """

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
    rate decays linearly from ``lr`` to 0 over all steps; minibatches reshuffled each epoch by
    the ``"shuffle"`` generator of ``settings.seed``. Training runs inside
    :func:`seeded_global_rng` (``settings.seed``), so modules that draw from torch's global
    generator are seeded too and the caller's global RNG state is left as it was. The head's
    own generators (its dropout) continue their streams. Returns the mean training loss
    (z units) of each epoch.
    """
    if len(features) != len(y):
        raise ValueError(f"features ({len(features)}) and targets ({len(y)}) differ in length")
    if len(y) == 0:
        raise ValueError("no training pairs")
    with seeded_global_rng(settings.seed):
        return _train(head, features, y, settings)


def _train(
    head: nn.Module, features: torch.Tensor, y: torch.Tensor, settings: TrainSettings
) -> list[float]:
    gen = torch_generator(settings.seed, "shuffle")
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
    """Predicted z-scored gains (N,) float64 of a trained head for ``features`` (N, ...), in
    eval mode (no dropout, deterministic), in chunks of ``batch_size``."""
    head.eval()
    out = [head(features[i : i + batch_size]) for i in range(0, len(features), batch_size)]
    return torch.cat(out).double().numpy() if out else np.zeros(0)


def mean_target_spearman(pred: np.ndarray, y: np.ndarray, targets: Sequence[str]) -> float:
    """Spearman of ``pred`` vs ``y`` (both (N,)) within each target of ``targets`` (N,) that
    has >= 3 pairs and non-constant values, averaged over those targets: in [-1, 1], NaN if no
    target qualifies."""
    targets = np.asarray(targets)
    values = []
    for t in np.unique(targets):
        m = targets == t
        if m.sum() >= 3 and np.ptp(pred[m]) > 0 and np.ptp(y[m]) > 0:
            values.append(spearmanr(pred[m], y[m]).statistic)
    return float(np.mean(values)) if values else float("nan")


def inner_split(targets: Sequence[str], seed: int, frac: float = 0.25) -> np.ndarray:
    """Boolean mask (N,) of held-out pairs: all pairs of ``frac`` (in (0, 1)) of the distinct
    targets, drawn by the ``"inner_split"`` generator of ``seed`` (at least 1 target held out,
    at least 1 left for training)."""
    targets = np.asarray(targets)
    unique = np.unique(targets)
    if len(unique) < 2:
        raise ValueError("the learning-rate search needs pairs of at least 2 targets")
    k = min(len(unique) - 1, max(1, round(frac * len(unique))))
    held = numpy_generator(seed, "inner_split").choice(unique, size=k, replace=False)
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
    Every candidate trains a head built with ``settings.seed`` under the same seeds (inner
    split, initialisation, dropout, minibatch order), so the table, and the chosen rate, are a
    function of the inputs and ``settings.seed`` only. Each row: ``lr``, ``val_spearman``
    (in [-1, 1] or NaN), ``val_loss`` (smooth-L1, z units). A one-value grid returns it and an
    empty table without training.
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
        fit_head(head, features[train], yt[train], replace(settings, lr=float(lr)))
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
