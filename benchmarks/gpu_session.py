"""One GPU session's heavy runs, concurrently, under one deadline, resumable.

Phases (each a separate process with its own worker processes on the same GPU; each writes its
own run store under ``--work``; whatever is committed when the deadline kills a phase stays):

* ``pool``: the standard pool: every task of the catalog x lora, bitfit (then prompt), seed 0,
  up to 2,000 training examples, dev capped at 1,000 (stratified), the step-budget recipe
  (``min_steps`` 180, at least 3 epochs), task embeddings of both checkpoints.
* ``lora``: the measurement campaign: the 12 TaskWeb-overlap tasks as sources, targets
  cb, copa, rte, wic first, then the other 8, seeds 0-2 (paired), lora, 500 training examples,
  the same recipe; then seeds 3-4 for the four small targets.
* ``full``: the same protocol with ``full`` fine-tuning, targets rte and cb, seeds 0-2; then
  copa and wic; then the other 8.
* ``recipe``: the recipe sweep: sst2, trec, rte, stsb at 250 / 500 / 2,000 examples x lora,
  bitfit, prompt, full with the budget; lora and bitfit without it (the old recipe) at 250 / 500.

After the phases end (or the deadline), every store is copied into ``--out``: the pool store as
a tar split into parts of at most 15 MiB, the other stores' SQLite files (scores only) in
``results.tar.xz``, with ``session.json`` (per-phase counts and seconds) and the logs.

    python benchmarks/gpu_session.py --data-dir ../shared/data --device cuda \
        --work /tmp/gpu --out results/gpu --deadline-s 480
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

from taskscout.evaluation.external import TASKWEB_OVERLAP
from taskscout.store import backup_copy
from taskscout.tuning.config import RECIPE_MIN_STEPS

TASKWEB12 = list(TASKWEB_OVERLAP)
SMALL_TARGETS = ["cb", "copa", "rte", "wic"]
FULL_TARGETS = ["rte", "cb"]
RECIPE_TASKS = ["sst2", "trec", "rte", "stsb"]
RECIPE_SIZES = [250, 500, 2000]
MIN_STEPS = RECIPE_MIN_STEPS
PHASES = {"pool": 4, "lora": 7, "full": 3, "recipe": 2}  # phase -> worker processes


def _smoke() -> None:
    """--smoke: the same phases at a size a CPU runs in minutes (checks the script, not the
    science)."""
    global TASKWEB12, SMALL_TARGETS, FULL_TARGETS, RECIPE_TASKS, RECIPE_SIZES, MIN_STEPS
    TASKWEB12, SMALL_TARGETS, FULL_TARGETS = ["cb", "rte", "copa"], ["cb"], ["cb"]
    RECIPE_TASKS, RECIPE_SIZES, MIN_STEPS = ["rte"], [24, 48, 96], 4


def _settings(args, **kw):
    from taskscout.tuning.config import TuneConfig

    base = dict(data_dir=args.data_dir, backbone=args.backbone, max_dev=1000, epochs=3)
    if args.smoke:
        base.update(max_dev=32, epochs=1)
        kw["max_train"] = min(kw["max_train"], 40)
    return TuneConfig(**{**base, **kw})


def _log(args, phase: str, **fields) -> None:
    line = json.dumps({"phase": phase, "t": round(time.time() - args.t0, 1), **fields})
    print(line, flush=True)


def phase_pool(args) -> None:
    from taskscout.data.catalog import load_catalog
    from taskscout.pools.build import build_pool
    from taskscout.store import RunStore

    tasks = list(load_catalog(args.data_dir))
    if args.smoke:
        tasks = ["cb", "copa", "conll2003_ner"]
    db = RunStore(Path(args.work) / "pool")
    settings = _settings(args, max_train=2000, min_steps=MIN_STEPS)
    for methods in (["lora", "bitfit"], ["prompt"]):
        s = build_pool(
            db, tasks, methods, settings, executor="local", workers=args.workers,
            threads=1, device=args.device, progress=False,
        )  # fmt: skip
        _log(args, "pool", methods=methods, **s.to_dict())


def _matrix(args, phase, db, settings, targets, seeds) -> None:
    from taskscout.transfer.executors import LocalExecutor
    from taskscout.transfer.scheduler import run_matrix

    for attempt in range(3):  # a worker that dies breaks the pool: resume on a fresh one
        ex = LocalExecutor(args.workers, 1)
        try:
            s = run_matrix(
                db, settings, TASKWEB12, targets, seeds, executor=ex, workers=args.workers,
                device=args.device, threads=1, progress=False, retry_failed=True,
            )  # fmt: skip
            break
        except Exception as exc:  # noqa: BLE001 - logged, then resumed
            _log(args, phase, attempt=attempt, error=f"{type(exc).__name__}: {exc}")
        finally:
            ex.close()
    else:
        return
    failed = dict(list(s.failed.items())[:5])
    _log(args, phase, targets=targets, seeds=seeds, completed=s.completed, failed=failed,
         n_failed=len(s.failed), wall_s=s.wall_s)  # fmt: skip


def phase_lora(args) -> None:
    from taskscout.store import RunStore

    db = RunStore(Path(args.work) / "lora")
    settings = _settings(args, method="lora", max_train=500, min_steps=MIN_STEPS)
    if args.targets:  # only these targets, seeds 0-2
        _matrix(args, "lora", db, settings, args.targets.split(","), [0, 1, 2])
        return
    _matrix(args, "lora", db, settings, SMALL_TARGETS, [0, 1, 2])
    _matrix(args, "lora", db, settings, TASKWEB12, [0, 1, 2])
    _matrix(args, "lora", db, settings, SMALL_TARGETS, [3, 4])


def phase_full(args) -> None:
    from taskscout.store import RunStore

    db = RunStore(Path(args.work) / "full")
    settings = _settings(args, method="full", max_train=500, min_steps=MIN_STEPS)
    if args.targets:  # only these targets, seeds 0-2
        _matrix(args, "full", db, settings, args.targets.split(","), [0, 1, 2])
        return
    _matrix(args, "full", db, settings, FULL_TARGETS, [0, 1, 2])
    _matrix(args, "full", db, settings, SMALL_TARGETS, [0, 1, 2])
    _matrix(args, "full", db, settings, TASKWEB12, [0, 1, 2])


def phase_recipe(args) -> None:
    from taskscout.pools.build import build_pool
    from taskscout.store import RunStore

    db = RunStore(Path(args.work) / "recipe")
    plan = [(n, ["lora", "bitfit"], MIN_STEPS) for n in RECIPE_SIZES]
    plan += [(n, ["lora", "bitfit"], None) for n in RECIPE_SIZES[:2]]
    plan += [(n, ["prompt", "full"], MIN_STEPS) for n in RECIPE_SIZES]
    for n, methods, budget in plan:
        settings = _settings(args, max_train=n, min_steps=budget)
        s = build_pool(
            db, RECIPE_TASKS, methods, settings, executor="local", workers=args.workers,
            threads=1, device=args.device, progress=False, layer_reduces=(),
        )  # fmt: skip
        _log(args, "recipe", max_train=n, methods=methods, min_steps=budget, **s.to_dict())


def pack(args, report: dict) -> None:
    out, work = Path(args.out), Path(args.work)
    out.mkdir(parents=True, exist_ok=True)
    pool = work / "pool"
    if (pool / "store.sqlite").is_file():
        snap = work / "pool_snapshot"
        (snap / "tensors").mkdir(parents=True, exist_ok=True)
        backup_copy(pool / "store.sqlite", snap / "store.sqlite")
        for f in sorted((pool / "tensors").glob("*.safetensors")):
            os.link(f, snap / "tensors" / f.name)
        tar_path = work / "pool.tar"
        with tarfile.open(tar_path, "w") as tar:
            tar.add(snap, arcname="pool")
        data, size = tar_path.read_bytes(), 15 * 2**20
        for part, i in enumerate(range(0, len(data), size)):
            (out / f"pool.tar.{part:02d}").write_bytes(data[i : i + size])
        report["pool_tar_bytes"] = len(data)
    with tarfile.open(out / "results.tar.xz", "w:xz") as tar:
        for name in ("lora", "full", "recipe"):
            db = work / name / "store.sqlite"
            if db.is_file():
                copy = work / f"{name}.sqlite"
                backup_copy(db, copy)
                tar.add(copy, arcname=f"{name}/store.sqlite")
        for log in sorted(work.glob("*.log")):
            tar.add(log, arcname=f"logs/{log.name}")
    (out / "session.json").write_text(json.dumps(report, indent=1))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", required=True)
    p.add_argument("--device", default="cuda")
    p.add_argument("--backbone", default=None)
    p.add_argument("--work", required=True, help="scratch folder for the stores")
    p.add_argument("--out", required=True)
    p.add_argument("--deadline-s", type=float, default=480.0)
    p.add_argument("--phases", default=",".join(PHASES))
    p.add_argument("--workers", type=int, default=None, help="worker processes of every phase")
    p.add_argument(
        "--phase-workers", default="", help="per phase, e.g. full=10,lora=6 (else the defaults)"
    )
    p.add_argument("--lora-targets", default="", help="lora phase: only these targets, seeds 0-2")
    p.add_argument("--full-targets", default="", help="full phase: only these targets, seeds 0-2")
    p.add_argument("--targets", default="", help=argparse.SUPPRESS)
    p.add_argument("--smoke", action="store_true", help="tiny sizes: check the script on a CPU")
    p.add_argument("--phase", default=None, help=argparse.SUPPRESS)
    p.add_argument("--t0", type=float, default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    args.t0 = args.t0 or time.time()
    if args.smoke:
        _smoke()
    if args.phase:  # child: one phase
        globals()[f"phase_{args.phase}"](args)
        return
    Path(args.work).mkdir(parents=True, exist_ok=True)
    procs = {}
    per_phase = dict(kv.split("=") for kv in args.phase_workers.split(",") if kv)
    for name in args.phases.split(","):
        workers = args.workers or int(per_phase.get(name, PHASES[name]))
        cmd = [sys.executable, __file__, "--phase", name, "--t0", str(args.t0),
               "--workers", str(workers)]  # fmt: skip
        targets = {"lora": args.lora_targets, "full": args.full_targets}.get(name, "")
        cmd += ["--targets", targets] if targets else []
        for flag in ("data_dir", "device", "work", "out", "backbone"):
            if getattr(args, flag) is not None:
                cmd += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
        cmd += ["--smoke"] if args.smoke else []
        log = open(Path(args.work) / f"{name}.log", "w")  # noqa: SIM115 - closed with the child
        procs[name] = (subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True), log)  # fmt: skip
    report = {"phases": {}, "deadline_s": args.deadline_s}
    while procs and time.time() - args.t0 < args.deadline_s:
        for name, (proc, log) in list(procs.items()):
            if proc.poll() is not None:
                report["phases"][name] = {"rc": proc.returncode, "s": time.time() - args.t0}
                log.close()
                del procs[name]
        time.sleep(2)
    for proc, _log_file in procs.values():  # the deadline: stop what is left
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
    time.sleep(3)
    for name, (proc, log) in procs.items():
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        log.close()
        report["phases"][name] = {"rc": "killed at deadline", "s": time.time() - args.t0}
    report["wall_s"] = time.time() - args.t0
    pack(args, report)
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
