"""Every predictor the store can serve on the 12 TaskWeb-overlap tasks, against TaskWeb's gold.

    python benchmarks/taskweb12_eval.py --store benchmarks/stores/taskweb12-methods --threads 2

For each checkpoint (``early``, ``best``) every registered predictor scores, for each of the 12
TaskWeb-overlap tasks (``boolq cb copa cosmos_qa imdb mrpc qnli rotten_tomatoes rte snli stsb
wic``) that has a run in the store, the other such tasks as sources (``taskscout.api.predict``,
one target and one predictor at a time, so that a predictor failing on one target -- e.g. LogME
on a multiple-choice target -- is reported for that target only). Predictors that do not depend
on the checkpoint (datasize, random, textemb, curvegrad) are computed once. The scores are
evaluated (``evaluate_long``, all metrics, random row) against TaskWeb's gold ``ALL(avg)`` and
``finetune:roberta`` (gain = 100 x avg_pct_change), restricted to the tasks in the store, beside
TaskWeb's released predictors on the same pairs. A predictor that could score only some targets
is evaluated on those, and a random row for that target set is added.

The store is never modified: the script works on a temporary copy (``--in-place`` to write the
embeddings it computes into the store itself). Missing tasks, methods and predictors are listed
in the output, never a crash. Wall time of every (predictor, target) is recorded; the slow
predictors read at most ``--max-examples`` training examples of a task (defaults below,
configurable), see the predictors' docstrings in ``taskscout.predictors.baselines``.

Writes ``<out>.md`` (the table, with the command at the top), ``<out>.csv`` (per target) and
``<out>.json`` (everything); prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import pandas as pd

from taskscout import api
from taskscout.backbone import resolve_backbone
from taskscout.evaluation.external import (
    TASKWEB_OVERLAP,
    load_taskweb_gold,
    load_taskweb_predictors,
)
from taskscout.evaluation.longform import evaluate_long
from taskscout.evaluation.report import per_target_records, summary_markdown
from taskscout.predictors import PREDICTORS
from taskscout.store import RunStore
from taskscout.util import console, make_progress, set_torch_threads

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
RESULTS = Path(__file__).parent / "results"
SETTINGS = ("ALL(avg)", "finetune:roberta")
KS = (1, 3)
CHECKPOINT_FREE = ("datasize", "random", "textemb", "curvegrad")
"""Predictors whose scores do not depend on the checkpoint: computed once, named without it."""
SLOW = ("textemb", "taskemb", "logme")
DEFAULT_MAX_EXAMPLES = {"textemb": 1000, "taskemb": 256, "logme": 500}
"""Training examples each slow predictor reads per task (their own defaults)."""
RANDOM_RENAME = "random-draw"
"""Our seeded ``random`` predictor, renamed: ``random`` is the exact random-baseline row."""


def parse_max_examples(text: str | None) -> dict[str, int]:
    out = dict(DEFAULT_MAX_EXAMPLES)
    for part in (text or "").split(","):
        if not part.strip():
            continue
        name, _, value = part.partition("=")
        if name.strip() not in DEFAULT_MAX_EXAMPLES or not value.strip().isdigit():
            raise SystemExit(
                f"--max-examples: expected e.g. textemb=1000,taskemb=256,logme=500, got {part!r}"
            )
        out[name.strip()] = int(value)
    return out


def store_inventory(db: RunStore, backbone_id: str) -> dict:
    """Which of the 12 tasks have runs of which methods on this backbone."""
    methods: dict[str, list[str]] = {}
    for method in sorted(db.methods(backbone=backbone_id)):
        for task in db.task_names(backbone=backbone_id, method=method):
            methods.setdefault(task, []).append(method)
    present = [t for t in TASKWEB_OVERLAP if t in methods]
    all_methods = sorted({m for t in present for m in methods[t]})
    return {
        "present": present,
        "missing_tasks": [t for t in TASKWEB_OVERLAP if t not in methods],
        "methods": {t: sorted(methods[t]) for t in present},
        "missing_methods": {
            t: [m for m in all_methods if m not in methods[t]]
            for t in present
            if any(m not in methods[t] for m in all_methods)
        },
        "other_backbones": sorted(set(db.backbones()) - {backbone_id}),
    }


def load_tasks(present: list[str], args) -> dict:
    """Each task's training subsample, loaded once (``--max-train``, seed 0: the subsample the
    store's runs were tuned on); the slow predictors read its first ``--max-examples`` rows."""
    from taskscout.data import load_task

    out = {}
    with make_progress(not args.no_progress, extra=False) as bar:
        job = bar.add_task("loading task data", total=len(present))
        for task in present:
            out[task] = load_task(task, data_dir=args.data_dir, max_train=args.max_train, seed=0)
            bar.update(job, advance=1)
    return out


