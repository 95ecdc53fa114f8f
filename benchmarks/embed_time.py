"""Time to embed a NEW target task with the early checkpoint, tuning included, per method.

    python benchmarks/embed_time.py --task rte --data-dir ../shared/data --max-train 2000 \\
        --methods lora,bitfit,prefix,prompt --epochs 2

Goal: under 90 s for lora (2,000 training examples, 2 epochs, full dev) on this CPU.

For each method, in a fresh subprocess and a fresh temporary store (so nothing is reused: no
stored run, no tokenisation cache, no backbone already in memory), times one call

    taskscout.api.embed(task, method=m, checkpoint="early", store=tmp, data_dir=...,
                        max_train=..., epochs=2, early_epochs=2, progress=False)

from the call to holding the embedding tensor (``total_s``; Python imports are excluded and
reported apart as ``import_s``). The breakdown comes from timing wrappers the worker puts around
the functions ``taskscout.api`` calls (the package code is not changed):

* ``data_load_s`` (``load_task``) and ``tokenise_s`` (``encode_task``, including writing its
  cache file); their sum is ``data_and_tokenise_s``;
* ``backbone_load_s``: ``load_backbone`` inside ``tune`` (reads the weights from disk);
* ``train_s`` and ``eval_s``: from the run record's ``config["timing"]`` (training loops, and
  the dev evaluation after every epoch); ``train_model_other_s``: the rest of ``train_model``
  (checkpoint copies, set-up);
* ``save_run_s``: ``RunStore.save_run`` (writing checkpoints and the record);
* ``embedding_s``: ``embedding_of_run`` (rebuild the method, load the early checkpoint, compute
  and store the TuPaTE vector);
* ``other_s``: everything else in ``total_s``.

stdout: one JSON line per method, then a summary JSON line; all of it is also written to
benchmarks/results/embed_time_<task>.json. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
GOAL_S = {"lora": 90.0}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# --------------------------------------------------------------------------------------------
# worker: one method, fresh process, fresh store
# --------------------------------------------------------------------------------------------
class PhaseTimer:
    """Accumulates wall time per call path ("tune/load_task", "embedding_of_run", ...)."""

    def __init__(self):
        self.stack: list[str] = []
        self.seconds: dict[str, float] = {}

    def wrap(self, fn, name: str):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            path = "/".join([*self.stack, name])
            self.stack.append(name)
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.stack.pop()
                self.seconds[path] = self.seconds.get(path, 0.0) + time.perf_counter() - start

        return wrapper

    def get(self, path: str) -> float:
        return self.seconds.get(path, 0.0)


def run_worker(args) -> None:
    t_import = time.perf_counter()
    import torch

    import taskscout.api as api
    from taskscout.store import RunStore

    import_s = time.perf_counter() - t_import
    timer = PhaseTimer()
    for name in (
        "tune",
        "embedding_of_run",
        "load_task",
        "load_backbone",
        "encode_task",
        "train_model",
    ):
        setattr(api, name, timer.wrap(getattr(api, name), name))
    RunStore.save_run = timer.wrap(RunStore.save_run, "save_run")

    tune_kwargs = dict(
        data_dir=args.data_dir,
        max_train=args.max_train,
        max_dev=args.max_dev,
        epochs=args.epochs,
        early_epochs=args.early_epochs,
        seed=args.seed,
        progress=False,
    )
    with tempfile.TemporaryDirectory(prefix="embed_time_") as tmp:
        store = RunStore(Path(tmp) / "store")
        start = time.perf_counter()
        emb = api.embed(
            args.task, method=args.worker, checkpoint="early", store=store, **tune_kwargs
        )
        tensor = emb.tensor
        total_s = time.perf_counter() - start
        run = store.get_run(emb.record.run_id)
    timing = run.config.get("timing", {})
    train_s, eval_s = float(timing.get("train_s", 0.0)), float(timing.get("eval_s", 0.0))
    tune_s = timer.get("tune")
    parts = {
        "data_load_s": timer.get("tune/load_task"),
        "tokenise_s": timer.get("tune/encode_task"),
        "backbone_load_s": timer.get("tune/load_backbone"),
        "train_s": train_s,
        "eval_s": eval_s,
        "train_model_other_s": max(0.0, timer.get("tune/train_model") - train_s - eval_s),
        "save_run_s": timer.get("tune/save_run"),
    }
    parts["tune_other_s"] = max(
        0.0, tune_s - sum(parts.values())
    )  # store lookups, model construction, put_task
    parts["embedding_s"] = timer.get("embedding_of_run")
    parts["other_s"] = max(0.0, total_s - tune_s - parts["embedding_s"])
    breakdown = {
        "data_and_tokenise_s": parts["data_load_s"] + parts["tokenise_s"],
        **parts,
    }
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = {
        "benchmark": "embed_time",
        "task": run.task,
        "method": args.worker,
        "total_s": round(total_s, 2),
        "goal_s": GOAL_S.get(args.worker),
        "breakdown": {k: round(v, 3) for k, v in breakdown.items()},
        "tune_s": round(tune_s, 3),
        "import_s": round(import_s, 3),
        "num_train": run.num_train,
        "num_dev": run.num_dev,
        "epochs": args.epochs,
        "early_epoch": run.checkpoints["early"].epoch,
        "dev_score_early": round(run.checkpoints["early"].dev_score, 2),
        "embedding_shape": list(tensor.shape),
        "layer_reduce": emb.layer_reduce,
        "bf16": run.config["train"]["bf16"],
        "lr": run.config["train"]["lr"],
        "torch_threads": torch.get_num_threads(),
        "peak_rss_mb": round(rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024, 1),
        "run_id": run.run_id,
    }
    Path(args.result_file).write_text(json.dumps(result))


# --------------------------------------------------------------------------------------------
# parent
# --------------------------------------------------------------------------------------------
def spawn(args, method: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        result_file = Path(tmp) / "result.json"
        cmd = [
            sys.executable,
            str(Path(__file__).resolve()),
            *args.argv,
            "--worker",
            method,
            "--result-file",
            str(result_file),
        ]
        start = time.perf_counter()
        proc = subprocess.run(cmd, stdout=subprocess.DEVNULL)
        if proc.returncode != 0 or not result_file.is_file():
            raise SystemExit(f"{method} worker failed with exit code {proc.returncode}")
        out = json.loads(result_file.read_text())
    out["process_wall_s"] = round(time.perf_counter() - start, 2)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="rte")
    ap.add_argument("--data-dir", default="../shared/data")
    ap.add_argument("--max-train", type=int, default=2000)
    ap.add_argument("--max-dev", type=int, default=None, help="default: the full dev set")
    ap.add_argument("--methods", default="lora,bitfit,prefix,prompt")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--early-epochs", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="result file (default: benchmarks/results/...)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--result-file", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        run_worker(args)
        return

    args.argv = [
        "--task", args.task, "--data-dir", args.data_dir, "--max-train", str(args.max_train),
        "--epochs", str(args.epochs), "--early-epochs", str(args.early_epochs),
        "--seed", str(args.seed),
    ]  # fmt: skip
    if args.max_dev is not None:
        args.argv += ["--max-dev", str(args.max_dev)]

    rows = []
    for method in [m.strip() for m in args.methods.split(",") if m.strip()]:
        log(f"embedding {args.task} with {method} ...")
        row = spawn(args, method)
        print(json.dumps(row), flush=True)
        rows.append(row)
    first = rows[0] if rows else {}
    summary = {
        "benchmark": "embed_time_summary",
        "task": first.get("task", args.task),
        "num_train": first.get("num_train"),
        "num_dev": first.get("num_dev"),
        "epochs": args.epochs,
        "early_epochs": args.early_epochs,
        "total_s": {r["method"]: r["total_s"] for r in rows},
        "train_s": {r["method"]: r["breakdown"]["train_s"] for r in rows},
        "goal_s": GOAL_S,
        "meets_goal": {
            r["method"]: r["total_s"] < GOAL_S[r["method"]] for r in rows if r["method"] in GOAL_S
        },
        "torch_threads": first.get("torch_threads"),
        "cpu": cpu_name(),
        "loadavg_1m_at_end": os.getloadavg()[0],
    }
    print(json.dumps(summary), flush=True)
    out = Path(args.out) if args.out else RESULTS / f"embed_time_{summary['task']}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"runs": rows, "summary": summary}, indent=1) + "\n")


if __name__ == "__main__":
    main()
