"""A fitted affinity model: K scorers of one kind trained with different seeds.

:func:`fit_affinity` trains the ensemble on gold pairs; :meth:`AffinityModel.predict` returns,
for each (target, source) pair, the mean of the K members' predicted gains and their standard
deviation (ddof = 1; NaN for K = 1), both in metric points -- the spread says when the scorer
is guessing. Members share the data, the gain scaling, the learning rate (searched once, with
the ensemble's base seed) and the frozen part (backbone bottom layers, or the light scorer's
PCA); member k trains with seed ``seed + k`` (head initialisation, minibatch order, dropout;
see the seeding notes of :mod:`taskscout.affinity.train`). A fit is a deterministic function of
its pairs, embeddings and config: two fits with the same ``seed`` give bit-identical members,
whatever the caller's global RNG state, which a fit leaves unchanged.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import pandas as pd
import torch
from torch import nn

from taskscout.affinity.data import (
    AffinityDataError,
    EmbeddingSet,
    GainScaler,
    IncompatibleEmbeddingError,
    check_gold,
)
from taskscout.affinity.light import LightHead, VectorFeaturizer
from taskscout.affinity.scorer import BackboneHead, FrozenPairEncoder
from taskscout.affinity.train import (
    TrainSettings,
    check_seed,
    fit_head,
    predict_head,
    search_lr,
)
from taskscout.backbone import load_backbone, resolve_backbone
from taskscout.util import make_progress

KINDS = ("backbone", "light")
FORMAT = 1
_DEFAULTS = {
    "backbone": {"lr_grid": (3e-4, 1e-3), "epochs": 20, "batch_size": 16},
    "light": {"lr_grid": (1e-3, 3e-3, 1e-2), "epochs": 100, "batch_size": 32},
}


@dataclass
class AffinityConfig:
    """Hyperparameters of an affinity ensemble (None = the kind's default, see ``_DEFAULTS``).

    ``kind``: one of :data:`KINDS`. ``method``: the embedding method the scorer reads.
    ``beta``: smooth-L1 threshold in z units of the training gains (> 0). ``lr``: fixed learning
    rate (skips the search); else the best of ``lr_grid`` on held-out training targets.
    ``ensemble``: number of members K (>= 1). ``seed``: base seed (>= 0) of every random draw
    (learning-rate search and member 0 use ``seed``, member k ``seed + k``).
    ``train_layers``: trainable top layers of the backbone scorer. ``dropout``: dropout
    probability in [0, 1) of the heads. ``pca_dim`` / ``hidden``: the light scorer's reduction
    and MLP width.
    """

    kind: str = "light"
    method: str = "prompt"
    beta: float = 1.0
    lr: float | None = None
    lr_grid: tuple[float, ...] | None = None
    epochs: int | None = None
    batch_size: int | None = None
    weight_decay: float = 0.01
    ensemble: int = 3
    seed: int = 0
    train_layers: int = 1
    dropout: float = 0.1
    pca_dim: int = 8
    hidden: int = 64

    def resolved(self) -> AffinityConfig:
        """A copy with the kind's defaults filled in; ``ValueError`` for invalid values."""
        if self.kind not in KINDS:
            raise ValueError(f"scorer kind must be one of {KINDS}, not {self.kind!r}")
        if self.kind == "backbone" and self.method != "prompt":
            raise ValueError(
                "the backbone scorer reads prompt matrices: use --method prompt "
                f"(or --kind light for {self.method!r} vectors)"
            )
        if not self.beta > 0:
            raise ValueError(f"beta must be > 0, not {self.beta}")
        if self.ensemble < 1:
            raise ValueError(f"ensemble size must be >= 1, not {self.ensemble}")
        check_seed(self.seed)
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), not {self.dropout}")
        d = _DEFAULTS[self.kind]
        out = AffinityConfig(**asdict(self))
        out.lr_grid = tuple(self.lr_grid or d["lr_grid"])
        out.epochs = self.epochs or d["epochs"]
        out.batch_size = self.batch_size or d["batch_size"]
        return out

    def to_dict(self) -> dict:
        """JSON-ready dict (``lr_grid`` as a list)."""
        out = asdict(self)
        out["lr_grid"] = list(out["lr_grid"]) if out["lr_grid"] is not None else None
        return out


