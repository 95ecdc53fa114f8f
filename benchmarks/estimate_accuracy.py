"""How well ``transfer --dry-run`` estimates a task it never measured: each task of a store,
left out in turn, predicted from the others' runs by its work (``taskscout.transfer.cost``).

    PYTHONPATH=src python benchmarks/estimate_accuracy.py --data-dir ../shared/data \
        benchmarks/results/cpu_2026-11-30/full/store.sqlite

For each store (read-only): every complete tune run's own training time (``config.job_s``,
else its wall time), averaged per task; the task's work ``run_work`` under the store's
settings (read from its runs); then, as :func:`taskscout.transfer.scheduler.estimate_seconds`
does for a never-measured task, ``predicted(t) = work(t) x median_{u != t} seconds(u) /
work(u)``. Prints one JSON object: per store the Spearman of seconds and work, and per task
measured / predicted (1.0 = exact; the old estimate, the measured tasks' mean, beside it).
A store whose runs ran under other load (another job on the cores) carries that noise.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import sys
from pathlib import Path

from scipy import stats

from taskscout.transfer.cost import run_work
from taskscout.tuning.config import TuneConfig


def store_accuracy(path: Path, data_dir: str | None) -> dict:
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            "SELECT task, wall_time_s, config FROM runs WHERE status = 'complete'"
        ).fetchall()
    finally:
        conn.close()
    if not rows:
        raise SystemExit(f"{path}: no complete runs")
    seconds: dict[str, list[float]] = {}
    settings = None
    for task, wall, config in rows:
        cfg = json.loads(config)
        seconds.setdefault(task, []).append(float(cfg.get("job_s", wall)))
        s = dict(cfg["settings"])
        s.pop("backbone", None)
        if data_dir is not None:
            s["data_dir"] = data_dir
        if settings is None:
            settings = TuneConfig(**s)
        elif TuneConfig(**s).settings_hash() != settings.settings_hash():
            raise SystemExit(f"{path}: runs of more than one setting")
    tasks = sorted(seconds)
    mean_s = {t: statistics.fmean(seconds[t]) for t in tasks}
    work = {t: run_work(settings.load(t, 0), settings) for t in tasks}
    per_task = {}
    for t in tasks:
        rest = [u for u in tasks if u != t]
        rate = statistics.median(mean_s[u] / work[u] for u in rest)
        per_task[t] = {
            "runs": len(seconds[t]),
            "seconds": round(mean_s[t], 1),
            "work": round(work[t]),
            "measured_over_predicted": round(mean_s[t] / (rate * work[t]), 3),
            "measured_over_mean_of_others": round(
                mean_s[t] / statistics.fmean(mean_s[u] for u in rest), 3
            ),
        }
    ratios = [v["measured_over_predicted"] for v in per_task.values()]
    old = [v["measured_over_mean_of_others"] for v in per_task.values()]
    return {
        "method": settings.method,
        "tasks": len(tasks),
        "spearman_seconds_work": round(
            float(stats.spearmanr([mean_s[t] for t in tasks], [work[t] for t in tasks])[0]), 3
        ),
        "measured_over_predicted": {
            "min": min(ratios),
            "median": statistics.median(ratios),
            "max": max(ratios),
        },  # fmt: skip
        "measured_over_mean_of_others": {
            "min": min(old),
            "median": statistics.median(old),
            "max": max(old),
        },  # fmt: skip
        "per_task": per_task,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("stores", nargs="+", type=Path, help="SQLite run stores (read-only)")
    ap.add_argument("--data-dir", default=None, help="the tasks' data (default: the runs')")
    ap.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = ap.parse_args()
    stores = {str(p): store_accuracy(p, args.data_dir) for p in args.stores}
    report = {"benchmark": "estimate_accuracy", "stores": stores}
    text = json.dumps(report, indent=1)
    if args.out is not None:
        args.out.write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
