"""Tests for taskscout.evaluation.external (TaskWeb ground truth) on a hand-made fixture."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from taskscout.evaluation.external import (
    TASKWEB_OVERLAP,
    TASKWEB_TO_OURS,
    load_taskweb_gold,
    load_taskweb_predictors,
    parse_tasks,
    taskweb_ndcg,
    to_our_name,
    to_taskweb_name,
)
from taskscout.evaluation.longform import RANDOM_BASELINE, evaluate_long
from taskscout.evaluation.metrics import ndcg_rank

FIXTURE = Path(__file__).parent / "fixtures" / "taskweb_small"
PAIRS = FIXTURE / "pairs.csv"
PREDICTORS = FIXTURE / "released_predictor_scores.csv"


def test_name_mapping_constants():
    assert TASKWEB_TO_OURS == {"cosmosqa": "cosmos_qa"}
    assert to_our_name("cosmosqa") == "cosmos_qa"
    assert to_our_name("rte") == "rte"
    assert to_taskweb_name("cosmos_qa") == "cosmosqa"
    assert len(TASKWEB_OVERLAP) == 12
    assert "cosmos_qa" in TASKWEB_OVERLAP and "cosmosqa" not in TASKWEB_OVERLAP
    assert parse_tasks(" rte, cosmosqa ,rte") == ["rte", "cosmos_qa"]
    assert parse_tasks(None) is None
    with pytest.raises(ValueError, match="empty"):
        parse_tasks(" , ")


def test_gold_columns_names_and_scaling():
    gold = load_taskweb_gold(PAIRS)  # ALL(avg)
    assert list(gold.columns) == ["target", "source", "gain", "performance"]
    assert "cosmosqa" not in set(gold["target"]) | set(gold["source"])
    assert {"boolq", "cosmos_qa", "rte"} == set(gold["target"])
    assert "squad_v2" in set(gold["source"])
    row = gold[(gold["target"] == "rte") & (gold["source"] == "cosmos_qa")].iloc[0]
    assert row["gain"] == pytest.approx(8.6)  # 0.086 x 100
    assert row["performance"] == pytest.approx(108.6)  # 100 x (1 + 0.086)
    row = gold[(gold["target"] == "cosmos_qa") & (gold["source"] == "boolq")].iloc[0]
    assert row["gain"] == pytest.approx(-5.8)
    assert row["performance"] == pytest.approx(94.2)
    np.testing.assert_allclose(gold["performance"], 100.0 + gold["gain"])


def test_gold_diagonal_dropped():
    raw = pd.read_csv(PAIRS)
    assert ((raw["target"] == raw["source"]) & (raw["setting"] == "ALL(avg)")).sum() == 1
    gold = load_taskweb_gold(PAIRS)
    assert not (gold["target"] == gold["source"]).any()
    assert len(gold) == 9


def test_gold_setting_selection():
    avg = load_taskweb_gold(PAIRS, setting="ALL(avg)")
    rob = load_taskweb_gold(PAIRS, setting="finetune:roberta")
    key = ["target", "source"]
    both = avg.merge(rob, on=key, suffixes=("_avg", "_rob"))
    assert len(both) == 9
    row = both[(both["target"] == "boolq") & (both["source"] == "cosmos_qa")].iloc[0]
    assert row["gain_avg"] == pytest.approx(3.4)
    assert row["gain_rob"] == pytest.approx(2.1)


def test_gold_combined_score():
    gold = load_taskweb_gold(PAIRS, setting="finetune:roberta", gain_column="combined_score")
    row = gold[(gold["target"] == "rte") & (gold["source"] == "boolq")].iloc[0]
    assert row["gain"] == pytest.approx(100 * (0.5 * 0.052 + 0.5 * (0.2 * 0.875 - 0.1)))
    assert row["performance"] == pytest.approx(105.2)
    with pytest.raises(ValueError, match="gain_column"):
        load_taskweb_gold(PAIRS, gain_column="prop_positive")


def test_gold_unknown_setting_lists_available():
    with pytest.raises(ValueError, match="unknown setting") as err:
        load_taskweb_gold(PAIRS, setting="finetune:t5xxl")
    assert "ALL(avg)" in str(err.value) and "finetune:roberta" in str(err.value)


def test_gold_missing_columns_and_file(tmp_path):
    bad = tmp_path / "pairs.csv"
    bad.write_text("target,source,avg_pct_change\nrte,boolq,0.1\n")
    with pytest.raises(ValueError, match=r"missing column.*setting") as err:
        load_taskweb_gold(bad)
    assert str(bad) in str(err.value)
    with pytest.raises(FileNotFoundError):
        load_taskweb_gold(tmp_path / "nope.csv")


def test_gold_duplicates_and_junk(tmp_path):
    dup = tmp_path / "dup.csv"
    dup.write_text(
        "target,source,setting,avg_pct_change\nrte,boolq,ALL(avg),0.1\nrte,boolq,ALL(avg),0.2\n"
    )
    with pytest.raises(ValueError, match="duplicate"):
        load_taskweb_gold(dup)
    junk = tmp_path / "junk.csv"
    junk.write_text("target,source,setting,avg_pct_change\nrte,boolq,ALL(avg),abc\n")
    with pytest.raises(ValueError, match="finite"):
        load_taskweb_gold(junk)


def test_gold_task_restriction():
    gold = load_taskweb_gold(PAIRS, tasks=["rte", "cosmos_qa"])
    pairs = set(zip(gold["target"], gold["source"], strict=True))
    assert pairs == {("rte", "cosmos_qa"), ("cosmos_qa", "rte")}
    # TaskWeb's spelling and a comma-separated string work too
    same = load_taskweb_gold(PAIRS, tasks="rte,cosmosqa")
    pd.testing.assert_frame_equal(gold, same)
    # squad_v2 is a source only: with it, every target gets it as a source
    with_squad = load_taskweb_gold(PAIRS, tasks=["rte", "boolq", "squad_v2"])
    assert set(with_squad["target"]) == {"rte", "boolq"}
    assert len(with_squad) == 4
    with pytest.raises(ValueError, match=r"not in this TaskWeb file.*") as err:
        load_taskweb_gold(PAIRS, tasks=["rte", "mnli"])
    assert "mnli" in str(err.value)


def test_predictors_loader():
    pred = load_taskweb_predictors(PREDICTORS)
    assert list(pred.columns) == ["target", "source", "predictor", "score"]
    assert set(pred["predictor"]) == {"taskshop_roe", "llm_similarity_davinci003"}
    assert "cosmos_qa" in set(pred["target"]) and "cosmosqa" not in set(pred["target"])
    assert "story_cloze" in set(pred["target"])
    sub = load_taskweb_predictors(PREDICTORS, tasks=["rte", "cosmos_qa"])
    assert len(sub) == 4  # 2 pairs x 2 predictors
    one = load_taskweb_predictors(PREDICTORS, predictors=["taskshop_roe"])
    assert set(one["predictor"]) == {"taskshop_roe"}
    with pytest.raises(ValueError, match="unknown predictor"):
        load_taskweb_predictors(PREDICTORS, predictors=["oracle"])


def test_gold_and_predictors_evaluate_together():
    gold = load_taskweb_gold(PAIRS, setting="finetune:roberta")
    pred = load_taskweb_predictors(PREDICTORS).merge(gold[["target", "source"]])
    per_target, summary = evaluate_long(gold, pred)
    assert list(summary.index) == ["taskshop_roe", "llm_similarity_davinci003", RANDOM_BASELINE]
    assert (summary["n_targets"] == 3).all()
    # rte: cosmos_qa is the best source (11 %); taskshop_roe puts boolq first, llm boolq too
    row = per_target[(per_target["predictor"] == "taskshop_roe") & (per_target["target"] == "rte")]
    assert row["rank_of_best"].item() == 2.0
    assert row["gain@1"].item() == pytest.approx(5.2)


# --------------------------------------------------------------------------------------------
# taskweb_ndcg vs ndcg_rank
# --------------------------------------------------------------------------------------------
def _literal_taskweb(pred: dict, gold: dict) -> float:
    """TaskWeb's taskshop/metrics.py ndcg(pred_ranking, gold_ranking), transcribed."""
    gold_ranking = [t for t, _ in sorted(gold.items(), key=lambda x: x[1], reverse=True)]
    pred_ranking = [t for t, _ in sorted(pred.items(), key=lambda x: x[1], reverse=True)]

    def dcg(ranking):
        rank = {t: i for i, t in enumerate(gold_ranking)}
        rel = np.array([len(gold_ranking) - rank[t] for t in ranking])
        return np.sum((2.0**rel - 1) / np.log2(np.arange(len(gold_ranking)) + 2))

    return dcg(pred_ranking) / dcg(gold_ranking)


