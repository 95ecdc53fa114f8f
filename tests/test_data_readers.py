"""Readers: formats, column mapping, folders, carved dev, subsampling, the hf: path."""

from __future__ import annotations

import importlib.util
import json
import sys
import types
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taskscout.data import (
    TaskDataError,
    TaskType,
    carve_dev,
    load_task,
    read_records,
    subsample_rows,
    write_jsonl,
)

FIXTURES = Path(__file__).parent / "fixtures" / "data"


@pytest.fixture(autouse=True)
def _no_data_dir_env(monkeypatch):
    monkeypatch.delenv("TASKSCOUT_DATA_DIR", raising=False)


def cls_rows(n_pos: int, n_neg: int, prefix: str = "row") -> list[dict]:
    rows = [{"text": f"{prefix} {i} pos", "label": "pos"} for i in range(n_pos)]
    rows += [{"text": f"{prefix} {i} neg", "label": "neg"} for i in range(n_neg)]
    # interleave the labels deterministically so that order matters
    return sorted(rows, key=lambda r: r["text"][::-1])


# --------------------------------------------------------------------------- formats


def test_csv_with_custom_columns_and_na_text():
    task = load_task(
        FIXTURES / "reviews.csv", type="classification", text_col="review", label_col="sentiment"
    )
    assert task.spec.name == "reviews"
    assert task.spec.type is TaskType.CLASSIFICATION
    assert task.spec.labels == ("neg", "pos")
    assert task.spec.metric == "accuracy"
    assert task.source == str(FIXTURES / "reviews.csv")
    rows = task.train + task.dev
    assert len(rows) == 10 and len(task.dev) == 2
    assert all(set(r) == {"text", "label"} for r in rows)
    texts = {r["text"] for r in rows}
    assert "NA" in texts  # keep_default_na=False: the text "NA" stays text
    assert 'Loved it, "truly" loved it.' in texts
    assert sorted(r["label"] for r in task.dev) == ["neg", "pos"]  # stratified


def test_tsv_pair_classification():
    task = load_task(
        FIXTURES / "nli.tsv",
        type="pair_classification",
        text_col="premise",
        text_pair_col="hypothesis",
        label_col="gold",
        name="tiny_nli",
        dev_file=FIXTURES / "nli.tsv",
    )
    assert task.spec.name == "tiny_nli"
    assert task.spec.labels == ("contradiction", "entailment", "neutral")
    assert task.train[0] == {
        "text": "A man sleeps.",
        "text_pair": "A person rests.",
        "label": "entailment",
    }
    assert len(task.train) == len(task.dev) == 6


def test_parquet_token_classification_with_list_columns(tmp_path):
    path = tmp_path / "ner.parquet"
    df = pd.DataFrame(
        {
            "toks": [["Alice", "runs"], ["In", "Paris", "."], ["Bob"], ["Hi", "Carl"], ["x"]],
            "ner": [["B-PER", "O"], ["O", "B-LOC", "O"], ["B-PER"], ["O", "B-PER"], ["O"]],
        }
    )
    df.to_parquet(path)
    task = load_task(path, type="token_classification", tokens_col="toks", tags_col="ner")
    assert task.spec.labels == ("B-LOC", "B-PER", "O")
    assert task.spec.metric == "seqeval_f1"
    rows = task.train + task.dev
    assert len(task.dev) == 1 and len(rows) == 5
    assert {"tokens": ["In", "Paris", "."], "tags": ["O", "B-LOC", "O"]} in rows
    assert all(isinstance(r["tokens"], list) for r in rows)


def test_parquet_integer_labels_become_strings(tmp_path):
    path = tmp_path / "t.parquet"
    pd.DataFrame(
        {"text": [f"t{i}" for i in range(12)], "label": [i % 3 for i in range(12)]}
    ).to_parquet(path)
    task = load_task(path, type="classification")
    assert task.spec.labels == ("0", "1", "2")
    assert all(isinstance(r["label"], str) for r in task.train)


