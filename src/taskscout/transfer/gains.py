"""Transfer gains from the store: the long-form gold table of DESIGN section 5, with error bars.

``gain(s, t, k) = score(t | from s, seed k) - score(t | no transfer, seed k)``: seeds are
*paired* (the transfer and its baseline share seed ``k``, hence data subsample, head
initialisation, batch order and dropout masks), both scores being the target's dev score at its
best epoch (metric points x100). Per pair over its seeds (:func:`pair_statistics`):

* ``gain``: the mean of the per-seed gains, ``gain_std`` their sample std (ddof 1),
  ``gain_se = gain_std / sqrt(n)``;
* ``ci_low, ci_high``: the two-sided ``level`` (default 90 %) Student-t interval
  ``gain +- t_{(1+level)/2, n-1} * gain_se`` over the n paired per-seed gains;
  ``excludes_zero``: whether that interval lies strictly above or below 0. With one seed there
  is no interval: NaN bounds and ``excludes_zero`` missing (``<NA>``).

Per target, *cannot be told apart from the best* (:func:`separation`): the best source b has
the highest mean gain (ties: first by name). Another source s is compared with b *paired* over
their common seeds C (the seeds both were measured with): ``d_k = gain(b, k) - gain(s, k)``,
k in C (= score(t|b,k) - score(t|s,k), the shared baseline cancels). s is *separated* from b
when the two-sided ``level`` t interval of mean d over C lies above 0 (``d_low > 0``), i.e. b
is better at one-sided level ``(1+level)/2``; otherwise s is *tied with the best*
(``tied_best``). With fewer than ``MIN_SEPARATION_SEEDS`` (3) common seeds s counts as tied
(not separated): two paired seeds can agree exactly (dev scores move in steps of 100/n_dev
points), and a zero-width interval from two numbers is no evidence. b itself is tied with itself.

Dev sets: ``TuneConfig.max_dev`` caps every run's dev split by a seeded, label-stratified
subsample (:func:`taskscout.data.sampling.subsample_rows`); each per-seed row records the cap
(``max_dev``, empty = no cap) and the dev rows actually scored (``dev_examples``).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from taskscout.store import RunStore

#: The interval level of every gains table (two-sided).
MIN_SEPARATION_SEEDS = 3  # paired seeds needed before a source counts as separated
DEFAULT_LEVEL = 0.9

GAIN_COLUMNS = (
    "target",
    "source",
    "gain",
    "performance",
    "gain_std",
    "n_seeds",
    "baseline",
    "wall_s",
    "examples",
    "gain_se",
    "ci_low",
    "ci_high",
    "excludes_zero",
    "tied_best",
    "max_dev",
    "dev_examples",
)

SEED_COLUMNS = (
    "target",
    "source",
    "seed",
    "score",
    "baseline",
    "gain",
    "wall_s",
    "examples",
    "baseline_wall_s",
    "source_run_id",
    "baseline_run_id",
    "settings_hash",
    "method",
    "max_dev",
    "dev_examples",
)

#: The exported per-seed long form (``taskscout gains --per-seed``).
PER_SEED_EXPORT = (
    "target",
    "source",
    "method",
    "seed",
    "score",
    "baseline_score",
    "gain",
    "max_dev",
    "dev_examples",
)


def run_score(run) -> float:
    """A stored run's dev score at its best epoch (metric x100)."""
    if not run.dev_scores:
        raise ValueError(f"run {run.run_id} has no dev scores")
    best = run.best_epoch or (int(np.argmax(run.dev_scores)) + 1)
    return float(run.dev_scores[best - 1])


