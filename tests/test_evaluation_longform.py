"""Tests for taskscout.evaluation.longform (evaluate_long over long-form frames)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from taskscout.evaluation.files import EvaluationInputError
from taskscout.evaluation.longform import RANDOM_BASELINE, evaluate_long
from taskscout.evaluation.metrics import evaluate_target, random_target


def same(a: float, b: float, rel: float = 1e-12) -> bool:
    """Equal up to rounding, or both NaN."""
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-12)


# --------------------------------------------------------------------------------------------
# evaluate_long
# --------------------------------------------------------------------------------------------
def _gold_frame() -> pd.DataFrame:
    rows = []
    gains = {
        "t1": {"a": 1.0, "b": 3.0, "c": -1.0, "d": 0.5},
        "t2": {"a": 0.0, "b": -2.0, "c": 2.0, "d": 1.0},
        "t3": {"a": 4.0, "b": 1.0, "c": 1.0, "d": -3.0},
    }
    for t, by_source in gains.items():
        for s, g in by_source.items():
            rows.append({"target": t, "source": s, "gain": g, "performance": 60.0 + g})
    return pd.DataFrame(rows)


def _scores_frame(gold: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for r in gold.itertuples():
        rows.append(
            {"target": r.target, "source": r.source, "predictor": "oracle", "score": r.gain}
        )
        # "flat" is constant on t2 -> spearman/pearson NaN there
        flat = 0.0 if r.target == "t2" else {"a": 0.3, "b": 0.1, "c": 0.4, "d": 0.2}[r.source]
        rows.append({"target": r.target, "source": r.source, "predictor": "flat", "score": flat})
    return pd.DataFrame(rows)


def test_evaluate_long_end_to_end():
    gold = _gold_frame()
    scores = _scores_frame(gold).sample(frac=1.0, random_state=0)  # order must not matter
    per_target, summary = evaluate_long(gold, scores)
    assert list(per_target.columns[:3]) == ["predictor", "target", "n_sources"]
    assert len(per_target) == 3 * 3  # (oracle, flat, random) x 3 targets
    assert list(pd.unique(per_target["predictor"]))[-1] == RANDOM_BASELINE
    assert (per_target["n_sources"] == 4).all()
    table = per_target.set_index(["predictor", "target"])
    for predictor, target in table.index:
        g_t = gold[gold["target"] == target].reset_index(drop=True)
        if predictor == RANDOM_BASELINE:
            expected = random_target(g_t["gain"], g_t["performance"])
        else:
            sc = scores[(scores.predictor == predictor) & (scores.target == target)]
            sc = sc.set_index("source").loc[g_t["source"], "score"].to_numpy()
            expected = evaluate_target(sc, g_t["gain"], g_t["performance"])
        for key, value in expected.items():
            assert same(table.loc[(predictor, target), key], value), (predictor, target, key)
    oracle = per_target[per_target.predictor == "oracle"]
    assert (oracle["rank_of_best"] == 1.0).all()
    assert np.allclose(oracle["ndcg_rank"], 1.0)
    assert np.allclose(oracle["regret@1"], 0.0)
    # summary: means over targets, NaN-skipping, counts
    # predictors in order of first appearance in scores, then the random baseline
    assert list(summary.index) == [*pd.unique(scores["predictor"]), RANDOM_BASELINE]
    assert summary.loc["oracle", "n_targets"] == 3 and summary.loc["oracle", "n_nan"] == 0
    assert summary.loc["flat", "n_nan"] == 1
    flat = per_target[per_target.predictor == "flat"].set_index("target")
    assert math.isnan(flat.loc["t2", "spearman"])
    assert summary.loc["flat", "spearman"] == pytest.approx(
        (flat.loc["t1", "spearman"] + flat.loc["t3", "spearman"]) / 2
    )
    assert summary.loc["flat", "gain@1"] == pytest.approx(flat["gain@1"].mean())
    # flat on t2 is constant: gain@1 = mean of t2's gains (random pick) = 0.25
    assert flat.loc["t2", "gain@1"] == pytest.approx(0.25)
    assert summary.loc[RANDOM_BASELINE, "spearman"] == 0.0


def test_evaluate_long_without_performance():
    gold = _gold_frame().drop(columns="performance")
    per_target, summary = evaluate_long(gold, _scores_frame(gold), ks=(2,))
    assert "ndcg_perf" not in per_target and "regret@2" not in per_target
    assert list(summary.columns) == [
        "rank_of_best",
        "ndcg_rank",
        "spearman",
        "pearson",
        "gain@2",
        "n_targets",
        "n_nan",
    ]


def test_evaluate_long_self_pairs_and_small_targets_warn():
    gold = _gold_frame()
    scores = _scores_frame(gold)
    # a self pair in both frames; t4 with a single source
    extra_gold = pd.DataFrame(
        [
            {"target": "t1", "source": "t1", "gain": 9.0, "performance": 69.0},
            {"target": "t4", "source": "a", "gain": 1.0, "performance": 61.0},
        ]
    )
    extra_scores = pd.DataFrame(
        [
            {"target": "t1", "source": "t1", "predictor": "oracle", "score": 1.0},
            {"target": "t4", "source": "a", "predictor": "oracle", "score": 1.0},
            {"target": "t4", "source": "a", "predictor": "flat", "score": 1.0},
        ]
    )
    with pytest.warns(UserWarning) as record:
        per_target, _ = evaluate_long(
            pd.concat([gold, extra_gold]), pd.concat([scores, extra_scores])
        )
    messages = " | ".join(str(w.message) for w in record)
    assert "target == source" in messages
    assert "fewer than 2 sources" in messages and "t4" in messages
    assert set(per_target["target"]) == {"t1", "t2", "t3"}
    assert (per_target["n_sources"] == 4).all()


def _expect_error(gold, scores, match):
    with pytest.raises(ValueError, match=match):
        evaluate_long(gold, scores)


def test_evaluate_long_validation():
    gold = _gold_frame()
    scores = _scores_frame(gold)
    _expect_error(gold.drop(columns="gain"), scores, r"gold is missing column\(s\) \['gain'\]")
    _expect_error(gold, scores.drop(columns="predictor"), r"scores is missing column")
    _expect_error(pd.concat([gold, gold.iloc[[0]]]), scores, "gold has duplicate")
    _expect_error(gold, pd.concat([scores, scores.iloc[[0]]]), "scores has duplicate")
    stray = pd.DataFrame([{"target": "t1", "source": "zzz", "predictor": "oracle", "score": 0}])
    _expect_error(gold, pd.concat([scores, stray]), r"not in gold.*zzz")
    unknown = pd.DataFrame([{"target": "tX", "source": "a", "predictor": "oracle", "score": 0}])
    _expect_error(gold, pd.concat([scores, unknown]), r"target\(s\) not in gold.*tX")
    lacking = scores[
        ~((scores.predictor == "flat") & (scores.target == "t3") & (scores.source == "c"))
    ]
    _expect_error(gold, lacking, r"missing score.*'flat'.*'t3'.*'c'")
    nan_gold = gold.copy()
    nan_gold.loc[2, "gain"] = np.nan
    _expect_error(nan_gold, scores, r"gold column 'gain' must be finite")
    nan_scores = scores.copy()
    nan_scores.loc[0, "score"] = np.nan
    _expect_error(gold, nan_scores, r"scores column 'score' must be finite")
    reserved = scores.replace({"predictor": {"flat": RANDOM_BASELINE}})
    _expect_error(gold, reserved, "random-baseline row")
    bad_perf = gold.copy()
    bad_perf.loc[bad_perf.target == "t2", "performance"] = 0.0
    _expect_error(bad_perf, scores, r"target 't2'.*performance > 0|target 't2'.*ideal DCG")


def test_error_class_is_a_value_error():
    gold = _gold_frame()
    with pytest.raises(EvaluationInputError, match="gold has duplicate"):
        evaluate_long(pd.concat([gold, gold.iloc[[0]]]), _scores_frame(gold))
    assert issubclass(EvaluationInputError, ValueError)


# --------------------------------------------------------------------------------------------
# defect b: a scores file's registered `random` predictor vs the expected-random row
# --------------------------------------------------------------------------------------------
def test_predictor_named_random_is_evaluated_beside_the_expected_random_row():
    """`taskscout predict --predictors all` emits the registered predictor `random`; it used
    to be rejected ("predictor name 'random' is reserved")."""
    gold = _gold_frame()
    scores = _scores_frame(gold)
    drawn = scores[scores.predictor == "flat"].assign(predictor="random")
    drawn["score"] = np.random.default_rng(0).permutation(len(drawn)).astype(float)
    per_target, summary = evaluate_long(gold, pd.concat([scores, drawn]))
    assert RANDOM_BASELINE != "random"
    assert list(summary.index) == ["oracle", "flat", "random", RANDOM_BASELINE]
    assert summary.loc["random", "n_targets"] == 3
    assert summary.loc[RANDOM_BASELINE, "n_targets"] == 3
    # the `random` predictor's rows are its own scores, evaluated like any predictor
    table = per_target.set_index(["predictor", "target"])
    for target in ("t1", "t2", "t3"):
        g_t = gold[gold.target == target]
        s = drawn[drawn.target == target].set_index("source").loc[g_t["source"], "score"]
        got = table.loc[("random", target)]
        for key, value in evaluate_target(s, g_t["gain"], g_t["performance"]).items():
            assert same(got[key], value), (target, key)
        for key, value in random_target(g_t["gain"], g_t["performance"]).items():
            assert same(table.loc[(RANDOM_BASELINE, target), key], value), (target, key)


def test_random_label_is_configurable_and_still_reserved():
    gold = _gold_frame()
    scores = _scores_frame(gold)
    _, summary = evaluate_long(gold, scores, random_label="chance")
    assert list(summary.index) == ["oracle", "flat", "chance"]
    with pytest.raises(EvaluationInputError, match="'oracle' is the label of the random"):
        evaluate_long(gold, scores, random_label="oracle")
    with pytest.raises(ValueError, match="random_label"):
        evaluate_long(gold, scores, random_label="")


def test_only_self_pairs_is_a_clear_error():
    """Found by the reader property test: scores holding only target == source rows used to
    end in pandas' "You are trying to merge on float64 and str columns"."""
    gold = _gold_frame()
    selfish = pd.DataFrame([{"target": "t1", "source": "t1", "predictor": "p", "score": 1.0}])
    with pytest.warns(UserWarning, match="target == source"):
        _expect_error(gold, selfish, r"scores has no rows with target != source")
