"""Canonical JSON, content hashes, timestamps and id checks shared by the store's modules."""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from taskscout.store.errors import StoreError

__all__ = ["canonical_json", "check_id", "config_hash", "utc_now"]

SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def utc_now() -> str:
    """The current time, ISO 8601 in UTC with milliseconds (sorts as text)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return obj.as_posix()
    if isinstance(obj, set | frozenset):
        return sorted(obj)
    item = getattr(obj, "item", None)  # numpy / torch scalars
    if callable(item):
        with contextlib.suppress(Exception):
            return item()
    raise TypeError(f"value of type {type(obj).__name__} is not JSON serialisable: {obj!r}")


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no whitespace; paths as POSIX text, sets sorted, numpy/torch
    scalars as numbers. Raises TypeError for anything else that JSON cannot hold."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=_json_default)


def config_hash(config: dict) -> str:
    """First 16 hex chars of the sha256 of :func:`canonical_json` of ``config``."""
    return hashlib.sha256(canonical_json(config).encode("utf-8")).hexdigest()[:16]


def check_id(what: str, value: str) -> str:
    """``value`` if it is a safe id (it becomes part of a file name), else :class:`StoreError`."""
    if not isinstance(value, str) or not SAFE_ID.match(value):
        raise StoreError(
            f"invalid {what} {value!r}: use 1-128 characters from [A-Za-z0-9_.-], "
            "starting with a letter or digit (it becomes part of a file name)"
        )
    return value