def t_interval(values, level: float = DEFAULT_LEVEL) -> tuple[float, float, float, float]:
    """``(mean, standard error, low, high)`` of the two-sided ``level`` Student-t interval of
    the mean of ``values`` (n - 1 degrees of freedom). One value: ``(value, nan, nan, nan)``;
    none: all NaN. ``level`` in (0, 1)."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), not {level}")
    x = np.asarray(values, dtype=float)
    n = x.size
    if n == 0:
        return (math.nan,) * 4
    mean = float(x.mean())
    if n == 1:
        return mean, math.nan, math.nan, math.nan
    se = float(x.std(ddof=1) / math.sqrt(n))
    half = float(stats.t.ppf(0.5 + level / 2.0, n - 1)) * se
    return mean, se, mean - half, mean + half


def per_seed_gains(
    db: RunStore,
    *,
    method: str,
    backbone: str | None = None,
    checkpoint: str = "best",
    settings_hash: str | None = None,
) -> tuple[pd.DataFrame, list[str]]:
    """One row per complete transfer (columns :data:`SEED_COLUMNS`): ``target, source, seed,
    score, baseline, gain`` (paired: the baseline is the target's run with the same seed),
    timings, run ids, ``settings_hash``, ``method``, the dev cap ``max_dev`` (NaN: none) and
    ``dev_examples`` (dev rows the baseline was scored on); plus warnings (transfers without
    a complete baseline run, which are left out and named)."""
    rows, warnings = [], []
    for rec in db.transfers.find(
        method=method, backbone=backbone, checkpoint=checkpoint, settings_hash=settings_hash
    ):
        base = db.get_run(rec.baseline_run_id)
        if base is None or base.status != "complete":
            warnings.append(
                f"{rec.source_task} -> {rec.target} seed {rec.seed}: no complete baseline run "
                f"{rec.baseline_run_id}; left out"
            )
            continue
        baseline = run_score(base)
        cap = (rec.config.get("settings") or {}).get("max_dev")
        rows.append(
            {
                "target": rec.target,
                "source": rec.source_task,
                "seed": rec.seed,
                "score": float(rec.score),
                "baseline": baseline,
                "gain": float(rec.score) - baseline,
                "wall_s": rec.wall_time_s,
                "examples": rec.examples_seen,
                "baseline_wall_s": base.wall_time_s,
                "source_run_id": rec.source_run_id,
                "baseline_run_id": rec.baseline_run_id,
                "settings_hash": rec.settings_hash,
                "method": rec.method,
                "max_dev": math.nan if cap is None else float(cap),
                "dev_examples": base.num_dev,
            }
        )
    return pd.DataFrame(rows, columns=list(SEED_COLUMNS)), warnings


def per_seed_export(seeds: pd.DataFrame) -> pd.DataFrame:
    """Per-seed rows -> the exported long form :data:`PER_SEED_EXPORT` (``baseline`` renamed
    ``baseline_score``; ``max_dev`` as a nullable integer), sorted by target, source, seed."""
    out = seeds.rename(columns={"baseline": "baseline_score"})
    out = out.sort_values(["target", "source", "seed"], kind="stable").reset_index(drop=True)
    out["max_dev"] = out["max_dev"].astype("Int64")
    return out[list(PER_SEED_EXPORT)]


def gains_table(
    db: RunStore,
    *,
    method: str,
    backbone: str | None = None,
    checkpoint: str = "best",
    settings_hash: str | None = None,
    level: float = DEFAULT_LEVEL,
) -> tuple[pd.DataFrame, list[str]]:
    """Long-form gold (columns :data:`GAIN_COLUMNS`, see :func:`aggregate_seeds`), sorted by
    target then descending gain. Transfers of several settings in one store raise ValueError
    unless ``settings_hash`` picks one."""
    seeds, warnings = per_seed_gains(
        db, method=method, backbone=backbone, checkpoint=checkpoint, settings_hash=settings_hash
    )
    if seeds.empty:
        return pd.DataFrame(columns=list(GAIN_COLUMNS)), warnings
    hashes = sorted(seeds["settings_hash"].unique())
    if len(hashes) > 1:
        counts = seeds.groupby("settings_hash").size().to_dict()
        raise ValueError(
            f"the store holds {method} transfers measured with {len(hashes)} different settings "
            f"{counts}; pick one with settings_hash= (--settings-hash)"
        )
    return aggregate_seeds(seeds, level=level), warnings


def _check_unique(seeds: pd.DataFrame) -> None:
    dup = seeds.duplicated(["target", "source", "seed"])
    if dup.any():
        raise ValueError(f"{int(dup.sum())} duplicate (target, source, seed) rows")


def pair_statistics(seeds: pd.DataFrame, level: float = DEFAULT_LEVEL) -> pd.DataFrame:
    """Per (target, source) of per-seed rows (``target, source, seed, gain``): ``n_seeds,
    gain, gain_std, gain_se, ci_low, ci_high, excludes_zero`` as defined in the module
    docstring (``excludes_zero`` is a nullable boolean: ``<NA>`` with one seed)."""
    _check_unique(seeds)
    rows = []
    for (target, source), grp in seeds.groupby(["target", "source"], sort=True):
        mean, se, lo, hi = t_interval(grp["gain"].to_numpy(), level)
        n = len(grp)
        rows.append(
            {
                "target": target,
                "source": source,
                "n_seeds": n,
                "gain": mean,
                "gain_std": float(grp["gain"].std(ddof=1)) if n > 1 else math.nan,
                "gain_se": se,
                "ci_low": lo,
                "ci_high": hi,
                "excludes_zero": pd.NA if n < 2 else bool(lo > 0 or hi < 0),
            }
        )
    out = pd.DataFrame(rows)
    if not out.empty:
        out["excludes_zero"] = out["excludes_zero"].astype("boolean")
    return out


def separation(target_seeds: pd.DataFrame, level: float = DEFAULT_LEVEL) -> pd.DataFrame:
    """One target's per-seed rows (``source, seed, gain``) -> per source, sorted by descending
    mean gain (ties by name): ``source, n_seeds, gain, best, common_seeds, diff, diff_low,
    diff_high, tied_best``. ``diff`` = mean over common seeds of gain(best) - gain(source)
    and its paired ``level`` t interval; ``tied_best``: the source cannot be told apart from
    the best (module docstring). Empty input: an empty frame."""
    cols = [
        "source",
        "n_seeds",
        "gain",
        "best",
        "common_seeds",
        "diff",
        "diff_low",
        "diff_high",
        "tied_best",
    ]
    if target_seeds.empty:
        return pd.DataFrame(columns=cols)
    if target_seeds.duplicated(["source", "seed"]).any():
        raise ValueError("duplicate (source, seed) rows for one target")
    by_source = {s: g.set_index("seed")["gain"] for s, g in target_seeds.groupby("source")}
    means = sorted(
        ((float(g.mean()), s) for s, g in by_source.items()), key=lambda m: (-m[0], m[1])
    )
    best = means[0][1]
    rows = []
    for mean, source in means:
        g = by_source[source]
        if source == best:
            row = (len(g), mean, True, len(g), 0.0, 0.0, 0.0, True)
        else:
            common = by_source[best].index.intersection(g.index)
            d = (by_source[best].loc[common] - g.loc[common]).to_numpy()
            dm, _, lo, hi = t_interval(d, level) if len(d) else (math.nan,) * 4
            tied = not (len(d) >= MIN_SEPARATION_SEEDS and lo > 0)
            row = (len(g), mean, False, len(common), dm, lo, hi, tied)
        rows.append((source, *row))
    return pd.DataFrame(rows, columns=cols)


def complete_block(target_seeds: pd.DataFrame) -> pd.DataFrame:
    """One target's per-seed rows (``source, seed, gain``) -> the largest complete block of
    gains (sources x seeds, no gap): for each coverage c, the seeds measured for >= c sources
    and the sources measured with all of those seeds; among the blocks of >= 2 sources x
    >= 2 seeds (if any) the one with the most cells wins (ties: more sources, then fewer
    seeds). May have fewer than 2 rows or columns when no such block exists."""
    wide = target_seeds.pivot(index="source", columns="seed", values="gain")
    coverage = wide.notna().sum()
    best, best_key = wide.iloc[:0, :0], (False, 0, 0)
    for c in sorted(set(coverage), reverse=True):
        block = wide.loc[:, coverage >= c].dropna()
        a, k = block.shape
        key = (a >= 2 and k >= 2, a * k, a)
        if key > best_key:
            best, best_key = block, key
    return best


def source_reliability(target_seeds: pd.DataFrame, goal: float = 0.5) -> dict:
    """How much of one target's per-seed gains is the sources and how much is seed noise.

    ``target_seeds``: one target's per-seed rows (``source, seed, gain``); the figures rest
    on its largest complete block (:func:`complete_block`: a sources all measured with the
    same k seeds, a >= 2, k >= 2, else ValueError) -- after a race, the seeds every source
    got, not the extra ones only the contenders did. Two-way model without interaction (the
    sources as the rated objects, the seeds as fixed raters; Shrout & Fleiss 1979, ICC(3,1)):
    ``gain[s, k] = mu + source_s + seed_k + noise``. ``seed_k`` absorbs what a seed does to
    every source alike (chiefly its baseline: a lucky baseline lowers all of that seed's
    gains), which changes no ranking. With row (source) means, column (seed) means and the
    grand mean m::

        MS_source = k * sum_s (row_s - m)^2 / (a - 1)
        MS_noise  = sum_{s,k} (gain - row_s - col_k + m)^2 / ((a - 1)(k - 1))
        F = MS_source / MS_noise,  p = P(F_{a-1, (a-1)(k-1)} > F)   (do the sources differ?)
        icc = (MS_source - MS_noise) / (MS_source + (k - 1) MS_noise)   in [-1/(k-1), 1]
        icc_mean(n) = n icc / (1 + (n - 1) icc)                          (Spearman-Brown)
                    = (MS_source - MS_noise) / MS_source  at n = k       (NaN if MS_source = 0)

    ``icc`` is the expected correlation of two seeds' gains over the sources (what the
    seed-to-seed Spearman estimates); ``icc_mean`` that of two means of ``seeds`` seeds each;
    ``seeds_for_goal`` the seeds a mean needs for an expected correlation >= ``goal``,
    ``ceil(goal (1 - icc) / (icc (1 - goal)))`` (1 when ``icc >= goal``; inf when icc <= 0:
    no number of seeds recovers an order that is not there). ``sd_source`` =
    sqrt(max(0, (MS_source - MS_noise) / k)) and ``sd_noise`` = sqrt(MS_noise) are in gain
    points: the spread of the sources' true mean gains and one seed's noise around them;
    ``sd_seed`` = sqrt(max(0, (MS_seed - MS_noise) / a)), MS_seed = a * sum_k (col_k - m)^2 /
    (k - 1), the spread of what a seed does to every source alike.
    With MS_source = MS_noise = 0 (every gain equal) icc is NaN."""
    if not 0 < goal < 1:
        raise ValueError(f"goal must be in (0, 1), got {goal}")
    if target_seeds.duplicated(["source", "seed"]).any():
        raise ValueError("duplicate (source, seed) rows for one target")
    block = complete_block(target_seeds)
    a, k = block.shape
    if a < 2 or k < 2:
        raise ValueError(f"need >= 2 sources measured with the same >= 2 seeds, got {a} x {k}")
    return _block_reliability(block, goal)


def _block_reliability(block: pd.DataFrame, goal: float) -> dict:
    """:func:`source_reliability`'s figures of a complete sources x seeds block (>= 2 x 2)."""
    a, k = block.shape
    x = block.to_numpy(dtype=float)
    m = x.mean()
    rows, cols = x.mean(axis=1, keepdims=True), x.mean(axis=0, keepdims=True)
    ms_s = k * float(((rows - m) ** 2).sum()) / (a - 1)
    ms_seed = a * float(((cols - m) ** 2).sum()) / (k - 1)
    ms_e = float(((x - rows - cols + m) ** 2).sum()) / ((a - 1) * (k - 1))
    denom = ms_s + (k - 1) * ms_e
    icc = (ms_s - ms_e) / denom if denom > 0 else math.nan
    f = ms_s / ms_e if ms_e > 0 else math.inf if ms_s > 0 else math.nan
    p = (
        float(stats.f.sf(f, a - 1, (a - 1) * (k - 1)))
        if math.isfinite(f)
        else (0.0 if f == math.inf else math.nan)
    )
    if not math.isfinite(icc):
        need = math.nan
    elif icc <= 0:
        need = math.inf
    else:
        need = max(1, math.ceil(goal * (1 - icc) / (icc * (1 - goal)) - 1e-9))
    return {
        "sources": a,
        "seeds": k,
        "ms_source": ms_s,
        "ms_noise": ms_e,
        "f": f,
        "p_value": p,
        "sd_source": math.sqrt(max(0.0, (ms_s - ms_e) / k)),
        "sd_noise": math.sqrt(ms_e),
        "sd_seed": math.sqrt(max(0.0, (ms_seed - ms_e) / a)),
        "icc": icc,
        "icc_mean": (ms_s - ms_e) / ms_s if ms_s > 0 else math.nan,
        "goal": goal,
        "seeds_for_goal": need,
    }


