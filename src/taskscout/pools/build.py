"""Build a source pool: every (task, method) of a list tuned into one run store, with the task
embeddings of both checkpoints stored beside each run.

Resumable: a run whose config is stored complete is skipped (runs are identified by their
config hash, :mod:`taskscout.tuning.config`), so a killed build continues where it stopped. The
runs are :class:`taskscout.transfer.jobs.Job` ``tune`` jobs, so they run in this process, in
worker processes or on Ray (:func:`taskscout.transfer.executors.make_executor`); workers train
into private scratch stores and only this process writes the pool.
"""

from __future__ import annotations

import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, wait
from dataclasses import dataclass, field

from safetensors.torch import load as st_load

from taskscout.embeddings.task_embedding import embedding_of_run
from taskscout.store import RunRecord, RunStore
from taskscout.transfer.executors import make_executor
from taskscout.transfer.jobs import Job, JobResult
from taskscout.transfer.scheduler import default_threads
from taskscout.tuning.config import CHECKPOINTS, TuneConfig
from taskscout.tuning.methods import get_method
from taskscout.util import make_progress

#: methods whose runs have a task embedding (``full`` has none)
EMBEDDED = ("lora", "bitfit", "prefix", "prompt")


@dataclass
class PoolBuildSummary:
    """Counts of one :func:`build_pool` call: ``planned`` (task, method) pairs, ``skipped``
    (stored already), ``completed`` now, ``failed`` (label -> first line of the error),
    ``embeddings`` written or found, ``wall_s``."""

    planned: int = 0
    skipped: int = 0
    completed: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    embeddings: int = 0
    wall_s: float = 0.0
    run_ids: dict[str, str] = field(default_factory=dict)  # "task/method" -> run id

    def to_dict(self) -> dict:
        return {
            "planned": self.planned,
            "skipped": self.skipped,
            "completed": self.completed,
            "failed": dict(self.failed),
            "embeddings": self.embeddings,
            "wall_s": round(self.wall_s, 2),
        }


def _commit(db: RunStore, result: JobResult) -> RunRecord:
    info, record = result.task_info, result.record
    if info is not None:
        db.put_task(
            info["name"],
            info["spec"],
            info["fingerprint"],
            info["num_train"],
            info["num_dev"],
            source=info.get("source", ""),
        )
    record.config = {**record.config, "job_s": result.seconds}
    return db.save_run(
        record,
        {k: (st_load(b), epoch, score) for k, (b, epoch, score) in result.checkpoints.items()},
    )


def _embed(db: RunStore, run: RunRecord, layer_reduces: tuple[str, ...]) -> int:
    if run.method not in EMBEDDED:
        return 0
    count = 0
    for checkpoint in CHECKPOINTS:
        for reduce in dict.fromkeys(
            get_method(run.method).embedding_reduce(r) for r in layer_reduces
        ):
            embedding_of_run(db, run, checkpoint, reduce)
            count += 1
    return count


def build_pool(
    db: RunStore,
    tasks: list[str],
    methods: list[str],
    settings: TuneConfig | None = None,
    *,
    seed: int = 0,
    executor: str = "inprocess",
    workers: int = 1,
    threads: int | None = None,
    device: str | None = None,
    ray_address: str | None = None,
    layer_reduces: tuple[str, ...] = ("mean",),
    progress: bool = True,
) -> PoolBuildSummary:
    """Tune every (task, method) into ``db`` (skipping stored runs) and store the embeddings of
    both checkpoints (``layer_reduces``) of every embedded method's run.

    ``settings``: the shared tuning config (its ``method`` is replaced per method; default
    :class:`TuneConfig`); ``executor``: ``inprocess`` | ``local`` (``workers`` processes) |
    ``ray``; ``threads``: torch threads per job (default cores // workers). Every task and
    method is checked (loaded, planned) before the first run starts: ValueError for an
    unknown method, the loaders' errors for a bad task. A failed run is recorded in the store
    and counted in the summary; the others go on.
    """
    if not tasks or not methods:
        raise ValueError("a pool needs at least one task and one method")
    for method in methods:
        get_method(method)  # unknown method: ValueError naming the choices
    settings = (settings or TuneConfig()).resolved(device)
    threads = threads or default_threads(workers)
    summary = PoolBuildSummary()
    t0 = time.perf_counter()
    jobs: list[Job] = []
    done: list[RunRecord] = []
    data_cache = {}
    for task in dict.fromkeys(tasks):
        data = data_cache.setdefault(task, settings.load(task, seed))  # bad task: error now
        for method in dict.fromkeys(methods):
            config = settings.replace(method=method)
            run_id = config.run_id(data, seed)
            summary.planned += 1
            summary.run_ids[f"{task}/{method}"] = run_id
            run = db.get_run(run_id)
            if run is not None and run.status == "complete":
                summary.skipped += 1
                done.append(run)
                continue
            db.check_task_source(data.spec.name, data.source)
            jobs.append(Job("tune", task, seed, config, device, threads, run_id=run_id))
    pool = make_executor(executor, workers, threads, ray_address=ray_address, device=device)
    with pool, make_progress(enabled=progress, extra=False) as bar:
        bar_task = bar.add_task("pool build", total=summary.planned)
        for run in done:  # embeddings of runs stored before (resume)
            summary.embeddings += _embed(db, run, layer_reduces)
            bar.update(bar_task, advance=1)
        pending, in_flight = deque(jobs), {}
        while pending or in_flight:
            while pending and len(in_flight) < pool.capacity:
                job = pending.popleft()
                bar.update(bar_task, description=f"{job.settings.method} on {job.task}")
                in_flight[pool.submit(job)] = job
            finished, _ = wait(list(in_flight), return_when=FIRST_COMPLETED)
            for fut in finished:
                job = in_flight.pop(fut)
                label = f"{job.task}/{job.settings.method}"
                try:
                    result: JobResult = fut.result()
                except Exception as exc:  # noqa: BLE001 - the worker itself died
                    result = JobResult(job.key, False, 0.0, error=f"{type(exc).__name__}: {exc}")
                if result.ok:
                    run = _commit(db, result)
                    summary.completed += 1
                    summary.embeddings += _embed(db, run, layer_reduces)
                else:
                    db.record_failure(
                        job.failed_run(result.seconds), result.error or "unknown error"
                    )
                    summary.failed[label] = (result.error or "").splitlines()[0]
                bar.update(bar_task, advance=1)
    summary.wall_s = time.perf_counter() - t0
    return summary
