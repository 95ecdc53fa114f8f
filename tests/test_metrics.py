"""Tests for taskscout.evaluation.metrics (DESIGN.md section 5)."""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taskscout.evaluation.metrics import (
    HIGHER_IS_BETTER,
    METRIC_INPUT,
    METRICS,
    evaluate_target,
    gain_at_k,
    higher_is_better,
    ndcg_perf,
    ndcg_rank,
    parse_metric_key,
    pearson,
    random_expectation,
    random_target,
    rank_of_best,
    regret_at_k,
    spearman,
)

L3 = math.log2(3)  # discount denominator at 0-based position 1
L4 = 2.0  # log2(4), position 2
L5 = math.log2(5)  # position 3


def same(a: float, b: float, rel: float = 1e-12) -> bool:
    """Equal up to rounding, or both NaN."""
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-12)


# --------------------------------------------------------------------------------------------
# rank_of_best
# --------------------------------------------------------------------------------------------
def test_rank_of_best_hand():
    # predicted order by score desc: idx1 (.9), idx2 (.5), idx3 (.3), idx0 (.1)
    # best gain 5 is idx2 -> position 2
    assert rank_of_best([0.1, 0.9, 0.5, 0.3], [2, -1, 5, 0]) == 2.0
    # best is idx0, last in the predicted order -> 4
    assert rank_of_best([0.1, 0.9, 0.5, 0.3], [9, -1, 5, 0]) == 4.0
    # single source
    assert rank_of_best([0.3], [-2.0]) == 1.0


def test_rank_of_best_ties_in_scores():
    # scores [1, 3, 3, 3, 0]: group {1,2,3} occupies positions 1..3 (h = 0, e = 3); the best
    # (gain 5) is idx2 inside it (b = 1) -> optimistic 1, average 0 + (3+1)/(1+1) = 2,
    # pessimistic 0 + 3 - 1 + 1 = 3
    s, g = [1, 3, 3, 3, 0], [0, 1, 5, 2, 3]
    assert rank_of_best(s, g) == 2.0  # default: average
    assert rank_of_best(s, g, ties="optimistic") == 1.0
    assert rank_of_best(s, g, ties="average") == 2.0
    assert rank_of_best(s, g, ties="pessimistic") == 3.0
    # scores [5, 3, 3, 3, 0]: group {1,2,3} now after idx0 (h = 1): 2 / 1 + 2 = 3 / 4
    s = [5, 3, 3, 3, 0]
    assert [rank_of_best(s, g, ties=t) for t in ("optimistic", "average", "pessimistic")] == [
        2.0,
        3.0,
        4.0,
    ]


def test_rank_of_best_ties_in_gains():
    # order: idx1, idx2, idx3, idx0; best sources {0, 2} at positions 4 and 2 -> 2
    assert rank_of_best([1, 4, 3, 2], [5, 1, 5, 0]) == 2.0


def test_rank_of_best_ties_in_both():
    # group {0,1,2} first (h = 0, e = 3) holds b = 2 best (idx0, idx1):
    # optimistic 1; average (3+1)/(2+1) = 4/3; pessimistic 3 - 2 + 1 = 2
    s, g = [3, 3, 3, 1], [5, 5, 0, 1]
    assert rank_of_best(s, g, ties="optimistic") == 1.0
    assert rank_of_best(s, g) == pytest.approx(4 / 3)
    assert rank_of_best(s, g, ties="pessimistic") == 2.0
    # best sources in different score groups: only the first group with a best counts
    # order idx1 (4), {idx0, idx2} (3) ...; best {0, 3}: idx0 in group at h = 1, e = 2, b = 1
    s, g = [3, 4, 3, 1], [5, 0, 1, 5]
    assert rank_of_best(s, g, ties="pessimistic") == 3.0  # 1 + 2 - 1 + 1
    assert rank_of_best(s, g, ties="average") == pytest.approx(2.5)  # 1 + 3/2


