"""Long-form ground-truth and score files (DESIGN.md section 6): reading and checking them.

The exchange format is CSV, UTF-8 (a byte-order mark is accepted), one header row:

* **gold** ``target, source, gain[, performance]`` (:data:`GOLD_COLUMNS`; ``gain`` and
  ``performance`` in metric points), or a wide matrix of target scores with a no-transfer row
  (:func:`read_gold_csv`);
* **scores** ``target, source, predictor, score`` (:data:`SCORE_COLUMNS`; higher = predicted
  more helpful; ``predictor`` may be left out, the file's stem then names it).

Every malformed file raises :class:`EvaluationInputError` (a ``ValueError``) naming the file
and, where there is one, the line (1-based, the header is line 1) and the column, before any
metric is computed. A missing file raises ``FileNotFoundError``. Nothing is modified on disk.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = [
    "GOLD_COLUMNS",
    "GOLD_OPTIONAL_COLUMNS",
    "NO_TRANSFER_ALIASES",
    "SCORE_COLUMNS",
    "EvaluationInputError",
    "describe_rows",
    "read_gold_csv",
    "read_scores_csv",
]

GOLD_COLUMNS = ("target", "source", "gain")
"""Required columns of a long-form gold file or frame."""
GOLD_OPTIONAL_COLUMNS = ("performance",)
"""Optional gold column: the absolute target score after transfer (enables ndcg_perf,
regret@k)."""
SCORE_COLUMNS = ("target", "source", "predictor", "score")
"""Columns of a long-form scores frame (``predictor`` optional in a file)."""
NO_TRANSFER_ALIASES = ("none", "no_transfer", "baseline")
"""Accepted names (case-insensitive) of a wide gold matrix's no-transfer row by default."""

_MISSING_CELLS = {"", "nan", "na", "n/a", "null"}
_LONG_FORM_MARKERS = {"target", "gain", *GOLD_OPTIONAL_COLUMNS}


class EvaluationInputError(ValueError):
    """Malformed evaluation input (a gold or scores file or frame); the message names the file,
    line, column or rows at fault."""


def describe_rows(df: pd.DataFrame, cols: Sequence[str], limit: int = 5) -> str:
    """The first ``limit`` distinct combinations of ``cols`` in ``df`` as text, for error
    messages: ``"target='t1', source='a'; ... (and 3 more)"``."""
    distinct = df[list(cols)].drop_duplicates()
    rows = distinct.head(limit).itertuples(index=False)
    text = "; ".join(
        ", ".join(f"{c}={v!r}" for c, v in zip(cols, row, strict=True)) for row in rows
    )
    more = len(distinct) - limit
    return text + (f" (and {more} more)" if more > 0 else "")


# --------------------------------------------------------------------------------------------
# raw CSV -> strings
# --------------------------------------------------------------------------------------------
def _read_str_csv(path: Path) -> tuple[pd.DataFrame, list[int]]:
    """All cells as stripped strings, plus the file line number of each data row.

    Blank lines are skipped. Every data row must have as many fields as the header.
    """
    if path.is_dir():
        raise EvaluationInputError(f"{path}: is a directory, not a CSV file")
    if not path.is_file():
        raise FileNotFoundError(f"file not found: {path}")
    header: list[str] | None = None
    rows: list[list[str]] = []
    lines: list[int] = []
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh, skipinitialspace=True)
            for row in reader:
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue  # blank line
                if header is None:
                    header = [h.strip() for h in row]
                    continue
                if len(row) != len(header):
                    raise EvaluationInputError(
                        f"{path}: line {reader.line_num} has {len(row)} field(s), the header "
                        f"has {len(header)} ({header})"
                    )
                rows.append([cell.strip() for cell in row])
                lines.append(reader.line_num)
    except UnicodeDecodeError as exc:
        raise EvaluationInputError(f"{path}: not a UTF-8 text CSV file ({exc})") from exc
    except csv.Error as exc:
        raise EvaluationInputError(f"{path}: malformed CSV ({exc})") from exc
    if header is None:
        raise EvaluationInputError(f"{path}: empty file (no header row)")
    if any(h == "" for h in header):
        raise EvaluationInputError(f"{path}: empty column name in the header {header}")
    dups = sorted({h for h in header if header.count(h) > 1})
    if dups:
        raise EvaluationInputError(f"{path}: duplicate column name(s) {dups}")
    if not rows:
        raise EvaluationInputError(f"{path}: no data rows after the header {header}")
    return pd.DataFrame(rows, columns=header, dtype=object), lines


