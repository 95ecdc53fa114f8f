"""Time to answer: a new target of up to 2,000 examples ranked against a pool, on this CPU.

The target is a catalog task whose runs are removed from a scratch copy of the pool, so
everything a user's new task costs is paid: tuning it with the pool's recipe for each method the
predictor reads (the default ``gain-model`` reads lora and bitfit), then ranking, which computes
LogME over every source's LoRA checkpoint and the other features. Each stage is timed alone, in
one process, with a cold tokenisation cache (the pool copy has none of the target's):

    PYTHONPATH=src python benchmarks/time_to_answer.py --target sst2 --data-dir ../shared/data \
        --pool src/taskscout/pools/standard --threads 2

Each of ``--repeats`` runs (default 3) is a fresh process on a fresh copy of the pool (a cold
start, as a user's first ranking is). Prints one JSON object (seconds per stage of every run, the
median total, the goal: at most 180 s) and writes it to ``--json`` (default
``benchmarks/results/time_to_answer.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from taskscout import api
from taskscout.backbone import resolve_backbone
from taskscout.predictors import get_predictor
from taskscout.store import RunStore
from taskscout.tuning.config import TuneConfig

GOAL_S = 180.0


def pool_recipe(pool: Path) -> dict:
    """The tuning options the pool's runs were made with (its provenance, else its runs)."""
    prov = pool / "provenance.json"
    if prov.is_file():
        recipe = json.loads(prov.read_text()).get("recipe", {})
        keep = ("max_train", "max_dev", "epochs", "min_steps", "batch_size", "max_len")
        return {k: recipe[k] for k in keep if recipe.get(k) is not None}
    return {"max_train": 2000, "max_dev": 1000, "epochs": 3, "min_steps": 180}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--target", default="sst2")
    p.add_argument("--data-dir", default="../shared/data")
    p.add_argument("--pool", required=True, help="pool store folder (e.g. the standard pool)")
    p.add_argument("--predictor", default="gain-model")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", default="benchmarks/results/time_to_answer.json")
    p.add_argument("--repeats", type=int, default=3, help="runs, each in a fresh process")
    p.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # a single run
    args = p.parse_args()
    if not args.one:
        repeat(args)
        return
    pool_src = Path(args.pool)
    recipe = pool_recipe(pool_src)
    backbone = resolve_backbone(None).backbone_id
    reads = get_predictor(args.predictor).reads
    with tempfile.TemporaryDirectory(prefix="taskscout-tta-") as tmp:
        pool = Path(tmp) / "pool"
        shutil.copytree(pool_src, pool, ignore=shutil.ignore_patterns("cache"))
        with RunStore(pool) as db:
            removed = [r.run_id for r in db.find_runs(task=args.target)]
            for run_id in removed:
                db.delete_run(run_id)
            methods = db.methods(backbone=backbone)
        stages: dict[str, float] = {}
        t_all = time.perf_counter()
        for method in reads.target_methods(methods):
            t0 = time.perf_counter()
            api.tune(
                args.target, method=method, store=pool, data_dir=args.data_dir,
                threads=args.threads, progress=False, **recipe,
            )  # fmt: skip
            stages[f"tune_{method}_s"] = round(time.perf_counter() - t0, 1)
        t0 = time.perf_counter()
        table = api.rank(
            args.target, pool=pool, predictor=args.predictor, data_dir=args.data_dir,
            threads=args.threads, progress=False, tune_target=False, **recipe,
        )  # fmt: skip
        stages["rank_s"] = round(time.perf_counter() - t0, 1)
        total = time.perf_counter() - t_all
    config = TuneConfig(**recipe)
    result = {
        "target": args.target,
        "max_train": recipe.get("max_train"),
        "sources": len(table),
        "predictor": args.predictor,
        "features": table.attrs.get("features_used"),
        "recipe": recipe,
        "epochs_at_2000": config.epochs_for(2000),
        "backbone": backbone,
        "stages_s": stages,
        "total_s": round(total, 1),
        "goal_s": GOAL_S,
        "goal_met": total <= GOAL_S,
        "runs_removed_from_pool_copy": len(removed),
        "threads": args.threads,
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "top5": table.head(5)[["source", "score"]].to_dict("records"),
    }
    print(json.dumps(result, default=str))


def repeat(args: argparse.Namespace) -> None:
    """``--repeats`` single runs, each ``--one`` in a fresh process; their stages and medians."""
    cmd = [sys.executable, __file__, "--one", "--target", args.target, "--data-dir",
           args.data_dir, "--pool", args.pool, "--predictor", args.predictor]  # fmt: skip
    cmd += ["--threads", str(args.threads)] if args.threads else []
    runs = []
    for _ in range(args.repeats):
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        runs.append(json.loads(out.strip().splitlines()[-1]))
    result = {k: v for k, v in runs[0].items() if k not in ("stages_s", "total_s", "load_avg_1m")}
    result["runs"] = [{k: r[k] for k in ("stages_s", "total_s", "load_avg_1m")} for r in runs]
    result["median_total_s"] = statistics.median(r["total_s"] for r in runs)
    result["median_stages_s"] = {
        k: statistics.median(r["stages_s"][k] for r in runs) for k in runs[0]["stages_s"]
    }
    result["goal_met"] = result["median_total_s"] <= GOAL_S
    Path(args.json).write_text(json.dumps(result, indent=1, default=str))
    print(json.dumps(result, default=str))


if __name__ == "__main__":
    main()
