"""Property-based fuzzing of every data entry point.

Whatever rows or bytes a user hands in (JSONL, JSON, CSV, TSV, Parquet, in-memory records, a
Hugging Face dataset, a catalog folder), for every task type the data layer either returns a
valid :class:`TaskData` (canonical rows, a consistent spec, a fingerprint) or raises
:class:`TaskDataError`: never any other exception.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import math
import os
import sys
import tempfile
import types
from contextlib import contextmanager
from pathlib import Path
from unittest.mock import patch

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from taskscout.data import (
    TaskData,
    TaskDataError,
    TaskSpec,
    TaskType,
    canonicalize_rows,
    load_task,
    write_jsonl,
)

#: Examples per property; raise it for a deeper run (``TASKSCOUT_FUZZ_EXAMPLES=1000 pytest ...``).
FUZZ = settings(
    max_examples=int(os.environ.get("TASKSCOUT_FUZZ_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TYPES = st.sampled_from(list(TaskType))
COLUMNS = ["text", "text_pair", "label", "tokens", "tags", "choices"]

# --------------------------------------------------------------------------- strategies

SPECIAL_STRINGS = [
    "NaN", "nan", "-NaN", "inf", "-Infinity", "1", "1.0", " 1 ", "01", "1e3", "1e400", "-0",
    "2.50", "", " ", "\ufeff", "[", "[1, 2", '["a", 3]', '["x", "y"]', "a b c", "null", "None",
    "9" * 300, "\x00", "é", "\ud800", "O", "B-PER", "pos", "neg", "0",
]  # fmt: skip
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-3, max_value=3),
    st.integers(),
    st.sampled_from([10**30, -(10**30), 10**400, 10**5000]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, 1.0, -0.0, 2.5, float("nan"), float("inf")]),
    st.text(max_size=12),
    st.text(st.characters(min_codepoint=0xD7F0, max_codepoint=0xE010), max_size=3),
    st.sampled_from(SPECIAL_STRINGS),
)
cells = st.one_of(
    scalars,
    st.lists(scalars, max_size=4),
    st.lists(st.sampled_from(["a", "b", "O", "B-PER", "1", "1.0"]), min_size=1, max_size=4),
    st.dictionaries(st.text(max_size=3), scalars, max_size=2),
)
records = st.one_of(
    st.dictionaries(st.sampled_from([*COLUMNS, "other"]), cells, max_size=7),
    scalars,
    st.lists(scalars, max_size=3),
)


@st.composite
def plausible_row(draw, task_type: TaskType) -> dict:
    """A row that is often valid for ``task_type``, with random corruption of single cells."""
    label = draw(st.sampled_from(["a", "b", "c", 0, 1, 1.0, "1.0", 2.5]))
    n = draw(st.integers(min_value=1, max_value=3))
    row = {
        "text": draw(st.sampled_from(["some text", "other", "x y"])),
        "text_pair": "pair",
        "label": label,
        "tokens": ["w"] * n,
        "tags": [draw(st.sampled_from(["O", "B-X", 1, "1.0"])) for _ in range(n)],
        "choices": ["c1", "c2", "c3"],
    }
    if task_type is TaskType.MULTIPLE_CHOICE:
        row["label"] = draw(st.sampled_from([0, 1, 2, "1", 1.0]))
    if task_type is TaskType.REGRESSION:
        row["label"] = draw(st.sampled_from([0.5, 1, "2.25", 3.0]))
    for _ in range(draw(st.integers(min_value=0, max_value=2))):
        key = draw(st.sampled_from([*COLUMNS, "other"]))
        if draw(st.booleans()):
            row.pop(key, None)
        else:
            row[key] = draw(cells)
    return row


@st.composite
def typed_rows(draw) -> tuple[TaskType, list]:
    task_type = draw(TYPES)
    rows = draw(
        st.one_of(
            st.lists(plausible_row(task_type), min_size=0, max_size=8),
            st.lists(records, min_size=0, max_size=5),
        )
    )
    return task_type, rows


# --------------------------------------------------------------------------- the property


def assert_canonical_rows(rows: list, task_type: TaskType, labels=None) -> None:
    """Rows follow the canonical schema of DESIGN.md section 3."""
    assert isinstance(rows, list)
    for row in rows:
        assert isinstance(row, dict)
        if task_type is TaskType.TOKEN_CLASSIFICATION:
            assert set(row) == {"tokens", "tags"}
            assert row["tokens"] and len(row["tokens"]) == len(row["tags"])
            assert all(isinstance(t, str) and t.strip() for t in row["tokens"])
            assert all(isinstance(t, str) and t.strip() for t in row["tags"])
            if labels is not None:
                assert set(row["tags"]) <= set(labels)
            continue
        assert isinstance(row["text"], str) and row["text"].strip()
        if "text_pair" in row:
            assert isinstance(row["text_pair"], str) and row["text_pair"].strip()
        if task_type is TaskType.PAIR_CLASSIFICATION:
            assert "text_pair" in row
        if task_type in (TaskType.CLASSIFICATION, TaskType.PAIR_CLASSIFICATION):
            assert isinstance(row["label"], str) and row["label"].strip()
            assert row["label"].lower() not in ("nan", "inf", "-inf")
            if labels is not None:
                assert row["label"] in labels
        elif task_type is TaskType.REGRESSION:
            assert type(row["label"]) is float and math.isfinite(row["label"])
        else:
            choices = row["choices"]
            assert len(choices) >= 2 and all(isinstance(c, str) and c.strip() for c in choices)
            assert type(row["label"]) is int and 0 <= row["label"] < len(choices)
        json.dumps(row, allow_nan=False).encode("utf-8")  # serialisable, valid Unicode


def assert_valid_task(task: TaskData, task_type: TaskType) -> None:
    assert isinstance(task, TaskData) and isinstance(task.spec, TaskSpec)
    assert task.spec.type is task_type
    assert task.train and task.dev
    assert_canonical_rows(task.train, task_type, task.spec.labels)
    assert_canonical_rows(task.dev, task_type, task.spec.labels)
    if task.spec.labels is not None:
        assert len(set(task.spec.labels)) == len(task.spec.labels)
    if task_type in (TaskType.CLASSIFICATION, TaskType.PAIR_CLASSIFICATION):
        assert len({r["label"] for r in task.train}) >= 2
    fingerprint = task.fingerprint()
    assert len(fingerprint) == 64


def load_or_error(task_type: TaskType, *args, **kwargs) -> None:
    """The property: a valid task or a TaskDataError naming its source, nothing else."""
    try:
        task = load_task(*args, type=task_type, **kwargs)
    except TaskDataError as err:
        assert str(err) and err.detail
        return
    assert_valid_task(task, task_type)


@contextmanager
def scratch():
    with tempfile.TemporaryDirectory() as tmp:
        yield Path(tmp)


def _json_line(rec) -> str:
    try:
        return json.dumps(rec, ensure_ascii=False)
    except ValueError:  # int too large to write as text
        return '"an integer too large to write"'


# --------------------------------------------------------------------------- in memory


@FUZZ
@given(case=typed_rows(), pair=st.booleans())
def test_canonicalize_rows_returns_canonical_rows_or_task_data_error(case, pair):
    task_type, rows = case
    try:
        out = canonicalize_rows(rows, task_type, "memory", pair=pair)
    except TaskDataError as err:
        assert err.path == "memory"
        return
    assert len(out) == len(rows)
    assert_canonical_rows(out, task_type)


# --------------------------------------------------------------------------- JSON files


@FUZZ
@given(case=typed_rows(), dev=st.booleans(), as_array=st.booleans())
def test_jsonl_and_json_files(case, dev, as_array):
    task_type, rows = case
    with scratch() as tmp:
        if as_array:
            path = tmp / "t.json"
            try:
                path.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
            except ValueError:
                assume(False)  # a huge int json cannot write
        else:
            path = tmp / "t.jsonl"
            path.write_text("".join(_json_line(r) + "\n" for r in rows), "utf-8", "surrogatepass")
        load_or_error(task_type, path, dev_file=path if dev else None)


# --------------------------------------------------------------------------- CSV / TSV

csv_cells = st.one_of(
    st.sampled_from(SPECIAL_STRINGS[:-3]),
    st.sampled_from(["a", "b", "x y", "pos", "neg", "0", "1", "1.0", "2.5"]),
    st.text(max_size=8).filter(lambda s: "\x00" not in s),
)


@st.composite
def tabular(draw) -> tuple[TaskType, list[str], list[list[str]]]:
    task_type = draw(TYPES)
    header = draw(
        st.one_of(
            st.just(
                {
                    TaskType.CLASSIFICATION: ["text", "label"],
                    TaskType.PAIR_CLASSIFICATION: ["text", "text_pair", "label"],
                    TaskType.REGRESSION: ["text", "label"],
                    TaskType.TOKEN_CLASSIFICATION: ["tokens", "tags"],
                    TaskType.MULTIPLE_CHOICE: ["text", "choices", "label"],
                }[task_type]
            ),
            st.lists(st.sampled_from([*COLUMNS, "", "label"]), min_size=1, max_size=4),
        )
    )
    width = st.integers(min_value=max(0, len(header) - 1), max_value=len(header) + 1)
    rows = draw(st.lists(width.flatmap(lambda w: st.lists(csv_cells, min_size=w, max_size=w))))
    return task_type, header, rows


@FUZZ
@given(case=tabular(), sep=st.sampled_from([",", "\t"]), bom=st.booleans(), cut=st.integers(0, 9))
def test_csv_and_tsv_files(case, sep, bom, cut):
    task_type, header, rows = case
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=sep, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    data = ("\ufeff" if bom else "") + buf.getvalue()
    encoded = data.encode("utf-8", "surrogatepass")
    if cut:  # truncate mid-file (possibly inside a quoted field or a UTF-8 sequence)
        encoded = encoded[: len(encoded) * cut // 10]
    with scratch() as tmp:
        path = tmp / ("t.tsv" if sep == "\t" else "t.csv")
        path.write_bytes(encoded)
        load_or_error(task_type, path)


# --------------------------------------------------------------------------- Parquet

parquet_columns = st.one_of(
    st.lists(st.one_of(st.none(), st.sampled_from(["a", "b", "NaN", "1.0", "", "x y"]))),
    st.lists(st.one_of(st.none(), st.integers(-2, 3))),
    st.lists(st.floats(allow_nan=True, allow_infinity=True)),
    st.lists(st.one_of(st.none(), st.lists(st.sampled_from(["O", "B-X", "w", "", "1.0"])))),
    st.lists(st.lists(st.integers(-1, 3))),
    st.lists(st.booleans()),
)


@FUZZ
@given(
    task_type=TYPES,
    columns=st.dictionaries(st.sampled_from(COLUMNS), parquet_columns, max_size=4),
    n=st.integers(min_value=0, max_value=8),
)
def test_parquet_files(task_type, columns, n):
    data = {name: (values * (n // max(len(values), 1) + 1))[:n] for name, values in columns.items()}
    data = {name: values for name, values in data.items() if len(values) == n}
    try:
        table = pa.Table.from_pydict(data) if data else pa.table({"x": pa.array([], pa.int64())})
    except (pa.ArrowException, TypeError, ValueError):
        assume(False)
    with scratch() as tmp:
        path = tmp / "t.parquet"
        pq.write_table(table, path)
        load_or_error(task_type, path)


# --------------------------------------------------------------------------- raw bytes


def _valid_bytes(suffix: str) -> bytes:
    rows = [{"text": f"t{i}", "label": "ab"[i % 2]} for i in range(6)]
    if suffix == ".parquet":
        sink = pa.BufferOutputStream()
        pq.write_table(pa.Table.from_pylist(rows), sink)
        return sink.getvalue().to_pybytes()
    if suffix in (".csv", ".tsv"):
        sep = "\t" if suffix == ".tsv" else ","
        return (
            "text" + sep + "label\n" + "".join(f"t{i}{sep}{'ab'[i % 2]}\n" for i in range(6))
        ).encode()
    if suffix == ".json":
        return json.dumps(rows).encode()
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


@FUZZ
@given(
    suffix=st.sampled_from([".jsonl", ".json", ".csv", ".tsv", ".parquet"]),
    task_type=TYPES,
    how=st.sampled_from(["random", "truncate", "flip", "insert", "empty", "bom"]),
    junk=st.binary(max_size=64),
    where=st.floats(min_value=0, max_value=1),
)
def test_malformed_files_of_every_format(suffix, task_type, how, junk, where):
    base = _valid_bytes(suffix)
    at = int(len(base) * where)
    data = {
        "random": junk,
        "truncate": base[:at],
        "flip": base[:at] + bytes([base[at] ^ 0xFF]) + base[at + 1 :] if at < len(base) else base,
        "insert": base[:at] + junk + base[at:],
        "empty": b"",
        "bom": b"\xef\xbb\xbf" + base,
    }[how]
    with scratch() as tmp:
        path = tmp / f"t{suffix}"
        path.write_bytes(data)
        load_or_error(task_type, path)
        # the file is also readable as a folder's train split
        folder = tmp / "task"
        folder.mkdir()
        (folder / f"train{suffix}").write_bytes(data)
        load_or_error(task_type, folder)


# --------------------------------------------------------------------------- catalog folders


@FUZZ
@given(case=typed_rows(), dev_case=typed_rows())
def test_catalog_task_with_fuzzed_files(case, dev_case):
    task_type, rows = case
    dev_rows = dev_case[1]
    labels = None
    if task_type in (TaskType.CLASSIFICATION, TaskType.PAIR_CLASSIFICATION):
        labels = ["a", "b", "c", "0", "1"]
    elif task_type is TaskType.TOKEN_CLASSIFICATION:
        labels = ["O", "B-X", "1"]
    entry = {"name": "fuzz", "type": task_type.value, "labels": labels}
    with scratch() as tmp:
        (tmp / "catalog.json").write_text(json.dumps([entry]), encoding="utf-8")
        for split, split_rows in (("train", rows), ("dev", dev_rows)):
            text = "".join(_json_line(r) + "\n" for r in split_rows)
            (tmp / "fuzz").mkdir(exist_ok=True)
            (tmp / "fuzz" / f"{split}.jsonl").write_text(text, "utf-8", "surrogatepass")
        load_or_error(task_type, "fuzz", data_dir=tmp)


# --------------------------------------------------------------------------- Hugging Face


class _Feature:
    def __init__(self, names=None, feature=None):
        self.names = names
        self.feature = feature


class _Split:
    """The slice of the ``datasets.Dataset`` interface the hf: path uses."""

    def __init__(self, rows, features):
        self._rows = rows
        self.features = features
        self.column_names = sorted({k for r in rows if isinstance(r, dict) for k in r})

    def to_list(self):
        return [dict(r) if isinstance(r, dict) else r for r in self._rows]


def _datasets_module(splits: dict) -> types.ModuleType:
    module = types.ModuleType("datasets")
    module.load_dataset = lambda name, config=None: splits
    return module


@FUZZ
@given(case=typed_rows(), dev_case=typed_rows(), class_label=st.booleans())
def test_hf_datasets_path(case, dev_case, class_label):
    task_type, rows = case
    rows = [r for r in rows if isinstance(r, dict)]
    dev_rows = [r for r in dev_case[1] if isinstance(r, dict)]
    features = {}
    if class_label:  # ClassLabel ints (out-of-range ones become missing labels)
        features = {
            "label": _Feature(names=["neg", "pos"]),
            "tags": _Feature(feature=_Feature(names=["O", "B-X"])),
        }
    splits = {"train": _Split(rows, features)}
    if dev_rows:
        splits["validation"] = _Split(dev_rows, features)
    with patch.dict(sys.modules, {"datasets": _datasets_module(splits)}):
        load_or_error(task_type, "hf:fuzz")


@pytest.mark.skipif(importlib.util.find_spec("datasets") is None, reason="datasets not installed")
@FUZZ
@given(case=typed_rows())
def test_real_datasets_in_memory(case):
    import datasets  # optional dependency

    task_type, rows = case
    rows = [r for r in rows if isinstance(r, dict)]
    try:
        split = datasets.Dataset.from_list(rows)
    except Exception:  # arrow cannot type these rows; nothing to load
        assume(False)
    dict_ds = datasets.DatasetDict({"train": split})
    module = types.ModuleType("datasets")
    module.load_dataset = lambda name, config=None: dict_ds
    with patch.dict(sys.modules, {"datasets": module}):
        load_or_error(task_type, "hf:fuzz")


def test_fuzz_helpers_accept_a_valid_task(tmp_path):
    # the property is not vacuous: a well-formed file loads and passes every check
    path = tmp_path / "ok.jsonl"
    write_jsonl(path, [{"text": f"t{i}", "label": "ab"[i % 2]} for i in range(10)])
    task = load_task(path, type="classification")
    assert_valid_task(task, TaskType.CLASSIFICATION)
    with pytest.raises(AssertionError):
        assert_canonical_rows([{"text": "x", "label": "nan"}], TaskType.CLASSIFICATION)
