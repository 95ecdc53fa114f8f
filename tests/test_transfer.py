"""Transfer runs and the transfer matrix on the tiny random BERT and the bundled demo tasks."""

from __future__ import annotations

import importlib.util
import json
import sqlite3

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from taskscout import api
from taskscout.backbone import load_backbone
from taskscout.cli import app
from taskscout.store import RunStore
from taskscout.transfer import TransferTable, run_matrix, run_transfer
from taskscout.transfer.executors import LocalExecutor, RayExecutor
from taskscout.transfer.gains import gains_table, per_seed_gains
from taskscout.tuning.config import TuneConfig
from taskscout.tuning.run import build_model

TASKS = ["qnli", "boolq", "sms_spam"]  # demo suite: pair, pair, single-text classification


@pytest.fixture(scope="module")
def settings(tiny_backbone) -> TuneConfig:
    return TuneConfig(
        method="prompt",
        backbone=str(tiny_backbone),
        max_train=48,
        max_dev=24,
        epochs=2,
        early_epochs=1,
        lr=0.01,
        max_len=64,
    ).resolved("cpu")


def _matrix(store, settings, executor=None, workers=1, **kw):
    db = RunStore(store)
    summary = run_matrix(
        db,
        settings,
        TASKS,
        TASKS,
        [0],
        executor=executor,
        workers=workers,
        threads=1,
        keep_state=True,
        progress=False,
        **kw,
    )
    return db, summary


def _per_seed(db, method="prompt") -> pd.DataFrame:
    frame, warnings = per_seed_gains(db, method=method)
    assert warnings == []
    return frame.sort_values(["target", "source", "seed"]).reset_index(drop=True)


@pytest.fixture(scope="module")
def inprocess(tmp_path_factory, settings):
    db, summary = _matrix(tmp_path_factory.mktemp("inproc") / "runs", settings)
    assert summary.failed == {}
    assert summary.completed == {"tune": 3, "transfer": 6}
    return db


def test_transfer_init_loads_the_source_parameters(inprocess, settings):
    db = inprocess
    src = db.find_runs(task="qnli", method="prompt")[0]
    state = db.load_checkpoint(src.run_id, "best")
    _, _, encoder = load_backbone(settings.backbone)
    data = settings.load("boolq", 0)
    model = build_model(settings, data, encoder, 0, state)
    method_state = model.method.tuned_state()
    assert method_state, "the prompt method tunes something"
    for name, value in method_state.items():
        assert torch.equal(value, state[f"method.{name}"]), name
    # the head is fresh: exactly the head of the no-transfer model with this seed
    _, _, encoder2 = load_backbone(settings.backbone)
    fresh = build_model(settings, data, encoder2, 0, None)
    assert torch.equal(model.head.weight, fresh.head.weight)
    assert not torch.equal(model.head.weight, state["head.weight"])
    # and the method's parameters really differ from a fresh init
    assert any(not torch.equal(v, fresh.method.tuned_state()[k]) for k, v in method_state.items())


def test_no_transfer_run_reproduces_the_ordinary_tune_run(inprocess, settings, tmp_path):
    """run_transfer(source_state=None) == api.tune with the same settings and seed, so the
    transfer run differs from its baseline only by the method's initial values."""
    db = inprocess
    base = db.get_run(settings.run_id(settings.load("sms_spam", 0), 0))
    out = run_transfer("sms_spam", None, settings, seed=0, threads=1, cache_dir=tmp_path)
    assert out.baseline_run_id == base.run_id
    assert out.dev_scores == base.dev_scores
    assert out.best_epoch == base.best_epoch
    assert out.examples_seen == base.examples_seen == 2 * 48


def test_transfers_table_holds_every_pair_with_costs(inprocess, settings):
    recs = TransferTable(inprocess).find(status=None)
    pairs = sorted((r.source_task, r.target) for r in recs)
    assert pairs == sorted((s, t) for s in TASKS for t in TASKS if s != t)
    for r in recs:
        assert r.status == "complete" and r.error is None
        assert r.score == max(r.dev_scores) and r.dev_scores[r.best_epoch - 1] == r.score
        assert r.wall_time_s > 0 and r.examples_seen == 2 * 48 and r.device == "cpu"
        assert r.baseline_run_id == settings.run_id(settings.load(r.target, 0), 0)
        assert inprocess.get_run(r.source_run_id).task == r.source_task
        assert r.file is not None and r.config["source_checkpoint"]["epoch"] >= 1


