"""The one-call API (tune / embed / rank) end to end: tiny backbone, real store in tmp."""

from __future__ import annotations

import gc
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file, save_file

from taskscout import api
from taskscout.backbone import resolve_backbone
from taskscout.data import TaskDataError
from taskscout.embeddings.similarity import IncompatibleEmbeddingError
from taskscout.store import CorruptTensorError, RunStore, StoreError

POOL = ("mnli", "snli", "sms_spam", "copa")
SMALL = {"max_train": 32, "max_dev": 16, "epochs": 3, "batch_size": 16}
QUIET = {"progress": False, "threads": 1}  # one thread: tune() sets torch's thread count


def tune(task, store, backbone, **kwargs):
    return api.tune(task, store=store, backbone=str(backbone), **{**SMALL, **QUIET, **kwargs})


def store_files(root: Path) -> dict[str, int]:
    """Every file under the store except SQLite's own (its WAL changes on reads too)."""
    return {
        str(p.relative_to(root)): p.stat().st_size
        for p in root.rglob("*")
        if p.is_file() and not p.name.startswith("store.sqlite")
    }


@pytest.fixture(scope="module")
def pool_store(tmp_path_factory, tiny_backbone):
    """A store with lora runs of four demo tasks on the tiny backbone."""
    root = tmp_path_factory.mktemp("pool") / "store"
    runs = {task: tune(task, root, tiny_backbone) for task in POOL}
    return root, runs


# --- tune -----------------------------------------------------------------------------------


def test_tune_stores_a_complete_run_with_early_and_best_checkpoints(pool_store, tiny_backbone):
    root, runs = pool_store
    run = runs["sms_spam"]
    assert run.status == "complete" and run.error is None
    assert run.task == "sms_spam" and run.method == "lora" and run.seed == 0
    assert run.backbone == resolve_backbone(str(tiny_backbone)).backbone_id
    assert run.backbone.startswith("local:tiny-bert@")
    assert (run.num_train, run.num_dev) == (32, 16)
    assert len(run.dev_scores) == 3
    assert len(run.loss_curve) == len(run.train_loss_steps) == 3 * 2  # 32 rows / batch 16
    assert run.examples_seen == 3 * 32
    assert set(run.checkpoints) == {"early", "best"}
    early, best = run.checkpoints["early"], run.checkpoints["best"]
    assert early.epoch == 2 and early.dev_score == run.dev_scores[1]
    assert best.epoch == run.best_epoch == int(np.argmax(run.dev_scores)) + 1
    assert best.dev_score == max(run.dev_scores)
    for ckpt in (early, best):
        assert (root / ckpt.file).is_file()
        state = load_file(str(root / ckpt.file))
        assert {k.split(".")[0] for k in state} == {"method", "head"}
        assert sum(t.numel() for t in state.values()) == ckpt.num_params
    # the run id is the hash of the configuration (location, timings, device are not hashed)
    unhashed = ("backbone_location", "timing", "device")
    hashed = {k: v for k, v in run.config.items() if k not in unhashed}
    assert run.run_id == RunStore.config_hash(hashed)
    assert run.config["train"]["lr"] == 1e-3  # the method's default, made explicit
    with RunStore(root) as db:
        task = db.get_task("sms_spam")
        assert task["num_train"] == 32 and task["spec"]["family"] == "spam"


def test_identical_tune_is_a_no_op(pool_store, tiny_backbone):
    root, runs = pool_store
    before = store_files(root)
    with RunStore(root) as db:
        task_row = db.get_task("snli")
    again = tune("snli", root, tiny_backbone)
    assert again.run_id == runs["snli"].run_id
    assert again.created_at == runs["snli"].created_at
    assert again.dev_scores == runs["snli"].dev_scores
    assert store_files(root) == before  # no new checkpoint, cache or embedding file
    with RunStore(root) as db:
        assert len(db.find_runs(task="snli", status=None)) == 1
        assert db.get_task("snli") == task_row  # a finished tune would have updated it


