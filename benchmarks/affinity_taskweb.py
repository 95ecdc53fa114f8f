"""Learned affinity scorers vs similarity predictors on the 12 TaskWeb-overlap tasks.

    python benchmarks/affinity_taskweb.py --store benchmarks/stores/taskweb12-methods
    python benchmarks/affinity_taskweb.py --store DIR --gold our_gains.csv   # our own matrix

Needs a store with MiniLM ``prompt`` runs (prompt matrices 20 x 384) of the 12 tasks
(boolq cb copa cosmos_qa imdb mrpc qnli rotten_tomatoes rte snli stsb wic). Gold: TaskWeb's
``ALL(avg)`` pairs (gain = 100 x avg_pct_change, :func:`load_taskweb_gold`) by default, or a
long-form / wide gold CSV of our own measurements (``--gold``). The store is only read (run it on
a copy if embeddings have not been computed yet: computing them writes into the store).

Parts, all leave-one-target-out (no training pair involves the held-out task):

1. the full metric table (``evaluate_long``: rank_of_best, ndcg_rank, ndcg_perf, spearman,
   pearson, regret@1/3, gain@1/3, random row) for the backbone scorer (Feng 2023, prompt
   matrices), the light scorer on the prompt token means and on every other method whose
   embeddings cover the 12 tasks, every untrained predictor the store can serve (tupate-*,
   prompt-* metrics, ensemble), and TaskWeb's released predictors on the same pairs;
2. ablations of the ``--ablation-kind`` scorer: training pairs M at 25/50/75/100 % of each
   fold's pairs, and beta in {0.5, 1, 1.5, 2, 2.5}; 3 seeds each (seed = pair sample, head
   initialisation and minibatch order), one scorer per seed (no ensemble), learning rate fixed
   to the one chosen most often in part 1; Spearman, gain@1, gain@3 as mean and std over seeds;
3. times on this CPU: fitting on all 132 pairs (with the learning-rate search and the
   ensemble, and a single fixed-lr fit; plus all 6 layers trainable for the cost comparison),
   ranking 1 target against the 11 other tasks and against 1,000 synthetic pool entries
   (real prompt matrices plus Gaussian noise).

Writes benchmarks/results/affinity_taskweb.{md,json} (or --out-prefix), the command on top.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import statistics
import sys
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pandas as pd
import torch

from taskscout.affinity.data import EmbeddingSet, check_gold
from taskscout.affinity.ensemble import AffinityConfig, fit_affinity
from taskscout.affinity.protocols import cross_validate, similarity_scores, source_prior_scores
from taskscout.evaluation.external import (
    TASKWEB_OVERLAP,
    load_taskweb_gold,
    load_taskweb_predictors,
)
from taskscout.evaluation.files import read_gold_csv
from taskscout.evaluation.longform import evaluate_long
from taskscout.evaluation.report import summary_markdown, summary_records
from taskscout.predictors import Pool
from taskscout.predictors.base import TUPATE_METHODS
from taskscout.util import console, set_torch_threads

REPO = Path(__file__).resolve().parents[1]
TASKWEB = REPO.parent / "shared" / "benchmarks" / "taskweb"
RESULTS = Path(__file__).parent / "results"
SIMILARITY = [
    *(f"tupate-{m}" for m in TUPATE_METHODS),
    *(f"prompt-{a}-{b}" for a in ("mean", "token") for b in ("cosine", "euclidean", "manhattan")),
    "ensemble",
    "ensemble-rank",
]
FRACTIONS = (0.25, 0.5, 0.75, 1.0)
BETAS = (0.5, 1.0, 1.5, 2.0, 2.5)
KS = (1, 3)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--store", required=True, type=Path, help="store with prompt runs")
    p.add_argument("--gold", type=Path, help="our gold CSV (default: TaskWeb ALL(avg))")
    p.add_argument("--taskweb-dir", type=Path, default=TASKWEB)
    p.add_argument("--setting", default="ALL(avg)", help="TaskWeb setting of the gold")
    p.add_argument("--tasks", default=",".join(TASKWEB_OVERLAP))
    p.add_argument("--backbone", default=None, help="default: packaged MiniLM")
    p.add_argument("--checkpoint", default="early")
    p.add_argument("--ensemble", type=int, default=3)
    p.add_argument(
        "--backbone-ensemble",
        type=int,
        default=None,
        help="ensemble of the backbone scorer (default: --ensemble)",
    )
    p.add_argument("--backbone-epochs", type=int, default=None, help="default: the library's")
    p.add_argument(
        "--backbone-lr",
        type=float,
        default=None,
        help="fixed lr of the backbone scorer (default: searched per fold)",
    )
    p.add_argument("--seeds", type=int, default=3, help="ablation seeds")
    p.add_argument("--ablation-kind", default="backbone", choices=["backbone", "light", "none"])
    p.add_argument("--threads", type=int, default=None)
    p.add_argument(
        "--light-methods",
        default=",".join(TUPATE_METHODS),
        help="methods for the light scorer (those covering the tasks)",
    )
    p.add_argument("--out-prefix", type=Path, default=RESULTS / "affinity_taskweb")
    p.add_argument("--quick", action="store_true", help="smoke run: 1 seed, fewer ablation cells")
    return p.parse_args(argv)


def load_gold(args, tasks: list[str]) -> tuple[pd.DataFrame, str]:
    if args.gold is not None:
        gold = read_gold_csv(args.gold)
        keep = gold["target"].isin(tasks) & gold["source"].isin(tasks)
        return gold[keep].reset_index(drop=True), str(args.gold)
    gold = load_taskweb_gold(args.taskweb_dir / "pairs.csv", args.setting, tasks)
    return gold, f"TaskWeb {args.setting} (gain = 100 x avg_pct_change)"


def evaluate(gold: pd.DataFrame, scores: pd.DataFrame):
    cols = ["target", "source", "predictor", "score"]
    return evaluate_long(gold, scores[cols], ks=KS, random_label="random")


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main(argv=None) -> dict:
    args = parse_args(argv)
    threads = set_torch_threads(args.threads)
    command = "python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *(argv or sys.argv[1:])])
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    pool = Pool.open(args.store, args.backbone, checkpoint=args.checkpoint)
    location = pool.backbone_location()
    prompt = EmbeddingSet.from_pool(pool, "prompt", tasks)
    gold, gold_desc = load_gold(args, tasks)
    gold = check_gold(gold, tasks)
    console.print(f"{len(gold)} gold pairs over {len(tasks)} tasks; prompt {prompt.key.shape}")
    seeds = list(range(1 if args.quick else args.seeds))
    report: dict = {
        "command": command,
        "gold": gold_desc,
        "store": str(args.store),
        "backbone": prompt.key.backbone,
        "checkpoint": args.checkpoint,
        "tasks": tasks,
        "n_pairs": len(gold),
        "ensemble": args.ensemble,
        "torch_threads": threads,
        "cpu": platform.processor() or platform.machine(),
    }

    # --- 1. main table --------------------------------------------------------------------
    frames, folds, wall = [], {}, {}
    scorers = [
        ("affinity-backbone", "backbone", prompt),
        ("affinity-light-prompt", "light", prompt),
    ]
    scorers = [
        s for s in scorers if s[0] != "affinity-light-prompt" or "prompt" in args.light_methods
    ]
    for method in [m.strip() for m in args.light_methods.split(",") if m.strip()]:
        if method == "prompt":
            continue
        try:
            emb = EmbeddingSet.from_pool(pool, method, tasks)
        except ValueError as exc:
            console.print(f"[yellow]light scorer on {method}: skipped ({exc})[/yellow]")
            continue
        scorers.append((f"affinity-light-{method}", "light", emb))
    bb_config = AffinityConfig(
        kind="backbone",
        ensemble=args.backbone_ensemble or args.ensemble,
        epochs=args.backbone_epochs,
        lr=args.backbone_lr,
    )
    report["backbone_config"] = bb_config.resolved().to_dict()
    for name, kind, emb in scorers:
        info: list = []
        config = AffinityConfig(kind=kind, method=emb.key.method, ensemble=args.ensemble, seed=0)
        if kind == "backbone":
            config = bb_config
        # tiny MLPs: more threads only add synchronisation (badly so on a busy machine)
        torch.set_num_threads(threads if kind == "backbone" else 1)
        scores, secs = timed(
            lambda config=config, emb=emb, info=info, name=name: cross_validate(
                gold, emb, config, predictor=name, backbone_location=location, fold_info=info
            )
        )
        frames.append(scores)
        folds[name], wall[name] = info, secs
        console.print(f"{name}: leave-one-target-out in {secs:.1f} s")
    frames.append(source_prior_scores(gold))  # "some sources help most targets", no embeddings
    sim, skipped = similarity_scores(pool, gold, SIMILARITY)
    frames.append(sim)
    released_note = None
    released_file = args.taskweb_dir / "released_predictor_scores.csv"
    if released_file.is_file():
        released = load_taskweb_predictors(released_file, tasks)
        released = released.merge(gold[["target", "source"]], on=["target", "source"])
        released["predictor"] = "taskweb:" + released["predictor"]
        complete = [p for p, g in released.groupby("predictor") if len(g) == len(gold)]
        released_note = (
            f"TaskWeb released predictors covering all {len(gold)} pairs: {complete}; "
            f"left out (incomplete on these pairs): "
            f"{sorted(set(released['predictor']) - set(complete))}"
        )
        frames.append(released[released["predictor"].isin(complete)])
    scores = pd.concat(frames, ignore_index=True)
    per_target, summary = evaluate(gold, scores)
    report["main"] = {
        "summary": summary_records(summary),
        "skipped_predictors": skipped,
        "released_note": released_note,
        "folds": folds,
        "loto_wall_s": wall,
    }
    sim_rows = summary.drop(
        index=[i for i in summary.index if not str(i).startswith(("tupate", "prompt", "ensemble"))]
    )
    best_sim = str(sim_rows["spearman"].idxmax()) if len(sim_rows) else None
    report["main"]["best_similarity_by_spearman"] = best_sim
    md = [
        "# Learned affinity scorers on the 12 TaskWeb-overlap tasks",
        "",
        f"Command: `{command}`",
        "",
        f"Gold: {gold_desc}; {len(gold)} pairs; store `{args.store}`, backbone "
        f"`{prompt.key.backbone}`, checkpoint `{args.checkpoint}`, prompt matrices "
        f"{tuple(prompt.key.shape)}. Learned scorers: leave-one-target-out (no training pair "
        f"involves the held-out task as target or source), ensemble of {args.ensemble}, "
        "learning rate searched per fold on held-out training targets (unless fixed, see the "
        f"backbone settings below). torch threads: {threads} for the backbone scorer, 1 for the "
        "light scorer's MLP.",
        "",
        "## Leave-one-target-out, all metrics",
        "",
        summary_markdown(summary, digits=3),
        f"Best untrained similarity predictor by Spearman: `{best_sim}`. `source-prior`: the "
        "mean training gain of each source in the same leave-one-target-out folds (no "
        "embeddings) -- what a scorer gets from knowing which sources help most targets.",
        "",
    ]
    if skipped:
        md += [
            "Skipped (the store cannot serve them): "
            + "; ".join(f"`{k}`" for k in sorted(skipped)),
            "",
        ]
    if released_note:
        md += [released_note, ""]
    lr_used = {name: dict(Counter(f["lr"] for f in info)) for name, info in folds.items()}
    md += ["Learning rates chosen per fold: " + json.dumps(lr_used), ""]

    # --- 2. ablations ---------------------------------------------------------------------
    if args.ablation_kind != "none":
        kind = args.ablation_kind
        name = "affinity-backbone" if kind == "backbone" else "affinity-light-prompt"
        lr = Counter(f["lr"] for f in folds[name]).most_common(1)[0][0]
        base = AffinityConfig(kind=kind, method="prompt", ensemble=1, lr=lr)
        if kind == "backbone":
            base = replace(bb_config, ensemble=1, lr=lr)
        fractions = (0.25, 1.0) if args.quick else FRACTIONS
        betas = (1.0, 2.0) if args.quick else BETAS
        cells = [("pairs", f, 1.0) for f in fractions] + [("beta", 1.0, b) for b in betas]
        rows = []
        start = time.perf_counter()
        torch.set_num_threads(threads if kind == "backbone" else 1)
        for what, frac, beta in cells:
            per_seed = []
            for seed in seeds:
                cfg = replace(base, beta=beta, seed=seed)
                sc = cross_validate(
                    gold,
                    prompt,
                    cfg,
                    pairs=frac,
                    predictor="affinity",
                    backbone_location=location,
                    progress=False,
                )
                _, summ = evaluate(gold, sc)
                per_seed.append(
                    {k: float(summ.loc["affinity", k]) for k in ("spearman", "gain@1", "gain@3")}
                )
            row = {"ablation": what, "pairs_fraction": frac, "beta": beta}
            for k in ("spearman", "gain@1", "gain@3"):
                vals = [r[k] for r in per_seed]
                row[k] = statistics.mean(vals)
                row[f"{k}_std"] = statistics.stdev(vals) if len(vals) > 1 else float("nan")
                row[f"{k}_seeds"] = vals
            rows.append(row)
            console.print(f"ablation {what} frac={frac} beta={beta}: {row['spearman']:.3f}")
        report["ablations"] = {
            "kind": kind,
            "lr": lr,
            "seeds": seeds,
            "rows": rows,
            "wall_s": time.perf_counter() - start,
        }
        md += [
            f"## Ablations ({kind} scorer, lr {lr:g}, one scorer per seed, seeds {seeds})",
            "",
            "M = fraction of each fold's training pairs (100 % = 110 pairs with 12 tasks); "
            "mean ± std over seeds; random: "
            f"spearman {summary.loc['random', 'spearman']:.3f}, gain@1 "
            f"{summary.loc['random', 'gain@1']:.3f}, gain@3 {summary.loc['random', 'gain@3']:.3f}.",
            "",
            "| ablation | M | beta | spearman | gain@1 | gain@3 |",
            "|---|---|---|---|---|---|",
        ]
        for r in rows:
            cells_ = [f"{r[k]:.3f} ± {r[k + '_std']:.3f}" for k in ("spearman", "gain@1", "gain@3")]
            md.append(
                f"| {r['ablation']} | {int(r['pairs_fraction'] * 100)} % | {r['beta']:g} | "
                + " | ".join(cells_)
                + " |"
            )
        md.append("")

    # --- 3. times ---------------------------------------------------------------------------
    times = {}
    vectors = prompt.as_vectors()
    target = tasks[0]
    others = [t for t in tasks if t != target]
    g = torch.Generator().manual_seed(0)
    base_t = [prompt.tensors[t] for t in tasks]
    synth = {target: prompt.tensors[target]}
    for i in range(1000):
        p = base_t[i % len(base_t)]
        synth[f"synthetic{i:04d}"] = p + 0.1 * p.std() * torch.randn(p.shape, generator=g)
    synth_set = EmbeddingSet.from_tensors(
        synth, backbone=prompt.key.backbone, method="prompt", checkpoint=prompt.checkpoint
    )
    synth_names = [n for n in synth if n != target]
    for kind in ("backbone", "light"):
        cfg = bb_config if kind == "backbone" else AffinityConfig(kind=kind, ensemble=args.ensemble)
        torch.set_num_threads(threads if kind == "backbone" else 1)
        model, fit_s = timed(
            lambda cfg=cfg: fit_affinity(
                gold, prompt, cfg, backbone_location=location, progress=False
            )
        )
        single, single_s = timed(
            lambda cfg=cfg, lr=model.info.lr: fit_affinity(
                gold,
                prompt,
                replace(cfg, ensemble=1, lr=lr),
                backbone_location=location,
                progress=False,
            )
        )
        model.rank(target, others, prompt)  # warm-up
        _, r12 = timed(lambda model=model: model.rank(target, others, prompt))
        _, r1000 = timed(lambda model=model: model.rank(target, synth_names, synth_set))
        times[kind] = {
            "fit_132_pairs_lr_search_ensemble_s": fit_s,
            "fit_132_pairs_single_fixed_lr_s": single_s,
            "rank_1_vs_11_s": r12,
            "rank_1_vs_1000_s": r1000,
            "lr": model.info.lr,
        }
    # cost per training step (batch 16 x 40 tokens) by trainable layers: the train_layers choice
    from taskscout.affinity.scorer import BackboneHead
    from taskscout.affinity.train import TrainSettings, fit_head
    from taskscout.backbone import load_backbone

    torch.set_num_threads(threads)
    _, _, encoder = load_backbone(location)
    n_layers = encoder.config.num_hidden_layers
    feats = torch.randn(16 * 5, 2 * prompt.key.shape[0], prompt.key.shape[1])
    step_s = {}
    for tl in sorted({1, 2, n_layers}):
        head = BackboneHead(encoder, tl, 0)
        _, secs = timed(
            lambda head=head: fit_head(
                head, feats, torch.randn(len(feats)), TrainSettings(lr=1e-4, epochs=1)
            )
        )
        step_s[tl] = secs / 5
    times["backbone"]["step_s_by_trainable_layers"] = step_s
    steps = -(-len(gold) // (bb_config.resolved().batch_size)) * bb_config.resolved().epochs
    full_s = step_s[n_layers] * steps
    times["backbone"]["fit_132_pairs_single_all_layers_estimated_s"] = full_s
    report["times"] = times
    md += [
        f"## Times on this CPU ({threads} torch threads)",
        "",
        f"Fit on all {len(gold)} pairs; rank 1 target ({target}) against the other "
        f"{len(others)} tasks and against 1,000 synthetic pool entries. Backbone scorer: "
        f"{bb_config.train_layers} trainable top layer(s), frozen bottom cached. 'fit' uses "
        "the settings of the table above (backbone: see its settings below; light: lr search "
        "+ ensemble).",
        "",
        "| scorer | fit s | fit (1 scorer, fixed lr) s | rank vs 11 s | rank vs 1,000 s |",
        "|---|---|---|---|---|",
    ]
    for kind, t in times.items():
        md.append(
            f"| {kind} | {t['fit_132_pairs_lr_search_ensemble_s']:.1f} | "
            f"{t['fit_132_pairs_single_fixed_lr_s']:.1f} | {t['rank_1_vs_11_s']:.3f} | "
            f"{t['rank_1_vs_1000_s']:.3f} |"
        )
    md += [
        "",
        "Backbone scorer, seconds per training step (16 pairs x 40 tokens) by trainable top "
        f"layers: {json.dumps({k: round(v, 3) for k, v in step_s.items()})}; one scorer with "
        f"all {n_layers} layers trainable would take ~{full_s:.0f} s for {steps} steps "
        "(estimated from the step time).",
        "",
        f"Backbone scorer settings: {json.dumps(report['backbone_config'])}.",
        "",
    ]
    args.out_prefix.parent.mkdir(parents=True, exist_ok=True)
    args.out_prefix.with_suffix(".md").write_text("\n".join(md) + "\n", encoding="utf-8")
    args.out_prefix.with_suffix(".json").write_text(
        json.dumps(report, indent=2, default=float) + "\n", encoding="utf-8"
    )
    print(json.dumps({"summary": report["main"]["summary"], "times": times}, default=float))
    del vectors
    return report


if __name__ == "__main__":
    main()
