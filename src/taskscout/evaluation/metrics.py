"""Transfer-prediction metrics (DESIGN.md section 5), in the style of ``sklearn.metrics``.

Every metric is a pure function over the candidate sources of **one** target: 1-D arrays in
(``scores`` = predicted transferability p(s), higher = predicted more helpful; ``gains`` = true
transfer gains g(s); ``performance`` = absolute target scores after transfer M(s), in metric
points), a float out. The predicted ranking orders sources by descending score.

Conventions shared by all metrics
---------------------------------
* Inputs are converted with ``numpy.asarray(dtype=float)``; they must be 1-D, of equal length,
  hold at least one source and be finite (NaN or +-inf raise ``ValueError`` naming the argument).
* Ties are exact float equality.
* **Ties in scores** (a predictor that cannot separate some sources): every rank metric
  (``rank_of_best``, ``ndcg_*``, ``regret_at_k``, ``gain_at_k``) returns its **exact
  expectation over uniformly random tie-breaking** inside each group of tied scores, so a
  constant predictor scores exactly the random baseline (``rank_of_best`` also offers
  ``ties="optimistic"`` / ``"pessimistic"``). ``spearman`` uses average ranks. DESIGN's
  "the best position among the tied" is the rule for several *best sources* (ties in gains).
* **Random baseline**: :func:`random_expectation` gives the expectation of each metric over
  uniformly random rankings, exactly (closed forms for every built-in metric).

Per-target helpers: :func:`evaluate_target` (every metric for one target) and
:func:`random_target` (their exact random-ranking expectations). Long-form tables over many
targets and predictors are :mod:`taskscout.evaluation.longform`; reading gold/score files is
:mod:`taskscout.evaluation.files`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Literal

import numpy as np
from scipy import stats

__all__ = [
    "HIGHER_IS_BETTER",
    "METRICS",
    "METRIC_INPUT",
    "check_ks",
    "evaluate_target",
    "gain_at_k",
    "higher_is_better",
    "metric_keys",
    "ndcg_perf",
    "ndcg_rank",
    "parse_metric_key",
    "pearson",
    "random_expectation",
    "random_target",
    "rank_of_best",
    "regret_at_k",
    "spearman",
]

Ties = Literal["optimistic", "average", "pessimistic"]

_MIN_DRAWS = 1000


# --------------------------------------------------------------------------------------------
# validation and shared machinery
# --------------------------------------------------------------------------------------------
def _as_1d(x, name: str) -> np.ndarray:
    try:
        arr = np.asarray(x, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a 1-D array of numbers ({exc})") from exc
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got an array of shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty: at least one source is needed")
    bad = ~np.isfinite(arr)
    if bad.any():
        where = np.flatnonzero(bad)[:5].tolist()
        kind = "NaN" if np.isnan(arr[bad]).any() else "infinite values"
        raise ValueError(
            f"{name} contains {kind} (at positions {where}); all values must be finite"
        )
    return arr


def _check_pair(scores, values, values_name: str) -> tuple[np.ndarray, np.ndarray]:
    s = _as_1d(scores, "scores")
    v = _as_1d(values, values_name)
    if s.shape != v.shape:
        raise ValueError(
            f"scores and {values_name} must have the same length, got {s.size} and {v.size}"
        )
    return s, v


def _check_k(k) -> int:
    if isinstance(k, bool) or not isinstance(k, int | np.integer):
        raise ValueError(f"k must be an integer >= 1, got {k!r}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    return int(k)


def _score_groups(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Groups of equal score in descending score order.

    Returns ``(gid, sizes, starts)``: ``gid[i]`` is the group of source i (0 = highest score),
    ``sizes[g]`` its size and ``starts[g]`` the 0-based predicted position of its first member.
    """
    _, gid = np.unique(-scores, return_inverse=True)
    gid = gid.reshape(-1)
    sizes = np.bincount(gid)
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    return gid, sizes, starts


def _discounts(n: int) -> np.ndarray:
    """1 / log2(i + 2) for 0-based positions i = 0..n-1."""
    return 1.0 / np.log2(np.arange(n, dtype=float) + 2.0)