def test_changed_config_is_a_new_run(tmp_path, tiny_backbone):
    a = tune("sms_spam", tmp_path, tiny_backbone, epochs=1, max_train=16)
    b = tune("sms_spam", tmp_path, tiny_backbone, epochs=1, max_train=16, seed=1)
    assert a.run_id != b.run_id and b.seed == 1
    with RunStore(tmp_path) as db:
        assert len(db.find_runs(task="sms_spam")) == 2


# --- embed ----------------------------------------------------------------------------------


def test_embed_tunes_first_then_reuses(tmp_path, tiny_backbone, tiny_config):
    h = tiny_config["hidden_size"]
    emb = api.embed("snli", store=tmp_path, backbone=str(tiny_backbone), **SMALL, **QUIET)
    with RunStore(tmp_path) as db:
        (run,) = db.find_runs(status=None)
    assert emb.record.run_id == run.run_id and run.task == "snli"
    assert emb.tensor.shape == (4 * 8 * h,)  # LoRA r=8 on query and value, mean over layers
    assert (emb.checkpoint, emb.layer_reduce, emb.method) == ("early", "mean", "lora")
    assert emb.key.backbone == run.backbone
    assert emb.to_dict()["shape"] == [4 * 8 * h]
    files = store_files(tmp_path)

    again = api.embed("snli", store=tmp_path, backbone=str(tiny_backbone), **QUIET)
    assert again.record.embedding_id == emb.record.embedding_id
    assert torch.equal(again.tensor, emb.tensor)
    same_args = api.embed("snli", store=tmp_path, backbone=str(tiny_backbone), **SMALL, **QUIET)
    assert same_args.record.embedding_id == emb.record.embedding_id
    assert store_files(tmp_path) == files

    late = api.embed("snli", checkpoint="late", store=tmp_path, backbone=str(tiny_backbone))
    assert late.checkpoint == "best" and late.record.run_id == run.run_id
    concat = api.embed(
        "snli", layer_reduce="concat", store=tmp_path, backbone=str(tiny_backbone), **QUIET
    )
    assert concat.tensor.shape == (2 * 4 * 8 * h,)
    # the mean embedding is the mean of the two layer halves of the concatenation
    assert torch.allclose(concat.tensor.view(2, -1).mean(0), emb.tensor, atol=1e-7)
    with RunStore(tmp_path) as db:
        assert len(db.find_runs(status=None)) == 1
        assert len(db.find_embeddings(task="snli")) == 3
    with pytest.raises(ValueError, match="checkpoint must be 'early' or 'best'"):
        api.embed("snli", checkpoint="final", store=tmp_path, backbone=str(tiny_backbone))


# --- rank -----------------------------------------------------------------------------------


def test_rank_over_a_pool(pool_store, tiny_backbone):
    root, _ = pool_store
    table = api.rank("mnli", store=root, backbone=str(tiny_backbone), predictor="tupate")
    assert isinstance(table, pd.DataFrame)
    assert list(table.columns) == ["source", "score", "rank", "num_train", "family"]
    assert sorted(table["source"]) == sorted(set(POOL) - {"mnli"})
    assert table["rank"].tolist() == [1, 2, 3]
    assert table["score"].is_monotonic_decreasing
    assert table["num_train"].tolist() == [32, 32, 32]
    families = dict(zip(table["source"], table["family"], strict=True))
    assert families == {"snli": "nli", "sms_spam": "spam", "copa": "commonsense_choice"}

    def vec(task):
        return api.embed(task, store=root, backbone=str(tiny_backbone)).tensor.double().numpy()

    t = vec("mnli")
    for source, score in zip(table["source"], table["score"], strict=True):
        s = vec(source)
        assert score == pytest.approx(t @ s / np.linalg.norm(t) / np.linalg.norm(s), abs=1e-9)

    only = api.rank("mnli", store=root, backbone=str(tiny_backbone), sources=["copa", "mnli"])
    assert only["source"].tolist() == ["copa"] and only["rank"].tolist() == [1]
    with pytest.raises(ValueError, match="target 'qnli' has no lora run"):
        api.rank("qnli", store=root, backbone=str(tiny_backbone), tune_target=False)
    with pytest.raises(ValueError, match=r"no lora embedding in store .* for source\(s\) \['qnli'"):
        api.rank(
            "mnli", store=root, backbone=str(tiny_backbone), sources=["qnli"], predictor="tupate"
        )
    with pytest.raises(ValueError, match=r"no run in store .* for source\(s\) \['qnli'"):
        api.rank("mnli", store=root, backbone=str(tiny_backbone), sources=["qnli"])