def test_rank_of_best_constant_scores():
    # N = 5, m = 2 best: optimistic 1, average (5+1)/(2+1) = 2, pessimistic 5 - 2 + 1 = 4
    s, g = [0.0] * 5, [1, 7, 7, 2, 3]
    assert rank_of_best(s, g, ties="optimistic") == 1.0
    assert rank_of_best(s, g) == 2.0  # the random-ranking expectation (5 + 1) / (2 + 1)
    assert rank_of_best(s, g, ties="pessimistic") == 4.0


# --------------------------------------------------------------------------------------------
# ndcg_rank
# --------------------------------------------------------------------------------------------
def test_ndcg_rank_hand():
    # gains [3, 1, 2]: gold order idx0, idx2, idx1 -> relevance 3, 1, 2 (idx0, idx1, idx2)
    # gain 2^rel - 1: idx0 7, idx1 1, idx2 3. IDCG = 7/1 + 3/log2(3) + 1/2
    # predicted (scores [.2, .9, .5]): idx1, idx2, idx0 -> DCG = 1/1 + 3/log2(3) + 7/2
    idcg = 7 + 3 / L3 + 1 / L4
    dcg = 1 + 3 / L3 + 7 / L4
    assert ndcg_rank([0.2, 0.9, 0.5], [3, 1, 2]) == pytest.approx(dcg / idcg, rel=1e-12)
    assert dcg / idcg == pytest.approx(0.680606, abs=1e-6)
    assert ndcg_rank([9, 1, 5], [3, 1, 2]) == pytest.approx(1.0)


def test_ndcg_rank_ties_in_gains():
    # gains [2, 2, 1]: both 2s share gold rank 0 -> relevance 3, 3, 1 -> gains 7, 7, 1
    # IDCG = 7 + 7/log2(3) + 1/2; predicted order idx2, idx0, idx1: DCG = 1 + 7/log2 3 + 7/2
    idcg = 7 + 7 / L3 + 1 / L4
    dcg = 1 + 7 / L3 + 7 / L4
    assert ndcg_rank([1, 0, 2], [2, 2, 1]) == pytest.approx(dcg / idcg, rel=1e-12)
    # order among the tied best does not matter
    assert ndcg_rank([3, 2, 1], [2, 2, 1]) == pytest.approx(1.0)
    assert ndcg_rank([2, 3, 1], [2, 2, 1]) == pytest.approx(1.0)
    # constant gains: every source has relevance N -> any ranking is ideal
    assert ndcg_rank([0.1, 0.7, 0.3, 0.2], [4, 4, 4, 4]) == pytest.approx(1.0)


def test_ndcg_rank_ties_in_scores():
    # gains [3, 1, 2] -> gain vector 7, 1, 3 (see test_ndcg_rank_hand)
    # scores [1, 1, 0]: {idx0, idx1} tied at positions 0, 1 -> each gets mean (7+1)/2 = 4,
    # idx2 at position 2: DCG = 4 (1 + 1/log2 3) + 3/2
    idcg = 7 + 3 / L3 + 1 / L4
    dcg = 4 * (1 + 1 / L3) + 3 / L4
    assert ndcg_rank([1, 1, 0], [3, 1, 2]) == pytest.approx(dcg / idcg, rel=1e-12)
    # it equals the average over the two tie-breakings (exactly the expectation)
    a = ndcg_rank([1.1, 1, 0], [3, 1, 2])
    b = ndcg_rank([1, 1.1, 0], [3, 1, 2])
    assert ndcg_rank([1, 1, 0], [3, 1, 2]) == pytest.approx((a + b) / 2, rel=1e-12)


def test_ndcg_rank_single_and_constant_scores():
    assert ndcg_rank([0.0], [-3.0]) == 1.0
    # constant scores: mean gain (7+1+3)/3 at every position
    idcg = 7 + 3 / L3 + 1 / L4
    expected = (11 / 3) * (1 + 1 / L3 + 1 / L4) / idcg
    assert ndcg_rank([5, 5, 5], [3, 1, 2]) == pytest.approx(expected, rel=1e-12)


