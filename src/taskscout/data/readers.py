"""Load a task from a user file or folder, a Hugging Face dataset, or the catalog.

:func:`load_task` is the single entry point; see its docstring for how ``task`` is resolved.
"""

from __future__ import annotations

import csv
import difflib
import json
import math
import random
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taskscout.data.catalog import CATALOG_FILE, load_catalog, resolve_data_dir
from taskscout.data.spec import DEFAULT_METRIC, LABELLED_TYPES, TaskData, TaskSpec, TaskType
from taskscout.data.validation import (
    Columns,
    TaskDataError,
    canonicalize_rows,
    check_columns,
    check_dev_labels,
    check_not_empty,
    check_train_labels,
)

__all__ = [
    "SUFFIXES",
    "load_task",
    "read_records",
    "write_jsonl",
    "subsample_rows",
    "carve_dev",
    "stratify_key",
]

#: File suffix -> format name.
SUFFIXES: dict[str, str] = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".csv": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
}
_TRAIN_STEMS = ("train",)
_DEV_STEMS = ("dev", "validation")
DEV_FRACTION = 0.2
DEV_MAX = 1000


# --------------------------------------------------------------------------- raw file reading


@dataclass
class _Raw:
    """Records of one split as read, before validation."""

    records: list[Any]
    row_numbers: list[int] | None  # None: position + 1
    path: str  # for messages
    columns: list[str] | None  # header of tabular files; None for JSON


def _format_of(path: Path) -> str:
    fmt = SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise TaskDataError(
            f"unsupported file type {path.suffix or '(no suffix)'!r}; "
            f"use one of: {', '.join(sorted(SUFFIXES))}",
            path=path,
        )
    return fmt


def _read_jsonl_text(text: str, path: Path) -> _Raw:
    records: list[Any] = []
    numbers: list[int] = []
    loads = json.loads
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line or line.isspace():
            continue
        try:
            records.append(loads(line))
        except json.JSONDecodeError as exc:
            raise TaskDataError(
                f"malformed JSON line: {exc.msg} (character {exc.colno})", path=path, row=lineno
            ) from None
        numbers.append(lineno)
    return _Raw(records, numbers, str(path), None)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise TaskDataError(f"not UTF-8 text (byte {exc.start}: {exc.reason})", path=path) from None
    except OSError as exc:
        raise TaskDataError(f"cannot read file: {exc.strerror or exc}", path=path) from None


def _read_json(path: Path) -> _Raw:
    text = _read_text(path)
    if not text.lstrip().startswith("["):
        return _read_jsonl_text(text, path)  # .json holding JSON lines
    try:
        records = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TaskDataError(
            f"malformed JSON array: {exc.msg} (line {exc.lineno}, character {exc.colno})",
            path=path,
        ) from None
    return _Raw(records, None, str(path), None)


def _read_delimited(path: Path, sep: str) -> _Raw:
    import pandas as pd

    try:
        df = pd.read_csv(
            path,
            sep=sep,
            dtype=str,
            keep_default_na=False,
            na_filter=False,
            encoding="utf-8-sig",
            quoting=csv.QUOTE_MINIMAL,
        )
    except pd.errors.EmptyDataError:
        raise TaskDataError("the file is empty (no header, 0 rows)", path=path) from None
    except pd.errors.ParserError as exc:
        raise TaskDataError(
            f"cannot parse as {'TSV' if sep == chr(9) else 'CSV'}: {exc}", path=path
        ) from None
    except UnicodeDecodeError as exc:
        raise TaskDataError(f"not UTF-8 text ({exc.reason})", path=path) from None
    columns = [str(c) for c in df.columns]
    df.columns = columns
    return _Raw(df.to_dict("records"), None, str(path), columns)


def _read_parquet(path: Path) -> _Raw:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise TaskDataError(f"cannot read Parquet: {exc}", path=path) from None
    return _Raw(table.to_pylist(), None, str(path), list(table.column_names))


def read_records(path: str | Path) -> list[dict]:
    """Raw records (dicts keyed by the file's column names) of a JSONL/JSON/CSV/TSV/Parquet file,
    without validation. Malformed JSON lines raise :class:`TaskDataError`."""
    return _read_any(Path(path)).records


