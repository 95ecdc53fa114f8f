"""The TuPaTE study (Zhou et al. 2022) on one pool and one gold.

Sections, every row beside ``random``, ``datasize`` and ``source-prior`` with 90 % bootstrap
intervals over targets:

1. **methods and ensembles**: ``tupate-<m>`` and ``tupate-<m>-delta`` for every method the pool
   has, ``ensemble``/``ensemble-rank`` (and ``-delta``), at the ``best`` checkpoint;
2. **early vs best checkpoint**: the same predictors at ``early``, and the paired difference
   best - early per predictor (Spearman), with its interval and verdict;
3. **in-class vs all-class**: sources restricted to the target's own family (only targets with
   >= 2 in-family sources can be ranked; how many is stated) against all sources on the same
   targets;
4. **limited vs full source data**: every task re-tuned (LoRA, its pool run's recipe) on
   ``limited`` training examples in a temporary copy of the pool, then ``tupate-lora`` and
   ``tupate-lora-delta`` on those embeddings against the pool's own (full) ones. Skipped (with
   the reason in the report) when ``limited`` is None or the data cannot be loaded.
"""

from __future__ import annotations

import time

import pandas as pd

from taskscout.affinity.protocols import similarity_scores
from taskscout.data import load_task
from taskscout.report import Report
from taskscout.report.intervals import paired_difference
from taskscout.store import RunStore
from taskscout.studies.common import (
    BASELINE_ROWS,
    Study,
    StudyInputs,
    baseline_scores,
    evaluate,
    families_of,
    open_study_pool,
    same_recipe,
    show,
    store_copy,
)
from taskscout.tuning.run import tune_into_store
from taskscout.util import make_progress

METHODS = ("lora", "bitfit", "prefix", "prompt")
ENSEMBLES = ("ensemble", "ensemble-rank", "ensemble-delta", "ensemble-rank-delta")


def predictor_names(methods: list[str]) -> list[str]:
    """The study's predictors for the pool's ``methods``: raw and delta TuPaTE per method, then
    the ensembles (which need every method)."""
    names = [n for m in methods for n in (f"tupate-{m}", f"tupate-{m}-delta")]
    if set(METHODS) <= set(methods):
        names += list(ENSEMBLES)
    return names


def _scores_at(inp: StudyInputs, store, checkpoint: str, names: list[str], gold):
    pool = open_study_pool(store, inp.backbone, checkpoint, inp.data_dir)
    scores, skipped = similarity_scores(pool, gold, names, progress=inp.progress)
    scores["predictor"] = scores["predictor"] + f"@{checkpoint}"
    return pool, scores, skipped


def _limited_pool(inp: StudyInputs, store, tasks: list[str], limited: int) -> None:
    """Re-tune LoRA on ``limited`` examples of every task into ``store`` (a copy)."""
    pool = open_study_pool(store, inp.backbone, "best", inp.data_dir)
    configs = {  # every recipe checked before any tuning
        t: same_recipe(pool, t, "lora", max_train=limited, data_dir=inp.data_dir) for t in tasks
    }
    with make_progress(inp.progress, extra=False) as bar:
        job = bar.add_task(f"tuning lora on {limited} examples", total=len(tasks))
        for task in tasks:
            bar.update(job, description=f"tuning lora on {limited} examples: {task}")
            data = load_task(task, data_dir=inp.data_dir, max_train=limited, seed=inp.seed)
            tune_into_store(
                data,
                configs[task],
                pool.store,
                seed=inp.seed,
                device=inp.device,
                threads=inp.threads,
                progress=False,
            )
            bar.update(job, advance=1)


