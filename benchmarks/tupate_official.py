"""TaskWeb reproduction check and the official TuPaTE embeddings against TaskWeb's gold.

    python benchmarks/tupate_official.py            # reads ../shared/benchmarks

No training, a few seconds of pandas. Two parts:

(a) Reproduction check of our ``ndcg_rank``: on TaskWeb's released TaskShop scores
    (``taskshop_llm``, ``taskshop_roe``, computed by TaskWeb for full fine-tuning of T5-large),
    against TaskWeb's own gold for that setting (``finetune:t5l``, ``combined_score``, exactly
    what TaskWeb's ``taskshop_evaluate.py`` ranks by), per target:
    ``metrics.ndcg_rank`` vs ``external.taskweb_ndcg`` (TaskWeb's definition, independent
    code) must agree to 1e-9. Also reported: TaskWeb's code taken literally (gold ties broken
    in TaskWeb's source-list order), which differs only on targets with tied gold scores.
(b) The official TuPaTE task embeddings (github.com/JetRunner/TuPaTE, 20 vectors) rank the
    sources of each target by cosine similarity; evaluated with every metric
    (``evaluate_long``, random row included) against TaskWeb's gold ``finetune:roberta`` and
    ``ALL(avg)`` (gain = 100 x avg_pct_change, performance = 100 x (1 + avg_pct_change)) on
    the tasks both cover. For context the same table has TaskWeb's 4 released predictors on
    the same pairs, and a variant of the TuPaTE cosine after subtracting the mean of the 20
    released vectors (their raw cosines all lie in [0.948, 0.997]).

Prints one JSON line; writes benchmarks/results/tupate_official.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from taskscout.evaluation.external import (
    load_taskweb_gold,
    load_taskweb_predictors,
    taskweb_ndcg,
    to_our_name,
    to_taskweb_name,
)
from taskscout.evaluation.longform import RANDOM_BASELINE, evaluate_long
from taskscout.evaluation.metrics import ndcg_rank
from taskscout.evaluation.report import per_target_records, summary_markdown, summary_records

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"
DEFAULT_BENCHMARKS = REPO.parent / "shared" / "benchmarks"
REPRO_SETTING = "finetune:t5l"
REPRO_PREDICTORS = ("taskshop_llm", "taskshop_roe")
SETTINGS = ("finetune:roberta", "ALL(avg)")
KS = (1, 3)
TOLERANCE = 1e-9
COSINE = "tupate_official_cosine"
COSINE_CENTERED = "tupate_official_cosine_centered"


# --------------------------------------------------------------------------------------------
# (a) reproduction check
# --------------------------------------------------------------------------------------------
def reproduction_check(pairs: Path, predictors_csv: Path) -> dict:
    gold = load_taskweb_gold(pairs, setting=REPRO_SETTING, gain_column="combined_score")
    released = load_taskweb_predictors(predictors_csv, predictors=REPRO_PREDICTORS)
    score = released.set_index(["predictor", "target", "source"])["score"]
    out: dict = {
        "setting": REPRO_SETTING,
        "gold": "combined_score (TaskWeb's own gold transfer score)",
        "tolerance": TOLERANCE,
        "predictors": {},
    }
    for predictor in REPRO_PREDICTORS:
        rows = []
        for target, g in gold.groupby("target", sort=True):
            # TaskWeb's source list order: its task list (alphabetical in TaskWeb's names)
            g = g.assign(tw=g["source"].map(to_taskweb_name)).sort_values("tw")
            s = score.loc[[(predictor, target, src) for src in g["source"]]].to_numpy()
            gains = g["gain"].to_numpy()
            rows.append(
                {
                    "target": target,
                    "ndcg_rank": ndcg_rank(s, gains),
                    "taskweb_ndcg": taskweb_ndcg(s, gains),
                    "taskweb_ndcg_literal": taskweb_ndcg(
                        s, gains, gold_ties="input_order", score_ties="input_order"
                    ),
                    "gold_ties": bool(pd.Series(gains).duplicated().any()),
                    "score_ties": bool(pd.Series(s).duplicated().any()),
                }
            )
        df = pd.DataFrame(rows)
        diff = (df["ndcg_rank"] - df["taskweb_ndcg"]).abs()
        literal_diff = (df["ndcg_rank"] - df["taskweb_ndcg_literal"]).abs()
        out["predictors"][predictor] = {
            "n_targets": len(df),
            "mean_ndcg_rank": float(df["ndcg_rank"].mean()),
            "mean_taskweb_ndcg": float(df["taskweb_ndcg"].mean()),
            "max_abs_diff": float(diff.max()),
            "all_targets_within_tolerance": bool((diff <= TOLERANCE).all()),
            "mean_taskweb_ndcg_literal_code": float(df["taskweb_ndcg_literal"].mean()),
            "targets_with_gold_ties": df.loc[df["gold_ties"], "target"].tolist(),
            "targets_with_score_ties": df.loc[df["score_ties"], "target"].tolist(),
            "literal_code_differs_on": {
                t: float(d) for t, d in zip(df["target"], literal_diff, strict=True) if d > 1e-12
            },
            "per_target": df.drop(columns=["gold_ties", "score_ties"]).to_dict("records"),
        }
    out["passed"] = all(p["all_targets_within_tolerance"] for p in out["predictors"].values())
    return out


# --------------------------------------------------------------------------------------------
# (b) official TuPaTE embeddings vs TaskWeb gold
# --------------------------------------------------------------------------------------------
def load_embeddings(folder: Path) -> dict[str, np.ndarray]:
    files = sorted(folder.glob("*.npy"))
    if not files:
        raise SystemExit(f"no .npy embeddings in {folder}")
    return {to_our_name(f.stem): np.load(f).astype(float).ravel() for f in files}


def cosine_scores(gold: pd.DataFrame, emb: dict[str, np.ndarray], name: str) -> pd.DataFrame:
    def cos(a: np.ndarray, b: np.ndarray) -> float:
        return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))

    return pd.DataFrame(
        {
            "target": gold["target"],
            "source": gold["source"],
            "predictor": name,
            "score": [
                cos(emb[t], emb[s]) for t, s in zip(gold["target"], gold["source"], strict=True)
            ],
        }
    )


def tupate_tables(pairs: Path, predictors_csv: Path, emb_dir: Path) -> dict:
    emb = load_embeddings(emb_dir)
    mean = np.mean(list(emb.values()), axis=0)
    centered = {k: v - mean for k, v in emb.items()}
    everything = pd.read_csv(pairs, usecols=["target", "source"])
    taskweb_targets = {to_our_name(t) for t in everything["target"]}
    taskweb_tasks = taskweb_targets | {to_our_name(s) for s in everything["source"]}
    shared = sorted(set(emb) & taskweb_tasks)
    out: dict = {
        "embeddings": sorted(emb),
        "shared_tasks": shared,
        "shared_targets": sorted(set(shared) & taskweb_targets),
        "source_only": sorted(set(shared) - taskweb_targets),
        "settings": {},
    }
    released_all = load_taskweb_predictors(predictors_csv, tasks=shared)
    for setting in SETTINGS:
        gold = load_taskweb_gold(pairs, setting=setting, tasks=shared)
        released = released_all.merge(gold[["target", "source"]], on=["target", "source"])
        complete = released.groupby("predictor").size()
        released = released[released["predictor"].isin(complete[complete == len(gold)].index)]
        scores = pd.concat(
            [
                cosine_scores(gold, emb, COSINE),
                cosine_scores(gold, centered, COSINE_CENTERED),
                released,
            ],
            ignore_index=True,
        )
        per_target, summary = evaluate_long(gold, scores, ks=KS)
        out["settings"][setting] = {
            "n_targets": int(summary["n_targets"].iloc[0]),
            "n_pairs": len(gold),
            "targets": sorted(gold["target"].unique()),
            "summary": summary_records(summary),
            "per_target": per_target_records(per_target),
            "_summary_frame": summary,
        }
    return out


# --------------------------------------------------------------------------------------------
# output
# --------------------------------------------------------------------------------------------
def _r(x, digits: int = 4):
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(x, digits)


def markdown(repro: dict, tables: dict, command: str) -> str:
    lines = [
        "# Official TuPaTE embeddings vs TaskWeb gold; TaskWeb NDCG reproduction check",
        "",
        f"Regenerate: `{command}` (from the repository root; reads `../shared/benchmarks`, "
        "no training, seconds).",
        "",
        "## Official TuPaTE embeddings vs TaskWeb",
        "",
        "Sources of each target ranked by the cosine similarity of the official TuPaTE task "
        "embeddings (github.com/JetRunner/TuPaTE, 20 vectors of 1024 dims, backbone and method "
        "not stated). Gold: TaskWeb (Kim et al. 2023), gain = 100 x avg_pct_change (relative "
        "change of the target metric after intermediate training, in %), performance = "
        "100 x (1 + avg_pct_change) (no-transfer baselines are not released). "
        f"`{COSINE}` is the plain cosine (the predictor this table is about); "
        f"`{COSINE_CENTERED}` subtracts the mean of the 20 released vectors first; "
        "`taskshop_*`, `llm_similarity_davinci003`, `retrieval_of_experts_minilm` are TaskWeb's "
        "released scores on the same pairs, for context (TaskShop's were made for T5-large "
        "fine-tuning). `random` = exact expectation over uniformly random rankings. "
        "↓ = lower is better; bold = best non-random.",
        "",
        f"Tasks in both (our names): {', '.join(tables['shared_tasks'])}. "
        f"Targets: {', '.join(tables['shared_targets'])} "
        f"({len(tables['shared_targets'])}); source only (not a TaskWeb target): "
        f"{', '.join(tables['source_only']) or 'none'}. Each target's candidate sources: the "
        f"other {len(tables['shared_tasks']) - 1} tasks. Small: means over "
        f"{len(tables['shared_targets'])} targets of {len(tables['shared_tasks']) - 1} sources.",
        "",
    ]
    for setting, block in tables["settings"].items():
        lines += [
            f"### TaskWeb `{setting}` ({block['n_targets']} targets, {block['n_pairs']} pairs)",
            "",
            summary_markdown(block["_summary_frame"]),
        ]
    lines += [
        "## Reproduction check: our `ndcg_rank` = TaskWeb's NDCG",
        "",
        f"TaskWeb's released TaskShop scores against TaskWeb's gold `{repro['setting']}` "
        "`combined_score` (the setting the TaskShop scores were computed for, and the gold "
        "score TaskWeb's `taskshop_evaluate.py` ranks by), all 21 TaskWeb targets x 21 "
        "sources. `taskweb_ndcg` = TaskWeb's definition (gold rank r -> relevance N - r, gain "
        "2^rel - 1, log2 discount, ideal normalisation) written independently; tied gold "
        'scores share the first rank, as in `ndcg_rank`. "literal code" = TaskWeb\'s '
        "`taskshop/metrics.py` taken literally: tied gold scores get consecutive ranks in "
        "TaskWeb's source-list order.",
        "",
        "| predictor | targets | mean ndcg_rank | mean taskweb_ndcg | max abs diff per target "
        "| all within 1e-9 | mean, literal code | targets with gold ties |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, p in repro["predictors"].items():
        lines.append(
            f"| {name} | {p['n_targets']} | {p['mean_ndcg_rank']:.10f} | "
            f"{p['mean_taskweb_ndcg']:.10f} | {p['max_abs_diff']:.1e} | "
            f"{'yes' if p['all_targets_within_tolerance'] else 'NO'} | "
            f"{p['mean_taskweb_ndcg_literal_code']:.10f} | "
            f"{', '.join(p['targets_with_gold_ties']) or 'none'} |"
        )
    lines.append("")
    for name, p in repro["predictors"].items():
        if p["literal_code_differs_on"]:
            diffs = ", ".join(f"{t}: {d:.2e}" for t, d in p["literal_code_differs_on"].items())
            lines.append(f"- {name}: literal code differs from ndcg_rank on {diffs}.")
    lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--benchmarks-dir", default=str(DEFAULT_BENCHMARKS))
    ap.add_argument("--out", default=str(RESULTS / "tupate_official"))
    args = ap.parse_args()
    root = Path(args.benchmarks_dir)
    pairs = root / "taskweb" / "pairs.csv"
    predictors_csv = root / "taskweb" / "released_predictor_scores.csv"
    emb_dir = root / "tupate_official_embeddings"
    command = "python benchmarks/tupate_official.py" + "".join(
        f" {shlex.quote(a)}" for a in sys.argv[1:]
    )

    repro = reproduction_check(pairs, predictors_csv)
    tables = tupate_tables(pairs, predictors_csv, emb_dir)

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text(markdown(repro, tables, command), encoding="utf-8")
    saved = {
        "benchmark": "tupate_official",
        "command": command,
        "reproduction": repro,
        "tupate": {
            **{k: v for k, v in tables.items() if k != "settings"},
            "settings": {
                s: {k: v for k, v in b.items() if k != "_summary_frame"}
                for s, b in tables["settings"].items()
            },
        },
    }
    out.with_suffix(".json").write_text(json.dumps(saved, indent=1) + "\n", encoding="utf-8")

    line = {
        "benchmark": "tupate_official",
        "reproduction": {
            name: {
                "mean_ndcg_rank": _r(p["mean_ndcg_rank"], 10),
                "mean_taskweb_ndcg": _r(p["mean_taskweb_ndcg"], 10),
                "max_abs_diff": p["max_abs_diff"],
            }
            for name, p in repro["predictors"].items()
        },
        "reproduction_passed": repro["passed"],
        "tasks": tables["shared_tasks"],
        "tupate": {
            s: {
                pred: {k: _r(v) for k, v in row.items() if k in ("rank_of_best", "ndcg_rank")}
                for pred, row in b["summary"].items()
                if pred in (COSINE, RANDOM_BASELINE)
            }
            for s, b in tables["settings"].items()
        },
        "files": [str(out.with_suffix(".json")), str(out.with_suffix(".md"))],
    }
    print(json.dumps(line))
    if not repro["passed"]:
        raise SystemExit("reproduction check FAILED: ndcg_rank != taskweb_ndcg beyond 1e-9")


if __name__ == "__main__":
    main()
