"""What a pool holds: one row per (task, method) entry."""

from __future__ import annotations

from taskscout.store import RunStore


def pool_info(db: RunStore, backbone: str | None = None) -> list[dict]:
    """One dict per latest complete run of each (task, method) on ``backbone`` (every backbone
    if None), sorted by task then method: ``task, method, backbone, run_id, origin``
    (``tuned`` | ``imported``), ``num_train``, ``early`` / ``best`` dev scores (metric x100,
    None for imported), ``embeddings`` (stored embeddings of the run), ``created_at``."""
    backbones = sorted(db.backbones()) if backbone is None else [backbone]
    embedded: dict[str, int] = {}
    for emb in db.find_embeddings():
        embedded[emb.run_id] = embedded.get(emb.run_id, 0) + 1
    rows = []
    for bb in backbones:
        for method in sorted(db.methods(backbone=bb)):
            for task, run in sorted(db.latest_runs(method=method, backbone=bb).items()):
                ckpts = run.checkpoints or {}
                rows.append(
                    {
                        "task": task,
                        "method": method,
                        "backbone": bb,
                        "run_id": run.run_id,
                        "origin": "imported" if "imported" in run.config else "tuned",
                        "num_train": run.num_train,
                        "early": ckpts["early"].dev_score if "early" in ckpts else None,
                        "best": ckpts["best"].dev_score if "best" in ckpts else None,
                        "embeddings": embedded.get(run.run_id, 0),
                        "created_at": run.created_at,
                    }
                )
    return sorted(rows, key=lambda r: (r["task"], r["method"], r["backbone"]))