def score_all(db, present, args, max_examples) -> tuple[pd.DataFrame, dict, pd.DataFrame]:
    """Long-form scores of every (predictor, checkpoint), failures per target, timings. Each
    target in ``args.targets`` (default ``present``) is scored over the other ``present``."""
    targets = args.targets or present
    frames, failures, timings = [], {}, []
    jobs = []
    for name in args.predictors:
        for ckpt in args.checkpoints:
            if name in CHECKPOINT_FREE and ckpt != args.checkpoints[0]:
                continue
            label = name if name in CHECKPOINT_FREE else f"{name}@{ckpt}"
            if name == "random":
                label = RANDOM_RENAME
            jobs.append((name, ckpt, label))
    options = {n: {"max_examples": k} for n, k in max_examples.items()}
    data = load_tasks(present, args)
    with make_progress(not args.no_progress, extra=False) as bar:
        job = bar.add_task("predictor x target", total=len(jobs) * len(targets))
        for name, ckpt, label in jobs:
            opts = dict(options.get(name, {}))
            if name in ("taskemb", "logme"):
                opts["checkpoint"] = ckpt  # their own default is best
            for target in targets:
                bar.update(job, description=f"{label} -> {target}")
                start = time.perf_counter()
                try:
                    frame, _ = api.predict(
                        [target],
                        store=db,
                        predictors=[name],
                        checkpoint=ckpt,
                        backbone=args.backbone,
                        sources=[s for s in present if s != target],
                        data_dir=args.data_dir,
                        predictor_options={name: opts},
                        tasks=data,
                    )
                    frames.append(frame.assign(predictor=label))
                    ok = True
                except Exception as exc:  # noqa: BLE001 - reported per target
                    reason = f"{type(exc).__name__}: {exc}".replace(str(db.root), args.store)
                    failures.setdefault(label, {})[target] = reason
                    ok = False
                timings.append(
                    {
                        "predictor": label,
                        "target": target,
                        "seconds": time.perf_counter() - start,
                        "ok": ok,
                    }
                )
                bar.update(job, advance=1)
    scores = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return scores, failures, pd.DataFrame(timings)


