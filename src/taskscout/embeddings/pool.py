"""The embeddings of a pool: the latest run of every task of a store, per method."""

from __future__ import annotations

from taskscout.embeddings.task_embedding import TaskEmbedding, embedding_of_run
from taskscout.store import RunStore


def pool_embeddings(
    db: RunStore,
    *,
    method: str,
    backbone: str,
    checkpoint: str = "early",
    layer_reduce: str = "mean",
) -> dict[str, TaskEmbedding]:
    """task -> the embedding of its latest complete ``method`` run on ``backbone``
    (:meth:`RunStore.latest_runs`), computing (and storing) embeddings that are missing."""
    runs = db.latest_runs(method=method, backbone=backbone)
    return {
        task: embedding_of_run(db, run, checkpoint, layer_reduce)
        for task, run in sorted(runs.items())
    }
