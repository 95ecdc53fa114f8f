"""Pools as a product: build (resumable), info, and the ``taskscout pool`` commands."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from taskscout.cli import app
from taskscout.pools import build_pool, pool_info
from taskscout.store import RunStore
from taskscout.tuning.config import TuneConfig

runner = CliRunner()
TINY = {"max_train": 16, "max_dev": 8, "epochs": 1, "batch_size": 8}


@pytest.fixture(scope="module")
def built(tmp_path_factory, tiny_backbone):
    db = RunStore(tmp_path_factory.mktemp("pools") / "pool")
    settings = TuneConfig(backbone=str(tiny_backbone), **TINY)
    summary = build_pool(
        db, ["sms_spam", "snli"], ["lora", "bitfit"], settings, threads=1, progress=False
    )
    return db, settings, summary


def test_build_tunes_every_pair_and_embeds_both_checkpoints(built):
    db, _, summary = built
    assert (summary.planned, summary.completed, summary.skipped) == (4, 4, 0)
    assert not summary.failed and summary.embeddings == 8  # 4 runs x (early, best)
    rows = pool_info(db)
    assert [(r["task"], r["method"]) for r in rows] == [
        ("sms_spam", "bitfit"),
        ("sms_spam", "lora"),
        ("snli", "bitfit"),
        ("snli", "lora"),
    ]
    assert all(
        r["origin"] == "tuned" and r["embeddings"] == 2 and r["num_train"] == 16 for r in rows
    )


def test_build_resumes_without_training_again(built):
    db, settings, first = built
    again = build_pool(db, ["sms_spam", "snli"], ["lora"], settings, threads=1, progress=False)
    assert (again.planned, again.skipped, again.completed) == (2, 2, 0)
    assert again.run_ids["snli/lora"] == first.run_ids["snli/lora"]
    assert len(db.find_runs()) == 4


def test_build_refuses_bad_input_before_any_work(built, tmp_path):
    _, settings, _ = built
    db = RunStore(tmp_path / "p")
    with pytest.raises(ValueError, match="unknown tuning method 'lorax'"):
        build_pool(db, ["sms_spam"], ["lorax"], settings, progress=False)
    with pytest.raises(ValueError, match="at least one task"):
        build_pool(db, [], ["lora"], settings, progress=False)
    assert db.find_runs(status=None) == []


def test_cli_export_import_info(built, tiny_backbone, tmp_path):
    db, _, _ = built
    folder = tmp_path / "adapter"
    res = runner.invoke(
        app, ["pool", "export", str(folder), "--task", "snli", "--pool", str(db.root)]
    )
    assert res.exit_code == 0, res.output
    assert (folder / "adapter_model.safetensors").is_file()
    target = tmp_path / "mine"
    res = runner.invoke(
        app,
        [
            "pool",
            "import",
            str(folder),
            "--task",
            "my_snli",
            "--pool",
            str(target),
            "--backbone",
            str(tiny_backbone),
        ],
    )
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["pool", "info", "--pool", str(target), "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert [(r["task"], r["origin"], r["embeddings"]) for r in rows] == [("my_snli", "imported", 2)]
    # a wrong base model: one red line, exit 2, nothing written
    cfg = folder / "adapter_config.json"
    cfg.write_text(cfg.read_text().replace(str(tiny_backbone.resolve()), "bert-base-uncased"))
    res = runner.invoke(
        app,
        [
            "pool",
            "import",
            str(folder),
            "--task",
            "x",
            "--pool",
            str(tmp_path / "none"),
            "--backbone",
            str(tiny_backbone),
        ],
    )
    assert res.exit_code == 2 and "base model 'bert-base-uncased'" in res.output
    assert not (tmp_path / "none").exists()


@pytest.mark.slow
def test_build_on_worker_processes_equals_in_process(built, tiny_backbone, tmp_path):
    """The local executor (spawned worker, private scratch store) commits the same run: same id,
    same checkpoint tensors, as the in-process build."""
    import torch

    db, settings, first = built
    other = RunStore(tmp_path / "workers")
    summary = build_pool(
        other, ["snli"], ["lora"], settings, executor="local", workers=1, threads=1, progress=False
    )
    assert summary.completed == 1 and not summary.failed
    run_id = summary.run_ids["snli/lora"]
    assert run_id == first.run_ids["snli/lora"]
    a, b = db.load_checkpoint(run_id, "best"), other.load_checkpoint(run_id, "best")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