def _read_any(path: Path) -> _Raw:
    fmt = _format_of(path)
    if not path.is_file():
        raise TaskDataError("file not found", path=path)
    if fmt == "jsonl":
        return _read_jsonl_text(_read_text(path), path)
    if fmt == "json":
        return _read_json(path)
    if fmt == "csv":
        return _read_delimited(path, ",")
    if fmt == "tsv":
        return _read_delimited(path, "\t")
    return _read_parquet(path)


def write_jsonl(path: str | Path, rows: Sequence[dict]) -> None:
    """Write rows as UTF-8 JSON lines (``ensure_ascii=False``, the shared data's format)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="\n") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False))
            fh.write("\n")


# --------------------------------------------------------------------------- sampling


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
    in train. Both parts keep the original order and are disjoint."""
    n_dev = max(1, min(max_dev, round(fraction * len(rows))))
    idx = _stratified_indices(rows, n_dev, random.Random(seed), key, keep_one=True, min_one=False)
    taken = set(idx)
    train = [row for i, row in enumerate(rows) if i not in taken]
    dev = [rows[i] for i in idx]
    return train, dev


# --------------------------------------------------------------------------- helpers


def _label_sort_key(label: str):
    """Numeric labels sort numerically ("2" < "10"), others as strings; numbers first."""
    try:
        return (0, int(label), label)
    except ValueError:
        return (1, 0, label)


def _sorted_labels(values) -> tuple[str, ...]:
    return tuple(sorted(set(values), key=_label_sort_key))


def _has_pair(raw: _Raw, cols: Columns) -> bool:
    col = cols.text_pair or "text_pair"
    if raw.columns is not None:
        return col in raw.columns
    return any(isinstance(r, dict) and col in r for r in raw.records)


def _canonical(
    raw: _Raw,
    task_type: TaskType,
    cols: Columns,
    pair: bool,
    split: str,
    allowed: Sequence[str] | None = None,
) -> list[dict]:
    check_not_empty(raw.records, raw.path, split)
    if raw.columns is not None:
        check_columns(raw.columns, task_type, cols, raw.path, pair)
    return canonicalize_rows(
        raw.records,
        task_type,
        raw.path,
        cols,
        pair=pair,
        allowed_labels=allowed,
        row_numbers=raw.row_numbers,
    )


def _build_spec(
    where: str,
    *,
    name: str,
    task_type: TaskType,
    labels: tuple[str, ...] | None,
    metric: str | None,
    positive_label: str | None,
    family: str | None = None,
    title: str | None = None,
) -> TaskSpec:
    metric = metric or DEFAULT_METRIC[task_type]
    if metric == "f1" and positive_label is None and labels is not None and len(labels) == 2:
        positive_label = labels[1]
    try:
        return TaskSpec(
            name=name,
            type=task_type,
            metric=metric,
            labels=labels,
            family=family,
            title=title,
            positive_label=positive_label,
        )
    except ValueError as exc:
        raise TaskDataError(str(exc), path=where) from None


def _finish(
    spec: TaskSpec,
    train: list[dict],
    dev: list[dict],
    source: str,
    max_train: int | None,
    max_dev: int | None,
    seed: int,
) -> TaskData:
    key = stratify_key(spec.type)
    for label, n in (("max_train", max_train), ("max_dev", max_dev)):
        if n is not None and n < 1:
            raise ValueError(f"{label} must be >= 1, got {n}")
    if max_train is not None:
        train = subsample_rows(train, max_train, seed=seed, key=key)
    if max_dev is not None:
        dev = subsample_rows(dev, max_dev, seed=seed, key=key)
    return TaskData(spec=spec, train=train, dev=dev, source=source)