def _expected_dcg(scores: np.ndarray, gain_vec: np.ndarray) -> float:
    """DCG of the predicted ranking; inside a group of tied scores every position gets the
    group's mean gain, which is the exact expectation of DCG over random tie-breaking."""
    gid, sizes, starts = _score_groups(scores)
    group_mean = np.bincount(gid, weights=gain_vec) / sizes
    group_disc = np.add.reduceat(_discounts(scores.size), starts)
    return float(np.dot(group_mean, group_disc))


def _ideal_dcg(gain_vec: np.ndarray) -> float:
    return float(np.dot(np.sort(gain_vec)[::-1], _discounts(gain_vec.size)))


def _exp_gains(x: np.ndarray) -> np.ndarray:
    """2**x - 1, scaled by 2**-max(x) when max(x) is large (NDCG is scale invariant).

    For max(x) <= 512 the gains are exact (``expm1``, no scaling); above, every gain is divided
    by 2**max(x), so the largest becomes 1 - 2**-max(x) and nothing overflows.
    """
    c = float(x.max())
    if c <= 512.0:
        return np.expm1(x * math.log(2.0))
    return np.exp2(x - c) - np.exp2(-c)


def _ndcg_from_gain_vec(scores: np.ndarray, gain_vec: np.ndarray, what: str) -> float:
    ideal = _ideal_dcg(gain_vec)
    if not ideal > 0.0:
        raise ValueError(
            f"{what} is undefined: the ideal DCG is {ideal:g} <= 0 "
            "(happens only when performance values are <= 0)"
        )
    return _expected_dcg(scores, gain_vec) / ideal


def _rank_relevance(gains: np.ndarray) -> np.ndarray:
    """TaskWeb relevance N - r, r = 0-based gold rank; tied gains share the first rank, so
    relevance(i) = #{j : g_j <= g_i}."""
    return np.searchsorted(np.sort(gains), gains, side="right").astype(float)


def _expected_topk_max(scores: np.ndarray, values: np.ndarray, k: int) -> float:
    """E[max of ``values`` over the predicted top-k], random tie-breaking at the k boundary.

    Groups entirely inside the top k contribute their maximum F deterministically; from the
    group straddling position k a uniformly random subset of j = k - start members enters.
    With that group's values sorted v_(1) >= ... >= v_(e), the subset's maximum is v_(i)
    with the hypergeometric probability C(e - i, j - 1) / C(e, j) (v_(i) drawn, the i - 1
    larger ones not), so the result is sum_i C(e - i, j - 1) / C(e, j) * max(F, v_(i)).
    """
    n = scores.size
    k = min(k, n)
    gid, sizes, starts = _score_groups(scores)
    ends = starts + sizes
    full = ends <= k
    inside = full[gid]
    f_max = float(values[inside].max()) if inside.any() else -math.inf
    straddling = np.flatnonzero((starts < k) & (ends > k))
    if straddling.size == 0:
        return f_max
    g = int(straddling[0])
    vals = np.sort(values[gid == g])[::-1]
    e = vals.size
    j = k - int(starts[g])
    # p_1 = j / e, p_{i+1} = p_i * (e - i - j + 1) / (e - i)  (stable cumulative product)
    i = np.arange(1, e, dtype=float)
    ratios = np.clip((e - i - j + 1.0) / (e - i), 0.0, None)
    probs = (j / e) * np.concatenate(([1.0], np.cumprod(ratios)))
    return float(np.dot(probs, np.maximum(f_max, vals)))


