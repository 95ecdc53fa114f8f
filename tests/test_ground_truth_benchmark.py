"""benchmarks/ground_truth.py: the campaign table from the committed stores, the signal figures
and the adaptive replay on hand-made per-seed gains."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "ground_truth.py"
CAMPAIGN = ROOT / "benchmarks" / "results" / "gpu_2026-11-30"


@pytest.fixture(scope="module")
def gt():
    spec = importlib.util.spec_from_file_location("ground_truth_bench", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.skipif(not CAMPAIGN.is_dir(), reason="campaign stores not committed here")
def test_campaign_rows_keep_a_re_measured_transfer_once(gt):
    rows, repro = gt.campaign_rows(CAMPAIGN)
    assert not rows.duplicated(["method", "target", "source", "replicate"]).any()
    # lease 2 re-ran lease 1's runs with identical scores: kept once, marked as such
    assert set(rows["measured_in"]) <= {"1", "2", "1+2"}
    both = rows[rows["measured_in"] == "1+2"]
    assert (
        len(both)
        == repro["lora"]["transfers_in_both_leases"] + repro["full"]["transfers_in_both_leases"]
    )
    assert (both["lease"] == "1").all()
    assert (rows["gain"] - (rows["score"] - rows["baseline_score"])).abs().max() < 1e-9
    lora = rows[rows["method"] == "lora"]
    for t in ("cb", "copa", "rte"):
        assert len(lora[lora["target"] == t]) == 33


def _frame(gains: dict[str, list[float]], target: str = "t") -> pd.DataFrame:
    rows = [
        {"target": target, "source": s, "replicate": f"s{k}", "seed": k, "gain": g}
        for s, gs in gains.items()
        for k, g in enumerate(gs)
    ]
    return pd.DataFrame(rows)


def test_signal_counts_agreement_and_intervals(gt):
    sources = ["a", "b", "c", "d"]
    same = _frame({s: [i, i + 0.5, i - 0.5] for i, s in enumerate(sources)})
    taskweb = pd.DataFrame({"target": "t", "source": sources, "gain": [0.0, 1.0, 2.0, 3.0]})
    sig = gt.signal(same, taskweb, {"t": sources})
    assert sig["seed_to_seed"] == pytest.approx(1.0)
    assert sig["taskweb_spearman"] == pytest.approx(1.0)
    # means 0..3, SE 0.5 / sqrt(3) = 0.29: only source a (mean 0) is within 2 SE of zero
    assert sig["share_over_2se"] == pytest.approx(3 / 4)
    assert 0 < sig["seed_to_seed_perm_p"] < 0.1
    # a source missing in one replicate makes the target incomplete: no seed-to-seed figure
    partial = same[~((same["source"] == "d") & (same["seed"] == 2))]
    sig_partial = gt.signal(partial, taskweb, {"t": sources})
    assert math.isnan(sig_partial["seed_to_seed"])
    # ... but the per-target figure over the sources in every replicate (a, b, c) is there
    part = sig_partial["per_target"]["t"]
    assert part["sources_in_every_replicate"] == 3
    assert part["seed_to_seed_in_every_replicate"] == pytest.approx(1.0)


def test_an_unfinished_target_counts_on_the_sources_measured_in_every_replicate(gt):
    """d is missing from one replicate: the part so far is a, b, c in all three; a target with
    one replicate, or fewer than 3 common sources, has no such part."""
    sources = ["a", "b", "c", "d"]
    frame = _frame({s: [i, i + 0.5, i - 0.5] for i, s in enumerate(sources)})
    frame = frame[~((frame["source"] == "d") & (frame["seed"] == 2))]
    one_rep = _frame({"a": [1.0], "b": [2.0], "c": [3.0]}, target="u")
    two_common = _frame({"a": [1.0, 2.0], "b": [2.0, 1.0], "c": [3.0, math.nan]}, target="v")
    both = pd.concat([frame, one_rep, two_common.dropna()])
    assert gt.in_every_replicate(both) == {"t": ["a", "b", "c"]}
    part = frame[frame["source"] != "d"]
    taskweb = pd.DataFrame({"target": "t", "source": sources, "gain": [0.0, 1.0, 2.0, 3.0]})
    sig = gt.signal(part, taskweb, gt.in_every_replicate(both))
    assert sig["complete_targets"] == ["t"] and sig["seed_to_seed"] == pytest.approx(1.0)


def test_replay_reaches_the_fixed_decision(gt):
    frame = _frame({"a": [5.0, 5.2, 4.9], "b": [0.0, 0.1, -0.1], "c": [4.8, 5.5, 4.0]})
    out = gt.replay(frame, ["t"], start=2)
    t = out["targets"]["t"]
    assert t["best"] == "a" and t["same_decision"]
    assert sorted(t["contenders"]) == ["a", "c"]
    assert t["transfers_used"] == t["transfers_fixed"] == 9


def test_a_target_measured_wider_elsewhere_sets_the_narrow_replicates_aside(gt):
    """Two sources measured in lease 1, all three in a later (e.g. CPU) part: the target's
    statistics use the wider part's replicates only; a target with one replicate is unchanged."""
    gpu = _frame({"a": [1.0, 2.0, 3.0], "b": [0.0, 0.5, 1.0]}).assign(
        replicate=lambda d: "L1s" + d["seed"].astype(str), lease="1"
    )
    cpu = _frame({"a": [1.0, 1.5, 2.0], "b": [0.0, 0.2, 0.1], "c": [3.0, 3.1, 2.9]}).assign(
        replicate=lambda d: "Lcpus" + d["seed"].astype(str), lease="cpu"
    )
    other = _frame({"a": [1.0, 2.0]}, target="u").assign(
        replicate=lambda d: "L1s" + d["seed"].astype(str), lease="1"
    )
    rows = pd.concat([gpu, cpu, other], ignore_index=True).assign(method="lora")
    kept, aside = gt.complete_replicates(rows)
    assert aside == {"lora/t": 6}
    assert set(kept.loc[kept["target"] == "t", "replicate"]) == {"Lcpus0", "Lcpus1", "Lcpus2"}
    assert len(kept[kept["target"] == "u"]) == 2  # one replicate: nothing set aside
    # the rule needs no complete target: a wider (still partial) CPU part wins too
    narrow = gpu[gpu["source"] == "a"].assign(target="v")
    wide = cpu[cpu["source"] != "c"].assign(target="v")
    both = pd.concat([narrow, wide], ignore_index=True).assign(method="lora")
    kept_v, aside_v = gt.complete_replicates(both)
    assert aside_v == {"lora/v": 3} and set(kept_v["replicate"].str[:4]) == {"Lcpu"}
    sig = gt.signal(kept[kept["target"] == "t"], pd.DataFrame(columns=["target", "source", "gain"]),
                    {"t": ["a", "b", "c"]})  # fmt: skip
    assert sig["per_target"]["t"]["complete"]
    # a part still under way: its last seed lacks source c -- kept, nothing set aside
    running = cpu[~((cpu["source"] == "c") & (cpu["seed"] == 2))].assign(method="full")
    kept_r, aside_r = gt.complete_replicates(running)
    assert aside_r == {} and len(kept_r) == len(running)


def test_extra_store_needs_a_new_label_and_a_store(gt, tmp_path):
    with pytest.raises(SystemExit, match="LABEL=PATH"):
        gt.store_sources(CAMPAIGN, ["1=" + str(tmp_path)])
    with pytest.raises(SystemExit, match="no store"):
        gt.store_sources(CAMPAIGN, ["cpu=" + str(tmp_path / "missing")])