def test_numeric_labels_sort_numerically(tmp_path):
    path = tmp_path / "t.jsonl"
    write_jsonl(
        path, [{"text": f"t{i}", "label": str(lab)} for i, lab in enumerate([10, 2, 1] * 4)]
    )
    assert load_task(path, type="classification").spec.labels == ("1", "2", "10")


def test_json_array_file(tmp_path):
    path = tmp_path / "t.json"
    path.write_text(json.dumps(cls_rows(5, 5)), encoding="utf-8")
    task = load_task(path, type="classification")
    assert len(task.train) + len(task.dev) == 10


def test_json_lines_with_json_suffix(tmp_path):
    path = tmp_path / "t.json"
    write_jsonl(path, cls_rows(5, 5))
    assert len(read_records(path)) == 10


def test_csv_json_and_whitespace_list_columns():
    task = load_task(
        FIXTURES / "ner.csv",
        type="token_classification",
        tokens_col="words",
        tags_col="labels",
        dev_file=FIXTURES / "ner.csv",
    )
    assert task.train == [
        {"tokens": ["Alice", "visited", "Paris", "."], "tags": ["B-PER", "O", "B-LOC", "O"]},
        {
            "tokens": ["Bob", "lives", "in", "New", "York"],
            "tags": ["B-PER", "O", "O", "B-LOC", "I-LOC"],
        },
        {"tokens": ["Hello"], "tags": ["O"]},
    ]
    assert task.spec.labels == ("B-LOC", "B-PER", "I-LOC", "O")


def test_multiple_choice_from_choice_columns():
    task = load_task(
        FIXTURES / "copa_style.csv",
        type="multiple_choice",
        text_col="premise",
        choices_col=["choice1", "choice2"],
        label_col="answer",
        dev_file=FIXTURES / "copa_style.csv",
    )
    assert task.spec.labels is None and task.spec.num_labels == 1
    assert task.train[2] == {
        "text": "She smiled. What was the cause?",
        "choices": ["She got bad news.", "She got good news."],
        "label": 1,
    }


def test_multiple_choice_json_list_in_csv(tmp_path):
    path = tmp_path / "mc.csv"
    pd.DataFrame(
        {
            "q": ["a?", "b?", "c?", "d?"],
            "opts": [json.dumps(["x y", "z"]), json.dumps(["1", "2", "3"]), '["p", "q"]', "yes no"],
            "label": ["0", "2", "1", "1"],
        }
    ).to_csv(path, index=False)
    task = load_task(path, type="multiple_choice", text_col="q", choices_col="opts", dev_file=path)
    assert [r["choices"] for r in task.train] == [
        ["x y", "z"],
        ["1", "2", "3"],
        ["p", "q"],
        ["yes", "no"],
    ]
    assert [r["label"] for r in task.train] == [0, 2, 1, 1]


def test_regression_pair_detected_and_numbers_parsed(tmp_path):
    path = tmp_path / "sts.csv"
    path.write_text(
        "text,text_pair,label\na,b,1.5\nc,d,4\ne,f,0\ng,h,3.25\ni,j,2\n", encoding="utf-8"
    )
    task = load_task(path, type="regression")
    assert task.spec.labels is None and task.spec.metric == "pearson"
    rows = task.train + task.dev
    assert all(set(r) == {"text", "text_pair", "label"} for r in rows)
    assert sorted(r["label"] for r in rows) == [0.0, 1.5, 2.0, 3.25, 4.0]
    assert all(isinstance(r["label"], float) for r in rows)


def test_regression_single_text(tmp_path):
    path = tmp_path / "r.jsonl"
    write_jsonl(path, [{"text": f"t{i}", "label": i / 2} for i in range(10)])
    task = load_task(path, type="regression")
    assert all(set(r) == {"text", "label"} for r in task.train)


def test_metric_override_and_positive_label(tmp_path):
    path = tmp_path / "t.jsonl"
    write_jsonl(path, cls_rows(6, 6))
    task = load_task(path, type="classification", metric="f1")
    assert task.spec.metric == "f1" and task.spec.positive_label == "pos"
    task = load_task(path, type="classification", metric="f1", positive_label="neg")
    assert task.spec.positive_label == "neg"
    with pytest.raises(TaskDataError, match="metric 'pearson' does not apply"):
        load_task(path, type="classification", metric="pearson")


