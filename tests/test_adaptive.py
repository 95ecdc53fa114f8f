"""Adaptive seeds (racing): the pure decision logic on synthetic per-seed gains, and the driver
on the tiny random BERT with the demo tasks."""

from __future__ import annotations

import io
import json
import random

import pandas as pd
import pytest
from typer.testing import CliRunner

from taskscout.cli import app
from taskscout.store import RunStore
from taskscout.transfer.adaptive import design_cost, race, race_step, run_adaptive
from taskscout.transfer.gains import per_seed_gains
from taskscout.tuning.config import TuneConfig


def _synthetic(true_gain: dict[tuple[str, str], float], noise: float = 1.0, shared: float = 5.0):
    """A ``measure`` returning gain = truth + a seed effect shared by the target's sources +
    pair noise, deterministic per (target, source, seed); records every request."""
    calls: list[tuple[str, str, int]] = []

    def measure(requests):
        calls.extend(requests)
        rows = []
        for t, s, seed in requests:
            common = random.Random(f"{t}/{seed}").gauss(0, shared)
            own = random.Random(f"{t}/{s}/{seed}").gauss(0, noise)
            rows.append(
                {"target": t, "source": s, "seed": seed, "gain": true_gain[(t, s)] + common + own}
            )
        return pd.DataFrame(rows, columns=["target", "source", "seed", "gain"])

    return measure, calls


def test_race_step_on_fixed_numbers():
    frame = pd.DataFrame(
        {
            "source": ["a"] * 3 + ["b"] * 3 + ["c"] * 3,
            "seed": [0, 1, 2] * 3,
            "gain": [5.0, 6.0, 5.5, 4.0, 7.0, 5.5, -3.0, -2.0, -2.5],
        }
    )
    d = race_step(frame, {"a": 3, "b": 3, "c": 3}, max_seeds=5)
    # a: 5.5, b: 5.5 -> tie by name, a first; c is 8 points below on all 3 seeds -> separated
    assert d.best == "a" and d.contenders == ("a", "b") and d.grow == ("a", "b")
    assert d.reason == "continue"
    d = race_step(frame, {"a": 5, "b": 5, "c": 3}, max_seeds=5)
    assert d.closed and d.reason == "seed budget spent"
    d = race_step(frame[frame["source"] != "b"], {"a": 3, "c": 3}, max_seeds=5)
    assert d.closed and d.reason == "separated" and d.contenders == ("a",)
    # the same gap on two seeds only is no evidence yet (MIN_SEPARATION_SEEDS = 3)
    two = frame[(frame["seed"] < 2) & (frame["source"] != "b")]
    d = race_step(two, {"a": 2, "c": 2}, max_seeds=5)
    assert not d.closed and d.contenders == ("a", "c")
    assert race_step(frame.iloc[:0], {"a": 2}, max_seeds=4).reason == "no results"


def test_design_cost_counts_shared_tune_runs_once():
    seeds = [0, 1, 2]
    # t1 <- a (2 seeds), t1 <- t2 (1 seed), t2 <- a (1 seed): transfers 4;
    # tunes: (a,0),(a,1),(t1,0),(t1,1),(t2,0) -> 5 (t2 is a source of t1 and a target)
    cost = design_cost({("t1", "a"): 2, ("t1", "t2"): 1, ("t2", "a"): 1}, seeds)
    assert cost == {"transfers": 4, "tunes": 5, "total": 9}


def test_race_separates_a_clear_winner_and_saves_runs():
    sources = ["s1", "s2", "s3", "s4", "s5", "s6"]
    truth = {("t", s): g for s, g in zip(sources, [6.0, 5.0, 0.0, -2.0, -5.0, -8.0], strict=True)}
    measure, calls = _synthetic(truth, noise=1.0)
    result = race({"t": sources}, measure, seeds=list(range(8)), start_seeds=3)
    out = result.outcomes["t"]
    assert out.best == "s1" and out.separated and out.reason == "separated"
    # far sources stopped at the start; the close one needed more seeds
    assert out.seeds["s6"] == 3 and out.seeds["s2"] > 3
    assert len(calls) == result.runs["transfers"] == sum(result.design.values())
    assert len(set(calls)) == len(calls)  # nothing measured twice
    assert result.runs["total"] < result.fixed["total"] <= result.fixed_max["total"]
    assert 0 < result.saved < 1


