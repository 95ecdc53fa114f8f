"""The transfer matrix: every requested (source, target) pair, s != t, x seeds.

Order: source runs first, then the targets' no-transfer runs (both ordinary tuning runs,
:func:`taskscout.tuning.run.tune_into_store`, with the matrix's settings, reused from the store when
there), then the transfers. Whatever the store already holds complete is skipped; earlier failures
are skipped too (and listed) unless ``retry_failed``. Each finished run is committed by the driver
in one transaction, so killing the driver at any moment loses only the runs in flight. A run that
fails (including a missing or corrupt source checkpoint) is recorded with its error; the rest of the
matrix completes.
"""

from __future__ import annotations

import statistics
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, wait
from dataclasses import dataclass, field
from typing import NamedTuple

from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from taskscout.data import TaskData
from taskscout.predictors import Pool, get_predictor
from taskscout.predictors.ranking import prepare_target, rank_sources
from taskscout.store import RunStore, TransferRecord
from taskscout.transfer.cost import run_work
from taskscout.transfer.executors import InProcessExecutor
from taskscout.transfer.jobs import Job, JobResult
from taskscout.tuning.config import TuneConfig, checkpoint_kind
from taskscout.util import available_cores, console, make_progress


@dataclass
class MatrixPlan:
    """What a matrix run will do. ``tune_jobs`` / ``transfer_jobs`` are still to run;
    ``skipped`` counts complete work reused, ``failed_before`` lists earlier failures left
    alone (no ``retry_failed``)."""

    settings: TuneConfig
    sources: list[str]
    targets: list[str]
    seeds: list[int]
    checkpoint: str
    device: str | None
    threads: int
    tune_jobs: list[Job] = field(default_factory=list)
    transfer_jobs: list[Job] = field(default_factory=list)
    pairs: list[tuple[str, str, int]] = field(default_factory=list)  # (source, target, seed)
    skipped: dict[str, int] = field(default_factory=lambda: {"tune": 0, "transfer": 0})
    failed_before: list[str] = field(default_factory=list)
    run_ids: dict[tuple[str, int], str] = field(default_factory=dict)  # (task, seed) -> run id
    top_k: dict[str, list[str]] = field(default_factory=dict)  # target -> chosen sources
    work: dict[str, float] = field(default_factory=dict)  # task -> its runs' relative cost

    @property
    def n_pending(self) -> int:
        return len(self.tune_jobs) + len(self.transfer_jobs)


class _DataCache:
    def __init__(self, settings: TuneConfig):
        self.settings = settings
        self._data: dict[tuple[str, int], TaskData] = {}

    def __call__(self, task: str, seed: int) -> TaskData:
        if (task, seed) not in self._data:
            self._data[(task, seed)] = self.settings.load(task, seed)
        return self._data[(task, seed)]


