"""Every bad input gives a TaskDataError naming the file, the 1-based row and the column."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pandas as pd
import pytest

from taskscout.data import Columns, TaskDataError, canonicalize_rows, load_task

FIXTURES = Path(__file__).parent / "fixtures" / "data"


@pytest.fixture(autouse=True)
def _no_data_dir_env(monkeypatch):
    monkeypatch.delenv("TASKSCOUT_DATA_DIR", raising=False)


def jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def task_dir(tmp_path: Path, train: list, dev: list, ext: str = "jsonl") -> Path:
    folder = tmp_path / "mytask"
    folder.mkdir()
    jsonl(folder / f"train.{ext}", train)
    jsonl(folder / f"dev.{ext}", dev)
    return folder


def load_error(*args, **kwargs) -> TaskDataError:
    with pytest.raises(TaskDataError) as info:
        load_task(*args, **kwargs)
    return info.value


CLS_TRAIN = [{"text": "good", "label": "pos"}, {"text": "bad", "label": "neg"}]


# --------------------------------------------------------------------------- the error type


def test_error_message_format_and_attributes():
    err = TaskDataError("empty text", path="a/b.csv", row=3, column="review")
    assert str(err) == "a/b.csv: row 3, column 'review': empty text"
    assert (err.path, err.row, err.column, err.detail) == ("a/b.csv", 3, "review", "empty text")
    assert isinstance(err, ValueError)
    assert str(TaskDataError("x", path="f.jsonl")) == "f.jsonl: x"


def test_error_survives_pickling():
    err = TaskDataError("bad", path="f.jsonl", row=2, column="label")
    back = pickle.loads(pickle.dumps(err))
    assert str(back) == str(err)
    assert (back.path, back.row, back.column) == ("f.jsonl", 2, "label")


# --------------------------------------------------------------------------- file-level problems


def test_malformed_json_line():
    path = FIXTURES / "bad_json.jsonl"
    err = load_error(path, type="classification")
    assert str(path) in str(err)
    assert "row 3" in str(err) and "malformed JSON" in str(err)
    assert err.row == 3


def test_row_that_is_not_an_object(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"text": "a", "label": "x"}\n[1, 2]\n', encoding="utf-8")
    err = load_error(path, type="classification")
    assert f"{path}: row 2" in str(err) and "expected an object" in str(err)


def test_blank_lines_are_skipped_but_rows_keep_line_numbers(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text(
        '{"text": "a", "label": "x"}\n\n{"text": "b", "label": "y"}\n{"text": " ", "label": "y"}\n',
        encoding="utf-8",
    )
    err = load_error(path, type="classification")
    assert "row 4, column 'text'" in str(err)


@pytest.mark.parametrize("name", ["empty.jsonl", "empty.csv", "empty.tsv"])
def test_empty_file(tmp_path, name):
    path = tmp_path / name
    path.write_text("", encoding="utf-8")
    err = load_error(path, type="classification")
    assert str(path) in str(err) and "empty" in str(err)


def test_header_only_csv_is_an_empty_split(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("text,label\n", encoding="utf-8")
    err = load_error(path, type="classification")
    assert str(path) in str(err) and "train split is empty (0 rows)" in str(err)


def test_empty_dev_split(tmp_path):
    folder = task_dir(tmp_path, CLS_TRAIN, [])
    err = load_error(folder, type="classification")
    assert str(folder / "dev.jsonl") in str(err) and "dev split is empty" in str(err)


def test_unsupported_suffix(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("hello\n", encoding="utf-8")
    err = load_error(path, type="classification")
    assert "unsupported file type '.txt'" in str(err)


def test_type_is_required_for_user_files():
    err = load_error(FIXTURES / "reviews.csv")
    assert str(FIXTURES / "reviews.csv") in str(err)
    assert "type is required" in str(err) and "token_classification" in str(err)


def test_not_utf8(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes(b"text,label\n\xff\xfe bad,a\n")
    err = load_error(path, type="classification")
    assert str(path) in str(err) and "UTF-8" in str(err)


# --------------------------------------------------------------------------- columns


def test_missing_column_in_jsonl_row(tmp_path):
    path = jsonl(tmp_path / "t.jsonl", [CLS_TRAIN[0], {"text": "no label here"}, CLS_TRAIN[1]])
    err = load_error(path, type="classification")
    assert f"{path}: row 2" in str(err)
    assert "missing column 'label'" in str(err) and "this row has: text" in str(err)


def test_missing_column_in_csv_header_lists_available_columns():
    path = FIXTURES / "reviews.csv"
    err = load_error(path, type="classification", text_col="sentence", label_col="sentiment")
    assert str(path) in str(err)
    assert "column 'sentence'" in str(err) and "missing column 'sentence'" in str(err)
    assert "id, review, sentiment, source" in str(err)
    assert err.column == "sentence"


def test_missing_column_in_parquet(tmp_path):
    path = tmp_path / "t.parquet"
    pd.DataFrame({"text": ["a", "b"], "y": ["p", "q"]}).to_parquet(path)
    err = load_error(path, type="classification")
    assert str(path) in str(err) and "missing column 'label'" in str(err)


def test_pair_classification_needs_text_pair(tmp_path):
    path = jsonl(tmp_path / "t.jsonl", CLS_TRAIN)
    err = load_error(path, type="pair_classification")
    assert "row 1" in str(err) and "missing column 'text_pair'" in str(err)


# --------------------------------------------------------------------------- text and labels


@pytest.mark.parametrize(("text", "what"), [("", "empty text"), ("  \t", "only whitespace")])
def test_empty_or_whitespace_text(tmp_path, text, what):
    path = jsonl(tmp_path / "t.jsonl", [*CLS_TRAIN, {"text": text, "label": "pos"}])
    err = load_error(path, type="classification")
    assert f"{path}: row 3, column 'text': " in str(err) and what in str(err)


def test_empty_text_in_csv_uses_the_users_column_name(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("review,stars\ngreat,5\n,1\n", encoding="utf-8")
    err = load_error(path, type="classification", text_col="review", label_col="stars")
    assert f"{path}: row 2, column 'review': empty text" in str(err)


def test_empty_text_pair(tmp_path):
    rows = [
        {"text": "a", "text_pair": "b", "label": "x"},
        {"text": "a", "text_pair": "", "label": "y"},
    ]
    err = load_error(jsonl(tmp_path / "t.jsonl", rows), type="pair_classification")
    assert "row 2, column 'text_pair'" in str(err) and "empty text_pair" in str(err)


def test_null_label(tmp_path):
    path = jsonl(tmp_path / "t.jsonl", [*CLS_TRAIN, {"text": "meh", "label": None}])
    err = load_error(path, type="classification")
    assert "row 3, column 'label': missing label" in str(err)


def test_dev_labels_unseen_in_train_are_listed(tmp_path):
    dev = [
        {"text": "x", "label": "pos"},
        {"text": "y", "label": "mixed"},
        {"text": "z", "label": "angry"},
        {"text": "w", "label": "mixed"},
    ]
    folder = task_dir(tmp_path, CLS_TRAIN, dev)
    err = load_error(folder, type="classification")
    msg = str(err)
    assert str(folder / "dev.jsonl") in msg
    assert "2 label(s) in dev never occur in train" in msg
    assert "'angry' (first at row 3)" in msg and "'mixed' (first at row 2)" in msg
    assert "column 'label'" in msg


def test_single_label_train(tmp_path):
    path = jsonl(tmp_path / "t.jsonl", [{"text": t, "label": "pos"} for t in "abcde"])
    err = load_error(path, type="classification")
    assert str(path) in str(err)
    assert "only 1 distinct label(s) (pos)" in str(err) and "at least 2" in str(err)


# --------------------------------------------------------------------------- regression


@pytest.mark.parametrize(
    ("label", "message"),
    [
        ("high", "not a number: 'high'"),
        ("", "not a number"),
        (float("nan"), "NaN"),
        (float("inf"), "infinite"),
        ("-inf", "infinite"),
        ("nan", "NaN"),
        (True, "got boolean"),
        (None, "missing regression target"),
        ([1.0], "must be a number"),
    ],
)
def test_regression_target_must_be_finite_number(tmp_path, label, message):
    rows = [{"text": "a", "label": 1.0}, {"text": "b", "label": 2}, {"text": "c", "label": label}]
    path = tmp_path / "t.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    err = load_error(path, type="regression")
    assert f"{path}: row 3, column 'label'" in str(err) and message in str(err)


def test_regression_nan_text_in_csv(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("s1,s2,score\na,b,1.5\nc,d,NaN\n", encoding="utf-8")
    err = load_error(path, type="regression", text_col="s1", text_pair_col="s2", label_col="score")
    assert f"{path}: row 2, column 'score': regression target is NaN" in str(err)


# --------------------------------------------------------------------------- token classification


def test_token_tag_length_mismatch(tmp_path):
    rows = [
        {"tokens": ["a", "b"], "tags": ["O", "O"]},
        {"tokens": ["Bob", "runs", "."], "tags": ["B-PER", "O"]},
    ]
    err = load_error(jsonl(tmp_path / "t.jsonl", rows), type="token_classification")
    assert "row 2, column 'tokens'" in str(err)
    assert "3 tokens but 2 tags" in str(err)


def test_empty_tokens(tmp_path):
    rows = [{"tokens": ["a"], "tags": ["O"]}, {"tokens": [], "tags": []}]
    err = load_error(jsonl(tmp_path / "t.jsonl", rows), type="token_classification")
    assert "row 2, column 'tokens': empty token list" in str(err)


def test_blank_token_and_non_string_tag(tmp_path):
    rows = [{"tokens": ["a", " "], "tags": ["O", "O"]}]
    err = load_error(jsonl(tmp_path / "a.jsonl", rows), type="token_classification")
    assert "row 1, column 'tokens': token 2 is empty" in str(err)
    rows = [{"tokens": ["a", "b"], "tags": ["O", None]}]
    err = load_error(jsonl(tmp_path / "b.jsonl", rows), type="token_classification")
    assert "row 1, column 'tags'" in str(err) and "item 2 must be a string" in str(err)


def test_token_list_column_with_malformed_json_in_csv(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text('words,labels\n"[""a"", ""b""","O O"\n', encoding="utf-8")
    err = load_error(path, type="token_classification", tokens_col="words", tags_col="labels")
    assert f"{path}: row 1, column 'words'" in str(err) and "malformed JSON list" in str(err)


