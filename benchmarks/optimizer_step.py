"""The trainer's fused AdamW against torch's per-tensor loop, side by side in one process.

One model per implementation (the same initial weights), the same length-grouped batches of
the real task, rounds interleaved (fused, loop, fused, loop, ...) so that load changes hit
both. Each round times ``--steps`` whole training steps (forward, backward, optimizer step,
zero_grad) and, separately, the optimizer steps alone. Prints one JSON object: the median
seconds per step for each side, their ratio, and the optimizer's share of a step.

    PYTHONPATH=src python benchmarks/optimizer_step.py --data-dir ../shared/data \
        --method full --threads 1 --rounds 5 --steps 8

Defaults: sst2, 1,000 examples, batch 32, fp32 (as ``train_efficiency.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace

from train_efficiency import _tune_speed  # this script's folder is on sys.path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="sst2")
    ap.add_argument("--data-dir", default="../shared/data")
    ap.add_argument("--method", default="full")
    ap.add_argument("--max-train", type=int, default=1000)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-len", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=8, help="training steps timed per round")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--bf16", choices=["on", "off"], default="off")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    import torch

    from taskscout.encode import collate, length_grouped_batches
    from taskscout.tuning.trainer import autocast_context, make_optimizer

    torch.set_num_threads(args.threads)
    ts = _tune_speed()  # builds our model on the real task
    ns = SimpleNamespace(
        task=args.task,
        data_dir=args.data_dir,
        method=args.method,
        max_train=args.max_train,
        max_dev=32,
        batch_size=args.batch_size,
        eval_batch_size=128,
        max_len=args.max_len,
        epochs=1,
        seed=args.seed,
        bf16=args.bf16,
    )
    sides = {}
    for name in ("fused", "loop"):
        _, tokenizer, model, train, _, config = ts._build_ours(ns)  # same seed: same weights
        opt = make_optimizer(model, config.lr, config.weight_decay)
        if name == "loop":
            groups = [{**g, "params": list(g["params"])} for g in opt.param_groups]
            for g in groups:
                g.pop("fused", None)
                g.pop("foreach", None)
            opt = torch.optim.AdamW(groups, lr=config.lr, foreach=False)
        sides[name] = (model, opt)
    batches = length_grouped_batches(train.lengths, args.batch_size, random.Random(args.seed))
    need = args.rounds * args.steps + 2
    batches = [batches[i % len(batches)] for i in range(need)]
    data = [collate(train, idx, tokenizer.pad_token_id) for idx in batches]

    def run(model, opt, chunk) -> tuple[float, float]:
        model.train()
        total = opt_s = 0.0
        for batch in chunk:
            t0 = time.perf_counter()
            with autocast_context(config.bf16):
                logits = model(batch)
            model.loss(logits, batch["labels"]).backward()
            t1 = time.perf_counter()
            opt.step()
            opt.zero_grad(set_to_none=True)
            t2 = time.perf_counter()
            total += t2 - t0
            opt_s += t2 - t1
        return total / len(chunk), opt_s / len(chunk)

    for model, opt in sides.values():  # warm-up
        run(model, opt, data[:2])
    per_step = {name: [] for name in sides}
    per_opt = {name: [] for name in sides}
    t_start = time.perf_counter()
    for r in range(args.rounds):
        chunk = data[2 + r * args.steps : 2 + (r + 1) * args.steps]
        order = list(sides) if r % 2 == 0 else list(reversed(sides))
        for name in order:
            step_s, opt_s = run(*sides[name], chunk)
            per_step[name].append(step_s)
            per_opt[name].append(opt_s)
    med = {n: statistics.median(v) for n, v in per_step.items()}
    med_opt = {n: statistics.median(v) for n, v in per_opt.items()}
    n_params = sum(p.numel() for p in sides["fused"][0].parameters() if p.requires_grad)
    result = {
        "benchmark": "optimizer_step",
        "task": args.task,
        "method": args.method,
        "trainable_params": n_params,
        "batch_size": args.batch_size,
        "precision": "bf16" if config.bf16 else "fp32",
        "rounds": args.rounds,
        "steps_per_round": args.steps,
        "step_s_median": {n: round(v, 4) for n, v in med.items()},
        "optimizer_s_median": {n: round(v, 4) for n, v in med_opt.items()},
        "optimizer_share_of_step": {n: round(med_opt[n] / med[n], 3) for n in med},
        "step_speedup_fused_vs_loop": round(med["loop"] / med["fused"], 3),
        "optimizer_speedup_fused_vs_loop": round(med_opt["loop"] / med_opt["fused"], 2),
        "per_round_step_s": {n: [round(x, 4) for x in v] for n, v in per_step.items()},
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "loadavg_1m_at_end": os.getloadavg()[0],
        "wall_s": round(time.perf_counter() - t_start, 1),
    }
    text = json.dumps(result)
    print(text)
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
