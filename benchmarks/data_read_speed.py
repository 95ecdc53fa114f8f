"""Data-layer read speed: median wall time of ``load_task`` on a 10k-row JSONL train file plus the
same file as dev (2 x 10k pair-classification rows), and the same for CSV.

Re-runnable, no arguments needed; prints one JSON object::

    python benchmarks/data_read_speed.py [--repeats 5] [--rows 10000]

Replaces the wall-clock assert that used to live in ``tests/test_data_readers.py`` (timings are a
benchmark's job, not a unit test's: they depend on the machine and its load).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import pandas as pd

from taskscout.data import load_task, write_jsonl


def _rows(n: int) -> list[dict]:
    return [
        {"text": f"sentence number {i} " * 3, "text_pair": f"other {i}", "label": "abc"[i % 3]}
        for i in range(n)
    ]


def _time_load(path: Path, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        task = load_task(path, type="pair_classification", dev_file=path)
        times.append(time.perf_counter() - start)
        assert len(task.train) == len(task.dev)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rows", type=int, default=10_000)
    args = parser.parse_args()
    rows = _rows(args.rows)
    result: dict = {
        "benchmark": "data_read_speed",
        "rows_per_split": args.rows,
        "repeats": args.repeats,
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    with tempfile.TemporaryDirectory() as tmp:
        jsonl = Path(tmp) / "big.jsonl"
        write_jsonl(jsonl, rows)
        csv = Path(tmp) / "big.csv"
        pd.DataFrame(rows).to_csv(csv, index=False)
        for name, path in (("jsonl", jsonl), ("csv", csv)):
            times = _time_load(path, args.repeats)
            result[f"{name}_median_s"] = round(statistics.median(times), 4)
            result[f"{name}_min_s"] = round(min(times), 4)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
