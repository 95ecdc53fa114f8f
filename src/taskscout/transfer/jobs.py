"""The unit of work executors run: a picklable :class:`Job` in, a :class:`JobResult` out.

Workers never write the user's store. A ``tune`` job runs
:func:`taskscout.tuning.run.tune_into_store` on a private scratch store of the worker process and
returns the run record and its checkpoints as safetensors bytes; a ``transfer`` job gets the source
checkpoint as bytes (loaded and sha256-verified by the driver) and returns the target's scores. The
driver commits results (:mod:`taskscout.transfer.scheduler`). Tensors travel as safetensors bytes,
so the same job runs in-process, in a spawned process or on a Ray node.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import time
import traceback
from dataclasses import dataclass, field

from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from taskscout.store import RunRecord, RunStore
from taskscout.transfer.run import run_transfer
from taskscout.tuning.config import TuneConfig
from taskscout.tuning.run import tune_into_store
from taskscout.util import set_torch_threads


@dataclass
class Job:
    """One run to compute. ``kind``: ``tune`` (an ordinary tuning run: a source or a
    no-transfer baseline) or ``transfer`` (``task`` is the target)."""

    kind: str
    task: str
    seed: int
    settings: TuneConfig
    device: str | None = None
    threads: int | None = None
    run_id: str = ""  # tune: the run's id; transfer: the target's baseline run id
    transfer_id: str = ""
    source_task: str = ""
    source_run_id: str = ""
    checkpoint: str = "best"
    source_bytes: bytes | None = field(default=None, repr=False)  # safetensors of the source
    keep_state: bool = False

    @property
    def key(self) -> str:
        return self.transfer_id if self.kind == "transfer" else self.run_id

    def label(self) -> str:
        if self.kind == "transfer":
            return f"{self.source_task} -> {self.task} (seed {self.seed})"
        return f"tune {self.task} (seed {self.seed})"

    def failed_run(self, seconds: float) -> RunRecord:
        """The store's record of this tune job when it failed after ``seconds`` (its settings
        and time in ``config``; pass it with the error to ``RunStore.record_failure``)."""
        return RunRecord(
            run_id=self.run_id,
            task=self.task,
            backbone=self.settings.backbone_id(),
            method=self.settings.method,
            seed=self.seed,
            config={"settings": self.settings.to_dict(), "job_s": seconds},
        )


@dataclass
class JobResult:
    """What a worker sends back. ``error`` set: the run failed (type, message, traceback)."""

    key: str
    ok: bool
    seconds: float  # the whole job, loading and encoding included
    error: str | None = None
    record: RunRecord | None = None  # tune
    task_info: dict | None = None  # tune: spec, fingerprint, sizes (for RunStore.put_task)
    checkpoints: dict = field(default_factory=dict, repr=False)  # kind -> (bytes, epoch, score)
    outcome: object | None = None  # transfer: TransferOutcome with state as bytes (if kept)
    state_bytes: bytes | None = field(default=None, repr=False)


_SCRATCH: RunStore | None = None


def scratch_store() -> RunStore:
    """This process's private store (temp dir, removed at exit): tune runs land here first,
    encoded splits are cached here."""
    global _SCRATCH
    if _SCRATCH is None:
        root = tempfile.mkdtemp(prefix="taskscout-worker-")
        atexit.register(shutil.rmtree, root, True)
        _SCRATCH = RunStore(root)
    return _SCRATCH


def execute(job: Job) -> JobResult:
    """Compute ``job`` (in whatever process runs this); never raises for a failed run."""
    t0 = time.perf_counter()
    try:
        set_torch_threads(job.threads)
        if job.kind == "tune":
            return _tune(job, t0)
        if job.kind == "transfer":
            return _transfer(job, t0)
        raise ValueError(f"unknown job kind {job.kind!r}")
    except Exception as exc:  # noqa: BLE001 - returned to the driver, recorded in the store
        return JobResult(
            job.key,
            False,
            time.perf_counter() - t0,
            error=f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=8)}",
        )


def _tune(job: Job, t0: float) -> JobResult:
    scratch = scratch_store()
    record = tune_into_store(
        job.settings.load(job.task, job.seed),
        job.settings,
        scratch,
        seed=job.seed,
        device=job.device,
        threads=job.threads,
        progress=False,
    )
    if job.run_id and record.run_id != job.run_id:
        raise RuntimeError(
            f"tune of {job.task} produced run {record.run_id}, the driver expected {job.run_id} "
            "(task data differ between driver and worker?)"
        )
    ckpts = {
        kind: (st_save(scratch.load_checkpoint(record.run_id, kind)), c.epoch, c.dev_score)
        for kind, c in record.checkpoints.items()
    }
    task_info = scratch.get_task(record.task)
    scratch.delete_run(record.run_id)  # keep the scratch small; its encode cache stays
    record.checkpoints = {}
    return JobResult(
        job.key,
        True,
        time.perf_counter() - t0,
        record=record,
        task_info=task_info,
        checkpoints=ckpts,
    )


def _transfer(job: Job, t0: float) -> JobResult:
    if job.source_bytes is None:
        raise ValueError(f"transfer job {job.label()} carries no source checkpoint")
    outcome = run_transfer(
        job.task,
        st_load(job.source_bytes),
        job.settings,
        seed=job.seed,
        device=job.device,
        threads=job.threads,
        cache_dir=scratch_store().root / "cache",
        keep_state=job.keep_state,
    )
    if job.run_id and outcome.baseline_run_id != job.run_id:
        raise RuntimeError(
            f"target {job.task} resolved to config {outcome.baseline_run_id}, the driver "
            f"expected {job.run_id} (task data differ between driver and worker?)"
        )
    state = st_save(outcome.state) if outcome.state else None
    outcome.state = {}
    return JobResult(job.key, True, time.perf_counter() - t0, outcome=outcome, state_bytes=state)