def default_threads(workers: int) -> int:
    """Torch threads per run: the machine's cores split over the workers."""
    return max(1, available_cores() // max(1, workers))


def plan_matrix(
    db: RunStore,
    settings: TuneConfig,
    sources: list[str],
    targets: list[str],
    seeds: list[int],
    *,
    checkpoint: str = "best",
    device: str | None = None,
    threads: int | None = None,
    workers: int = 1,
    retry_failed: bool = False,
    keep_state: bool = False,
    top_k: int | None = None,
    predictor: str | None = None,
    include_transfers: bool = True,
) -> MatrixPlan:
    """Plan the matrix against what ``db`` holds: the tune runs to do (sources first, then the
    targets' baselines) and the transfers to do (their source checkpoints are loaded only when
    dispatched, after the tune stage). ``top_k`` + ``predictor``: per target, only the
    ``top_k`` sources the predictor ranks highest; the rankings need every tune run in the
    store, so :func:`run_matrix` plans transfers again after the tune stage."""
    if not sources or not targets or not seeds:
        raise ValueError("need at least one source, one target and one seed")
    settings = settings.resolved(device)
    checkpoint = checkpoint_kind(checkpoint)
    plan = MatrixPlan(
        settings,
        list(dict.fromkeys(sources)),
        list(dict.fromkeys(targets)),
        list(dict.fromkeys(seeds)),
        checkpoint,
        device,
        threads or default_threads(workers),
    )
    data = _DataCache(settings)
    table = db.transfers
    tasks = plan.sources + [t for t in plan.targets if t not in plan.sources]
    for task in tasks:  # sources first, then targets' baselines
        plan.work[task] = run_work(data(task, plan.seeds[0]), settings)
        for seed in plan.seeds:
            run_id = settings.run_id(data(task, seed), seed)
            plan.run_ids[(task, seed)] = run_id
            run = db.get_run(run_id)
            if run is not None and run.status == "complete":
                plan.skipped["tune"] += 1
                continue
            if run is not None and not retry_failed:
                plan.failed_before.append(f"tune {task} seed {seed}: {_first_line(run.error)}")
                continue
            plan.tune_jobs.append(
                Job("tune", task, seed, settings, device, plan.threads, run_id=run_id)
            )
    for target in plan.targets:
        chosen = [s for s in plan.sources if s != target]
        if top_k is not None and include_transfers:
            chosen = _top_k_sources(
                db,
                settings,
                target,
                chosen,
                top_k,
                predictor,
                seed=plan.seeds[0],
                device=device,
                threads=plan.threads,
            )
            plan.top_k[target] = chosen
        for source in chosen:
            for seed in plan.seeds:
                plan.pairs.append((source, target, seed))
                if not include_transfers:
                    continue
                src_id, tgt_id = plan.run_ids[(source, seed)], plan.run_ids[(target, seed)]
                tid = TransferRecord.make_id(src_id, tgt_id, checkpoint)
                rec = table.get(tid)
                if rec is not None and rec.status == "complete":
                    plan.skipped["transfer"] += 1
                    continue
                if rec is not None and not retry_failed:
                    plan.failed_before.append(
                        f"{source} -> {target} seed {seed}: {_first_line(rec.error)}"
                    )
                    continue
                plan.transfer_jobs.append(
                    Job(
                        "transfer",
                        target,
                        seed,
                        settings,
                        device,
                        plan.threads,
                        run_id=tgt_id,
                        transfer_id=tid,
                        source_task=source,
                        source_run_id=src_id,
                        checkpoint=checkpoint,
                        keep_state=keep_state,
                    )
                )
    return plan


def _top_k_sources(
    db: RunStore,
    settings: TuneConfig,
    target: str,
    sources: list[str],
    k: int,
    predictor: str | None,
    *,
    seed: int = 0,
    device: str | None = None,
    threads: int | None = None,
) -> list[str]:
    """The ``k`` sources ``predictor`` ranks highest for ``target``. A target without a run
    of a method the predictor reads is tuned first (driver-side) with the matrix's settings
    and device; the sources must already have theirs."""
    if k < 1:
        raise ValueError("top_k must be >= 1")
    if predictor is None:
        raise ValueError("--top-k needs --predictor (e.g. tupate-lora)")
    scorer = get_predictor(predictor)
    backbone_id = settings.backbone_id()
    target_ = prepare_target(
        db,
        target,
        scorer,
        settings,
        backbone_id=backbone_id,
        seed=seed,
        device=device,
        threads=threads,
        progress=False,
    )
    pool = Pool(db, backbone_id, data_dir=settings.data_dir)
    if target_.data is not None:
        pool.tasks[target_.name] = target_.data
    table = rank_sources(scorer, pool, target_.name, sources)
    return list(table["source"][:k])


def _first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0] if text else "(no error text)"


class Estimate(NamedTuple):
    """A plan's time estimate: ``seconds`` of wall time for the pending runs (None when nothing
    is measured yet), the ``measured`` runs it rests on, and the pending runs' tasks never
    measured with these settings (``unmeasured``), each scaled from the measured tasks by its
    work (:func:`taskscout.transfer.cost.run_work`)."""

    seconds: float | None
    measured: int
    unmeasured: tuple[str, ...] = ()