def _to_float(
    series: pd.Series, path: Path, what: str, lines: Sequence[int], *, allow_missing: bool
) -> pd.Series:
    """Strings -> floats; missing cells -> NaN (error unless allowed); junk or +-inf -> error."""
    text = series.astype(str)
    missing = text.str.lower().isin(_MISSING_CELLS)
    values = pd.to_numeric(text.where(~missing), errors="coerce").astype(float)
    junk = values.isna() & ~missing
    if junk.any():
        i = int(np.flatnonzero(junk.to_numpy())[0])
        raise EvaluationInputError(
            f"{path}: {what} is not a number: {series.iloc[i]!r} (line {lines[i]})"
        )
    if not allow_missing and missing.any():
        where = [lines[i] for i in np.flatnonzero(missing.to_numpy())[:5]]
        raise EvaluationInputError(f"{path}: {what} has missing/NaN value(s) on line(s) {where}")
    inf = np.isinf(values.to_numpy(dtype=float))
    if inf.any():
        where = [lines[i] for i in np.flatnonzero(inf)[:5]]
        raise EvaluationInputError(f"{path}: {what} has infinite value(s) on line(s) {where}")
    return values


def _require_names(df: pd.DataFrame, cols: Sequence[str], path: Path, lines: Sequence[int]):
    for col in cols:
        empty = (df[col] == "").to_numpy()
        if empty.any():
            where = [lines[i] for i in np.flatnonzero(empty)[:5]]
            raise EvaluationInputError(f"{path}: empty {col} name on line(s) {where}")


def _check_unique(df: pd.DataFrame, keys: Sequence[str], path: Path, lines: Sequence[int]):
    dup = df.duplicated(list(keys), keep=False).to_numpy()
    if dup.any():
        where = [lines[i] for i in np.flatnonzero(dup)[:5]]
        raise EvaluationInputError(
            f"{path}: duplicate ({', '.join(keys)}) rows on lines {where}: "
            f"{describe_rows(df[dup], keys)}"
        )


def _looks_long_form(header: Sequence[str]) -> bool:
    """A header that names any gold column is long form (a wide matrix's header is a source
    column followed by target task names); ``source`` counts unless it is the first column,
    which is where a wide matrix keeps its source names."""
    return bool(_LONG_FORM_MARKERS & set(header)) or "source" in header[1:]