# --------------------------------------------------------------------------- folders


def test_folder_with_train_and_dev(tmp_path):
    folder = tmp_path / "my_task"
    write_jsonl(folder / "train.jsonl", cls_rows(4, 4))
    write_jsonl(folder / "dev.jsonl", cls_rows(2, 1, prefix="dev"))
    task = load_task(folder, type="classification")
    assert task.spec.name == "my_task"
    assert len(task.train) == 8 and len(task.dev) == 3
    assert task.source == str(folder)


def test_folder_with_validation_csv(tmp_path):
    folder = tmp_path / "csvtask"
    folder.mkdir()
    pd.DataFrame(cls_rows(3, 3)).to_csv(folder / "train.csv", index=False)
    pd.DataFrame(cls_rows(1, 1, prefix="v")).to_csv(folder / "validation.csv", index=False)
    task = load_task(str(folder), type="classification")
    assert len(task.train) == 6 and len(task.dev) == 2


def test_folder_without_dev_carves_one(tmp_path):
    folder = tmp_path / "t"
    write_jsonl(folder / "train.jsonl", cls_rows(10, 10))
    task = load_task(folder, type="classification")
    assert len(task.dev) == 4 and len(task.train) == 16


def test_folder_ambiguous_or_without_train(tmp_path):
    folder = tmp_path / "t"
    write_jsonl(folder / "train.jsonl", cls_rows(2, 2))
    pd.DataFrame(cls_rows(2, 2)).to_csv(folder / "train.csv", index=False)
    with pytest.raises(TaskDataError, match="ambiguous.*train.csv, train.jsonl"):
        load_task(folder, type="classification")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(TaskDataError, match="no train file"):
        load_task(empty, type="classification")


def test_missing_path_is_reported_as_such(tmp_path):
    with pytest.raises(TaskDataError, match="not found"):
        load_task(tmp_path / "nope.csv", type="classification")
    with pytest.raises(TaskDataError, match="not found"):
        load_task(str(tmp_path / "nope.csv"), type="classification")


# --------------------------------------------------------------------------- carved dev


def test_carved_dev_is_stratified_seeded_and_disjoint(tmp_path):
    path = tmp_path / "t.jsonl"
    rows = cls_rows(70, 30)
    write_jsonl(path, rows)
    a = load_task(path, type="classification", seed=1)
    b = load_task(path, type="classification", seed=1)
    c = load_task(path, type="classification", seed=2)
    assert a.train == b.train and a.dev == b.dev
    assert a.dev != c.dev
    assert len(a.dev) == 20
    assert Counter(r["label"] for r in a.dev) == {"pos": 14, "neg": 6}
    train_texts = {r["text"] for r in a.train}
    dev_texts = {r["text"] for r in a.dev}
    assert not train_texts & dev_texts
    assert train_texts | dev_texts == {r["text"] for r in rows}
    # original order is kept in both parts
    order = {r["text"]: i for i, r in enumerate(rows)}
    assert [order[r["text"]] for r in a.train] == sorted(order[r["text"]] for r in a.train)
    assert [order[r["text"]] for r in a.dev] == sorted(order[r["text"]] for r in a.dev)


def test_carved_dev_is_capped_at_1000():
    rows = cls_rows(3000, 3000)
    train, dev = carve_dev(rows, seed=0, key=lambda r: r["label"])
    assert len(dev) == 1000 and len(train) == 5000
    assert Counter(r["label"] for r in dev) == {"pos": 500, "neg": 500}


def test_carving_keeps_rare_labels_in_train():
    rows = cls_rows(20, 0) + [{"text": "lonely", "label": "rare"}]
    train, dev = carve_dev(rows, seed=3, key=lambda r: r["label"])
    assert {"text": "lonely", "label": "rare"} in train
    assert len(dev) == 4


