"""Tune every (task, method) of a list into one store: the pool other benchmarks read.

    python benchmarks/build_pool.py --data-dir ../shared/data \
        --store benchmarks/stores/taskweb12-methods \
        --methods lora,bitfit,prefix,prompt --max-train 2000 --epochs 3 --device auto --workers 4

Default tasks: the 12 TaskWeb-overlap tasks. Runs already in the store are read back, not
retrained (``api.tune`` is idempotent), so the script resumes after a kill. ``--workers N``
splits the *tasks* over N processes (a task's methods stay in one process, so two processes
never tokenise the same task into the cache at once); every process writes the store through
its own SQLite connection (WAL, busy timeout). Prints one JSON line per run (task, method, dev
scores, wall time, device) and a summary line.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import time

TASKWEB12 = "boolq,cb,copa,cosmos_qa,imdb,mrpc,qnli,rotten_tomatoes,rte,snli,stsb,wic"


def _work(args: argparse.Namespace, tasks: list[str], threads: int, queue) -> None:
    from taskscout import api

    for task in tasks:
        for method in args.methods.split(","):
            t0 = time.perf_counter()
            run = api.tune(
                task,
                method=method,
                store=args.store,
                data_dir=args.data_dir,
                max_train=args.max_train,
                max_dev=args.max_dev,
                epochs=args.epochs,
                early_epochs=args.early_epochs,
                seed=args.seed,
                threads=threads,
                device=args.device,
                bf16=False,
                progress=False,
            )
            queue.put(
                {
                    "task": task,
                    "method": method,
                    "run_id": run.run_id,
                    "num_train": run.num_train,
                    "num_dev": run.num_dev,
                    "dev_scores": [round(s, 2) for s in run.dev_scores],
                    "best_epoch": run.best_epoch,
                    "run_wall_s": round(run.wall_time_s, 2),
                    "call_s": round(time.perf_counter() - t0, 2),
                    "device": run.config.get("device", "cpu"),
                }
            )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", required=True)
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--tasks", default=TASKWEB12)
    parser.add_argument("--methods", default="lora,bitfit,prefix,prompt")
    parser.add_argument("--max-train", type=int, default=2000)
    parser.add_argument("--max-dev", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--early-epochs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="torch threads per worker")
    args = parser.parse_args(argv)

    from taskscout.util import available_cores

    tasks = args.tasks.split(",")
    workers = max(1, min(args.workers, len(tasks)))
    threads = args.threads or max(1, available_cores() // workers)
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    shards = [tasks[i::workers] for i in range(workers)]
    start = time.perf_counter()
    procs = [ctx.Process(target=_work, args=(args, s, threads, queue)) for s in shards]
    for p in procs:
        p.start()
    expected = len(tasks) * len(args.methods.split(","))
    done: list[dict] = []
    while len(done) < expected:
        if not any(p.is_alive() for p in procs) and queue.empty():
            break
        try:
            row = queue.get(timeout=5)
        except Exception:  # noqa: BLE001, S112 - queue.Empty: poll the workers again
            continue
        done.append(row)
        print(json.dumps(row), flush=True)
    for p in procs:
        p.join()
    failed = [p.exitcode for p in procs if p.exitcode != 0]
    print(
        json.dumps(
            {
                "summary": True,
                "runs": len(done),
                "expected": expected,
                "workers": workers,
                "threads_per_worker": threads,
                "wall_s": round(time.perf_counter() - start, 1),
                "sum_run_wall_s": round(sum(r["run_wall_s"] for r in done), 1),
                "failed_workers": failed,
            }
        ),
        flush=True,
    )
    if failed or len(done) < expected:
        sys.exit(1)


if __name__ == "__main__":
    main()
