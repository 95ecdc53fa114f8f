"""Tests of the run store (SQLite index + safetensors files). Small random tensors, no models."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import taskscout
from taskscout.store import (
    SCHEMA_VERSION,
    CorruptTensorError,
    EmbeddingRecord,
    RunRecord,
    RunStore,
    StoreError,
)
from taskscout.store.connection import write_transaction


def make_state(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "encoder.layer.0.attention.self.query.lora_A.weight": torch.randn(8, 32, generator=g),
        "encoder.layer.0.attention.self.query.lora_B.weight": torch.randn(32, 8, generator=g),
        "encoder.layer.1.output.dense.bias": torch.randn(32, generator=g).to(torch.bfloat16),
        "prompt_encoder.steps": torch.arange(5, dtype=torch.int64),
    }


def make_record(run_id: str = "run1", **kw) -> RunRecord:
    base = dict(
        run_id=run_id,
        task="rte",
        backbone="all-MiniLM-L6-v2",
        method="lora",
        seed=0,
        config={"lr": 1e-3, "epochs": 3, "method": "lora", "r": 8},
        status="complete",
        num_train=100,
        num_dev=20,
        dev_scores=[50.0, 61.5, 60.25],
        loss_curve=[0.9, 0.7, 0.5, 0.45],
        train_loss_steps=[10, 20, 30, 40],
        wall_time_s=12.5,
        examples_seen=300,
        best_epoch=1,
    )
    base.update(kw)
    return RunRecord(**base)


def save_default(store: RunStore, run_id: str = "run1", **kw) -> RunRecord:
    return store.save_run(
        make_record(run_id, **kw),
        {"early": (make_state(1), 0, 50.0), "best": (make_state(2), 1, 61.5)},
    )


def assert_state_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype, k
        assert a[k].shape == b[k].shape, k
        assert torch.equal(a[k], b[k]), k  # bit for bit (no NaNs in these tensors)


@pytest.fixture
def store(tmp_path: Path):
    with RunStore(tmp_path / "store") as s:
        yield s


# -- runs and checkpoints -----------------------------------------------------------------------


def test_run_round_trip(store: RunStore):
    rec = make_record()
    stored = store.save_run(
        rec, {"early": (make_state(1), 0, 50.0), "best": (make_state(2), 1, 61.5)}
    )
    again = store.get_run("run1")
    assert again == stored
    for field in (
        "run_id",
        "task",
        "backbone",
        "method",
        "seed",
        "config",
        "num_train",
        "num_dev",
        "dev_scores",
        "loss_curve",
        "train_loss_steps",
        "wall_time_s",
        "examples_seen",
        "best_epoch",
        "created_at",
    ):
        assert getattr(stored, field) == getattr(rec, field), field
    assert stored.status == "complete" and stored.error is None
    assert set(stored.checkpoints) == {"early", "best"}
    best = stored.checkpoints["best"]
    assert (best.run_id, best.kind, best.epoch, best.dev_score) == ("run1", "best", 1, 61.5)
    assert best.file == "tensors/run1-best.safetensors"
    assert best.num_params == sum(t.numel() for t in make_state(2).values())
    assert best.sha256 == hashlib.sha256((store.root / best.file).read_bytes()).hexdigest()
    assert_state_equal(store.load_checkpoint("run1"), make_state(1))  # default kind: early
    assert_state_equal(store.load_checkpoint("run1", "best"), make_state(2))


def test_checkpoint_file_metadata_and_layout(store: RunStore):
    from safetensors import safe_open

    save_default(store)
    path = store.root / "tensors" / "run1-early.safetensors"
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    assert meta["run_id"] == "run1" and meta["kind"] == "early" and meta["epoch"] == "0"
    assert (store.root / "store.sqlite").is_file()
    mode = store.conn.execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    assert store.conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1


def test_tensors_saved_contiguous_cpu_unshared(store: RunStore):
    base = torch.randn(6, 4)
    state = {
        "transposed": base.t(),  # not contiguous
        "view": base[1],  # shares storage with "transposed"
        "grad": torch.randn(3, requires_grad=True),
    }
    store.save_run(make_record(), {"early": (state, 0, None)})
    loaded = store.load_checkpoint("run1", "early")
    assert torch.equal(loaded["transposed"], base.t())
    assert torch.equal(loaded["view"], base[1])
    assert torch.equal(loaded["grad"], state["grad"].detach())
    assert store.get_run("run1").checkpoints["early"].dev_score is None


def test_save_run_is_idempotent(store: RunStore):
    first = save_default(store)
    files = [store.root / c.file for c in first.checkpoints.values()]
    stats = {p: (p.stat().st_mtime_ns, p.stat().st_ino) for p in files}
    time.sleep(0.02)
    second = store.save_run(
        make_record(dev_scores=[0.0], wall_time_s=99.0),
        {"early": (make_state(7), 0, 1.0), "best": (make_state(8), 1, 2.0)},
    )
    assert second == first
    assert {p: (p.stat().st_mtime_ns, p.stat().st_ino) for p in files} == stats
    assert_state_equal(store.load_checkpoint("run1", "best"), make_state(2))
    assert sorted(p.name for p in (store.root / "tensors").iterdir()) == [
        "run1-best.safetensors",
        "run1-early.safetensors",
    ]


def test_config_hash_stable_and_order_independent():
    a = {"lr": 1e-3, "method": "lora", "nested": {"b": [1, 2], "a": None}, "seed": 0}
    b = {"seed": 0, "nested": {"a": None, "b": [1, 2]}, "method": "lora", "lr": 1e-3}
    h = RunStore.config_hash(a)
    assert h == RunStore.config_hash(b)
    assert len(h) == 16 and all(c in "0123456789abcdef" for c in h)
    canonical = '{"lr":0.001,"method":"lora","nested":{"a":null,"b":[1,2]},"seed":0}'
    assert h == hashlib.sha256(canonical.encode()).hexdigest()[:16]
    assert RunStore.config_hash({**a, "seed": 1}) != h
    assert RunStore.config_hash({"p": Path("x/y")}) == RunStore.config_hash({"p": "x/y"})


@settings(max_examples=30, deadline=None)
@given(
    st.dictionaries(
        st.text(max_size=8),
        st.one_of(
            st.integers(),
            st.text(max_size=8),
            st.booleans(),
            st.none(),
            st.lists(st.integers(), max_size=3),
        ),
        max_size=8,
    ),
    st.randoms(use_true_random=False),
)
def test_config_hash_ignores_key_order(config: dict, rnd):
    items = list(config.items())
    rnd.shuffle(items)
    assert RunStore.config_hash(dict(items)) == RunStore.config_hash(config)


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete", "garbage"])
def test_corrupt_checkpoint_raises(store: RunStore, damage: str):
    save_default(store)
    path = store.root / "tensors" / "run1-best.safetensors"
    data = bytearray(path.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
    elif damage == "truncate":
        path.write_bytes(bytes(data[: len(data) - 7]))
    elif damage == "delete":
        path.unlink()
    else:
        path.write_bytes(b"not a safetensors file")
    with pytest.raises(CorruptTensorError) as exc:
        store.load_checkpoint("run1", "best")
    msg = str(exc.value)
    assert "run1-best.safetensors" in msg
    assert "delete_run('run1')" in msg
    assert isinstance(exc.value, StoreError)
    assert_state_equal(store.load_checkpoint("run1", "early"), make_state(1))  # untouched
    # the documented recovery works
    store.delete_run("run1")
    save_default(store)
    assert_state_equal(store.load_checkpoint("run1", "best"), make_state(2))


def test_corrupt_embedding_raises(store: RunStore):
    save_default(store)
    rec = store.save_embedding(
        run_id="run1",
        task="rte",
        backbone="all-MiniLM-L6-v2",
        method="lora",
        checkpoint="early",
        layer_reduce="mean",
        tensor=torch.randn(16),
    )
    path = store.root / rec.file
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(CorruptTensorError, match=f"emb-{rec.embedding_id}.safetensors"):
        store.load_embedding(rec)


def test_load_checkpoint_unknown_run_or_kind(store: RunStore):
    save_default(store, "run1")
    save_default(store, "run2")
    with pytest.raises(StoreError, match="no run 'nope'.*run1, run2") as exc:
        store.load_checkpoint("nope")
    assert not isinstance(exc.value, CorruptTensorError)
    store.save_run(make_record("run3"), {"best": (make_state(), 2, 3.0)})
    with pytest.raises(StoreError, match="no 'early' checkpoint.*available: best"):
        store.load_checkpoint("run3", "early")


def test_save_run_rejects_bad_input_without_leaving_anything(store: RunStore):
    with pytest.raises(StoreError, match="checkpoint kind"):
        store.save_run(make_record(), {"late": (make_state(), 1, 1.0)})
    with pytest.raises(StoreError, match="run_id"):
        store.save_run(make_record("../evil"), {})
    with pytest.raises(StoreError, match="record_failure"):
        store.save_run(make_record(status="failed"), {})
    with pytest.raises(StoreError, match="dict"):
        store.save_run(make_record(), {"early": (make_state(), 0, 1.0), "best": ([1, 2], 1, 2.0)})
    assert store.get_run("run1") is None
    assert list((store.root / "tensors").iterdir()) == []


# -- failures ---------------------------------------------------------------------------------


def test_failed_run_then_replaced_by_complete(store: RunStore):
    store.record_failure(make_record(dev_scores=[10.0]), "CUDA out of memory")
    failed = store.get_run("run1")
    assert failed.status == "failed" and failed.error == "CUDA out of memory"
    assert failed.checkpoints == {} and failed.dev_scores == [10.0]
    assert store.find_runs() == []
    assert [r.run_id for r in store.find_runs(status="failed")] == ["run1"]
    with pytest.raises(StoreError, match="failed: CUDA out of memory"):
        store.load_checkpoint("run1")
    store.record_failure(make_record(), "second failure")  # a new failure replaces the old
    assert store.get_run("run1").error == "second failure"

    done = save_default(store)
    assert done.status == "complete" and done.error is None
    assert set(done.checkpoints) == {"early", "best"}
    assert store.find_runs(status="failed") == []
    # a later failure never clobbers a complete run
    store.record_failure(make_record(), "late failure")
    assert store.get_run("run1") == done


# -- reopening, schema, concurrency --------------------------------------------------------------


def test_reopen_existing_store(tmp_path: Path):
    root = tmp_path / "s"
    with RunStore(root) as s:
        save_default(s)
        s.put_task("rte", {"type": "pair_classification"}, "fp1", 100, 20)
        stored = s.get_run("run1")
    with RunStore(root, create=False) as s2:
        assert s2.schema_version == SCHEMA_VERSION
        assert s2.get_run("run1") == stored
        assert_state_equal(s2.load_checkpoint("run1", "best"), make_state(2))
        assert s2.get_task("rte")["fingerprint"] == "fp1"
    with RunStore(str(root)) as s3:  # create=True on an existing store just opens it
        assert [r.run_id for r in s3.find_runs()] == ["run1"]


def test_create_false_on_missing_dir(tmp_path: Path):
    missing = tmp_path / "nowhere"
    with pytest.raises(StoreError, match="nowhere"):
        RunStore(missing, create=False)
    assert not missing.exists()
    (tmp_path / "empty").mkdir()
    message = r"no run store at .*empty \(no store.sqlite\): check the --store/--pool path"
    with pytest.raises(StoreError, match=message):
        RunStore(tmp_path / "empty", create=False)


def test_bad_store_paths(tmp_path: Path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(StoreError, match="not a directory"):
        RunStore(tmp_path / "afile")
    root = tmp_path / "garbage"
    root.mkdir()
    (root / "store.sqlite").write_bytes(b"this is not a database, not at all" * 100)
    with pytest.raises(StoreError, match="store.sqlite"):
        RunStore(root)


def test_newer_schema_is_refused(tmp_path: Path):
    root = tmp_path / "s"
    RunStore(root).close()
    con = sqlite3.connect(root / "store.sqlite")
    with con:
        con.execute(
            "UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),)
        )
    con.close()
    with pytest.raises(StoreError, match="newer"):
        RunStore(root)


def test_closed_store_errors(tmp_path: Path):
    s = RunStore(tmp_path / "s")
    s.close()
    s.close()  # idempotent
    with pytest.raises(StoreError, match="closed"):
        s.get_run("x")


def test_pickles_as_reopen(store: RunStore):
    save_default(store)
    clone = pickle.loads(pickle.dumps(store))
    try:
        assert clone.root == store.root
        assert clone.get_run("run1") == store.get_run("run1")
    finally:
        clone.close()


def test_reader_not_blocked_by_writer(tmp_path: Path):
    root = tmp_path / "s"
    with RunStore(root) as writer, RunStore(root) as reader:
        save_default(writer)
        with write_transaction(writer.conn) as conn:  # hold the write lock, change pending
            conn.execute("UPDATE runs SET wall_time_s = 1.0 WHERE run_id = 'run1'")
            got = reader.get_run("run1")  # WAL: readers see the last commit, no waiting
            assert got.wall_time_s == 12.5
        assert reader.get_run("run1").wall_time_s == 1.0


# -- kill mid-save ----------------------------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import sys
    import torch
    from taskscout.store import RunRecord, RunStore

    root = sys.argv[1]
    g = torch.Generator().manual_seed(123)
    big = {f"layer{i}.weight": torch.randn(1024, 2048, generator=g) for i in range(4)}
    store = RunStore(root)
    rec = RunRecord(run_id="killme", task="t", backbone="b", method="lora", seed=0,
                    config={"big": True})
    print("READY", flush=True)
    store.save_run(rec, {"early": (big, 1, 50.0), "best": (big, 2, 60.0)})
    print("DONE", flush=True)
    """
)