def test_calls_given_a_path_close_the_store_they_open(tmp_path, tiny_backbone):
    """A store opened from a path is closed before the call returns (a RunStore sits in a
    reference cycle: left open, its connection and -wal file would wait on the cyclic
    collector); one passed in already open is the caller's and stays open."""
    root = tmp_path / "store"
    wal = root / "store.sqlite-wal"
    gc.collect()
    gc.disable()
    try:
        for task in ("mnli", "snli"):
            tune(task, root, tiny_backbone)
            assert not wal.exists()
        api.embed("mnli", store=root, backbone=str(tiny_backbone))
        assert not wal.exists()
        api.rank("mnli", store=root, backbone=str(tiny_backbone), predictor="tupate")
        assert not wal.exists()
        api.predict(["mnli"], store=root, backbone=str(tiny_backbone), predictors="datasize")
        assert not wal.exists()
        with RunStore(root) as db:
            api.rank("mnli", store=db, backbone=str(tiny_backbone), predictor="tupate")
            assert db.find_runs(task="mnli")  # still open: the caller's
    finally:
        gc.enable()


def test_rank_refuses_sources_of_another_backbone(tmp_path, tiny_backbone, tiny_backbone_h48):
    tune("mnli", tmp_path, tiny_backbone, epochs=1, max_train=16)
    tune("snli", tmp_path, tiny_backbone_h48, epochs=1, max_train=16)
    h48 = resolve_backbone(str(tiny_backbone_h48)).backbone_id
    assert h48 != resolve_backbone(str(tiny_backbone)).backbone_id
    with pytest.raises(
        IncompatibleEmbeddingError, match=r"different backbones.*'snli'.*tiny-bert-48"
    ):
        api.rank("mnli", store=tmp_path, backbone=str(tiny_backbone), sources=["snli"])
    # the other backbone's pool has no mnli: never a silent cross-backbone number
    with pytest.raises(ValueError, match="target 'mnli' has no lora run"):
        api.rank("mnli", store=tmp_path, backbone=str(tiny_backbone_h48), tune_target=False)


def test_rank_refuses_embeddings_of_other_dimensions(tmp_path, tiny_backbone):
    tune("mnli", tmp_path, tiny_backbone, epochs=1, max_train=16)
    tune("snli", tmp_path, tiny_backbone, epochs=1, max_train=16, method_options={"r": 4})
    with pytest.raises(IncompatibleEmbeddingError, match=r"source 'snli' has shape=\(512,\)"):
        api.rank("mnli", store=tmp_path, backbone=str(tiny_backbone))


# --- failures -------------------------------------------------------------------------------


def test_corrupt_checkpoint_raises_naming_the_file(tmp_path, tiny_backbone):
    run = tune("sms_spam", tmp_path, tiny_backbone, epochs=2, max_train=16)
    path = tmp_path / run.checkpoints["early"].file
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptTensorError, match="corrupt or truncated") as info:
        api.embed("sms_spam", store=tmp_path, backbone=str(tiny_backbone), **QUIET)
    assert str(path) in str(info.value)
    assert f"taskscout runs delete {run.run_id} --store" in str(info.value)  # a command to run
    with RunStore(tmp_path) as db:
        assert db.find_embeddings() == []  # nothing was computed from the broken file
    # the other checkpoint is a separate, intact file
    best = api.embed("sms_spam", checkpoint="best", store=tmp_path, backbone=str(tiny_backbone))
    assert best.tensor.shape == (1024,) and torch.isfinite(best.tensor).all()