def reliability_by_target(seeds: pd.DataFrame, goal: float = 0.5) -> dict[str, dict]:
    """:func:`source_reliability` of each target of the per-seed rows (``target, source, seed,
    gain``) that has >= 2 sources measured with the same >= 2 seeds; the others are left out."""
    if not 0 < goal < 1:
        raise ValueError(f"goal must be in (0, 1), got {goal}")
    _check_unique(seeds)
    out = {}
    for target, grp in seeds.groupby("target", sort=True):
        block = complete_block(grp)
        if block.shape[0] >= 2 and block.shape[1] >= 2:
            out[str(target)] = _block_reliability(block, goal)
    return out


def aggregate_seeds(seeds: pd.DataFrame, level: float = DEFAULT_LEVEL) -> pd.DataFrame:
    """Per-seed rows (:func:`per_seed_gains`; ``max_dev`` / ``dev_examples`` optional) ->
    long-form gold :data:`GAIN_COLUMNS`: ``gain`` / ``performance`` / ``baseline`` are means
    over seeds, ``gain_std`` / ``gain_se`` / ``ci_low`` / ``ci_high`` / ``excludes_zero`` per
    :func:`pair_statistics`, ``tied_best`` per :func:`separation`, ``wall_s`` / ``examples``
    sums, ``max_dev`` the cap (NaN: none), ``dev_examples`` the mean dev rows scored. Sorted
    by target, then descending gain. ValueError on duplicate (target, source, seed) rows."""
    _check_unique(seeds)
    seeds = seeds.copy()
    for col in ("max_dev", "dev_examples"):
        if col not in seeds:
            seeds[col] = math.nan
    g = seeds.groupby(["target", "source"], sort=True)
    out = pd.DataFrame(
        {
            "performance": g["score"].mean(),
            "baseline": g["baseline"].mean(),
            "wall_s": g["wall_s"].sum(),
            "examples": g["examples"].sum(),
            "max_dev": g["max_dev"].max(),
            "dev_examples": g["dev_examples"].mean(),
        }
    ).reset_index()
    out = out.merge(pair_statistics(seeds, level), on=["target", "source"])
    tied = pd.concat(
        [separation(grp, level).assign(target=t) for t, grp in seeds.groupby("target")]
    )[["target", "source", "tied_best"]]
    out = out.merge(tied, on=["target", "source"])
    out = out.sort_values(["target", "gain"], ascending=[True, False], kind="stable")
    return out.reset_index(drop=True)[list(GAIN_COLUMNS)]


