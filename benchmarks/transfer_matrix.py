"""The measured transfer matrix: MiniLM, one PEFT method, the 12 TaskWeb-overlap tasks as both
sources and targets (132 ordered pairs), resumable, on local workers (CPU or one GPU).

    python benchmarks/transfer_matrix.py --data-dir ../shared/data --device cuda --workers 8 \
        --seeds 0,1

Writes (paths are flags):
  benchmarks/results/transfer_matrix_prompt.csv        long-form gold (``taskscout gains``):
      target,source,gain,performance,gain_std,n_seeds,baseline,wall_s,examples
  benchmarks/results/transfer_matrix_prompt_seeds.csv  one row per (pair, seed)
  benchmarks/results/transfer_matrix_prompt.json       exact config, timings, cost, failures
The store (default benchmarks/runs/transfer_matrix) keeps every finished run: re-running the
same command resumes, and ``--retry-failed`` re-runs failures.

Run settings (flags; defaults chosen to be cheap but honest): up to 1,000 training examples,
the full dev set (<= 2,000 examples for these tasks), max_len 128, batch 32, 8 epochs (prompt
tuning needs several epochs to move from the majority class on 1,000 examples), the method's
default learning rate, source checkpoint = best dev epoch, score = dev score at the target's best
epoch (an oracle early stopping applied identically to transfer and baseline).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from taskscout.evaluation.external import TASKWEB_OVERLAP
from taskscout.store import RunStore
from taskscout.transfer import TransferTable, gains_table, run_matrix
from taskscout.transfer.executors import make_executor
from taskscout.transfer.gains import cost_summary, per_seed_gains
from taskscout.transfer.scheduler import describe_plan, estimate_seconds, plan_matrix
from taskscout.tuning.config import TuneConfig

HERE = Path(__file__).resolve().parent


def _args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default="../shared/data")
    p.add_argument("--store", default=str(HERE / "runs" / "transfer_matrix"))
    p.add_argument("--tasks", default=",".join(TASKWEB_OVERLAP), help="sources = targets")
    p.add_argument("--method", default="prompt")
    p.add_argument("--backbone", default=None, help="default: the packaged MiniLM")
    p.add_argument("--seeds", default="0", help="e.g. 0,1 (every pair for every seed)")
    p.add_argument("--max-train", type=int, default=1000)
    p.add_argument("--max-dev", type=int, default=None)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--early-epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--max-len", type=int, default=128)
    p.add_argument("--checkpoint", default="best")
    p.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--executor", default=None, help="inprocess | local | ray")
    p.add_argument("--threads-per-worker", type=int, default=None)
    p.add_argument("--retry-failed", action="store_true")
    p.add_argument("--dry-run", action="store_true")
    p.add_argument(
        "--out",
        default=None,
        help="output prefix (default: results/transfer_matrix_<method>)",
    )
    return p.parse_args(argv)


def _stats(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "mean_s": statistics.fmean(values),
        "median_s": statistics.median(values),
        "min_s": min(values),
        "max_s": max(values),
        "total_s": sum(values),
    }


def _commit() -> str | None:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=HERE, check=True
        ).stdout.strip()
    except Exception:  # noqa: BLE001
        return None


def main(argv=None) -> int:
    args = _args(argv)
    tasks = [t for t in args.tasks.split(",") if t]
    seeds = [int(s) for s in args.seeds.split(",") if s]
    prefix = Path(args.out) if args.out else HERE / "results" / f"transfer_matrix_{args.method}"
    settings = TuneConfig(
        method=args.method,
        backbone=args.backbone,
        data_dir=args.data_dir,
        max_train=args.max_train,
        max_dev=args.max_dev,
        epochs=args.epochs,
        early_epochs=args.early_epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        max_len=args.max_len,
    ).resolved(args.device)
    db = RunStore(args.store)
    kind = args.executor or ("local" if args.workers > 1 else "inprocess")
    kw = dict(
        checkpoint=args.checkpoint,
        device=args.device,
        threads=args.threads_per_worker,
        workers=args.workers,
        retry_failed=args.retry_failed,
    )
    plan = plan_matrix(db, settings, tasks, tasks, seeds, **kw)
    print(
        describe_plan(plan, estimate_seconds(db, plan, args.workers), args.workers), file=sys.stderr
    )
    if args.dry_run:
        return 0
    t0 = time.perf_counter()
    with make_executor(kind, args.workers, plan.threads, device=args.device) as pool:
        summary = run_matrix(db, settings, tasks, tasks, seeds, executor=pool, **kw)
    wall = time.perf_counter() - t0

    shash = settings.settings_hash()
    gains, warnings = gains_table(
        db, method=args.method, settings_hash=shash, checkpoint=args.checkpoint
    )
    seeds_df, _ = per_seed_gains(
        db, method=args.method, settings_hash=shash, checkpoint=args.checkpoint
    )
    keep = gains["target"].isin(tasks) & gains["source"].isin(tasks)
    gains = gains[keep].reset_index(drop=True)
    seeds_df = seeds_df[seeds_df["target"].isin(tasks) & seeds_df["source"].isin(tasks)]
    prefix.parent.mkdir(parents=True, exist_ok=True)
    gains.to_csv(prefix.with_suffix(".csv"), index=False)
    seeds_df.drop(columns=["settings_hash"]).to_csv(
        prefix.with_name(prefix.name + "_seeds.csv"), index=False
    )

    transfers = [
        r
        for r in TransferTable(db).find(settings_hash=shash, checkpoint=args.checkpoint)
        if r.target in tasks and r.source_task in tasks
    ]
    tunes = [db.get_run(rid) for rid in plan.run_ids.values()]
    tunes = [r for r in tunes if r is not None and r.status == "complete"]
    report = {
        "command": " ".join([sys.executable, *sys.argv]),
        "commit": _commit(),
        "settings": settings.to_dict(),
        "settings_hash": shash,
        "backbone": settings.backbone_id(),
        "tasks": tasks,
        "seeds": seeds,
        "checkpoint": args.checkpoint,
        "device": args.device,
        "executor": kind,
        "workers": args.workers,
        "threads_per_run": plan.threads,
        "host": {"python": platform.python_version(), "machine": platform.machine()},
        "this_invocation": {
            "wall_s": wall,
            "completed": summary.completed,
            "failed": summary.failed,
        },
        "timings": {
            "transfer_train_eval": _stats([r.wall_time_s for r in transfers]),
            "transfer_job": _stats([float(r.config.get("job_s", 0.0)) for r in transfers]),
            "tune_train_eval": _stats([r.wall_time_s for r in tunes]),
            "tune_job": _stats([float(r.config.get("job_s", 0.0)) for r in tunes]),
        },
        "pairs": {
            "expected": len(tasks) * (len(tasks) - 1) * len(seeds),
            "complete": len(transfers),
            "failed": len(TransferTable(db).find(settings_hash=shash, status="failed")),
        },
        "cost": cost_summary(db, seeds_df),
        "warnings": warnings,
    }
    prefix.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: report[k] for k in ("pairs", "this_invocation", "timings")}))
    return 0 if not summary.failed else 1


if __name__ == "__main__":
    sys.exit(main())
