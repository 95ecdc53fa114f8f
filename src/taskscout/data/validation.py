"""Row validation and conversion to the canonical schema, with precise errors.

Every problem raises :class:`TaskDataError`, whose message names the file, and where it applies
the 1-based row number and the column (the user's column name, not the canonical one)::

    data/train.csv: row 17, column 'sentence': empty text

Row numbers are 1-based data rows: for JSONL the line number, for CSV/TSV the row below the header
(row 1 = the first data line), for Parquet, JSON arrays and Hugging Face datasets the position.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taskscout.data.spec import LABELLED_TYPES, TaskType

__all__ = [
    "TaskDataError",
    "Columns",
    "canonicalize_rows",
    "check_not_empty",
    "check_train_labels",
    "check_dev_labels",
    "check_columns",
]


def _rebuild_error(cls, detail, path, row, column):
    return cls(detail, path=path, row=row, column=column)


class TaskDataError(ValueError):
    """Bad task data. ``str(err)`` names the file (``path``) and, where they apply, the 1-based
    ``row`` and the ``column``; ``detail`` is the bare description."""

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        row: int | None = None,
        column: str | None = None,
    ) -> None:
        self.detail = message
        self.path = str(path) if path is not None else None
        self.row = row
        self.column = column
        where = []
        if self.path is not None:
            where.append(self.path)
        loc = []
        if row is not None:
            loc.append(f"row {row}")
        if column is not None:
            loc.append(f"column {column!r}")
        if loc:
            where.append(", ".join(loc))
        prefix = ": ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)

    def __reduce__(self):  # keep path/row/column through pickling (worker processes)
        return (_rebuild_error, (type(self), self.detail, self.path, self.row, self.column))


@dataclass(frozen=True)
class Columns:
    """The user's column names for each canonical field.

    ``text_pair=None`` means "the canonical name ``text_pair``" (required for
    pair_classification; used for regression when the data has it). ``choices`` may be a list of
    column names, one per choice (e.g. ``["choice1", "choice2"]``).
    """

    text: str = "text"
    text_pair: str | None = None
    label: str = "label"
    tokens: str = "tokens"
    tags: str = "tags"
    choices: str | tuple[str, ...] = "choices"

    def needed(self, task_type: TaskType, pair: bool) -> list[str]:
        """User column names a row of this type must have."""
        if task_type is TaskType.TOKEN_CLASSIFICATION:
            return [self.tokens, self.tags]
        cols = [self.text]
        if pair:
            cols.append(self.text_pair or "text_pair")
        if task_type is TaskType.MULTIPLE_CHOICE:
            cols.extend([self.choices] if isinstance(self.choices, str) else list(self.choices))
        cols.append(self.label)
        return cols

    def user_name(self, canonical: str) -> str:
        """The user's column name for a canonical field (for error messages)."""
        if canonical == "text_pair":
            return self.text_pair or "text_pair"
        value = getattr(self, canonical)
        return value if isinstance(value, str) else "+".join(value)


# --------------------------------------------------------------------------- value converters


class _CellError(Exception):
    """A problem with one cell; turned into a TaskDataError with path/row/column by the caller."""


_INT_RE = re.compile(r"^\s*[+-]?\d+\s*$")


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _type_name(value: Any) -> str:
    return type(value).__name__


def _to_text(value: Any, what: str = "text") -> str:
    if isinstance(value, str):
        if not value.strip():
            raise _CellError(f"empty {what}" if not value else f"{what} is only whitespace")
        return value
    if _is_missing(value):
        raise _CellError(f"missing {what} (null)")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise _CellError(f"{what} must be a string, got {_type_name(value)} {value!r:.60}")


def _to_class_label(value: Any) -> str:
    if isinstance(value, str):
        if not value.strip():
            raise _CellError("empty label")
        return value
    if _is_missing(value):
        raise _CellError("missing label (null)")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    raise _CellError(f"label must be a string or integer, got {_type_name(value)} {value!r:.60}")


def _to_float_label(value: Any) -> float:
    if _is_missing(value) and not isinstance(value, float):
        raise _CellError("missing regression target (null)")
    if isinstance(value, bool):
        raise _CellError(f"regression target must be a number, got boolean {value!r}")
    if isinstance(value, int | float):
        out = float(value)
    elif isinstance(value, str):
        try:
            out = float(value.strip())
        except ValueError:
            raise _CellError(f"regression target is not a number: {value!r:.60}") from None
    else:
        raise _CellError(f"regression target must be a number, got {_type_name(value)}")
    if math.isnan(out):
        raise _CellError("regression target is NaN")
    if math.isinf(out):
        raise _CellError(f"regression target is infinite ({value!r})")
    return out


