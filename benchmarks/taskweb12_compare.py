"""Re-score saved predictor scores of the 12-task evaluation on one common set of targets.

    python benchmarks/taskweb12_compare.py        # writes results/taskweb12_compare.md

``taskweb12_eval.py`` runs were split (fast predictors; textemb/taskemb; LogME), and LogME cannot
score the multiple-choice targets copa and cosmos_qa, so its rows cover 10 targets. This script
reads the saved long-form scores (``results/taskweb12_eval*_scores.csv``), keeps the targets
that every listed predictor scored, and evaluates all of them, TaskWeb's released predictors and
the exact random row on exactly those targets, against TaskWeb ``ALL(avg)`` and
``finetune:roberta``. No model is run.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import pandas as pd

from taskscout.evaluation.external import (
    TASKWEB_OVERLAP,
    load_taskweb_gold,
    load_taskweb_predictors,
)
from taskscout.evaluation.longform import evaluate_long

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
TASKWEB = HERE.parent.parent / "shared" / "benchmarks" / "taskweb"
DEFAULT = (
    "logme@early,logme@best,textemb,taskemb@early,tupate-lora@early,tupate-lora-delta@early,"
    "tupate-bitfit-delta@early,datasize,taskshop_roe,retrieval_of_experts_minilm,"
    "llm_similarity_davinci003,taskshop_llm"
)
COLS = ["rank_of_best", "ndcg_rank", "spearman", "regret@1", "gain@1", "gain@3", "n_targets"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--predictors", default=DEFAULT)
    p.add_argument("--taskweb-dir", default=str(TASKWEB))
    p.add_argument("--out", default=str(RESULTS / "taskweb12_compare.md"))
    args = p.parse_args(argv)
    names = args.predictors.split(",")
    tasks = list(TASKWEB_OVERLAP)
    ours = pd.concat(
        [pd.read_csv(f) for f in sorted(RESULTS.glob("taskweb12_eval*_scores.csv"))],
        ignore_index=True,
    )
    released = load_taskweb_predictors(
        Path(args.taskweb_dir) / "released_predictor_scores.csv", tasks=tasks
    )
    scores = pd.concat([ours, released], ignore_index=True)
    scores = scores[scores["predictor"].isin(names)]
    missing = sorted(set(names) - set(scores["predictor"]))
    if missing:
        raise SystemExit(f"no saved scores for {missing}")
    common = set(tasks)
    for _, df in scores.groupby("predictor"):
        common &= set(df["target"])
    targets = sorted(common)
    lines = [
        "# Every predictor on one common target set (TaskWeb gold)",
        "",
        "Regenerate: `python benchmarks/taskweb12_compare.py` (reads the saved scores of "
        "`taskweb12_eval.py`; see `taskweb12_eval*.md` for how each was computed).",
        "",
        f"Targets ({len(targets)}): {', '.join(targets)}; each scored over the other 11 tasks. "
        f"Left out: {', '.join(sorted(set(tasks) - common)) or 'none'} (not scored by every "
        "predictor: LogME handles classification and regression targets only).",
        "",
    ]
    for setting in ("ALL(avg)", "finetune:roberta"):
        gold = load_taskweb_gold(Path(args.taskweb_dir) / "pairs.csv", setting=setting, tasks=tasks)
        gold = gold[gold["target"].isin(targets)]
        s = scores[scores["target"].isin(targets)].merge(
            gold[["target", "source"]], on=["target", "source"]
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _, summary = evaluate_long(gold, s[["target", "source", "predictor", "score"]])
        summary = summary[COLS].sort_values("spearman", ascending=False)
        lines += [f"## TaskWeb `{setting}`", "", "| predictor | " + " | ".join(COLS) + " |"]
        lines.append("|---|" + "---:|" * len(COLS))
        for name, row in summary.iterrows():
            cells = [f"{row[c]:.3f}" if c != "n_targets" else str(int(row[c])) for c in COLS]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    Path(args.out).write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
