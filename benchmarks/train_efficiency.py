"""Training efficiency against the machine's limit: achieved model FLOP/s of a training step vs
the measured matmul throughput at the model's shapes, for lora, bitfit and full, beside a plain
Hugging Face ``Trainer`` (+ peft).

    PYTHONPATH=src python benchmarks/train_efficiency.py --data-dir ../shared/data

1. **Matmul throughput** (fp32 unless ``--bf16 on``): ``torch.matmul`` at the backbone's shapes
   for M = batch x mean padded width of the real training batches: (M,H)@(H,H) (q/k/v/output),
   (M,H)@(H,F) and (M,F)@(F,H) (FFN), the weight-gradient shapes (H,M)@(M,H), (H,M)@(M,F),
   (F,M)@(M,H), and the attention's batched (B*heads, W, d)@(B*heads, d, W). Each: median
   seconds over ``--matmul-reps`` timed calls after warm-up; FLOPs = 2*m*k*n. The reference
   "model-shape throughput" is the FLOP-weighted mix of one layer's dense linears (4 HxH, 1
   HxF, 1 FxH), forward shapes (lora/bitfit) or forward + weight-gradient shapes (full).
2. **Analytic FLOPs of a training step** over the real (unpadded) sequence lengths l of every
   example (the *useful* FLOPs; the padded count uses each batch's width instead), per layer:
   dense linears 2*(4H^2 + 2HF) per token, attention 4*H*l^2 per sequence (QK^T and AV).
   Forward + backward: full trains everything, 3x the forward (activation + weight
   gradients); lora/bitfit freeze the encoder's weights: linears 2x (no weight-gradient
   FLOPs, activation gradients still flow), attention 3x (it has no weights: gradients for
   both inputs); LoRA (r=8 on query and value) adds 3 * 8*H*r per token per layer. Embedding
   lookups, LayerNorm, GELU, softmax, the head and the optimiser are not counted (they are
   not matmuls; the head is 2*H*labels per example). Activation gradients are counted down to
   the first layer's input (an over-count of one layer's input gradient for frozen encoders,
   < 1/12 of the linear backward).
3. **Training runs**: ``benchmarks/tune_speed.py``'s workers (each in a fresh subprocess):
   ours (``taskscout.tuning.trainer.train_model``; its training-loop seconds) and the plain HF
   ``Trainer`` (+ peft LoRA / hand-unfrozen biases / nothing for full), same examples, batch
   size, epochs, learning rate, threads and precision. Achieved FLOP/s = useful FLOPs /
   training seconds (both sides train the same examples, so the same useful FLOPs).

stdout: one JSON line (also written to ``benchmarks/results/train_efficiency.json``); medians
over ``--repeats``. Goal: ours >= 70 % of the model-shape matmul throughput and >= 3x HF.
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

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
METHODS = ("lora", "bitfit", "full")
LORA_R = 8


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _tune_speed():
    """``benchmarks/tune_speed.py`` as a module (its workers, HF setup and helpers)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("tune_speed", HERE / "tune_speed.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------------------------
# analytic FLOPs
# --------------------------------------------------------------------------------------------
def step_flops(lengths, widths, *, method: str, hidden: int, ffn: int, layers: int) -> dict:
    """Forward+backward FLOPs of training on sequences of real ``lengths`` (useful) and, per
    sequence, its batch's padded ``widths`` (executed); see the module docstring."""
    lin_fwd = 2 * (4 * hidden * hidden + 2 * hidden * ffn)  # per token per layer
    lin_mult = 3 if method == "full" else 2
    attn_mult = 3
    extra = 3 * 8 * hidden * LORA_R if method == "lora" else 0  # 2 adapters x (A, B) x 2 FLOPs

    def total(ls):
        tok = sum(ls)
        sq = sum(x * x for x in ls)
        return layers * ((lin_mult * lin_fwd + extra) * tok + attn_mult * 4 * hidden * sq)

    useful, padded = total(lengths), total(widths)
    return {"useful": useful, "padded": padded, "padding_overhead": padded / useful}


# --------------------------------------------------------------------------------------------
# matmul throughput
# --------------------------------------------------------------------------------------------
def _time_matmul(torch, a, b, reps: int, dtype) -> float:
    """Median seconds of ``a @ b`` (``reps`` timed calls after 3 warm-ups)."""
    a, b = a.to(dtype), b.to(dtype)
    for _ in range(3):
        torch.matmul(a, b)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        torch.matmul(a, b)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def matmul_throughput(
    *, m: int, batch: int, width: int, hidden, ffn, heads, reps, bf16, seed=0
) -> dict:
    import torch

    torch.manual_seed(seed)
    dtype = torch.bfloat16 if bf16 else torch.float32
    d = hidden // heads
    shapes = {
        "fwd_HxH": (m, hidden, hidden),
        "fwd_HxF": (m, hidden, ffn),
        "fwd_FxH": (m, ffn, hidden),
        "wgrad_HxH": (hidden, m, hidden),
        "wgrad_HxF": (hidden, m, ffn),
        "wgrad_FxH": (ffn, m, hidden),
        "square_1024": (1024, 1024, 1024),
    }
    out = {}
    for name, (a, k, n) in shapes.items():
        s = _time_matmul(torch, torch.randn(a, k), torch.randn(k, n), reps, dtype)
        out[name] = {"shape": [a, k, n], "s": s, "gflops": 2 * a * k * n / s / 1e9}
    bh = batch * heads
    s = _time_matmul(torch, torch.randn(bh, width, d), torch.randn(bh, d, width), reps, dtype)
    out["attn_scores"] = {
        "shape": [bh, width, d, width],
        "s": s,
        "gflops": 2 * bh * width * d * width / s / 1e9,
    }

    def mix(names_weights):
        flops = sum(w * 2 * math_prod(out[n]["shape"]) for n, w in names_weights)
        secs = sum(w * out[n]["s"] for n, w in names_weights)
        return flops / secs / 1e9

    fwd = [("fwd_HxH", 4), ("fwd_HxF", 1), ("fwd_FxH", 1)]
    wgrad = [("wgrad_HxH", 4), ("wgrad_HxF", 1), ("wgrad_FxH", 1)]
    return {
        "dtype": str(dtype).replace("torch.", ""),
        "m_tokens": m,
        "shapes": {k: {**v, "gflops": round(v["gflops"], 2)} for k, v in out.items()},
        "layer_mix_fwd_gflops": round(mix(fwd), 2),
        "layer_mix_fwd_wgrad_gflops": round(mix(fwd + wgrad), 2),
    }


def math_prod(xs) -> int:
    p = 1
    for x in xs:
        p *= x
    return p


# --------------------------------------------------------------------------------------------
# where a training step's time goes (torch.profiler, outside the timed runs)
# --------------------------------------------------------------------------------------------
MATMUL_OPS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm")


def op_profile(ts, ns, steps: int) -> dict:
    """Self CPU time of ``steps`` training steps of our model (``tune_speed._build_ours``)
    by op: dense matmuls (mm/addmm), attention's batched matmuls (bmm/baddbmm), and the rest
    (softmax, GELU, LayerNorm, dropout, copies, optimiser, ...): the top 8 of those."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from taskscout.encode import collate, length_grouped_batches
    from taskscout.tuning.trainer import make_optimizer

    _, tokenizer, model, train, _, config = ts._build_ours(ns)
    optimizer = make_optimizer(model, config.lr, config.weight_decay)
    batches = length_grouped_batches(train.lengths, config.batch_size, random.Random(0))
    model.train()

    def step(idx):
        batch = collate(train, idx, tokenizer.pad_token_id)
        loss = model.loss(model(batch), batch["labels"])
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for idx in batches[:2]:  # warm-up
        step(idx)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for idx in batches[2 : 2 + steps]:
            step(idx)
    by_op: dict[str, float] = {}
    for ev in prof.key_averages():
        by_op[ev.key] = by_op.get(ev.key, 0.0) + ev.self_cpu_time_total
    total = sum(by_op.values())
    dense = sum(by_op.get(k, 0.0) for k in ("aten::mm", "aten::addmm"))
    batched = sum(by_op.get(k, 0.0) for k in ("aten::bmm", "aten::baddbmm"))
    rest = sorted(((v, k) for k, v in by_op.items() if k not in MATMUL_OPS), reverse=True)
    return {
        "steps": steps,
        "dense_matmul_share": round(dense / total, 3),
        "attention_bmm_share": round(batched / total, 3),
        "other_share": round(1 - (dense + batched) / total, 3),
        "top_other": {k: round(v / total, 3) for v, k in rest[:8]},
        "torch_threads": torch.get_num_threads(),
    }


# --------------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="sst2")
    ap.add_argument("--data-dir", default="../shared/data")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--max-train", type=int, default=2000)
    ap.add_argument("--max-dev", type=int, default=64, help="dev rows (evaluation is untimed)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-len", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--matmul-reps", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--bf16", choices=["on", "off"], default="off")
    ap.add_argument("--no-hf", action="store_true", help="skip the plain HF Trainer side")
    ap.add_argument(
        "--profile-steps",
        type=int,
        default=8,
        help="steps per method profiled by op with torch.profiler (0: none; untimed)",
    )
    ap.add_argument("--out", default=str(RESULTS / "train_efficiency.json"))
    args = ap.parse_args()
    t_start = time.perf_counter()

    import torch
    from transformers import AutoConfig

    from taskscout.backbone import load_backbone, resolve_backbone
    from taskscout.encode import encode_task, length_grouped_batches
    from taskscout.util import available_cores, set_torch_threads

    ts = _tune_speed()
    threads = set_torch_threads(args.threads)
    cfg = AutoConfig.from_pretrained(resolve_backbone(None).location)
    hidden, ffn = cfg.hidden_size, cfg.intermediate_size
    layers, heads = cfg.num_hidden_layers, cfg.num_attention_heads
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = set(methods) - set(METHODS)
    if unknown:
        raise SystemExit(f"unknown method(s) {sorted(unknown)}; choose from {list(METHODS)}")

    data = ts._load_data(args)
    _, tokenizer, _ = load_backbone(None)
    train, _ = encode_task(data, tokenizer, args.max_len)
    lengths = list(train.lengths)
    # the trainer's epoch-1 batches (length-grouped, seeded as in train_model)
    batches = length_grouped_batches(lengths, args.batch_size, random.Random(args.seed * 1000 + 1))
    widths_by_example = [max(lengths[i] for i in b) for b in batches for _ in b]
    mean_width = statistics.fmean(max(lengths[i] for i in b) for b in batches)
    m = round(args.batch_size * mean_width)
    log(
        f"{data.spec.name}: {len(lengths)} train examples, {len(batches)} steps/epoch, mean "
        f"length {statistics.fmean(lengths):.1f}, mean padded width {mean_width:.1f}"
    )
    log("matmul throughput at the model's shapes ...")
    mm = matmul_throughput(
        m=m,
        batch=args.batch_size,
        width=round(mean_width),
        hidden=hidden,
        ffn=ffn,
        heads=heads,
        reps=args.matmul_reps,
        bf16=args.bf16 == "on",
    )
    log(
        f"  layer mix {mm['layer_mix_fwd_gflops']:.1f} GFLOP/s (fwd), "
        f"{mm['layer_mix_fwd_wgrad_gflops']:.1f} (fwd+wgrad); square 1024: "
        f"{mm['shapes']['square_1024']['gflops']:.1f}; attention "
        f"{mm['shapes']['attn_scores']['gflops']:.1f}"
    )

    results = {}
    mm_per_method = {}
    for method in methods:
        # the machine is shared: measure the matmul reference again right before each method
        mm_now = matmul_throughput(
            m=m,
            batch=args.batch_size,
            width=round(mean_width),
            hidden=hidden,
            ffn=ffn,
            heads=heads,
            reps=args.matmul_reps,
            bf16=args.bf16 == "on",
        )
        mm_per_method[method] = {
            k: mm_now[k] for k in ("layer_mix_fwd_gflops", "layer_mix_fwd_wgrad_gflops")
        }
        flops = step_flops(
            lengths, widths_by_example, method=method, hidden=hidden, ffn=ffn, layers=layers
        )
        ns = SimpleNamespace(
            task=args.task,
            data_dir=args.data_dir,
            method=method,
            max_train=args.max_train,
            max_dev=args.max_dev,
            batch_size=args.batch_size,
            eval_batch_size=128,
            max_len=args.max_len,
            epochs=1,
            seed=args.seed,
            bf16=args.bf16,
            profile_steps=len(batches),
        )
        ns.argv = [
            x
            for k in (
                "task",
                "data_dir",
                "method",
                "max_train",
                "max_dev",
                "batch_size",
                "eval_batch_size",
                "max_len",
                "epochs",
                "seed",
                "bf16",
                "profile_steps",
            )
            for x in (f"--{k.replace('_', '-')}", str(getattr(ns, k)))
        ] + ["--threads", str(threads)]
        ours, hf = [], []
        for rep in range(args.repeats):
            ours.append(ts.spawn(ns, "ours"))
            if not args.no_hf:
                hf.append(ts.spawn(ns, "hf"))
            log(
                f"[{method} {rep + 1}/{args.repeats}] ours {ours[-1]['train_s']:.1f} s"
                + (f", HF {hf[-1]['train_s']:.1f} s" if hf else "")
            )
        key = "layer_mix_fwd_wgrad_gflops" if method == "full" else "layer_mix_fwd_gflops"
        ref = statistics.median([mm[key], mm_now[key]])  # before the runs and just before
        ours_s = statistics.median(r["train_s"] for r in ours)
        row = {
            "train_examples": ours[0]["train_examples"],
            "steps": len(batches),
            "tflop_useful": round(flops["useful"] / 1e12, 4),
            "padding_overhead": round(flops["padding_overhead"], 3),
            "matmul_reference_gflops": round(ref, 2),
            "ours_train_s": round(ours_s, 2),
            "ours_gflops": round(flops["useful"] / ours_s / 1e9, 2),
            "ours_gflops_padded": round(flops["padded"] / ours_s / 1e9, 2),
            "ours_share_of_matmul": round(flops["useful"] / ours_s / 1e9 / ref, 3),
            "ours_all_train_s": [round(r["train_s"], 2) for r in ours],
            "ours_dev_score": [round(r["dev_score"], 2) for r in ours],
        }
        if hf:
            hf_s = statistics.median(r["train_s"] for r in hf)
            row.update(
                hf_train_s=round(hf_s, 2),
                hf_gflops=round(flops["useful"] / hf_s / 1e9, 2),
                hf_share_of_matmul=round(flops["useful"] / hf_s / 1e9 / ref, 3),
                hf_all_train_s=[round(r["train_s"], 2) for r in hf],
                speedup_vs_hf=round(hf_s / ours_s, 3),
            )
        log(
            f"  {method}: {row['ours_gflops']:.1f} GFLOP/s = "
            f"{100 * row['ours_share_of_matmul']:.0f}% of {ref:.1f}"
            + (f"; {row['speedup_vs_hf']:.2f}x HF" if hf else "")
        )
        if args.profile_steps:
            row["op_profile"] = op_profile(ts, ns, args.profile_steps)
            log(f"  {method} op profile: {row['op_profile']}")
        results[method] = row

    result = {
        "benchmark": "train_efficiency",
        "task": data.spec.name,
        "n_train": len(lengths),
        "batch_size": args.batch_size,
        "max_len": args.max_len,
        "mean_length": round(statistics.fmean(lengths), 2),
        "mean_padded_width": round(mean_width, 2),
        "precision": "bf16 autocast" if args.bf16 == "on" else "fp32",
        "backbone": {"hidden": hidden, "ffn": ffn, "layers": layers, "heads": heads},
        "matmul": mm,
        "matmul_before_each_method": mm_per_method,
        "methods": results,
        "goal": {"share_of_matmul": 0.7, "speedup_vs_hf": 3.0},
        "repeats": args.repeats,
        "torch_threads": threads,
        "torch": torch.__version__,
        "available_cores": available_cores(),
        "cpu": ts.cpu_name(),
        "loadavg_1m_at_end": os.getloadavg()[0],
        "wall_s": round(time.perf_counter() - t_start, 1),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