def estimate_seconds(db: RunStore, plan: MatrixPlan, workers: int) -> Estimate:
    """The wall time the pending runs of ``plan`` take on ``workers`` (:class:`Estimate`).

    A run of task t is assumed to cost what t's measured runs with these settings cost
    (transfer and tune runs train the same data for the same epochs): its transfers as the
    target, and its tune runs, of this plan or of any seed a transfer with these settings
    used. A task never measured costs its work (:func:`taskscout.transfer.cost.run_work`,
    tokens x epochs) times the measured tasks' median seconds per unit of work -- a task's
    cost can be many times the mean (a lora run of cosmos_qa, 4 choices of ~100 tokens,
    costs 27x one of wic) -- and is named: that figure is a model, not a measurement. On the
    CPU campaign's 11 ``full`` tasks it puts a left-out task's time within 0.73-1.40x of the
    measured one, where the mean of the others is off by 0.32-1.96x
    (``benchmarks/estimate_accuracy.py``). The stages run one after the other (the tune runs,
    then the transfers), each spread over the workers as :func:`makespan` says."""
    shash = plan.settings.settings_hash()
    per_task: dict[str, list[float]] = {}
    tune_ids = set(plan.run_ids.values())
    for rec in db.transfers.find(settings_hash=shash):
        per_task.setdefault(rec.target, []).append(float(rec.config.get("job_s", rec.wall_time_s)))
        tune_ids |= {rec.source_run_id, rec.baseline_run_id} - {""}
    for run_id in sorted(tune_ids):
        run = db.get_run(run_id)
        if run is not None and run.status == "complete":
            per_task.setdefault(run.task, []).append(float(run.wall_time_s))
    measured = sum(len(v) for v in per_task.values())
    pending = plan.tune_jobs + plan.transfer_jobs
    unmeasured = tuple(sorted({j.task for j in pending} - set(per_task)))
    if not measured:
        return Estimate(None, 0, unmeasured)
    means = {t: statistics.fmean(v) for t, v in per_task.items()}
    overall = statistics.fmean(means.values())
    rates = [means[t] / plan.work[t] for t in means if plan.work.get(t, 0) > 0]
    rate = statistics.median(rates) if rates else None

    def cost(task: str) -> float:
        if task in means:
            return means[task]
        work = plan.work.get(task)
        return rate * work if rate is not None and work is not None else overall

    seconds = makespan([cost(j.task) for j in plan.tune_jobs], workers) + makespan(
        [cost(j.task) for j in plan.transfer_jobs], workers
    )
    return Estimate(seconds, measured, unmeasured)


def makespan(costs: list[float], workers: int) -> float:
    """Wall seconds for jobs of ``costs`` seconds on ``workers`` workers that each take the
    next job when free, longest first (LPT): at least ``sum / workers`` and at least the
    longest job -- one tune run the transfers wait on keeps the other workers idle.
    0.0 for no jobs."""
    loads = [0.0] * max(1, min(workers, len(costs)))
    for c in sorted(costs, reverse=True):
        i = loads.index(min(loads))
        loads[i] += c
    return max(loads, default=0.0)