# --------------------------------------------------------------------------------------------
# metrics
# --------------------------------------------------------------------------------------------
def rank_of_best(scores, gains, *, ties: Ties = "average") -> float:
    """1-based position of the best source (argmax of ``gains``) in the predicted ranking.

    Sources are ranked by descending ``scores``. Range [1, N]; lower is better; perfect = 1;
    uniformly random ranking: (N + 1) / (m + 1) with m best sources.

    * Several best sources (ties in ``gains``): the best (smallest) position among them.
    * Ties in ``scores``: only the first score group (in descending score) that holds a best
      source matters. With h sources scored strictly higher, e sources in that group and b of
      them best, the position is

      - ``ties="average"`` (default): h + (e + 1) / (b + 1), the expectation over random
        tie-breaking (a constant predictor gets the random-ranking value);
      - ``ties="optimistic"``: h + 1 (rewards ties: a constant predictor would get 1);
      - ``ties="pessimistic"``: h + e - b + 1.

    * Single source: 1. Constant scores: (N + 1) / (m + 1) (average, the random-ranking
      expectation), 1 (optimistic) or N - m + 1 (pessimistic), m = number of best sources.
    """
    s, g = _check_pair(scores, gains, "gains")
    if ties not in ("optimistic", "average", "pessimistic"):
        raise ValueError(f"ties must be 'optimistic', 'average' or 'pessimistic', got {ties!r}")
    best = g == g.max()
    gid, sizes, starts = _score_groups(s)
    grp = int(gid[best].min())
    h, e = int(starts[grp]), int(sizes[grp])
    b = int(np.count_nonzero(best & (gid == grp)))
    if ties == "optimistic":
        return float(h + 1)
    if ties == "pessimistic":
        return float(h + e - b + 1)
    return h + (e + 1) / (b + 1)


def ndcg_rank(scores, gains) -> float:
    """NDCG with TaskWeb's rank-based relevance (Kim et al. 2023).

    Sort the sources by gold ``gains`` (descending); the source at gold rank r (0-based) among
    N has relevance N - r and gain 2**(N - r) - 1. DCG = sum_i gain(source at predicted
    position i) / log2(i + 2) (i 0-based); NDCG = DCG / DCG(ideal ordering). Range (0, 1];
    higher is better; perfect = 1.

    * Ties in ``gains``: tied sources share the gold rank of the first of them (competition
      ranking "1224"), so relevance(s) = #{s' : g(s') <= g(s)}; constant gains give NDCG 1.
    * Ties in ``scores``: the exact expectation over random tie-breaking, computed in closed
      form: each position occupied by a tied group receives the group's mean gain (linearity
      of expectation). Constant scores therefore give the random-ranking expectation.
    * Single source: 1. Gains are scaled by 2**-N for N > 512 (no overflow; NDCG unchanged).
    """
    s, g = _check_pair(scores, gains, "gains")
    return _ndcg_from_gain_vec(s, _exp_gains(_rank_relevance(g)), "ndcg_rank")


def ndcg_perf(scores, performance) -> float:
    """NDCG with performance-based relevance (Schulte et al. 2024).

    relevance(s) = M(s) / 100 with M in metric points (x100), gain 2**(100 * relevance) - 1
    = 2**M(s) - 1; same log2(i + 2) discount and ideal-ordering normalisation as
    :func:`ndcg_rank`. Range (0, 1] when all M >= 0 (higher is better; perfect = 1); it can be
    negative when some M < 0. ``ValueError`` when the ideal DCG is <= 0 (e.g. all M <= 0).

    * Numerically safe: for max M > 512 all gains are divided by 2**max M (NDCG is scale
      invariant), so M of 1000+ points does not overflow.
    * Ties in ``scores``: exact expectation over random tie-breaking (group mean gain per
      position), as in :func:`ndcg_rank`. Ties in ``performance`` need no rule (equal gains).
    * Single source: 1 (if M > 0).
    """
    s, m = _check_pair(scores, performance, "performance")
    return _ndcg_from_gain_vec(s, _exp_gains(m), "ndcg_perf")


def _constant(x: np.ndarray) -> bool:
    return bool(np.all(x == x[0]))


def spearman(scores, gains) -> float:
    """Spearman rank correlation between ``scores`` and ``gains`` (``scipy.stats.spearmanr``).

    Range [-1, 1]; higher is better. Ties get average ranks (so ties in either input are
    handled by the usual tie-corrected coefficient). Returns NaN, without a warning, when
    there are fewer than 2 sources or either input is constant (correlation undefined);
    averages over targets should skip those NaNs and report how many there were.
    """
    s, g = _check_pair(scores, gains, "gains")
    if s.size < 2 or _constant(s) or _constant(g):
        return math.nan
    return float(np.clip(stats.spearmanr(s, g)[0], -1.0, 1.0))