# --------------------------------------------------------------------------- multiple choice


def _mc(label, choices=("yes", "no")):
    return {"text": "q?", "choices": list(choices), "label": label}


@pytest.mark.parametrize(
    ("row", "column", "message"),
    [
        (_mc(0, ["only one"]), "choices", "at least 2 choices, got 1"),
        (_mc(0, []), "choices", "at least 2 choices, got 0"),
        (_mc("first"), "label", "must be an integer choice index"),
        (_mc(1.5), "label", "must be an integer choice index"),
        (_mc(True), "label", "got boolean"),
        (_mc(2), "label", "label 2 is out of range"),
        (_mc(-1), "label", "label -1 is out of range"),
        (_mc(0, ["a", ""]), "choices", "choice 2 is empty"),
    ],
)
def test_multiple_choice_errors(tmp_path, row, column, message):
    path = jsonl(tmp_path / "t.jsonl", [_mc(0), _mc(1), row])
    err = load_error(path, type="multiple_choice")
    assert f"{path}: row 3, column '{column}'" in str(err)
    assert message in str(err)


def test_multiple_choice_label_out_of_range_with_choice_columns():
    path = FIXTURES / "copa_style.csv"
    err = load_error(
        path,
        type="multiple_choice",
        text_col="premise",
        choices_col=["choice1"],
        label_col="answer",
    )
    assert "column 'choice1'" in str(err) and "at least 2 choices, got 1" in str(err)