HAND_CASES = [
    # (scores, gold, expected) -- expected by hand where given
    ([3.0, 2.0, 1.0], [0.5, 0.2, -0.1], 1.0),  # perfect
    # reversed, N = 3: gains 7, 3, 1 at positions 2, 1, 0
    (
        [1.0, 2.0, 3.0],
        [0.5, 0.2, -0.1],
        (1 + 3 / math.log2(3) + 7 / 2) / (7 + 3 / math.log2(3) + 1 / 2),
    ),
    # ties in gold: sources 0 and 1 share rank 0 -> both relevance 3, gain 7; source 2 gain 1
    (
        [1.0, 3.0, 2.0],
        [0.4, 0.4, 0.1],
        (7 + 1 / math.log2(3) + 7 / 2) / (7 + 7 / math.log2(3) + 1 / 2),
    ),
    ([0.9, 0.1, 0.5, 0.3], [0.0, 0.0, 0.0, 0.0], 1.0),  # all gold tied
    ([0.2, 0.8, 0.5, 0.1, 0.4], [-0.05, 0.03, 0.03, 0.01, -0.05], None),  # two tie groups
    ([5.0], [0.3], 1.0),  # single source
]


@pytest.mark.parametrize(("scores", "gold", "expected"), HAND_CASES)
def test_taskweb_ndcg_matches_ndcg_rank_hand_cases(scores, gold, expected):
    ours = ndcg_rank(scores, gold)
    theirs = taskweb_ndcg(scores, gold)
    assert theirs == pytest.approx(ours, rel=1e-12, abs=1e-12)
    if expected is not None:
        assert theirs == pytest.approx(expected, rel=1e-12)