def _from_raw(
    train_raw: _Raw,
    dev_raw: _Raw | None,
    *,
    task_type: TaskType,
    name: str,
    cols: Columns,
    metric: str | None,
    positive_label: str | None,
    seed: int,
) -> tuple[TaskSpec, list[dict], list[dict]]:
    """Validate user records (file, folder or HF) and build spec + canonical rows."""
    if task_type is TaskType.REGRESSION:
        pair = cols.text_pair is not None or _has_pair(train_raw, cols)
    else:
        pair = task_type is TaskType.PAIR_CLASSIFICATION
    train = _canonical(train_raw, task_type, cols, pair, "train")
    check_not_empty(train, train_raw.path, "train")
    check_train_labels(train, task_type, train_raw.path, cols)
    if dev_raw is None:
        if len(train) < 2:
            raise TaskDataError(
                f"only {len(train)} row: too few to carve a dev split (pass dev_file=...)",
                path=train_raw.path,
            )
        train, dev = carve_dev(train, seed=seed, key=stratify_key(task_type))
        dev_path, dev_numbers = f"{train_raw.path} (carved dev)", None
    else:
        dev = _canonical(dev_raw, task_type, cols, pair, "dev")
        check_not_empty(dev, dev_raw.path, "dev")
        dev_path, dev_numbers = dev_raw.path, dev_raw.row_numbers
    check_dev_labels(train, dev, task_type, dev_path, cols, dev_numbers)

    if task_type in LABELLED_TYPES:
        labels: tuple[str, ...] | None = _sorted_labels(r["label"] for r in train)
    elif task_type is TaskType.TOKEN_CLASSIFICATION:
        labels = _sorted_labels(t for rows in (train, dev) for r in rows for t in r["tags"])
    else:
        labels = None
    spec = _build_spec(
        train_raw.path,
        name=name,
        task_type=task_type,
        labels=labels,
        metric=metric,
        positive_label=positive_label,
    )
    return spec, train, dev


def _find_split_file(folder: Path, stems: Sequence[str]) -> Path | None:
    found = [
        p
        for p in sorted(folder.iterdir())
        if p.is_file() and p.stem in stems and p.suffix.lower() in SUFFIXES
    ]
    if len(found) > 1:
        raise TaskDataError(
            f"ambiguous: several files could be this split: {', '.join(p.name for p in found)}",
            path=folder,
        )
    return found[0] if found else None


def _require_type(type_: str | TaskType | None, where: str | Path, catalog_hint: str = ""):
    if type_ is None:
        allowed = ", ".join(t.value for t in TaskType)
        raise TaskDataError(
            f"the task type is required for your own data: pass type=... (one of: {allowed})"
            + catalog_hint,
            path=where,
        )
    try:
        return TaskType.parse(type_)
    except ValueError as exc:
        raise TaskDataError(str(exc), path=where) from None


# --------------------------------------------------------------------------- sources


def _load_path(
    path: Path, *, type_, name, cols, dev_file, metric, positive_label, seed, catalog_hint
):
    task_type = _require_type(type_, path, catalog_hint)
    if path.is_dir():
        train_path = _find_split_file(path, _TRAIN_STEMS)
        if train_path is None:
            listing = ", ".join(sorted(p.name for p in path.iterdir())[:20]) or "nothing"
            raise TaskDataError(
                "folder has no train file (train.jsonl, train.csv, train.tsv, train.parquet, "
                f"...); it holds: {listing}",
                path=path,
            )
        dev_path = Path(dev_file) if dev_file is not None else _find_split_file(path, _DEV_STEMS)
        default_name = path.resolve().name
    else:
        train_path = path
        dev_path = Path(dev_file) if dev_file is not None else None
        default_name = path.stem
    train_raw = _read_any(train_path)
    dev_raw = _read_any(dev_path) if dev_path is not None else None
    spec, train, dev = _from_raw(
        train_raw,
        dev_raw,
        task_type=task_type,
        name=name or default_name,
        cols=cols,
        metric=metric,
        positive_label=positive_label,
        seed=seed,
    )
    return spec, train, dev, str(path)


def _hf_records(split, label_cols: Sequence[str]) -> list[dict]:
    """Rows of a ``datasets.Dataset`` with ClassLabel ints mapped to their names."""
    features = getattr(split, "features", {}) or {}
    mappers = {}
    for col in label_cols:
        feat = features.get(col)
        names = getattr(feat, "names", None)
        inner = getattr(feat, "feature", None)
        if names:
            mappers[col] = ("scalar", list(names))
        elif inner is not None and getattr(inner, "names", None):
            mappers[col] = ("seq", list(inner.names))
    records = split.to_list() if hasattr(split, "to_list") else [dict(r) for r in split]
    if not mappers:
        return records

    def name_of(names, v):
        return names[v] if isinstance(v, int) and 0 <= v < len(names) else None

    for rec in records:
        for col, (kind, names) in mappers.items():
            if col not in rec:
                continue
            v = rec[col]
            if kind == "scalar":
                rec[col] = name_of(names, v) if isinstance(v, int) else v
            elif isinstance(v, list):
                rec[col] = [name_of(names, t) if isinstance(t, int) else t for t in v]
    return records


