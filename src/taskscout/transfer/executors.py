"""Where jobs run: in this process, in local worker processes, or on Ray.

Every executor runs :func:`taskscout.transfer.jobs.execute` and hands back its
:class:`~taskscout.transfer.jobs.JobResult` through a ``concurrent.futures.Future``; only the
driver writes the store. ``capacity`` is how many jobs the driver keeps in flight.

Identical results across executors: each job sets torch's intra-op thread count to the job's
``threads`` (the scheduler's ``threads_per_worker``, default ``max(1, cores // workers)``,
the same whichever executor runs), so CPU arithmetic, and thus every score, is the same for
the same seeds. Pass the same ``--workers`` (or an explicit ``--threads-per-worker``) to
compare executors bit for bit. On a GPU, results are deterministic up to CUDA's
non-deterministic kernels; all workers share the visible GPU(s).
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import Future, ProcessPoolExecutor

from taskscout.transfer.jobs import Job, JobResult, execute
from taskscout.util import set_torch_threads

EXECUTORS = ("inprocess", "local", "ray")


class InProcessExecutor:
    """Runs each job synchronously in the driver process (capacity 1)."""

    name = "inprocess"
    capacity = 1

    def submit(self, job: Job) -> Future:
        fut: Future = Future()
        fut.set_result(execute(job))
        return fut

    def close(self) -> None:
        pass


def _init_worker(threads: int | None) -> None:
    set_torch_threads(threads)


class LocalExecutor:
    """``workers`` spawned processes (spawn: safe with CUDA and threads); each sets its torch
    thread budget before its first job."""

    name = "local"

    def __init__(self, workers: int, threads: int | None = None):
        if workers < 1:
            raise ValueError("workers must be >= 1")
        self.capacity = workers
        self.pool = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(threads,),
        )

    def submit(self, job: Job) -> Future:
        return self.pool.submit(execute, job)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


class RayExecutor:
    """Jobs as Ray tasks: ``ray.init(address=...)`` joins a cluster (``auto``: the running
    one), without an address a local Ray instance is started with ``workers`` CPUs' worth of
    slots. Each task asks for ``threads`` CPUs and, with ``device=cuda``, ``1/workers`` GPU."""

    name = "ray"

    def __init__(
        self,
        workers: int,
        threads: int | None = None,
        address: str | None = None,
        gpu_fraction: float = 0.0,
    ):
        try:
            import ray
        except ImportError:
            raise ImportError(
                "the ray executor needs Ray: pip install 'taskscout[ray]' (or pip install ray)"
            ) from None
        self.ray = ray
        self.capacity = workers
        self._owns = not ray.is_initialized()
        if self._owns:
            kwargs = {"include_dashboard": False, "log_to_driver": False}
            if address:
                ray.init(address=address, **kwargs)
            else:
                ray.init(num_cpus=workers * (threads or 1), **kwargs)
        options = {"num_cpus": threads or 1, "max_retries": 0}
        if gpu_fraction:
            options["num_gpus"] = gpu_fraction
        self._remote = ray.remote(**options)(execute)

    def submit(self, job: Job) -> Future:
        return self._remote.remote(job).future()

    def close(self) -> None:
        if self._owns:
            self.ray.shutdown()


def make_executor(
    kind: str,
    workers: int = 1,
    threads: int | None = None,
    *,
    ray_address: str | None = None,
    device: str | None = None,
):
    """An executor by name: ``inprocess`` | ``local`` | ``ray``."""
    if kind == "inprocess":
        return InProcessExecutor()
    if kind == "local":
        return LocalExecutor(workers, threads)
    if kind == "ray":
        gpu = 1.0 / workers if (device or "").startswith("cuda") else 0.0
        return RayExecutor(workers, threads, ray_address, gpu)
    raise ValueError(f"unknown executor {kind!r}; choose from {list(EXECUTORS)}")


__all__ = [
    "EXECUTORS",
    "InProcessExecutor",
    "JobResult",
    "LocalExecutor",
    "RayExecutor",
    "make_executor",
]