def pearson(scores, gains) -> float:
    """Pearson correlation between ``scores`` and ``gains`` (``scipy.stats.pearsonr``).

    Range [-1, 1]; higher is better. Unlike every other metric here it depends on the score
    values, not only on the ranking. NaN (no warning) for fewer than 2 sources or a constant
    input, as :func:`spearman`.
    """
    s, g = _check_pair(scores, gains, "gains")
    if s.size < 2 or _constant(s) or _constant(g):
        return math.nan
    return float(np.clip(stats.pearsonr(s, g)[0], -1.0, 1.0))


def regret_at_k(scores, performance, k: int = 1) -> float:
    """Relative regret of the best source among the predicted top k, in percent.

    regret@k = (max_s M(s) - max_{s in top-k(p)} M(s)) / max_s M(s) * 100. Range
    [0, 100 * (1 - min M / max M)] (within [0, 100] for M >= 0); lower is better; perfect = 0.
    ``max M`` must be > 0 (``ValueError`` otherwise).

    * Ties in ``scores`` at the k boundary: exact expectation over random tie-breaking (a
      uniformly random subset of the straddling group fills the remaining slots; closed
      form over its order statistics). Ties fully inside or outside the top k do not matter.
    * k >= N: all sources are chosen, regret 0. Single source: 0. Constant scores: the
      random-ranking expectation.
    """
    s, m = _check_pair(scores, performance, "performance")
    k = _check_k(k)
    best = float(m.max())
    if not best > 0.0:
        raise ValueError(f"regret_at_k needs max performance > 0, got {best:g}")
    return (best - _expected_topk_max(s, m, k)) / best * 100.0


def gain_at_k(scores, gains, k: int = 1) -> float:
    """Best true gain among the predicted top k: max_{s in top-k(p)} g(s).

    Same units as ``gains``; range [min g, max g]; higher is better; perfect = max g. k = 1
    is the gain of the chosen source. Ties in ``scores`` at the k boundary: exact expectation
    over random tie-breaking (as :func:`regret_at_k`). k >= N gives max g; a single source
    gives its gain. Constant scores: the random-ranking expectation.
    """
    s, g = _check_pair(scores, gains, "gains")
    k = _check_k(k)
    return _expected_topk_max(s, g, k)


# --------------------------------------------------------------------------------------------
# registry
# --------------------------------------------------------------------------------------------
METRICS: dict[str, Callable[..., float]] = {
    "rank_of_best": rank_of_best,
    "ndcg_rank": ndcg_rank,
    "ndcg_perf": ndcg_perf,
    "spearman": spearman,
    "pearson": pearson,
    "regret_at_k": regret_at_k,
    "gain_at_k": gain_at_k,
}
"""Metric name -> function ``f(scores, values[, k])``; ``values`` per :data:`METRIC_INPUT`."""

METRIC_INPUT: dict[str, str] = {
    "rank_of_best": "gains",
    "ndcg_rank": "gains",
    "ndcg_perf": "performance",
    "spearman": "gains",
    "pearson": "gains",
    "regret_at_k": "performance",
    "gain_at_k": "gains",
}
"""Which ground truth each metric compares the scores with: ``gains`` or ``performance``."""

HIGHER_IS_BETTER: dict[str, bool] = {
    "rank_of_best": False,
    "ndcg_rank": True,
    "ndcg_perf": True,
    "spearman": True,
    "pearson": True,
    "regret_at_k": False,
    "gain_at_k": True,
    "regret": False,
    "gain": True,
}
"""Direction of each metric, keyed by metric name (and by the ``regret``/``gain`` prefixes of
the ``regret@k``/``gain@k`` table keys; see :func:`higher_is_better`)."""

_AT_K = re.compile(r"^(regret|gain)@(\d+)$")