def _big_state() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(123)
    return {f"layer{i}.weight": torch.randn(1024, 2048, generator=g) for i in range(4)}


@pytest.mark.parametrize("kill_when", ["temp_file", "first_file_in_place"])
def test_kill_mid_save_leaves_no_half_row(tmp_path: Path, kill_when: str):
    root = tmp_path / "store"
    RunStore(root).close()
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    # the child imports the taskscout under test (this checkout's src), not an installed one
    src = str(Path(taskscout.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(
        [sys.executable, str(script), str(root)], stdout=subprocess.PIPE, cwd=tmp_path, env=env
    )
    deadline = time.monotonic() + 120
    try:
        assert proc.stdout.readline().strip() == b"READY"
        tensors = root / "tensors"
        while proc.poll() is None and time.monotonic() < deadline:
            names = [p.name for p in tensors.iterdir()]
            if kill_when == "temp_file":
                hit = any(n.startswith(".tmp-") for n in names)
            else:
                hit = "killme-early.safetensors" in names
            if hit:
                os.kill(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.0005)
    finally:
        if proc.poll() is None and time.monotonic() >= deadline:
            proc.kill()  # never reached in practice: the save takes well under a second
        proc.wait(timeout=60)
        proc.stdout.close()

    with RunStore(root, create=False) as s:
        run = s.get_run("killme")
        if run is None:  # killed before the commit: no row at all
            assert s.find_runs(status=None) == []
            assert s.conn.execute("SELECT COUNT(*) FROM checkpoints").fetchone()[0] == 0
            assert proc.returncode == -signal.SIGKILL
            assert s.gc()  # the killed writer's temp / unreferenced files
            assert list((root / "tensors").iterdir()) == []
            # the re-run completes normally
            s.save_run(make_record("killme"), {"early": (make_state(), 0, 1.0)})
            assert_state_equal(s.load_checkpoint("killme"), make_state())
        else:  # finished (or killed after the commit): fully present and valid
            assert run.status == "complete" and set(run.checkpoints) == {"early", "best"}
            assert s.gc() == []
            big = _big_state()
            assert_state_equal(s.load_checkpoint("killme", "early"), big)
            assert_state_equal(s.load_checkpoint("killme", "best"), big)


def test_gc_removes_only_unreferenced_files(store: RunStore):
    save_default(store)
    emb = store.save_embedding(
        run_id="run1",
        task="rte",
        backbone="all-MiniLM-L6-v2",
        method="lora",
        checkpoint="best",
        layer_reduce="mean",
        tensor=torch.randn(8),
    )
    tdir = store.root / "tensors"
    orphan = tdir / "zzz-early.safetensors"
    orphan.write_bytes(b"left by a killed process")
    tmp = tdir / ".tmp-0123-run9-best.safetensors"
    tmp.write_bytes(b"half written")
    removed = store.gc()
    assert sorted(removed) == sorted([orphan, tmp])
    assert not orphan.exists() and not tmp.exists()
    assert store.gc() == []
    assert_state_equal(store.load_checkpoint("run1", "early"), make_state(1))
    assert store.load_embedding(emb.embedding_id).shape == (8,)


# -- tasks ------------------------------------------------------------------------------------


def test_put_task_upserts(store: RunStore):
    assert store.get_task("rte") is None
    store.put_task("rte", {"type": "pair_classification", "labels": ["a", "b"]}, "f1", 10, 5)
    store.put_task("cola", {"type": "classification"}, "f2", 7, 3)
    store.put_task("rte", {"type": "pair_classification", "labels": ["a", "b"]}, "f3", 11, 6)
    rte = store.get_task("rte")
    assert rte["spec"] == {"type": "pair_classification", "labels": ["a", "b"]}
    assert (rte["fingerprint"], rte["num_train"], rte["num_dev"]) == ("f3", 11, 6)
    assert rte["created_at"] <= rte["updated_at"]
    assert [t["name"] for t in store.list_tasks()] == ["cola", "rte"]


# -- queries ----------------------------------------------------------------------------------


def test_find_runs_filters(store: RunStore):
    grid = [
        ("a1", "rte", "lora", "mini"),
        ("a2", "rte", "bitfit", "mini"),
        ("a3", "cola", "lora", "mini"),
        ("a4", "cola", "lora", "bert"),
    ]
    for run_id, task, method, backbone in grid:
        store.save_run(
            make_record(run_id, task=task, method=method, backbone=backbone),
            {"early": (make_state(), 0, 1.0)},
        )
    store.record_failure(make_record("a5", task="rte", method="lora", backbone="mini"), "boom")

    def ids(**kw):
        return sorted(r.run_id for r in store.find_runs(**kw))

    assert ids() == ["a1", "a2", "a3", "a4"]
    assert ids(task="rte") == ["a1", "a2"]
    assert ids(method="lora") == ["a1", "a3", "a4"]
    assert ids(backbone="bert") == ["a4"]
    assert ids(task="cola", method="lora", backbone="mini") == ["a3"]
    assert ids(task="rte", status="failed") == ["a5"]
    assert ids(task="rte", status=None) == ["a1", "a2", "a5"]
    assert ids(task="nope") == []
    assert all(r.checkpoints for r in store.find_runs())


def _emb(store: RunStore, run_id, task, method, backbone, checkpoint, layer_reduce, n=4, **kw):
    return store.save_embedding(
        run_id=run_id,
        task=task,
        backbone=backbone,
        method=method,
        checkpoint=checkpoint,
        layer_reduce=layer_reduce,
        tensor=torch.randn(n),
        **kw,
    )


def test_find_embeddings_filters(store: RunStore):
    _emb(store, "a1", "rte", "lora", "mini", "early", "mean")
    _emb(store, "a1", "rte", "lora", "mini", "best", "mean")
    _emb(store, "a1", "rte", "lora", "mini", "best", "concat", n=12)
    _emb(store, "a2", "cola", "lora", "mini", "best", "mean")
    _emb(store, "a3", "cola", "prompt", "bert", "best", "none")

    def keys(**kw):
        return sorted((e.run_id, e.checkpoint, e.layer_reduce) for e in store.find_embeddings(**kw))

    assert len(keys()) == 5
    assert keys(task="rte") == [
        ("a1", "best", "concat"),
        ("a1", "best", "mean"),
        ("a1", "early", "mean"),
    ]
    assert keys(method="prompt") == [("a3", "best", "none")]
    assert keys(backbone="mini", checkpoint="best", layer_reduce="mean") == [
        ("a1", "best", "mean"),
        ("a2", "best", "mean"),
    ]
    assert keys(checkpoint="early") == [("a1", "early", "mean")]
    assert keys(task="cola", method="lora") == [("a2", "best", "mean")]
    assert keys(layer_reduce="concat") == [("a1", "best", "concat")]


def test_embedding_round_trip(store: RunStore):
    save_default(store)
    P = torch.randn(20, 384, dtype=torch.float32)
    rec = store.save_embedding(
        run_id="run1",
        task="rte",
        backbone="all-MiniLM-L6-v2",
        method="lora",
        checkpoint="best",
        layer_reduce="none",
        tensor=P,
        extra={"prompt_len": 20, "note": "matrix"},
    )
    assert isinstance(rec, EmbeddingRecord)
    assert rec.embedding_id == RunStore.config_hash(
        {"run_id": "run1", "checkpoint": "best", "layer_reduce": "none"}
    )
    assert rec.shape == (20, 384)
    assert rec.extra == {"prompt_len": 20, "note": "matrix"}
    assert rec.file == f"tensors/emb-{rec.embedding_id}.safetensors"
    assert (rec.task, rec.backbone, rec.method) == ("rte", "all-MiniLM-L6-v2", "lora")
    assert store.get_embedding(run_id="run1", checkpoint="best", layer_reduce="none") == rec
    assert store.get_embedding(run_id="run1", checkpoint="early", layer_reduce="none") is None
    for key in (rec, rec.embedding_id):
        out = store.load_embedding(key)
        assert out.dtype == P.dtype and torch.equal(out, P)

    # idempotent: the stored record and tensor come back, the file is not rewritten
    path = store.root / rec.file
    before = (path.stat().st_mtime_ns, path.stat().st_ino)
    again = store.save_embedding(
        run_id="run1",
        task="rte",
        backbone="all-MiniLM-L6-v2",
        method="lora",
        checkpoint="best",
        layer_reduce="none",
        tensor=torch.zeros(3),
        extra={"other": 1},
    )
    assert again == rec
    assert (path.stat().st_mtime_ns, path.stat().st_ino) == before
    assert torch.equal(store.load_embedding(rec), P)
    with pytest.raises(StoreError, match="no embedding"):
        store.load_embedding("0000000000000000")


def test_embedding_validation(store: RunStore):
    save_default(store)
    kw = dict(
        run_id="run1",
        task="rte",
        backbone="all-MiniLM-L6-v2",
        method="lora",
        checkpoint="best",
        layer_reduce="mean",
        tensor=torch.randn(4),
    )
    with pytest.raises(StoreError, match="layer_reduce"):
        store.save_embedding(**{**kw, "layer_reduce": "max"})
    with pytest.raises(StoreError, match="checkpoint"):
        store.save_embedding(**{**kw, "checkpoint": "late"})
    with pytest.raises(StoreError, match="the run says"):
        store.save_embedding(**{**kw, "method": "bitfit"})
    with pytest.raises(StoreError, match="torch.Tensor"):
        store.save_embedding(**{**kw, "tensor": [1.0, 2.0]})
    assert store.find_embeddings() == []
    assert sorted(p.name for p in (store.root / "tensors").iterdir()) == [
        "run1-best.safetensors",
        "run1-early.safetensors",
    ]


# -- deletion ---------------------------------------------------------------------------------


def test_delete_run_removes_rows_and_files(store: RunStore):
    save_default(store, "run1")
    save_default(store, "run2")
    e1 = _emb(store, "run1", "rte", "lora", "all-MiniLM-L6-v2", "best", "mean")
    e2 = _emb(store, "run2", "rte", "lora", "all-MiniLM-L6-v2", "best", "mean")
    doomed = [store.root / c.file for c in store.get_run("run1").checkpoints.values()]
    doomed.append(store.root / e1.file)
    assert all(p.exists() for p in doomed)

    store.delete_run("run1")
    assert store.get_run("run1") is None
    assert not any(p.exists() for p in doomed)
    assert store.get_embedding(run_id="run1", checkpoint="best", layer_reduce="mean") is None
    assert (
        store.conn.execute("SELECT COUNT(*) FROM checkpoints WHERE run_id = 'run1'").fetchone()[0]
        == 0
    )
    # the other run is untouched
    assert_state_equal(store.load_checkpoint("run2", "best"), make_state(2))
    assert store.load_embedding(e2).shape == (4,)
    assert store.gc() == []
    store.delete_run("run1")  # unknown id: no-op


def test_json_columns_round_trip_exactly(store: RunStore):
    cfg = {"lr": 3e-4, "layers": [0, 1, 2], "nested": {"x": None, "y": "é"}, "flag": True}
    rec = make_record(config=cfg, loss_curve=[float("nan"), 1.5], best_epoch=None)
    store.save_run(rec, {})
    got = store.get_run("run1")
    assert got.config == cfg
    assert got.best_epoch is None and got.checkpoints == {}
    assert json.dumps(got.loss_curve) == json.dumps(rec.loss_curve)  # NaN survives


def test_backup_copy_takes_what_a_live_writer_committed(tmp_path):
    """The copy holds rows still only in the write-ahead log of an open connection; a missing
    file is a StoreError, and the source is never written."""
    from taskscout.store import StoreError, backup_copy

    src = tmp_path / "live.sqlite"
    writer = sqlite3.connect(src)
    writer.execute("PRAGMA journal_mode = WAL")
    writer.execute("PRAGMA wal_autocheckpoint = 0")  # keep the rows in the WAL
    writer.execute("CREATE TABLE t (x INTEGER)")
    writer.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(5)])
    writer.commit()
    assert Path(f"{src}-wal").stat().st_size > 0
    before = src.read_bytes()
    out = backup_copy(src, tmp_path / "copy.sqlite")
    with sqlite3.connect(out) as copy:
        assert copy.execute("SELECT count(*) FROM t").fetchone()[0] == 5
    assert src.read_bytes() == before
    writer.close()
    with pytest.raises(StoreError, match="no SQLite file"):
        backup_copy(tmp_path / "missing.sqlite", tmp_path / "x.sqlite")