def _load_hf(task: str, *, type_, name, cols, dev_file, metric, positive_label, seed):
    where = task
    ref = task[3:]
    dataset, _, config = ref.partition(":")
    if not dataset:
        raise TaskDataError("expected hf:<dataset>[:<config>]", path=where)
    task_type = _require_type(type_, where)
    try:
        import datasets  # type: ignore[import-not-found]
    except ImportError:
        raise TaskDataError(
            "loading Hugging Face datasets needs the optional 'datasets' package: "
            "pip install taskscout[hf]",
            path=where,
        ) from None
    try:
        ds = datasets.load_dataset(dataset, config or None)
    except Exception as exc:  # datasets raises many types (not found, no config, network)
        raise TaskDataError(
            f"could not load the dataset: {type(exc).__name__}: {exc}", path=where
        ) from None
    splits = list(ds.keys()) if hasattr(ds, "keys") else []
    if "train" not in splits:
        raise TaskDataError(
            f"dataset has no 'train' split (it has: {', '.join(splits) or 'none'})", path=where
        )
    if task_type is TaskType.TOKEN_CLASSIFICATION:
        label_cols = [cols.tags]
    elif task_type is TaskType.MULTIPLE_CHOICE:
        label_cols = []
    else:
        label_cols = [cols.label]

    def raw(split_name: str) -> _Raw:
        split = ds[split_name]
        column_names = list(getattr(split, "column_names", []) or [])
        return _Raw(
            _hf_records(split, label_cols), None, f"{where} [{split_name}]", column_names or None
        )

    train_raw = raw("train")
    if dev_file is not None:
        dev_raw = _read_any(Path(dev_file))
    else:
        dev_split = next((s for s in ("validation", "dev", "test") if s in splits), None)
        dev_raw = raw(dev_split) if dev_split else None
    default_name = (dataset.rsplit("/", 1)[-1] + (f"_{config}" if config else "")).lower()
    spec, train, dev = _from_raw(
        train_raw,
        dev_raw,
        task_type=task_type,
        name=name or default_name,
        cols=cols,
        metric=metric,
        positive_label=positive_label,
        seed=seed,
    )
    return spec, train, dev, where


def _load_catalog_task(task: str, *, data_dir, type_, name, metric, positive_label):
    root = resolve_data_dir(data_dir)
    specs = load_catalog(root)
    if task not in specs:
        close = difflib.get_close_matches(task, list(specs), n=3)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise TaskDataError(
            f"unknown task {task!r}: not an existing file or folder, not hf:<dataset>, and not "
            f"in this catalog.{hint} Available tasks: {', '.join(specs)}",
            path=root / CATALOG_FILE,
        )
    spec = specs[task]
    if type_ is not None:
        wanted = _require_type(type_, root / CATALOG_FILE)
        if wanted is not spec.type:
            raise TaskDataError(
                f"task {task!r} is {spec.type.value} in the catalog, not {wanted.value}",
                path=root / CATALOG_FILE,
            )
    cols = Columns()
    allowed = spec.labels
    train_raw = _read_any(root / task / "train.jsonl")
    dev_raw = _read_any(root / task / "dev.jsonl")
    pair = spec.type is TaskType.PAIR_CLASSIFICATION or (
        spec.type is TaskType.REGRESSION and _has_pair(train_raw, cols)
    )
    train = _canonical(train_raw, spec.type, cols, pair, "train", allowed)
    dev = _canonical(dev_raw, spec.type, cols, pair, "dev", allowed)
    check_not_empty(train, train_raw.path, "train")
    check_not_empty(dev, dev_raw.path, "dev")
    check_train_labels(train, spec.type, train_raw.path, cols)
    if name is not None or metric is not None or positive_label is not None:
        same_metric = metric is None or metric == spec.metric
        spec = _build_spec(
            str(root / CATALOG_FILE),
            name=name or spec.name,
            task_type=spec.type,
            labels=spec.labels,
            metric=metric or spec.metric,
            positive_label=positive_label or (spec.positive_label if same_metric else None),
            family=spec.family,
            title=spec.title,
        )
    return spec, train, dev, f"catalog:{root}"