def test_taskweb_ndcg_equals_literal_code_without_ties():
    rng = np.random.default_rng(7)
    for n in (2, 5, 21):
        names = [f"t{i}" for i in range(n)]
        g = rng.normal(size=n)
        s = rng.normal(size=n)
        literal = _literal_taskweb(
            dict(zip(names, s, strict=True)), dict(zip(names, g, strict=True))
        )
        assert taskweb_ndcg(s, g) == pytest.approx(literal, rel=1e-12)
        assert taskweb_ndcg(s, g, gold_ties="input_order", score_ties="input_order") == (
            pytest.approx(literal, rel=1e-12)
        )
        assert ndcg_rank(s, g) == pytest.approx(literal, rel=1e-12)


def test_taskweb_ndcg_input_order_ties_reproduce_literal_code():
    # with gold ties TaskWeb's code ranks tied sources in input order
    names = ["a", "b", "c", "d"]
    gold = [0.2, 0.2, -0.1, 0.0]
    pred = [0.1, 0.9, 0.5, 0.3]
    literal = _literal_taskweb(
        dict(zip(names, pred, strict=True)), dict(zip(names, gold, strict=True))
    )
    got = taskweb_ndcg(pred, gold, gold_ties="input_order", score_ties="input_order")
    assert got == pytest.approx(literal, rel=1e-12)
    assert taskweb_ndcg(pred, gold) != pytest.approx(literal, rel=1e-6)  # shared ranks differ


def test_taskweb_ndcg_score_ties_are_the_expectation():
    gold = [0.3, 0.1, 0.2, -0.2]
    scores = [1.0, 1.0, 0.0, 1.0]  # three sources tied at the top
    tied = [0, 1, 3]
    values = []
    for perm in itertools.permutations(tied):
        order = {src: len(tied) - i for i, src in enumerate(perm)}  # distinct scores, same group
        s = [order.get(i, -1.0) for i in range(4)]
        values.append(taskweb_ndcg(s, gold))
    assert taskweb_ndcg(scores, gold) == pytest.approx(np.mean(values), rel=1e-12)
    assert taskweb_ndcg(scores, gold) == pytest.approx(ndcg_rank(scores, gold), rel=1e-12)


def test_taskweb_ndcg_random_agreement_with_ties():
    rng = np.random.default_rng(3)
    for _ in range(300):
        n = int(rng.integers(1, 9))
        s = rng.integers(0, 4, n).astype(float)
        g = rng.integers(0, 4, n).astype(float)
        assert taskweb_ndcg(s, g) == pytest.approx(ndcg_rank(s, g), rel=1e-12, abs=1e-12)


def test_taskweb_ndcg_validation():
    with pytest.raises(ValueError, match="equal length"):
        taskweb_ndcg([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="non-empty"):
        taskweb_ndcg([], [])
    with pytest.raises(ValueError, match="finite"):
        taskweb_ndcg([1.0, float("nan")], [1.0, 2.0])
    with pytest.raises(ValueError, match="1-D"):
        taskweb_ndcg([[1.0]], [[1.0]])
    with pytest.raises(ValueError, match="gold_ties"):
        taskweb_ndcg([1.0], [1.0], gold_ties="average")
