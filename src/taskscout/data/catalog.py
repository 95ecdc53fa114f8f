"""The task catalog: ``<data_dir>/catalog.json`` plus ``<data_dir>/<task>/{train,dev}.jsonl``.

``data_dir`` is resolved as: the argument, else the ``TASKSCOUT_DATA_DIR`` environment variable,
else the demo suite bundled with the package (6 small tasks, see ``demo/PROVENANCE.md``).
"""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd

from taskscout.data.formats import read_text_file
from taskscout.data.spec import TaskSpec, TaskType
from taskscout.data.validation import TaskDataError

__all__ = [
    "DATA_DIR_ENV",
    "DEMO_TARGET",
    "DEMO_SOURCES",
    "CATALOG_FILE",
    "demo_data_dir",
    "resolve_data_dir",
    "load_catalog",
    "load_catalog_entries",
    "catalog_table",
    "spec_from_entry",
]

DATA_DIR_ENV = "TASKSCOUT_DATA_DIR"
CATALOG_FILE = "catalog.json"

#: The demo suite's target task and its candidate source tasks.
DEMO_TARGET = "mnli"
DEMO_SOURCES: tuple[str, ...] = ("snli", "qnli", "boolq", "sms_spam", "copa")

_REQUIRED_KEYS = ("name", "type")


def demo_data_dir() -> Path:
    """The bundled demo suite folder inside the installed package."""
    return Path(str(resources.files("taskscout.data").joinpath("demo")))


def resolve_data_dir(data_dir: str | Path | None = None) -> Path:
    """``data_dir`` if given, else ``$TASKSCOUT_DATA_DIR`` (if set and non-empty), else the
    bundled demo suite. The folder is not checked here; :func:`load_catalog` reports problems."""
    if data_dir is not None and str(data_dir) != "":
        return Path(data_dir).expanduser()
    env = os.environ.get(DATA_DIR_ENV, "").strip()
    if env:
        return Path(env).expanduser()
    return demo_data_dir()


def spec_from_entry(entry: dict[str, Any]) -> TaskSpec:
    """A :class:`TaskSpec` from one catalog entry (raises ``ValueError`` if inconsistent).

    Multiple-choice entries may list labels (the shared catalog lists COPA's answer indices
    ``["0", "1"]``); the spec has ``labels=None`` for them. A binary ``f1`` task without an
    explicit ``positive_label`` uses its second label (MRPC: ``equivalent``).
    """
    task_type = TaskType.parse(entry["type"])
    d = dict(entry)
    if task_type in (TaskType.MULTIPLE_CHOICE, TaskType.REGRESSION):
        d["labels"] = None
    d["type"] = task_type
    labels = d.get("labels")
    if d.get("metric") == "f1" and not d.get("positive_label") and labels and len(labels) == 2:
        d["positive_label"] = labels[1]
    return TaskSpec.from_dict(d)


def load_catalog_entries(data_dir: str | Path | None = None) -> list[dict[str, Any]]:
    """The raw catalog entries (dicts, file order), after checking that each is well formed."""
    root = resolve_data_dir(data_dir)
    path = root / CATALOG_FILE
    if not path.is_file():
        hint = (
            f"no {CATALOG_FILE} in {root}" if root.is_dir() else f"data directory {root} not found"
        )
        raise TaskDataError(
            f"task catalog not found ({hint}). Pass data_dir=... or set {DATA_DIR_ENV} to a "
            f"folder holding {CATALOG_FILE} and <task>/train.jsonl, <task>/dev.jsonl.",
            path=path,
        )
    text = read_text_file(path)  # not UTF-8: an error naming the line and byte offset
    try:
        entries = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TaskDataError(
            f"malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}", path=path
        ) from None
    except (ValueError, RecursionError) as exc:
        raise TaskDataError(f"cannot read JSON: {type(exc).__name__}", path=path) from None
    if isinstance(entries, dict) and isinstance(entries.get("tasks"), list):
        entries = entries["tasks"]
    if not isinstance(entries, list):
        raise TaskDataError(
            f"expected a JSON list of task entries, got {type(entries).__name__}", path=path
        )
    seen: set[str] = set()
    for i, entry in enumerate(entries, start=1):
        label = f"entry {i}"
        if not isinstance(entry, dict):
            raise TaskDataError(f"{label} is not an object", path=path)
        missing = [k for k in _REQUIRED_KEYS if k not in entry]
        if missing:
            raise TaskDataError(f"{label} lacks key(s): {', '.join(missing)}", path=path)
        name = entry["name"]
        label = f"entry {i} ({name!r})"
        if name in seen:
            raise TaskDataError(f"{label}: duplicate task name", path=path)
        seen.add(name)
        for key in ("num_train", "num_dev"):
            if key in entry and entry[key] is not None and not isinstance(entry[key], int):
                raise TaskDataError(f"{label}: {key} must be an integer", path=path)
        try:
            spec_from_entry(entry)
        except (ValueError, TypeError, KeyError) as exc:
            raise TaskDataError(f"{label}: {exc}", path=path) from None
    return entries


def load_catalog(data_dir: str | Path | None = None) -> dict[str, TaskSpec]:
    """``{name: TaskSpec}`` for every task in ``<data_dir>/catalog.json`` (file order)."""
    return {e["name"]: spec_from_entry(e) for e in load_catalog_entries(data_dir)}


def catalog_table(data_dir: str | Path | None = None) -> pd.DataFrame:
    """One row per catalog task: name, type, family, metric, num_labels, num_train, num_dev."""
    rows = []
    for entry in load_catalog_entries(data_dir):
        spec = spec_from_entry(entry)
        rows.append(
            {
                "name": spec.name,
                "type": spec.type.value,
                "family": spec.family,
                "metric": spec.metric,
                "num_labels": spec.num_labels,
                "num_train": entry.get("num_train"),
                "num_dev": entry.get("num_dev"),
            }
        )
    columns = ["name", "type", "family", "metric", "num_labels", "num_train", "num_dev"]
    table = pd.DataFrame(rows, columns=columns)
    for col in ("num_train", "num_dev"):
        table[col] = table[col].astype("Int64")
    return table
