"""The predictor contract, the pool predictors read from, and the predictor registry.

A predictor scores every candidate source for a target; higher = predicted more helpful::

    pool = Pool.open("runs", backbone=None)             # resolves the backbone id
    scores = get_predictor("tupate-lora").score("rte", ["mnli", "snli"], pool)

Predictors are pure given the pool (no training); what they read from the store (embeddings,
runs, checkpoints) is fetched lazily and memoised on the :class:`Pool`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import torch

from taskscout.predictors.similarity import (
    IncompatibleEmbeddingError,
    check_compatible,
    cosine_scores,
)
from taskscout.store import RunRecord, RunStore

#: Methods whose tuned parameters give a TuPaTE vector (prompt: the token mean of P).
TUPATE_METHODS: tuple[str, ...] = ("lora", "bitfit", "prefix", "prompt")


class Scores(dict):
    """``source -> score`` (higher = better), plus ``info`` about how it was computed
    (e.g. the methods an ensemble used)."""

    def __init__(self, scores=(), info: dict | None = None):
        super().__init__(scores)
        self.info: dict = dict(info or {})


@runtime_checkable
class Predictor(Protocol):
    name: str

    def score(self, target: str, sources: list[str], pool: Pool) -> dict[str, float]: ...


@dataclass
class Pool:
    """What predictors read: a run store, one backbone id and one checkpoint kind.

    ``data_dir`` is where catalog tasks are loaded from (baselines that need task data);
    ``tasks`` may hold already loaded :class:`~taskscout.data.TaskData` by name, which take
    precedence over loading.
    """

    store: RunStore
    backbone: str
    checkpoint: str = "early"
    layer_reduce: str = "mean"
    data_dir: str | os.PathLike | None = None
    tasks: dict = field(default_factory=dict)
    _embeddings: dict = field(default_factory=dict, repr=False)

    @classmethod
    def open(
        cls,
        store: str | os.PathLike | RunStore,
        backbone: str | os.PathLike | None = None,
        **kwargs,
    ) -> Pool:
        """A pool over ``store`` (path or open store) for ``backbone`` (a name or path as given
        to ``tune``; None = the default backbone), resolved to its backbone id."""
        from taskscout.backbone import resolve_backbone

        db = store if isinstance(store, RunStore) else RunStore(store)
        return cls(db, resolve_backbone(backbone).backbone_id, **kwargs)

    # --- lazily fetched material ----------------------------------------------------------
    def embeddings(self, method: str) -> dict:
        """task -> :class:`taskscout.api.TaskEmbedding` of ``method`` for this backbone."""
        if method not in self._embeddings:
            from taskscout.api import pool_embeddings

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
        runs = self.store.find_runs(task=task, method=method, backbone=self.backbone)
        return max(runs, key=lambda r: r.created_at) if runs else None

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

    def task_data(self, task: str, max_train: int | None = None):
        """The task's data: ``pool.tasks[task]`` if given, else loaded by name from
        ``data_dir`` (catalog, bundled demo suite). ``max_train`` keeps a seeded subsample."""
        if task in self.tasks:
            data = self.tasks[task]
            if max_train is not None and len(data.train) > max_train:
                from taskscout.data import TaskData

                data = TaskData(data.spec, data.train[:max_train], data.dev)
            return data
        from taskscout.data import load_task

        return load_task(task, data_dir=self.data_dir, max_train=max_train, seed=0)

    def backbone_location(self) -> str | None:
        """The argument that reloads this pool's backbone (from any of its runs)."""
        from taskscout.api import _backbone_location

        runs = self.store.find_runs(backbone=self.backbone)
        if not runs:
            raise ValueError(f"store {self.store.root} holds no run of backbone {self.backbone!r}")
        return _backbone_location(runs[0])


# --- registry ------------------------------------------------------------------------------

PREDICTORS: dict[str, Callable[..., Predictor]] = {}


def register(name: str, factory: Callable[..., Predictor]) -> None:
    PREDICTORS[name] = factory


def get_predictor(name: str, **options) -> Predictor:
    """The predictor registered as ``name`` (options go to its constructor)."""
    import taskscout.predictors  # noqa: F401  (fills the registry)

    try:
        factory = PREDICTORS[name]
    except KeyError:
        raise ValueError(f"unknown predictor {name!r}; choose from {sorted(PREDICTORS)}") from None
    return factory(**options)


def _check_sources(target: str, sources: list[str]) -> list[str]:
    names = [s for s in sources if s != target]
    if not names:
        raise ValueError("no source task besides the target")
    return names


def method_embeddings(pool: Pool, method: str, target: str, sources: list[str]):
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
    from taskscout.embeddings.tupate import as_vector

    t, ss = method_embeddings(pool, method, target, sources)
    return cosine_scores(as_vector(t.tensor), torch.stack([as_vector(s.tensor) for s in ss]))


@dataclass
class TupatePredictor:
    """``tupate-<method>``: cosine similarity of TuPaTE vectors (Zhou et al. 2022)."""

    method: str = "lora"

    @property
    def name(self) -> str:
        return f"tupate-{self.method}"

    def score(self, target: str, sources: list[str], pool: Pool) -> Scores:
        names = _check_sources(target, sources)
        cos = method_cosines(pool, self.method, target, names)
        return Scores(zip(names, cos.tolist(), strict=True), {"method": self.method})


for _m in TUPATE_METHODS:
    register(f"tupate-{_m}", lambda _m=_m, **kw: TupatePredictor(method=_m, **kw))