def _to_int_label(value: Any) -> int:
    if _is_missing(value):
        raise _CellError("missing label (null)")
    if isinstance(value, bool):
        raise _CellError(f"label must be an integer choice index, got boolean {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _INT_RE.match(value):
        return int(value)
    raise _CellError(
        f"label must be an integer choice index, got {_type_name(value)} {value!r:.60}"
    )


def _to_str_list(value: Any, what: str) -> list[str]:
    """A list of strings from a list, a JSON list string or a whitespace-separated string."""
    if isinstance(value, str):
        stripped = value.strip()
        if stripped.startswith("["):
            try:
                value = json.loads(stripped)
            except json.JSONDecodeError as exc:
                raise _CellError(f"{what}: malformed JSON list ({exc.msg})") from None
        else:
            return stripped.split()
    if type(value) is list and all(type(item) is str for item in value):
        return value  # fast path (JSON rows)
    if _is_missing(value):
        raise _CellError(f"missing {what} (null)")
    if not isinstance(value, list | tuple):
        raise _CellError(f"{what} must be a list of strings, got {_type_name(value)}")
    out = []
    for i, item in enumerate(value, start=1):
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, int | float) and not isinstance(item, bool) and not _is_missing(item):
            out.append(str(item))
        else:
            raise _CellError(f"{what}: item {i} must be a string, got {_type_name(item)}")
    return out


# --------------------------------------------------------------------------- row conversion


def _row_converter(task_type: TaskType, cols: Columns, pair: bool, allowed: tuple | None):
    """Return ``convert(record) -> row`` raising ``_CellError`` with ``.column`` set."""
    text_c, label_c = cols.text, cols.label
    allowed_set = frozenset(allowed) if allowed is not None else None
    allowed_text = ", ".join(allowed) if allowed is not None else ""
    pair_c = cols.text_pair or "text_pair"

    def get(rec: dict, col: str):
        try:
            return rec[col]
        except KeyError:
            err = _CellError(
                f"missing column {col!r} (this row has: {', '.join(map(str, rec)) or 'nothing'})"
            )
            err.column = None
            raise err from None

    def cell(col: str, fn, *args):
        try:
            return fn(*args)
        except _CellError as err:
            err.column = col
            raise

    if task_type in LABELLED_TYPES:

        def convert(rec):
            row = {"text": cell(text_c, _to_text, get(rec, text_c))}
            if pair:
                row["text_pair"] = cell(pair_c, _to_text, get(rec, pair_c), "text_pair")
            label = cell(label_c, _to_class_label, get(rec, label_c))
            if allowed_set is not None and label not in allowed_set:
                err = _CellError(
                    f"label {label!r} is not in the catalog's label list ({allowed_text})"
                )
                err.column = label_c
                raise err
            row["label"] = label
            return row

    elif task_type is TaskType.REGRESSION:

        def convert(rec):
            row = {"text": cell(text_c, _to_text, get(rec, text_c))}
            if pair:
                row["text_pair"] = cell(pair_c, _to_text, get(rec, pair_c), "text_pair")
            row["label"] = cell(label_c, _to_float_label, get(rec, label_c))
            return row

    elif task_type is TaskType.TOKEN_CLASSIFICATION:
        tok_c, tag_c = cols.tokens, cols.tags

        def convert(rec):
            tokens = cell(tok_c, _to_str_list, get(rec, tok_c), "tokens")
            tags = cell(tag_c, _to_str_list, get(rec, tag_c), "tags")
            if not tokens:
                err = _CellError("empty token list")
                err.column = tok_c
                raise err
            if len(tokens) != len(tags):
                err = _CellError(
                    f"{len(tokens)} tokens but {len(tags)} tags (column {tag_c!r}); "
                    "they must have the same length"
                )
                err.column = tok_c
                raise err
            if not all(tok.strip() for tok in tokens):
                i = next(i for i, tok in enumerate(tokens, start=1) if not tok.strip())
                err = _CellError(f"token {i} is empty or whitespace")
                err.column = tok_c
                raise err
            if allowed_set is not None:
                if not allowed_set.issuperset(tags):
                    i, tag = next((i, t) for i, t in enumerate(tags, 1) if t not in allowed_set)
                    err = _CellError(
                        f"tag {i} {tag!r} is not in the catalog's label list ({allowed_text})"
                    )
                    err.column = tag_c
                    raise err
            elif not all(tag.strip() for tag in tags):
                i = next(i for i, tag in enumerate(tags, start=1) if not tag.strip())
                err = _CellError(f"tag {i} is empty or whitespace")
                err.column = tag_c
                raise err
            return {"tokens": list(tokens), "tags": list(tags)}

    elif task_type is TaskType.MULTIPLE_CHOICE:
        multi = not isinstance(cols.choices, str)
        ch_c = cols.user_name("choices")

        def convert(rec):
            row = {"text": cell(text_c, _to_text, get(rec, text_c))}
            if multi:
                choices = [cell(c, _to_text, get(rec, c), "choice") for c in cols.choices]
            else:
                choices = cell(ch_c, _to_str_list, get(rec, ch_c), "choices")
            if len(choices) < 2:
                err = _CellError(f"multiple choice needs at least 2 choices, got {len(choices)}")
                err.column = ch_c
                raise err
            if not multi:
                for i, choice in enumerate(choices, start=1):
                    if not choice.strip():
                        err = _CellError(f"choice {i} is empty or whitespace")
                        err.column = ch_c
                        raise err
            label = cell(label_c, _to_int_label, get(rec, label_c))
            if not 0 <= label < len(choices):
                err = _CellError(
                    f"label {label} is out of range: it must index one of the "
                    f"{len(choices)} choices (0..{len(choices) - 1})"
                )
                err.column = label_c
                raise err
            row["choices"] = choices
            row["label"] = label
            return row

    else:  # pragma: no cover - exhaustive over TaskType
        raise ValueError(f"unsupported task type {task_type!r}")
    return convert


