"""The standard pool shipped inside the package: found through importlib.resources, never
modified, only licence-allowed tasks x lora/bitfit, complete provenance; ``rank`` without a pool
uses it (refusing other backbones before any work); stored task vectors stand in for the
sources' data. The last test ranks a real target against it with the real MiniLM (slow)."""

from __future__ import annotations

import hashlib
import json
import re
from importlib import resources
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from taskscout import api
from taskscout.backbone import PACKAGED_ID, packaged_minilm_dir, resolve_backbone
from taskscout.cli import app
from taskscout.data import load_task, write_jsonl
from taskscout.pools import (
    StandardPoolError,
    standard_pool_dir,
    standard_provenance,
    standard_recipe,
    standard_store,
)
from taskscout.predictors import Pool
from taskscout.predictors.baselines import TextEmbPredictor
from taskscout.store import RunStore, StoreError
from taskscout.tuning.config import TuneConfig

runner = CliRunner()
METHODS = {"lora", "bitfit"}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def snapshot(folder: Path) -> dict[str, str]:
    """relative path -> sha256 of every file under ``folder`` (what a use must not change)."""
    return {str(p.relative_to(folder)): sha256(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def allowed_tasks() -> set[str]:
    return {d["task"] for d in standard_provenance()["licences"] if d["decision"] == "allowed"}


def test_packaged_pool_is_found_through_importlib_resources():
    folder = resources.files("taskscout.pools").joinpath("standard")
    names = {entry.name for entry in folder.iterdir()}
    assert {"store.sqlite", "tensors", "provenance.json", "LICENCES.md"} <= names
    tensors = {entry.name for entry in folder.joinpath("tensors").iterdir()}
    files = standard_provenance()["files"]
    assert {f"tensors/{n}" for n in tensors} | {"store.sqlite"} == set(files)
    assert Path(str(folder)) == standard_pool_dir()
    assert sum((standard_pool_dir() / f).stat().st_size for f in files) < 40e6


def test_provenance_is_complete():
    prov = standard_provenance()
    assert prov["backbone"]["id"] == PACKAGED_ID
    assert prov["backbone"]["sha256"] == sha256(packaged_minilm_dir() / "model.safetensors")
    recipe = TuneConfig.from_options(**prov["recipe"])  # a valid TuneConfig
    assert (recipe.max_train, recipe.max_dev, recipe.epochs, recipe.min_steps) == (
        2000,
        1000,
        3,
        180,
    )
    assert recipe.bf16 is False and prov["methods"] == ["lora", "bitfit"]
    assert prov["device"] == "1x NVIDIA H200 (fp32)" and prov["build_date"] == "2026-11-30"
    assert re.fullmatch(r"[0-9a-f]{40}", prov["taskscout_commit"])
    assert "gpu_session.py" in prov["command"] and "pool" in prov["command"]
    decisions = {d["task"]: d for d in prov["licences"]}
    assert len(decisions) == 36
    for d in decisions.values():
        assert d["decision"] in ("allowed", "excluded") and d["reason"] and d["license"]
    assert set(prov["tasks"]) == allowed_tasks()
    for task, info in prov["tasks"].items():
        assert info["source"] and all(s["commit"] for s in info["source"]), task
        assert set(info["runs"]) == METHODS
    for rel, digest in prov["files"].items():
        assert sha256(standard_pool_dir() / rel) == digest, rel
    licences_md = (standard_pool_dir() / "LICENCES.md").read_text()
    for task in decisions:
        assert f"| {task} |" in licences_md


def test_using_the_pool_leaves_the_packaged_files_untouched(tmp_path):
    before = snapshot(standard_pool_dir())
    with standard_store(home=tmp_path) as db:
        assert db.root.is_relative_to(tmp_path.resolve())
        assert {t["name"] for t in db.list_tasks()} == allowed_tasks()
        assert db.methods(backbone=PACKAGED_ID) == METHODS
        assert {r.method for r in db.find_runs(status=None)} == METHODS
        for task in allowed_tasks():
            for method in METHODS:
                run = db.latest_run(task, method=method, backbone=PACKAGED_ID)
                assert run is not None and set(run.checkpoints) == {"early", "best"}
                for kind in ("early", "best"):
                    emb = db.get_embedding(run_id=run.run_id, checkpoint=kind, layer_reduce="mean")
                    assert emb is not None, (task, method, kind)
            vec = db.load_task_vector(
                task=task,
                backbone=PACKAGED_ID,
                kind="textemb",
                settings=TextEmbPredictor().settings(),
            )
            assert vec is not None and vec.shape == (384,)
        assert db.gc() == []  # nothing unreferenced shipped
    with standard_store(home=tmp_path) as again:  # the same copy, not a new one
        assert again.root == db.root
    assert snapshot(standard_pool_dir()) == before


def test_recipe_is_the_pools():
    recipe = standard_recipe()
    assert recipe["min_steps"] == 180 and recipe["max_train"] == 2000 and recipe["bf16"] is False
    assert "backbone" not in recipe and "method" not in recipe


def test_rank_without_pool_refuses_another_backbone_before_any_work(
    tmp_path, tiny_backbone, make_task, monkeypatch
):
    home = tmp_path / "home"
    monkeypatch.setenv("TASKSCOUT_HOME", str(home))
    data = make_task("classification", n_train=20, n_dev=4)
    folder = tmp_path / "target"
    folder.mkdir()
    write_jsonl(folder / "train.jsonl", data.train)
    write_jsonl(folder / "dev.jsonl", data.dev)
    with pytest.raises(StandardPoolError, match="standard pool was built on backbone"):
        api.rank(folder, type="classification", backbone=str(tiny_backbone), progress=False)
    with pytest.raises(StandardPoolError, match="standard pool was built on backbone"):
        api.predict(["sst2"], backbone=str(tiny_backbone))
    res = runner.invoke(
        app,
        ["rank", str(folder), "--type", "classification", "--backbone", str(tiny_backbone)],
    )
    assert res.exit_code == 2 and "standard pool was built on backbone" in " ".join(
        res.output.split()
    )
    assert "Traceback" not in res.output
    assert not home.exists()  # refused before the pool was copied or anything tuned


def test_explicit_pool_is_used_as_before(tmp_path, tiny_backbone):
    with pytest.raises(StoreError, match="no run store at"):
        api.predict(["sst2"], store=tmp_path / "none", backbone=str(tiny_backbone))
    res = runner.invoke(app, ["rank", "sst2", "--no-tune", "--pool", str(tmp_path / "none")])
    assert res.exit_code == 2 and "no run store at" in " ".join(res.output.split())


def test_pool_info_without_a_pool_describes_the_standard_pool(tmp_path, monkeypatch):
    monkeypatch.setenv("TASKSCOUT_HOME", str(tmp_path / "home"))
    res = runner.invoke(app, ["pool", "info"])
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert "standard pool" in text and "min_steps=180" in text and "not shipped" in text
    assert "sst2" in text and "1x NVIDIA H200" in text
    as_json = runner.invoke(app, ["pool", "info", "--json"])
    summary = json.loads(as_json.stdout)
    assert {r["task"] for r in summary["tasks"]} == allowed_tasks()
    assert set(summary["excluded"]) == {
        d["task"] for d in standard_provenance()["licences"] if d["decision"] != "allowed"
    }
    assert not (tmp_path / "home").exists()  # describing copies nothing


# --- stored task vectors ------------------------------------------------------------------


def test_task_vectors_stand_in_for_missing_source_data(tmp_path, tiny_backbone, monkeypatch):
    monkeypatch.delenv("TASKSCOUT_DATA_DIR", raising=False)
    db = RunStore(tmp_path / "s")
    data = load_task("snli", max_train=24)  # the demo suite
    db.put_task("snli", data.spec.to_dict(), data.fingerprint(), 24, len(data.dev))
    backbone = resolve_backbone(str(tiny_backbone)).backbone_id
    textemb = TextEmbPredictor(max_examples=24)
    with_data = Pool(db, backbone, tasks={"snli": data})
    with pytest.raises(ValueError, match="no run of backbone"):  # no run to locate the backbone
        textemb.store_vector(with_data, "snli")
    # store one by hand (what tools/make_standard_pool.py does with the real pool)
    vec = torch.arange(32, dtype=torch.float32)
    db.save_task_vector(
        task="snli",
        backbone=backbone,
        kind="textemb",
        settings=textemb.settings(),
        fingerprint="fp",
        tensor=vec,
    )
    without_data = Pool(db, backbone)
    assert torch.equal(textemb.vector(without_data, "snli"), vec)
    assert torch.equal(textemb.vector(with_data, "snli"), vec)  # stored wins: no recomputing
    other_settings = TextEmbPredictor(max_examples=12)
    assert (
        db.load_task_vector(
            task="snli", backbone=backbone, kind="textemb", settings=other_settings.settings()
        )
        is None
    )
    with pytest.raises(StoreError, match="no task 'copa'"):
        db.save_task_vector(
            task="copa", backbone=backbone, kind="textemb", settings={}, fingerprint="", tensor=vec
        )
    assert db.task_vector_kinds() == {"textemb": 1}
    assert db.gc() == []  # the vector's file is referenced
    db.delete_task("snli")
    assert db.get_task("snli") is None and db.task_vector_kinds() == {}
    assert list((tmp_path / "s" / "tensors").iterdir()) == []


def test_delete_task_refuses_while_runs_exist(tmp_path, tiny_backbone):
    db = RunStore(tmp_path / "s")
    api.tune(
        "copa",
        store=db,
        backbone=str(tiny_backbone),
        max_train=8,
        max_dev=4,
        epochs=1,
        progress=False,
        threads=1,
    )
    with pytest.raises(StoreError, match="still has 1 run"):
        db.delete_task("copa")
    assert db.get_task("copa") is not None


# --- end to end with the real MiniLM ---------------------------------------------------------


@pytest.mark.slow
@pytest.mark.integration
def test_rank_a_new_target_against_the_standard_pool(tmp_path, monkeypatch):
    """A ~200-example NLI target (the demo suite's mnli, as a user's own files) ranked against
    the shipped pool without any pool option and without the sources' data."""
    home = tmp_path / "home"
    monkeypatch.setenv("TASKSCOUT_HOME", str(home))
    before = snapshot(standard_pool_dir())
    data = load_task("mnli", max_train=200, seed=0)
    folder = tmp_path / "my_nli"
    folder.mkdir()
    write_jsonl(folder / "train.jsonl", data.train)
    write_jsonl(folder / "dev.jsonl", data.dev[:64])
    # max_train and min_steps given (to keep this test short) win; the rest is the pool's recipe
    table = api.rank(
        folder,
        type="pair_classification",
        max_train=200,
        min_steps=30,
        progress=False,
        threads=2,
    )
    assert set(table["source"]) == allowed_tasks()
    assert table["rank"].tolist() == list(range(1, len(table) + 1))
    assert "textemb" in table.attrs["features_used"]  # from the stored vectors
    assert "logme" in table.attrs["features_used"]
    assert table["score"].notna().all()
    with standard_store() as db:
        runs = db.find_runs(task="my_nli")
        assert {r.method for r in runs} == METHODS
        for run in runs:  # tuned with the pool's recipe, except what the user gave
            train = run.config["train"]
            assert train["min_steps"] == 30 and train["epochs"] == 3
            assert train["bf16"] is False and train["max_len"] == 128
            assert run.num_train == 200 and len(run.dev_scores) == 5  # ceil(30 / 7) epochs
    assert snapshot(standard_pool_dir()) == before