# --------------------------------------------------------------------------------------------
# readers
# --------------------------------------------------------------------------------------------
def read_gold_csv(path, no_transfer_row: str = "none") -> pd.DataFrame:
    """Read ground truth as a long-form frame ``target, source, gain[, performance]``.

    Two layouts are recognised:

    * **long**: a header naming any of ``target``, ``gain``, ``performance`` (or ``source``
      as other than the first column). It must then contain all of ``target, source, gain``
      (optionally ``performance``; other columns are ignored); a missing one is reported with
      the columns present. Every gain/performance must be a finite number; names are
      non-empty; (target, source) is unique.
    * **wide matrix**: first column = source names, every other column = a target; a cell is
      the target's score after transfer from that row's source. One row, named
      ``no_transfer_row`` (default ``"none"``; with the default, ``"no_transfer"`` and
      ``"baseline"`` are accepted too; case-insensitive), holds each target's no-transfer
      score. Output: ``gain = cell - no_transfer``, ``performance = cell``. Empty cells (e.g.
      the diagonal) mean "not measured" and are skipped; a target column with measurements
      needs a no-transfer value.

    Names are read as strings, stripped. :class:`EvaluationInputError` naming the file (and
    line/column) for malformed input; ``FileNotFoundError`` for a missing file.
    """
    path = Path(path)
    df, lines = _read_str_csv(path)
    header = list(df.columns)
    if _looks_long_form(header):
        missing = [c for c in GOLD_COLUMNS if c not in header]
        if missing:
            raise EvaluationInputError(
                f"{path}: long-form gold file is missing column(s) {missing}; required "
                f"{list(GOLD_COLUMNS)} (optional {list(GOLD_OPTIONAL_COLUMNS)}), the header "
                f"has {header}"
            )
        numeric = ["gain", *[c for c in GOLD_OPTIONAL_COLUMNS if c in header]]
        out = df[["target", "source", *numeric]].copy()
        _require_names(out, ("target", "source"), path, lines)
        for col in numeric:
            out[col] = _to_float(out[col], path, col, lines, allow_missing=False)
        _check_unique(out, ("target", "source"), path, lines)
        return out.reset_index(drop=True)

    if len(header) < 2:
        raise EvaluationInputError(
            f"{path}: neither long form (columns {list(GOLD_COLUMNS)}) nor a wide matrix "
            f"(source column + target columns); the header has {header}"
        )
    sources = df[header[0]]
    if sources.duplicated().any():
        dups = sorted(set(sources[sources.duplicated()]))
        raise EvaluationInputError(
            f"{path}: wide gold matrix has duplicate source row(s) {dups} in column "
            f"{header[0]!r} (for long form the header must contain {list(GOLD_COLUMNS)})"
        )
    wanted = [no_transfer_row]
    if no_transfer_row == "none":
        wanted += [a for a in NO_TRANSFER_ALIASES if a != "none"]
    base_mask = sources.str.lower().isin({w.lower() for w in wanted}).to_numpy()
    if base_mask.sum() == 0:
        raise EvaluationInputError(
            f"{path}: wide matrix without a no-transfer row (a first-column entry named one "
            f"of {wanted}); for long form the header must contain {list(GOLD_COLUMNS)}, "
            f"got {header}"
        )
    if base_mask.sum() > 1:
        raise EvaluationInputError(f"{path}: several no-transfer rows: {list(sources[base_mask])}")
    _require_names(df, header[:1], path, lines)
    base_row = int(np.flatnonzero(base_mask)[0])
    records = []
    for target in header[1:]:
        values = _to_float(df[target], path, f"column {target!r}", lines, allow_missing=True)
        base = values.iloc[base_row]
        measured = values.notna().to_numpy() & ~base_mask
        if not measured.any():
            continue
        if math.isnan(base):
            raise EvaluationInputError(
                f"{path}: target {target!r} has no no-transfer value (line {lines[base_row]})"
            )
        for i in np.flatnonzero(measured):
            cell = float(values.iloc[i])
            records.append((target, sources.iloc[i], cell - base, cell))
    if not records:
        raise EvaluationInputError(
            f"{path}: wide matrix without any measured (target, source) cell"
        )
    return pd.DataFrame(records, columns=[*GOLD_COLUMNS, "performance"])


def read_scores_csv(path) -> pd.DataFrame:
    """Read predictor scores as a long-form frame ``target, source, predictor, score``.

    The header must contain ``target, source, score``; a missing one is reported with the
    columns present. Without a ``predictor`` column the file's stem is the predictor name.
    Other columns are ignored; names are read as stripped, non-empty strings; every score
    must be a finite number; (target, source, predictor) must be unique. Any predictor name
    is allowed (``random`` included: it is a registered predictor, evaluated like the others).
    :class:`EvaluationInputError` naming the file (and line) for malformed input.
    """
    path = Path(path)
    df, lines = _read_str_csv(path)
    header = list(df.columns)
    required = [c for c in SCORE_COLUMNS if c != "predictor"]
    missing = [c for c in required if c not in header]
    if missing:
        raise EvaluationInputError(
            f"{path}: scores file is missing column(s) {missing}; required {required} "
            f"(optional 'predictor', default the file name), the header has {header}"
        )
    out = df[[c for c in SCORE_COLUMNS if c in header]].copy()
    if "predictor" not in out.columns:
        out["predictor"] = path.stem
    out = out[list(SCORE_COLUMNS)]
    _require_names(out, ("target", "source", "predictor"), path, lines)
    out["score"] = _to_float(out["score"], path, "score", lines, allow_missing=False)
    _check_unique(out, ("target", "source", "predictor"), path, lines)
    return out.reset_index(drop=True)
