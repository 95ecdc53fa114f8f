"""Do our measured small-model gains agree with TaskWeb's published ones? And are they above
seed noise?

    python benchmarks/transfer_vs_taskweb.py \
        --gains benchmarks/results/transfer_matrix_prompt.csv \
        --taskweb ../shared/benchmarks/taskweb/pairs.csv

For each TaskWeb setting (default ``ALL(avg)`` and ``finetune:roberta``): Spearman correlation
between our gain and TaskWeb's gain (``100 * avg_pct_change``) over the sources of each target
(pairs both hold), then the mean over targets, plus the pooled Spearman over all pairs. Seed
spread, over pairs measured with >= 2 seeds: mean |gain| vs mean seed std, and the fraction of
pairs with |mean gain| > 2 std. Writes ``<out>.json`` and ``<out>.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from taskscout.evaluation.external import TASKWEB_OVERLAP, load_taskweb_gold

HERE = Path(__file__).resolve().parent


def _spearman(a, b) -> float:
    if len(a) < 3 or np.std(a) == 0 or np.std(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def compare(ours: pd.DataFrame, theirs: pd.DataFrame) -> dict:
    """Per-target and mean Spearman of our ``gain`` vs theirs over shared (target, source)."""
    both = ours.merge(theirs, on=["target", "source"], suffixes=("", "_tw"))
    per_target = {
        t: _spearman(g["gain"].to_numpy(), g["gain_tw"].to_numpy())
        for t, g in both.groupby("target", sort=True)
    }
    finite = [v for v in per_target.values() if not math.isnan(v)]
    return {
        "pairs": len(both),
        "targets": len(per_target),
        "mean_spearman": float(np.mean(finite)) if finite else float("nan"),
        "targets_with_rho": len(finite),
        "pooled_spearman": _spearman(both["gain"].to_numpy(), both["gain_tw"].to_numpy()),
        "per_target": per_target,
    }


def seed_spread(ours: pd.DataFrame) -> dict:
    """Is the gain above seed noise? Over pairs with >= 2 seeds."""
    multi = ours[ours["n_seeds"] >= 2]
    if multi.empty:
        return {"pairs_with_2_seeds": 0}
    std = multi["gain_std"].to_numpy()
    gain = multi["gain"].to_numpy()
    return {
        "pairs_with_2_seeds": len(multi),
        "mean_abs_gain": float(np.mean(np.abs(gain))),
        "mean_seed_std": float(np.mean(std)),
        "median_seed_std": float(np.median(std)),
        "frac_abs_gain_gt_2std": float(np.mean(np.abs(gain) > 2 * std)),
        "frac_positive_gain": float(np.mean(gain > 0)),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--gains", default=str(HERE / "results" / "transfer_matrix_prompt.csv"))
    p.add_argument("--taskweb", default="../shared/benchmarks/taskweb/pairs.csv")
    p.add_argument("--settings", default="ALL(avg),finetune:roberta")
    p.add_argument("--out", default=str(HERE / "results" / "transfer_vs_taskweb"))
    args = p.parse_args(argv)

    ours = pd.read_csv(args.gains)
    tasks = sorted(set(ours["target"]) | set(ours["source"]))
    tasks = [t for t in tasks if t in TASKWEB_OVERLAP]
    report: dict = {"gains": args.gains, "taskweb": args.taskweb, "tasks": tasks, "settings": {}}
    for setting in [s for s in args.settings.split(",") if s]:
        theirs = load_taskweb_gold(args.taskweb, setting=setting, tasks=tasks)
        report["settings"][setting] = compare(ours, theirs[["target", "source", "gain"]])
    report["seed_spread"] = seed_spread(ours)

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        f"Our gains ({args.gains}) vs TaskWeb's published gains: Spearman over each target's "
        "sources, mean over targets, and pooled over all pairs.",
        "",
        "| target | " + " | ".join(report["settings"]) + " |",
        "|---|" + "---:|" * len(report["settings"]),
    ]
    targets = sorted({t for s in report["settings"].values() for t in s["per_target"]})
    for t in targets:
        cells = [f"{s['per_target'].get(t, float('nan')):.3f}" for s in report["settings"].values()]
        lines.append(f"| {t} | " + " | ".join(cells) + " |")
    for key in ("mean_spearman", "pooled_spearman"):
        cells = [f"**{s[key]:.3f}**" for s in report["settings"].values()]
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    sp = report["seed_spread"]
    lines += ["", f"Seed spread: {json.dumps(sp)}"]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(
        json.dumps(
            {
                k: {"mean_spearman": v["mean_spearman"], "pooled": v["pooled_spearman"]}
                for k, v in report["settings"].items()
            }
            | {"seed_spread": sp}
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
