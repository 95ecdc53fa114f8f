"""Row validation and conversion to the canonical schema, with precise errors.

Every problem raises :class:`TaskDataError`, whose message names the file, and where it applies
the 1-based row number and the column (the user's column name, not the canonical one)::

    data/train.csv: row 17, column 'sentence': empty text

Row numbers are 1-based data rows: for JSONL the line number, for CSV/TSV the row below the header
(row 1 = the first data line), for Parquet, JSON arrays and Hugging Face datasets the position.
"""

from __future__ import annotations

import functools
import json
import math
import numbers
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
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
#: A decimal number as text ("1", "-2.50", ".5", "1e3"); NaN / infinity are matched separately.
_NUMBER_RE = re.compile(r"^\s*[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?\s*$")
_NON_FINITE_RE = re.compile(r"^\s*[+-]?(?:nan|inf|infinity)\s*$", re.IGNORECASE)
_NUMBER_START = frozenset("0123456789+-. \t")
#: Longer numeric strings are left as they are (Python refuses int <-> str beyond 4300 digits).
_MAX_NUMBER_CHARS = 200
#: Lone UTF-16 surrogates (from JSON escapes such as "\ud800") are not valid Unicode text.
_SURROGATE_RE = re.compile("[\ud800-\udfff]")


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _missing(value: Any) -> str:
    return "null" if value is None else "NaN"


def _type_name(value: Any) -> str:
    return type(value).__name__


