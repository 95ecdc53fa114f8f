"""Time to answer: a new target of up to 2,000 examples ranked against a pool, on this CPU.

The target is a catalog task whose runs are removed from a scratch copy of the pool, so
everything a user's new task costs is paid: tuning it with the pool's recipe for each method the
predictor reads (the default ``gain-model`` reads lora and bitfit), then ranking, which computes
LogME over every source's LoRA checkpoint and the other features. Each stage is timed alone, in
one process, with a cold tokenisation cache (the pool copy has none of the target's):

    PYTHONPATH=src python benchmarks/time_to_answer.py --target sst2 --data-dir ../shared/data \
        --pool src/taskscout/pools/standard --threads 2

Prints one JSON object (seconds per stage, total, the goal: at most 180 s) and writes it to
``--json`` (default ``benchmarks/results/time_to_answer.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
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
    args = p.parse_args()
    pool_src = Path(args.pool)
    recipe = pool_recipe(pool_src)
    backbone = resolve_backbone(None).backbone_id
    reads = get_predictor(args.predictor).reads
    with tempfile.TemporaryDirectory(prefix="taskscout-tta-") as tmp:
        pool = Path(tmp) / "pool"
        shutil.copytree(pool_src, pool, ignore=shutil.ignore_patterns("cache"))
        db = RunStore(pool)
        removed = [r.run_id for r in db.find_runs(task=args.target)]
        for run_id in removed:
            db.delete_run(run_id)
        db.close()
        stages: dict[str, float] = {}
        t_all = time.perf_counter()
        for method in reads.target_methods({"lora", "bitfit"}):
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
    Path(args.json).write_text(json.dumps(result, indent=1, default=str))
    print(json.dumps(result, default=str))


if __name__ == "__main__":
    main()
