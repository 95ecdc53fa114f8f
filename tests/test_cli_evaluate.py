"""Tests for ``taskscout evaluate`` (typer CliRunner, small in-test CSV files)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from taskscout.cli import app
from taskscout.evaluation.longform import RANDOM_BASELINE

FIXTURE = Path(__file__).parent / "fixtures" / "taskweb_small"
runner = CliRunner()

GOLD = """target,source,gain,performance
t1,a,2.0,72.0
t1,b,-1.0,69.0
t1,c,0.5,70.5
t2,a,0.0,50.0
t2,b,3.0,53.0
t2,c,1.0,51.0
"""

# predictor p1 gets t1 right, p2 gets it reversed; read_scores_csv takes a file without a
# predictor column as one predictor named after the file
SCORES = """target,source,predictor,score
t1,a,p1,0.9
t1,b,p1,0.1
t1,c,p1,0.5
t2,a,p1,0.2
t2,b,p1,0.8
t2,c,p1,0.4
t1,a,p2,0.1
t1,b,p2,0.9
t1,c,p2,0.5
t2,a,p2,0.3
t2,b,p2,0.2
t2,c,p2,0.7
"""

MORE = """target,source,score
t1,a,3
t1,b,1
t1,c,2
t2,a,1
t2,b,2
t2,c,3
"""


def _flat(text: str) -> str:
    """Join words, undoing rich's line wrapping of long messages."""
    return " ".join(text.split())


@pytest.fixture
def files(tmp_path):
    paths = {}
    for name, text in {"gold.csv": GOLD, "scores.csv": SCORES, "cosine.csv": MORE}.items():
        path = tmp_path / name
        path.write_text(text)
        paths[name] = str(path)
    return paths


def test_table_lists_every_predictor_and_random(files):
    result = runner.invoke(
        app,
        [
            "evaluate",
            "--gold",
            files["gold.csv"],
            "--scores",
            files["scores.csv"],
            "--scores",
            files["cosine.csv"],
        ],
    )
    assert result.exit_code == 0, result.output
    for name in ("p1", "p2", "cosine", RANDOM_BASELINE):
        assert name in result.stdout
    assert "rank_of_best ↓" in result.stdout
    assert "regret@1 ↓" in result.stdout
    assert "ndcg_perf" in result.stdout and "gain@3" in result.stdout


