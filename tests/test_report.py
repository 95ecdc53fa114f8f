"""The HTML report builder, its figures and the bootstrap intervals (no browser: see
test_report_browser.py)."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from taskscout.report import PoolReportInputs, Report, pool_report
from taskscout.report.figures import pca_2d
from taskscout.report.intervals import bootstrap_summary, paired_difference

TASKS = [f"t{i}" for i in range(6)]


def full_inputs(seed: int = 0) -> PoolReportInputs:
    """Every piece of the pool report, synthetic."""
    rng = np.random.default_rng(seed)
    gold = pd.DataFrame(
        [
            (t, s, float(rng.normal()), 100 + float(rng.normal()))
            for t in TASKS
            for s in TASKS
            if s != t
        ],
        columns=["target", "source", "gain", "performance"],
    )
    measured = gold[["target", "source", "gain"]].assign(gain_std=0.5, n_seeds=2)
    scores = pd.concat(
        [
            gold[["target", "source"]].assign(predictor=p, score=rng.normal(size=len(gold)))
            for p in ("scorer", "datasize")
        ]
    )
    ranking = pd.DataFrame(
        {"source": TASKS[1:], "score": [3.0, 2, 1, 0, -1], "std": 0.5, "rank": range(1, 6)}
    )
    return PoolReportInputs(
        "synthetic",
        target="t0",
        predictor="scorer",
        ranking=ranking,
        gold=gold,
        measured=measured,
        vectors={t: rng.normal(size=8) for t in TASKS},
        families={t: f"f{i % 2}" for i, t in enumerate(TASKS)},
        scores=scores,
        main_predictor="scorer",
    )


FIGURES = [
    "fig-ranking",
    "fig-map",
    "fig-heatmap-gold",
    "fig-heatmap-measured",
    "fig-eval-spearman",
    "fig-scatter",
]


def test_full_report_is_self_contained_with_every_figure(tmp_path):
    rep = pool_report(full_inputs())
    assert rep.figure_ids == FIGURES
    assert rep.notes == []
    page = rep.write(tmp_path / "r.html").read_text()
    for fid in FIGURES:
        assert page.count(f'<figure id="{fid}"><svg') == 1
    assert "<script" not in page
    assert "default-src 'none'" in page  # the page may fetch nothing
    # no reference to anything outside the page (svg namespaces are names, not fetches)
    assert not re.search(r'(src|href)="(https?:|//)', page)
    assert "<?xml" not in page  # svg prologs stripped before inlining
    # the gain std of the measured heatmap is written in its cells
    assert "±0.5" in page


def test_same_input_same_bytes():
    assert pool_report(full_inputs()).to_html() == pool_report(full_inputs()).to_html()


def test_missing_pieces_are_omitted_with_a_sentence():
    rep = pool_report(PoolReportInputs("empty"))
    assert rep.figure_ids == []
    assert len(rep.notes) == 4
    assert any("No ranking" in n for n in rep.notes)
    assert any("heatmap" in n for n in rep.notes)
    inp = full_inputs()
    inp.gold = inp.gold[inp.gold["target"] != "t0"]  # no gold for this target
    inp.measured = None
    rep = pool_report(inp)
    assert "fig-heatmap-measured" not in rep.figure_ids
    assert any("No measured gain is known for target t0" in n for n in rep.notes)


def test_html_escapes_text_and_checks_figure_ids():
    rep = Report("<b>title</b>").paragraph("a < b & `code`")
    page = rep.to_html()
    assert "&lt;b&gt;title&lt;/b&gt;" in page and "a &lt; b &amp; <code>code</code>" in page
    with pytest.raises(ValueError, match="figure id"):
        rep.figure("bad id", "<svg></svg>", "x")
    rep.figure("ok", "<svg></svg>", "x")
    with pytest.raises(ValueError, match="duplicate"):
        rep.figure("ok", "<svg></svg>", "x")
    with pytest.raises(ValueError, match="not an SVG"):
        rep.figure("other", "<div></div>", "x")


def test_pca_recovers_the_main_axis():
    t = np.linspace(-1, 1, 7)
    x = np.outer(t, [3.0, 4.0, 0.0]) + 5.0  # points on a line, shifted
    coords = pca_2d(x)
    assert np.allclose(np.abs(coords[:, 0]), np.abs(5 * t))
    assert np.allclose(coords[:, 1], 0, atol=1e-9)
    with pytest.raises(ValueError):
        pca_2d(np.ones((1, 3)))


def _per_target(values: dict[str, list[float]], metric: str = "spearman") -> pd.DataFrame:
    rows = [
        {"predictor": p, "target": f"t{i}", metric: v}
        for p, vs in values.items()
        for i, v in enumerate(vs)
    ]
    return pd.DataFrame(rows)


def test_bootstrap_interval_contains_mean_and_collapses_when_constant():
    rng = np.random.default_rng(1)
    per = _per_target({"a": list(rng.normal(0.3, 0.2, size=12)), "c": [0.5] * 12})
    s = bootstrap_summary(per).set_index("predictor")
    assert s.loc["a", "spearman lo"] < s.loc["a", "spearman"] < s.loc["a", "spearman hi"]
    assert s.loc["c", "spearman lo"] == s.loc["c", "spearman hi"] == 0.5
    assert s.loc["a", "n_targets"] == 12
    # a wider level gives a wider interval
    w = bootstrap_summary(per, level=0.99).set_index("predictor")
    assert w.loc["a", "spearman lo"] <= s.loc["a", "spearman lo"]
    with pytest.raises(ValueError):
        bootstrap_summary(per, level=1.5)


def test_paired_difference_verdicts_respect_direction():
    base = list(np.linspace(0, 1, 10))
    per = _per_target({"a": [v + 1 for v in base], "b": base, "c": base[::-1]})
    assert paired_difference(per, "a", "b", "spearman")["verdict"] == "better"
    assert paired_difference(per, "b", "a", "spearman")["verdict"] == "worse"
    assert paired_difference(per, "c", "b", "spearman")["verdict"] == "no difference shown"
    ranks = _per_target({"a": [1.0] * 10, "b": [3.0] * 10}, metric="rank_of_best")
    assert paired_difference(ranks, "a", "b", "rank_of_best")["verdict"] == "better"
