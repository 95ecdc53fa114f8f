"""The prompt-transferability study (Feng et al. 2023) on one pool and one gold.

Sections, every row beside ``random``, ``datasize`` and ``source-prior`` with 90 % bootstrap
intervals over targets:

1. **the six prompt-similarity metrics** (``prompt-{mean,token}-{cosine,euclidean,manhattan}``)
   and the **affinity scorer**, both kinds (``light`` over prompt token means, ``backbone`` =
   the paper's transformer over the prompt matrices), leave-one-target-out;
2. **ablations** of M (training pairs per fold) and beta (smooth-L1 threshold), each scorer
   kind;
3. **leave-one-task-type-out** (leave-one-family-out): the learned scorers and the source prior
   never see a task of the held-out family;
4. **low-resource targets**: a target re-tuned (prompt method) on 100 and 500 examples in a
   temporary copy of the pool, then ranked by the prompt metrics and by the affinity scorers
   fitted on every gold pair that does not involve it.

The backbone scorer (``backbone_kind``, on by default) joins every section that fits a scorer:
one member, ``backbone_epochs`` epochs, fixed lr 5e-4 (as in
``benchmarks/results/affinity_taskweb.md``). On a 2-core CPU one leave-one-target-out fold of it
on 110 TaskWeb pairs takes about 8-15 s, so the whole study with the default grid takes tens of
minutes; ``backbone_kind=False`` runs the light scorer alone.
"""

from __future__ import annotations

import time
from dataclasses import replace

import pandas as pd