def test_ndcg_rank_matches_sklearn_with_ties():
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(3)
    for _ in range(20):
        g = rng.integers(0, 4, 7).astype(float)
        s = rng.integers(0, 3, 7).astype(float)
        rel = np.array([np.sum(g <= x) for x in g], dtype=float)  # N - competition rank
        # sklearn's DCG uses y_true linearly and averages over score ties (ignore_ties=False)
        expected = sk.ndcg_score([2.0**rel - 1], [s])
        assert ndcg_rank(s, g) == pytest.approx(expected, rel=1e-12)


def _taskweb_ndcg(gold: dict[str, float], pred: dict[str, float]) -> float:
    """TaskWeb's definition, written out independently: sources sorted by gold score; the one
    at gold rank r (0-based) among N has relevance N - r; gain 2^rel - 1; discount
    log2(position + 2); normalised by the ideal ordering."""
    gold_order = sorted(gold, key=lambda src: gold[src], reverse=True)
    n = len(gold_order)
    relevance = {src: n - r for r, src in enumerate(gold_order)}
    pred_order = sorted(pred, key=lambda src: pred[src], reverse=True)
    dcg = sum((2 ** relevance[src] - 1) / math.log2(i + 2) for i, src in enumerate(pred_order))
    ideal = sum((2 ** relevance[src] - 1) / math.log2(i + 2) for i, src in enumerate(gold_order))
    return dcg / ideal


def test_reproduces_taskweb_ndcg():
    # made-up TaskWeb-style combined scores for one target (distinct values) and a predictor
    gold = {
        "boolq": 0.031,
        "cb": -0.012,
        "copa": 0.004,
        "mrpc": -0.050,
        "qnli": 0.022,
        "rte": 0.047,
        "snli": 0.065,
        "wic": -0.003,
    }
    pred = {
        "boolq": 0.71,
        "cb": 0.12,
        "copa": 0.55,
        "mrpc": 0.40,
        "qnli": 0.83,
        "rte": 0.64,
        "snli": 0.38,
        "wic": 0.02,
    }
    names = sorted(gold)
    got = ndcg_rank([pred[n] for n in names], [gold[n] for n in names])
    assert got == pytest.approx(_taskweb_ndcg(gold, pred), rel=1e-12)
    # a 21-source table like TaskWeb's (21 sources per target), random made-up values
    rng = np.random.default_rng(21)
    srcs = [f"task{i}" for i in range(21)]
    g21 = dict(zip(srcs, rng.normal(size=21), strict=True))
    p21 = dict(zip(srcs, rng.normal(size=21), strict=True))
    got = ndcg_rank([p21[s] for s in srcs], [g21[s] for s in srcs])
    assert got == pytest.approx(_taskweb_ndcg(g21, p21), rel=1e-12)


# --------------------------------------------------------------------------------------------
# ndcg_perf
# --------------------------------------------------------------------------------------------
def test_ndcg_perf_hand():
    # performance [1, 3, 2] -> gains 2^M - 1 = 1, 7, 3; IDCG = 7 + 3/log2 3 + 1/2
    # scores [3, 2, 1]: order idx0, idx1, idx2 -> DCG = 1 + 7/log2 3 + 3/2
    idcg = 7 + 3 / L3 + 1 / L4
    dcg = 1 + 7 / L3 + 3 / L4
    assert ndcg_perf([3, 2, 1], [1, 3, 2]) == pytest.approx(dcg / idcg, rel=1e-12)
    assert ndcg_perf([0.5], [70.0]) == 1.0
    # ties in scores: {idx0, idx1} share mean gain (1+7)/2 = 4 -> 4(1 + 1/log2 3) + 3/2
    dcg_tied = 4 * (1 + 1 / L3) + 3 / L4
    assert ndcg_perf([1, 1, 0], [1, 3, 2]) == pytest.approx(dcg_tied / idcg, rel=1e-12)