def test_user_csv_task(tmp_path, tiny_backbone):
    rows = [
        {"review": f"the {w} day was {'great' if i % 2 else 'bad'}", "stars": "5" if i % 2 else "1"}
        for i, w in enumerate(["house", "man", "dog", "car", "time"] * 8)
    ]
    path = tmp_path / "reviews.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    options = {"type": "classification", "text_col": "review", "label_col": "stars"}
    store = tmp_path / "store"
    run = tune(path, store, tiny_backbone, max_train=None, max_dev=None, epochs=2, **options)
    assert run.status == "complete" and run.task == "reviews"
    assert run.num_train + run.num_dev == 40 and run.num_dev > 0  # dev carved from the file
    with RunStore(store) as db:
        spec = db.get_task("reviews")["spec"]
    assert spec["labels"] == ["1", "5"] and spec["type"] == "classification"
    emb = api.embed(
        str(path),
        store=store,
        backbone=str(tiny_backbone),
        max_train=None,
        epochs=2,
        batch_size=16,
        **QUIET,
        **options,
    )
    assert emb.record.run_id == run.run_id and emb.task == "reviews"
    with pytest.raises(TypeError, match="unknown option"):
        api.tune(path, store=store, backbone=str(tiny_backbone), text_column="review")


def test_bad_input_fails_before_training_and_leaves_no_run(tmp_path, tiny_backbone):
    train = tmp_path / "train.csv"
    dev = tmp_path / "dev.csv"
    pd.DataFrame({"text": [f"good day {i}" for i in range(8)], "label": ["a", "b"] * 4}).to_csv(
        train, index=False
    )
    pd.DataFrame({"text": ["bad", "good"], "label": ["a", "c"]}).to_csv(dev, index=False)
    store = tmp_path / "store"
    with pytest.raises(TaskDataError, match=r"never occur in train: 'c'"):
        tune(train, store, tiny_backbone, type="classification", dev_file=str(dev))
    with RunStore(store) as db:
        assert db.find_runs(status=None) == []
        assert db.list_tasks() == []
    assert store_files(store) == {}  # no checkpoint, no encode cache


def test_failed_run_is_recorded_with_its_error(tmp_path, tiny_backbone):
    with pytest.raises(FloatingPointError):
        tune("sms_spam", tmp_path, tiny_backbone, epochs=2, lr=1e10)
    with RunStore(tmp_path) as db:
        (failed,) = db.find_runs(status="failed")
        assert db.find_runs() == []  # no complete run
    assert failed.task == "sms_spam" and failed.checkpoints == {}
    assert failed.error.startswith("FloatingPointError: training loss became")
    assert "lower the learning rate" in failed.error
    assert failed.config["train"]["lr"] == 1e10


def test_good_run_with_the_same_config_replaces_a_failed_one(tmp_path, tiny_backbone):
    """The weights file is not part of a backbone's id (its folder name and config.json are),
    so a broken copy and a good copy of the same model give the same run id."""
    broken = tmp_path / "broken" / tiny_backbone.name
    good = tmp_path / "good" / tiny_backbone.name
    shutil.copytree(tiny_backbone, broken)
    shutil.copytree(tiny_backbone, good)
    weights = load_file(str(broken / "model.safetensors"))
    weights["embeddings.word_embeddings.weight"].fill_(float("nan"))
    save_file(weights, str(broken / "model.safetensors"), metadata={"format": "pt"})
    assert resolve_backbone(str(broken)).backbone_id == resolve_backbone(str(good)).backbone_id

    store = tmp_path / "store"
    with pytest.raises(FloatingPointError, match="loss became nan"):
        tune("sms_spam", store, broken, epochs=1, max_train=16)
    with RunStore(store) as db:
        (failed,) = db.find_runs(status=None)
    assert failed.status == "failed" and "FloatingPointError" in failed.error

    run = tune("sms_spam", store, good, epochs=1, max_train=16)
    assert run.run_id == failed.run_id
    assert (
        run.status == "complete"
        and run.error is None
        and set(run.checkpoints)
        == {
            "early",
            "best",
        }
    )
    with RunStore(store) as db:
        (only,) = db.find_runs(status=None)
        assert only.status == "complete" and only.created_at == run.created_at