def _preview(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters, for messages; never raises (Python refuses to
    print integers of more than 4300 digits, and deeply nested lists)."""
    try:
        text = repr(value)
    except (ValueError, RecursionError):
        return f"<{_type_name(value)} too large to show>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _keys_text(record: dict) -> str:
    return ", ".join(k if isinstance(k, str) else _preview(k) for k in record)


def _check_unicode(text: str, what: str) -> None:
    bad = _SURROGATE_RE.search(text)
    if bad is not None:
        raise _CellError(
            f"{what} holds an unpaired UTF-16 surrogate {bad.group()!r} at character "
            f"{bad.start() + 1} (not valid Unicode; fix the \\u escape)"
        )


def _int_text(value: int, what: str) -> str:
    try:
        return str(value)
    except ValueError:  # more digits than Python converts
        raise _CellError(f"{what} is an integer too large ({value.bit_length()} bits)") from None


def _to_text(value: Any, what: str = "text") -> str:
    if isinstance(value, str):
        if not value.strip():
            raise _CellError(f"empty {what}" if not value else f"{what} is only whitespace")
        _check_unicode(value, what)
        return value
    if _is_missing(value):
        raise _CellError(f"missing {what} ({_missing(value)})")
    if isinstance(value, bool):
        raise _CellError(f"{what} must be a string, got boolean {value!r}")
    if isinstance(value, numbers.Integral):
        return _int_text(int(value), what)
    if isinstance(value, numbers.Real):
        return str(value)
    raise _CellError(f"{what} must be a string, got {_type_name(value)} {_preview(value)}")


@functools.lru_cache(maxsize=4096)
def _canonical_label_text(text: str) -> str:
    """A class label (or tag) given as text -> its canonical form.

    Numeric text is canonicalised like a number (``"1.0"``, ``" 1 "``, ``"1e0"`` -> ``"1"``;
    ``"2.50"`` -> ``"2.5"``), so a column read as mixed ints / floats / strings gives one class
    per value; ``NaN`` / infinite values raise ``_CellError``; other text (including empty or
    blank text, which the callers reject with their own message) is returned unchanged.
    """
    if not text or text[0] not in _NUMBER_START and text[0] not in "nNiI":
        return text
    if _NON_FINITE_RE.match(text):
        word = "NaN" if "n" in text.strip().lstrip("+-")[:1].lower() else "infinite"
        raise _CellError(
            f"label is {word} ({text.strip()!r}): a missing or non-finite value is not a class; "
            "give the row a label or remove it"
        )
    if len(text) > _MAX_NUMBER_CHARS or not _NUMBER_RE.match(text):
        return text
    stripped = text.strip()
    if _INT_RE.match(stripped):
        return str(int(stripped))
    as_float = float(stripped)
    if not math.isfinite(as_float):
        raise _CellError(f"label is infinite ({stripped!r} overflows a float)")
    exact = Decimal(stripped)
    if exact == exact.to_integral_value():
        return str(int(exact))
    return repr(as_float)


def _to_class_label(value: Any) -> str:
    if isinstance(value, str):
        if not value.strip():
            raise _CellError("empty label" if not value else "label is only whitespace")
        _check_unicode(value, "label")
        return _canonical_label_text(value)
    if value is None:
        raise _CellError("missing label (null)")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, numbers.Integral):
        return _int_text(int(value), "label")
    if isinstance(value, numbers.Real):
        number = float(value)
        if math.isnan(number):
            raise _CellError(
                "missing label (NaN): a missing value is not a class; give the row a label "
                "or remove it"
            )
        if math.isinf(number):
            raise _CellError(f"label is infinite ({number!r}); labels must be finite")
        return _canonical_label_text(repr(number))
    raise _CellError(
        f"label must be a string or integer, got {_type_name(value)} {_preview(value)}"
    )


def _to_float_label(value: Any) -> float:
    if value is None:
        raise _CellError("missing regression target (null)")
    if isinstance(value, bool):
        raise _CellError(f"regression target must be a number, got boolean {value!r}")
    try:
        if isinstance(value, numbers.Real):
            out = float(value)
        elif isinstance(value, str):
            try:
                out = float(value.strip())
            except ValueError:
                raise _CellError(f"regression target is not a number: {_preview(value)}") from None
        else:
            raise _CellError(f"regression target must be a number, got {_type_name(value)}")
    except OverflowError:
        raise _CellError("regression target is too large for a float") from None
    if math.isnan(out):
        raise _CellError("regression target is NaN")
    if math.isinf(out):
        raise _CellError(f"regression target is infinite ({_preview(value)})")
    return out


def _to_int_label(value: Any) -> int:
    if _is_missing(value):
        raise _CellError(f"missing label ({_missing(value)})")
    if isinstance(value, bool):
        raise _CellError(f"label must be an integer choice index, got boolean {value!r}")
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real) and math.isfinite(value) and float(value).is_integer():
        return int(value)
    if isinstance(value, str) and len(value) <= _MAX_NUMBER_CHARS:
        if _INT_RE.match(value):
            return int(value)
        if _NUMBER_RE.match(value):
            as_float = float(value)
            if math.isfinite(as_float) and as_float.is_integer():
                return int(as_float)
    raise _CellError(
        f"label must be an integer choice index, got {_type_name(value)} {_preview(value)}"
    )


def _to_str_list(value: Any, what: str, canonical_items: bool = False) -> list[str]:
    """A list of strings from a list, a JSON list string or a whitespace-separated string.

    ``canonical_items``: items are class names (tags), canonicalised like class labels, so that
    ``1``, ``1.0`` and ``"1.0"`` are one tag.
    """
    if isinstance(value, str):
        stripped = value.strip()
        if stripped.startswith("["):
            try:
                value = json.loads(stripped)
            except (ValueError, RecursionError) as exc:
                reason = exc.msg if isinstance(exc, json.JSONDecodeError) else type(exc).__name__
                raise _CellError(f"{what}: malformed JSON list ({reason})") from None
        else:
            _check_unicode(value, what)
            value = stripped.split()
            return [_canonical_label_text(v) for v in value] if canonical_items else value
    if type(value) is list and all(type(item) is str for item in value):  # fast path (JSON)
        _check_unicode("".join(value), what)
        if canonical_items:
            return [_canonical_label_text(item) for item in value]
        return value
    if _is_missing(value):
        raise _CellError(f"missing {what} ({_missing(value)})")
    if not isinstance(value, list | tuple):
        raise _CellError(f"{what} must be a list of strings, got {_type_name(value)}")
    out = []
    for i, item in enumerate(value, start=1):
        if isinstance(item, str):
            _check_unicode(item, f"{what}: item {i}")
            out.append(_canonical_label_text(item) if canonical_items else item)
        elif (
            isinstance(item, numbers.Real) and not isinstance(item, bool) and not _is_missing(item)
        ):
            try:
                out.append(_to_class_label(item) if canonical_items else _to_text(item, what))
            except _CellError as err:
                raise _CellError(f"{what}: item {i}: {err}") from None
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
                f"missing column {col!r} (this row has: {_keys_text(rec) or 'nothing'})"
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
            tags = cell(tag_c, _to_str_list, get(rec, tag_c), "tags", True)
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
