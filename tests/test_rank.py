"""``rank`` for any target (tunes what the store lacks), the ``--pool`` alias, JSON / CSV
output, and the packed pool cache. Tiny backbone, real stores in tmp, nothing mocked."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from taskscout import api
from taskscout.backbone import resolve_backbone
from taskscout.cli import app
from taskscout.embeddings.packed import cosine_to_pool, pack_dir, packed_pool
from taskscout.embeddings.pool import pool_embeddings
from taskscout.embeddings.similarity import IncompatibleEmbeddingError, cosine_scores
from taskscout.embeddings.tupate import as_vector
from taskscout.store import RunStore

POOL = ("mnli", "snli", "sms_spam")
SMALL = {"max_train": 32, "max_dev": 16, "epochs": 2, "batch_size": 16}
QUIET = {"progress": False, "threads": 1}
runner = CliRunner()


def tune(task, store, backbone, **kwargs):
    return api.tune(task, store=store, backbone=str(backbone), **{**SMALL, **QUIET, **kwargs})


def write_pair_csv(path: Path, make_task) -> Path:
    """A user file with its own column names (premise, hypothesis, gold)."""
    data = make_task("pair_classification", n_train=40, n_dev=1)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["premise", "hypothesis", "gold"])
        for row in data.train:
            writer.writerow([row["text"], row["text_pair"], row["label"]])
    return path


USER_OPTIONS = {
    "type": "pair_classification",
    "text_col": "premise",
    "text_pair_col": "hypothesis",
    "label_col": "gold",
}
USER_ARGS = [
    "--type",
    "pair_classification",
    "--text-col",
    "premise",
    "--text-pair-col",
    "hypothesis",
    "--label-col",
    "gold",
]


@pytest.fixture(scope="module")
def pool_store(tmp_path_factory, tiny_backbone):
    """A store with lora runs of three demo tasks (copy it before writing to it)."""
    root = tmp_path_factory.mktemp("rankpool") / "store"
    for task in POOL:
        tune(task, root, tiny_backbone)
    return root


@pytest.fixture
def store(pool_store, tmp_path) -> Path:
    """A private copy of the pool store."""
    dest = tmp_path / "store"
    shutil.copytree(pool_store, dest)
    return dest


def unpacked_scores(root: Path, target: str, backbone: Path, checkpoint="early") -> dict:
    db = RunStore(root)
    emb = pool_embeddings(
        db, method="lora", backbone=resolve_backbone(str(backbone)).backbone_id,
        checkpoint=checkpoint,
    )  # fmt: skip
    names = [s for s in sorted(emb) if s != target]
    cos = cosine_scores(
        as_vector(emb[target].tensor), torch.stack([as_vector(emb[s].tensor) for s in names])
    )
    return dict(zip(names, cos.tolist(), strict=True))


# --- rank on any target ------------------------------------------------------------------


def test_rank_tunes_a_user_file_target_then_ranks(store, tmp_path, tiny_backbone, make_task):
    data = write_pair_csv(tmp_path / "my_pairs.csv", make_task)
    with RunStore(store) as db:
        assert not db.find_runs(task="my_pairs")
    table = api.rank(
        str(data), pool=store, backbone=str(tiny_backbone), predictor="tupate",
        **USER_OPTIONS, **SMALL, **QUIET,
    )  # fmt: skip
    assert list(table.columns) == ["source", "score", "rank", "num_train", "family"]
    assert sorted(table["source"]) == sorted(POOL)
    assert table["rank"].tolist() == [1, 2, 3] and table["score"].is_monotonic_decreasing
    with RunStore(store) as db:
        (run,) = db.find_runs(task="my_pairs")
        assert run.method == "lora" and run.num_train == 32 and len(run.dev_scores) == 2
        runs_before = len(db.find_runs())
    expected = unpacked_scores(store, "my_pairs", tiny_backbone)
    for row in table.itertuples():
        assert row.score == pytest.approx(expected[row.source], abs=1e-12)
    # again: the stored run is reused (no new run), same ranking
    again = api.rank(
        str(data), store=store, backbone=str(tiny_backbone), predictor="tupate",
        **USER_OPTIONS, **SMALL, **QUIET,
    )  # fmt: skip
    pd.testing.assert_frame_equal(again, table)
    with RunStore(store) as db:
        assert len(db.find_runs()) == runs_before


def test_rank_tunes_a_catalog_target_the_store_lacks(store, tiny_backbone):
    table = api.rank("qnli", store=store, backbone=str(tiny_backbone), **SMALL, **QUIET)
    assert sorted(table["source"]) == sorted(POOL)
    with RunStore(store) as db:
        assert [r.task for r in db.find_runs(task="qnli")] == ["qnli"]
    with pytest.raises(ValueError, match="target 'boolq' has no lora run"):
        api.rank("boolq", store=store, backbone=str(tiny_backbone), tune_target=False)


def test_rank_cli_pool_alias_json_and_csv(store, tmp_path, tiny_backbone, make_task):
    data = write_pair_csv(tmp_path / "my_pairs.csv", make_task)
    common = [
        "rank",
        str(data),
        *USER_ARGS,
        "--backbone",
        str(tiny_backbone),
        "--max-train",
        "32",
        "--max-dev",
        "16",
        "--epochs",
        "2",
        "--batch-size",
        "16",
        "--threads",
        "1",
        "--no-progress",
        "--predictor",
        "tupate",
    ]
    result = runner.invoke(app, [*common, "--pool", str(store), "--json"])
    assert result.exit_code == 0, result.output
    records = json.loads(result.stdout)
    assert [r["rank"] for r in records] == [1, 2, 3]
    assert sorted(r["source"] for r in records) == sorted(POOL)
    assert set(records[0]) == {"source", "score", "rank", "num_train", "family"}
    expected = unpacked_scores(store, "my_pairs", tiny_backbone)
    for r in records:
        assert r["score"] == pytest.approx(expected[r["source"]], abs=1e-9)

    # --csv -: the CSV alone on stdout; --store gives the same ranking as --pool
    result = runner.invoke(app, [*common, "--store", str(store), "--csv", "-"])
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(io.StringIO(result.stdout))
    assert frame["source"].tolist() == [r["source"] for r in records]
    assert frame["score"].to_numpy() == pytest.approx([r["score"] for r in records], abs=1e-9)

    # --csv PATH: file written, table still printed
    out_csv = tmp_path / "ranking.csv"
    result = runner.invoke(app, [*common, "--pool", str(store), "--csv", str(out_csv)])
    assert result.exit_code == 0, result.output
    assert pd.read_csv(out_csv)["source"].tolist() == frame["source"].tolist()
    assert "sources for" in result.stdout and "my_pairs" not in set(pd.read_csv(out_csv).source)


def test_predict_accepts_pool_alias(store, tmp_path, tiny_backbone):
    out = tmp_path / "scores.csv"
    args = ["predict", "--targets", "mnli", "--predictors", "tupate-lora,datasize"]
    args += ["--backbone", str(tiny_backbone), "--out", str(out)]
    result = runner.invoke(app, [*args, "--pool", str(store)])
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(out)
    assert set(frame["predictor"]) == {"tupate-lora", "datasize"}
    assert sorted(frame[frame.predictor == "datasize"]["source"]) == ["sms_spam", "snli"]


# --- bad input -------------------------------------------------------------------------------


def test_file_target_without_type_is_a_clear_error(store, tmp_path, tiny_backbone, make_task):
    data = write_pair_csv(tmp_path / "my_pairs.csv", make_task)
    with pytest.raises(ValueError, match="give its task type"):
        api.rank(str(data), store=store, backbone=str(tiny_backbone))
    result = runner.invoke(
        app, ["rank", str(data), "--pool", str(store), "--backbone", str(tiny_backbone)]
    )
    assert result.exit_code == 2
    assert "give its task type (--type" in result.output
    with RunStore(store) as db:
        assert not db.find_runs(task="my_pairs", status=None)


def test_unknown_predictor_fails_before_tuning(store, tiny_backbone):
    result = runner.invoke(
        app,
        ["rank", "qnli", "--pool", str(store), "--backbone", str(tiny_backbone)]
        + ["--predictor", "nope"],
    )
    assert result.exit_code == 2 and "unknown predictor 'nope'" in result.output
    with RunStore(store) as db:
        assert not db.find_runs(task="qnli", status=None)


def test_store_and_pool_must_agree(store, tmp_path, tiny_backbone):
    with pytest.raises(ValueError, match="not both"):
        api.rank("mnli", store=store, pool=tmp_path / "other", backbone=str(tiny_backbone))
    table = api.rank("mnli", store=store, pool=store, backbone=str(tiny_backbone))
    assert len(table) == 2


# --- the packed pool ----------------------------------------------------------------------


def test_packed_pool_is_built_once_reused_and_extended(store, tiny_backbone):
    backbone = resolve_backbone(str(tiny_backbone)).backbone_id
    db = RunStore(store)
    first = packed_pool(db, method="lora", backbone=backbone)
    assert first.built and first.loaded_files == 3 and first.tasks == sorted(POOL)
    assert first.matrix_path.is_file() and first.matrix_path.parent == pack_dir(db)
    assert np.load(first.matrix_path).shape == (3, first.dim)
    second = packed_pool(db, method="lora", backbone=backbone)
    assert not second.built and second.loaded_files == 0 and second.digest == first.digest

    # a new embedding (a new run) changes the key: rebuilt, reusing the 3 rows it had
    tune("qnli", store, tiny_backbone)
    third = packed_pool(db, method="lora", backbone=backbone)
    assert third.built and third.loaded_files == 1 and third.digest != first.digest
    assert third.tasks == sorted([*POOL, "qnli"])
    assert not first.matrix_path.exists()  # the stale matrix is gone
    assert sorted(p.name for p in pack_dir(db).glob("*.npy")) == [third.matrix_path.name]

    # identical scores to the file-by-file path, whatever the chunk size
    expected = unpacked_scores(store, "mnli", tiny_backbone)
    target = api.embed("mnli", store=db, backbone=str(tiny_backbone)).tensor
    for chunk_bytes in (4 * third.dim, 10**8):  # one row per chunk; everything at once
        cos = cosine_to_pool(third, target, chunk_bytes=chunk_bytes)
        got = dict(zip(third.tasks, cos.tolist(), strict=True))
        for s, value in expected.items():
            assert got[s] == pytest.approx(value, abs=1e-12)
        assert got["mnli"] == pytest.approx(1.0, abs=1e-9)
    table = api.rank("mnli", store=db, backbone=str(tiny_backbone), predictor="tupate")
    for row in table.itertuples():
        assert row.score == pytest.approx(expected[row.source], abs=1e-12)


def test_a_pack_of_another_checkpoint_is_a_separate_cache(store, tiny_backbone):
    backbone = resolve_backbone(str(tiny_backbone)).backbone_id
    db = RunStore(store)
    early = packed_pool(db, method="lora", backbone=backbone, checkpoint="early")
    best = packed_pool(db, method="lora", backbone=backbone, checkpoint="best")
    assert early.matrix_path != best.matrix_path and best.built
    expected = unpacked_scores(store, "snli", tiny_backbone, checkpoint="best")
    table = api.rank(
        "snli", store=db, backbone=str(tiny_backbone), predictor="tupate", checkpoint="best"
    )
    for row in table.itertuples():
        assert row.score == pytest.approx(expected[row.source], abs=1e-12)


def test_packed_pool_refuses_mixed_dimensions(store, tiny_backbone):
    backbone = resolve_backbone(str(tiny_backbone)).backbone_id
    tune("qnli", store, tiny_backbone, method_options={"r": 4})
    db = RunStore(store)
    with pytest.raises(IncompatibleEmbeddingError, match="different shapes.*'qnli'"):
        packed_pool(db, method="lora", backbone=backbone)
    # one pack per shape: ranking an r=8 target refuses the r=4 source by name
    with pytest.raises(IncompatibleEmbeddingError, match=r"source 'qnli' has shape=\(512,\)"):
        api.rank("mnli", store=db, backbone=str(tiny_backbone), predictor="tupate")
    table = api.rank(
        "mnli",
        store=db,
        backbone=str(tiny_backbone),
        predictor="tupate",
        sources=["snli", "sms_spam"],
    )
    assert sorted(table["source"]) == ["sms_spam", "snli"]


def test_packed_pool_refuses_mixed_backbones(store, tiny_backbone, tiny_backbone_h48):
    tune("qnli", store, tiny_backbone_h48)
    db = RunStore(store)
    small = packed_pool(
        db, method="lora", backbone=resolve_backbone(str(tiny_backbone)).backbone_id
    )
    assert "qnli" not in small.tasks  # a pack never mixes backbones
    with pytest.raises(IncompatibleEmbeddingError, match=r"different backbones.*'qnli'"):
        api.rank("mnli", store=db, backbone=str(tiny_backbone), sources=["snli", "qnli"])
    other = api.embed("qnli", store=db, backbone=str(tiny_backbone_h48)).tensor
    with pytest.raises(IncompatibleEmbeddingError, match="shape"):
        cosine_to_pool(small, other)