def test_carving_from_singleton_labels_is_an_error_not_an_empty_dev(tmp_path):
    # found by tests/test_data_fuzz.py: 2 rows, 2 labels gave a TaskData with dev == []
    path = tmp_path / "t.jsonl"
    write_jsonl(path, [{"text": "a", "label": "x"}, {"text": "b", "label": "y"}])
    with pytest.raises(TaskDataError, match="too few to carve a dev split") as info:
        load_task(path, type="classification")
    assert info.value.path == str(path)
    assert carve_dev([{"label": "x"}, {"label": "y"}], key=lambda r: r["label"])[1] == []


def test_carving_needs_two_rows(tmp_path):
    path = tmp_path / "t.jsonl"
    write_jsonl(path, [{"text": "a", "label": 1.0}])
    with pytest.raises(TaskDataError, match="too few to carve"):
        load_task(path, type="regression")


# --------------------------------------------------------------------------- subsampling


def test_subsampling_is_seeded_stratified_and_ordered(tmp_path):
    folder = tmp_path / "t"
    train = cls_rows(80, 20)
    write_jsonl(folder / "train.jsonl", train)
    write_jsonl(folder / "dev.jsonl", cls_rows(30, 30, prefix="dev"))
    a = load_task(folder, type="classification", max_train=10, max_dev=6, seed=5)
    b = load_task(folder, type="classification", max_train=10, max_dev=6, seed=5)
    c = load_task(folder, type="classification", max_train=10, max_dev=6, seed=6)
    assert a.train == b.train and a.dev == b.dev and a.fingerprint() == b.fingerprint()
    assert a.train != c.train
    assert Counter(r["label"] for r in a.train) == {"pos": 8, "neg": 2}
    assert Counter(r["label"] for r in a.dev) == {"pos": 3, "neg": 3}
    index = {r["text"]: i for i, r in enumerate(train)}
    positions = [index[r["text"]] for r in a.train]
    assert positions == sorted(positions)
    # labels come from the full train split, not the sample
    assert a.spec.labels == ("neg", "pos")
    full = load_task(folder, type="classification", max_train=1000)
    assert full.train == train


def test_subsample_keeps_every_class_when_possible():
    rows = cls_rows(98, 0) + [{"text": "r1", "label": "rare"}, {"text": "r2", "label": "odd"}]
    out = subsample_rows(rows, 5, seed=0, key=lambda r: r["label"])
    assert len(out) == 5
    assert {r["label"] for r in out} == {"pos", "rare", "odd"}


def test_subsample_without_key_for_token_tasks(tmp_path):
    path = tmp_path / "t.jsonl"
    write_jsonl(path, [{"tokens": [f"w{i}"], "tags": ["O"]} for i in range(50)])
    a = load_task(path, type="token_classification", max_train=7, seed=0)
    b = load_task(path, type="token_classification", max_train=7, seed=0)
    assert len(a.train) == 7 and a.train == b.train


def test_invalid_sample_sizes(tmp_path):
    path = tmp_path / "t.jsonl"
    write_jsonl(path, cls_rows(5, 5))
    with pytest.raises(ValueError, match="max_train must be >= 1"):
        load_task(path, type="classification", max_train=0)


@settings(max_examples=60, deadline=None)
@given(
    counts=st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=5),
    n=st.integers(min_value=0, max_value=120),
    seed=st.integers(min_value=0, max_value=10),
)
def test_subsample_properties(counts, n, seed):
    rows = [{"text": f"{k}-{i}", "label": f"L{k}"} for k, c in enumerate(counts) for i in range(c)]
    key = lambda r: r["label"]  # noqa: E731
    out = subsample_rows(rows, n, seed=seed, key=key)
    assert out == subsample_rows(rows, n, seed=seed, key=key)
    assert len(out) == min(n, len(rows))
    index = {r["text"]: i for i, r in enumerate(rows)}
    pos = [index[r["text"]] for r in out]
    assert pos == sorted(pos) and len(set(pos)) == len(pos)
    got = Counter(r["label"] for r in out)
    if n < len(rows):
        for k, c in enumerate(counts):
            quota = n * c / len(rows)
            # proportional up to rounding and the at-least-one-per-class rule
            assert abs(got[f"L{k}"] - quota) < 1 + len(counts)
        if n >= len(counts):
            assert len(got) == len(counts)


