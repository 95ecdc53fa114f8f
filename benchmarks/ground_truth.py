"""Is our measured transfer signal? The GPU campaign's per-seed gains as ground truth.

    PYTHONPATH=src python benchmarks/ground_truth.py            # + --affinity light,backbone

Inputs (only read; every store is copied to a temporary folder first):

* the campaign's SQLite stores ``benchmarks/results/gpu_2026-11-30/lease{1,2}/{lora,full}.sqlite``
  (MiniLM, 500 training examples per task, dev capped at 1000, min_steps 180, the method's
  default lr, source = best dev epoch, score = target dev score at its best epoch, seeds
  paired with the no-transfer baseline);
* optionally ``--extra-store LABEL=PATH`` (repeatable): another store of the same protocol, e.g.
  a campaign part measured on a CPU (``benchmarks/campaign_cost.py`` says what that costs); its
  transfers join as lease LABEL. A target whose widest set of sources is held by >= 2
  replicates (and includes every other replicate's sources) uses only those replicates; its
  rows in narrower replicates (say, 2 sources a GPU lease measured) are set aside and counted
  (``set_aside_partial_replicates`` in the JSON), never averaged in;
* TaskWeb's ``pairs.csv`` (gold ``ALL(avg)``, gain = 100 x avg_pct_change);
* the old prompt-tuning matrix ``results/transfer_matrix_prompt_seeds.csv`` (for comparison);
* for the predictors: the committed pool ``benchmarks/stores/taskweb12-methods`` and the
  committed LogME / textemb scores of ``taskweb12_eval.py`` (as ``default_predictor.py``).

Parts:

1. ``results/transfer_campaign_seeds.csv``: one row per measured transfer (``taskscout gains
   --per-seed`` columns + ``lease`` + ``measured_in`` + the run ids). Lease 2 re-trained the
   same runs (same deterministic run ids: same config, seed, data) and got bit-identical dev
   scores for every run and transfer both leases hold (checked here: a differing score
   stops the script). Such a re-measurement is no new replicate -- counting it as one would
   fake a seed-to-seed agreement of 1 -- so it is kept once, ``lease`` = the first lease that
   measured it, ``measured_in`` = ``1+2``. The replicate id of a row is (lease of its baseline
   run, seed); rows against different baseline runs would never be averaged within a seed.
2. Per method and target: mean gain per source, SE over replicates, 90 % t interval; the share
   of pairs with |mean gain| > 2 SE; the seed-to-seed Spearman of the sources' gains (mean over
   pairs of replicates; only targets with every source measured in every replicate); the
   Spearman of the mean gains with TaskWeb ``ALL(avg)`` (sources in both). The same three
   figures for the old prompt matrix (all its targets, and only the campaign's targets), and
   the issue's goals (seed-to-seed >= 0.5, >= 40 % of pairs |gain| > 2 SE, TaskWeb >= 0.3).
   Where a method has an unfinished target, the goals also over the part measured so far:
   each target with >= 2 replicates, on the sources measured in every replicate (>= 3).
3. Adaptive seeds replayed on the measured per-seed gains with the library's racing rule
   (:func:`taskscout.transfer.adaptive.race`; its ``measure`` looks the runs up instead of
   training), seeds 0, 1, 2, start 2 and 3 seeds.
4. Predictors evaluated against the complete lora targets' mean gains (``evaluate_long``,
   per target and mean): random (exact expectation), datasize, source prior from these gains
   (LOTO), source prior from TaskWeb (LOTO), LogME, tupate-lora-delta, the ``gain-model``
   refitted on TaskWeb without the held-out target (``loto_predictions``, as
   ``default_predictor.py``), optionally the affinity scorers (``--affinity``) fitted
   leave-one-target-out on these gains. The same scores also against ``full``'s mean gains
   on the targets it measured with 3 seeds (the sources in every seed) that are complete
   lora targets.

Writes ``results/ground_truth.json`` / ``.md``, the predictors' scores ``_scores.csv`` and the
CSV of part 1; prints one JSON line.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import shlex
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from taskscout.affinity.data import EmbeddingSet
from taskscout.affinity.ensemble import AffinityConfig
from taskscout.affinity.protocols import cross_validate
from taskscout.backbone import resolve_backbone
from taskscout.evaluation.external import TASKWEB_OVERLAP, load_taskweb_gold
from taskscout.evaluation.longform import evaluate_long
from taskscout.evaluation.metrics import spearman
from taskscout.predictors import Pool
from taskscout.predictors.features import compute_features, source_prior
from taskscout.predictors.gain_model import loto_predictions
from taskscout.report.intervals import bootstrap_summary
from taskscout.store import RunStore, backup_copy
from taskscout.transfer.adaptive import design_cost, race
from taskscout.transfer.gains import (
    pair_statistics,
    per_seed_export,
    per_seed_gains,
    reliability_by_target,
    separation,
)
from taskscout.util import set_torch_threads

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
RESULTS = Path(__file__).parent / "results"
CAMPAIGN = RESULTS / "gpu_2026-11-30"
LEASES = (1, 2)
METHODS = ("lora", "full")
GOALS = {"seed_to_seed": 0.5, "share_over_2se": 0.4, "taskweb_spearman": 0.3}
RANDOM = "random (expected)"
EXPORT = "transfer_campaign_seeds.csv"


# ---------------------------------------------------------------- part 1: the per-seed table
def store_sources(campaign: Path, extra: list[str]) -> list[tuple[str, str, Path]]:
    """(lease label, method, SQLite file) of every store to read: the GPU leases' files under
    ``campaign`` that exist, then each ``--extra-store LABEL=PATH`` (a store folder or its
    ``store.sqlite``; every method it holds) -- e.g. a campaign part measured on a CPU."""
    out = [
        (str(lease), method, campaign / f"lease{lease}" / f"{method}.sqlite")
        for lease, method in itertools.product(LEASES, METHODS)
    ]
    out = [o for o in out if o[2].is_file()]
    for spec in extra:
        label, sep, path = spec.partition("=")
        if not sep or not label or label in {str(x) for x in LEASES}:
            raise SystemExit(f"--extra-store {spec!r}: expected LABEL=PATH with a new label")
        f = Path(path) / "store.sqlite" if Path(path).is_dir() else Path(path)
        if not f.is_file():
            raise SystemExit(f"--extra-store {spec!r}: no store at {path}")
        out += [(label, method, f) for method in METHODS]
    return out


def campaign_rows(campaign: Path, extra: list[str] = ()) -> tuple[pd.DataFrame, dict]:
    """Every measured transfer of the campaign's stores, deduplicated (module docstring), and
    the reproduction check: per method, the tune runs both leases hold and how many have
    identical dev scores."""
    frames, dev = [], {}
    with tempfile.TemporaryDirectory(prefix="ground-truth-") as tmp:
        for lease, method, src in store_sources(campaign, list(extra)):
            work = Path(tmp) / f"lease{lease}-{method}"
            work.mkdir()
            backup_copy(src, work / "store.sqlite")  # with its WAL, if a store is live
            db = RunStore(work, create=False)
            seeds, warns = per_seed_gains(db, method=method)
            dev[(lease, method)] = {r.run_id: list(r.dev_scores)
                                    for r in db.find_runs(method=method, status=None)}  # fmt: skip
            db.close()
            for w in warns:
                print(f"warning: lease {lease} {method}: {w}", file=sys.stderr)
            if seeds.empty:
                continue
            if seeds["settings_hash"].nunique() > 1:
                raise SystemExit(f"{src}: transfers of several settings; expected one protocol")
            ids = seeds[["target", "source", "seed", "source_run_id", "baseline_run_id"]]
            out = per_seed_export(seeds).merge(ids, on=["target", "source", "seed"])
            out["lease"] = lease
            frames.append(out)
    if not frames:
        raise SystemExit(f"no transfers in the stores under {campaign}")
    rows = pd.concat(frames, ignore_index=True)
    key = ["method", "target", "source", "seed", "source_run_id", "baseline_run_id"]
    same = rows.duplicated(key, keep=False)
    dup = rows[same].groupby(key)[["score", "baseline_score"]].nunique()
    if (dup > 1).any().any():
        raise SystemExit("one transfer (same run ids) has different scores in two stores")
    leases = rows.groupby(key)["lease"].agg(lambda x: "+".join(map(str, sorted(x))))
    rows = rows.sort_values([*key, "lease"], kind="stable").drop_duplicates(key, keep="first")
    rows = rows.merge(leases.rename("measured_in").reset_index(), on=key)
    base_lease = rows.groupby("baseline_run_id")["lease"].min()
    rows["replicate"] = [
        f"L{base_lease[b]}s{s}" for b, s in zip(rows["baseline_run_id"], rows["seed"], strict=True)
    ]
    clash = rows.duplicated(["method", "target", "source", "replicate"])
    if clash.any():
        raise SystemExit(f"{int(clash.sum())} transfers measured twice against one baseline run")
    cols = ["target", "source", "method", "seed", "score", "baseline_score", "gain", "max_dev",
            "dev_examples", "lease", "measured_in", "replicate", "source_run_id",
            "baseline_run_id"]  # fmt: skip
    repro = {}
    for method in METHODS:
        a, b = dev.get(("1", method), {}), dev.get(("2", method), {})
        both = sorted(set(a) & set(b))
        repro[method] = {
            "tune_runs_in_both_leases": len(both),
            "tune_runs_identical_dev_scores": sum(a[r] == b[r] for r in both),
            "transfers_in_both_leases": int(
                ((rows["method"] == method) & (rows["measured_in"] == "1+2")).sum()
            ),
        }
    rows = rows.sort_values(["method", "target", "source", "replicate"])[cols]
    return rows.reset_index(drop=True), repro


def complete_replicates(rows: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """Per (method, target): when >= 2 replicates share the widest set of sources and that set
    holds every other replicate's sources, only those replicates are kept; the rows of the
    narrower replicates -- e.g. two sources a GPU lease measured before a CPU part measured the
    target with all of them -- are set aside and counted, never averaged in (the two parts ran
    at different precisions). A narrower replicate of a lease that also holds a widest one
    is kept: that is the same part still under way (e.g. its last seed lacks a source).
    Returns (rows kept, {method/target: rows set aside})."""
    keep, aside = [], {}
    for (method, target), grp in rows.groupby(["method", "target"], sort=False):
        have = grp.groupby("replicate")["source"].agg(frozenset)
        widest = max(have, key=len)
        full = [r for r, srcs in have.items() if srcs == widest]
        nested = all(srcs <= widest for srcs in have)
        lease = grp.groupby("replicate")["lease"].first()
        wide_leases = set(lease[full])
        same_part = [r for r in have.index if r not in full and lease[r] in wide_leases]
        full += same_part
        if 2 <= len(full) < len(have) and nested:
            part = grp["replicate"].isin(full)
            aside[f"{method}/{target}"] = int((~part).sum())
            grp = grp[part]
        keep.append(grp)
    return pd.concat(keep).sort_index(), aside


# ---------------------------------------------------------------- part 2: is it signal?
def _rep_index(frame: pd.DataFrame) -> pd.DataFrame:
    """``seed`` := an integer per replicate id (what the library's paired functions key on)."""
    reps = sorted(set(frame["replicate"]))
    return frame.assign(seed=frame["replicate"].map({r: i for i, r in enumerate(reps)}))


def signal(frame: pd.DataFrame, taskweb: pd.DataFrame, all_sources: dict[str, list[str]]) -> dict:
    """The three figures for one gains frame (``target, source, replicate, gain``), per target
    and over targets. ``all_sources``: target -> the sources a complete target has."""
    pairs = pair_statistics(_rep_index(frame))
    per_target, s2s, tw, tw_any, wides = {}, [], [], [], []
    for t, grp in frame.groupby("target", sort=True):
        wide = grp.pivot(index="source", columns="replicate", values="gain")
        full = wide.dropna()
        reps = list(wide.columns)
        complete = len(reps) >= 2 and sorted(full.index) == sorted(all_sources[t])
        rhos = [spearman(full[a].to_numpy(), full[b].to_numpy())
                for a, b in itertools.combinations(reps, 2)]  # fmt: skip
        rho = float(np.nanmean(rhos)) if complete and np.isfinite(rhos).any() else math.nan
        # the same over the sources measured in every replicate, complete or not (>= 3)
        rho_common = (float(np.nanmean(rhos)) if len(reps) >= 2 and len(full) >= 3
                      and np.isfinite(rhos).any() else math.nan)  # fmt: skip
        p = pairs[pairs["target"] == t].set_index("source")
        multi = p[p["n_seeds"] >= 2]
        over = (multi["gain"].abs() > 2 * multi["gain_se"]).to_numpy()
        gold = taskweb[taskweb["target"] == t].set_index("source")["gain"]
        both = sorted(set(p.index) & set(gold.index))
        rho_tw = (spearman(p.loc[both, "gain"].to_numpy(), gold.loc[both].to_numpy())
                  if len(both) >= 3 else math.nan)  # fmt: skip
        per_target[t] = {
            "sources": len(p),
            "replicates": len(reps),
            "complete": bool(complete),
            "pairs_with_se": len(multi),
            "share_over_2se": float(over.mean()) if len(multi) else math.nan,
            "seed_to_seed": rho,
            "seed_to_seed_in_every_replicate": rho_common,
            "sources_in_every_replicate": len(full),
            "seed_to_seed_per_pair": [float(r) for r in rhos] if complete else [],
            "taskweb_spearman": rho_tw,
            "taskweb_sources": len(both),
        }
        if complete:
            wides.append(full.to_numpy())
            s2s.append(rho)
            tw.append(rho_tw)
        tw_any.append(rho_tw)
    multi = pairs[pairs["n_seeds"] >= 2]
    over_all = multi["gain"].abs() > 2 * multi["gain_se"]
    complete_targets = [t for t, v in per_target.items() if v["complete"]]
    comp = multi[multi["target"].isin(complete_targets)]
    return {
        "per_target": per_target,
        "complete_targets": complete_targets,
        "seed_to_seed": float(np.nanmean(s2s)) if np.isfinite(s2s).any() else math.nan,
        "seed_to_seed_targets": int(np.isfinite(s2s).sum()),
        "seed_to_seed_perm_p": permutation_p(wides, float(np.nanmean(s2s)) if s2s else math.nan),
        "share_over_2se": float(over_all.mean()) if len(multi) else math.nan,
        "share_over_2se_pairs": len(multi),
        # what pure noise gives: P(|t_{n-1}| > 2) per pair (normal per-seed gains, mean 0)
        "share_over_2se_null": float(np.mean(2 * stats.t.sf(2.0, multi["n_seeds"] - 1)))
        if len(multi)
        else math.nan,
        "share_over_2se_complete": float((comp["gain"].abs() > 2 * comp["gain_se"]).mean())
        if len(comp)
        else math.nan,
        "taskweb_spearman": float(np.nanmean(tw)) if np.isfinite(tw).any() else math.nan,
        "taskweb_spearman_targets": int(np.isfinite(tw).sum()),
        "taskweb_spearman_any": float(np.nanmean(tw_any))
        if np.isfinite(tw_any).any()
        else math.nan,
        "taskweb_spearman_any_targets": int(np.isfinite(tw_any).sum()),
        "pairs": pairs,
    }


def permutation_p(wides: list[np.ndarray], observed: float, n: int = 2000, seed: int = 0):
    """One-sided permutation p-value of the mean seed-to-seed Spearman: each replicate's
    column of each target (sources x replicates) shuffled independently, ``n`` draws."""
    if not wides or not math.isfinite(observed):
        return math.nan
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(n):
        rhos = []
        for w in wides:
            cols = [rng.permutation(w[:, j]) for j in range(w.shape[1])]
            rhos += [spearman(a, b) for a, b in itertools.combinations(cols, 2)]
        hits += float(np.nanmean(rhos)) >= observed
    return (hits + 1) / (n + 1)


def in_every_replicate(frame: pd.DataFrame, min_sources: int = 3) -> dict[str, list[str]]:
    """Per target with >= 2 replicates: the sources measured in every one of them, kept when
    there are at least ``min_sources`` (a Spearman over fewer says nothing). What the goals can
    rest on while a target's campaign is still under way (e.g. one source not yet measured)."""
    out = {}
    for t, grp in frame.groupby("target", sort=True):
        wide = grp.pivot(index="source", columns="replicate", values="gain")
        common = sorted(wide.dropna().index)
        if wide.shape[1] >= 2 and len(common) >= min_sources:
            out[t] = common
    return out


def on_pairs(frame: pd.DataFrame, sources: dict[str, list[str]]) -> pd.DataFrame:
    """The rows of ``frame`` whose (target, source) is in ``sources`` (target -> sources)."""
    want = [(t, s) for t, srcs in sources.items() for s in srcs]
    return frame[frame.set_index(["target", "source"]).index.isin(want)]


def gold_of(pairs: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    """``target, source, gain, performance``: the pairs' mean gains and the mean transferred
    score (``performance``) of the per-seed ``rows``."""
    perf = rows.groupby(["target", "source"])["score"].mean().rename("performance")
    return pairs.merge(perf.reset_index(), on=["target", "source"])[
        ["target", "source", "gain", "performance"]
    ]


def goals(sig: dict) -> dict:
    """Each issue goal: value, the number of targets (or pairs) it rests on, met or not."""
    out = {}
    for key, thr in GOALS.items():
        v = sig[key]
        n = sig["share_over_2se_pairs"] if key == "share_over_2se" else sig[f"{key}_targets"]
        unit = "pairs" if key == "share_over_2se" else "targets"
        out[key] = {"value": v, "goal": thr, unit: n,
                    "met": None if not math.isfinite(v) else bool(v >= thr)}  # fmt: skip
    out["share_over_2se"]["null"] = sig["share_over_2se_null"]
    out["seed_to_seed"]["permutation_p"] = sig["seed_to_seed_perm_p"]
    return out


# ---------------------------------------------------------------- part 3: adaptive replay
def replay(frame: pd.DataFrame, targets: list[str], start: int) -> dict:
    """``race`` on the measured per-seed gains of ``targets`` (seeds 0, 1, 2); the decision
    compared with :func:`separation` on all 3 seeds."""
    seeds = sorted(set(frame["seed"]))
    frame = frame[frame["target"].isin(targets)]
    pairs = {t: sorted(frame.loc[frame["target"] == t, "source"].unique()) for t in targets}

    def measure(requests):
        want = pd.DataFrame(requests, columns=["target", "source", "seed"])
        return frame.merge(want, on=["target", "source", "seed"])[
            ["target", "source", "seed", "gain"]
        ]

    result = race(pairs, measure, seeds=seeds, start_seeds=start)
    out = {"start_seeds": start, "seeds": seeds, "rounds": result.rounds,
           "runs": result.runs, "fixed_3_seeds": result.fixed_max, "targets": {}}  # fmt: skip
    for t in targets:
        o = result.outcomes[t]
        fixed = separation(frame[frame["target"] == t][["source", "seed", "gain"]])
        fixed_cont = [str(s) for s in fixed.loc[fixed["tied_best"], "source"]]
        design = {(t, s): n for s, n in o.seeds.items()}
        out["targets"][t] = {
            "best": o.best,
            "contenders": o.contenders,
            "reason": o.reason,
            "transfers_used": int(sum(o.seeds.values())),
            "transfers_fixed": 3 * len(o.seeds),
            "runs_used": design_cost(design, seeds)["total"],
            "runs_fixed": design_cost({k: 3 for k in design}, seeds)["total"],
            "fixed_best": str(fixed["source"].iloc[0]),
            "fixed_contenders": fixed_cont,
            "same_decision": o.best == str(fixed["source"].iloc[0])
            and sorted(o.contenders) == sorted(fixed_cont),
            "eliminated_at_3_seeds": len(o.seeds) - len(fixed_cont),
        }
    return out


# ---------------------------------------------------------------- part 4: predictors
def csv_feature(path: Path, predictor: str) -> dict[str, dict[str, float]]:
    df = pd.read_csv(path)
    df = df[df["predictor"] == predictor]
    if df.empty:
        raise SystemExit(f"{path} has no rows of predictor {predictor!r}")
    out: dict[str, dict[str, float]] = {}
    for row in df.itertuples():
        out.setdefault(row.target, {})[row.source] = float(row.score)
    return out


def predictor_scores(args, gold: pd.DataFrame, targets: list[str], tw_gold: pd.DataFrame):
    """Long-form scores (``target, source, predictor, score``) of every predictor on the
    complete targets' gold pairs, and notes (what could not be scored and why)."""
    tasks = list(TASKWEB_OVERLAP)
    notes = {}
    pre = {"logme": csv_feature(Path(args.logme_csv), "logme@early"),
           "textemb": csv_feature(Path(args.textemb_csv), "textemb")}  # fmt: skip
    tw_rows = [tuple(r) for r in tw_gold[["target", "source", "gain"]].itertuples(index=False)]
    with tempfile.TemporaryDirectory(prefix="ground-truth-pool-") as tmp:
        work = Path(tmp) / "store"
        shutil.copytree(args.pool, work, ignore=shutil.ignore_patterns("*.sqlite-shm"))
        db = RunStore(work, create=False)
        backbone_id = resolve_backbone(None).backbone_id
        pool = Pool(db, backbone_id, checkpoint="early", data_dir=args.data_dir)
        raw = {}
        for t in tasks:
            skip = [f for f in pre if t not in pre[f]]
            raw[t] = compute_features(
                t, [s for s in tasks if s != t], pool, skip=["source_prior", *skip],
                precomputed={f: v[t] for f, v in pre.items() if t in v},
            )  # fmt: skip
            for f in skip:
                raw[t].reasons[f] = "not scored for this target (multiple choice)"
            raw[t].reasons.pop("source_prior", None)
        emb_frames = {}
        if args.affinity:
            emb_frames = affinity_scores(args, gold, pool, notes)
        db.close()
    rows = []
    gm = pd.DataFrame(loto_predictions(raw, tw_rows, targets=targets, seed=args.seed))
    rows += [(r.target, r.source, "gain-model (LOTO on TaskWeb)", float(r.mean))
             for r in gm.itertuples()]  # fmt: skip
    ours = [tuple(r) for r in gold[["target", "source", "gain"]].itertuples(index=False)]
    for t in targets:
        srcs = sorted(gold.loc[gold["target"] == t, "source"])
        idx = {s: i for i, s in enumerate(raw[t].sources)}
        prior_ours = source_prior(ours, t, srcs)
        prior_tw = source_prior([r for r in tw_rows if t not in (r[0], r[1])], t, srcs)
        for i, s in enumerate(srcs):
            j = idx[s]
            for name, value in (
                ("source-prior (these gains, LOTO)", prior_ours[i]),
                ("source-prior (TaskWeb, LOTO)", prior_tw[i]),
                ("datasize", raw[t].column("log_size")[j]),
                ("logme@early", raw[t].column("logme")[j]),
                ("tupate-lora-delta@early", raw[t].column("tupate_lora_delta")[j]),
            ):
                if math.isfinite(value):
                    rows.append((t, s, name, float(value)))
                else:
                    notes[f"{name} on {t}"] = raw[t].reasons.get(
                        {"logme@early": "logme"}.get(name, name), "not finite"
                    )
    scores = pd.DataFrame(rows, columns=["target", "source", "predictor", "score"])
    for frame in emb_frames.values():
        scores = pd.concat([scores, frame[["target", "source", "predictor", "score"]]])
    return scores, notes


def affinity_scores(args, gold: pd.DataFrame, pool, notes: dict) -> dict[str, pd.DataFrame]:
    """The affinity scorers fitted leave-one-target-out on these gains (prompt embeddings of
    the pool's early prompt runs); seconds per kind in ``notes``."""
    emb = EmbeddingSet.from_pool(pool, "prompt", list(TASKWEB_OVERLAP))
    out = {}
    for kind in args.affinity:
        cfg = AffinityConfig(kind=kind, method="prompt", ensemble=args.affinity_members,
                             seed=args.seed)  # fmt: skip
        t0 = time.perf_counter()
        info: list = []
        out[kind] = cross_validate(gold[["target", "source", "gain"]], emb, cfg,
                                   predictor=f"affinity-{kind} (prompt, LOTO on these gains)",
                                   progress=False, fold_info=info)  # fmt: skip
        folds = [(f["split"], f["n_train"], f["lr"]) for f in info]
        notes[f"affinity-{kind} fit"] = f"{time.perf_counter() - t0:.0f} s; folds {folds}"
    return out


def evaluate(gold: pd.DataFrame, scores: pd.DataFrame) -> pd.DataFrame:
    """Per (predictor, target) metrics on the predictor's targets, random expectation rows."""
    frames = []
    for _, df in scores.groupby("predictor", sort=False):
        g = gold[gold["target"].isin(set(df["target"]))]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            per_target, _ = evaluate_long(g, df, ks=(1, 3), random_label=RANDOM)
        if frames:
            per_target = per_target[per_target["predictor"] != RANDOM]
        frames.append(per_target)
    return pd.concat(frames, ignore_index=True)


# ---------------------------------------------------------------- report
def _f(v, d=3) -> str:
    return "n/a" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.{d}f}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--campaign", default=str(CAMPAIGN))
    ap.add_argument("--taskweb", default=str(SHARED / "benchmarks" / "taskweb" / "pairs.csv"))
    ap.add_argument("--prompt-seeds", default=str(RESULTS / "transfer_matrix_prompt_seeds.csv"))
    ap.add_argument("--pool", default=str(REPO / "benchmarks" / "stores" / "taskweb12-methods"))
    ap.add_argument("--data-dir", default=str(SHARED / "data"))
    ap.add_argument("--logme-csv", default=str(RESULTS / "taskweb12_eval_logme_scores.csv"))
    ap.add_argument("--textemb-csv", default=str(RESULTS / "taskweb12_eval_slow1_scores.csv"))
    ap.add_argument("--affinity", default="", help="Affinity scorers to fit: light,backbone.")
    ap.add_argument("--affinity-members", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", default=str(RESULTS / "ground_truth"))
    ap.add_argument(
        "--extra-store",
        action="append",
        default=[],
        metavar="LABEL=PATH",
        help="Another store of the same protocol (e.g. a part measured on a CPU): its "
        "transfers join as lease LABEL (replicates 'L<LABEL>s<seed>').",
    )
    args = ap.parse_args(argv)
    args.affinity = [k for k in args.affinity.split(",") if k]
    if set(args.affinity) - {"light", "backbone"}:
        raise SystemExit(f"--affinity: light and/or backbone, got {args.affinity}")
    for p in (args.taskweb, args.prompt_seeds, args.logme_csv, args.textemb_csv):
        if not Path(p).is_file():
            raise SystemExit(f"missing input {p}")
    if not (Path(args.pool) / "store.sqlite").is_file():
        raise SystemExit(f"no run store at {args.pool}")
    set_torch_threads(args.threads)
    command = "PYTHONPATH=src python benchmarks/ground_truth.py" + "".join(
        f" {shlex.quote(a)}" for a in (argv if argv is not None else sys.argv[1:])
    )
    t_start = time.perf_counter()
    tasks = list(TASKWEB_OVERLAP)
    taskweb = load_taskweb_gold(args.taskweb, setting="ALL(avg)", tasks=tasks)
    all_sources = {t: [s for s in tasks if s != t] for t in tasks}

    # 1
    rows, repro = campaign_rows(Path(args.campaign), args.extra_store)
    rows.to_csv(RESULTS / EXPORT, index=False)
    rows, aside = complete_replicates(rows)
    # 2
    report: dict = {"benchmark": "ground_truth", "command": command, "reproduction": repro,
                    "methods": {}}  # fmt: skip
    if aside:
        report["set_aside_partial_replicates"] = aside
    sigs, commons = {}, {}
    for method, frame in rows.groupby("method", sort=True):
        sig = signal(frame, taskweb, all_sources)
        sigs[method] = sig
        report["methods"][method] = {k: v for k, v in sig.items() if k != "pairs"}
        report["methods"][method]["goals"] = goals(sig)
        common = commons[method] = in_every_replicate(frame)
        # why: the sources' spread against one seed's noise, over the sources in every replicate
        report["methods"][method]["reliability"] = reliability_by_target(
            _rep_index(on_pairs(frame, common))
        )
        if set(common) != set(sig["complete_targets"]):  # an unfinished target: its part so far
            sig_c = signal(on_pairs(frame, common), taskweb, common)
            report["methods"][method]["in_every_replicate"] = {
                "sources": common,
                "goals": goals(sig_c),
            }
    prompt = pd.read_csv(args.prompt_seeds).assign(replicate=lambda d: "s" + d["seed"].astype(str))
    sig_p = signal(prompt, taskweb, all_sources)
    lora_complete = sigs["lora"]["complete_targets"] if "lora" in sigs else []
    sig_p3 = signal(prompt[prompt["target"].isin(lora_complete)], taskweb, all_sources)
    report["prompt_matrix"] = {
        "all_targets": {k: v for k, v in sig_p.items() if k != "pairs"}
        | {"goals": goals(sig_p), "reliability": reliability_by_target(_rep_index(prompt))},
        "campaign_targets": {k: v for k, v in sig_p3.items() if k != "pairs"}
        | {"goals": goals(sig_p3)},
    }
    # 3
    lora_rows = rows[rows["method"] == "lora"]
    one_lease = lora_rows[lora_rows["target"].isin(lora_complete)]
    if one_lease.groupby(["target", "seed"])["replicate"].nunique().max() > 1:  # replay keys
        raise SystemExit("a complete lora target spans two baseline leases; replay needs one")
    report["adaptive"] = [
        {"method": "lora"} | replay(one_lease, lora_complete, start) for start in (2, 3)
    ]
    # full: the targets measured with 3 seeds in one lease, on the sources in every replicate
    full_rows = rows[rows["method"] == "full"]
    common = commons.get("full", {})
    by_target = full_rows.groupby("target")
    full_targets = [
        t
        for t in common
        if by_target.get_group(t)["replicate"].nunique() == 3
        and by_target.get_group(t).groupby("seed")["replicate"].nunique().max() == 1
    ]
    if full_targets:
        part = on_pairs(full_rows, {t: common[t] for t in full_targets})
        report["adaptive"] += [
            {"method": "full"} | replay(part, full_targets, start) for start in (2, 3)
        ]  # fmt: skip
    # 4
    pairs = sigs["lora"]["pairs"]
    gold = gold_of(pairs[pairs["target"].isin(lora_complete)], lora_rows)
    scores, notes = predictor_scores(args, gold, lora_complete, taskweb)
    scores.to_csv(Path(args.out).with_name(Path(args.out).name + "_scores.csv"), index=False)
    per_target = evaluate(gold, scores)
    metrics = ["spearman", "ndcg_rank", "rank_of_best", "regret@1", "regret@3"]
    per_target = per_target[["predictor", "target", "n_sources", *metrics]]
    report["predictors"] = {
        "gold": "lora mean gains of " + ",".join(lora_complete),
        "per_target": per_target.to_dict("records"),
        # mean over targets with a 90 % percentile bootstrap interval over targets
        "mean": bootstrap_summary(per_target, metrics).to_dict("records"),
        "notes": notes,
    }
    # the same scores (fitted without the target, on the other lora targets) against full's
    # mean gains on the targets it measured with 3 seeds that are also complete lora targets
    both = [t for t in full_targets if t in lora_complete]
    if both:
        fgold = gold_of(on_pairs(sigs["full"]["pairs"], {t: common[t] for t in both}), full_rows)
        fscores = scores.merge(fgold[["target", "source"]], on=["target", "source"])
        per_full = evaluate(fgold, fscores)[["predictor", "target", "n_sources", *metrics]]
        report["predictors_full"] = {
            "gold": "full mean gains of "
            + ",".join(both)
            + " (sources in every seed); scores as for the lora gold",
            "per_target": per_full.to_dict("records"),
            "mean": bootstrap_summary(per_full, metrics).to_dict("records"),
        }
    report["wall_s"] = round(time.perf_counter() - t_start, 1)

    out = Path(args.out)
    out.with_suffix(".json").write_text(
        json.dumps(report, indent=1, default=str) + "\n", encoding="utf-8"
    )
    out.with_suffix(".md").write_text(markdown(report, sigs, rows, metrics), encoding="utf-8")
    head = {
        m: {k: (v["value"], v["met"]) for k, v in r["goals"].items()}
        for m, r in report["methods"].items()
    }
    print(json.dumps({"benchmark": "ground_truth", "goals": head, "wall_s": report["wall_s"]}))
    return 0


def predictor_tables(pr: dict, metrics: list[str], mean_caption: str) -> list[str]:
    """The markdown lines of one predictors section: per target, then the mean over targets
    with its interval (``pr``: ``gold``, ``per_target``, ``mean`` as in the JSON)."""
    L = ["", f"## Predictors against the measured gains ({pr['gold']})", "",
         "| predictor | target | n | " + " | ".join(metrics) + " |",
         "|---|---|---:|" + "---:|" * len(metrics)]  # fmt: skip
    for r in pr["per_target"]:
        L.append(f"| {r['predictor']} | {r['target']} | {r['n_sources']} | "
                 + " | ".join(_f(r[m]) for m in metrics) + " |")  # fmt: skip
    L += ["", mean_caption, "", "| predictor | targets | " + " | ".join(metrics) + " |",
          "|---|---:|" + "---:|" * len(metrics)]  # fmt: skip
    for r in pr["mean"]:
        cells = [f"{_f(r[m])} [{_f(r[f'{m} lo'])}, {_f(r[f'{m} hi'])}]" for m in metrics]
        L.append(f"| {r['predictor']} | {r['n_targets']} | " + " | ".join(cells) + " |")
    return L


def markdown(report: dict, sigs: dict, rows: pd.DataFrame, metrics: list[str]) -> str:
    L = [f"`{report['command']}`", "", "Lease 2 re-measured runs of lease 1 (same run ids): "
         + "; ".join(f"{m}: {v['tune_runs_identical_dev_scores']}/{v['tune_runs_in_both_leases']}"
                     f" tune runs with identical dev scores, {v['transfers_in_both_leases']} "
                     "transfers measured in both (identical scores, kept once)"
                     for m, v in report["reproduction"].items()), ""]  # fmt: skip
    if report.get("set_aside_partial_replicates"):
        L += ["Set aside (narrower replicates of a target measured more widely in another part; "
              "not in any figure below): " + ", ".join(
                  f"{k}: {n} rows" for k, n in report["set_aside_partial_replicates"].items()),
              ""]  # fmt: skip
    L += ["## Measured transfers", "",
          "| method | target | sources | replicates | complete | pairs with SE | "
          "share \\|gain\\| > 2 SE | seed-to-seed ρ | seed-to-seed ρ, sources in every "
          "replicate | TaskWeb ρ (sources) |",
          "|---|---|---:|---:|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    for m, r in report["methods"].items():
        for t, v in r["per_target"].items():
            L.append(f"| {m} | {t} | {v['sources']} | {v['replicates']} | {v['complete']} | "
                     f"{v['pairs_with_se']} | {_f(v['share_over_2se'], 2)} | "
                     f"{_f(v['seed_to_seed'])} | {_f(v['seed_to_seed_in_every_replicate'])} "
                     f"({v['sources_in_every_replicate']}) | {_f(v['taskweb_spearman'])} "
                     f"({v['taskweb_sources']}) |")  # fmt: skip
    L += ["", "## Goals (issue 11)", "",
          "| data | seed-to-seed ρ ≥ 0.5 | share \\|gain\\| > 2 SE ≥ 40 % | TaskWeb ρ ≥ 0.3 |",
          "|---|---|---|---|"]  # fmt: skip

    def cells(g):
        def one(key, unit):
            v = g[key]
            met = {None: "n/a", True: "met", False: "not met"}[v["met"]]
            extra = (f", permutation p {_f(v['permutation_p'], 3)}"
                     if key == "seed_to_seed" else "")  # fmt: skip
            return f"{_f(v['value'])} ({v[unit]} {unit}) {met}{extra}"

        return (f"{one('seed_to_seed', 'targets')} | {one('share_over_2se', 'pairs')}, "
                f"noise alone {_f(g['share_over_2se']['null'], 3)} | "
                f"{one('taskweb_spearman', 'targets')}")  # fmt: skip

    for m, r in report["methods"].items():
        L.append(f"| campaign {m} | {cells(r['goals'])} |")
        if "in_every_replicate" in r:
            part = r["in_every_replicate"]
            what = ", ".join(f"{t} {len(s)}" for t, s in part["sources"].items())
            L.append(f"| campaign {m}, sources measured in every replicate ({what}) | "
                     f"{cells(part['goals'])} |")  # fmt: skip
    pm = report["prompt_matrix"]
    L.append(f"| old prompt matrix, all targets | {cells(pm['all_targets']['goals'])} |")
    L.append(f"| old prompt matrix, campaign targets | {cells(pm['campaign_targets']['goals'])} |")
    L += ["", "TaskWeb ρ over every target with >= 3 sources (complete or not): "
          + "; ".join(f"campaign {m} {_f(r['taskweb_spearman_any'])} "
                      f"({r['taskweb_spearman_any_targets']} targets)"
                      for m, r in report["methods"].items())
          + f"; old prompt matrix {_f(pm['all_targets']['taskweb_spearman_any'])} "
          f"({pm['all_targets']['taskweb_spearman_any_targets']} targets)."]  # fmt: skip
    L += ["", "## Signal against seed noise, per target (why a goal is met or not)", "",
          "Over the sources measured in every replicate; two-way model gain = source + seed + "
          "noise (`taskscout.transfer.gains.source_reliability`, ICC(3,1) of Shrout & Fleiss; "
          "a seed's shift of every gain, e.g. its baseline, is taken out). *one seed*: the "
          "expected correlation of two seeds' gains over the sources, what the seed-to-seed ρ "
          "estimates; *k-seed mean*: that of two means of k seeds (Spearman-Brown); *seeds for "
          "0.5*: the seeds a mean needs for 0.5 (inf: no order to recover).", "",
          "| data | target | sources x seeds | source sd | seed noise sd | F p (sources "
          "differ) | one seed | k-seed mean | seeds for 0.5 |",
          "|---|---|---|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    rel_sets = [(f"campaign {m}", r["reliability"]) for m, r in report["methods"].items()]
    rel_sets.append(("old prompt matrix", pm["all_targets"]["reliability"]))
    for label, rel in rel_sets:
        for t, v in rel.items():
            mean = _f(v["icc_mean"], 2) if not v["icc"] <= 0 else "<= 0"
            L.append(f"| {label} | {t} | {v['sources']} x {v['seeds']} | {_f(v['sd_source'], 2)} | "
                     f"{_f(v['sd_noise'], 2)} | {_f(v['p_value'], 3)} | {_f(v['icc'], 2)} | "
                     f"{mean} | {v['seeds_for_goal']} |")  # fmt: skip
    L += ["", "## Mean gain per source (90 % t interval over replicates)", ""]
    for m, sig in sigs.items():
        p = sig["pairs"]
        for t, g in p.groupby("target", sort=True):
            g = g.sort_values("gain", ascending=False)
            cells_ = [f"{r.source} {r.gain:+.1f} [{_f(r.ci_low, 1)}, {_f(r.ci_high, 1)}]"
                      for r in g.itertuples()]  # fmt: skip
            L.append(f"* {m} {t}: " + "; ".join(cells_))
    L += ["", "## Adaptive seeds replayed on the measured gains", "",
          "(lora: the complete targets; full: the targets with 3 seeds in one lease, on the "
          "sources measured in every seed)", "",
          "| method | start seeds | target | best | contenders at the end | reason | transfers "
          "used / fixed 3 | runs used / fixed 3 | same decision as fixed 3 | eliminated at 3 "
          "seeds |",
          "|---|---:|---|---|---|---|---|---|---|---:|"]  # fmt: skip
    for rep in report["adaptive"]:
        m = rep["method"]
        for t, v in rep["targets"].items():
            L.append(f"| {m} | {rep['start_seeds']} | {t} | {v['best']} | {len(v['contenders'])} | "
                     f"{v['reason']} | {v['transfers_used']} / {v['transfers_fixed']} | "
                     f"{v['runs_used']} / {v['runs_fixed']} | {v['same_decision']} | "
                     f"{v['eliminated_at_3_seeds']} |")  # fmt: skip
        L.append(f"| {m} | {rep['start_seeds']} | all | | | | {rep['runs']['transfers']} / "
                 f"{rep['fixed_3_seeds']['transfers']} | {rep['runs']['total']} / "
                 f"{rep['fixed_3_seeds']['total']} | | |")  # fmt: skip
    pr = report["predictors"]
    L += predictor_tables(
        pr,
        metrics,
        "Mean over targets (each predictor over the targets it "
        "scores) [90 % bootstrap interval over targets; with 4 targets, wide]:",
    )
    if pr["notes"]:
        L += ["", "Notes: " + "; ".join(f"{k}: {v}" for k, v in pr["notes"].items())]
    if "predictors_full" in report:
        L += predictor_tables(
            report["predictors_full"],
            metrics,
            "Mean over these targets [90 % bootstrap interval over targets]:",
        )
    L += ["", f"Per-seed rows: `benchmarks/results/{EXPORT}` ({len(rows)} transfers). "
          f"Wall {report['wall_s']} s.", ""]  # fmt: skip
    return "\n".join(L)


if __name__ == "__main__":
    sys.exit(main())
