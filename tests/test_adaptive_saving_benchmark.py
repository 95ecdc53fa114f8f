"""benchmarks/adaptive_saving.py: the fitted truth and the simulated race on hand-made gains."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def sim():
    sys.path.insert(0, str(BENCH))  # the script imports its sibling ground_truth.py
    try:
        spec = importlib.util.spec_from_file_location(
            "adaptive_saving_bench", BENCH / "adaptive_saving.py"
        )
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    finally:
        sys.path.remove(str(BENCH))
    return mod


def _block(gains: dict[str, list[float]]) -> pd.DataFrame:
    return pd.DataFrame(
        [{"source": s, "replicate": f"r{k}", "gain": g}
         for s, gs in gains.items() for k, g in enumerate(gs)]
    )  # fmt: skip


def test_fitted_truth_shrinks_and_takes_the_seed_shift_out(sim):
    rng = np.random.default_rng(1)
    shift = np.array([10.0, -3.0, 0.0])  # what each seed's baseline does to every gain
    true = {"a": 4.0, "b": 0.0, "c": -1.0, "d": -3.0}
    gains = {s: list(v + shift + rng.normal(0, 0.5, 3)) for s, v in true.items()}
    t = sim.fitted_truth(_block(gains))
    assert 0.8 < t["shrink"] <= 1.0
    assert sum(t["effects"].values()) == pytest.approx(0.0, abs=1e-9)
    assert max(t["effects"], key=t["effects"].get) == "a"
    assert t["sd_seed"] > 3 * t["sd_noise"]  # the shift is a seed effect, not noise
    # sources that do not differ: every effect 0 (no order to recover)
    flat = sim.fitted_truth(
        _block({"a": [1.0, -1.0, 0.0], "b": [-1.0, 1.0, 0.0], "c": [0.0, 0.0, 0.0]})
    )
    assert flat["shrink"] == 0.0 and set(flat["effects"].values()) == {0.0}


def test_a_clear_best_is_separated_early_and_saves_runs(sim):
    truth = {"effects": {"a": 5.0, "b": 0.0, "c": 0.0, "d": -1.0}, "sd_seed": 1.0,
             "sd_noise": 0.5, "shrink": 1.0}  # fmt: skip
    (row,) = sim.simulate("t", truth, sims=20, starts=[3], seed=0)
    assert row["separated"] == 1.0 and row["true_best_race"] == 1.0
    assert row["race_runs"] == row["fixed3_runs"] < row["fixed5_runs"]
    assert row["saved_vs_fixed5"] == pytest.approx(1 - row["fixed3_runs"] / row["fixed5_runs"])
    # no signal at all: the race runs (nearly) the whole fixed-5 design and separates nothing
    equal = truth | {"effects": dict.fromkeys("abcd", 0.0), "sd_noise": 2.0}
    (row,) = sim.simulate("t", equal, sims=20, starts=[3], seed=0)
    assert row["separated"] < 0.3 and row["race_runs"] > row["fixed3_runs"]
    assert row["regret_race"] == row["regret_fixed5"] == 0.0