def describe_plan(plan: MatrixPlan, estimate: Estimate, workers: int) -> str:
    """Human-readable plan summary."""
    secs, n, unmeasured = estimate
    lines = [
        f"matrix: {len(plan.sources)} sources x {len(plan.targets)} targets x "
        f"{len(plan.seeds)} seeds = {len(plan.pairs)} transfer runs "
        f"(method {plan.settings.method}, checkpoint {plan.checkpoint}, "
        f"device {plan.device or 'cpu'}, {plan.threads} torch threads per run)",
        f"to run: {len(plan.tune_jobs)} tune runs (sources + baselines), "
        f"{len(plan.transfer_jobs)} transfers"
        + ("" if len(plan.pairs) or not plan.tune_jobs else " (planned after the tune stage)"),
        f"reused from the store: {plan.skipped['tune']} tune runs, "
        f"{plan.skipped['transfer']} transfers",
    ]
    if plan.failed_before:
        lines.append(
            f"{len(plan.failed_before)} earlier failures left alone (--retry-failed retries):"
        )
        lines += [f"  {f}" for f in plan.failed_before[:20]]
    if secs is None:
        lines.append("time estimate: none yet (no measured run with these settings)")
    else:
        lines.append(
            f"time estimate: ~{_fmt_s(secs)} on {workers} worker(s), from {n} measured run(s)"
        )
    if secs is not None and unmeasured:
        lines.append(
            "  never measured with these settings, scaled from the measured tasks by their "
            f"tokens x epochs: {', '.join(unmeasured)}"
        )
    return "\n".join(lines)


def _fmt_s(secs: float) -> str:
    if secs >= 3600:
        return f"{secs / 3600:.1f} h"
    if secs >= 60:
        return f"{secs / 60:.1f} min"
    return f"{secs:.0f} s"


@dataclass
class MatrixSummary:
    """Counts of one :func:`run_matrix` call (``failed``: label -> first line of the error)."""

    completed: dict[str, int] = field(default_factory=lambda: {"tune": 0, "transfer": 0})
    failed: dict[str, str] = field(default_factory=dict)
    wall_s: float = 0.0
    plan: MatrixPlan | None = None


def run_matrix(
    db: RunStore,
    settings: TuneConfig,
    sources: list[str],
    targets: list[str],
    seeds: list[int],
    *,
    executor=None,
    workers: int = 1,
    checkpoint: str = "best",
    device: str | None = None,
    threads: int | None = None,
    retry_failed: bool = False,
    keep_state: bool = False,
    top_k: int | None = None,
    predictor: str | None = None,
    progress: bool = True,
) -> MatrixSummary:
    """Run (resume) the matrix on ``executor`` (default in-process); returns the counts.

    Stage 1 runs the pending tune runs, stage 2 the transfers (re-planned after stage 1, so
    that sources tuned just now and ``top_k`` rankings are taken into account)."""
    executor = executor or InProcessExecutor()
    summary = MatrixSummary()
    t0 = time.perf_counter()
    kw = dict(
        checkpoint=checkpoint,
        device=device,
        threads=threads,
        workers=workers,
        retry_failed=retry_failed,
        keep_state=keep_state,
        top_k=top_k,
        predictor=predictor,
    )
    plan = plan_matrix(db, settings, sources, targets, seeds, include_transfers=top_k is None, **kw)
    # estimate total transfers (for the bar) before stage 2 is planned exactly
    expected_transfers = (
        len(plan.transfer_jobs)
        if top_k is None
        else len(plan.targets) * min(top_k, max(1, len(plan.sources))) * len(plan.seeds)
    )
    with make_progress(enabled=progress, extra=False) as bar:
        task = bar.add_task("transfer matrix", total=len(plan.tune_jobs) + expected_transfers)
        _drain(db, executor, deque(plan.tune_jobs), summary, bar, task)
        plan = plan_matrix(db, settings, sources, targets, seeds, **kw)
        bar.update(
            task, total=summary.completed["tune"] + len(summary.failed) + len(plan.transfer_jobs)
        )
        _drain(db, executor, deque(plan.transfer_jobs), summary, bar, task)
    summary.plan = plan
    summary.wall_s = time.perf_counter() - t0
    return summary


