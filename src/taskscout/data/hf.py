"""Hugging Face ``datasets`` -> raw records (the optional ``hf:<dataset>[:<config>]`` source).

``datasets`` is an optional dependency (``pip install taskscout[hf]``), imported only when a
dataset is actually loaded. ClassLabel integers are mapped to their names, so a Hugging Face
classification task gets the same string labels as the dataset card shows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from taskscout.data.formats import RawRecords
from taskscout.data.validation import TaskDataError

__all__ = ["HF_PREFIX", "HFSplits", "hf_records", "split_records", "load_hf_splits"]

HF_PREFIX = "hf:"
#: Split names tried, in order, for the dev split.
DEV_SPLITS = ("validation", "dev", "test")


@dataclass
class HFSplits:
    """A loaded dataset's train records, its dev records (``None``: no dev split) and the
    default task name (``<dataset>[_<config>]``, lower case)."""

    train: RawRecords
    dev: RawRecords | None
    default_name: str


def _class_name(names: list[str], value: Any) -> Any:
    """A ClassLabel int -> its name; ``None`` (a missing label) outside ``0..len(names)-1``
    (e.g. GLUE's ``-1`` on unlabelled test rows); anything else unchanged."""
    if isinstance(value, int) and not isinstance(value, bool):
        return names[value] if 0 <= value < len(names) else None
    return value


def hf_records(split: Any, label_cols: Sequence[str]) -> list[Any]:
    """Rows of a ``datasets.Dataset`` (or any object with ``to_list()`` or iterable of mappings)
    with ClassLabel ints of ``label_cols`` (scalar or sequence features) mapped to their names."""
    features = getattr(split, "features", None) or {}
    mappers: dict[str, tuple[str, list[str]]] = {}
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
    for rec in records:
        if not isinstance(rec, dict):
            continue
        for col, (kind, names) in mappers.items():
            if col not in rec:
                continue
            value = rec[col]
            if kind == "scalar":
                rec[col] = _class_name(names, value)
            elif isinstance(value, list):
                rec[col] = [_class_name(names, t) for t in value]
    return records


def split_records(split: Any, label_cols: Sequence[str], where: str) -> RawRecords:
    """One split as :class:`RawRecords` (rows numbered by position, messages name ``where``)."""
    column_names = list(getattr(split, "column_names", None) or [])
    return RawRecords(
        hf_records(split, label_cols), None, where, [str(c) for c in column_names] or None
    )


def load_hf_splits(reference: str, label_cols: Sequence[str]) -> HFSplits:
    """Load ``hf:<dataset>[:<config>]`` and return its train split and dev split (validation,
    dev or test, the first that exists). Raises :class:`TaskDataError` naming ``reference`` when
    ``datasets`` is missing, the dataset cannot be loaded, or it has no train split."""
    ref = reference[len(HF_PREFIX) :] if reference.startswith(HF_PREFIX) else reference
    dataset, _, config = ref.partition(":")
    if not dataset:
        raise TaskDataError("expected hf:<dataset>[:<config>]", path=reference)
    try:
        import datasets  # type: ignore[import-not-found]  # optional dependency
    except ImportError:
        raise TaskDataError(
            "loading Hugging Face datasets needs the optional 'datasets' package: "
            "pip install taskscout[hf]",
            path=reference,
        ) from None
    try:
        ds = datasets.load_dataset(dataset, config or None)
    except Exception as exc:  # datasets raises many types (not found, no config, network)
        raise TaskDataError(
            f"could not load the dataset: {type(exc).__name__}: {exc}", path=reference
        ) from None
    splits = list(ds.keys()) if hasattr(ds, "keys") else []
    if "train" not in splits:
        raise TaskDataError(
            f"dataset has no 'train' split (it has: {', '.join(splits) or 'none'})",
            path=reference,
        )
    train = split_records(ds["train"], label_cols, f"{reference} [train]")
    dev_split = next((s for s in DEV_SPLITS if s in splits), None)
    dev = None
    if dev_split is not None:
        dev = split_records(ds[dev_split], label_cols, f"{reference} [{dev_split}]")
    default_name = (dataset.rsplit("/", 1)[-1] + (f"_{config}" if config else "")).lower()
    return HFSplits(train, dev, default_name)