def test_race_without_a_winner_spends_the_seed_budget():
    truth = {("t", s): 1.0 for s in ["a", "b", "c"]}
    measure, calls = _synthetic(truth, noise=2.0)
    result = race({"t": ["a", "b", "c"]}, measure, seeds=[0, 1, 2, 3], start_seeds=2)
    out = result.outcomes["t"]
    assert not out.separated and out.reason == "seed budget spent"
    assert max(out.seeds.values()) == 4
    assert result.runs["total"] <= result.fixed["total"]


def test_race_respects_the_run_budget_and_refuses_an_impossible_one():
    truth = {("t", s): 1.0 for s in ["a", "b", "c"]}
    measure, calls = _synthetic(truth, noise=2.0)
    first = design_cost({("t", s): 2 for s in "abc"}, [0, 1])["total"]  # 6 transfers + 8 tunes
    result = race({"t": ["a", "b", "c"]}, measure, seeds=list(range(10)), max_runs=first + 6)
    assert result.outcomes["t"].reason == "run budget spent"
    assert result.runs["total"] <= first + 6
    calls.clear()
    with pytest.raises(ValueError, match="max_runs"):
        race({"t": ["a", "b", "c"]}, measure, seeds=[0, 1], max_runs=first - 1)
    assert calls == []  # refused before any measurement
    with pytest.raises(ValueError, match="own source"):
        race({"t": ["t"]}, measure, seeds=[0, 1])


def test_race_is_a_function_of_the_results_so_a_rerun_replays_it():
    sources = ["a", "b", "c", "d"]
    truth = {("t", s): g for s, g in zip(sources, [3.0, 2.5, 0.0, -4.0], strict=True)}
    m1, c1 = _synthetic(truth)
    m2, c2 = _synthetic(truth)
    r1 = race({"t": sources}, m1, seeds=list(range(6)))
    r2 = race({"t": sources}, m2, seeds=list(range(6)))
    assert c1 == c2 and r1.design == r2.design and r1.rounds == r2.rounds


# --- the driver on the tiny random BERT ------------------------------------------------------

TASKS = ["qnli", "boolq", "sms_spam"]


def test_run_adaptive_trains_resumes_and_counts(tiny_backbone, tmp_path):
    settings = TuneConfig(
        method="prompt",
        backbone=str(tiny_backbone),
        max_train=32,
        max_dev=16,
        epochs=1,
        lr=0.01,
        max_len=48,
    )
    db = RunStore(tmp_path / "runs")
    rounds = []
    result, failed = run_adaptive(
        db,
        settings,
        TASKS,
        ["boolq"],
        [0, 1, 2],
        start_seeds=2,
        threads=1,
        progress=False,
        on_round=lambda r, d: rounds.append((r, {t: x.reason for t, x in d.items()})),
    )
    assert failed == {}
    seeds, _ = per_seed_gains(db, method="prompt")
    # every run the race counted is in the store, and nothing else was trained
    assert len(seeds) == result.runs["transfers"] == sum(result.design.values())
    assert len(db.find_runs(method="prompt")) == result.runs["tunes"]
    # the dev cap is recorded with every transfer and every baseline it is compared with
    assert (seeds["max_dev"] == 16).all() and (seeds["dev_examples"] <= 16).all()
    for run_id in set(seeds["baseline_run_id"]):
        assert db.get_run(run_id).config["settings"]["max_dev"] == 16
    out = result.outcomes["boolq"]
    assert set(out.seeds) == {"qnli", "sms_spam"} and min(out.seeds.values()) >= 2
    assert out.best in {"qnli", "sms_spam"} and out.reason in {"separated", "seed budget spent"}
    assert rounds[-1][1]["boolq"] == out.reason
    assert result.runs["total"] <= result.fixed["total"] <= result.fixed_max["total"]
    # resumable: the same race again trains nothing and decides the same
    again, _ = run_adaptive(
        db, settings, TASKS, ["boolq"], [0, 1, 2], start_seeds=2, threads=1, progress=False
    )
    assert again.design == result.design and again.outcomes["boolq"].best == out.best
    assert len(per_seed_gains(db, method="prompt")[0]) == len(seeds)