def _drain(db, executor, pending: deque, summary: MatrixSummary, bar, task) -> None:
    in_flight: dict = {}
    table = db.transfers
    while pending or in_flight:
        while pending and len(in_flight) < executor.capacity:
            job = pending.popleft()
            if job.kind == "transfer":
                error = _attach_source(db, job)
                if error is not None:
                    _commit_failure(db, table, job, error, 0.0, summary)
                    bar.update(task, advance=1)
                    continue
            bar.update(task, description=job.label())
            in_flight[executor.submit(job)] = job
        done, _ = wait(list(in_flight), return_when=FIRST_COMPLETED)
        for fut in done:
            job = in_flight.pop(fut)
            try:
                result: JobResult = fut.result()
            except Exception as exc:  # the worker itself died (not the run): record it
                result = JobResult(job.key, False, 0.0, error=f"{type(exc).__name__}: {exc}")
            job.source_bytes = None
            if result.ok:
                _commit(db, table, job, result, summary)
            else:
                _commit_failure(db, table, job, result.error, result.seconds, summary)
            bar.update(task, advance=1)


def _attach_source(db: RunStore, job: Job) -> str | None:
    """Load the source checkpoint on the driver (sha256-verified); the error text if unusable."""
    run = db.get_run(job.source_run_id)
    if run is None or run.status != "complete":
        why = "is not in the store" if run is None else f"failed: {_first_line(run.error)}"
        return (
            f"source run {job.source_run_id} ({job.source_task}, seed {job.seed}) {why}; "
            "cannot transfer from it"
        )
    try:
        state = db.load_checkpoint(job.source_run_id, job.checkpoint)
    except Exception as exc:  # noqa: BLE001 - StoreError / CorruptTensorError: recorded
        return (
            f"source checkpoint {job.checkpoint!r} of run {job.source_run_id} "
            f"({job.source_task}) is unusable: {type(exc).__name__}: {exc}"
        )
    job.source_bytes = st_save(state)
    return None


def _transfer_record(db: RunStore, job: Job, **fields) -> TransferRecord:
    settings = job.settings
    src = db.get_run(job.source_run_id)
    ckpt = src.checkpoints.get(job.checkpoint) if src is not None else None
    config = {
        "settings": settings.to_dict(),
        "source_checkpoint": None
        if ckpt is None
        else {"epoch": ckpt.epoch, "dev_score": ckpt.dev_score, "sha256": ckpt.sha256},
        "threads": job.threads,
        **fields.pop("config", {}),
    }
    return TransferRecord(
        transfer_id=job.transfer_id,
        source_run_id=job.source_run_id,
        source_task=job.source_task,
        target=job.task,
        backbone=settings.backbone_id(),
        method=settings.method,
        seed=job.seed,
        config_hash=job.run_id,
        settings_hash=settings.settings_hash(),
        checkpoint=job.checkpoint,
        baseline_run_id=job.run_id,
        config=config,
        **fields,
    )


def _commit(db, table, job: Job, result: JobResult, summary: MatrixSummary) -> None:
    if job.kind == "tune":
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
        # not hashed: the matrix's settings (dev cap max_dev included) and the job's seconds
        record.config = {
            **record.config,
            "job_s": result.seconds,
            "settings": job.settings.to_dict(),
        }
        db.save_run(
            record,
            {k: (st_load(b), epoch, score) for k, (b, epoch, score) in result.checkpoints.items()},
        )
    else:
        out = result.outcome
        rec = _transfer_record(
            db,
            job,
            status="complete",
            score=out.score,
            best_epoch=out.best_epoch,
            dev_scores=out.dev_scores,
            wall_time_s=out.wall_time_s,
            examples_seen=out.examples_seen,
            device=out.device,
            config={"job_s": result.seconds, "threads": out.threads},
        )
        table.save(rec, st_load(result.state_bytes) if result.state_bytes else None)
    summary.completed[job.kind] += 1


def _commit_failure(db, table, job: Job, error: str, seconds: float, summary) -> None:
    if job.kind == "tune":
        db.record_failure(job.failed_run(seconds), error)
    else:
        table.save(
            _transfer_record(db, job, status="failed", error=error, config={"job_s": seconds})
        )
    summary.failed[job.label()] = _first_line(error)
    console.print(f"[red]failed[/red] {job.label()}: {_first_line(error)}")
