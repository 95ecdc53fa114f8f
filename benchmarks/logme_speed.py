"""LogME speed: the old per-source path against the new one, on the real MiniLM.

    PYTHONPATH=src python benchmarks/logme_speed.py --target rte --max-examples 256 \
        > benchmarks/results/logme_speed.json

Sources: the other 11 tasks of a *temporary copy* of ``benchmarks/stores/taskweb12-methods``
(the committed store is never written). Old path (the implementation before
``predictors/logme.py``): per source, a fresh copy of the backbone, a fresh LoRA method, the
target encoded again, rows in order in batches of 64 under ``no_grad``. New path
(:class:`taskscout.predictors.logme.LogMEPredictor`): one backbone and method, each source's
LoRA state copied in, the target encoded once, length-sorted batches under ``inference_mode``;
timed cold (memory cache cleared, no disk cache) and warm (features cached). The floor: one
forward pass of the frozen backbone alone over the same target tokens (``target_tokens``), the
least any source whose model runs over the target can cost. Both paths' scores
are printed side by side (they agree to float rounding). Prints one JSON object; times are
medians over ``--repeats`` (old path: ``--old-repeats``) in seconds.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
STORE = ROOT / "benchmarks" / "stores" / "taskweb12-methods"


def old_path(pool, target: str, sources: list[str], n: int) -> dict[str, float]:
    from taskscout.backbone import load_backbone
    from taskscout.encode import encode_rows
    from taskscout.predictors.logme import logme, method_features
    from taskscout.tuning.methods import build_method
    from taskscout.tuning.run import run_backbone_location

    data = pool.task_data(target, max_train=n)
    out = {}
    for s in sources:
        run = pool.require_run(s, "lora")
        _, tokenizer, encoder = load_backbone(run_backbone_location(run))
        method = build_method(run.method, encoder, run.config["method_config"])
        state = pool.store.load_checkpoint(run.run_id, "best")
        method.load_tuned_state(
            {k.removeprefix("method."): v for k, v in state.items() if k.startswith("method.")}
        )
        split = encode_rows(data.train[:n], data.spec, tokenizer, run.config["train"]["max_len"])
        feats = method_features(method, split, tokenizer.pad_token_id).numpy()
        out[s] = logme(feats, np.asarray(split.labels), regression=False)
    return out


def backbone_floor(pool, target: str, n: int, batch_size: int = 64) -> tuple[float, int]:
    """(seconds, tokens): one forward pass of the frozen backbone alone (no LoRA) over the
    target's rows in the new path's batches: the least any source costs when its model must run
    over the target."""
    import torch

    from taskscout.backbone import load_backbone
    from taskscout.encode import collate, encode_rows, sorted_batches

    data = pool.task_data(target, max_train=n)
    _, tokenizer, encoder = load_backbone(None)
    split = encode_rows(data.train[:n], data.spec, tokenizer, 128)
    if split.task_type.value == "multiple_choice":
        from taskscout.predictors.logme import flatten_choices

        split = flatten_choices(split)
    t0 = time.perf_counter()
    with torch.inference_mode():
        for idx in sorted_batches(split.lengths, batch_size):
            b = collate(split, idx, tokenizer.pad_token_id)
            encoder(
                input_ids=b["input_ids"],
                attention_mask=b["attention_mask"],
                token_type_ids=b["token_type_ids"],
            )
    return time.perf_counter() - t0, int(sum(split.lengths))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", default="rte")
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--max-examples", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--old-repeats", type=int, default=1)
    parser.add_argument(
        "--extra-targets",
        default="copa,stsb",
        help="targets timed with the new path only (other task types)",
    )
    args = parser.parse_args(argv)

    import torch

    from taskscout.backbone import load_backbone
    from taskscout.predictors import Pool
    from taskscout.predictors.logme import LogMEPredictor, clear_feature_cache
    from taskscout.util import available_cores, set_torch_threads

    threads = set_torch_threads(None)
    tmp = Path(tempfile.mkdtemp(prefix="logme-speed-"))
    try:
        shutil.copytree(STORE, tmp / "store")
        pool = Pool.open(tmp / "store", None, data_dir=args.data_dir)
        tasks = pool.store.task_names(backbone=pool.backbone, method="lora")
        load_backbone(None)  # the first load from disk is common to both paths: not timed
        result = {
            "target": args.target,
            "max_examples": args.max_examples,
            "torch_threads": threads,
            "cores": available_cores(),
            "torch": torch.__version__,
        }
        sources = [t for t in tasks if t != args.target]
        old_times, old_scores = [], {}
        for _ in range(args.old_repeats):
            t0 = time.perf_counter()
            old_scores = old_path(pool, args.target, sources, args.max_examples)
            old_times.append(time.perf_counter() - t0)
        predictor = LogMEPredictor(max_examples=args.max_examples, disk_cache=False)
        cold, new_scores = [], {}
        for _ in range(args.repeats):
            clear_feature_cache()
            t0 = time.perf_counter()
            new_scores = predictor.score(args.target, sources, pool)
            cold.append(time.perf_counter() - t0)
        warm = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            predictor.score(args.target, sources, pool)
            warm.append(time.perf_counter() - t0)
        n = len(sources)
        floor_s, tokens = backbone_floor(pool, args.target, args.max_examples)
        result.update(
            {
                "sources": n,
                "old_s": round(statistics.median(old_times), 2),
                "old_per_source_s": round(statistics.median(old_times) / n, 3),
                "new_cold_s": round(statistics.median(cold), 2),
                "new_cold_per_source_s": round(statistics.median(cold) / n, 3),
                "new_warm_s": round(statistics.median(warm), 3),
                "speedup": round(statistics.median(old_times) / statistics.median(cold), 2),
                "target_tokens": tokens,
                "backbone_forward_floor_s": round(floor_s, 3),
                "goal_per_source_s": 1.0,
                "goal_met": statistics.median(cold) / n <= 1.0,
                "runs": {
                    "old_s": [round(x, 2) for x in old_times],
                    "new_cold_s": [round(x, 2) for x in cold],
                },
                "scores": {
                    s: {"old": round(old_scores[s], 6), "new": round(new_scores[s], 6)}
                    for s in sources
                },
                "max_abs_score_diff": max(abs(old_scores[s] - new_scores[s]) for s in sources),
            }
        )
        extra = {}
        for target in [t for t in args.extra_targets.split(",") if t]:
            others = [t for t in tasks if t != target]
            clear_feature_cache()
            t0 = time.perf_counter()
            scores = predictor.score(target, others, pool)
            secs = time.perf_counter() - t0
            extra[target] = {
                "type": scores.info["target_type"],
                "sources": len(others),
                "new_cold_s": round(secs, 2),
                "new_cold_per_source_s": round(secs / len(others), 3),
            }
        result["other_types"] = extra
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
