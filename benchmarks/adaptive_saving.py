"""What would racing seeds save? The library's race simulated on the measured noise.

    PYTHONPATH=src python benchmarks/adaptive_saving.py          # ~3 min on 2 cores

The campaign measured 3 seeds per pair, so replaying the race on it (``ground_truth.py``)
cannot save anything: a source is separated only after 3 paired seeds
(:data:`taskscout.transfer.gains.MIN_SEPARATION_SEEDS`), so a race that may use 3 seeds ends
where the fixed design does. ``taskscout verify`` races with seeds 0-4 from 3 (``transfer
--adaptive`` with as many as ``--seeds`` gives). This script
asks what that race saves, and what it costs in decisions, on targets whose sources and seed
noise are those measured:

* Input: ``results/transfer_campaign_seeds.csv`` (``ground_truth.py`` writes it), the same
  replicates ``ground_truth.py`` keeps, per (method, target) the sources measured in every
  replicate.
* Per target, the two-way model of :func:`taskscout.transfer.gains.source_reliability`
  fitted to that block, ``gain[s, k] = mu + source_s + seed_k + noise``, gives the simulated
  truth: ``source_s`` = the measured row mean minus the grand mean, shrunk by the block's
  reliability ``max(0, 1 - MS_noise / MS_source)`` (the best linear unbiased predictor of a
  source's true effect; a target whose sources do not differ gets all-equal sources);
  ``seed_k ~ N(0, sd_seed^2)`` shared by every source of a seed (its baseline's luck), with
  ``sd_seed^2 = max(0, (MS_seed - MS_noise) / a)``; ``noise ~ N(0, sd_noise^2)``.
* ``--sims`` draws per target (seeded): 5 seeds of gains for every source. The race
  (:func:`taskscout.transfer.adaptive.race`, 90 % level, seeds 0-4, start 3 as ``verify``;
  ``--starts 2,3`` adds a race from 2, which ends the same on the same draws: no source is
  separated before 3 paired seeds, so every source of a start-2 race grows to 3) runs
  on them with ``measure`` looking the drawn gains up; beside it the fixed designs measure
  every source with 3 and with 5 seeds and pick the highest mean.
* Per target and start: runs (transfers + tune runs, :func:`design_cost`) of the race, of
  fixed 3 and fixed 5 seeds; the share of the fixed-5 runs the race saved; how often the
  race picks what fixed 5 picks; how often each design picks the true best; the mean true
  regret (points) of each pick; how often the race ends separated.

This is a simulation from a fitted model, not a measurement: it says what the racing rule
does under the noise we measured, with its model's assumptions (normal, homoscedastic
noise; no source x seed structure beyond it). Prints one JSON line; writes
``results/adaptive_saving.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from ground_truth import EXPORT, RESULTS, complete_replicates, in_every_replicate, on_pairs

from taskscout.transfer.adaptive import design_cost, race
from taskscout.transfer.gains import complete_block, source_reliability

SEEDS = [0, 1, 2, 3, 4]


def fitted_truth(block: pd.DataFrame) -> dict:
    """One target's per-seed rows (``source, replicate, gain``; every source in every
    replicate) -> the simulation's truth: ``effects`` (source -> shrunk effect, points),
    ``sd_seed``, ``sd_noise`` and the fitted reliability (module docstring)."""
    seeds = block.assign(
        seed=block["replicate"].map({r: i for i, r in enumerate(sorted(set(block["replicate"])))})
    )
    wide = complete_block(seeds)
    rel = source_reliability(seeds)
    # the BLUP shrinkage max(0, 1 - MS_noise / MS_source) is the k-seed mean's reliability
    shrink = max(0.0, rel["icc_mean"]) if math.isfinite(rel["icc_mean"]) else 0.0
    means = wide.mean(axis=1)
    effects = (shrink * (means - means.mean())).to_dict()
    return {"effects": effects, "sd_seed": rel["sd_seed"], "sd_noise": rel["sd_noise"],
            "shrink": shrink, "reliability": rel}  # fmt: skip


def simulate(target: str, truth: dict, sims: int, starts: list[int], seed: int) -> dict:
    """Race vs fixed 3 and 5 seeds on ``sims`` draws of ``truth`` (module docstring)."""
    sources = sorted(truth["effects"])
    alpha = np.array([truth["effects"][s] for s in sources])
    best_true = alpha.max()
    rng = np.random.default_rng(seed)
    fixed = {n: design_cost({(target, s): n for s in sources}, SEEDS)["total"] for n in (3, 5)}
    acc = {st: {"runs": [], "same_as_fixed5": 0, "true_best": 0, "regret": [], "separated": 0,
                "saved_vs_same_decision": []} for st in starts}  # fmt: skip
    fixed_hits = {3: 0, 5: 0}
    fixed_regret = {3: [], 5: []}
    idx = {s: i for i, s in enumerate(sources)}
    for _ in range(sims):
        g = (alpha[:, None] + rng.normal(0, truth["sd_seed"], len(SEEDS))[None, :]
             + rng.normal(0, truth["sd_noise"], (len(sources), len(SEEDS))))  # fmt: skip
        picks = {}
        for n in (3, 5):
            i = int(np.argmax(g[:, :n].mean(axis=1)))
            picks[n] = sources[i]
            fixed_hits[n] += alpha[i] == best_true
            fixed_regret[n].append(best_true - alpha[i])

        def measure(requests, g=g, idx=idx):
            return pd.DataFrame(
                [{"target": t, "source": s, "seed": k, "gain": g[idx[s], k]}
                 for t, s, k in requests]
            )  # fmt: skip

        for st in starts:
            res = race({target: sources}, measure, seeds=SEEDS, start_seeds=st)
            out = res.outcomes[target]
            a = acc[st]
            a["runs"].append(res.runs["total"])
            a["same_as_fixed5"] += out.best == picks[5]
            a["true_best"] += alpha[idx[out.best]] == best_true
            a["regret"].append(best_true - alpha[idx[out.best]])
            a["separated"] += out.separated
            a["saved_vs_same_decision"].append(res.saved)
    rows = []
    for st in starts:
        a = acc[st]
        runs = float(np.mean(a["runs"]))
        rows.append({
            "target": target, "start_seeds": st, "sources": len(sources), "sims": sims,
            "race_runs": runs, "fixed3_runs": fixed[3], "fixed5_runs": fixed[5],
            "saved_vs_fixed5": 1 - runs / fixed[5],
            "saved_vs_same_decision": float(np.mean(a["saved_vs_same_decision"])),
            "same_pick_as_fixed5": a["same_as_fixed5"] / sims,
            "separated": a["separated"] / sims,
            "true_best_race": a["true_best"] / sims,
            "true_best_fixed3": fixed_hits[3] / sims, "true_best_fixed5": fixed_hits[5] / sims,
            "regret_race": float(np.mean(a["regret"])),
            "regret_fixed3": float(np.mean(fixed_regret[3])),
            "regret_fixed5": float(np.mean(fixed_regret[5])),
        })  # fmt: skip
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds-csv", default=str(RESULTS / EXPORT))
    ap.add_argument("--sims", type=int, default=500)
    ap.add_argument("--starts", default="3", help="Start seeds of the race (comma list).")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(RESULTS / "adaptive_saving"))
    args = ap.parse_args(argv)
    if args.sims < 1:
        raise SystemExit("--sims must be >= 1")
    starts = [int(x) for x in args.starts.split(",") if x]
    if not starts or any(not 1 <= s <= len(SEEDS) for s in starts):
        raise SystemExit(f"--starts: values in 1..{len(SEEDS)}, got {args.starts}")
    if not Path(args.seeds_csv).is_file():
        raise SystemExit(f"missing {args.seeds_csv} (run benchmarks/ground_truth.py first)")
    command = "PYTHONPATH=src python benchmarks/adaptive_saving.py" + "".join(
        f" {shlex.quote(a)}" for a in (argv if argv is not None else sys.argv[1:])
    )
    t0 = time.perf_counter()
    rows, _ = complete_replicates(pd.read_csv(args.seeds_csv))
    results, truths = [], {}
    for i, (method, frame) in enumerate(rows.groupby("method", sort=True)):
        common = in_every_replicate(frame)
        for j, (target, block) in enumerate(on_pairs(frame, common).groupby("target", sort=True)):
            truth = fitted_truth(block)
            truths[f"{method}/{target}"] = {
                "effects": truth["effects"], "sd_seed": truth["sd_seed"],
                "sd_noise": truth["sd_noise"], "shrink": truth["shrink"],
                "icc": truth["reliability"]["icc"], "replicates": block["replicate"].nunique(),
            }  # fmt: skip
            sims = simulate(target, truth, args.sims, starts, args.seed + 1000 * i + j)
            results += [{"method": method} | r for r in sims]
            print(f"{method}/{target} done ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    frame = pd.DataFrame(results)
    summary = (
        frame.groupby(["method", "start_seeds"])[["race_runs", "fixed3_runs", "fixed5_runs"]]
        .sum()
        .assign(saved_vs_fixed5=lambda d: 1 - d["race_runs"] / d["fixed5_runs"])
        .reset_index()
    )
    report = {"benchmark": "adaptive_saving", "command": command, "seeds": SEEDS,
              "sims": args.sims, "per_target": results, "truth": truths,
              "summary": summary.to_dict("records"),
              "wall_s": round(time.perf_counter() - t0, 1)}  # fmt: skip
    out = Path(args.out)
    out.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    out.with_suffix(".md").write_text(markdown(report), encoding="utf-8")
    print(json.dumps({"benchmark": "adaptive_saving", "summary": report["summary"],
                      "wall_s": report["wall_s"]}))  # fmt: skip
    return 0


def _p(v: float) -> str:
    return f"{100 * v:.0f} %"


def markdown(report: dict) -> str:
    L = [f"`{report['command']}`", "",
         f"The race simulated on each target's fitted sources and noise ({report['sims']} draws "
         f"per target, seeds {report['seeds']}; `benchmarks/adaptive_saving.py` says how). "
         "Runs are transfers + tune runs; regret is the true mean gain lost against the true "
         "best, in points.", "",
         "| method | target | sources | icc | start | race runs | fixed 3 | fixed 5 | saved vs "
         "fixed 5 | separated | same pick as fixed 5 | true best: race / fixed 3 / fixed 5 | "
         "regret: race / fixed 3 / fixed 5 |",
         "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"]  # fmt: skip
    for r in report["per_target"]:
        icc = report["truth"][f"{r['method']}/{r['target']}"]["icc"]
        L.append(
            f"| {r['method']} | {r['target']} | {r['sources']} | {icc:.2f} | {r['start_seeds']} | "
            f"{r['race_runs']:.1f} | {r['fixed3_runs']} | {r['fixed5_runs']} | "
            f"{_p(r['saved_vs_fixed5'])} | {_p(r['separated'])} | "
            f"{_p(r['same_pick_as_fixed5'])} | {_p(r['true_best_race'])} / "
            f"{_p(r['true_best_fixed3'])} / {_p(r['true_best_fixed5'])} | "
            f"{r['regret_race']:.2f} / {r['regret_fixed3']:.2f} / {r['regret_fixed5']:.2f} |"
        )
    L += ["", "All targets of a method:", "",
          "| method | start | race runs | fixed 3 | fixed 5 | saved vs fixed 5 |",
          "|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    for r in report["summary"]:
        L.append(f"| {r['method']} | {r['start_seeds']} | {r['race_runs']:.0f} | "
                 f"{r['fixed3_runs']:.0f} | {r['fixed5_runs']:.0f} | "
                 f"{_p(r['saved_vs_fixed5'])} |")  # fmt: skip
    L += ["", f"Wall {report['wall_s']} s.", ""]
    return "\n".join(L)


if __name__ == "__main__":
    sys.exit(main())