def canonicalize_rows(
    records: Sequence[Any],
    task_type: TaskType | str,
    path: str | Path,
    columns: Columns | None = None,
    *,
    pair: bool = False,
    allowed_labels: Iterable[str] | None = None,
    row_numbers: Sequence[int] | None = None,
) -> list[dict]:
    """Validate raw records and convert them to canonical rows.

    ``records`` are dicts keyed by the user's column names; ``pair`` says whether a ``text_pair``
    column is required (pair_classification: always); ``allowed_labels`` restricts labels / tags
    (catalog tasks); ``row_numbers`` gives each record's 1-based row number for messages
    (default: position + 1). Raises :class:`TaskDataError` at the first bad row.
    """
    task_type = TaskType.parse(task_type)
    cols = columns or Columns()
    if task_type is TaskType.PAIR_CLASSIFICATION:
        pair = True
    allowed = tuple(allowed_labels) if allowed_labels is not None else None
    convert = _row_converter(task_type, cols, pair, allowed)
    out: list[dict] = []
    append = out.append
    for i, rec in enumerate(records):
        try:
            if not isinstance(rec, dict):
                raise _CellError(f"expected an object (one row), got {_type_name(rec)}")
            append(convert(rec))
        except _CellError as err:
            row = row_numbers[i] if row_numbers is not None else i + 1
            raise TaskDataError(
                str(err), path=path, row=row, column=getattr(err, "column", None)
            ) from None
    return out


# --------------------------------------------------------------------------- split-level checks


def check_columns(
    available: Sequence[str], task_type: TaskType, cols: Columns, path: str | Path, pair: bool
) -> None:
    """For tabular files: every needed column is in the header (error lists what is there)."""
    have = set(available)
    for col in cols.needed(task_type, pair or task_type is TaskType.PAIR_CLASSIFICATION):
        if col not in have:
            raise TaskDataError(
                f"missing column {col!r}; available columns: {', '.join(map(str, available))}. "
                "Pass the right column name (e.g. text_col=..., label_col=...).",
                path=path,
                column=col,
            )


def check_not_empty(rows: Sequence[Any], path: str | Path, split: str) -> None:
    if not rows:
        raise TaskDataError(f"the {split} split is empty (0 rows)", path=path)


def _label_values(rows: Sequence[dict], task_type: TaskType) -> list:
    if task_type is TaskType.TOKEN_CLASSIFICATION:
        return [tag for row in rows for tag in row["tags"]]
    return [row["label"] for row in rows]


def check_train_labels(
    rows: Sequence[dict], task_type: TaskType, path: str | Path, cols: Columns | None = None
) -> None:
    """Classification types need at least 2 distinct labels in train."""
    if task_type not in LABELLED_TYPES:
        return
    distinct = sorted({row["label"] for row in rows})
    if len(distinct) < 2:
        col = (cols or Columns()).label
        raise TaskDataError(
            f"train has only {len(distinct)} distinct label(s) ({', '.join(distinct)}); "
            "classification needs at least 2",
            path=path,
            column=col,
        )


def check_dev_labels(
    train_rows: Sequence[dict],
    dev_rows: Sequence[dict],
    task_type: TaskType,
    dev_path: str | Path,
    cols: Columns | None = None,
    row_numbers: Sequence[int] | None = None,
) -> None:
    """Classification types: every dev label must occur in train (lists the unseen ones)."""
    if task_type not in LABELLED_TYPES:
        return
    seen = {row["label"] for row in train_rows}
    first: dict[str, int] = {}
    for i, row in enumerate(dev_rows):
        label = row["label"]
        if label not in seen and label not in first:
            first[label] = row_numbers[i] if row_numbers is not None else i + 1
    if first:
        unseen = sorted(first)
        where = ", ".join(f"{lab!r} (first at row {first[lab]})" for lab in unseen)
        raise TaskDataError(
            f"{len(unseen)} label(s) in dev never occur in train: {where}",
            path=dev_path,
            row=first[unseen[0]],
            column=(cols or Columns()).label,
        )