def test_ndcg_perf_realistic_points_and_no_overflow():
    # M = 80, 82, 79 points; scores put 80 first, then 82, then 79.
    # gains 2^80-1, 2^82-1, 2^79-1; divide by 2^79: ~ 2, 8, 1
    dcg = 2 + 8 / L3 + 1 / L4
    idcg = 8 + 2 / L3 + 1 / L4
    assert ndcg_perf([3, 2, 1], [80, 82, 79]) == pytest.approx(dcg / idcg, rel=1e-12)
    # 2^1500 overflows float64; gains ~ 2^1500 (1, 1/2, 1/4) after factoring out 2^max
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = ndcg_perf([1, 2, 3], [1500, 1499, 1498])
    dcg = 0.25 + 0.5 / L3 + 1 / L4
    idcg = 1 + 0.5 / L3 + 0.25 / L4
    assert math.isfinite(got)
    assert got == pytest.approx(dcg / idcg, rel=1e-12)
    assert ndcg_perf([3, 2, 1], [1500, 1499, 1498]) == pytest.approx(1.0)


def test_ndcg_perf_undefined_ideal():
    # all M = 0 -> every gain 2^0 - 1 = 0 -> ideal DCG 0
    with pytest.raises(ValueError, match="ideal DCG"):
        ndcg_perf([1, 2], [0.0, 0.0])
    with pytest.raises(ValueError, match="ideal DCG"):
        ndcg_perf([1, 2], [-5.0, -1.0])


# --------------------------------------------------------------------------------------------
# spearman / pearson
# --------------------------------------------------------------------------------------------
def test_correlations_hand():
    # ranks [1,2,3] vs [1,3,2]: d^2 = 0+1+1 = 2; rho = 1 - 6*2/(3*(9-1)) = 0.5
    assert spearman([1, 2, 3], [1, 3, 2]) == pytest.approx(0.5)
    # pearson: centred [-1,0,1] and [-1,1,0]: cov 1, variances 2 and 2 -> 1/2
    assert pearson([1, 2, 3], [1, 3, 2]) == pytest.approx(0.5)
    # pearson uses values: [1, 2, 10] vs [1, 2, 3]; spearman only ranks -> 1
    assert spearman([1, 2, 10], [1, 2, 3]) == pytest.approx(1.0)
    x, y = np.array([1, 2, 10.0]), np.array([1, 2, 3.0])
    r = np.sum((x - x.mean()) * (y - y.mean())) / math.sqrt(
        np.sum((x - x.mean()) ** 2) * np.sum((y - y.mean()) ** 2)
    )
    assert pearson(x, y) == pytest.approx(r)
    # ties in scores: average ranks [1.5, 1.5, 3] vs [1, 2, 3] -> pearson of those ranks
    assert spearman([0, 0, 1], [1, 2, 3]) == pytest.approx(math.sqrt(3) / 2)
    # two sources: +-1
    assert spearman([1, 2], [5, 3]) == pytest.approx(-1.0)
    assert pearson([1, 2], [5, 3]) == pytest.approx(-1.0)


@pytest.mark.parametrize("fn", [spearman, pearson])
def test_correlations_nan_cases_without_warning(fn):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert math.isnan(fn([1, 1, 1], [1, 2, 3]))  # constant scores
        assert math.isnan(fn([1, 2, 3], [4, 4, 4]))  # constant gains
        assert math.isnan(fn([1.0], [2.0]))  # single source


