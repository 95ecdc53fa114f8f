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

Stopping: use an executor as a context manager (``with make_executor(...) as pool:``). Leaving
the block normally waits for the jobs in flight; leaving it on an exception (Ctrl-C included)
terminates the local workers at once, losing only the runs in flight (the driver has
committed every finished one). A local worker whose driver is killed outright (SIGKILL,
SIGTERM) ends itself within seconds (:func:`watch_parent`) instead of training its job to
the end for nobody.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor

from taskscout.transfer.jobs import Job, JobResult, execute
from taskscout.util import set_torch_threads

EXECUTORS = ("inprocess", "local", "ray")


class _Closing:
    """``with executor:`` closes it on the way out; an exception (Ctrl-C included) aborts
    the jobs in flight instead of waiting for them (``close(abort=True)``)."""

    def close(self, abort: bool = False) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(abort=exc_type is not None)


class InProcessExecutor(_Closing):
    """Runs each job synchronously in the driver process (capacity 1)."""

    name = "inprocess"
    capacity = 1

    def submit(self, job: Job) -> Future:
        fut: Future = Future()
        fut.set_result(execute(job))
        return fut


def watch_parent(parent_pid: int, interval_s: float = 2.0) -> threading.Thread:
    """A daemon thread that ends this process (exit status 3) once its parent is no longer
    ``parent_pid`` -- the driver was killed (SIGKILL, SIGTERM) and the process was
    re-parented. A worker would otherwise train its job to the end, for nobody: only the
    driver writes the store."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(interval_s)
        os._exit(3)

    thread = threading.Thread(target=watch, name="watch-parent", daemon=True)
    thread.start()
    return thread


def _init_worker(threads: int | None, parent_pid: int) -> None:
    set_torch_threads(threads)
    watch_parent(parent_pid)


class LocalExecutor(_Closing):
    """``workers`` spawned processes (spawn: safe with CUDA and threads); each sets its torch
    thread budget before its first job and ends itself when the driver dies."""

    name = "local"

    def __init__(self, workers: int, threads: int | None = None):
        if workers < 1:
            raise ValueError("workers must be >= 1")
        self.capacity = workers
        self.pool = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(threads, os.getpid()),
        )

    def submit(self, job: Job) -> Future:
        return self.pool.submit(execute, job)

    def close(self, abort: bool = False) -> None:
        """Wait for the jobs in flight (cancel the queued ones); ``abort``: terminate the
        workers now, losing the jobs in flight (what a driver interrupted by Ctrl-C wants:
        waiting could take a whole training run)."""
        if not abort:
            self.pool.shutdown(wait=True, cancel_futures=True)
            return
        # ProcessPoolExecutor gains terminate_workers() only in Python 3.14
        procs = list((getattr(self.pool, "_processes", None) or {}).values())
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.join(timeout=10)
        self.pool.shutdown(wait=True, cancel_futures=True)


class RayExecutor(_Closing):
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

    def close(self, abort: bool = False) -> None:
        """Shut down the Ray instance this executor started (its tasks with it); a cluster
        joined by address is left running (``abort``: the driver's futures are dropped)."""
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