def _assert_same_matrix(db_a, db_b):
    a, b = _per_seed(db_a), _per_seed(db_b)
    cols = ["target", "source", "seed", "score", "baseline", "gain", "examples"]
    pd.testing.assert_frame_equal(a[cols], b[cols])
    ta, tb = TransferTable(db_a), TransferTable(db_b)
    ids_a = {r.transfer_id: r for r in ta.find()}
    assert set(ids_a) == {r.transfer_id for r in tb.find()}
    for tid in ids_a:  # bit-identical trained states, not just equal scores
        sa, sb = ta.load_state(tid), tb.load_state(tid)
        assert sa.keys() == sb.keys()
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
        assert ids_a[tid].dev_scores == tb.get(tid).dev_scores


@pytest.mark.slow  # spawns worker processes
def test_local_workers_give_identical_results(inprocess, settings, tmp_path):
    pool = LocalExecutor(2, threads=1)
    try:
        db, summary = _matrix(tmp_path / "runs", settings, pool, workers=2)
    finally:
        pool.close()
    assert summary.failed == {} and summary.completed == {"tune": 3, "transfer": 6}
    _assert_same_matrix(inprocess, db)


@pytest.mark.slow  # starts a local Ray instance
@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="ray is not installed")
def test_ray_gives_identical_results(inprocess, settings, tmp_path):
    pool = RayExecutor(2, threads=1)
    try:
        db, summary = _matrix(tmp_path / "runs", settings, pool, workers=2)
    finally:
        pool.close()
    assert summary.failed == {} and summary.completed == {"tune": 3, "transfer": 6}
    _assert_same_matrix(inprocess, db)


def test_corrupt_or_missing_source_fails_that_pair_and_retry_recovers(settings, tmp_path):
    db = RunStore(tmp_path / "runs")
    runs = {
        t: api.tune(t, store=db, progress=False, threads=1, seed=0, **settings.to_dict())
        for t in TASKS
    }
    corrupt = db.root / runs["qnli"].checkpoints["best"].file
    missing = db.root / runs["boolq"].checkpoints["best"].file
    good = {p: p.read_bytes() for p in (corrupt, missing)}
    corrupt.write_bytes(good[corrupt][:-7] + b"garbage")
    missing.unlink()

    summary = run_matrix(db, settings, TASKS, TASKS, [0], threads=1, progress=False)
    table = TransferTable(db)
    failed = {(r.source_task, r.target): r.error for r in table.find(status="failed")}
    assert set(failed) == {
        ("qnli", "boolq"),
        ("qnli", "sms_spam"),
        ("boolq", "qnli"),
        ("boolq", "sms_spam"),
    }
    assert "CorruptTensorError" in failed[("qnli", "boolq")]
    assert "corrupt or truncated" in failed[("qnli", "boolq")]
    assert "is missing" in failed[("boolq", "qnli")]
    assert "source checkpoint 'best'" in failed[("boolq", "qnli")]
    done = {(r.source_task, r.target) for r in table.find()}
    assert done == {("sms_spam", "qnli"), ("sms_spam", "boolq")}
    assert summary.completed == {"tune": 0, "transfer": 2} and len(summary.failed) == 4

    # without --retry-failed the failures are left alone (and reported), never dropped
    again = run_matrix(db, settings, TASKS, TASKS, [0], threads=1, progress=False)
    assert again.completed == {"tune": 0, "transfer": 0}
    assert len(again.plan.failed_before) == 4
    assert len(table.find(status="failed")) == 4

    for path, data in good.items():
        path.write_bytes(data)
    retried = run_matrix(
        db, settings, TASKS, TASKS, [0], threads=1, progress=False, retry_failed=True
    )
    assert retried.completed == {"tune": 0, "transfer": 4} and retried.failed == {}
    rows = (
        sqlite3.connect(db.db_path)
        .execute("SELECT status, count(*) FROM transfers GROUP BY status")
        .fetchall()
    )
    assert rows == [("complete", 6)]


