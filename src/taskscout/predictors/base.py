"""The predictor contract, what a predictor declares it reads, and the pool predictors read from.

A predictor scores every candidate source for a target; higher = predicted more helpful::

    pool = Pool.open("runs", backbone=None)             # resolves the backbone id
    scores = get_predictor("tupate-lora").score("rte", ["mnli", "snli"], pool)

Predictors are pure given the pool (no training); what they read from the store (embeddings,
runs, checkpoints) is fetched lazily and memoised on the :class:`Pool`. Each predictor declares
in :attr:`Predictor.reads` which tuning runs and data it reads, so callers can tune a new target
for exactly those methods (and check the pool) before any scoring.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import torch

from taskscout.backbone import resolve_backbone
from taskscout.data import TaskData, demo_data_dir, load_task, resolve_data_dir
from taskscout.embeddings.pool import pool_embeddings
from taskscout.embeddings.similarity import (
    IncompatibleEmbeddingError,
    check_compatible,
    cosine_scores,
)
from taskscout.embeddings.task_embedding import TaskEmbedding
from taskscout.embeddings.tupate import as_vector
from taskscout.store import RunRecord, RunStore
from taskscout.tuning.config import checkpoint_kind
from taskscout.tuning.run import run_backbone_location

#: Methods whose tuned parameters give a TuPaTE vector (prompt: the token mean of P).
TUPATE_METHODS: tuple[str, ...] = ("lora", "bitfit", "prefix", "prompt")


@dataclass(frozen=True)
class Reads:
    """What a predictor reads from the pool.

    ``methods``: tuning methods whose runs of the sources it reads; with ``target_run`` it
    reads the target's runs of them too (a new target must be tuned with them first); with
    ``any_of_methods`` it uses those of them the pool has (ensembles). ``checkpoint``: whether
    the pool's checkpoint choice (early/best) changes its scores. ``task_data``: whether it
    reads the tasks' data (examples), not only stored runs.
    """

    methods: tuple[str, ...] = ()
    target_run: bool = True
    any_of_methods: bool = False
    checkpoint: bool = False
    task_data: bool = False

    def target_methods(self, available: set[str]) -> list[str]:
        """The methods the target needs a run of, given the methods the pool has."""
        if not self.target_run:
            return []
        if not self.any_of_methods:
            return list(self.methods)
        present = [m for m in self.methods if m in available]
        return present or list(self.methods[:1])


class Scores(dict):
    """``source -> score`` (higher = better), plus ``info`` about how it was computed
    (e.g. the methods an ensemble used)."""

    def __init__(self, scores=(), info: dict | None = None):
        super().__init__(scores)
        self.info: dict = dict(info or {})


@runtime_checkable
class Predictor(Protocol):
    name: str
    reads: Reads

    def score(self, target: str, sources: list[str], pool: Pool) -> dict[str, float]: ...


@dataclass
class Pool:
    """What predictors read: a run store, one backbone id and one checkpoint kind.

    ``data_dir`` is where catalog tasks are loaded from (baselines that need task data);
    ``tasks`` may hold already loaded :class:`~taskscout.data.TaskData` by name, which take
    precedence over loading. ``layer_reduce``: ``mean`` | ``concat`` for per-layer methods.
    """

    store: RunStore
    backbone: str
    checkpoint: str = "early"
    layer_reduce: str = "mean"
    data_dir: str | os.PathLike | None = None
    tasks: dict = field(default_factory=dict)
    progress: bool = False  # progress bars for long steps (packing, embedding, features)
    _embeddings: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        self.checkpoint = checkpoint_kind(self.checkpoint)

    @classmethod
    def open(
        cls,
        store: str | os.PathLike | RunStore,
        backbone: str | os.PathLike | None = None,
        **kwargs,
    ) -> Pool:
        """A pool over ``store`` (path or open store; a path must hold a store) for
        ``backbone`` (a name or path as given to ``tune``; None = the default backbone),
        resolved to its backbone id."""
        db = store if isinstance(store, RunStore) else RunStore(store, create=False)
        return cls(db, resolve_backbone(backbone).backbone_id, **kwargs)

    # --- lazily fetched material ----------------------------------------------------------
    def embeddings(self, method: str) -> dict[str, TaskEmbedding]:
        """task -> :class:`TaskEmbedding` of ``method`` for this backbone."""
        if method not in self._embeddings:
            self._embeddings[method] = pool_embeddings(
                self.store,
                method=method,
                backbone=self.backbone,
                checkpoint=self.checkpoint,
                layer_reduce=self.layer_reduce,
            )
        return self._embeddings[method]

    def run(self, task: str, method: str | None = None) -> RunRecord | None:
        """The latest complete run of ``task`` on this backbone (of ``method`` if given)."""
        return self.store.latest_run(task, method=method, backbone=self.backbone)

    def require_run(self, task: str, method: str | None = None) -> RunRecord:
        run = self.run(task, method)
        if run is None:
            self.refuse_other_backbones([task], method)
            what = f"{method} run" if method else "run"
            raise ValueError(f"no {what} of task {task!r} in store {self.store.root}")
        return run

    def refuse_other_backbones(self, tasks: list[str], method: str | None) -> None:
        """Raise :class:`IncompatibleEmbeddingError` if any of ``tasks`` has runs only on
        other backbones (mixing backbones is an error, not a silent omission)."""
        elsewhere = {
            t: sorted({r.backbone for r in self.store.find_runs(task=t, method=method)})
            for t in tasks
        }
        elsewhere = {t: b for t, b in elsewhere.items() if b}
        if elsewhere:
            raise IncompatibleEmbeddingError(
                f"cannot compare tasks of different backbones: the pool uses backbone "
                f"{self.backbone!r}, but {elsewhere} have {method or 'any'} runs only on other "
                f"backbones; tune them with this backbone"
            )

    def task_info(self, task: str) -> dict | None:
        return self.store.get_task(task)

    def task_data(self, task: str, max_train: int | None = None) -> TaskData:
        """The task's data: ``pool.tasks[task]`` if given, else loaded by name from
        ``data_dir`` (catalog, bundled demo suite). ``max_train`` keeps a seeded subsample."""
        if task in self.tasks:
            data = self.tasks[task]
            if max_train is not None and len(data.train) > max_train:
                data = TaskData(data.spec, data.train[:max_train], data.dev, source=data.source)
            return data
        return load_task(task, data_dir=self.data_dir, max_train=max_train, seed=0)

    def has_task_data(self, task: str) -> bool:
        """True when ``task``'s own data is at hand: given in ``tasks``, or a data folder is set
        (``data_dir`` or $TASKSCOUT_DATA_DIR). Without either, a catalog name would load the
        bundled demo suite, which is not the data a shipped pool was built from."""
        if task in self.tasks:
            return True
        return resolve_data_dir(self.data_dir) != demo_data_dir()

    def backbone_location(self) -> str | None:
        """The argument that reloads this pool's backbone (from any of its runs)."""
        runs = self.store.find_runs(backbone=self.backbone)
        if not runs:
            raise ValueError(f"store {self.store.root} holds no run of backbone {self.backbone!r}")
        return run_backbone_location(runs[0])


