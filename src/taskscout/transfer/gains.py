"""Transfer gains from the store: the long-form gold table of DESIGN section 5.

``gain(s, t) = score(t | from s) - score(t | no transfer)`` per seed, both scores being the
target's dev score at its best epoch (metric points x100); then mean and sample standard
deviation (ddof 1; NaN with one seed) over seeds. ``performance`` is the mean transfer score.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from taskscout.store import RunStore

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
)


def run_score(run) -> float:
    """A stored run's dev score at its best epoch (metric x100)."""
    if not run.dev_scores:
        raise ValueError(f"run {run.run_id} has no dev scores")
    best = run.best_epoch or (int(np.argmax(run.dev_scores)) + 1)
    return float(run.dev_scores[best - 1])


def per_seed_gains(
    db: RunStore,
    *,
    method: str,
    backbone: str | None = None,
    checkpoint: str = "best",
    settings_hash: str | None = None,
) -> tuple[pd.DataFrame, list[str]]:
    """One row per complete transfer: ``target, source, seed, score, baseline, gain, wall_s,
    examples, baseline_wall_s, settings_hash``; plus warnings (transfers without a complete
    baseline run, which are left out and named)."""
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
            }
        )
    cols = [
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
    ]
    return pd.DataFrame(rows, columns=cols), warnings


def gains_table(
    db: RunStore,
    *,
    method: str,
    backbone: str | None = None,
    checkpoint: str = "best",
    settings_hash: str | None = None,
) -> tuple[pd.DataFrame, list[str]]:
    """Long-form gold ``target, source, gain, performance, gain_std, n_seeds, baseline,
    wall_s, examples`` (means over seeds; wall_s / examples: summed over seeds), sorted by
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
    return aggregate_seeds(seeds), warnings


def aggregate_seeds(seeds: pd.DataFrame) -> pd.DataFrame:
    """Per-seed rows (``target, source, seed, score, baseline, gain, wall_s, examples``) ->
    long-form gold (see :func:`gains_table`): gain / performance / baseline are means over
    seeds, ``gain_std`` the sample std (NaN with one seed), wall_s / examples sums."""
    dup = seeds.duplicated(["target", "source", "seed"])
    if dup.any():
        raise ValueError(f"{int(dup.sum())} duplicate (target, source, seed) rows")
    g = seeds.groupby(["target", "source"], sort=True)
    out = pd.DataFrame(
        {
            "gain": g["gain"].mean(),
            "performance": g["score"].mean(),
            "gain_std": g["gain"].std(ddof=1),
            "n_seeds": g["seed"].nunique(),
            "baseline": g["baseline"].mean(),
            "wall_s": g["wall_s"].sum(),
            "examples": g["examples"].sum(),
        }
    ).reset_index()
    out = out.sort_values(["target", "gain"], ascending=[True, False], kind="stable")
    return out.reset_index(drop=True)[list(GAIN_COLUMNS)]


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