def uncertainty_summary(frame: pd.DataFrame) -> dict:
    """Headline figures of a gains table: pairs, pairs with an interval (>= 2 seeds), the
    share of those whose interval excludes zero, the share with |gain| > 2 standard errors,
    and per target how many sources are tied with the best."""
    with_ci = frame[frame["n_seeds"] >= 2]
    return {
        "pairs": len(frame),
        "pairs_with_interval": len(with_ci),
        "excludes_zero_share": float(with_ci["excludes_zero"].astype(bool).mean())
        if len(with_ci)
        else None,
        "gain_over_2se_share": float((with_ci["gain"].abs() > 2 * with_ci["gain_se"]).mean())
        if len(with_ci)
        else None,
        "tied_with_best": {
            str(t): int(g["tied_best"].sum()) for t, g in frame.groupby("target", sort=True)
        },
    }


def cost_summary(db: RunStore, seeds: pd.DataFrame) -> dict:
    """Compute spent on the brute-force matrix vs a single tune: transfer runs (seconds,
    examples), the distinct tune runs it needed (sources and no-transfer baselines), and how
    many single tune runs' worth the whole matrix cost."""
    if seeds.empty:
        return {}
    tune_ids = set(seeds["source_run_id"]) | set(seeds["baseline_run_id"])
    tune_s = [r.wall_time_s for r in map(db.get_run, sorted(tune_ids)) if r is not None]
    transfer_s = float(seeds["wall_s"].sum())
    mean_tune = float(np.mean(tune_s)) if tune_s else float("nan")
    total = transfer_s + float(sum(tune_s))
    return {
        "transfer_runs": len(seeds),
        "transfer_s": transfer_s,
        "transfer_examples": int(seeds["examples"].sum()),
        "tune_runs": len(tune_s),
        "tune_s": float(sum(tune_s)),
        "total_s": total,
        "mean_tune_s": mean_tune,
        "tunes_equivalent": total / mean_tune if tune_s and mean_tune > 0 else None,
    }
