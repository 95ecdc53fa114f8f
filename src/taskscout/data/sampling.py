"""Seeded, stratified sampling of canonical rows: subsamples (``max_train`` / ``max_dev``) and a
dev split carved from train when a task has none.

Every function is deterministic given its ``seed`` (``random.Random(seed)``), keeps the rows'
original order, and stratifies by a key (the label for classification types, see
:func:`stratify_key`): groups are allocated proportionally by largest remainder.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Hashable, Sequence

from taskscout.data.spec import LABELLED_TYPES, TaskType

__all__ = ["DEV_FRACTION", "DEV_MAX", "stratify_key", "subsample_rows", "carve_dev"]

#: Share of the rows carved off as dev when a task has no dev split, and the cap on its size.
DEV_FRACTION = 0.2
DEV_MAX = 1000


def stratify_key(task_type: TaskType | str) -> Callable[[dict], Hashable] | None:
    """The key rows are stratified by: the label for classification, pair classification and
    multiple choice (answer position); ``None`` (plain random sampling) otherwise."""
    task_type = TaskType.parse(task_type)
    if task_type in LABELLED_TYPES or task_type is TaskType.MULTIPLE_CHOICE:
        return lambda row: row["label"]
    return None


def _groups(rows: Sequence[dict], key: Callable[[dict], Hashable] | None) -> dict:
    """``{key: [row indices]}`` in order of first appearance."""
    groups: dict[Hashable, list[int]] = {}
    if key is None:
        groups[None] = list(range(len(rows)))
        return groups
    for i, row in enumerate(rows):
        groups.setdefault(key(row), []).append(i)
    return groups


def _allocate(sizes: list[int], n: int, caps: list[int], min_one: bool) -> list[int]:
    """Split ``n`` over groups proportionally to ``sizes`` (largest remainder), each at most its
    cap, and at least one per group when ``min_one`` and ``n`` allows it. Deterministic."""
    total = sum(sizes)
    quota = [n * s / total for s in sizes]
    alloc = [min(math.floor(q), c) for q, c in zip(quota, caps, strict=True)]
    k = len(sizes)
    if min_one and n >= sum(1 for c in caps if c > 0):
        alloc = [max(a, 1) if c > 0 else a for a, c in zip(alloc, caps, strict=True)]
    floor_ = 1 if min_one else 0
    while sum(alloc) > n:  # only after min_one bumps: take from the most over-quota group
        j = max(
            (i for i in range(k) if alloc[i] > floor_),
            key=lambda i: (alloc[i] - quota[i], -i),
        )
        alloc[j] -= 1
    while sum(alloc) < n:
        open_ = [i for i in range(k) if alloc[i] < caps[i]]
        if not open_:
            break
        j = max(open_, key=lambda i: (quota[i] - alloc[i], sizes[i], -i))
        alloc[j] += 1
    return alloc


def _stratified_indices(
    rows: Sequence[dict],
    n: int,
    rng: random.Random,
    key: Callable[[dict], Hashable] | None,
    *,
    keep_one: bool = False,
    min_one: bool = True,
) -> list[int]:
    groups = _groups(rows, key)
    members = list(groups.values())
    sizes = [len(m) for m in members]
    caps = [s - 1 if keep_one else s for s in sizes]
    alloc = _allocate(sizes, n, caps, min_one)
    chosen: list[int] = []
    for idx, a in zip(members, alloc, strict=True):
        if a:
            chosen.extend(rng.sample(idx, a))
    chosen.sort()
    return chosen


def subsample_rows(
    rows: Sequence[dict],
    n: int,
    *,
    seed: int = 0,
    key: Callable[[dict], Hashable] | None = None,
) -> list[dict]:
    """A seeded random sample of ``n`` rows (all rows if ``n >= len(rows)``), stratified by
    ``key`` (proportional, every group represented when ``n`` allows), in original order."""
    if n < 0:
        raise ValueError(f"sample size must be >= 0, got {n}")
    if n >= len(rows):
        return list(rows)
    idx = _stratified_indices(rows, n, random.Random(seed), key)
    return [rows[i] for i in idx]


def carve_dev(
    rows: Sequence[dict],
    *,
    seed: int = 0,
    key: Callable[[dict], Hashable] | None = None,
    fraction: float = DEV_FRACTION,
    max_dev: int = DEV_MAX,
) -> tuple[list[dict], list[dict]]:
    """Split one pool into ``(train, dev)``: dev = ``round(fraction * n)`` rows (at most
    ``max_dev``, at least 1), seeded, stratified by ``key``; every stratum keeps at least one row
    in train, which wins over the size: dev is smaller (empty when every stratum has a single
    row) if the strata cannot spare the rows. Both parts keep the original order and are
    disjoint."""
    n_dev = max(1, min(max_dev, round(fraction * len(rows))))
    idx = _stratified_indices(rows, n_dev, random.Random(seed), key, keep_one=True, min_one=False)
    taken = set(idx)
    train = [row for i, row in enumerate(rows) if i not in taken]
    dev = [rows[i] for i in idx]
    return train, dev