from taskscout.affinity.data import EmbeddingSet
from taskscout.affinity.ensemble import AffinityConfig, fit_affinity
from taskscout.affinity.protocols import (
    cross_validate,
    similarity_scores,
    source_prior_scores,
)
from taskscout.data import load_task
from taskscout.report import Report
from taskscout.studies.common import (
    SCORE_COLUMNS,
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

PROMPT_METRICS = tuple(
    f"prompt-{form}-{dist}"
    for form in ("mean", "token")
    for dist in ("cosine", "euclidean", "manhattan")
)


BACKBONE_LR = 5e-4


def _light(inp: StudyInputs, ensemble: int, **changes) -> AffinityConfig:
    return replace(
        AffinityConfig(kind="light", method="prompt", ensemble=ensemble, seed=inp.seed), **changes
    )


def _backbone(inp: StudyInputs, epochs: int, **changes) -> AffinityConfig:
    return replace(
        AffinityConfig(
            kind="backbone",
            method="prompt",
            ensemble=1,
            epochs=epochs,
            lr=BACKBONE_LR,
            seed=inp.seed,
        ),
        **changes,
    )


def _scorers(
    inp: StudyInputs, ensemble: int, backbone_epochs: int | None, **changes
) -> list[tuple[str, AffinityConfig]]:
    """(kind, config) of every scorer a section fits: the light one with ``ensemble`` members,
    and the backbone one unless ``backbone_epochs`` is None; ``changes`` apply to both."""
    out = [("light", _light(inp, ensemble, **changes))]
    if backbone_epochs is not None:
        out.append(("backbone", _backbone(inp, backbone_epochs, **changes)))
    return out


def feng_study(
    inp: StudyInputs,
    *,
    checkpoint: str = "early",
    ensemble: int = 3,
    backbone_kind: bool = True,
    backbone_epochs: int = 10,
    m_values: tuple[int | None, ...] = (50, 100, None),
    betas: tuple[float, ...] = (0.5, 1.0, 2.0),
    low_resource: tuple[int, ...] = (100, 500),
    low_targets: tuple[str, ...] | None = None,
) -> Study:
    """Run the Feng study (module docstring). ``ensemble``: members of the light scorer (the
    backbone scorer uses 1 with ``backbone_epochs`` epochs and a fixed lr 5e-4, as in
    ``benchmarks/results/affinity_taskweb.md``; ``backbone_kind=False`` skips it);
    ``m_values`` (None = all pairs) and ``betas``: the ablation grid; ``low_resource``: target
    training sizes; ``low_targets``: the targets re-tuned (default: every gold target)."""
    study = Study("feng")
    rep = Report(
        "Prompt-transferability study (Feng et al. 2023)",
        f"pool {inp.store}; gold {inp.gold_description}; checkpoint {checkpoint}; "
        + (f"command: {inp.command}" if inp.command else ""),
    )
    study.report = rep
    gold = inp.gold
    tasks = sorted(set(gold["target"]) | set(gold["source"]))
    with store_copy(inp.store) as store:
        pool = open_study_pool(store, inp.backbone, checkpoint, inp.data_dir)
        emb = EmbeddingSet.from_pool(pool, "prompt", tasks)
        location = pool.backbone_location()
        base, skipped = baseline_scores(pool, gold)
        sim, sk = similarity_scores(pool, gold, list(PROMPT_METRICS), progress=inp.progress)
        for name, why in {**skipped, **sk}.items():
            rep.note(f"skipped {name}: {why}")
        rep.paragraph(
            f"{gold['target'].nunique()} targets, {len(gold)} gold pairs; prompt matrices "
            f"{tuple(emb.key.shape)} at the {checkpoint} checkpoint. Learned scorers are "
            "evaluated leave-one-target-out (no training pair involves the held-out task). "
            "Baselines: `random` (exact expectation), `datasize`, `source-prior` (a source's "
            "mean gain on the other targets, same folds). Cells: mean over targets [90 % "
            "bootstrap interval over targets]."
        )

        rep.heading("1. Prompt-similarity metrics and the affinity scorer")
        bb_epochs = backbone_epochs if backbone_kind else None
        frames = [sim]
        for kind, cfg in _scorers(inp, ensemble, bb_epochs):
            start = time.perf_counter()
            sc = cross_validate(
                gold,
                emb,
                cfg,
                predictor=f"affinity-{kind}",
                backbone_location=location,
                progress=inp.progress,
            )
            frames.append(sc[SCORE_COLUMNS])
            rep.paragraph(
                f"affinity-{kind}: {cfg.ensemble} member(s), "
                + (f"{cfg.epochs} epochs, lr {cfg.lr:g}, " if kind == "backbone" else "")
                + f"{time.perf_counter() - start:.0f} s for all folds."
            )
        if not backbone_kind:
            rep.note("The backbone scorer was skipped (--no-backbone-scorer).")
        _, summ, notes = evaluate(gold, pd.concat([*frames, base]))
        study.tables["main"] = summ
        show(rep, summ, fig_id="fig-main", title="prompt metrics and affinity scorers")

        rep.heading("2. Ablations: training pairs M and beta")
        grid = [(m, 1.0) for m in m_values] + [(None, b) for b in betas]
        grid = list(dict.fromkeys(grid))  # M=all beta=1 once
        n_kinds = len(_scorers(inp, 1, bb_epochs))
        frames = []
        start = time.perf_counter()
        with make_progress(inp.progress, extra=False) as bar:
            job = bar.add_task("ablations", total=len(grid) * n_kinds)
            for m, beta in grid:
                # one member each: the grid compares settings, not ensembles
                for kind, cfg in _scorers(inp, 1, bb_epochs, beta=beta):
                    label = f"{kind} M={m or 'all'} beta={beta:g}"
                    bar.update(job, description=f"ablation {label}")
                    sc = cross_validate(
                        gold,
                        emb,
                        cfg,
                        pairs=m,
                        predictor=label,
                        backbone_location=location,
                        progress=False,
                    )
                    frames.append(sc[SCORE_COLUMNS])
                    bar.update(job, advance=1)
        _, abl, _ = evaluate(gold, pd.concat([*frames, base]))
        study.tables["ablations"] = abl
        n_train = len(gold) - 2 * (len(tasks) - 1)
        rep.paragraph(
            f"One scorer per setting and kind (1 member, seed {inp.seed}); M = training pairs "
            f"sampled per fold (all = {n_train} with {len(tasks)} tasks); beta = the smooth-L1 "
            f"threshold in z units of the training gains. {len(grid)} settings x "
            f"{n_kinds} kind(s), {time.perf_counter() - start:.0f} s."
        )
        show(rep, abl, fig_id="fig-ablations", title="ablations of M and beta")

        rep.heading("3. Leave-one-task-type-out")
        fams = families_of(pool, tasks)
        missing = [t for t in tasks if t not in fams]
        if missing:
            rep.note(f"Leave-one-family-out skipped: no family known for {missing}.")
        else:
            frames = []
            for kind, cfg in _scorers(inp, ensemble, bb_epochs):
                lofo = cross_validate(
                    gold,
                    emb,
                    cfg,
                    predictor=f"affinity-{kind}",
                    protocol="leave-one-family-out",
                    families=fams,
                    backbone_location=location,
                    progress=inp.progress,
                )
                frames.append(lofo[SCORE_COLUMNS])
            prior = source_prior_scores(gold, protocol="leave-one-family-out", families=fams)
            size = base[base["predictor"] == "datasize"]
            _, lofo_s, _ = evaluate(gold, pd.concat([*frames, sim, prior[SCORE_COLUMNS], size]))
            study.tables["leave_one_family_out"] = lofo_s
            rep.paragraph(
                "Families: "
                + ", ".join(f"{t}: {fams[t]}" for t in tasks)
                + ". Learned rows (the affinity scorers, source-prior) trained without any "
                "task of the held-out target's family; the similarity metrics need "
                "no training and are unchanged."
            )
            show(rep, lofo_s, fig_id="fig-lofo", title="leave-one-family-out")

        rep.heading("4. Low-resource targets")
        _low_resource(
            inp,
            rep,
            study,
            store,
            gold,
            tasks,
            checkpoint,
            _scorers(inp, ensemble, bb_epochs),
            low_resource,
            low_targets,
            pool,
        )
        for n in notes:
            rep.note(f"evaluation: {n}")
    return study


def _low_resource(
    inp, rep, study, store, gold, tasks, checkpoint, scorers, sizes, targets, pool
) -> None:
    if not sizes:
        rep.note("Low-resource section skipped: no sizes given.")
        return
    targets = list(targets) if targets else sorted(set(gold["target"]))
    unknown = [t for t in targets if t not in set(gold["target"])]
    if unknown:
        rep.note(f"Low-resource section skipped: {unknown} are not gold targets.")
        return
    t_gold = gold[gold["target"].isin(targets)]
    frames = []
    start = time.perf_counter()
    try:
        with make_progress(inp.progress, extra=False) as bar:
            job = bar.add_task("low-resource targets", total=len(sizes) * len(targets))
            for n in sizes:
                for target in targets:
                    bar.update(job, description=f"low-resource {target} ({n} ex)")
                    frames.append(_one_low(inp, store, gold, tasks, checkpoint, scorers, n, target))
                    bar.update(job, advance=1)
    except (FileNotFoundError, ValueError) as exc:
        rep.note(f"Low-resource section skipped: {type(exc).__name__}: {exc}")
        return
    summaries = pool.store.task_summaries()
    size = t_gold[["target", "source"]].assign(
        predictor="datasize",
        score=[float((summaries.get(s) or {}).get("num_train") or 0) for s in t_gold["source"]],
    )
    prior = source_prior_scores(gold)
    prior = prior[prior["target"].isin(targets)][SCORE_COLUMNS]
    _, summ, _ = evaluate(t_gold, pd.concat([*frames, prior, size]))
    study.tables["low_resource"] = summ
    rep.paragraph(
        f"Each of {len(targets)} target(s) re-tuned alone with the prompt method on "
        f"{', '.join(map(str, sizes))} training examples (the pool run's recipe and precision, "
        f"seed {inp.seed}) in its own temporary copy of the pool "
        f"({time.perf_counter() - start:.0f} s in all); the sources keep their full-data runs. "
        "The affinity scorers are fitted on every gold pair that does not involve the target "
        "(leave-one-target-out). `[N ex]` = the target's training size."
    )
    show(rep, summ, fig_id="fig-low", title="low-resource targets")


def _one_low(inp, store, gold, tasks, checkpoint, scorers, n, target) -> pd.DataFrame:
    """Scores of the prompt metrics and the affinity ``scorers`` ((kind, config) pairs) for
    ``target`` re-tuned on ``n`` examples (in a copy of ``store``)."""
    t_gold = gold[gold["target"] == target]
    train = gold[(gold["target"] != target) & (gold["source"] != target)]
    with store_copy(store) as small:
        lp = open_study_pool(small, inp.backbone, checkpoint, inp.data_dir)
        config = same_recipe(lp, target, "prompt", max_train=n, data_dir=inp.data_dir)
        data = load_task(target, data_dir=inp.data_dir, max_train=n, seed=inp.seed)
        tune_into_store(
            data,
            config,
            lp.store,
            seed=inp.seed,
            device=inp.device,
            threads=inp.threads,
            progress=False,
        )
        lp = open_study_pool(small, inp.backbone, checkpoint, inp.data_dir)  # fresh caches
        sim, _ = similarity_scores(lp, t_gold, list(PROMPT_METRICS))
        emb = EmbeddingSet.from_pool(lp, "prompt", tasks)
        parts = [sim]
        for kind, cfg in scorers:
            model = fit_affinity(
                train, emb, cfg, backbone_location=lp.backbone_location(), progress=False
            )
            mean, _ = model.predict([target] * len(t_gold), t_gold["source"].tolist(), emb)
            parts.append(
                t_gold[["target", "source"]].assign(predictor=f"affinity-{kind}", score=mean)
            )
    part = pd.concat(parts, ignore_index=True)
    part["predictor"] = part["predictor"] + f" [{n} ex]"
    return part
