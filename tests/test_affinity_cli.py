"""``taskscout affinity fit|evaluate`` and ``rank --predictor affinity`` end to end on a tiny
store of real prompt runs (tiny backbone, demo tasks)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from taskscout import api
from taskscout.cli import app
from taskscout.store import RunStore

TASKS = ("mnli", "snli", "qnli", "boolq", "sms_spam")
PROMPT = {"prompt_length": 4, "encoder_hidden": 16}
QUIET = {"progress": False, "threads": 1, "epochs": 2, "early_epochs": 1, "batch_size": 8}

runner = CliRunner()


@pytest.fixture(scope="module")
def tiny_store(tmp_path_factory, tiny_backbone):
    """Prompt runs of 5 demo tasks and a gold table of synthetic gains between them."""
    root = tmp_path_factory.mktemp("affinity_cli")
    db = RunStore(root / "store")
    for task in TASKS:
        api.tune(
            task,
            method="prompt",
            store=db,
            backbone=str(tiny_backbone),
            max_train=16,
            max_dev=8,
            method_options=PROMPT,
            **QUIET,
        )
    rows = [
        (t, s, float(3 * i - j + 0.5 * (i * j % 3)))
        for i, t in enumerate(TASKS)
        for j, s in enumerate(TASKS)
        if s != t
    ]
    gold = root / "gains.csv"
    pd.DataFrame(rows, columns=["target", "source", "gain"]).to_csv(gold, index=False)
    return root / "store", gold


def _invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def _text(res) -> str:
    """The command's output with rich's line wrapping undone."""
    return " ".join(res.output.split())


def test_fit_rank_evaluate_end_to_end(tiny_store, tiny_backbone, tmp_path):
    store, gold = tiny_store
    bb = ["--backbone", tiny_backbone]
    fast = ["--ensemble", 2, "--no-progress", "--threads", 1]
    for kind, extra in (("light", ["--epochs", 30]), ("backbone", ["--epochs", 3, "--lr", 1e-3])):
        res = _invoke(
            "affinity",
            "fit",
            "--pool",
            store,
            "--gold",
            gold,
            "--pairs",
            16,
            "--beta",
            1.5,
            "--kind",
            kind,
            "--out",
            tmp_path / kind,
            *bb,
            *fast,
            *extra,
        )
        assert res.exit_code == 0, res.output
        assert "fitted" in _text(res) and "16 pairs" in _text(res)
        cfg = json.loads((tmp_path / kind / "config.json").read_text())
        assert cfg["config"]["beta"] == 1.5 and cfg["fit"]["embedding_shape"] == [4, 32]

        res = _invoke(
            "rank",
            "mnli",
            "--store",
            store,
            "--predictor",
            "affinity",
            "--scorer",
            tmp_path / kind,
            "--no-tune",
            "--json",
            "--no-progress",
            *bb,
        )
        assert res.exit_code == 0, res.output
        table = pd.DataFrame(json.loads(res.stdout))
        assert list(table["source"].sort_values()) == sorted(set(TASKS) - {"mnli"})
        assert table["std"].notna().all() and (table["std"] >= 0).all()
        assert table["score"].is_monotonic_decreasing

    res = _invoke(
        "affinity",
        "evaluate",
        "--pool",
        store,
        "--gold",
        gold,
        "--kind",
        "light",
        "--epochs",
        30,
        "--json",
        *bb,
        *fast,
        "--scores-out",
        tmp_path / "scores.csv",
    )
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)["summary"]
    expected = {"affinity-light", "tupate-prompt", "prompt-token-cosine", "random (expected)"}
    assert expected <= set(summary)
    assert summary["affinity-light"]["n_targets"] == len(TASKS)
    assert "spearman" in summary["affinity-light"] and "gain@1" in summary["affinity-light"]
    scores = pd.read_csv(tmp_path / "scores.csv")
    assert scores.loc[scores["predictor"] == "affinity-light", "std"].notna().all()

    res = _invoke(
        "affinity",
        "evaluate",
        "--pool",
        store,
        "--gold",
        gold,
        "--kind",
        "light",
        "--protocol",
        "leave-one-family-out",
        "--epochs",
        20,
        "--compare",
        "",
        "--json",
        *bb,
        *fast,
    )
    assert res.exit_code == 0, res.output
    # nli (mnli, snli, qnli) held out together: their targets are scored from 2 other tasks
    assert json.loads(res.stdout)["summary"]["affinity-light"]["n_targets"] == len(TASKS)


def test_cli_errors_are_clear(tiny_store, tiny_backbone, tmp_path):
    store, gold = tiny_store
    bb = ["--backbone", tiny_backbone]
    bad = tmp_path / "bad.csv"
    pd.DataFrame(
        [("mnli", "snli", 1.0), ("mnli", "nope", 2.0)], columns=["target", "source", "gain"]
    ).to_csv(bad, index=False)
    res = _invoke(
        "affinity",
        "fit",
        "--pool",
        store,
        "--gold",
        bad,
        "--kind",
        "light",
        "--out",
        tmp_path / "x",
        *bb,
    )
    assert res.exit_code == 2 and "nope" in _text(res) and "no embedding" in _text(res)
    res = _invoke(
        "affinity",
        "fit",
        "--pool",
        store,
        "--gold",
        bad,
        "--kind",
        "light",
        "--restrict",
        "--out",
        tmp_path / "x",
        "--epochs",
        2,
        "--ensemble",
        1,
        "--lr",
        1e-3,
        "--no-progress",
        *bb,
    )
    assert res.exit_code == 0, res.output  # --restrict drops the unknown task's pair
    nan = tmp_path / "nan.csv"
    nan.write_text("target,source,gain\nmnli,snli,\nsnli,mnli,1.0\n")
    res = _invoke("affinity", "fit", "--pool", store, "--gold", nan, "--out", tmp_path / "y", *bb)
    assert res.exit_code == 2 and "missing/NaN" in _text(res)
    res = _invoke(
        "rank",
        "mnli",
        "--store",
        store,
        "--predictor",
        "affinity",
        "--no-tune",
        "--method",
        "prompt",
        *bb,
    )
    assert res.exit_code == 2 and "needs a fitted scorer" in _text(res)
    res = _invoke(
        "rank",
        "mnli",
        "--store",
        store,
        "--predictor",
        "affinity",
        "--scorer",
        tmp_path / "missing",
        "--no-tune",
        *bb,
    )
    assert res.exit_code == 2 and "not an affinity scorer folder" in _text(res)
