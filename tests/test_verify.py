"""``verify``: rank, measure the top-k adaptively, hand back the best transfer as a PEFT adapter
(tiny random BERT, bundled demo tasks)."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from taskscout import api
from taskscout.backbone import load_backbone
from taskscout.cli import app
from taskscout.store import RunStore
from taskscout.transfer.verify import VERIFY_INFO, check_out_dir, verify
from taskscout.tuning.config import TuneConfig
from taskscout.tuning.peft_format import read_task_head

SOURCES = ["qnli", "boolq", "sms_spam"]
TARGET = "snli"
SMALL = {"max_train": 32, "max_dev": 16, "epochs": 2, "batch_size": 8, "lr": 1e-2}


@pytest.fixture(scope="module")
def pool(tmp_path_factory, tiny_backbone):
    """A store whose lora runs of the sources and the target (seed 0) are the pool."""
    root = tmp_path_factory.mktemp("verify") / "store"
    for task in [*SOURCES, TARGET]:
        api.tune(task, store=root, backbone=str(tiny_backbone), progress=False, threads=1, **SMALL)
    return root


def test_verify_measures_the_top_k_and_saves_a_peft_adapter(pool, tiny_backbone, tmp_path):
    from peft import PeftModel

    settings = TuneConfig(method="lora", backbone=str(tiny_backbone), **SMALL)
    db = RunStore(pool)
    out = tmp_path / "adapter"
    result = verify(
        db,
        TARGET,
        settings,
        predictor="tupate-lora",
        top_k=2,
        seeds=[0, 1, 2],
        start_seeds=2,
        out=out,
        threads=1,
        progress=False,
    )
    table = result.table
    assert len(table) == 2 and set(table["source"]) <= set(SOURCES)
    assert {"predicted", "gain", "ci_low", "ci_high", "n_seeds", "tied_best"} <= set(table)
    assert (table["n_seeds"] >= 2).all()  # every pair has an interval
    assert (table["ci_low"] <= table["gain"]).all() and (table["gain"] <= table["ci_high"]).all()
    assert result.best_source == table["source"].iloc[0]
    assert result.race.runs["total"] <= result.race.fixed_max["total"]

    # the adapter loads with peft and holds the best transfer's kept LoRA state
    info = json.loads((out / VERIFY_INFO).read_text())
    assert (info["source"], info["target"], info["seed"]) == (
        result.best_source,
        TARGET,
        result.best_seed,
    )
    state = db.transfers.load_state(info["transfer_id"])
    _, _, base = load_backbone(str(tiny_backbone))
    model = PeftModel.from_pretrained(base, str(out))
    loaded = {n: p for n, p in model.named_parameters() if "lora_" in n}
    method = {k.removeprefix("method."): v for k, v in state.items() if k.startswith("method.")}
    assert len(loaded) == len(method) > 0
    for name, tensor in method.items():
        peft_name = "base_model.model." + name.removeprefix("encoder.")
        assert torch.equal(loaded[peft_name].detach(), tensor), name
    head, head_info = read_task_head(out)
    assert torch.equal(head["head.weight"], state["head.weight"])
    assert head_info["task"] == TARGET and head_info["type"] == "pair_classification"


def test_verify_refuses_bad_requests_before_any_work(pool, tiny_backbone, tmp_path):
    settings = TuneConfig(method="bitfit", backbone=str(tiny_backbone), **SMALL)
    with pytest.raises(ValueError, match="only lora runs export as a PEFT adapter"):
        check_out_dir(tmp_path / "a", settings.method)
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "adapter_config.json").write_text("{}")
    with pytest.raises(ValueError, match="already holds an adapter"):
        check_out_dir(tmp_path / "taken", "lora")
    with RunStore(pool) as db:
        before = len(db.find_runs(status=None))
        with pytest.raises(ValueError, match="start_seeds"):
            verify(db, TARGET, settings, seeds=[0], start_seeds=2, progress=False)
        assert len(db.find_runs(status=None)) == before


def test_verify_cli_prints_measured_beside_predicted(pool, tiny_backbone, tmp_path):
    args = ["verify", TARGET, "--store", str(pool), "--backbone", str(tiny_backbone)]
    args += ["--predictor", "tupate-lora", "--top-k", "1", "--seeds", "0,1", "--start-seeds", "2"]
    args += ["--threads", "1"]
    args += ["--max-train", "32", "--max-dev", "16", "--epochs", "2", "--batch-size", "8"]
    args += ["--lr", "0.01", "--no-progress", "--json"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    payload = json.loads(res.stdout)
    assert payload["target"] == TARGET and len(payload["table"]) == 1
    row = payload["table"][0]
    assert row["source"] in SOURCES and row["n_seeds"] == 2 and "predicted" in row
