"""Check a pick for real: rank a target's sources, measure the top-k adaptively, hand back the
best transferred target model as a PEFT adapter folder with its head.

:func:`verify` (``taskscout verify TARGET --top-k 3``):

1. ranks the pool's sources for ``target`` with a predictor (default: the default predictor),
   tuning the target's runs that predictor reads if the pool lacks them;
2. races the top-k sources and the no-transfer baseline with paired seeds
   (:func:`taskscout.transfer.adaptive.run_adaptive`): a seed is added only to sources that
   cannot yet be told apart from the best, until the best is separated or the budget is spent;
3. joins the predictions with the measured gains (mean, 90 % paired t interval, whether it
   excludes zero, whether the source is tied with the best);
4. saves the best source's transferred target model -- the seed with the highest dev score --
   as a PEFT adapter folder (``adapter_config.json`` + ``adapter_model.safetensors``, loadable
   by ``peft.PeftModel.from_pretrained``) plus its task head (``head.safetensors`` +
   ``taskscout_head.json``) and ``taskscout_verify.json`` (what was measured, and how).

Only ``lora`` runs export as a PEFT adapter; another method measures but refuses ``out=``
before any work. The target must be loadable by name (a catalog or bundled task), because the
measured runs load it per seed like every transfer run.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from taskscout.backbone import resolve_backbone
from taskscout.predictors import Pool, get_predictor
from taskscout.predictors.ranking import prepare_target, rank_sources
from taskscout.store import RunStore
from taskscout.transfer.adaptive import RaceResult, run_adaptive
from taskscout.transfer.gains import DEFAULT_LEVEL, pair_statistics, separation
from taskscout.transfer.run import run_transfer
from taskscout.tuning.config import TuneConfig
from taskscout.tuning.peft_format import ADAPTER_CONFIG, write_adapter_folder

VERIFY_INFO = "taskscout_verify.json"


@dataclass
class VerifyResult:
    """What :func:`verify` found. ``table``: one row per measured source, by descending
    measured gain: ``source, predicted, low, high, rank, gain, gain_se, ci_low, ci_high,
    n_seeds, excludes_zero, tied_best`` (gains in metric points x100)."""

    target: str
    table: pd.DataFrame
    race: RaceResult
    best_source: str | None
    best_seed: int | None
    adapter_dir: Path | None
    failed: dict[str, str] = field(default_factory=dict)
    predictor: str = ""
    predicted_units: str = "the predictor's score"  # measured gains: metric points x100

    def to_dict(self) -> dict:
        outcome = self.race.outcomes.get(self.target)
        return {
            "target": self.target,
            "predictor": self.predictor,
            "predicted_units": self.predicted_units,
            "measured_units": "metric points (x100), paired over seeds",
            "best_source": self.best_source,
            "best_seed": self.best_seed,
            "separated": bool(outcome.separated) if outcome else False,
            "stop_reason": outcome.reason if outcome else None,
            "adapter_dir": None if self.adapter_dir is None else str(self.adapter_dir),
            "runs": self.race.runs,
            "fixed_design_runs": self.race.fixed,
            "saved_share": self.race.saved,
            "failed": self.failed,
            "table": json.loads(self.table.to_json(orient="records")),
        }


def check_out_dir(out: str | os.PathLike | None, method: str) -> Path | None:
    """The adapter folder, checked before any work: ``lora`` only, and not a folder that
    already holds an adapter or a file."""
    if out is None:
        return None
    if method != "lora":
        raise ValueError(
            f"only lora runs export as a PEFT adapter (--out): this run's method is {method!r}"
        )
    path = Path(out).expanduser()
    if path.exists() and not path.is_dir():
        raise ValueError(f"--out {path} exists and is not a folder")
    if (path / ADAPTER_CONFIG).exists():
        raise ValueError(f"--out {path} already holds an adapter: choose another folder")
    if not path.parent.exists():
        raise ValueError(f"--out {path}: the folder {path.parent} does not exist")
    return path


def verify(
    db: RunStore,
    target: str,
    settings: TuneConfig,
    *,
    predictor: str = "default",
    top_k: int = 3,
    sources: list[str] | None = None,
    seeds: list[int] | None = None,
    start_seeds: int = 3,
    max_runs: int | None = None,
    level: float = DEFAULT_LEVEL,
    out: str | os.PathLike | None = None,
    executor=None,
    workers: int = 1,
    device: str | None = None,
    threads: int | None = None,
    progress: bool = True,
) -> VerifyResult:
    """Rank, measure the top ``top_k`` sources adaptively over ``seeds`` (default 0-4, starting
    with ``start_seeds`` each), and save the best transfer as an adapter in ``out`` (optional).
    Everything that can be checked is checked before any training."""
    if top_k < 1:
        raise ValueError("top_k must be >= 1")
    seeds = list(range(5)) if seeds is None else list(seeds)
    if start_seeds < 2 or start_seeds > len(seeds):
        raise ValueError(
            f"start_seeds must be between 2 and the number of seeds ({len(seeds)}): an "
            "interval needs two paired seeds"
        )
    out_dir = check_out_dir(out, settings.method)
    settings = settings.resolved(device)
    scorer = get_predictor(predictor)
    backbone_id = settings.backbone_id()
    prepared = prepare_target(
        db,
        target,
        scorer,
        settings,
        backbone_id=backbone_id,
        seed=seeds[0],
        device=device,
        threads=threads,
        progress=progress,
    )
    pool = Pool(db, backbone_id, data_dir=settings.data_dir, progress=progress)
    if prepared.data is not None:
        pool.tasks[prepared.name] = prepared.data
    ranking = rank_sources(scorer, pool, prepared.name, sources)
    chosen = list(ranking["source"][:top_k])
    race, failed = run_adaptive(
        db,
        settings,
        chosen,
        [prepared.name],
        seeds,
        start_seeds=start_seeds,
        max_runs=max_runs,
        level=level,
        executor=executor,
        workers=workers,
        device=device,
        threads=threads,
        keep_state=out_dir is not None,
        progress=progress,
    )
    per_seed = race.per_seed[race.per_seed["target"] == prepared.name]
    table = _joined_table(ranking, per_seed, level)
    best = None if table.empty else str(table["source"].iloc[0])
    best_seed, adapter = None, None
    if best is not None:
        rows = per_seed[per_seed["source"] == best].sort_values(["score", "seed"])
        best_seed = int(rows["seed"].iloc[-1])
        if out_dir is not None:
            adapter = _save_adapter(
                db, settings, prepared.name, best, best_seed, out_dir, table, device, threads
            )
    return VerifyResult(
        prepared.name,
        table,
        race,
        best,
        best_seed,
        adapter,
        failed,
        getattr(scorer, "name", ""),
        ranking.attrs.get("units", "the predictor's score"),
    )


def _joined_table(ranking: pd.DataFrame, per_seed: pd.DataFrame, level: float) -> pd.DataFrame:
    """Predictions beside measured gains, by descending measured gain."""
    if per_seed.empty:
        return pd.DataFrame()
    stats = pair_statistics(per_seed, level).drop(columns=["target"])
    tied = separation(per_seed[["source", "seed", "gain"]], level)[["source", "tied_best"]]
    pred_cols = [c for c in ("source", "score", "low", "high", "rank") if c in ranking]
    predicted = ranking[pred_cols].rename(columns={"score": "predicted"})
    table = stats.merge(tied, on="source", how="left").merge(predicted, on="source", how="left")
    order = ["source", "predicted", "low", "high", "rank", "gain", "gain_se", "ci_low"]
    order += ["ci_high", "n_seeds", "excludes_zero", "tied_best"]
    table = table[[c for c in order if c in table]]
    return table.sort_values(["gain", "source"], ascending=[False, True]).reset_index(drop=True)


def _save_adapter(
    db: RunStore,
    settings: TuneConfig,
    target: str,
    source: str,
    seed: int,
    out_dir: Path,
    table: pd.DataFrame,
    device: str | None,
    threads: int | None,
) -> Path:
    """Write the (source -> target, seed) transferred model's LoRA state and head."""
    records = [
        r
        for r in db.transfers.find(
            method=settings.method,
            target=target,
            source_task=source,
            settings_hash=settings.settings_hash(),
        )
        if r.seed == seed and r.checkpoint == "best"
    ]
    if not records:
        raise ValueError(f"no complete transfer {source} -> {target} (seed {seed}) in the store")
    rec = records[0]
    if rec.file is not None:
        state = db.transfers.load_state(rec.transfer_id)
    else:  # measured before without keeping the model: train that one run again, kept
        source_state = db.load_checkpoint(rec.source_run_id, "best")
        state = run_transfer(
            target,
            source_state,
            settings,
            seed=seed,
            device=device,
            threads=threads,
            cache_dir=db.root / "cache",
            keep_state=True,
        ).state
    ref = resolve_backbone(settings.backbone)
    task = db.get_task(target)
    write_adapter_folder(
        out_dir,
        state,
        settings.method_config(),
        backbone_id=ref.backbone_id,
        backbone_location=ref.location,
        spec=task["spec"] if task else settings.load(target, seed).spec.to_dict(),
    )
    row = table[table["source"] == source].iloc[0]
    info = {
        "format": "taskscout-verify/1",
        "target": target,
        "source": source,
        "seed": seed,
        "dev_score": rec.score,
        "measured_gain": float(row["gain"]),
        "interval": [float(row["ci_low"]), float(row["ci_high"])],
        "n_seeds": int(row["n_seeds"]),
        "transfer_id": rec.transfer_id,
        "source_run_id": rec.source_run_id,
        "baseline_run_id": rec.baseline_run_id,
        "backbone": settings.backbone_id(),
        "settings": settings.to_dict(),
    }
    (out_dir / VERIFY_INFO).write_text(json.dumps(info, indent=2, default=str), encoding="utf-8")
    return out_dir