def parse_metric_key(key: str) -> tuple[str, int | None]:
    """Table key -> (metric name, k): ``"regret@3"`` -> ``("regret_at_k", 3)``,
    ``"spearman"`` -> ``("spearman", None)``. ``ValueError`` for unknown keys."""
    if key in METRICS:
        return key, (1 if key in ("regret_at_k", "gain_at_k") else None)
    match = _AT_K.match(key)
    if match:
        return f"{match.group(1)}_at_k", _check_k(int(match.group(2)))
    raise ValueError(f"unknown metric {key!r}; known: {sorted(METRICS)} and regret@k, gain@k")


def higher_is_better(key: str) -> bool:
    """Direction of a metric name or table key (``"regret@3"`` -> False)."""
    return HIGHER_IS_BETTER[parse_metric_key(key)[0]]


# --------------------------------------------------------------------------------------------
# random-ranking expectations
# --------------------------------------------------------------------------------------------
def random_expectation(
    metric: str | Callable[..., float],
    gains=None,
    performance=None,
    k: int = 1,
    n_draws: int = 10000,
    seed: int = 0,
    method: Literal["exact", "monte_carlo"] = "exact",
) -> float:
    """Expectation of ``metric`` when the ranking is a uniformly random permutation.

    ``metric`` is a name of :data:`METRICS` or a table key such as ``"regret@3"`` (which
    overrides ``k``); it reads ``gains`` or ``performance`` per :data:`METRIC_INPUT`. All
    built-in metrics have exact closed forms (``method="exact"``, the default):

    * rank_of_best: (N + 1) / (m + 1) with m sources tied for the best gain (expected minimum
      position of m random slots among N; (N + 1) / 2 for a unique best);
    * ndcg_rank, ndcg_perf: E[DCG] = mean(gain vector) * sum_i 1 / log2(i + 2) by linearity,
      divided by the ideal DCG;
    * gain_at_k, regret_at_k: order statistics of a uniformly random k-subset: with values
      sorted v_(1) >= ... >= v_(N), P(max = v_(i)) = C(N - i, k - 1) / C(N, k);
    * spearman, pearson: 0 by symmetry (a random permutation of fixed rank positions has
      zero expected covariance with any fixed vector, and both standard deviations are
      permutation invariant); NaN when N < 2 or the gains are constant (undefined for every
      ranking). For pearson the random "scores" are taken to be the ranking positions.

    ``method="monte_carlo"`` (also used when ``metric`` is a callable ``f(scores, values)``;
    ``values`` = ``gains`` if given, else ``performance``) averages over ``n_draws`` >= 1000
    random permutations drawn from ``numpy.random.default_rng(seed)``; NaN draws propagate.
    """
    if method not in ("exact", "monte_carlo"):
        raise ValueError(f"method must be 'exact' or 'monte_carlo', got {method!r}")
    if callable(metric):
        values = gains if gains is not None else performance
        if values is None:
            raise ValueError("random_expectation needs gains or performance")
        v = _as_1d(values, "gains" if gains is not None else "performance")
        return _monte_carlo(metric, v, {}, n_draws, seed)

    name, key_k = parse_metric_key(metric)
    if key_k is not None and not _AT_K.match(metric):
        key_k = _check_k(k)
    needs = METRIC_INPUT[name]
    values = gains if needs == "gains" else performance
    if values is None:
        raise ValueError(f"random_expectation({metric!r}) needs {needs}")
    v = _as_1d(values, needs)
    kwargs = {"k": key_k} if key_k is not None else {}

    if method == "monte_carlo":
        return _monte_carlo(METRICS[name], v, kwargs, n_draws, seed)

    n = v.size
    if name == "rank_of_best":
        m = int(np.count_nonzero(v == v.max()))
        return (n + 1) / (m + 1)
    if name in ("spearman", "pearson"):
        return math.nan if n < 2 or _constant(v) else 0.0
    if name in ("ndcg_rank", "ndcg_perf"):
        gain_vec = _exp_gains(_rank_relevance(v) if name == "ndcg_rank" else v)
        ideal = _ideal_dcg(gain_vec)
        if not ideal > 0.0:
            raise ValueError(f"{name} is undefined: the ideal DCG is {ideal:g} <= 0")
        return float(gain_vec.mean() * _discounts(n).sum() / ideal)
    # gain_at_k / regret_at_k: one tie group holding every source = a random k-subset
    expected_max = _expected_topk_max(np.zeros(n), v, kwargs["k"])
    if name == "gain_at_k":
        return expected_max
    best = float(v.max())
    if not best > 0.0:
        raise ValueError(f"regret_at_k needs max performance > 0, got {best:g}")
    return (best - expected_max) / best * 100.0


