"""Ranking one target against a large pool: time and memory of ``taskscout.api.rank``.

    python benchmarks/rank_scale.py                 # 10,000 synthetic embeddings of 12,288 dims

Builds a store of ``--n`` synthetic tasks through the public store API (per task: ``put_task``,
``save_run`` with a one-tensor checkpoint, ``save_embedding`` of a random float32 vector of
``--dim`` dims, the size of a LoRA TuPaTE vector on MiniLM: per layer A (8 x 384) and B
(384 x 8) of query and value, 4 x 3,072 = 12,288, averaged over the layers), on the packaged
backbone id, and times that insertion. Then, each phase in a fresh subprocess (so that
``ru_maxrss`` measures it alone):

* ``cold``: the packed-pool cache is deleted, one ``api.rank(target)`` builds it (reading every
  embedding file with its sha256 check) and ranks;
* ``warm``: ``--repeats`` calls of ``api.rank(target)`` with the cache in place; the median.

Peak RSS increase = ``ru_maxrss`` after the phase minus the RSS before its first call (imports
and the store opened already). Also, once, the unpacked path for comparison
(``pool_embeddings`` + ``cosine_scores``: file by file), unless ``--skip-unpacked``.

Prints one JSON line; writes ``benchmarks/results/rank_scale.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def _rss_mb() -> float:
    with open("/proc/self/status", encoding="utf-8") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build_store(root: Path, n: int, dim: int, seed: int) -> dict:
    import torch

    from taskscout.backbone import resolve_backbone
    from taskscout.store import RunRecord, RunStore
    from taskscout.util import make_progress

    backbone = resolve_backbone(None).backbone_id
    gen = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    with RunStore(root) as db, make_progress(sys.stderr.isatty(), extra=False) as bar:
        job = bar.add_task(f"inserting {n} tasks", total=n)
        for i in range(n):
            task = f"syn{i:05d}"
            run_id = f"syn-{i:05d}"
            spec = {"name": task, "type": "classification", "family": f"fam{i % 50}"}
            db.put_task(task, spec, f"fp{i}", 1000 + i % 1000, 100)
            record = RunRecord(
                run_id=run_id,
                task=task,
                backbone=backbone,
                method="lora",
                seed=0,
                config={"synthetic": True, "i": i},
                num_train=1000 + i % 1000,
                num_dev=100,
            )
            db.save_run(record, {"early": ({"method.x": torch.zeros(1)}, 2, 50.0)})
            db.save_embedding(
                run_id=run_id,
                task=task,
                backbone=backbone,
                method="lora",
                checkpoint="early",
                layer_reduce="mean",
                tensor=torch.randn(dim, generator=gen),
            )
            bar.update(job, advance=1)
    seconds = time.perf_counter() - start
    return {"insert_s": round(seconds, 1), "insert_ms_per_task": round(1000 * seconds / n, 2)}


def measure(store: Path, phase: str, repeats: int, target: str) -> dict:
    """One phase, run in its own process."""
    from taskscout import api
    from taskscout.embeddings.packed import pack_dir
    from taskscout.store import RunStore

    db = RunStore(store, create=False)
    if phase == "cold":
        shutil.rmtree(pack_dir(db), ignore_errors=True)
    rss0 = _rss_mb()
    times = []
    for _ in range(1 if phase == "cold" else repeats):
        start = time.perf_counter()
        table = api.rank(target, store=db, progress=False)
        times.append(time.perf_counter() - start)
    out = {
        "seconds": [round(t, 4) for t in times],
        "median_s": round(statistics.median(times), 4),
        "peak_rss_increase_mb": round(_maxrss_mb() - rss0, 1),
        "rss_before_mb": round(rss0, 1),
        "n_sources": len(table),
        "top": table.iloc[0][["source", "score"]].to_dict(),
    }
    if phase == "unpacked":
        import torch

        from taskscout.backbone import resolve_backbone
        from taskscout.embeddings.pool import pool_embeddings
        from taskscout.embeddings.similarity import cosine_scores
        from taskscout.embeddings.tupate import as_vector

        start = time.perf_counter()
        pool = pool_embeddings(db, method="lora", backbone=resolve_backbone(None).backbone_id)
        names = [s for s in sorted(pool) if s != target]
        scores = cosine_scores(
            as_vector(pool[target].tensor), torch.stack([as_vector(pool[s].tensor) for s in names])
        )
        seconds = time.perf_counter() - start
        best = int(scores.argmax())
        out = {
            "seconds": round(seconds, 2),
            "peak_rss_increase_mb": round(_maxrss_mb() - rss0, 1),
            "top": {"source": names[best], "score": float(scores[best])},
        }
    return out


def _phase(store: Path, phase: str, repeats: int, target: str) -> dict:
    cmd = [sys.executable, __file__, "--phase", phase, "--store", str(store)]
    cmd += ["--repeats", str(repeats), "--target", target]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--dim", type=int, default=12_288)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--store", default=None, help="Store folder (default: a temporary one).")
    ap.add_argument("--keep", action="store_true", help="Keep the temporary store.")
    ap.add_argument("--skip-unpacked", action="store_true")
    ap.add_argument("--target", default="syn00000")
    ap.add_argument("--phase", choices=["cold", "warm", "unpacked"], help=argparse.SUPPRESS)
    ap.add_argument("--out", default=str(RESULTS / "rank_scale.json"))
    args = ap.parse_args()
    if args.phase:
        print(json.dumps(measure(Path(args.store), args.phase, args.repeats, args.target)))
        return
    tmp = None
    if args.store is None:
        tmp = tempfile.mkdtemp(prefix="rank-scale-")
        store = Path(tmp) / "store"
    else:
        store = Path(args.store)
    build = {}
    if not (store / "store.sqlite").exists():
        build = build_store(store, args.n, args.dim, args.seed)
    try:
        cold = _phase(store, "cold", 1, args.target)
        warm = _phase(store, "warm", args.repeats, args.target)
        unpacked = None if args.skip_unpacked else _phase(store, "unpacked", 1, args.target)
        pack_bytes = sum(f.stat().st_size for f in (store / "cache" / "packed").glob("*.npy"))
    finally:
        if tmp is not None and not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    line = {
        "benchmark": "rank_scale",
        "n": args.n,
        "dim": args.dim,
        **build,
        "cold_s": cold["median_s"],
        "warm_median_s": warm["median_s"],
        "warm_s": warm["seconds"],
        "cold_peak_rss_increase_mb": cold["peak_rss_increase_mb"],
        "warm_peak_rss_increase_mb": warm["peak_rss_increase_mb"],
        "unpacked_s": None if unpacked is None else unpacked["seconds"],
        "unpacked_peak_rss_increase_mb": None
        if unpacked is None
        else unpacked["peak_rss_increase_mb"],
        "same_top_source": unpacked is None or unpacked["top"]["source"] == warm["top"]["source"],
        "pack_mb": round(pack_bytes / 2**20, 1),
        "under_1s": warm["median_s"] < 1.0,
        "n_sources": warm["n_sources"],
        "cpu": platform.processor() or platform.machine(),
        "cores": len(os.sched_getaffinity(0)),
    }
    print(json.dumps(line))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(line) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