@dataclass
class FitInfo:
    """What a fit learned and was trained with; the pool-compatibility contract.

    ``embedding_shape``: [L, H] prompt matrices or [D] vectors. ``gain_mean`` / ``gain_std``:
    the training gains' scaling (metric points). ``lr``: the learning rate the members trained
    with; ``lr_search``: the search table (``lr``, ``val_spearman``, ``val_loss``; empty when
    the rate was fixed). ``loss_curves``: per member, the mean training loss (z units) of each
    epoch. ``fit_seconds``: wall-clock time of the fit.
    """

    backbone: str
    method: str
    checkpoint: str
    layer_reduce: str
    embedding_shape: list[int]
    gain_mean: float
    gain_std: float
    lr: float
    n_pairs: int
    tasks: list[str]
    lr_search: list[dict] = field(default_factory=list)
    loss_curves: list[list[float]] = field(default_factory=list)
    fit_seconds: float = 0.0
    backbone_location: str | None = None
    format: int = FORMAT


class AffinityModel:
    """K trained heads plus the frozen part that turns embeddings into their input.

    ``frozen``: a :class:`FrozenPairEncoder` (backbone kind) or a :class:`VectorFeaturizer`
    (light kind).
    """

    def __init__(self, config: AffinityConfig, info: FitInfo, frozen, heads: list[nn.Module]):
        self.config = config
        self.info = info
        self.frozen = frozen
        self.heads = heads
        self.scaler = GainScaler(info.gain_mean, info.gain_std)

    # --- compatibility ---------------------------------------------------------------------
    def check_embeddings(self, emb: EmbeddingSet) -> None:
        """Raise :class:`IncompatibleEmbeddingError` unless ``emb`` has the backbone, method,
        checkpoint, layer reduction and shape (prompt length, hidden size / dimension) this
        model was trained with."""
        info = self.info
        pairs = [
            ("backbone", emb.key.backbone, info.backbone),
            ("method", emb.key.method, info.method),
            ("checkpoint", emb.checkpoint, info.checkpoint),
            ("layer_reduce", emb.key.layer_reduce, info.layer_reduce),
            ("embedding shape", list(emb.key.shape), list(info.embedding_shape)),
        ]
        for what, got, want in pairs:
            if got != want:
                detail = ""
                if what == "embedding shape" and len(want) == 2 and len(got) == 2:
                    detail = f" (prompt length L={got[0]} vs {want[0]}, H={got[1]} vs {want[1]})"
                raise IncompatibleEmbeddingError(
                    f"this affinity scorer was trained on {what} {want!r} but the pool has "
                    f"{got!r}{detail}; fit a scorer on this pool (taskscout affinity fit)"
                )

    # --- scoring ---------------------------------------------------------------------------
    def features(self, targets: list[str], sources: list[str], emb: EmbeddingSet) -> torch.Tensor:
        """Input of the heads for the N pairs (targets[i], sources[i]): (N, 2L, H) frozen
        hidden states (backbone kind) or (N, 4k + 1) pair features (light kind)."""
        if self.config.kind == "backbone":
            return self.frozen(emb.stack(targets), emb.stack(sources))
        vec = emb.as_vectors()
        return self.frozen(vec.stack(targets), vec.stack(sources))

    def predict(
        self, targets: list[str], sources: list[str], emb: EmbeddingSet
    ) -> tuple[np.ndarray, np.ndarray]:
        """Predicted gain (mean over members) and its member standard deviation, both (N,) in
        metric points, for the pairs (targets[i], sources[i])."""
        if len(targets) != len(sources):
            raise ValueError("targets and sources must have equal length")
        self.check_embeddings(emb)
        if not targets:
            return np.zeros(0), np.zeros(0)
        feats = self.features(list(targets), list(sources), emb)
        points = np.stack([self.scaler.inverse(predict_head(h, feats)) for h in self.heads])
        std = points.std(axis=0, ddof=1) if len(self.heads) > 1 else np.full(len(targets), np.nan)
        return points.mean(axis=0), std

    def rank(self, target: str, sources: list[str], emb: EmbeddingSet) -> pd.DataFrame:
        """``source, gain, std`` for one target, sorted by descending predicted gain."""
        mean, std = self.predict([target] * len(sources), list(sources), emb)
        df = pd.DataFrame({"source": list(sources), "gain": mean, "std": std})
        return df.sort_values("gain", ascending=False, kind="stable").reset_index(drop=True)


def head_factory(
    config: AffinityConfig, frozen, encoder
) -> Callable[[int], BackboneHead | LightHead]:
    """``make_head(seed)`` building a fresh, seeded head of ``config.kind`` (a resolved
    config): a :class:`BackboneHead` over ``encoder`` or a :class:`LightHead` over the
    features of the :class:`VectorFeaturizer` ``frozen``."""
    if config.kind == "backbone":
        return lambda seed: BackboneHead(encoder, config.train_layers, seed, config.dropout)
    return lambda seed: LightHead(frozen.dim, config.hidden, seed, config.dropout)


