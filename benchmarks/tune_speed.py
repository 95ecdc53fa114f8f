"""Training and evaluation throughput: our trainer beside a plain Hugging Face ``Trainer`` + peft.

    python benchmarks/tune_speed.py --task sst2 --data-dir ../shared/data --method lora \\
        --max-train 2000 --max-dev 500 --batch-size 32 --max-len 128 --epochs 1 --repeats 3

Both sides tune the same method on the same examples (same backbone folder, batch size, epochs,
learning rate, warmup 6 %, weight decay 0.01, seed, torch thread count). Each measurement runs in
its own fresh subprocess, so peak RSS (``ru_maxrss``) is per side, in the order
ours/HF/ours/HF/... over ``--repeats``; medians are reported with the ratio ours/HF.

What is timed (tokenisation is done once before timing on both sides and is *excluded*, as are
imports, data loading, model loading and model construction):

* training: examples processed / wall seconds of the training loop. Ours: the epoch loops of
  ``taskscout.tuning.trainer.train_model`` (``TrainResult.train_time_s``; the per-epoch dev
  evaluation our trainer always runs is not counted). HF: ``trainer.train()`` end to end
  (``eval_strategy="no"``, so no evaluation inside).
* evaluation: dev examples / wall seconds of one full pass over dev after training. Ours:
  ``taskscout.tuning.trainer.evaluate``; HF: ``trainer.predict`` (+ the metric).

The HF side is the "plain" setup a user would write: ``AutoModelForSequenceClassification``
from the backbone folder, ``peft.get_peft_model`` (LoRA r=8, alpha=8 on query/value; prefix and
prompt with peft's stock prefix-tuning / P-tuning configs) or bitfit by unfreezing the layer
biases by hand, ``DataCollatorWithPadding`` and default sampling (random order, no length
grouping; evaluation in dataset order). Supported on the HF side: classification, pair
classification and regression tasks.

stdout: exactly one JSON line (also written to benchmarks/results/tune_speed_<task>_<method>.json);
progress and the ``--profile`` table go to stderr. ``--profile`` also runs our training loop for
``--profile-steps`` steps (outside the official timing, in its own subprocess) with
``time.perf_counter`` around collate, forward (+ loss), backward (+ grad clipping) and the
optimiser step (+ scheduler, zero_grad), and reports each phase's share of the step time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
HF_METHODS = {
    "lora": "peft LoraConfig(task_type='SEQ_CLS', r=8, lora_alpha=8, "
    "target_modules=['query', 'value'])",
    "bitfit": "biases inside encoder layers unfrozen by hand (+ classifier)",
    "prefix": "peft PrefixTuningConfig(task_type='SEQ_CLS', num_virtual_tokens=20)",
    "prompt": "peft PromptEncoderConfig(task_type='SEQ_CLS', num_virtual_tokens=20, "
    "encoder_reparameterization_type='MLP', encoder_hidden_size=200) (P-tuning; its MLP has "
    "3 linear layers, ours 2)",
    "full": "every parameter trained (no peft)",
}
HF_TASK_TYPES = ("classification", "pair_classification", "regression")


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


def peak_rss_mb() -> float:
    # ru_maxrss is in KiB on Linux, bytes on macOS
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def _bf16(args) -> bool:
    from taskscout.tuning.device import cpu_has_fast_bf16

    return {"auto": cpu_has_fast_bf16(), "on": True, "off": False}[args.bf16]


def _load_data(args):
    from taskscout.data import load_task

    return load_task(
        args.task,
        data_dir=args.data_dir,
        max_train=args.max_train,
        max_dev=args.max_dev,
        seed=args.seed,
    )


def hf_training_args(args, output_dir: str, lr: float, bf16: bool) -> dict:
    """The TrainingArguments of the HF side (transformers 5.x names; ``warmup_ratio`` is gone
    there: a float ``warmup_steps`` < 1 is the ratio)."""
    return dict(
        output_dir=output_dir,
        per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=args.eval_batch_size,
        num_train_epochs=args.epochs,
        learning_rate=lr,
        weight_decay=0.01,
        warmup_steps=0.06,
        logging_steps=10**9,
        save_strategy="no",
        eval_strategy="no",
        report_to=[],
        use_cpu=True,
        dataloader_num_workers=0,
        disable_tqdm=True,
        bf16=bf16,
        seed=args.seed,
    )


# --------------------------------------------------------------------------------------------
# workers (each in a fresh subprocess)
# --------------------------------------------------------------------------------------------
def _build_ours(args):
    import torch

    from taskscout.backbone import load_backbone
    from taskscout.encode import encode_task
    from taskscout.tuning.config import TuneConfig
    from taskscout.tuning.methods import build_method, get_method
    from taskscout.tuning.model import TaskModel

    data = _load_data(args)
    _, tokenizer, encoder = load_backbone(None)
    train, dev = encode_task(data, tokenizer, args.max_len)  # no disk cache: really tokenised
    torch.manual_seed(args.seed)
    model = TaskModel(build_method(args.method, encoder), data.spec)
    config = TuneConfig(
        method=args.method,
        epochs=args.epochs,
        early_epochs=args.epochs,
        batch_size=args.batch_size,
        eval_batch_size=args.eval_batch_size,
        lr=get_method(args.method).default_lr,
        max_len=args.max_len,
        bf16=_bf16(args),
    )
    return data, tokenizer, model, train, dev, config


def worker_ours(args) -> dict:
    from taskscout.tuning.trainer import evaluate, train_model

    _, tokenizer, model, train, dev, config = _build_ours(args)
    start = time.perf_counter()
    result = train_model(
        model, train, dev, config, seed=args.seed, pad_id=tokenizer.pad_token_id, progress=False
    )
    train_model_wall = time.perf_counter() - start
    t0 = time.perf_counter()
    score = evaluate(
        model,
        dev,
        pad_id=tokenizer.pad_token_id,
        batch_size=config.eval_batch_size,
        bf16=config.bf16,
    )
    eval_s = time.perf_counter() - t0
    return {
        "train_examples": result.examples_seen,
        "train_s": result.train_time_s,
        "train_model_wall_s": train_model_wall,
        "eval_examples": len(dev),
        "eval_s": eval_s,
        "dev_score": score,
        "lr": config.lr,
        "bf16": config.bf16,
    }


def _hf_rows(rows, spec, tokenizer, max_len):
    from taskscout.data import TaskType

    texts = [r["text"] for r in rows]
    pairs = [r.get("text_pair") for r in rows]
    kw = dict(truncation=True, max_length=max_len)
    if any(p is not None for p in pairs):
        enc = tokenizer(texts, [p or "" for p in pairs], **kw)
    else:
        enc = tokenizer(texts, **kw)
    if spec.type is TaskType.REGRESSION:
        labels = [float(r["label"]) for r in rows]
    else:
        index = {label: i for i, label in enumerate(spec.labels)}
        labels = [index[r["label"]] for r in rows]
    return [
        {
            "input_ids": enc["input_ids"][i],
            "token_type_ids": enc["token_type_ids"][i],
            "attention_mask": enc["attention_mask"][i],
            "labels": labels[i],
        }
        for i in range(len(rows))
    ]


def _hf_model(location: str, method: str, num_labels: int):
    from peft import LoraConfig, PrefixTuningConfig, PromptEncoderConfig, get_peft_model
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(location, num_labels=num_labels)
    if method == "full":
        return model
    if method == "bitfit":
        for name, param in model.named_parameters():
            trainable = (name.endswith(".bias") and ".layer." in name) or name.startswith(
                "classifier."
            )
            param.requires_grad_(trainable)
        return model
    if method == "lora":
        config = LoraConfig(
            task_type="SEQ_CLS", r=8, lora_alpha=8, target_modules=["query", "value"]
        )
    elif method == "prefix":
        config = PrefixTuningConfig(task_type="SEQ_CLS", num_virtual_tokens=20)
    elif method == "prompt":
        config = PromptEncoderConfig(
            task_type="SEQ_CLS",
            num_virtual_tokens=20,
            encoder_reparameterization_type="MLP",
            encoder_hidden_size=200,
        )
    else:  # pragma: no cover - filtered by the parent
        raise ValueError(method)
    return get_peft_model(model, config)


def worker_hf(args) -> dict:
    import numpy as np
    from transformers import (
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
        set_seed,
    )
    from transformers.utils import logging as hf_logging

    from taskscout.backbone import resolve_backbone
    from taskscout.data import TaskType
    from taskscout.tuning import task_metrics
    from taskscout.tuning.methods import get_method

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    data = _load_data(args)
    spec = data.spec
    location = resolve_backbone(None).location
    tokenizer = AutoTokenizer.from_pretrained(location)
    train_rows = _hf_rows(data.train, spec, tokenizer, args.max_len)  # tokenised before timing
    dev_rows = _hf_rows(data.dev, spec, tokenizer, args.max_len)
    set_seed(args.seed)
    regression = spec.type is TaskType.REGRESSION
    model = _hf_model(location, args.method, 1 if regression else len(spec.labels))
    lr = get_method(args.method).default_lr
    bf16 = _bf16(args)
    with tempfile.TemporaryDirectory() as out_dir:
        training_args = TrainingArguments(**hf_training_args(args, out_dir, lr, bf16))
        trainer = Trainer(
            model=model,
            args=training_args,
            train_dataset=train_rows,
            data_collator=DataCollatorWithPadding(tokenizer),
        )
        start = time.perf_counter()
        output = trainer.train()
        train_s = time.perf_counter() - start
        t0 = time.perf_counter()
        logits = trainer.predict(dev_rows).predictions
        logits = logits[0] if isinstance(logits, tuple) else logits
        if regression:
            pred = np.asarray(logits).reshape(-1).tolist()
        else:
            pred = [spec.labels[i] for i in np.asarray(logits).argmax(-1).tolist()]
        gold = [float(r["label"]) if regression else r["label"] for r in data.dev]
        score = task_metrics.score(spec.metric, pred, gold, positive_label=spec.positive_label)
        eval_s = time.perf_counter() - t0
    return {
        "train_examples": len(train_rows) * args.epochs,
        "train_s": train_s,
        "hf_train_runtime_s": output.metrics.get("train_runtime"),
        "eval_examples": len(dev_rows),
        "eval_s": eval_s,
        "dev_score": score,
        "lr": lr,
        "bf16": bf16,
        "optim": str(training_args.optim),
        "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
    }


def worker_profile(args) -> dict:
    """Our training loop, instrumented per phase (outside the official timing)."""
    import random

    import torch

    from taskscout.encode import collate, length_grouped_batches
    from taskscout.tuning.trainer import autocast_context, make_optimizer

    _, tokenizer, model, train, _, config = _build_ours(args)
    pad_id = tokenizer.pad_token_id
    steps = args.profile_steps
    total = steps
    warmup = max(1, round(config.warmup_ratio * total))
    optimizer = make_optimizer(model, config.lr, config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: (
            (s + 1) / warmup if s < warmup else max(0.0, (total - s) / max(1, total - warmup))
        ),
    )
    params = [p for p in model.parameters() if p.requires_grad]
    phases = dict.fromkeys(("collate", "forward", "backward", "optimizer"), 0.0)
    model.train()
    torch.manual_seed(args.seed)
    done, examples, epoch = 0, 0, 0
    wall0 = time.perf_counter()
    while done < steps:
        epoch += 1
        batches = length_grouped_batches(
            train.lengths, config.batch_size, random.Random(args.seed * 1000 + epoch)
        )
        for idx in batches[: steps - done]:
            t0 = time.perf_counter()
            batch = collate(train, idx, pad_id)
            t1 = time.perf_counter()
            with autocast_context(config.bf16):
                logits = model(batch)
            loss = model.loss(logits, batch["labels"])
            torch.isfinite(loss)  # as the trainer's check
            t2 = time.perf_counter()
            loss.backward()
            if config.max_grad_norm:
                torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
            t3 = time.perf_counter()
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            float(loss.item())
            t4 = time.perf_counter()
            phases["collate"] += t1 - t0
            phases["forward"] += t2 - t1
            phases["backward"] += t3 - t2
            phases["optimizer"] += t4 - t3
            examples += len(idx)
            done += 1
    wall = time.perf_counter() - wall0
    timed = sum(phases.values())
    return {
        "steps": done,
        "examples": examples,
        "wall_s": wall,
        "ms_per_step": 1000 * wall / done,
        "ex_per_s": examples / wall,
        "share": {k: v / wall for k, v in phases.items()},
        "seconds": phases,
        "other_share": max(0.0, (wall - timed) / wall),
        "mean_batch_tokens": _mean_tokens(train, args),
    }


def _mean_tokens(train, args) -> float:
    """Mean padded width of our length-grouped training batches (one epoch's worth)."""
    import random

    from taskscout.encode import length_grouped_batches

    batches = length_grouped_batches(
        train.lengths, args.batch_size, random.Random(args.seed * 1000 + 1)
    )
    return statistics.fmean(max(train.lengths[i] for i in b) for b in batches)


def run_worker(args) -> None:
    from taskscout.util import set_torch_threads

    warnings.filterwarnings("ignore", category=FutureWarning)  # deprecation noise from peft
    threads = set_torch_threads(args.threads)
    fn = {"ours": worker_ours, "hf": worker_hf, "profile": worker_profile}[args.worker]
    out = fn(args)
    import torch

    out["torch_threads"] = torch.get_num_threads()
    out["threads_requested"] = threads
    out["peak_rss_mb"] = peak_rss_mb()
    Path(args.result_file).write_text(json.dumps(out))


# --------------------------------------------------------------------------------------------
# parent
# --------------------------------------------------------------------------------------------
def spawn(args, side: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        result_file = Path(tmp) / "result.json"
        cmd = [
            sys.executable,
            str(Path(__file__).resolve()),
            *args.argv,
            "--worker",
            side,
            "--result-file",
            str(result_file),
        ]
        start = time.perf_counter()
        proc = subprocess.run(cmd, stdout=subprocess.DEVNULL)
        if proc.returncode != 0 or not result_file.is_file():
            raise SystemExit(f"{side} worker failed with exit code {proc.returncode}")
        out = json.loads(result_file.read_text())
    out["process_wall_s"] = time.perf_counter() - start
    return out


def summarise(runs: list[dict]) -> dict:
    train = [r["train_examples"] / r["train_s"] for r in runs]
    evals = [r["eval_examples"] / r["eval_s"] for r in runs]
    return {
        "train_ex_per_s": round(statistics.median(train), 2),
        "eval_ex_per_s": round(statistics.median(evals), 2),
        "peak_rss_mb": round(statistics.median(r["peak_rss_mb"] for r in runs), 1),
        "all_train": [round(x, 2) for x in train],
        "all_eval": [round(x, 2) for x in evals],
        "all_peak_rss_mb": [round(r["peak_rss_mb"], 1) for r in runs],
        "dev_score": [round(r["dev_score"], 2) for r in runs],
        "torch_threads": sorted({r["torch_threads"] for r in runs}),
        "train_s": [round(r["train_s"], 2) for r in runs],
        "eval_s": [round(r["eval_s"], 3) for r in runs],
    }


def print_profile(prof: dict) -> None:
    log(
        f"profile of our training loop: {prof['steps']} steps, {prof['ms_per_step']:.1f} ms/step, "
        f"{prof['ex_per_s']:.1f} ex/s, mean padded width {prof['mean_batch_tokens']:.1f}"
    )
    for phase, share in prof["share"].items():
        log(f"  {phase:<10} {100 * share:5.1f} %  ({prof['seconds'][phase]:.2f} s)")
    log(f"  {'other':<10} {100 * prof['other_share']:5.1f} %")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="sst2")
    ap.add_argument("--data-dir", default="../shared/data")
    ap.add_argument(
        "--method", default="lora", choices=["lora", "bitfit", "prefix", "prompt", "full"]
    )
    ap.add_argument("--max-train", type=int, default=2000)
    ap.add_argument("--max-dev", type=int, default=500)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument(
        "--eval-batch-size",
        type=int,
        default=128,
        help="both sides (our TuneConfig default is 128)",
    )
    ap.add_argument("--max-len", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads on both sides (default: available cores)",
    )
    ap.add_argument(
        "--bf16",
        choices=["auto", "on", "off"],
        default="auto",
        help="bf16 autocast on both sides; auto = only with native CPU bf16, as "
        "taskscout.tune does",
    )
    ap.add_argument(
        "--profile",
        action="store_true",
        help="also profile our training loop phases (separate run)",
    )
    ap.add_argument("--profile-steps", type=int, default=300)
    ap.add_argument("--out", default=None, help="result file (default: benchmarks/results/...)")
    ap.add_argument("--worker", choices=["ours", "hf", "profile"], help=argparse.SUPPRESS)
    ap.add_argument("--result-file", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        run_worker(args)
        return

    passthrough = [
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
    ]
    args.argv = [
        x for k in passthrough for x in (f"--{k.replace('_', '-')}", str(getattr(args, k)))
    ]
    if args.threads:
        args.argv += ["--threads", str(args.threads)]

    from taskscout.util import available_cores

    data = _load_data(args)
    hf_reason = None
    if args.method not in HF_METHODS:
        hf_reason = f"method {args.method} is not supported on the HF side"
    elif data.spec.type.value not in HF_TASK_TYPES:
        hf_reason = f"task type {data.spec.type.value} is not supported on the HF side"

    ours_runs, hf_runs = [], []
    for rep in range(1, args.repeats + 1):
        for side in ("ours", "hf"):
            if side == "hf" and hf_reason:
                continue
            out = spawn(args, side)
            (ours_runs if side == "ours" else hf_runs).append(out)
            train_rate = out["train_examples"] / out["train_s"]
            eval_rate = out["eval_examples"] / out["eval_s"]
            log(
                f"[{rep}/{args.repeats}] {side:<4} train {train_rate:8.1f} ex/s  "
                f"eval {eval_rate:8.1f} ex/s  "
                f"rss {out['peak_rss_mb']:7.1f} MB  dev {out['dev_score']:.2f}"
            )

    ours = summarise(ours_runs)
    ours["bf16"] = ours_runs[0]["bf16"]
    ours["lr"] = ours_runs[0]["lr"]
    if hf_reason:
        hf = {"supported": False, "reason": hf_reason}
        train_speedup = eval_speedup = None
        log(f"HF side skipped: {hf_reason}")
    else:
        hf = summarise(hf_runs)
        hf.update(
            supported=True,
            setup=HF_METHODS[args.method],
            optim=hf_runs[0]["optim"],
            trainable_params=hf_runs[0]["trainable_params"],
            bf16=hf_runs[0]["bf16"],
            lr=hf_runs[0]["lr"],
            training_args={
                k: v
                for k, v in hf_training_args(
                    args, "<tmp>", hf_runs[0]["lr"], hf_runs[0]["bf16"]
                ).items()
            },
        )
        train_speedup = round(ours["train_ex_per_s"] / hf["train_ex_per_s"], 3)
        eval_speedup = round(ours["eval_ex_per_s"] / hf["eval_ex_per_s"], 3)

    result = {
        "benchmark": "tune_speed",
        "task": data.spec.name,
        "method": args.method,
        "n_train": len(data.train),
        "n_dev": len(data.dev),
        "batch_size": args.batch_size,
        "eval_batch_size": args.eval_batch_size,
        "max_len": args.max_len,
        "epochs": args.epochs,
        "repeats": args.repeats,
        "seed": args.seed,
        "ours": ours,
        "hf": hf,
        "train_speedup": train_speedup,
        "eval_speedup": eval_speedup,
        "torch_threads": ours_runs[0]["torch_threads"],
        "available_cores": available_cores(),
        "cpu": cpu_name(),
        "loadavg_1m_at_end": os.getloadavg()[0],
        "tokenisation_in_timings": False,
    }
    if args.profile:
        prof = spawn(args, "profile")
        print_profile(prof)
        result["profile"] = {
            "steps": prof["steps"],
            "ms_per_step": round(prof["ms_per_step"], 2),
            "ex_per_s": round(prof["ex_per_s"], 2),
            "mean_padded_width": round(prof["mean_batch_tokens"], 1),
            "share": {k: round(v, 4) for k, v in prof["share"].items()},
            "other_share": round(prof["other_share"], 4),
        }
    out = (
        Path(args.out) if args.out else RESULTS / f"tune_speed_{data.spec.name}_{args.method}.json"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