def check_sources(target: str, sources: list[str]) -> list[str]:
    """``sources`` without the target; ValueError if nothing is left."""
    names = [s for s in sources if s != target]
    if not names:
        raise ValueError("no source task besides the target")
    return names


def method_embeddings(
    pool: Pool, method: str, target: str, sources: list[str]
) -> tuple[TaskEmbedding, list[TaskEmbedding]]:
    """(target embedding, [source embeddings]) of ``method``, checked compatible; raises if any
    is missing (IncompatibleEmbeddingError if it exists only on another backbone)."""
    emb = pool.embeddings(method)
    missing = [t for t in [target, *sources] if t not in emb]
    if missing:
        pool.refuse_other_backbones(missing, method)
        raise ValueError(f"no {method} embedding in store {pool.store.root} for {missing}")
    t = emb[target]
    check_compatible(t.key, [(s, emb[s].key) for s in sources])
    return t, [emb[s] for s in sources]


def method_cosines(pool: Pool, method: str, target: str, sources: list[str]) -> torch.Tensor:
    """cos(e_t, e_s) of the TuPaTE vectors (prompt: token mean of P), (N,) float64."""
    t, ss = method_embeddings(pool, method, target, sources)
    return cosine_scores(as_vector(t.tensor), torch.stack([as_vector(s.tensor) for s in ss]))