def tupate_study(inp: StudyInputs, *, limited: int | None = 100) -> Study:
    """Run the TuPaTE study (module docstring) on ``inp``; ``limited``: training examples per
    task of the limited-data pool (None: skip that section)."""
    study = Study("tupate")
    rep = Report(
        "TuPaTE study (Zhou et al. 2022)",
        f"pool {inp.store}; gold {inp.gold_description}; "
        + (f"command: {inp.command}" if inp.command else ""),
    )
    study.report = rep
    gold = inp.gold
    with store_copy(inp.store) as store:
        db = RunStore(store, create=False)
        pool_best = open_study_pool(store, inp.backbone, "best", inp.data_dir)
        methods = [m for m in METHODS if m in db.methods(backbone=pool_best.backbone)]
        names = predictor_names(methods)
        rep.paragraph(
            f"{gold['target'].nunique()} targets, {len(gold)} gold pairs; methods in the pool: "
            f"{', '.join(methods)}. Rows: `tupate-<m>` = cosine of TuPaTE vectors (the paper), "
            "`-delta` = cosine of the updates e - e0 (ours), ensembles over the methods. "
            "Baselines: `random` = exact expectation over random rankings, `datasize`, "
            "`source-prior` = a source's mean gain on the other targets (leave-one-target-out)."
            " Cells: mean over targets [90 % bootstrap interval over targets]."
        )
        base, skipped = baseline_scores(pool_best, gold)
        _, best, sk1 = _scores_at(inp, store, "best", names, gold)
        _, early, sk2 = _scores_at(inp, store, "early", names, gold)
        for name, why in {**skipped, **sk1, **sk2}.items():
            rep.note(f"skipped {name}: {why}")

        rep.heading("1. Each method and the ensembles (best checkpoint)")
        _, summ_best, notes = evaluate(gold, pd.concat([best, base]))
        study.tables["methods"] = summ_best
        show(rep, summ_best, fig_id="fig-methods", title="methods, best checkpoint")

        rep.heading("2. Early vs best checkpoint")
        per_all, summ_all, _ = evaluate(gold, pd.concat([early, best, base]))
        study.tables["checkpoints"] = summ_all
        rows = []
        for n in names:
            if f"{n}@best" in set(per_all["predictor"]):
                for metric in ("spearman", "ndcg_rank", "gain@1"):
                    d = paired_difference(per_all, f"{n}@best", f"{n}@early", metric)
                    rows.append({"predictor": n, "metric": metric, **d})
        diff = pd.DataFrame(rows)
        study.tables["best_minus_early"] = diff
        rep.paragraph(
            "Paired difference best - early over the same targets, 90 % bootstrap "
            "interval; `better`/`worse` only where the interval excludes 0."
        )
        rep.table(diff, digits=3)
        early_summ = summ_all[
            summ_all["predictor"].str.endswith("@early") | summ_all["predictor"].isin(BASELINE_ROWS)
        ]
        show(rep, early_summ, fig_id="fig-early", title="methods, early checkpoint")

        rep.heading("3. In-class vs all-class sources")
        fams = families_of(pool_best, sorted(set(gold["target"]) | set(gold["source"])))
        same = gold[
            [
                fams.get(t) is not None and fams.get(t) == fams.get(s)
                for t, s in zip(gold["target"], gold["source"], strict=True)
            ]
        ]
        counts = same.groupby("target").size()
        ok = sorted(counts[counts >= 2].index)
        if not ok:
            rep.note(
                "No target has 2 or more sources of its own family in this gold, so "
                "in-class ranking cannot be evaluated."
            )
        else:
            rep.paragraph(
                f"Families: {', '.join(f'{t}: {fams.get(t)}' for t in sorted(fams))}. Only "
                f"{len(ok)} target(s) have >= 2 in-family sources ({', '.join(ok)}); the "
                "others cannot be ranked in-class and are left out of both rows below."
            )
            in_gold = same[same["target"].isin(ok)]
            all_gold = gold[gold["target"].isin(ok)]
            scores = pd.concat([best, base])
            _, s_in, _ = evaluate(in_gold, scores.merge(in_gold[["target", "source"]]))
            _, s_all, _ = evaluate(all_gold, scores.merge(all_gold[["target", "source"]]))
            s_in["predictor"] = s_in["predictor"] + " [in-class]"
            s_all["predictor"] = s_all["predictor"] + " [all-class]"
            both = pd.concat([s_in, s_all], ignore_index=True)
            study.tables["in_vs_all_class"] = both
            show(rep, both, fig_id="fig-class", title="in-class vs all-class")

        rep.heading("4. Limited vs full source data")
        if limited is None or "lora" not in methods:
            rep.note("Limited-data section skipped: no --limited size given or no LoRA runs.")
        else:
            tasks = sorted(set(gold["target"]) | set(gold["source"]))
            start = time.perf_counter()
            try:
                with store_copy(store) as small:
                    _limited_pool(inp, small, tasks, limited)
                    lim_names = ["tupate-lora", "tupate-lora-delta"]
                    _, lim, _ = _scores_at(inp, small, "best", lim_names, gold)
                lim["predictor"] = lim["predictor"].str.replace("@best", f"@best [{limited} ex]")
                full = best[best["predictor"].isin([f"{n}@best" for n in lim_names])].copy()
                full["predictor"] = full["predictor"] + " [full]"
                _, s_lim, _ = evaluate(gold, pd.concat([lim, full, base]))
                study.tables["limited_vs_full"] = s_lim
                rep.paragraph(
                    f"Every task re-tuned with LoRA on {limited} training examples (its pool "
                    f"run's recipe and precision, seed {inp.seed}) in "
                    f"{time.perf_counter() - start:.0f} s; [full] = the pool's own runs."
                )
                show(rep, s_lim, fig_id="fig-limited", title=f"limited ({limited}) vs full")
            except (FileNotFoundError, ValueError) as exc:
                rep.note(f"Limited-data section skipped: {type(exc).__name__}: {exc}")
        for n in notes:
            rep.note(f"evaluation: {n}")
    return study
