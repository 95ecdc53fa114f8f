"""Dev scores of every tuning method on real tasks, beside the majority/mean baseline.

    python benchmarks/method_scores.py --data-dir ../shared/data \
        --store benchmarks/runs/method_scores

Defaults: MiniLM, 2,000 training examples, 3 epochs, seed 0, tasks sst2 trec mrpc stsb rte.
Resumable: finished runs are read back from the store. Writes
benchmarks/results/method_scores.{csv,md} and prints one JSON line per run plus a summary line.
"""

from __future__ import annotations

import argparse
import collections
import json
import time
from pathlib import Path

import pandas as pd

import taskscout.api as api
from taskscout.data import TaskType, load_task
from taskscout.tuning import task_metrics

RESULTS = Path(__file__).parent / "results"


def majority_baseline(data) -> float:
    """Metric x100 of predicting the most frequent train label (regression: the train mean)."""
    spec = data.spec
    if spec.type is TaskType.REGRESSION:
        mean = sum(r["label"] for r in data.train) / len(data.train)
        return task_metrics.score(
            spec.metric, [mean] * len(data.dev), [r["label"] for r in data.dev]
        )
    if spec.type is TaskType.MULTIPLE_CHOICE:
        top = collections.Counter(r["label"] for r in data.train).most_common(1)[0][0]
        return task_metrics.accuracy([top] * len(data.dev), [r["label"] for r in data.dev])
    top = collections.Counter(r["label"] for r in data.train).most_common(1)[0][0]
    return task_metrics.score(
        spec.metric,
        [top] * len(data.dev),
        [r["label"] for r in data.dev],
        positive_label=spec.positive_label,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default="../shared/data")
    ap.add_argument("--store", default="benchmarks/runs/method_scores")
    ap.add_argument("--tasks", default="sst2,trec,mrpc,stsb,rte")
    ap.add_argument("--methods", default="lora,bitfit,prefix,prompt")
    ap.add_argument("--max-train", type=int, default=2000)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(RESULTS / "method_scores"))
    args = ap.parse_args()
    rows = []
    for task in args.tasks.split(","):
        data = load_task(task, data_dir=args.data_dir, max_train=args.max_train, seed=args.seed)
        baseline = majority_baseline(data)
        for method in args.methods.split(","):
            start = time.perf_counter()
            run = api.tune(
                data,
                method=method,
                store=args.store,
                epochs=args.epochs,
                seed=args.seed,
                progress=False,
            )
            row = {
                "task": task,
                "metric": data.spec.metric,
                "method": method,
                "num_train": run.num_train,
                "num_dev": run.num_dev,
                "baseline": round(baseline, 2),
                "early": round(run.checkpoints["early"].dev_score, 2),
                "best": round(run.checkpoints["best"].dev_score, 2),
                "best_epoch": run.best_epoch,
                "per_epoch": [round(s, 2) for s in run.dev_scores],
                "lr": run.config["train"]["lr"],
                "wall_time_s": round(run.wall_time_s, 1),
                "reused": time.perf_counter() - start < 1.0,
                "run_id": run.run_id,
            }
            print(json.dumps(row), flush=True)
            rows.append(row)
            # written after every run, so an interrupted benchmark leaves its partial table
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            pd.DataFrame(rows).drop(columns=["reused"]).to_csv(f"{args.out}.csv", index=False)
    table = pd.DataFrame(rows)
    wide = table.pivot(index="task", columns="method", values="best")
    wide.insert(0, "baseline", table.groupby("task")["baseline"].first())
    wide.insert(0, "metric", table.groupby("task")["metric"].first())
    with open(f"{args.out}.md", "w") as fh:
        fh.write(
            f"Dev score (best epoch, metric x100), MiniLM, {args.max_train} train examples, "
            f"{args.epochs} epochs, seed {args.seed}. Baseline = majority class "
            "(regression: train mean).\n\n"
        )
        fh.write(wide.to_markdown() + "\n")
    print(json.dumps({"summary": wide.reset_index().to_dict(orient="records")}))


if __name__ == "__main__":
    main()