# --- checks before any work (defects d, f, h of the restructuring issue) -----------------------


def test_embed_checks_checkpoint_and_layer_reduce_before_tuning(tmp_path, tiny_backbone):
    for bad in ({"checkpoint": "middle"}, {"layer_reduce": "sum"}):
        with pytest.raises(ValueError, match="checkpoint must be|layer_reduce must be"):
            api.embed("snli", store=tmp_path, backbone=str(tiny_backbone), **SMALL, **QUIET, **bad)
    assert not (tmp_path / "store.sqlite").exists()  # nothing was tuned, no store was made


def test_early_epochs_above_epochs_is_refused_before_work(tmp_path, tiny_backbone):
    with pytest.raises(ValueError, match=r"early_epochs \(3\) must not exceed epochs \(1\)"):
        tune("snli", tmp_path / "s", tiny_backbone, epochs=1, early_epochs=3)
    assert not (tmp_path / "s").exists()


def test_rank_refuses_an_empty_pool_before_tuning_the_target(tmp_path, tiny_backbone):
    with pytest.raises(ValueError, match="holds no source task besides 'snli'"):
        api.rank("snli", store=tmp_path, backbone=str(tiny_backbone), **SMALL, **QUIET)
    with RunStore(tmp_path) as db:
        assert db.find_runs(status=None) == []  # the target was not tuned


def test_read_only_rank_never_creates_a_store(tmp_path, tiny_backbone):
    typo = tmp_path / "runz"
    with pytest.raises(StoreError, match="no run store at"):
        api.rank("snli", store=typo, backbone=str(tiny_backbone), tune_target=False)
    with pytest.raises(StoreError, match="no run store at"):
        api.predict(["snli"], store=typo, backbone=str(tiny_backbone))
    assert not typo.exists()


def test_embed_run_id_of_another_task_is_refused(pool_store, tiny_backbone):
    root, runs = pool_store
    with pytest.raises(ValueError, match=r"is a lora run of task 'snli', not a lora run of 'mnli'"):
        api.embed("mnli", store=root, run_id=runs["snli"].run_id)
    emb = api.embed("snli", store=root, run_id=runs["snli"].run_id)
    assert emb.task == "snli" and emb.record.run_id == runs["snli"].run_id


def test_two_files_of_one_name_in_different_folders_never_share_a_task(tmp_path, tiny_backbone):
    """Defect c: ``a/data.csv`` and ``b/data.csv`` are both task ``data``; the second is refused
    before tuning (naming both files and --name) instead of replacing the first's record."""
    rows = {"a": ["good film", "bad film"] * 12, "b": ["fine day", "awful day"] * 12}
    for folder, texts in rows.items():
        (tmp_path / folder).mkdir()
        body = "\n".join(f"{t},{i % 2}" for i, t in enumerate(texts))
        (tmp_path / folder / "data.csv").write_text("text,label\n" + body + "\n")
    store = tmp_path / "store"
    first = tune(str(tmp_path / "a" / "data.csv"), store, tiny_backbone, type="classification")
    already = r"(?s)'data' is already stored from .*a/data\.csv.*--name"
    with pytest.raises(StoreError, match=already):
        tune(str(tmp_path / "b" / "data.csv"), store, tiny_backbone, type="classification")
    with RunStore(store) as db:
        assert [r.run_id for r in db.find_runs(status=None)] == [first.run_id]
        assert db.get_task("data")["source"].endswith("a/data.csv")
    other = tune(
        str(tmp_path / "b" / "data.csv"), store, tiny_backbone, type="classification", name="b_data"
    )
    assert other.task == "b_data"