def test_gains_cli_csv_columns_and_values(inprocess, settings, tmp_path):
    db = inprocess
    # a second seed for one pair: gain_std over 2 seeds
    extra = run_matrix(
        db, settings, ["qnli"], ["boolq"], [1], threads=1, progress=False, keep_state=True
    )
    assert extra.failed == {} and extra.completed == {"tune": 2, "transfer": 1}
    csv = tmp_path / "gains.csv"
    res = CliRunner().invoke(
        app, ["gains", "--store", str(db.root), "--method", "prompt", "--csv", str(csv)]
    )
    assert res.exit_code == 0, res.output
    assert "single tune" in res.output
    frame = pd.read_csv(csv)
    assert list(frame.columns)[:6] == [
        "target",
        "source",
        "gain",
        "performance",
        "gain_std",
        "n_seeds",
    ]
    assert {"wall_s", "examples", "baseline"} <= set(frame.columns)
    assert len(frame) == 6
    # recompute every value from the raw tables
    con = sqlite3.connect(db.db_path)
    rows = con.execute(
        "SELECT t.target, t.source_task, t.seed, t.score, r.dev_scores, r.best_epoch "
        "FROM transfers t JOIN runs r ON r.run_id = t.baseline_run_id WHERE t.status='complete'"
    ).fetchall()
    by_pair: dict = {}
    for target, source, _seed, score, dev, best in rows:
        by_pair.setdefault((target, source), []).append(score - json.loads(dev)[best - 1])
    for row in frame.itertuples():
        gains = by_pair[(row.target, row.source)]
        assert row.n_seeds == len(gains)
        assert row.gain == pytest.approx(np.mean(gains))
        if len(gains) > 1:
            assert row.gain_std == pytest.approx(np.std(gains, ddof=1))
        else:
            assert np.isnan(row.gain_std)
    assert frame.set_index(["target", "source"]).loc[("boolq", "qnli"), "n_seeds"] == 2
    table, _ = gains_table(db, method="prompt")
    assert (table["performance"] - table["baseline"] - table["gain"]).abs().max() < 1e-9


def test_top_k_plans_only_the_predicted_best_sources(inprocess, settings):
    from taskscout.transfer.scheduler import plan_matrix

    plan = plan_matrix(
        inprocess, settings, TASKS, TASKS, [0], threads=1, top_k=1, predictor="tupate-prompt"
    )
    assert len(plan.pairs) == 3
    for target in TASKS:
        ranked = api.rank(
            target,
            store=inprocess,
            method="prompt",
            backbone=settings.backbone,
            sources=[s for s in TASKS if s != target],
        )
        assert plan.top_k[target] == [ranked["source"].iloc[0]]
        assert [(s, t) for s, t, _ in plan.pairs if t == target] == [
            (plan.top_k[target][0], target)
        ]
    with pytest.raises(ValueError, match="--predictor"):
        plan_matrix(inprocess, settings, TASKS, TASKS, [0], top_k=1)


def test_full_fine_tuning_transfers_the_whole_encoder(settings, tmp_path):
    full = TuneConfig(
        **{
            **settings.to_dict(),
            "method": "full",
            "max_train": 16,
            "max_dev": 8,
            "epochs": 1,
            "lr": 1e-3,
        }
    )
    db = RunStore(tmp_path / "runs")
    summary = run_matrix(
        db, full, ["qnli", "boolq"], ["qnli", "boolq"], [0], threads=1, progress=False
    )
    assert summary.failed == {} and summary.completed == {"tune": 2, "transfer": 2}
    src = db.find_runs(task="qnli", method="full")[0]
    state = db.load_checkpoint(src.run_id, "best")
    _, _, encoder = load_backbone(full.backbone)
    model = build_model(full, full.load("boolq", 0), encoder, 0, state)
    tuned = model.method.tuned_state()
    assert len(tuned) > 20 and any("embeddings" in k for k in tuned)
    for name, value in tuned.items():
        assert torch.equal(value, state[f"method.{name}"]), name
    table, _ = gains_table(db, method="full")
    assert sorted(zip(table["source"], table["target"], strict=True)) == [
        ("boolq", "qnli"),
        ("qnli", "boolq"),
    ]


def test_a_failed_tune_job_is_recorded_with_its_settings_and_time(settings, tmp_path):
    from taskscout.transfer.jobs import Job, execute

    job = Job("tune", "no_such_task", 0, settings, run_id="abcdef0123456789")
    result = execute(job)  # the task cannot load: a failed result, not an exception
    assert not result.ok and result.error
    db = RunStore(tmp_path / "runs")
    db.record_failure(job.failed_run(result.seconds), result.error)
    run = db.get_run(job.run_id)
    assert run.status == "failed" and run.task == "no_such_task" and run.seed == 0
    assert run.config["job_s"] == result.seconds
    assert run.config["settings"] == settings.to_dict()
    assert run.method == settings.method and run.backbone == settings.backbone_id()