# --------------------------------------------------------------------------- larger files


def test_loading_2x10k_rows_keeps_every_row(tmp_path):
    # functional check only; the speed is measured by benchmarks/data_read_speed.py
    path = tmp_path / "big.jsonl"
    write_jsonl(
        path,
        [
            {"text": f"sentence number {i} " * 3, "text_pair": f"other {i}", "label": "abc"[i % 3]}
            for i in range(10_000)
        ],
    )
    task = load_task(path, type="pair_classification", dev_file=path)
    assert len(task.train) == len(task.dev) == 10_000
    assert task.spec.labels == ("a", "b", "c")
    assert task.train[4] == {
        "text": "sentence number 4 " * 3,
        "text_pair": "other 4",
        "label": "b",
    }


# --------------------------------------------------------------------------- NaN / numeric labels


def test_csv_nan_label_is_an_error_naming_file_and_row(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("text,label\na,pos\nb,neg\nc,NaN\nd,pos\n", encoding="utf-8")
    with pytest.raises(TaskDataError) as info:
        load_task(path, type="classification")
    err = info.value
    assert err.path == str(path) and err.row == 3 and err.column == "label"
    assert "NaN" in err.detail


def test_jsonl_nan_and_infinite_labels_are_errors(tmp_path):
    path = tmp_path / "t.jsonl"
    for literal, word in (("NaN", "NaN"), ("Infinity", "infinite"), ("-Infinity", "infinite")):
        path.write_text(
            '{"text": "a", "label": "pos"}\n{"text": "b", "label": "neg"}\n'
            f'{{"text": "c", "label": {literal}}}\n',
            encoding="utf-8",
        )
        with pytest.raises(TaskDataError, match=word) as info:
            load_task(path, type="classification")
        assert info.value.path == str(path) and info.value.row == 3


def test_parquet_empty_label_cell_is_an_error(tmp_path):
    path = tmp_path / "t.parquet"
    pd.DataFrame({"text": ["a", "b", "c", "d"], "label": [1.0, 0.0, None, 1.0]}).to_parquet(path)
    with pytest.raises(TaskDataError, match="missing label") as info:
        load_task(path, type="classification")
    assert info.value.row == 3 and info.value.path == str(path)


def test_csv_integral_float_labels_are_one_class(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text(
        "text,label\na,1\nb,1.0\nc,0\nd,0.0\ne,1.00\nf, 0 \ng,2.5\nh,2.50\n",
        encoding="utf-8",
    )
    task = load_task(path, type="classification", dev_file=path)
    assert task.spec.labels == ("0", "1", "2.5")
    assert [r["label"] for r in task.train] == ["1", "1", "0", "0", "1", "0", "2.5", "2.5"]


def test_jsonl_mixed_int_float_and_string_labels_are_one_class(tmp_path):
    path = tmp_path / "t.jsonl"
    labels = [1, 1.0, "1", "1.0", 0, 0.0, "0", "0.0"]
    write_jsonl(path, [{"text": f"t{i}", "label": lab} for i, lab in enumerate(labels)])
    task = load_task(path, type="classification", dev_file=path)
    assert task.spec.labels == ("0", "1")
    assert [r["label"] for r in task.train] == ["1"] * 4 + ["0"] * 4


def test_numeric_tags_and_choice_indices_are_canonical(tmp_path):
    path = tmp_path / "ner.jsonl"
    write_jsonl(path, [{"tokens": ["a", "b", "c"], "tags": [1, 1.0, "0.0"]}] * 3)
    task = load_task(path, type="token_classification", dev_file=path)
    assert task.spec.labels == ("0", "1")
    mc = tmp_path / "mc.csv"
    mc.write_text("text,choices,label\nq,a b,1.0\nr,c d,0\n", encoding="utf-8")
    assert [r["label"] for r in load_task(mc, type="multiple_choice", dev_file=mc).train] == [1, 0]


# --------------------------------------------------------------------------- encoding errors


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".tsv", ".json"])
def test_invalid_utf8_names_file_line_and_byte(tmp_path, suffix):
    path = tmp_path / f"t{suffix}"
    sep = "\t" if suffix == ".tsv" else ","
    if suffix in (".jsonl", ".json"):
        lines = [b'{"text": "a", "label": "x"}', b'{"text": "b", "label": "y"}']
        lines.append(b'{"text": "caf\xe9", "label": "x"}')
    else:
        lines = [f"text{sep}label".encode(), f"a{sep}x".encode(), b"caf\xe9" + f"{sep}y".encode()]
    data = b"\n".join(lines) + b"\n"
    path.write_bytes(data)
    with pytest.raises(TaskDataError) as info:
        load_task(path, type="classification")
    msg = str(info.value)
    assert msg.startswith(str(path))
    assert "line 3" in msg
    offset = data.index(b"\xe9")
    assert f"byte offset {offset}" in msg
    assert "0xe9" in msg