def evaluate_setting(pairs, released_csv, setting, present, scores) -> tuple[pd.DataFrame, ...]:
    """(summary rows, per-target rows) for one gold setting; each predictor on the targets it
    scored, one random row per distinct target set."""
    gold = load_taskweb_gold(pairs, setting=setting, tasks=present)
    released = load_taskweb_predictors(released_csv, tasks=present)
    released = released.merge(gold[["target", "source"]], on=["target", "source"])
    every = pd.concat([scores, released], ignore_index=True) if len(scores) else released
    all_targets = sorted(gold["target"].unique())
    summaries, per_targets, randoms = [], [], {}
    for _, df in every.groupby("predictor", sort=False):
        targets = sorted(set(df["target"]) & set(all_targets))
        pairs_ok = df.merge(gold[["target", "source"]], on=["target", "source"])
        g = gold[gold["target"].isin(targets)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            per_target, summary = evaluate_long(g, pairs_ok, ks=KS, random_label="random")
        key = tuple(targets)
        label = (
            "random"
            if key == tuple(all_targets)
            else f"random (without {', '.join(sorted(set(all_targets) - set(targets)))})"
        )
        randoms.setdefault(key, (label, summary.loc[["random"]], per_target))
        summary = summary.drop(index="random").assign(random_row=label)
        summaries.append(summary)
        per_targets.append(per_target[per_target["predictor"] != "random"])
    for label, summary, per_target in randoms.values():
        summaries.append(summary.rename(index={"random": label}).assign(random_row=label))
        rows = per_target[per_target["predictor"] == "random"].assign(predictor=label)
        per_targets.append(rows)
    summary = pd.concat(summaries)
    order = [i for i in summary.index if not str(i).startswith("random")]
    order += [i for i in summary.index if str(i).startswith("random")]
    return summary.loc[order], pd.concat(per_targets, ignore_index=True), gold


def timing_table(timings: pd.DataFrame) -> pd.DataFrame:
    if timings.empty:
        return timings
    ok = timings[timings["ok"]]
    table = ok.groupby("predictor").agg(
        targets=("target", "count"),
        total_s=("seconds", "sum"),
        mean_per_target_s=("seconds", "mean"),
        first_target_s=("seconds", "first"),
        max_s=("seconds", "max"),
    )
    return table.sort_values("total_s", ascending=False)


def _r(x, digits=4):
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(x, digits)


def markdown(command, inventory, args, max_examples, results, failures, timing) -> str:
    lines = [
        "# Predictors on the 12 TaskWeb-overlap tasks vs TaskWeb gold",
        "",
        f"Regenerate: `{command}`",
        "",
        f"Store: `{args.store}` (backbone `{args.backbone_id}`). Tasks with runs: "
        f"{', '.join(inventory['present'])} ({len(inventory['present'])}); **missing**: "
        f"{', '.join(inventory['missing_tasks']) or 'none'}. Methods per task: "
        + "; ".join(f"{t}: {'/'.join(m)}" for t, m in inventory["methods"].items())
        + ". Each target is scored over the other tasks with runs (gold restricted alike). "
        "Gold: TaskWeb (Kim et al. 2023), gain = 100 x avg_pct_change, performance = "
        "100 x (1 + avg_pct_change). `name@early` / `name@best`: the checkpoint the predictor "
        "read; datasize, textemb, curvegrad and `random-draw` (our seeded random predictor) do "
        "not depend on it. TaskWeb's released predictors (`llm_similarity_davinci003`, "
        "`retrieval_of_experts_minilm`, `taskshop_*`) are on the same pairs. `random` = exact "
        "expectation over uniformly random rankings; a predictor that could not score every "
        "target is evaluated on the targets it scored (column `n_targets`) beside a random row "
        "for that set. ↓ = lower is better; bold = best non-random. Slow predictors read at most "
        + ", ".join(f"{k}={v}" for k, v in max_examples.items())
        + f" training examples per task (`--max-examples`): the first rows of each task's "
        f"{args.max_train}-example training subsample (seed 0, the one the runs were tuned on).",
        "",
    ]
    for setting, (summary, _, gold) in results.items():
        lines += [
            f"## TaskWeb `{setting}` ({gold['target'].nunique()} targets, {len(gold)} pairs)",
            "",
            summary_markdown(summary.drop(columns=["random_row"])),
        ]
    if any(str(i).startswith("datasize") for r in results.values() for i in r[0].index):
        lines += [
            "Note: with 2,000-example subsamples 7 of the 12 tasks tie on `datasize` "
            "(num_train = 2000); every metric, `rank_of_best` included, takes the expectation "
            "over the orders of tied scores.",
            "",
        ]
    lines += ["## Predictors that could not score (per target)", ""]
    if not failures:
        lines.append("None.")
    for label, by_target in failures.items():
        first = next(iter(by_target.values())).splitlines()[0][:300]
        if len(by_target) == len(args.targets or inventory["present"]):
            lines.append(f"- `{label}` on every target, e.g.: {first}")
            continue
        for target, reason in by_target.items():
            lines.append(f"- `{label}` on {target}: {reason.splitlines()[0][:300]}")
    lines += ["", f"## Wall time per predictor (CPU, {args.threads} torch threads)", ""]
    if len(timing):
        lines += [
            "| predictor | targets | total s | mean s / target | first target s | max s |",
            "|---|---|---|---|---|---|",
        ]
        for name, row in timing.iterrows():
            lines.append(
                f"| {name} | {int(row['targets'])} | {row['total_s']:.1f} | "
                f"{row['mean_per_target_s']:.2f} | {row['first_target_s']:.2f} | "
                f"{row['max_s']:.2f} |"
            )
        lines += [
            "",
            "The first target of textemb/taskemb computes every task's vector (cached in "
            "memory for the later targets); logme computes features under every source for "
            "each target.",
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", required=True, help="Run store with runs of the 12 tasks.")
    ap.add_argument("--data-dir", default=str(SHARED / "data"))
    ap.add_argument("--taskweb-dir", default=str(SHARED / "benchmarks" / "taskweb"))
    ap.add_argument("--backbone", default=None, help="Default: the packaged MiniLM.")
    ap.add_argument("--checkpoints", default="early,best")
    ap.add_argument("--predictors", default="all", help="Comma-separated names, or all.")
    ap.add_argument(
        "--targets", default=None, help="Score only these targets (default: all 12 in the store)."
    )
    ap.add_argument("--settings", default=",".join(SETTINGS))
    ap.add_argument(
        "--max-examples",
        default=None,
        help="Training examples per task read by the slow predictors, e.g. "
        "textemb=1000,taskemb=256,logme=500 (the defaults).",
    )
    ap.add_argument(
        "--max-train",
        type=int,
        default=2000,
        help="Training subsample per task the predictors read from (seed 0; default 2000).",
    )
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: all).")
    ap.add_argument("--in-place", action="store_true", help="Write computed embeddings to --store.")
    ap.add_argument("--out", default=str(RESULTS / "taskweb12_eval"))
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args()
    args.checkpoints = [c for c in args.checkpoints.split(",") if c]
    settings = [s for s in args.settings.split(",") if s]
    wanted = sorted(PREDICTORS) if args.predictors == "all" else args.predictors.split(",")
    unknown = [p for p in wanted if p not in PREDICTORS]
    if unknown:
        raise SystemExit(f"unknown predictor(s) {unknown}; choose from {sorted(PREDICTORS)}")
    args.predictors = wanted
    max_examples = parse_max_examples(args.max_examples)
    args.threads = set_torch_threads(args.threads)
    command = "python benchmarks/taskweb12_eval.py" + "".join(
        f" {shlex.quote(a)}" for a in sys.argv[1:]
    )
    taskweb = Path(args.taskweb_dir)
    pairs, released = taskweb / "pairs.csv", taskweb / "released_predictor_scores.csv"
    source = Path(args.store)
    if not (source / "store.sqlite").is_file():
        raise SystemExit(f"no run store at {source} (missing store.sqlite)")
    tmp = None
    if not args.in_place:
        tmp = tempfile.TemporaryDirectory(prefix="taskweb12-")
        work = Path(tmp.name) / "store"
        shutil.copytree(source, work, ignore=shutil.ignore_patterns("*.sqlite-shm"))
    else:
        work = source
    db = RunStore(work, create=False)
    args.backbone_id = resolve_backbone(args.backbone).backbone_id
    args.targets = [t for t in (args.targets or "").split(",") if t] or None
    inventory = store_inventory(db, args.backbone_id)
    for t in inventory["missing_tasks"]:
        console.print(f"[yellow]missing task:[/yellow] {t} has no run in {source}")
    for t, ms in inventory["missing_methods"].items():
        console.print(f"[yellow]missing method:[/yellow] {t} has no {'/'.join(ms)} run")
    if len(inventory["present"]) < 3:
        raise SystemExit(
            f"store {source} has runs of only {inventory['present']} among the 12 tasks on "
            f"backbone {args.backbone_id!r}: need at least 3"
        )
    start = time.perf_counter()
    scores, failures, timings = score_all(db, inventory["present"], args, max_examples)
    results = {
        s: evaluate_setting(pairs, released, s, inventory["present"], scores) for s in settings
    }
    timing = timing_table(timings)

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text(
        markdown(command, inventory, args, max_examples, results, failures, timing),
        encoding="utf-8",
    )
    per_target = pd.concat(
        [pt.assign(setting=s) for s, (_, pt, _) in results.items()], ignore_index=True
    )
    per_target.to_csv(out.with_suffix(".csv"), index=False)
    # the raw long-form scores: `taskscout evaluate --scores` re-scores them without recomputing
    scores.to_csv(out.with_name(out.name + "_scores.csv"), index=False)
    payload = {
        "benchmark": "taskweb12_eval",
        "command": command,
        "store": str(source),
        "backbone": args.backbone_id,
        "inventory": inventory,
        "checkpoints": args.checkpoints,
        "max_examples": max_examples,
        "threads": args.threads,
        "failures": failures,
        "summary": {
            s: {
                str(p): {k: _r(v) if isinstance(v, float) else v for k, v in row.items()}
                for p, row in summary.iterrows()
            }
            for s, (summary, _, _) in results.items()
        },
        "per_target": {s: per_target_records(pt) for s, (_, pt, _) in results.items()},
        "timings": timings.to_dict("records"),
        "wall_s": round(time.perf_counter() - start, 1),
    }
    out.with_suffix(".json").write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
    line = {
        "benchmark": "taskweb12_eval",
        "targets": inventory["present"],
        "missing_tasks": inventory["missing_tasks"],
        "predictors_failed": {k: sorted(v) for k, v in failures.items()},
        "slow_predictor_s_per_target": {
            name: _r(float(row["mean_per_target_s"]), 2)
            for name, row in timing.iterrows()
            if name.split("@")[0] in SLOW
        },
        "wall_s": payload["wall_s"],
        "files": [str(out.with_suffix(x)) for x in (".md", ".csv", ".json")],
    }
    print(json.dumps(line))
    db.close()
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
