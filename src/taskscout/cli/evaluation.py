"""``taskscout evaluate``: score source-ranking predictors against ground-truth gains."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from taskscout.cli.common import JsonOpt, err, flag, guard, out, table
from taskscout.cli.report import (
    ReportOpt,
    check_report_path,
    evaluation_frames,
    evaluation_report,
)
from taskscout.evaluation.report import (
    evaluate_files,
    metric_header,
    per_target_records,
    summary_records,
    summary_table,
)


def evaluate(
    gold: Annotated[
        Path | None,
        typer.Option(
            "--gold",
            help="Ground truth CSV: long form (target,source,gain[,performance]) or a wide "
            "matrix (source rows x target columns of scores after transfer, plus a "
            "no-transfer row).",
        ),
    ] = None,
    scores: Annotated[
        list[Path] | None,
        typer.Option(
            "--scores",
            help="Predictor scores CSV (target,source[,predictor],score; higher = more "
            "helpful). Repeatable.",
        ),
    ] = None,
    no_transfer_row: Annotated[
        str, typer.Option("--no-transfer-row", help="Name of the no-transfer row of a wide gold.")
    ] = "none",
    taskweb_pairs: Annotated[
        Path | None,
        typer.Option("--taskweb-pairs", help="Use TaskWeb's pairs.csv as the gold instead."),
    ] = None,
    setting: Annotated[
        str, typer.Option("--setting", help="TaskWeb setting, e.g. ALL(avg), finetune:roberta.")
    ] = "ALL(avg)",
    taskweb_gain: Annotated[
        str,
        typer.Option("--taskweb-gain", help="TaskWeb gain: avg_pct_change | combined_score."),
    ] = "avg_pct_change",
    task_list: Annotated[
        str | None,
        typer.Option("--tasks", help="Comma-separated tasks: keep pairs with both among them."),
    ] = None,
    taskweb_predictors: Annotated[
        Path | None,
        typer.Option(
            "--taskweb-predictors",
            help="Add TaskWeb's released predictors (released_predictor_scores.csv) as rows.",
        ),
    ] = None,
    ks: Annotated[str, typer.Option("--ks", help="k of regret@k and gain@k.")] = "1,3",
    per_target: Annotated[
        bool, flag("--per-target", help="Also print one row per (predictor, target).")
    ] = False,
    as_json: JsonOpt = False,
    report: ReportOpt = None,
) -> None:
    """Score source-ranking predictors against ground-truth transfer gains (DESIGN.md section 5):
    rank of the best source, NDCG, correlations, regret@k, gain@k, beside the random baseline."""
    with guard():
        check_report_path(report)
        result = evaluate_files(
            gold,
            scores,
            no_transfer_row=no_transfer_row,
            taskweb_pairs=taskweb_pairs,
            setting=setting,
            taskweb_gain=taskweb_gain,
            tasks=task_list,
            taskweb_predictors=taskweb_predictors,
            ks=ks,
        )
    per_target_df, summary, notes, gold_desc = result
    if report is not None:
        with guard():
            frames = evaluation_frames(
                gold,
                scores,
                no_transfer_row=no_transfer_row,
                taskweb_pairs=taskweb_pairs,
                setting=setting,
                taskweb_gain=taskweb_gain,
                tasks=task_list,
                taskweb_predictors=taskweb_predictors,
            )
            evaluation_report(*frames, gold_description=gold_desc, out=report)
    for note in notes:
        err.print(Text(f"warning: {note}", style="yellow"))
    if as_json:
        payload = {
            "summary": summary_records(summary),
            "per_target": per_target_records(per_target_df),
            "warnings": notes,
        }
        out.print_json(json.dumps(payload))
        return
    n_targets = int(summary["n_targets"].max())
    out.print(
        table(
            summary_table(summary),
            title=f"predictors vs {gold_desc}: mean over {n_targets} targets "
            "(↓ = lower is better; random = expectation over random rankings)",
        )
    )
    if per_target:
        df = per_target_df.rename(columns=metric_header)
        out.print(table(df, title="per (predictor, target)"))


def register(app: typer.Typer) -> None:
    """Add ``evaluate`` to ``app``."""
    app.command()(evaluate)
