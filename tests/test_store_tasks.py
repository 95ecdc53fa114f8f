"""Task records and their data source (defect c: two files with the same name in different
folders must not silently replace each other's task record)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from taskscout.store import RunStore, StoreError

SPEC = {"type": "classification", "labels": ["neg", "pos"]}


@pytest.fixture
def store(tmp_path: Path):
    with RunStore(tmp_path / "store") as s:
        yield s


def test_same_name_same_source_updates(store: RunStore):
    store.put_task("data", SPEC, "fp1", 10, 5, source="/x/a/data.csv")
    store.check_task_source("data", "/x/a/data.csv")
    store.put_task("data", SPEC, "fp2", 12, 6, source="/x/a/data.csv")
    task = store.get_task("data")
    assert (task["fingerprint"], task["num_train"], task["source"]) == ("fp2", 12, "/x/a/data.csv")


def test_same_name_other_source_is_refused_and_changes_nothing(store: RunStore):
    store.put_task("data", SPEC, "fp1", 10, 5, source="/x/a/data.csv")
    before = store.get_task("data")
    for call in (
        lambda: store.check_task_source("data", "/x/b/data.csv"),
        lambda: store.put_task("data", SPEC, "fp2", 99, 9, source="/x/b/data.csv"),
    ):
        with pytest.raises(StoreError) as info:
            call()
        msg = str(info.value)
        assert "'/x/a/data.csv'" in msg and "'/x/b/data.csv'" in msg, msg
        assert "--name NAME" in msg and "name=" in msg and "'data'" in msg, msg
    assert store.get_task("data") == before
    assert [t["name"] for t in store.list_tasks()] == ["data"]


def test_unknown_source_never_conflicts(store: RunStore):
    store.put_task("data", SPEC, "fp1", 10, 5)  # source unknown
    store.check_task_source("data", "/x/b/data.csv")
    store.put_task("data", SPEC, "fp2", 10, 5, source="/x/b/data.csv")
    assert store.get_task("data")["source"] == "/x/b/data.csv"
    store.check_task_source("data", "")  # unknown new source: no conflict either
    store.put_task("data", SPEC, "fp3", 10, 5)  # keeps the recorded source
    assert store.get_task("data")["source"] == "/x/b/data.csv"
    assert store.get_task("data")["fingerprint"] == "fp3"


def test_unknown_task_has_no_conflict(store: RunStore):
    store.check_task_source("nothing", "/x/a/data.csv")
    assert store.get_task("nothing") is None


def test_source_survives_reopening(tmp_path: Path):
    root = tmp_path / "s"
    with RunStore(root) as s:
        s.put_task("data", SPEC, "fp1", 10, 5, source="catalog:data@0123456789abcdef")
    with RunStore(root, create=False) as s, pytest.raises(StoreError, match="another name"):
        s.check_task_source("data", "/home/me/data")


def test_a_catalog_source_recorded_by_its_path_is_unknown_data(store: RunStore):
    """Stores written before catalog sources named their content recorded the catalog's path,
    which says nothing about the data: such a source never conflicts, either way round."""
    store.put_task("rte", SPEC, "fp1", 10, 5, source="catalog:/tmp/data/shared/data")
    store.check_task_source("rte", "catalog:rte@0123456789abcdef")
    store.put_task("rte", SPEC, "fp1", 10, 5, source="catalog:rte@0123456789abcdef")
    store.check_task_source("rte", "catalog:/elsewhere/shared/data")
    with pytest.raises(StoreError, match="another name"):
        store.check_task_source("rte", "catalog:rte@fedcba9876543210")


def test_catalog_source_names_the_content_not_the_folder(tmp_path: Path):
    import shutil

    from taskscout.data import demo_data_dir, load_task

    copy = tmp_path / "copy"
    shutil.copytree(demo_data_dir(), copy)
    here, there = load_task("copa", data_dir=demo_data_dir()), load_task("copa", data_dir=copy)
    assert here.source == there.source and here.source.startswith("catalog:copa@")
    lines = (copy / "copa" / "dev.jsonl").read_text().splitlines()
    (copy / "copa" / "dev.jsonl").write_text("\n".join(lines[:-1]) + "\n")
    assert load_task("copa", data_dir=copy).source != here.source


def test_backbones_lists_those_with_complete_runs(store: RunStore):
    from taskscout.store import RunRecord

    assert store.backbones() == set()
    for i, (backbone, ok) in enumerate([("b1", True), ("b2", True), ("b3", False)]):
        rec = RunRecord(
            run_id=f"r{i}", task="t", backbone=backbone, method="lora", seed=0, config={"i": i}
        )
        if ok:
            store.save_run(rec, {"early": ({"w": torch.zeros(2)}, 0, 1.0)})
        else:
            store.record_failure(rec, "boom")
    assert store.backbones() == {"b1", "b2"}