def test_json_summary_and_per_target(files):
    result = runner.invoke(
        app,
        ["evaluate", "--gold", files["gold.csv"], "--scores", files["scores.csv"], "--json"],
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert set(payload["summary"]) == {"p1", "p2", RANDOM_BASELINE}
    assert payload["summary"]["p1"]["n_targets"] == 2
    assert payload["summary"]["p1"]["rank_of_best"] == 1.0  # p1 is perfect
    assert payload["summary"]["p1"]["ndcg_rank"] == pytest.approx(1.0)
    assert payload["summary"][RANDOM_BASELINE]["rank_of_best"] == 2.0  # (3 + 1) / 2
    rows = payload["per_target"]
    assert len(rows) == 6  # 3 predictors x 2 targets
    assert {(r["predictor"], r["target"]) for r in rows} >= {("p2", "t1"), (RANDOM_BASELINE, "t2")}
    p2_t1 = next(r for r in rows if r["predictor"] == "p2" and r["target"] == "t1")
    assert p2_t1["rank_of_best"] == 3.0 and p2_t1["n_sources"] == 3


def test_ks_and_per_target_table(files):
    result = runner.invoke(
        app,
        [
            "evaluate",
            "--gold",
            files["gold.csv"],
            "--scores",
            files["scores.csv"],
            "--ks",
            "2",
            "--per-target",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "gain@2" in result.stdout and "gain@3" not in result.stdout
    assert "per (predictor, target)" in result.stdout
    bad = runner.invoke(
        app, ["evaluate", "--gold", files["gold.csv"], "--scores", files["scores.csv"], "--ks", "0"]
    )
    assert bad.exit_code == 2


def test_missing_pair_exits_2_naming_it(files, tmp_path):
    lacking = tmp_path / "lacking.csv"
    lacking.write_text("\n".join(SCORES.splitlines()[:-1]) + "\n")  # drops p2's (t2, c)
    result = runner.invoke(app, ["evaluate", "--gold", files["gold.csv"], "--scores", str(lacking)])
    assert result.exit_code == 2
    message = _flat(result.output)
    assert "missing score" in message
    assert "predictor='p2', target='t2', source='c'" in message
    assert "Traceback" not in result.output


def test_duplicate_pair_exits_2(files):
    # the same file twice: every (target, source, predictor) repeats across files
    result = runner.invoke(
        app,
        [
            "evaluate",
            "--gold",
            files["gold.csv"],
            "--scores",
            files["scores.csv"],
            "--scores",
            files["scores.csv"],
        ],
    )
    assert result.exit_code == 2
    assert "duplicate" in _flat(result.output)


def test_duplicate_gold_pair_exits_2(files, tmp_path):
    gold = tmp_path / "dup_gold.csv"
    gold.write_text(GOLD + "t1,a,1.0,71.0\n")
    result = runner.invoke(app, ["evaluate", "--gold", str(gold), "--scores", files["scores.csv"]])
    assert result.exit_code == 2
    assert "duplicate" in _flat(result.output) and "t1" in result.output


def test_unknown_target_exits_2(files, tmp_path):
    extra = tmp_path / "extra.csv"
    extra.write_text(SCORES + "t9,a,p1,0.5\n")
    result = runner.invoke(app, ["evaluate", "--gold", files["gold.csv"], "--scores", str(extra)])
    assert result.exit_code == 2
    assert "t9" in _flat(result.output)


def test_wide_gold_matrix(tmp_path, files):
    # wide: rows = sources (+ the no-transfer row "base"), columns = targets
    wide = tmp_path / "wide.csv"
    wide.write_text("source,t1,t2\na,72,50\nb,69,53\nc,70.5,51\nbase,70,50\n")
    args = ["evaluate", "--gold", str(wide), "--scores", files["scores.csv"], "--json"]
    result = runner.invoke(app, [*args, "--no-transfer-row", "base"])
    assert result.exit_code == 0, result.output
    wide_summary = json.loads(result.stdout)["summary"]
    long_result = runner.invoke(
        app, ["evaluate", "--gold", files["gold.csv"], "--scores", files["scores.csv"], "--json"]
    )
    long_summary = json.loads(long_result.stdout)["summary"]
    for predictor in ("p1", "p2", RANDOM_BASELINE):
        for key, value in long_summary[predictor].items():
            assert wide_summary[predictor][key] == pytest.approx(value), (predictor, key)
    # without naming the row, "base" is not a no-transfer alias
    assert runner.invoke(app, args).exit_code == 2


def test_skipped_target_warning(tmp_path, files):
    gold = tmp_path / "gold_small.csv"
    gold.write_text(GOLD + "t3,a,1.0,60.0\n")
    scores = tmp_path / "scores_small.csv"
    scores.write_text(
        "target,source,score\nt1,a,1\nt1,b,2\nt1,c,3\nt2,a,1\nt2,b,2\nt2,c,3\nt3,a,1\n"
    )
    result = runner.invoke(app, ["evaluate", "--gold", str(gold), "--scores", str(scores)])
    assert result.exit_code == 0, result.output
    assert "warning: skipping 1 target" in _flat(result.output) and "t3" in result.output
    assert "skipping" not in result.stdout  # warnings go to stderr


def test_gold_source_is_required_once(files):
    result = runner.invoke(app, ["evaluate", "--scores", files["scores.csv"]])
    assert result.exit_code == 2
    assert "--gold" in _flat(result.output)
    result = runner.invoke(app, ["evaluate", "--gold", files["gold.csv"]])
    assert result.exit_code == 2
    assert "no scores" in _flat(result.output)


def test_taskweb_gold_and_predictors():
    args = [
        "evaluate",
        "--taskweb-pairs",
        str(FIXTURE / "pairs.csv"),
        "--setting",
        "finetune:roberta",
        "--taskweb-predictors",
        str(FIXTURE / "released_predictor_scores.csv"),
    ]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert set(payload["summary"]) == {"taskshop_roe", "llm_similarity_davinci003", RANDOM_BASELINE}
    assert payload["summary"][RANDOM_BASELINE]["n_targets"] == 3
    assert any("left out" in w for w in payload["warnings"])  # the story_cloze rows
    table = runner.invoke(app, args)
    assert (
        table.exit_code == 0 and "taskshop_roe" in table.stdout and RANDOM_BASELINE in table.stdout
    )
    sub = runner.invoke(app, [*args, "--tasks", "rte,cosmos_qa,squad_v2", "--json"])
    assert sub.exit_code == 0, sub.output
    rows = json.loads(sub.stdout)["per_target"]
    assert {r["target"] for r in rows} == {"rte", "cosmos_qa"}
    bad = runner.invoke(app, [*args[:3], "--setting", "nope", "--taskweb-predictors", args[-1]])
    assert bad.exit_code == 2
    assert "unknown setting" in _flat(bad.output) and "ALL(avg)" in bad.output