def fit_affinity(
    pairs: pd.DataFrame,
    emb: EmbeddingSet,
    config: AffinityConfig | None = None,
    *,
    backbone_location: str | None = None,
    progress: bool = True,
) -> AffinityModel:
    """Fit an ensemble on the gold ``pairs`` (``target, source, gain``, gains in metric points)
    over the embeddings ``emb`` (prompt matrices for the backbone kind, any embedding for the
    light kind).

    ``backbone_location``: the folder / id that loads the backbone the embeddings were made with
    (backbone kind; e.g. ``Pool.backbone_location()``); its id must equal ``emb``'s backbone.
    Every pair's tasks must have an embedding (:class:`AffinityDataError` otherwise).
    """
    start = time.perf_counter()
    config = (config or AffinityConfig()).resolved()
    if emb.key.method != config.method:
        raise IncompatibleEmbeddingError(
            f"the scorer is configured for method {config.method!r} but the embeddings are "
            f"{emb.key.method!r}"
        )
    pairs = check_gold(pairs, emb.tasks)
    targets = pairs["target"].tolist()
    sources = pairs["source"].tolist()
    scaler = GainScaler.fit(pairs["gain"])
    y = scaler.transform(pairs["gain"])
    encoder = None
    if config.kind == "backbone":
        if len(emb.key.shape) != 2:
            raise IncompatibleEmbeddingError(
                f"the backbone scorer needs (L, H) prompt matrices, got shape {emb.key.shape}"
            )
        ref = resolve_backbone(backbone_location)
        if ref.backbone_id != emb.key.backbone:
            raise IncompatibleEmbeddingError(
                f"backbone {ref.backbone_id!r} loaded for the scorer, but the embeddings were "
                f"made with {emb.key.backbone!r}"
            )
        _, _, encoder = load_backbone(backbone_location)
        if encoder.config.hidden_size != emb.key.shape[1]:
            raise IncompatibleEmbeddingError(
                f"prompt hidden size {emb.key.shape[1]} != backbone hidden size "
                f"{encoder.config.hidden_size}"
            )
        frozen = FrozenPairEncoder(encoder, config.train_layers, emb.key.shape[0])
        cache = frozen(emb.stack(targets), emb.stack(sources))

        def prepare(train_mask: np.ndarray) -> torch.Tensor:
            return cache

    else:
        vec = emb.as_vectors()
        e_t, e_s = vec.stack(targets), vec.stack(sources)

        def fit_featurizer(mask: np.ndarray) -> VectorFeaturizer:
            names = sorted({*np.asarray(targets)[mask], *np.asarray(sources)[mask]})
            return VectorFeaturizer.fit(vec.stack(names), config.pca_dim)

        def prepare(train_mask: np.ndarray) -> torch.Tensor:
            return fit_featurizer(train_mask)(e_t, e_s)

        frozen = fit_featurizer(np.ones(len(pairs), dtype=bool))

    settings = TrainSettings(
        lr=config.lr or config.lr_grid[0],
        epochs=config.epochs,
        batch_size=config.batch_size,
        beta=config.beta,
        weight_decay=config.weight_decay,
        seed=config.seed,
    )
    make_head = head_factory(config, frozen, encoder)
    lr_rows: list[dict] = []
    n_search = 0 if config.lr is not None or len(config.lr_grid) == 1 else len(config.lr_grid)
    with make_progress(progress, extra=False) as bar:
        task = bar.add_task(f"affinity fit ({config.kind})", total=n_search + config.ensemble)
        if n_search:
            settings.lr, lr_rows = search_lr(
                make_head, prepare, y, targets, config.lr_grid, settings
            )
            bar.update(task, advance=n_search)
        elif config.lr is None:
            settings.lr = config.lr_grid[0]
        features = prepare(np.ones(len(pairs), dtype=bool))
        yt = torch.as_tensor(y, dtype=torch.float32)
        heads, curves = [], []
        for k in range(config.ensemble):
            seed = config.seed + k
            head = make_head(seed)
            curves.append(fit_head(head, features, yt, replace(settings, seed=seed)))
            heads.append(head)
            bar.update(task, advance=1)
    info = FitInfo(
        backbone=emb.key.backbone,
        method=emb.key.method,
        checkpoint=emb.checkpoint,
        layer_reduce=emb.key.layer_reduce,
        embedding_shape=list(emb.key.shape),
        gain_mean=scaler.mean,
        gain_std=scaler.std,
        lr=float(settings.lr),
        n_pairs=len(pairs),
        tasks=sorted(set(targets) | set(sources)),
        lr_search=lr_rows,
        loss_curves=curves,
        fit_seconds=time.perf_counter() - start,
        backbone_location=None if backbone_location is None else str(backbone_location),
    )
    return AffinityModel(config, info, frozen, heads)


__all__ = [
    "KINDS",
    "AffinityConfig",
    "AffinityDataError",
    "AffinityModel",
    "FitInfo",
    "fit_affinity",
    "head_factory",
]