def _monte_carlo(fn, values: np.ndarray, kwargs: dict, n_draws: int, seed: int) -> float:
    if isinstance(n_draws, bool) or not isinstance(n_draws, int | np.integer):
        raise ValueError(f"n_draws must be an integer >= {_MIN_DRAWS}, got {n_draws!r}")
    if n_draws < _MIN_DRAWS:
        raise ValueError(f"n_draws must be >= {_MIN_DRAWS}, got {n_draws}")
    rng = np.random.default_rng(seed)
    n = values.size
    draws = [fn(rng.permutation(n).astype(float), values, **kwargs) for _ in range(n_draws)]
    return float(np.mean(draws))


# --------------------------------------------------------------------------------------------
# one target, all metrics
# --------------------------------------------------------------------------------------------
def check_ks(ks: Iterable[int]) -> tuple[int, ...]:
    """The k values of ``regret@k``/``gain@k`` as a tuple of ints; ``ValueError`` unless every
    k is an integer >= 1 and none repeats."""
    out = tuple(_check_k(k) for k in ks)
    if len(set(out)) != len(out):
        raise ValueError(f"ks has duplicates: {out}")
    return out


def metric_keys(has_performance: bool, ks: Sequence[int]) -> list[str]:
    """The table keys of :func:`evaluate_target`, in order: ``rank_of_best, ndcg_rank,
    [ndcg_perf], spearman, pearson, [regret@k...], gain@k...`` (bracketed: only with
    performance)."""
    keys = ["rank_of_best", "ndcg_rank"]
    if has_performance:
        keys.append("ndcg_perf")
    keys += ["spearman", "pearson"]
    if has_performance:
        keys += [f"regret@{k}" for k in ks]
    keys += [f"gain@{k}" for k in ks]
    return keys


def evaluate_target(scores, gains, performance=None, ks: Iterable[int] = (1, 3)) -> dict:
    """All applicable metrics for one target.

    Keys, in order: ``rank_of_best`` (score ties: expectation over tie-breaking),
    ``ndcg_rank``, [``ndcg_perf``], ``spearman``, ``pearson`` (both against ``gains``),
    [``regret@k`` for k in ``ks``], ``gain@k`` for k in ``ks``. Bracketed keys only when
    ``performance`` is given.
    """
    ks = check_ks(ks)
    s, g = _check_pair(scores, gains, "gains")
    out: dict[str, float] = {
        "rank_of_best": rank_of_best(s, g),
        "ndcg_rank": ndcg_rank(s, g),
    }
    m = None
    if performance is not None:
        _, m = _check_pair(s, performance, "performance")
        out["ndcg_perf"] = ndcg_perf(s, m)
    out["spearman"] = spearman(s, g)
    out["pearson"] = pearson(s, g)
    if m is not None:
        for k in ks:
            out[f"regret@{k}"] = regret_at_k(s, m, k)
    for k in ks:
        out[f"gain@{k}"] = gain_at_k(s, g, k)
    return out


def random_target(gains, performance=None, ks: Iterable[int] = (1, 3)) -> dict:
    """The random-ranking expectation (:func:`random_expectation`, exact) of every key of
    :func:`evaluate_target`, same keys and order."""
    ks = check_ks(ks)
    g = _as_1d(gains, "gains")
    m = None
    if performance is not None:
        _, m = _check_pair(g, performance, "performance")
    return {
        key: random_expectation(key, gains=g, performance=m)
        for key in metric_keys(m is not None, ks)
    }