def load_task(
    task: str | Path,
    *,
    data_dir: str | Path | None = None,
    type: str | TaskType | None = None,
    name: str | None = None,
    text_col: str = "text",
    text_pair_col: str | None = None,
    label_col: str = "label",
    tokens_col: str = "tokens",
    tags_col: str = "tags",
    choices_col: str | Sequence[str] = "choices",
    dev_file: str | Path | None = None,
    metric: str | None = None,
    max_train: int | None = None,
    max_dev: int | None = None,
    seed: int = 0,
    positive_label: str | None = None,
) -> TaskData:
    """Load, validate and canonicalise a task.

    ``task`` is resolved in this order:

    1. an existing path: a data file (``.jsonl``/``.json``, ``.csv``, ``.tsv``, ``.parquet``) or a
       folder holding ``train.<ext>`` and ``dev.<ext>`` (or ``validation.<ext>``). ``type`` is
       required. Without a dev file (and no ``dev_file=``), dev = 20 % of the rows (at most
       1,000), seeded by ``seed`` and stratified by label. Columns named ``text_col``,
       ``text_pair_col`` ... are renamed to the canonical schema; ``name`` defaults to the file
       stem (folder name). Labels are the sorted distinct train labels (token tasks: all tags).
    2. ``"hf:<dataset>[:<config>]"``: a Hugging Face dataset (needs ``pip install
       taskscout[hf]``); splits train and validation (or dev, or test).
    3. a task name in the catalog at :func:`~taskscout.data.catalog.resolve_data_dir`.

    ``metric`` overrides the default metric (``DEFAULT_METRIC`` or the catalog's); for ``"f1"``,
    ``positive_label`` defaults to the second label of a binary task. ``max_train`` / ``max_dev``
    take a seeded (``random.Random(seed)``) random sample after validation, stratified by label
    for classification, pair classification and multiple choice, keeping the original order.
    Bad data raises :class:`~taskscout.data.validation.TaskDataError` naming file, row and column.
    """
    choices: str | tuple[str, ...] = (
        choices_col if isinstance(choices_col, str) else tuple(choices_col)
    )
    cols = Columns(
        text=text_col,
        text_pair=text_pair_col,
        label=label_col,
        tokens=tokens_col,
        tags=tags_col,
        choices=choices,
    )
    if type is not None and not isinstance(type, TaskType):
        try:
            type = TaskType.parse(type)
        except ValueError as exc:
            raise ValueError(str(exc)) from None
    if type is TaskType.CLASSIFICATION and text_pair_col is not None:
        raise ValueError(
            "text_pair_col was given for type 'classification'; use type='pair_classification'"
        )

    task_str = str(task)
    looks_like_path = isinstance(task, Path) or (
        not task_str.startswith("hf:")
        and (
            Path(task_str).expanduser().exists()
            or "/" in task_str
            or "\\" in task_str
            or Path(task_str).suffix.lower() in SUFFIXES
        )
    )
    if looks_like_path:
        path = Path(task_str).expanduser()
        if not path.exists():
            raise TaskDataError("file or folder not found", path=path)
        hint = ""
        if type is None and path.is_dir() and "/" not in task_str and "\\" not in task_str:
            hint = (
                f" (a folder named {task_str!r} exists here; it takes precedence over a "
                "catalog task of that name)"
            )
        spec, train, dev, source = _load_path(
            path,
            type_=type,
            name=name,
            cols=cols,
            dev_file=dev_file,
            metric=metric,
            positive_label=positive_label,
            seed=seed,
            catalog_hint=hint,
        )
    elif task_str.startswith("hf:"):
        spec, train, dev, source = _load_hf(
            task_str,
            type_=type,
            name=name,
            cols=cols,
            dev_file=dev_file,
            metric=metric,
            positive_label=positive_label,
            seed=seed,
        )
    else:
        if dev_file is not None:
            raise ValueError("dev_file applies to your own files, not to catalog tasks")
        spec, train, dev, source = _load_catalog_task(
            task_str,
            data_dir=data_dir,
            type_=type,
            name=name,
            metric=metric,
            positive_label=positive_label,
        )
    return _finish(spec, train, dev, source, max_train, max_dev, seed)
