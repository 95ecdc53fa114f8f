"""What the transfer campaign costs on this machine: every task's run time under the measured
protocol, timed with the real trainer, and the CPU time of the campaign's missing parts.

    PYTHONPATH=src python benchmarks/campaign_cost.py --data-dir ../shared/data --threads 1

The protocol is the campaign's (``benchmarks/gpu_session.py``, the ``transfer`` defaults):
500 training examples, dev capped at 1,000 (stratified), batch 32, ``min_steps`` 180 (so 12
epochs at 500 examples), a dev evaluation after every epoch, the CPU's default precision (bf16
autocast where the CPU has native bf16, as the trainer decides).

For each of the 12 TaskWeb-overlap tasks and each method, the real trainer
(:func:`taskscout.tuning.trainer.train_model`) trains ``--time-train`` examples of the task for
2 epochs and evaluates ``--time-dev`` dev examples after each (a seeded random sample, so the
text lengths are the task's); from its own timers:

    seconds per run = steps(500) x epochs(500) x train_s_per_step
                      + epochs(500) x n_dev(capped) x eval_s_per_example

(the first step's warm-up is included in the per-step time, so the estimate errs high by a few
per cent). A transfer costs one run of its *target* (the source checkpoint is loaded, then
the target is trained). The campaign parts:

* ``lora-wic``: wic as the target with the other 11 tasks as sources, seeds 0-2: 11 x 3 source
  runs + 3 baselines + 33 transfers;
* ``full-rte+cb``: rte and cb as targets, ``full``, seeds 0-2: the 12 tasks' runs x 3 (sources
  and both baselines) + 2 x 33 transfers.

Reported in core-seconds (one torch thread per run, ``--threads``) and in wall hours at one run
per core on ``os.cpu_count()`` cores. Prints one JSON line; ``--out`` also writes it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

from taskscout.backbone import load_backbone
from taskscout.data import load_task
from taskscout.encode import encode_task
from taskscout.evaluation.external import TASKWEB_OVERLAP
from taskscout.tuning.config import RECIPE_MIN_STEPS, TuneConfig
from taskscout.tuning.device import cpu_has_fast_bf16
from taskscout.tuning.run import build_model
from taskscout.tuning.trainer import train_model
from taskscout.util import set_torch_threads

TASKWEB12 = list(TASKWEB_OVERLAP)
PROTOCOL = dict(max_train=500, max_dev=1000, min_steps=RECIPE_MIN_STEPS)
SEEDS = 3


def time_task(task: str, method: str, args) -> dict:
    """Per-step and per-dev-example seconds of ``method`` on ``task`` and the protocol's
    run length for it (a fresh backbone: the methods change the encoder in place)."""
    _, tokenizer, encoder = load_backbone(None)
    full = load_task(
        task,
        data_dir=args.data_dir,
        seed=0,
        max_train=PROTOCOL["max_train"],
        max_dev=PROTOCOL["max_dev"],
    )
    proto = TuneConfig(method=method, **PROTOCOL).resolved("cpu")
    n_train, n_dev = len(full.train), len(full.dev)
    epochs = proto.epochs_for(n_train)
    steps = -(-n_train // proto.batch_size) * epochs

    small = load_task(
        task, data_dir=args.data_dir, seed=0, max_train=args.time_train, max_dev=args.time_dev
    )
    timing = TuneConfig(
        method=method, max_train=args.time_train, max_dev=args.time_dev, epochs=2, min_steps=None
    ).resolved("cpu")
    train, dev = encode_task(small, tokenizer, timing.max_len)
    model = build_model(timing, small, encoder, seed=0)
    res = train_model(
        model, train, dev, timing, seed=0, pad_id=tokenizer.pad_token_id, progress=False
    )
    timed_steps = -(-len(train) // timing.batch_size) * 2
    step_s = res.train_time_s / timed_steps
    eval_s = res.eval_time_s / (2 * len(dev))
    run_s = steps * step_s + epochs * n_dev * eval_s
    return {
        "task": task,
        "method": method,
        "n_train": n_train,
        "n_dev": n_dev,
        "epochs": epochs,
        "steps": steps,
        "mean_tokens": round(float(sum(train.lengths)) / len(train), 1),
        "train_s_per_step": round(step_s, 4),
        "eval_ms_per_example": round(1000 * eval_s, 3),
        "run_s": round(run_s, 1),
        "train_share": round(steps * step_s / run_s, 3),
    }


def campaign_parts(cost: dict[tuple[str, str], float]) -> dict:
    """Core-seconds of the campaign's missing parts (module docstring)."""
    n_sources = len(TASKWEB12) - 1
    lora = sum(cost[(t, "lora")] for t in TASKWEB12)  # 11 sources + the wic baseline
    lora_wic = SEEDS * (lora + n_sources * cost[("wic", "lora")])
    full = sum(cost[(t, "full")] for t in TASKWEB12)
    full_rte_cb = SEEDS * (full + n_sources * (cost[("rte", "full")] + cost[("cb", "full")]))
    return {"lora-wic": round(lora_wic), "full-rte+cb": round(full_rte_cb)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default="../shared/data")
    ap.add_argument("--methods", default="lora,full")
    ap.add_argument("--tasks", default=",".join(TASKWEB12))
    ap.add_argument("--time-train", type=int, default=128, help="examples timed per task")
    ap.add_argument("--time-dev", type=int, default=128, help="dev examples timed per task")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    set_torch_threads(args.threads)
    torch.manual_seed(0)
    start = time.perf_counter()
    rows = []
    for method in args.methods.split(","):
        for task in args.tasks.split(","):
            row = time_task(task, method, args)
            print(json.dumps(row), file=sys.stderr, flush=True)
            rows.append(row)
    cost = {(r["task"], r["method"]): r["run_s"] for r in rows}
    parts = campaign_parts(cost) if len(cost) == 2 * len(TASKWEB12) else {}
    cores = os.cpu_count() or 1
    result = {
        "benchmark": "campaign_cost",
        "protocol": {**PROTOCOL, "batch_size": TuneConfig().batch_size, "seeds": SEEDS},
        "bf16": cpu_has_fast_bf16(),
        "threads_per_run": args.threads,
        "cores": cores,
        "cpu": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "loadavg_1m_at_end": os.getloadavg()[0],
        "runs": rows,
        "campaign_core_s": parts,
        "campaign_wall_h_at_one_run_per_core": {
            k: round(v / cores / 3600, 2) for k, v in parts.items()
        },
        "wall_s": round(time.perf_counter() - start, 1),
    }
    line = json.dumps(result)
    print(line)
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
