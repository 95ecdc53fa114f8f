"""Opening a run store: what is refused and left untouched (defect f), what is created, and the
upgrade of older stores."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from taskscout.store import SCHEMA_VERSION, RunStore, StoreError
from taskscout.store.schema import MIGRATIONS


def snapshot(root: Path) -> dict[str, str]:
    """relative path -> sha256 of every file (and '<dir>' for every folder) under ``root``."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        out[rel] = "<dir>" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def foreign_sqlite(path: Path) -> None:
    con = sqlite3.connect(path)
    with con:
        con.execute("CREATE TABLE people (name TEXT)")
        con.execute("INSERT INTO people VALUES ('ada')")
    con.close()


def foreign_with_meta(path: Path) -> None:
    con = sqlite3.connect(path)
    with con:
        con.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
        con.execute("INSERT INTO meta VALUES ('owner', 'someone else')")
    con.close()


NOT_A_STORE = {
    "empty": lambda p: p.write_bytes(b""),
    "random bytes": lambda p: p.write_bytes(bytes(range(256)) * 40),
    "text": lambda p: p.write_text("this is not a database, not at all\n" * 50),
    "foreign sqlite": foreign_sqlite,
    "meta without schema_version": foreign_with_meta,
}


@pytest.mark.parametrize("create", [True, False])
@pytest.mark.parametrize("kind", sorted(NOT_A_STORE))
def test_a_file_that_is_not_a_store_is_refused_and_left_untouched(
    tmp_path: Path, kind: str, create: bool
):
    root = tmp_path / "store"
    (root / "tensors").mkdir(parents=True)
    (root / "tensors" / "run1-early.safetensors").write_bytes(b"someone's tensors")
    NOT_A_STORE[kind](root / "store.sqlite")
    before = snapshot(root)
    with pytest.raises(StoreError, match=r"store\.sqlite is not a taskscout run store: "):
        RunStore(root, create=create)
    assert snapshot(root) == before  # nothing created, modified or removed


def test_the_zero_byte_store_is_not_reinitialised(tmp_path: Path):
    """Defect f: a 0-byte store.sqlite used to become a new, empty store (exit 0)."""
    root = tmp_path / "store"
    root.mkdir()
    (root / "store.sqlite").touch()
    with pytest.raises(StoreError, match="the file is empty"):
        RunStore(root)
    assert (root / "store.sqlite").stat().st_size == 0
    assert sorted(p.name for p in root.iterdir()) == ["store.sqlite"]


@pytest.mark.parametrize("exists", [False, True])
def test_create_false_creates_nothing(tmp_path: Path, exists: bool):
    root = tmp_path / "pool"
    if exists:
        root.mkdir()
    before = snapshot(tmp_path)
    with pytest.raises(StoreError) as info:
        RunStore(root, create=False)
    assert str(info.value) == (
        f"no run store at {root.resolve()} (no store.sqlite): check the --store/--pool path"
    )
    assert snapshot(tmp_path) == before
    assert root.exists() is exists


def test_create_false_on_a_store_without_tensor_dir_creates_nothing(tmp_path: Path):
    root = tmp_path / "store"
    RunStore(root).close()
    (root / "tensors").rmdir()
    before = snapshot(root)
    with RunStore(root, create=False) as s:
        assert s.find_runs() == [] and s.gc() == []
    assert snapshot(root) == before


@pytest.mark.parametrize("exists", [False, True])
def test_a_new_store_is_initialised(tmp_path: Path, exists: bool):
    root = tmp_path / "deep" / "new"
    if exists:
        root.mkdir(parents=True)
    with RunStore(root) as s:
        assert s.schema_version == SCHEMA_VERSION
        assert s.list_tasks() == [] and s.find_runs() == []
    assert sorted(p.name for p in root.iterdir()) == ["store.sqlite", "tensors"]
    with RunStore(root, create=False) as s:  # and is a store from then on
        assert s.schema_version == SCHEMA_VERSION


def test_a_version_2_store_is_upgraded_with_unknown_sources(tmp_path: Path):
    root = tmp_path / "old"
    root.mkdir()
    con = sqlite3.connect(root / "store.sqlite", isolation_level=None)
    con.execute("PRAGMA journal_mode = WAL")
    for v in (1, 2):
        for stmt in MIGRATIONS[v]:
            con.execute(stmt)
    con.execute("INSERT INTO meta VALUES ('schema_version', '2')")
    con.execute(
        "INSERT INTO tasks VALUES ('data', '{\"type\": \"classification\"}', 'fp', 5, 2, "
        "'2026-01-01T00:00:00.000+00:00', '2026-01-01T00:00:00.000+00:00')"
    )
    con.close()
    with RunStore(root, create=False) as s:
        assert s.schema_version == SCHEMA_VERSION == 4
        assert s.get_task("data")["source"] == ""
        s.check_task_source("data", "/anywhere/data.csv")  # unknown never conflicts
        s.put_task("data", {"type": "classification"}, "fp2", 6, 2, source="/a/data.csv")
        assert s.get_task("data")["source"] == "/a/data.csv"
