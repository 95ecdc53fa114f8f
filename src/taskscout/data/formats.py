"""Data files -> raw records: JSONL / JSON, CSV / TSV and Parquet readers, and the JSONL writer.

Each reader returns a :class:`RawRecords`: the records exactly as the file holds them (dicts keyed
by the file's column names, not yet validated) plus what error messages need (the file, each
record's 1-based row number, the header of tabular files). Validation and conversion to the
canonical schema are :mod:`taskscout.data.validation`'s job.

Every problem with the file itself (unknown suffix, unreadable, not UTF-8, malformed JSON, a CSV
the parser rejects) raises :class:`~taskscout.data.validation.TaskDataError` naming the file and,
where one exists, the line: for text files an invalid UTF-8 byte is reported as
``line N (byte offset B)``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from taskscout.data.validation import TaskDataError

__all__ = [
    "SUFFIXES",
    "RawRecords",
    "format_of",
    "decode_utf8",
    "read_text_file",
    "parse_jsonl",
    "read_jsonl",
    "read_json",
    "read_delimited",
    "read_parquet",
    "read_file",
    "read_records",
    "write_jsonl",
]

#: File suffix (lower case) -> format name.
SUFFIXES: dict[str, str] = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".csv": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
}


@dataclass
class RawRecords:
    """Records of one split as read, before validation.

    ``records``: the file's rows (normally dicts, but whatever the file holds: validation rejects
    non-objects). ``row_numbers``: each record's 1-based row number for messages (JSONL: the line
    number), or ``None`` for position + 1. ``path``: the file (or ``hf:...`` reference) for
    messages. ``columns``: the header of tabular sources, ``None`` for JSON.
    """

    records: list[Any]
    row_numbers: list[int] | None
    path: str
    columns: list[str] | None


def format_of(path: str | Path) -> str:
    """The format name (a value of :data:`SUFFIXES`) of a file, from its suffix."""
    path = Path(path)
    fmt = SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise TaskDataError(
            f"unsupported file type {path.suffix or '(no suffix)'!r}; "
            f"use one of: {', '.join(sorted(SUFFIXES))}",
            path=path,
        )
    return fmt


def decode_utf8(data: bytes, path: str | Path) -> str:
    """``data`` decoded as UTF-8 (a leading BOM is dropped).

    An invalid byte raises :class:`TaskDataError` naming the file, the 1-based line, the byte
    offset in the file and the byte itself, e.g. ``line 3 (byte offset 57): invalid byte 0xe9``.
    """
    bom = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    try:
        return data[bom:].decode("utf-8") if bom else data.decode("utf-8")
    except UnicodeDecodeError as exc:
        start = exc.start + bom
        line = data.count(b"\n", 0, start) + 1
        column = start - (data.rfind(b"\n", 0, start) + 1) + 1
        raise TaskDataError(
            f"not UTF-8 text: line {line}, byte {column} of the line (byte offset {start} in the "
            f"file): invalid byte 0x{data[start]:02x} ({exc.reason}); re-save the file as UTF-8",
            path=path,
        ) from None


def read_text_file(path: str | Path) -> str:
    """A whole text file as UTF-8 (see :func:`decode_utf8`); unreadable files raise
    :class:`TaskDataError`."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise TaskDataError(f"cannot read file: {exc.strerror or exc}", path=path) from None
    return decode_utf8(data, path)


def parse_jsonl(text: str, path: str | Path) -> RawRecords:
    """One JSON value per non-blank line; row numbers are line numbers. A line that is not JSON
    (or holds a number too large to convert, or nests too deeply) raises :class:`TaskDataError`
    with that line as the row."""
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
        except (ValueError, RecursionError) as exc:  # huge integer literal, deep nesting
            raise TaskDataError(
                f"JSON line cannot be read: {type(exc).__name__}: {str(exc)[:120]}",
                path=path,
                row=lineno,
            ) from None
        numbers.append(lineno)
    return RawRecords(records, numbers, str(path), None)


def read_jsonl(path: str | Path) -> RawRecords:
    """A JSON-lines file (see :func:`parse_jsonl`)."""
    return parse_jsonl(read_text_file(path), path)


def read_json(path: str | Path) -> RawRecords:
    """A ``.json`` file: a JSON array of rows (row = position), or JSON lines."""
    text = read_text_file(path)
    if not text.lstrip().startswith("["):
        return parse_jsonl(text, path)  # .json holding JSON lines
    try:
        records = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TaskDataError(
            f"malformed JSON array: {exc.msg} (line {exc.lineno}, character {exc.colno})",
            path=path,
        ) from None
    except (ValueError, RecursionError) as exc:
        raise TaskDataError(
            f"JSON array cannot be read: {type(exc).__name__}: {str(exc)[:120]}", path=path
        ) from None
    return RawRecords(records, None, str(path), None)


def read_delimited(path: str | Path, sep: str) -> RawRecords:
    """A CSV (``sep=","``) or TSV (``sep="\\t"``) file with a header row; every cell is read as a
    string, verbatim (no NA guessing: the text ``NA`` stays text). Row numbers are data rows
    (row 1 = the first line below the header)."""
    kind = "TSV" if sep == "\t" else "CSV"
    text = read_text_file(path)
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise TaskDataError(f"cannot parse as {kind}: NUL character on line {line}", path=path)
    try:
        df = pd.read_csv(
            io.StringIO(text),
            sep=sep,
            dtype=str,
            keep_default_na=False,
            na_filter=False,
            quoting=csv.QUOTE_MINIMAL,
        )
    except pd.errors.EmptyDataError:
        raise TaskDataError("the file is empty (no header, 0 rows)", path=path) from None
    except (pd.errors.ParserError, csv.Error, ValueError) as exc:
        raise TaskDataError(f"cannot parse as {kind}: {exc}", path=path) from None
    columns = [str(c) for c in df.columns]
    df.columns = columns
    return RawRecords(df.to_dict("records"), None, str(path), columns)


def read_parquet(path: str | Path) -> RawRecords:
    """A Parquet file (row numbers are positions); list columns stay lists."""
    try:
        table = pq.read_table(path)
        records = table.to_pylist()
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise TaskDataError(f"cannot read Parquet: {exc}", path=path) from None
    return RawRecords(records, None, str(path), [str(c) for c in table.column_names])


def read_file(path: str | Path) -> RawRecords:
    """Read any supported file (format from the suffix); a missing file raises
    :class:`TaskDataError`."""
    path = Path(path)
    fmt = format_of(path)
    if not path.is_file():
        raise TaskDataError("file not found", path=path)
    if fmt == "jsonl":
        return read_jsonl(path)
    if fmt == "json":
        return read_json(path)
    if fmt == "csv":
        return read_delimited(path, ",")
    if fmt == "tsv":
        return read_delimited(path, "\t")
    return read_parquet(path)


def read_records(path: str | Path) -> list[Any]:
    """Raw records (dicts keyed by the file's column names) of a JSONL/JSON/CSV/TSV/Parquet file,
    without validation. Malformed files raise :class:`TaskDataError`."""
    return read_file(path).records


def write_jsonl(path: str | Path, rows: Sequence[dict]) -> None:
    """Write rows as UTF-8 JSON lines (``ensure_ascii=False``, the shared data's format)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="\n") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False))
            fh.write("\n")