# --------------------------------------------------------------------------------------------
# regret@k / gain@k
# --------------------------------------------------------------------------------------------
def test_regret_hand():
    perf = [80, 90, 85, 70]
    s = [0.4, 0.1, 0.9, 0.2]  # order: idx2 (85), idx0 (80), idx3 (70), idx1 (90)
    assert regret_at_k(s, perf) == pytest.approx((90 - 85) / 90 * 100)  # 5.555...
    assert regret_at_k(s, perf, k=3) == pytest.approx((90 - 85) / 90 * 100)
    assert regret_at_k(s, perf, k=4) == 0.0
    assert regret_at_k(s, perf, k=10) == 0.0  # k > N: everything chosen
    assert regret_at_k([1.0], [55.0]) == 0.0


def test_regret_ties_at_k_boundary():
    # scores [1, 1, 0, 0], k=1: one of {idx0 (50), idx1 (100)} at random -> E max = 75
    # regret = (100 - 75)/100*100 = 25
    assert regret_at_k([1, 1, 0, 0], [50, 100, 80, 60], k=1) == pytest.approx(25.0)
    # k = 2: the whole first group -> max 100 -> 0; k = 3: also 0
    assert regret_at_k([1, 1, 0, 0], [50, 100, 80, 60], k=2) == 0.0
    # scores [2, 1, 1, 1], perf [70, 100, 60, 80]; idx0 always chosen (F = 70)
    # k = 2: one of {100, 60, 80}: E max(70, .) = (100 + 70 + 80)/3 = 83.33 -> 16.67
    s, m = [2, 1, 1, 1], [70, 100, 60, 80]
    assert regret_at_k(s, m, k=2) == pytest.approx((100 - 250 / 3) / 100 * 100)
    # k = 3: two of {100, 60, 80}: {100,60}->100, {100,80}->100, {60,80}->80: E = 280/3
    assert regret_at_k(s, m, k=3) == pytest.approx((100 - 280 / 3) / 100 * 100)


def test_regret_requires_positive_max():
    with pytest.raises(ValueError, match="max performance > 0"):
        regret_at_k([1, 2], [0.0, -3.0])


def test_gain_at_k_hand():
    g = [2.0, -1.0, 5.0, 0.5]
    s = [0.1, 0.9, 0.5, 0.3]  # order idx1 (-1), idx2 (5), idx3 (0.5), idx0 (2)
    assert gain_at_k(s, g) == -1.0
    assert gain_at_k(s, g, k=2) == 5.0
    assert gain_at_k(s, g, k=99) == 5.0
    assert gain_at_k([3.0], [-0.7]) == -0.7
    # ties: scores [1, 1, 1, 0], k = 1: uniform over gains {2, -1, 5} -> 2
    assert gain_at_k([1, 1, 1, 0], g, k=1) == pytest.approx(2.0)
    # k = 2 from {2, -1, 5}: pairs {2,-1}->2, {2,5}->5, {-1,5}->5 -> 4
    assert gain_at_k([1, 1, 1, 0], g, k=2) == pytest.approx(4.0)
    # constant scores, k = 2 over all four: C(4,2)=6 pairs; P(max = 5) = 3/6,
    # P(max = 2) = 2/6, P(max = 0.5) = 1/6 -> (15 + 4 + 0.5)/6
    assert gain_at_k([0, 0, 0, 0], g, k=2) == pytest.approx(19.5 / 6)


# --------------------------------------------------------------------------------------------
# input validation
# --------------------------------------------------------------------------------------------
ALL_FUNCS = [rank_of_best, ndcg_rank, ndcg_perf, spearman, pearson, regret_at_k, gain_at_k]