# --------------------------------------------------------------------------- hf:


def test_hf_without_datasets_gives_install_hint(monkeypatch):
    if importlib.util.find_spec("datasets") is not None:
        pytest.skip("datasets is installed")
    with pytest.raises(TaskDataError) as info:
        load_task("hf:glue:sst2", type="classification", text_col="sentence")
    assert "pip install taskscout[hf]" in str(info.value)
    assert str(info.value).startswith("hf:glue:sst2")


class _FakeFeature:
    def __init__(self, names=None, feature=None):
        self.names = names
        self.feature = feature


class _FakeSplit:
    def __init__(self, rows, features):
        self._rows = rows
        self.features = features
        self.column_names = list(rows[0])

    def to_list(self):
        return [dict(r) for r in self._rows]


def _fake_datasets(splits_by_name):
    mod = types.ModuleType("datasets")

    def load_dataset(name, config=None):
        key = (name, config)
        if key not in splits_by_name:
            raise FileNotFoundError(f"Dataset '{name}' doesn't exist on the Hub")
        return splits_by_name[key]

    mod.load_dataset = load_dataset
    return mod


def test_hf_path_with_a_fake_datasets_module(monkeypatch):
    label = _FakeFeature(names=["negative", "positive"])
    train = _FakeSplit(
        [{"sentence": f"s{i}", "label": i % 2, "idx": i} for i in range(10)], {"label": label}
    )
    val = _FakeSplit([{"sentence": "v", "label": 1, "idx": 0}], {"label": label})
    test = _FakeSplit([{"sentence": "t", "label": -1, "idx": 0}], {"label": label})
    tags = _FakeFeature(feature=_FakeFeature(names=["O", "B-PER"]))
    ner = _FakeSplit([{"tokens": ["Ann", "ran"], "ner_tags": [1, 0]}] * 3, {"ner_tags": tags})
    fake = _fake_datasets(
        {
            ("glue", "sst2"): {"train": train, "validation": val, "test": test},
            ("toy_ner", None): {"train": ner},
        }
    )
    monkeypatch.setitem(sys.modules, "datasets", fake)

    task = load_task("hf:glue:sst2", type="classification", text_col="sentence")
    assert task.source == "hf:glue:sst2" and task.spec.name == "glue_sst2"
    assert task.spec.labels == ("negative", "positive")
    assert task.train[1] == {"text": "s1", "label": "positive"}
    assert task.dev == [{"text": "v", "label": "positive"}]

    ner_task = load_task("hf:toy_ner", type="token_classification", tags_col="ner_tags")
    assert ner_task.spec.labels == ("B-PER", "O")
    assert ner_task.train[0] == {"tokens": ["Ann", "ran"], "tags": ["B-PER", "O"]}
    assert len(ner_task.dev) == 1  # carved: no validation split

    with pytest.raises(TaskDataError, match="^hf:nope: could not load the dataset"):
        load_task("hf:nope", type="classification")
    expected = r"hf:glue:sst2 \[train\]: column 'text': missing column 'text'; available columns: s"
    with pytest.raises(TaskDataError, match=expected):
        load_task("hf:glue:sst2", type="classification")
