"""A stored task embedding (:class:`TaskEmbedding`), the embedding of a run's checkpoint, and the
embedding of a run's method at its seeded initialisation (what ``-delta`` predictors subtract).

An embedding always carries its backbone id, method, checkpoint, layer reduction and shape
(:attr:`TaskEmbedding.key`); embeddings whose keys differ are never compared
(:class:`taskscout.embeddings.similarity.IncompatibleEmbeddingError`).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass

import torch

from taskscout.backbone import load_backbone
from taskscout.embeddings.similarity import EmbeddingKey
from taskscout.embeddings.tupate import method_embedding
from taskscout.store import EmbeddingRecord, RunRecord, RunStore
from taskscout.tuning.config import checkpoint_kind
from taskscout.tuning.methods import build_method, get_method
from taskscout.tuning.model import init_method
from taskscout.tuning.run import run_backbone_location


@dataclass
class TaskEmbedding:
    """A stored task embedding with everything needed to compare it safely."""

    task: str
    method: str
    backbone: str
    checkpoint: str  # "early" | "best"
    layer_reduce: str  # "mean" | "concat" | "none" (prompt matrix)
    tensor: torch.Tensor  # (D,) float32, or (L, H) for prompt
    record: EmbeddingRecord

    @property
    def key(self) -> EmbeddingKey:
        return EmbeddingKey(self.backbone, self.method, self.layer_reduce, tuple(self.tensor.shape))

    def to_dict(self) -> dict:
        return {
            "task": self.task,
            "method": self.method,
            "backbone": self.backbone,
            "checkpoint": self.checkpoint,
            "layer_reduce": self.layer_reduce,
            "shape": list(self.tensor.shape),
            "run_id": self.record.run_id,
            "embedding_id": self.record.embedding_id,
            "file": self.record.file,
            "norm": float(self.tensor.norm()),
        }


def embedding_of_run(
    db: RunStore, run: RunRecord, checkpoint: str = "early", layer_reduce: str = "mean"
) -> TaskEmbedding:
    """The embedding of a stored run's ``checkpoint`` (``early`` | ``best``, alias ``late``),
    computed from the checkpoint and stored on first use. ``layer_reduce``: ``mean`` | ``concat``
    (a prompt run's embedding is its prompt matrix whatever is asked: ``none``)."""
    checkpoint = checkpoint_kind(checkpoint)
    effective = get_method(run.method).embedding_reduce(layer_reduce)
    stored = db.get_embedding(run_id=run.run_id, checkpoint=checkpoint, layer_reduce=effective)
    if stored is None:
        _, _, encoder = load_backbone(run_backbone_location(run))
        method = build_method(run.method, encoder, run.config["method_config"])
        state = db.load_checkpoint(run.run_id, checkpoint)
        method.load_tuned_state(
            {k.removeprefix("method."): v for k, v in state.items() if k.startswith("method.")}
        )
        tensor, effective = method_embedding(method, effective)
        stored = db.save_embedding(
            run_id=run.run_id,
            task=run.task,
            backbone=run.backbone,
            method=run.method,
            checkpoint=checkpoint,
            layer_reduce=effective,
            tensor=tensor,
            extra={
                "epoch": run.checkpoints[checkpoint].epoch,
                "dev_score": run.checkpoints[checkpoint].dev_score,
            },
        )
    tensor = db.load_embedding(stored)
    return TaskEmbedding(
        run.task, run.method, run.backbone, checkpoint, stored.layer_reduce, tensor, stored
    )


def stored_run(
    db: RunStore, task: str | None, method: str, backbone_id: str, run_id: str | None = None
) -> RunRecord | None:
    """The run whose embedding ``task`` asks for: run ``run_id`` (ValueError if absent, or if
    it is not a ``method`` run of ``task``; ``task`` None skips that check), else the latest
    complete ``method`` run of ``task`` on ``backbone_id`` (None if there is none)."""
    if run_id is None:
        return None if task is None else db.latest_run(task, method=method, backbone=backbone_id)
    run = db.get_run(run_id)
    if run is None:
        raise ValueError(f"no run {run_id!r} in store {db.root}")
    if task is not None and (run.task, run.method) != (task, method):
        raise ValueError(
            f"run {run_id!r} is a {run.method} run of task {run.task!r}, not a {method} run "
            f"of {task!r}"
        )
    return run


@functools.lru_cache(maxsize=16)
def _init_embedding(
    backbone_location: str | None, method: str, method_config: str, seed: int, layer_reduce: str
) -> torch.Tensor:
    _, _, encoder = load_backbone(backbone_location)
    saved_rng = torch.random.get_rng_state()
    try:
        tuned = init_method(method, encoder, json.loads(method_config), seed=seed)
        tensor, _ = method_embedding(tuned, layer_reduce)
    finally:
        torch.random.set_rng_state(saved_rng)  # leave the caller's RNG stream untouched
    return tensor


def init_embedding(run: RunRecord, layer_reduce: str = "mean") -> torch.Tensor:
    """The embedding e_0 (same shape as the run's stored one) of ``run``'s method at its seeded
    initialisation, before any training step, rebuilt exactly as the run built it
    (:func:`taskscout.tuning.model.init_method`); memoised per (backbone, method, config,
    seed, reduce)."""
    return _init_embedding(
        run_backbone_location(run),
        run.method,
        json.dumps(run.config["method_config"], sort_keys=True),
        int(run.seed),
        get_method(run.method).embedding_reduce(layer_reduce),
    )