@pytest.mark.parametrize("fn", ALL_FUNCS)
def test_validation(fn):
    values_name = METRIC_INPUT[fn.__name__]
    with pytest.raises(ValueError, match="same length"):
        fn([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="1-D"):
        fn([[1, 2], [3, 4]], [[1, 2], [3, 4]])
    with pytest.raises(ValueError, match="at least one source"):
        fn([], [])
    with pytest.raises(ValueError, match="scores contains NaN"):
        fn([1, np.nan], [1, 2])
    with pytest.raises(ValueError, match=f"{values_name} contains NaN"):
        fn([1, 2], [np.nan, 2])
    with pytest.raises(ValueError, match=f"{values_name} contains infinite"):
        fn([1, 2], [np.inf, 2])
    with pytest.raises(ValueError, match="scores"):
        fn(["a", "b"], [1, 2])


@pytest.mark.parametrize("fn", [regret_at_k, gain_at_k])
@pytest.mark.parametrize("k", [0, -1, 1.5, True, "2"])
def test_bad_k(fn, k):
    with pytest.raises(ValueError, match="k must be"):
        fn([1, 2], [1, 2], k=k)


def test_bad_ties_mode():
    with pytest.raises(ValueError, match="ties"):
        rank_of_best([1, 2], [1, 2], ties="random")


# --------------------------------------------------------------------------------------------
# random-ranking expectations
# --------------------------------------------------------------------------------------------
def _all_rankings(n: int):
    """Scores of all n! rankings (distinct scores; higher = earlier)."""
    for perm in itertools.permutations(range(n)):
        yield np.array(perm, dtype=float)


def _brute(key: str, gains: np.ndarray, perf: np.ndarray) -> float:
    name, k = parse_metric_key(key)
    values = gains if METRIC_INPUT[name] == "gains" else perf
    kwargs = {"k": k} if k is not None else {}
    out = [METRICS[name](s, values, **kwargs) for s in _all_rankings(len(values))]
    return float(np.mean(out))


GAIN_CASES = [
    [1.5],
    [0.3, -0.2],
    [1.0, 1.0],
    [2.0, -1.0, 0.5],
    [3.0, 3.0, 1.0, 0.0],
    [0.4, 0.1, 0.1, 0.1, -0.3],
    [5.0, -2.0, 1.0, 1.0, 5.0, 0.5],
    [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
    [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
]
KEYS = [
    "rank_of_best",
    "ndcg_rank",
    "ndcg_perf",
    "spearman",
    "pearson",
    "regret@1",
    "regret@2",
    "regret@3",
    "gain@1",
    "gain@2",
    "gain@4",
    "gain@7",
]


@pytest.mark.parametrize("gains", GAIN_CASES, ids=lambda g: f"N{len(g)}")
def test_random_expectation_matches_enumeration(gains):
    g = np.array(gains)
    perf = 70.0 + 3.0 * g  # performance in points, ties where gains tie
    for key in KEYS:
        if key in ("spearman", "pearson") and g.size > 5:
            continue  # scipy is slow (~0.4 ms a call); 5! rankings suffice for the symmetry
        exact = random_expectation(key, gains=g, performance=perf)
        assert same(exact, _brute(key, g, perf)), key
    # the table helper gives the same numbers
    table = random_target(g, perf, ks=(1, 2))
    for key, value in table.items():
        assert same(value, random_expectation(key, gains=g, performance=perf)), key


def test_random_expectation_closed_forms():
    g = np.array([4.0, 1.0, 4.0, 0.0, 2.0, 4.0, -1.0])  # N = 7, m = 3 best
    assert random_expectation("rank_of_best", gains=g) == pytest.approx(8 / 4)
    assert random_expectation("rank_of_best", gains=[1.0, 0, 2, 3]) == pytest.approx(5 / 2)
    # ndcg_rank: relevance #{g' <= g}: [7, 3, 7, 2, 4, 7, 1]
    rel = np.array([7, 3, 7, 2, 4, 7, 1], dtype=float)
    gv = 2.0**rel - 1
    disc = 1 / np.log2(np.arange(7) + 2)
    ideal = np.sum(np.sort(gv)[::-1] * disc)
    expected = gv.mean() * disc.sum() / ideal
    assert random_expectation("ndcg_rank", gains=g) == pytest.approx(expected, rel=1e-12)
    # gain@2 over a random pair of the 7: sorted 4,4,4,2,1,0,-1;
    # P(i-th largest is max) = C(7-i, 1)/C(7, 2) = (7-i)/21
    sorted_vals = [4, 4, 4, 2, 1, 0, -1]
    expected = sum((7 - i) / 21 * v for i, v in enumerate(sorted_vals, start=1))
    assert random_expectation("gain_at_k", gains=g, k=2) == pytest.approx(expected)
    assert random_expectation("gain@2", gains=g) == pytest.approx(expected)
    assert random_expectation("spearman", gains=g) == 0.0
    assert random_expectation("pearson", gains=g) == 0.0
    assert math.isnan(random_expectation("spearman", gains=[1.0, 1.0]))
    assert math.isnan(random_expectation("pearson", gains=[1.0]))
    # regret@1 over perf: mean of M -> (max - mean)/max*100
    perf = np.array([60.0, 80.0, 70.0])
    assert random_expectation("regret@1", performance=perf) == pytest.approx((80 - 70) / 80 * 100)


def test_random_expectation_monte_carlo():
    g = np.array([0.5, 2.0, -1.0, 2.0, 0.0, 1.0, 3.0, 0.2])
    perf = 60 + g
    for key in ["rank_of_best", "ndcg_rank", "ndcg_perf", "regret@2", "gain@3"]:
        exact = random_expectation(key, gains=g, performance=perf)
        mc = random_expectation(
            key, gains=g, performance=perf, method="monte_carlo", n_draws=1000, seed=1
        )
        assert mc == pytest.approx(exact, abs=0.06 * max(1.0, abs(exact))), key
    # a callable is always Monte Carlo; the same seed gives the same number
    a = random_expectation(lambda s, v: rank_of_best(s, v), gains=g, n_draws=1000, seed=5)
    b = random_expectation(lambda s, v: rank_of_best(s, v), gains=g, n_draws=1000, seed=5)
    assert a == b
    assert a == pytest.approx(9 / 2, abs=0.3)  # N = 8, unique best


def test_random_expectation_errors():
    with pytest.raises(ValueError, match="n_draws"):
        random_expectation("ndcg_rank", gains=[1, 2], method="monte_carlo", n_draws=999)
    with pytest.raises(ValueError, match="needs performance"):
        random_expectation("ndcg_perf", gains=[1, 2])
    with pytest.raises(ValueError, match="needs gains"):
        random_expectation("gain@1", performance=[1, 2])
    with pytest.raises(ValueError, match="unknown metric"):
        random_expectation("mrr", gains=[1, 2])
    with pytest.raises(ValueError, match="method"):
        random_expectation("ndcg_rank", gains=[1, 2], method="sampled")


def test_registry():
    assert set(METRICS) == set(METRIC_INPUT)
    assert set(METRICS) <= set(HIGHER_IS_BETTER)
    assert higher_is_better("regret@3") is False
    assert higher_is_better("gain@1") is True
    assert higher_is_better("rank_of_best") is False
    assert higher_is_better("ndcg_perf") is True
    assert parse_metric_key("regret@10") == ("regret_at_k", 10)


# --------------------------------------------------------------------------------------------
# property tests
# --------------------------------------------------------------------------------------------
small_ints = st.integers(min_value=-6, max_value=6)


@st.composite
def target_data(draw, min_size=1, max_size=8, unique=False):
    n = draw(st.integers(min_value=min_size, max_value=max_size))
    gains = draw(st.lists(small_ints, min_size=n, max_size=n, unique=unique))
    perf = [50.0 + 5.0 * x for x in gains]
    return np.array(gains, dtype=float), np.array(perf)


@given(target_data())
def test_perfect_predictor(data):
    gains, perf = data
    for ties in ("optimistic", "average", "pessimistic"):
        assert rank_of_best(gains, gains, ties=ties) == 1.0
    assert ndcg_rank(gains, gains) == pytest.approx(1.0, rel=1e-12)
    assert ndcg_perf(perf, perf) == pytest.approx(1.0, rel=1e-12)
    for k in (1, 2, 3, 10):
        assert regret_at_k(perf, perf, k=k) == pytest.approx(0.0, abs=1e-12)
    assert gain_at_k(gains, gains, k=1) == pytest.approx(gains.max(), rel=1e-12)
    if len(set(gains.tolist())) > 1:
        assert spearman(gains, gains) == pytest.approx(1.0)
        assert pearson(gains, gains) == pytest.approx(1.0)


@settings(max_examples=25, deadline=None)
@given(target_data(max_size=6, unique=True))
def test_reversed_predictor_is_worst(data):
    gains, perf = data
    n = gains.size
    assert rank_of_best(-gains, gains) == float(n)
    worst_rank = min(ndcg_rank(s, gains) for s in _all_rankings(n))
    worst_perf = min(ndcg_perf(s, perf) for s in _all_rankings(n))
    assert ndcg_rank(-gains, gains) == pytest.approx(worst_rank, rel=1e-12)
    assert ndcg_perf(-gains, perf) == pytest.approx(worst_perf, rel=1e-12)
    assert gain_at_k(-gains, gains) == gains.min()


RANK_BASED = {
    "rank_of_best": lambda s, g, m: rank_of_best(s, g),
    "rank_of_best_avg": lambda s, g, m: rank_of_best(s, g, ties="average"),
    "rank_of_best_pess": lambda s, g, m: rank_of_best(s, g, ties="pessimistic"),
    "ndcg_rank": lambda s, g, m: ndcg_rank(s, g),
    "ndcg_perf": lambda s, g, m: ndcg_perf(s, m),
    "spearman": lambda s, g, m: spearman(s, g),
    "regret@1": lambda s, g, m: regret_at_k(s, m, 1),
    "regret@3": lambda s, g, m: regret_at_k(s, m, 3),
    "gain@1": lambda s, g, m: gain_at_k(s, g, 1),
    "gain@2": lambda s, g, m: gain_at_k(s, g, 2),
}


@given(target_data(), st.data())
def test_invariance_to_monotone_transforms(data, draw):
    gains, perf = data
    # integer scores (ties likely); both transforms keep order and ties exactly
    scores = np.array(
        draw.draw(st.lists(small_ints, min_size=gains.size, max_size=gains.size)), dtype=float
    )
    for transformed in (np.exp(scores / 3.0), 2.5 * scores - 4.0):
        for name, fn in RANK_BASED.items():
            assert same(fn(scores, gains, perf), fn(transformed, gains, perf)), name


# --------------------------------------------------------------------------------------------
# evaluate_target / random_target
# --------------------------------------------------------------------------------------------
def test_evaluate_target_keys_and_values():
    s, g, m = [0.4, 0.1, 0.9, 0.2], [1.0, 3.0, 2.0, -1.0], [71, 73, 72, 69]
    out = evaluate_target(s, g, m)
    assert list(out) == [
        "rank_of_best",
        "ndcg_rank",
        "ndcg_perf",
        "spearman",
        "pearson",
        "regret@1",
        "regret@3",
        "gain@1",
        "gain@3",
    ]
    assert out["rank_of_best"] == 4.0  # best idx1 has the lowest score
    assert out["gain@1"] == 2.0 and out["gain@3"] == 2.0
    assert out["regret@1"] == pytest.approx((73 - 72) / 73 * 100)
    no_perf = evaluate_target(s, g, ks=(2,))
    assert list(no_perf) == ["rank_of_best", "ndcg_rank", "spearman", "pearson", "gain@2"]
    assert list(random_target(g, m)) == list(out)
    assert list(random_target(g, ks=(2,))) == list(no_perf)
    with pytest.raises(ValueError, match="performance"):
        evaluate_target(s, g, [1, 2])
    with pytest.raises(ValueError, match="duplicates"):
        evaluate_target(s, g, ks=(1, 1))