# --------------------------------------------------------------------------- canonicalize_rows


def test_canonicalize_rows_directly():
    rows = canonicalize_rows(
        [{"t": "x", "y": 3}, {"t": 12, "y": "4"}],
        "classification",
        "memory",
        columns=Columns(text="t", label="y"),
    )
    assert rows == [{"text": "x", "label": "3"}, {"text": "12", "label": "4"}]
    with pytest.raises(TaskDataError, match=r"^memory: row 7, column 'label'"):
        canonicalize_rows([{"text": "a", "label": ""}], "classification", "memory", row_numbers=[7])


# --------------------------------------------------------------------------- labels in memory


def test_in_memory_nan_label_is_an_error_and_numbers_are_one_class():
    import numpy as np

    rows = [{"text": "a", "label": np.int64(1)}, {"text": "b", "label": 1.0}]
    rows += [{"text": "c", "label": "1.0"}, {"text": "d", "label": np.float32(0.0)}]
    out = canonicalize_rows(rows, "classification", "mem")
    assert [r["label"] for r in out] == ["1", "1", "1", "0"]
    with pytest.raises(TaskDataError, match="missing label \\(NaN\\)") as info:
        canonicalize_rows(rows + [{"text": "e", "label": float("nan")}], "classification", "mem")
    assert info.value.row == 5 and info.value.column == "label" and info.value.path == "mem"


def test_unpaired_surrogate_and_huge_numbers_are_cell_errors():
    with pytest.raises(TaskDataError, match="surrogate") as info:
        canonicalize_rows([{"text": "ok \ud800", "label": "a"}], "classification", "mem")
    assert info.value.column == "text"
    with pytest.raises(TaskDataError, match="too large") as info:
        canonicalize_rows([{"text": "t", "label": 10**400}], "regression", "mem")
    assert info.value.column == "label"
    with pytest.raises(TaskDataError, match="integer too large"):
        canonicalize_rows([{"text": 10**5000, "label": "a"}], "classification", "mem")


def test_messages_about_huge_values_do_not_crash():
    # found by tests/test_data_fuzz.py: repr() of a list holding a 5000-digit int raised ValueError
    huge = 10**5000
    for row in ({"text": [huge], "label": "a"}, {"text": "t", "label": [huge]}, {huge: 1}):
        with pytest.raises(TaskDataError, match="too large to show|missing column") as info:
            canonicalize_rows([row], "classification", "mem")
        assert info.value.row == 1
