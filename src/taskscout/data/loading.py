"""Load a task from a user file or folder, a Hugging Face dataset, or the catalog.

:func:`load_task` is the single entry point; see its docstring for how ``task`` is resolved. This
module only orchestrates: files are read by :mod:`taskscout.data.formats` (Hugging Face datasets
by :mod:`taskscout.data.hf`), rows validated by :mod:`taskscout.data.validation`, dev splits carved
and samples drawn by :mod:`taskscout.data.sampling`.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
from collections.abc import Sequence
from pathlib import Path

from taskscout.data.catalog import CATALOG_FILE, load_catalog, resolve_data_dir
from taskscout.data.formats import SUFFIXES, RawRecords, read_file
from taskscout.data.hf import HF_PREFIX, load_hf_splits
from taskscout.data.sampling import carve_dev, stratify_key, subsample_rows
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

__all__ = ["load_task"]

_TRAIN_STEMS = ("train",)
_DEV_STEMS = ("dev", "validation")


def _label_sort_key(label: str):
    """Numeric labels sort numerically ("2" < "10"), others as strings; numbers first."""
    try:
        return (0, int(label), label)
    except ValueError:
        return (1, 0, label)


def _sorted_labels(values) -> tuple[str, ...]:
    return tuple(sorted(set(values), key=_label_sort_key))


def _has_pair(raw: RawRecords, cols: Columns) -> bool:
    col = cols.text_pair or "text_pair"
    if raw.columns is not None:
        return col in raw.columns
    return any(isinstance(r, dict) and col in r for r in raw.records)


def _canonical(
    raw: RawRecords,
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
    train_raw: RawRecords,
    dev_raw: RawRecords | None,
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
        n_rows = len(train)
        train, dev = carve_dev(train, seed=seed, key=stratify_key(task_type))
        if not dev:  # every stratum has a single row: none can leave train
            raise TaskDataError(
                f"only {n_rows} rows, each with a different label: too few to carve a dev split "
                "that leaves every label in train (pass dev_file=... or add rows)",
                path=train_raw.path,
            )
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
    train_raw = read_file(train_path)
    dev_raw = read_file(dev_path) if dev_path is not None else None
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
    return spec, train, dev, str(path.resolve())  # one file, one source: however it is named


def _load_hf(task: str, *, type_, name, cols, dev_file, metric, positive_label, seed):
    where = task
    if not task[len(HF_PREFIX) :].partition(":")[0]:
        raise TaskDataError("expected hf:<dataset>[:<config>]", path=where)
    task_type = _require_type(type_, where)
    if task_type is TaskType.TOKEN_CLASSIFICATION:
        label_cols = [cols.tags]
    elif task_type is TaskType.MULTIPLE_CHOICE:
        label_cols = []
    else:
        label_cols = [cols.label]
    splits = load_hf_splits(task, label_cols)
    dev_raw = read_file(dev_file) if dev_file is not None else splits.dev
    spec, train, dev = _from_raw(
        splits.train,
        dev_raw,
        task_type=task_type,
        name=name or splits.default_name,
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
    train_raw = read_file(root / task / "train.jsonl")
    dev_raw = read_file(root / task / "dev.jsonl")
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
    return spec, train, dev, catalog_source(root, task)


def catalog_source(root: Path, task: str) -> str:
    """The data source of catalog task ``task`` under ``root``: ``catalog:<task>@<digest>``,
    the digest being a sha256 of its train and dev files' bytes (16 hex characters). It names
    the data, not where it lies: the same catalog copied elsewhere (another machine, a GPU
    lease) is the same source, and a different data set under the same name is not."""
    files = [root / task / split for split in ("train.jsonl", "dev.jsonl")]
    stats = tuple((str(f), f.stat().st_mtime_ns, f.stat().st_size) for f in files)
    return f"catalog:{task}@{_files_digest(stats)}"


@functools.lru_cache(maxsize=256)
def _files_digest(stats: tuple[tuple[str, int, int], ...]) -> str:
    """sha256 (16 hex) of the files' bytes; keyed by (path, mtime, size), so a task loaded again
    (every run and seed loads it) is not read a second time for its source."""
    digest = hashlib.sha256()
    for path, _, _ in stats:
        digest.update(Path(path).read_bytes())
    return digest.hexdigest()[:16]


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
        not task_str.startswith(HF_PREFIX)
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
    elif task_str.startswith(HF_PREFIX):
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
