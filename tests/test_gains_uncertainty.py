"""Gains with error bars: paired per-seed gains, t intervals, ties with the best, dev caps."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from taskscout.evaluation.files import read_gold_csv
from taskscout.transfer.gains import (
    GAIN_COLUMNS,
    aggregate_seeds,
    complete_block,
    pair_statistics,
    per_seed_export,
    separation,
    source_reliability,
    t_interval,
    uncertainty_summary,
)


def _rows(spec: dict[tuple[str, str], list[float]], baseline: float = 50.0) -> pd.DataFrame:
    rows = []
    for (target, source), gains in spec.items():
        for seed, g in enumerate(gains):
            rows.append(
                {
                    "target": target,
                    "source": source,
                    "seed": seed,
                    "score": baseline + seed + g,
                    "baseline": baseline + seed,
                    "gain": g,
                    "wall_s": 1.0,
                    "examples": 10,
                    "method": "lora",
                    "max_dev": 100.0,
                    "dev_examples": 100,
                }
            )
    return pd.DataFrame(rows)


def test_t_interval_matches_the_textbook_formula():
    x = [1.0, 3.0, 2.0, 6.0]
    mean, se, lo, hi = t_interval(x, 0.9)
    sd = np.std(x, ddof=1)
    half = stats.t.ppf(0.95, 3) * sd / 2
    assert mean == pytest.approx(3.0)
    assert se == pytest.approx(sd / 2)
    assert (lo, hi) == pytest.approx((3.0 - half, 3.0 + half))
    wider = t_interval(x, 0.99)
    assert wider[2] < lo and wider[3] > hi
    one = t_interval([4.0])
    assert one[0] == 4.0 and all(math.isnan(v) for v in one[1:])
    with pytest.raises(ValueError, match="level"):
        t_interval(x, 1.5)


def test_pair_statistics_interval_and_zero_exclusion():
    seeds = _rows(
        {
            ("t", "clear"): [5.0, 6.0, 5.5],  # tight, positive
            ("t", "noisy"): [-4.0, 6.0, 1.0],  # straddles zero
            ("t", "single"): [3.0],  # one seed: no interval
        }
    )
    st = pair_statistics(seeds).set_index("source")
    assert bool(st.loc["clear", "excludes_zero"]) is True
    assert st.loc["clear", "ci_low"] > 0
    assert bool(st.loc["noisy", "excludes_zero"]) is False
    assert st.loc["noisy", "ci_low"] < 0 < st.loc["noisy", "ci_high"]
    assert pd.isna(st.loc["single", "excludes_zero"])
    assert math.isnan(st.loc["single", "ci_low"]) and st.loc["single", "n_seeds"] == 1


def test_separation_is_a_paired_comparison_with_the_best():
    # b's and s's gains move together across seeds (a shared seed effect): unpaired intervals
    # overlap widely, but b beats s by 1 point on every seed, so the paired test separates.
    shared = [-10.0, 0.0, 10.0, 5.0]
    seeds = _rows(
        {
            ("t", "b"): [v + 1.0 for v in shared],
            ("t", "s"): [v + 0.0 for v in shared],
            ("t", "n"): [v + 0.5 + w for v, w in zip(shared, [3, -3, 2, -2], strict=True)],
        }
    )
    sep = separation(seeds[seeds["target"] == "t"]).set_index("source")
    assert sep["best"].idxmax() == "b" and bool(sep.loc["b", "tied_best"])
    assert sep.loc["s", "diff"] == pytest.approx(1.0)
    assert sep.loc["s", "diff_low"] == pytest.approx(1.0)  # zero variance of the difference
    assert not sep.loc["s", "tied_best"]
    assert sep.loc["n", "tied_best"]  # its difference with b is noisy: cannot tell apart
    unpaired = pair_statistics(seeds).set_index("source")
    assert unpaired.loc["s", "ci_high"] > unpaired.loc["b", "ci_low"]  # would have "overlapped"


def test_separation_uses_common_seeds_only_and_one_common_seed_is_a_tie():
    seeds = _rows({("t", "b"): [9.0, 9.0, 9.0], ("t", "s"): [0.0]})
    sep = separation(seeds).set_index("source")
    assert sep.loc["s", "common_seeds"] == 1
    assert sep.loc["s", "tied_best"]  # no interval with one common seed: not separated
    # two paired seeds that agree exactly give a zero-width interval: not evidence, still tied
    seeds = _rows({("t", "b"): [9.0, 9.5, 9.0], ("t", "s"): [0.0, 0.5]})
    sep = separation(seeds).set_index("source")
    assert sep.loc["s", "common_seeds"] == 2 and sep.loc["s", "tied_best"]
    seeds = _rows({("t", "b"): [9.0, 9.5, 9.0], ("t", "s"): [0.0, 0.5, 0.2]})
    sep = separation(seeds).set_index("source")
    assert sep.loc["s", "common_seeds"] == 3 and not sep.loc["s", "tied_best"]


def test_aggregate_seeds_keeps_the_gold_format_and_reads_back(tmp_path):
    seeds = _rows(
        {
            ("t1", "a"): [5.0, 6.0, 5.5],
            ("t1", "b"): [-4.0, 6.0, 1.0],
            ("t2", "a"): [1.0, 1.2],
            ("t2", "b"): [0.0, 0.1],
        }
    )
    frame = aggregate_seeds(seeds)
    assert list(frame.columns) == list(GAIN_COLUMNS)
    assert list(frame.columns[:4]) == ["target", "source", "gain", "performance"]
    row = frame.set_index(["target", "source"]).loc[("t1", "a")]
    assert row["gain"] == pytest.approx(5.5) and row["max_dev"] == 100.0
    assert (frame["performance"] - frame["baseline"] - frame["gain"]).abs().max() < 1e-9
    # t1: b differs from a by 9, 0, 4.5 points (noisy): tied; t2: by 1.0, 1.1 but on two
    # seeds only (MIN_SEPARATION_SEEDS = 3): tied as well
    assert frame.groupby("target")["tied_best"].sum().to_dict() == {"t1": 2, "t2": 2}
    path = tmp_path / "gold.csv"
    frame.to_csv(path, index=False)
    gold = read_gold_csv(path)
    assert len(gold) == 4 and set(gold["target"]) == {"t1", "t2"}
    summary = uncertainty_summary(frame)
    assert summary["pairs_with_interval"] == 4
    assert summary["tied_with_best"] == {"t1": 2, "t2": 2}
    with pytest.raises(ValueError, match="duplicate"):
        aggregate_seeds(pd.concat([seeds, seeds.iloc[:1]]))


def test_per_seed_export_columns():
    seeds = _rows({("t", "a"): [1.0, 2.0]})
    out = per_seed_export(seeds)
    assert list(out.columns[:7]) == [
        "target",
        "source",
        "method",
        "seed",
        "score",
        "baseline_score",
        "gain",
    ]
    assert (out["score"] - out["baseline_score"] - out["gain"]).abs().max() < 1e-12


# Shrout & Fleiss (1979), Table 2: 6 targets x 4 judges; ICC(3,1) = .71, ICC(3,k) = .91
SHROUT_FLEISS = [
    [9, 2, 5, 8],
    [6, 1, 3, 2],
    [8, 4, 6, 8],
    [7, 1, 2, 6],
    [10, 5, 6, 9],
    [6, 2, 4, 7],
]


def _block(x) -> pd.DataFrame:
    return pd.DataFrame(
        [{"source": f"s{i}", "seed": j, "gain": float(v)}
         for i, r in enumerate(x) for j, v in enumerate(r)]
    )  # fmt: skip


def test_source_reliability_reproduces_shrout_and_fleiss():
    r = source_reliability(_block(SHROUT_FLEISS))
    assert (r["sources"], r["seeds"]) == (6, 4)
    assert r["ms_source"] == pytest.approx(11.24, abs=0.005)  # their BMS
    assert r["ms_noise"] == pytest.approx(1.02, abs=0.005)  # their EMS
    assert r["icc"] == pytest.approx(0.71, abs=0.005)
    assert r["icc_mean"] == pytest.approx(0.91, abs=0.005)
    assert r["p_value"] == pytest.approx(stats.f.sf(r["f"], 5, 15))
    assert r["seeds_for_goal"] == 1


def test_source_reliability_seeds_needed_and_no_signal():
    # icc 0.2: a mean of n seeds reaches 0.5 at n = 0.5 * 0.8 / (0.2 * 0.5) = 4
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3)) + rng.normal(size=(40, 1)) * 0.5
    r = source_reliability(_block(x))
    need = r["goal"] * (1 - r["icc"]) / (r["icc"] * (1 - r["goal"]))
    assert r["seeds_for_goal"] == max(1, math.ceil(need))
    n = r["seeds_for_goal"]
    assert 0.1 < r["icc"] < 0.4 and n > 1
    assert n * r["icc"] / (1 + (n - 1) * r["icc"]) >= 0.5 - 1e-9
    # pure noise around equal sources: icc near 0 or below, no seed count helps when <= 0
    flat = source_reliability(_block([[1.0, -1.0, 0.0], [-1.0, 1.0, 0.0], [0.0, 0.0, 0.0]]))
    assert flat["ms_source"] == 0 and flat["icc"] < 0 and flat["seeds_for_goal"] == math.inf


def test_source_reliability_uses_the_complete_block_and_rejects_too_little():
    rows = _block(SHROUT_FLEISS)
    extra = pd.DataFrame([{"source": "late", "seed": 0, "gain": 100.0}])  # one seed only
    assert source_reliability(pd.concat([rows, extra]))["icc"] == pytest.approx(
        source_reliability(rows)["icc"]
    )
    # after a race: every source has seeds 0-3, the two contenders also 4 and 5
    contenders = _block([[9.0, 2, 5, 8, 4, 6], [6, 1, 3, 2, 5, 1]])  # s0, s1: seeds 0-5
    raced = pd.concat([rows, contenders]).drop_duplicates(["source", "seed"], keep="last")
    r = source_reliability(raced)
    assert (r["sources"], r["seeds"]) == (6, 4)  # the 6 x 4 block, not the 2 x 6 one
    assert complete_block(raced).shape == (6, 4)
    # one seed for many sources, two for a few: the 2 x 2 block, not the 11 x 1 one
    wide_one = _block([[float(i)] for i in range(11)])
    two = _block([[1.0, 2.0], [3.0, 5.0]])
    assert complete_block(
        pd.concat([wide_one, two]).drop_duplicates(["source", "seed"], keep="last")
    ).shape == (2, 2)
    with pytest.raises(ValueError, match="2 sources"):
        source_reliability(_block([[1.0, 2.0]]))
    with pytest.raises(ValueError, match="2 sources"):
        source_reliability(_block([[1.0], [2.0]]))
    with pytest.raises(ValueError, match="duplicate"):
        source_reliability(pd.concat([rows, rows.head(1)]))
    with pytest.raises(ValueError, match="goal"):
        source_reliability(rows, goal=1.0)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.lists(st.integers(-50, 50), min_size=3, max_size=3), min_size=3, max_size=8),
    st.lists(st.integers(-20, 20), min_size=3, max_size=3),
)
def test_source_reliability_ignores_what_a_seed_does_to_every_source(x, shift):
    """A seed's shift of every gain (its baseline) changes no ranking and no figure."""
    x = np.array(x, dtype=float)
    a, b = source_reliability(_block(x)), source_reliability(_block(x + np.array(shift)))
    for key in ("ms_source", "ms_noise", "sd_source", "sd_noise"):
        assert a[key] == pytest.approx(b[key], abs=1e-6)
    assert (math.isnan(a["icc"]) and math.isnan(b["icc"])) or a["icc"] == pytest.approx(
        b["icc"], abs=1e-9
    )
    if math.isfinite(a["icc"]):
        assert -1 / 2 - 1e-9 <= a["icc"] <= 1 + 1e-9
