"""The catalog, data-dir resolution and the bundled demo suite."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import taskscout
from taskscout.data import (
    DEMO_SOURCES,
    DEMO_TARGET,
    TaskDataError,
    TaskType,
    catalog_table,
    demo_data_dir,
    load_catalog,
    load_catalog_entries,
    load_task,
    resolve_data_dir,
    write_jsonl,
)

DEMO_TASKS = (DEMO_TARGET, *DEMO_SOURCES)


@pytest.fixture(autouse=True)
def _no_data_dir_env(monkeypatch):
    monkeypatch.delenv("TASKSCOUT_DATA_DIR", raising=False)


def make_catalog(root: Path, entries: list[dict], rows: dict[str, tuple[list, list]]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "catalog.json").write_text(json.dumps(entries), encoding="utf-8")
    for name, (train, dev) in rows.items():
        write_jsonl(root / name / "train.jsonl", train)
        write_jsonl(root / name / "dev.jsonl", dev)
    return root


TOY_ENTRY = {
    "name": "toy",
    "title": "Toy sentiment",
    "type": "classification",
    "family": "sentiment",
    "metric": "accuracy",
    "labels": ["negative", "positive"],
    "num_train": 4,
    "num_dev": 2,
}
TOY_TRAIN = [
    {"text": "good", "label": "positive"},
    {"text": "bad", "label": "negative"},
    {"text": "great", "label": "positive"},
    {"text": "awful", "label": "negative"},
]
TOY_DEV = [{"text": "fine", "label": "positive"}, {"text": "poor", "label": "negative"}]


@pytest.fixture
def toy_dir(tmp_path) -> Path:
    return make_catalog(tmp_path / "suite", [TOY_ENTRY], {"toy": (TOY_TRAIN, TOY_DEV)})


# --------------------------------------------------------------------------- data dir resolution


def test_demo_data_dir_is_inside_the_package():
    demo = demo_data_dir()
    assert demo.is_dir() and (demo / "catalog.json").is_file()
    assert Path(taskscout.__file__).parent in demo.parents


def test_resolve_data_dir_precedence(monkeypatch, tmp_path):
    assert resolve_data_dir(None) == demo_data_dir()
    monkeypatch.setenv("TASKSCOUT_DATA_DIR", str(tmp_path / "env"))
    assert resolve_data_dir(None) == tmp_path / "env"
    assert resolve_data_dir(tmp_path / "arg") == tmp_path / "arg"
    assert resolve_data_dir(str(tmp_path / "arg")) == tmp_path / "arg"
    monkeypatch.setenv("TASKSCOUT_DATA_DIR", "")
    assert resolve_data_dir(None) == demo_data_dir()


def test_env_var_selects_the_catalog(monkeypatch, toy_dir):
    monkeypatch.setenv("TASKSCOUT_DATA_DIR", str(toy_dir))
    assert list(load_catalog()) == ["toy"]
    task = load_task("toy")
    assert task.train == TOY_TRAIN and task.dev == TOY_DEV
    assert task.source == load_task("toy", data_dir=toy_dir).source  # the env var's catalog
    assert task.source.startswith("catalog:toy@")
    assert task.spec.labels == ("negative", "positive")  # catalog order, not sorted train labels


# --------------------------------------------------------------------------- the demo suite


def test_demo_catalog_contents():
    specs = load_catalog()
    assert list(specs) == list(DEMO_TASKS)
    assert specs["mnli"].type is TaskType.PAIR_CLASSIFICATION
    assert specs["mnli"].labels == ("entailment", "neutral", "contradiction")
    assert specs["sms_spam"].type is TaskType.CLASSIFICATION
    copa = specs["copa"]
    assert copa.type is TaskType.MULTIPLE_CHOICE and copa.labels is None
    assert copa.num_labels == 1
    assert all(s.metric == "accuracy" for s in specs.values())


def test_demo_tasks_load_and_match_the_catalog():
    entries = {e["name"]: e for e in load_catalog_entries()}
    for name in DEMO_TASKS:
        task = load_task(name)
        assert len(task.train) == entries[name]["num_train"] <= 300
        assert len(task.dev) == entries[name]["num_dev"] <= 150
        assert task.source.startswith("catalog:")
        assert len(task.fingerprint()) == 64
    assert len(load_task("mnli").train) == 300
    boolq = load_task("boolq")
    assert all(set(r) == {"text", "text_pair", "label"} for r in boolq.train)
    copa = load_task("copa")
    assert all(isinstance(r["label"], int) and len(r["choices"]) == 2 for r in copa.train)


def test_demo_catalog_keeps_provenance_fields_and_documents_subsampling():
    provenance = (demo_data_dir() / "PROVENANCE.md").read_text(encoding="utf-8")
    for entry in load_catalog_entries():
        assert entry["source"] and all(s["commit"] for s in entry["source"])
        assert entry["license"]
        assert "taskscout demo subset" in entry["notes"]
        assert f"## {entry['name']} " in provenance
        assert entry["license"] in provenance
        for s in entry["source"]:
            assert s["commit"] in provenance
    assert "Share-alike" in provenance or "share-alike" in provenance


def test_demo_suite_subsample_is_stratified():
    task = load_task("mnli")
    counts = {lab: sum(r["label"] == lab for r in task.train) for lab in task.spec.labels}
    assert all(80 <= c <= 120 for c in counts.values()), counts


def test_catalog_table():
    table = catalog_table()
    assert list(table.columns) == [
        "name",
        "type",
        "family",
        "metric",
        "num_labels",
        "num_train",
        "num_dev",
    ]
    assert list(table["name"]) == list(DEMO_TASKS)
    row = table.set_index("name").loc["mnli"]
    assert row["type"] == "pair_classification" and row["num_labels"] == 3
    assert row["num_train"] == 300 and row["num_dev"] == 150
    assert table.set_index("name").loc["copa", "num_labels"] == 1


def test_catalog_table_without_counts(tmp_path):
    entry = {k: v for k, v in TOY_ENTRY.items() if not k.startswith("num_")}
    root = make_catalog(tmp_path / "s", [entry], {})
    table = catalog_table(root)
    assert table["num_train"].isna().all()


# --------------------------------------------------------------------------- catalog tasks


def test_unknown_task_lists_available_names():
    with pytest.raises(TaskDataError) as info:
        load_task("mnly")
    msg = str(info.value)
    assert "unknown task 'mnly'" in msg
    assert "Did you mean: mnli" in msg
    assert "Available tasks: mnli, snli, qnli, boolq, sms_spam, copa" in msg
    assert str(demo_data_dir() / "catalog.json") in msg


def test_catalog_label_not_in_list(tmp_path):
    train = [*TOY_TRAIN, {"text": "hmm", "label": "neutral"}]
    root = make_catalog(tmp_path / "s", [TOY_ENTRY], {"toy": (train, TOY_DEV)})
    with pytest.raises(TaskDataError) as info:
        load_task("toy", data_dir=root)
    msg = str(info.value)
    assert str(root / "toy" / "train.jsonl") in msg
    assert "row 5, column 'label'" in msg
    assert "'neutral' is not in the catalog's label list (negative, positive)" in msg


def test_catalog_dev_label_only_needs_to_be_in_the_catalog(tmp_path):
    entry = dict(TOY_ENTRY, labels=["negative", "positive", "mixed"])
    dev = [*TOY_DEV, {"text": "so-so", "label": "mixed"}]
    root = make_catalog(tmp_path / "s", [entry], {"toy": (TOY_TRAIN, dev)})
    task = load_task("toy", data_dir=root)
    assert task.spec.labels == ("negative", "positive", "mixed")


def test_catalog_token_tags_checked(tmp_path):
    entry = {"name": "ner", "type": "token_classification", "metric": "seqeval_f1"}
    entry["labels"] = ["O", "B-PER", "I-PER"]
    train = [
        {"tokens": ["Ann"], "tags": ["B-PER"]},
        {"tokens": ["in", "Rome"], "tags": ["O", "B-LOC"]},
    ]
    root = make_catalog(tmp_path / "s", [entry], {"ner": (train, train[:1])})
    with pytest.raises(TaskDataError, match=r"row 2, column 'tags': tag 2 'B-LOC' is not in"):
        load_task("ner", data_dir=root)


def test_catalog_missing_split_file(tmp_path, toy_dir):
    (toy_dir / "toy" / "dev.jsonl").unlink()
    with pytest.raises(TaskDataError, match=r"dev\.jsonl: file not found"):
        load_task("toy", data_dir=toy_dir)


def test_catalog_overrides(toy_dir):
    task = load_task("toy", data_dir=toy_dir, name="renamed", metric="f1")
    assert task.spec.name == "renamed" and task.spec.metric == "f1"
    assert task.spec.positive_label == "positive" and task.spec.family == "sentiment"
    with pytest.raises(TaskDataError, match="is classification in the catalog, not regression"):
        load_task("toy", data_dir=toy_dir, type="regression")
    same = load_task("toy", data_dir=toy_dir, type="classification", max_train=2, max_dev=1)
    assert len(same.train) == 2 and len(same.dev) == 1
    assert {r["label"] for r in same.train} == {"negative", "positive"}


def test_f1_catalog_entry_gets_default_positive_label(tmp_path):
    entry = dict(TOY_ENTRY, name="mrpc", metric="f1", labels=["not_equivalent", "equivalent"])
    spec = load_catalog(make_catalog(tmp_path / "s", [entry], {}))["mrpc"]
    assert spec.positive_label == "equivalent"


# --------------------------------------------------------------------------- malformed catalogs


def test_missing_catalog(tmp_path):
    with pytest.raises(TaskDataError) as info:
        load_catalog(tmp_path)
    msg = str(info.value)
    assert str(tmp_path / "catalog.json") in msg and "TASKSCOUT_DATA_DIR" in msg
    with pytest.raises(TaskDataError, match="data directory .* not found"):
        load_task("toy", data_dir=tmp_path / "nowhere")


def test_malformed_catalog_json(tmp_path):
    (tmp_path / "catalog.json").write_text('[{"name": "a",\n "type": }]', encoding="utf-8")
    with pytest.raises(TaskDataError) as info:
        load_catalog(tmp_path)
    assert str(tmp_path / "catalog.json") in str(info.value)
    assert "malformed JSON at line 2" in str(info.value)


def test_catalog_json_not_utf8_names_line_and_byte(tmp_path):
    (tmp_path / "catalog.json").write_bytes(b'[\n{"name": "caf\xe9", "type": "regression"}]')
    with pytest.raises(TaskDataError) as info:
        load_catalog(tmp_path)
    msg = str(info.value)
    assert str(tmp_path / "catalog.json") in msg
    assert "line 2" in msg and "byte offset 15" in msg and "0xe9" in msg


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"a": 1}, "expected a JSON list of task entries"),
        (["x"], "entry 1 is not an object"),
        ([{"name": "a"}], "entry 1 lacks key\\(s\\): type"),
        ([dict(TOY_ENTRY, metric="bleu")], "entry 1 \\('toy'\\): .*unknown metric 'bleu'"),
        ([dict(TOY_ENTRY, type="ranking")], "entry 1 \\('toy'\\): unknown task type"),
        ([TOY_ENTRY, TOY_ENTRY], "entry 2 \\('toy'\\): duplicate task name"),
        ([dict(TOY_ENTRY, num_train="many")], "num_train must be an integer"),
        ([dict(TOY_ENTRY, labels=None)], "needs a list of labels"),
    ],
)
def test_invalid_catalog_entries(tmp_path, content, message):
    (tmp_path / "catalog.json").write_text(json.dumps(content), encoding="utf-8")
    with pytest.raises(TaskDataError, match=message) as info:
        load_catalog(tmp_path)
    assert str(info.value).startswith(str(tmp_path / "catalog.json"))


def test_folder_named_like_a_catalog_task_takes_precedence(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_jsonl(tmp_path / "mnli" / "train.jsonl", TOY_TRAIN)
    with pytest.raises(TaskDataError, match="takes precedence over a catalog task"):
        load_task("mnli")
    task = load_task("mnli", type="classification")
    # the source is the resolved folder: one data set, one source, however it was named
    assert task.source == str((tmp_path / "mnli").resolve())
    assert len(task.train) + len(task.dev) == 4