# --- the command line ------------------------------------------------------------------------


def test_cli_transfer_adaptive_then_per_seed_gains(tmp_path, tiny_backbone):
    runner = CliRunner()
    store = tmp_path / "a"
    args = [
        "transfer", "--targets", "boolq", "--sources", "qnli,sms_spam", "--method", "prompt",
        "--store", store, "--backbone", tiny_backbone, "--max-train", 32, "--max-dev", 16,
        "--epochs", 1, "--early-epochs", 1, "--max-len", 48, "--threads", 1, "--no-progress",
        "--adaptive", "--seeds", "0,1,2", "--start-seeds", 2,
    ]  # fmt: skip
    res = runner.invoke(app, [str(a) for a in args])
    assert res.exit_code == 0, res.output
    text = " ".join(res.stdout.split())
    assert "runs used:" in text and "saved" in text and "boolq" in text
    assert "round 1:" in res.stderr
    out = tmp_path / "seeds.csv"
    gains = ["gains", "--store", str(store), "-m", "prompt", "--per-seed", "--csv", str(out)]
    res = runner.invoke(app, gains)
    assert res.exit_code == 0, res.output
    rows = pd.read_csv(out)
    assert list(rows.columns[:7]) == [
        "target", "source", "method", "seed", "score", "baseline_score", "gain",
    ]  # fmt: skip
    assert set(rows["source"]) == {"qnli", "sms_spam"} and (rows["max_dev"] == 16).all()
    assert rows.groupby("source")["seed"].min().eq(0).all() and len(rows) >= 4
    gold = runner.invoke(app, ["gains", "--store", str(store), "-m", "prompt", "--csv", "-"])
    frame = pd.read_csv(io.StringIO(gold.stdout))
    assert {"gain_se", "ci_low", "ci_high", "excludes_zero", "tied_best"} <= set(frame.columns)
    assert frame["tied_best"].sum() >= 1
    # how much of boolq's gains is its sources and how much seed noise (strict JSON)
    res = runner.invoke(app, ["gains", "--store", str(store), "-m", "prompt", "--json"])
    rel = json.loads(res.stdout, parse_constant=pytest.fail)["uncertainty"]["reliability"]
    assert rel["boolq"]["sources"] == 2 and rel["boolq"]["seeds"] >= 2
    assert {"icc", "icc_mean", "p_value", "sd_noise", "seeds_for_goal"} <= set(rel["boolq"])
    plain = " ".join(
        runner.invoke(app, ["gains", "--store", str(store), "-m", "prompt"]).stdout.split()
    )
    assert "seed noise against the sources" in plain and "boolq: sources differ p" in plain
    # the same race again: everything reused, same decision
    again = runner.invoke(app, [str(a) for a in args])
    assert again.exit_code == 0 and "reused from the store" in again.stderr
    assert len(pd.read_csv(io.StringIO(runner.invoke(
        app, ["gains", "--store", str(store), "-m", "prompt", "--per-seed", "--csv", "-"]
    ).stdout))) == len(rows)  # fmt: skip


def test_cli_adaptive_refuses_top_k_and_too_many_start_seeds(tmp_path):
    runner = CliRunner()
    base = ["transfer", "--targets", "boolq,qnli", "--store", str(tmp_path / "s"), "--adaptive"]
    res = runner.invoke(app, [*base, "--top-k", "1", "--predictor", "tupate-prompt"])
    assert res.exit_code != 0 and "--top-k" in res.stderr
    res = runner.invoke(app, [*base, "--seeds", "0,1", "--start-seeds", "3"])
    assert res.exit_code != 0 and "--start-seeds" in res.stderr
    assert not (tmp_path / "s").exists()
