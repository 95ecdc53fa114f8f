"""The pool report: what a user choosing a source task wants to see, on one page.

Sections (each omitted with a sentence saying why when its input is missing, never an error):

1. the ranked sources for the target: predicted score (a learned scorer's predicted gain with
   a 90 % interval from its ensemble ``std``), the measured gain where the gold knows it;
2. a 2-D map of the pool's task embeddings (PCA; UMAP when installed), families coloured, the
   target marked;
3. the transfer-gain heatmaps: the gold gains and, when given, gains measured on this pool
   with their standard deviation over seeds written in each cell;
4. the predictor-vs-gold table (every metric with a 90 % bootstrap interval over targets, the
   random expectation beside) and a predicted-vs-measured scatter.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from taskscout.evaluation.longform import evaluate_long
from taskscout.report import figures
from taskscout.report.html import Report
from taskscout.report.intervals import bootstrap_summary, format_intervals, metric_columns

RANDOM_ROW = "random"
BASELINES = frozenset({RANDOM_ROW, "datasize", "source-prior", "random-draw"})


@dataclass
class PoolReportInputs:
    """Everything the pool report can show; every field but ``title`` may be missing.

    ``ranking``: ``source, score[, std], rank, ...`` for ``target`` by ``predictor``.
    ``gold``: long-form ``target, source, gain[, performance]`` (``gold_description`` says
    what it is). ``measured``: long-form gains measured on this pool, ``target, source, gain``
    and optionally ``gain_std, n_seeds``. ``vectors``: task name -> 1-D embedding (same
    length) of ``vector_description``; ``families``: task -> family. ``scores``: long-form
    ``target, source, predictor, score[, std]`` of the predictors to evaluate against ``gold``
    (``main_predictor`` is the one in the scatter).
    """

    title: str
    subtitle: str | None = None
    target: str | None = None
    predictor: str | None = None
    ranking: pd.DataFrame | None = None
    gold: pd.DataFrame | None = None
    gold_description: str = "gold"
    measured: pd.DataFrame | None = None
    measured_description: str = "measured on this pool"
    vectors: dict[str, np.ndarray] = field(default_factory=dict)
    vector_description: str = "task embeddings"
    families: dict[str, str] = field(default_factory=dict)
    scores: pd.DataFrame | None = None
    main_predictor: str | None = None
    notes: list[str] = field(default_factory=list)


def _ranking_section(rep: Report, inp: PoolReportInputs) -> None:
    rep.heading(f"Ranked sources for {inp.target}" if inp.target else "Ranked sources")
    if inp.ranking is None or inp.ranking.empty:
        rep.note("No ranking: no target was given, or the predictor scored no source.")
        return
    table = inp.ranking.copy()
    if inp.gold is not None and inp.target is not None:
        g = inp.gold[inp.gold["target"] == inp.target].set_index("source")["gain"]
        table["gold"] = table["source"].map(g)
        if table["gold"].isna().all():
            rep.note(
                f"No measured gain is known for target {inp.target} in the {inp.gold_description}"
                "; the ranking shows predictions only."
            )
    else:
        rep.note("No gold was given, so no measured gain is shown beside the predictions.")
    if "std" in table:
        table["90% lo"] = table["score"] - figures.Z90 * table["std"]
        table["90% hi"] = table["score"] + figures.Z90 * table["std"]
        rep.paragraph(
            f"Predictor `{inp.predictor}` predicts the gain in metric points; the interval is "
            "mean ± 1.645 × the standard deviation of its ensemble (90 %, assuming normality)."
        )
    else:
        rep.paragraph(
            f"Predictor `{inp.predictor}` gives a score, not a gain, and no interval: only its "
            "order means something."
        )
    cols = [
        c
        for c in (
            "rank",
            "source",
            "score",
            "std",
            "90% lo",
            "90% hi",
            "gold",
            "num_train",
            "family",
        )
        if c in table
    ]
    rep.table(table[cols].rename(columns={"gold": "measured gain"}), digits=2)
    rep.figure(
        "fig-ranking",
        figures.ranking_bars(
            table, title=f"{inp.predictor} for {inp.target}", score_label=str(inp.predictor)
        ),
        "Predicted score per source (bars; whiskers: 90 % interval where the predictor gives "
        "one) and the measured gain (diamonds) where known.",
    )


def _map_section(rep: Report, inp: PoolReportInputs) -> None:
    rep.heading("Where the target sits among the pool's tasks")
    if len(inp.vectors) < 3:
        rep.note(
            f"No task map: it needs the embeddings of at least 3 tasks, {len(inp.vectors)} given."
        )
        return
    names = sorted(inp.vectors)
    x = np.stack([np.asarray(inp.vectors[n], dtype=float).ravel() for n in names])
    coords, how = figures.map_2d(x)
    fams = [inp.families.get(n) for n in names]
    target = inp.target if inp.target in inp.vectors else None
    if inp.target and target is None:
        rep.note(f"The target {inp.target} has no embedding of this kind, so it is not marked.")
    rep.figure(
        "fig-map",
        figures.task_map(
            coords,
            names,
            fams,
            target,
            title=f"{how} of {inp.vector_description}",
            axis="UMAP" if how == "UMAP" else "PC",
        ),
        f"{how} (2-D) of the {inp.vector_description} of {len(names)} tasks; colour = family, "
        "star = target. Distances in this map are not transfer gains.",
    )


def _heatmap_section(rep: Report, inp: PoolReportInputs) -> None:
    rep.heading("Transfer gains")
    shown = False
    if inp.gold is not None and not inp.gold.empty:
        has_std = "gain_std" in inp.gold
        rep.figure(
            "fig-heatmap-gold",
            figures.gain_heatmap(
                inp.gold,
                title=f"gain: {inp.gold_description}",
                target=inp.target,
                salt="heatmap-gold",
            ),
            f"{inp.gold_description}: gain of each target (row) after training on the source "
            "(column); the target's row is boxed."
            + ("" if has_std else " This gold publishes no per-pair uncertainty."),
        )
        shown = True
    if inp.measured is not None and not inp.measured.empty:
        seeds = ""
        if "n_seeds" in inp.measured:
            lo, hi = int(inp.measured["n_seeds"].min()), int(inp.measured["n_seeds"].max())
            seeds = f" over {lo} seeds" if lo == hi else f" over {lo}-{hi} seeds"
        rep.figure(
            "fig-heatmap-measured",
            figures.gain_heatmap(
                inp.measured,
                title=f"gain: {inp.measured_description}",
                target=inp.target,
                salt="heatmap-measured",
            ),
            f"{inp.measured_description}: mean gain{seeds}; ± = standard deviation over seeds "
            "(a cell without ± has one seed or no spread recorded).",
        )
        shown = True
    if not shown:
        rep.note("No transfer-gain heatmap: neither gold nor measured gains were given.")


def _evaluation_section(rep: Report, inp: PoolReportInputs) -> None:
    rep.heading("Predictors against the gold")
    if inp.gold is None or inp.scores is None or inp.scores.empty:
        rep.note(
            "No predictor-vs-gold table: it needs gold gains and predictor scores for the gold's "
            "targets."
        )
        return
    keys = ["target", "source"]
    scores = inp.scores.merge(inp.gold[keys], on=keys)
    if scores.empty:
        rep.note("No predictor-vs-gold table: no scored pair is in the gold.")
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        per_target, _ = evaluate_long(
            inp.gold.merge(scores[keys].drop_duplicates(), on=keys),
            scores[["target", "source", "predictor", "score"]],
            random_label=RANDOM_ROW
            if RANDOM_ROW not in set(scores["predictor"])
            else "random (expected)",
        )
    for w in caught:
        rep.note(f"evaluation: {w.message}")
    metrics = metric_columns(per_target)
    summary = bootstrap_summary(per_target, metrics)
    rep.paragraph(
        f"{per_target['target'].nunique()} targets of the {inp.gold_description}. Each cell: "
        "mean over targets [90 % bootstrap interval over targets]; ↓ = lower is better; the "
        "last row is the exact expectation over uniformly random rankings. Shaded rows are "
        "baselines. A predictor is better than a baseline only where the intervals say so."
    )
    rep.table(format_intervals(summary, metrics), baseline_rows=BASELINES | {"random (expected)"})
    rep.figure(
        "fig-eval-spearman",
        figures.interval_bars(
            summary,
            metric="spearman",
            title="Spearman (predicted vs gold)",
            baselines=BASELINES | {"random (expected)"},
            salt="eval-spearman",
        ),
        "Mean Spearman correlation per predictor over targets, 90 % bootstrap interval.",
    )
    main = inp.main_predictor or str(scores["predictor"].iloc[0])
    pts = scores[scores["predictor"] == main].merge(inp.gold[[*keys, "gain"]], on=keys)
    if pts.empty:
        rep.note(f"No scatter: predictor {main} scored no gold pair.")
        return
    rep.figure(
        "fig-scatter",
        figures.pred_vs_gold(pts, title=main, score_label=f"{main} score"),
        f"Predicted ({main}) against measured gain for every gold pair; one colour per "
        "target" + (", whiskers: 90 % interval" if "std" in pts else "") + ".",
    )


def pool_report(inp: PoolReportInputs) -> Report:
    """Build the pool report from ``inp`` (see the module docstring for the sections)."""
    rep = Report(inp.title, inp.subtitle)
    for note in inp.notes:
        rep.note(note)
    _ranking_section(rep, inp)
    _map_section(rep, inp)
    _heatmap_section(rep, inp)
    _evaluation_section(rep, inp)
    return rep
