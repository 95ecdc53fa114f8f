"""Tests for taskscout.evaluation.files (gold and scores CSV readers)."""

from __future__ import annotations

import contextlib
import string
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taskscout.evaluation.files import (
    GOLD_COLUMNS,
    SCORE_COLUMNS,
    EvaluationInputError,
    read_gold_csv,
    read_scores_csv,
)
from taskscout.evaluation.longform import evaluate_long


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
        flat = 0.0 if r.target == "t2" else {"a": 0.3, "b": 0.1, "c": 0.4, "d": 0.2}[r.source]
        rows.append({"target": r.target, "source": r.source, "predictor": "flat", "score": flat})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# CSV readers
# --------------------------------------------------------------------------------------------
def test_read_gold_csv_long(tmp_path):
    path = tmp_path / "gold.csv"
    path.write_text("target,source,gain,performance,note\nt1,a,1.5,71.5,x\nt1,b,-0.5,69.5,y\n")
    df = read_gold_csv(path)
    assert list(df.columns) == ["target", "source", "gain", "performance"]
    assert df["gain"].tolist() == [1.5, -0.5]
    path.write_text("target,source,gain\n1,2,0.1\n1,3,0.2\n")
    df = read_gold_csv(path)
    assert df["target"].tolist() == ["1", "1"]  # names stay strings
    path.write_text("target,source,gain\nt1,a,0.1\nt1,b,\n")
    with pytest.raises(ValueError, match=r"gold\.csv.*gain.*missing/NaN.*\[3\]"):
        read_gold_csv(path)
    path.write_text("target,source,gain\nt1,a,0.1\nt1,b,abc\n")
    with pytest.raises(ValueError, match=r"gold\.csv.*not a number.*'abc'"):
        read_gold_csv(path)
    path.write_text("target,source,gain\nt1,a,0.1\nt1,a,0.2\n")
    with pytest.raises(ValueError, match=r"gold\.csv.*duplicate"):
        read_gold_csv(path)


def test_read_gold_csv_wide(tmp_path):
    path = tmp_path / "matrix.csv"
    # cells: target score after transfer from the row's source; the diagonal is empty
    path.write_text("source,t1,t2\nnone,70.0,50.0\nt1,,53.0\nt2,68.0,\nc,72.5,49.0\n")
    df = read_gold_csv(path)
    df = df.set_index(["target", "source"])
    assert sorted(df.index) == [("t1", "c"), ("t1", "t2"), ("t2", "c"), ("t2", "t1")]
    assert df.loc[("t1", "t2"), "gain"] == pytest.approx(-2.0)
    assert df.loc[("t1", "c"), "gain"] == pytest.approx(2.5)
    assert df.loc[("t2", "t1"), "gain"] == pytest.approx(3.0)
    assert df.loc[("t2", "c"), "performance"] == pytest.approx(49.0)
    # aliases and a custom name
    path.write_text("task,t1\nBaseline,10\na,12\n")
    assert read_gold_csv(path)["gain"].tolist() == [2.0]
    path.write_text("task,t1\nscratch,10\na,12\n")
    assert read_gold_csv(path, no_transfer_row="scratch")["gain"].tolist() == [2.0]
    with pytest.raises(ValueError, match=r"matrix\.csv.*no-transfer row"):
        read_gold_csv(path)
    # malformed input
    path.write_text("source,t1\nnone,\na,12\n")
    with pytest.raises(ValueError, match=r"matrix\.csv.*'t1' has no no-transfer value"):
        read_gold_csv(path)
    path.write_text("source,t1\nnone,1\na,x1\n")
    with pytest.raises(ValueError, match=r"matrix\.csv.*not a number"):
        read_gold_csv(path)
    path.write_text("source,t1,t1\nnone,1,2\na,3,4\n")
    with pytest.raises(ValueError, match=r"matrix\.csv.*duplicate column"):
        read_gold_csv(path)
    path.write_text("")
    with pytest.raises(ValueError, match=r"matrix\.csv.*empty"):
        read_gold_csv(path)


def test_read_scores_csv_and_roundtrip(tmp_path):
    gold = _gold_frame()
    scores = _scores_frame(gold)
    gold.to_csv(tmp_path / "gold.csv", index=False)
    scores.to_csv(tmp_path / "scores.csv", index=False)
    per_a, sum_a = evaluate_long(
        read_gold_csv(tmp_path / "gold.csv"), read_scores_csv(tmp_path / "scores.csv")
    )
    per_b, sum_b = evaluate_long(gold, scores)
    pd.testing.assert_frame_equal(sum_a, sum_b)
    # no predictor column: the file stem names the predictor
    one = scores[scores.predictor == "oracle"].drop(columns="predictor")
    one.to_csv(tmp_path / "my_pred.csv", index=False)
    assert set(read_scores_csv(tmp_path / "my_pred.csv")["predictor"]) == {"my_pred"}
    (tmp_path / "bad.csv").write_text("target,source,predictor,score\nt,a,p,\n")
    with pytest.raises(ValueError, match=r"bad\.csv.*score.*missing"):
        read_scores_csv(tmp_path / "bad.csv")
    (tmp_path / "bad.csv").write_text("target,predictor,score\nt,p,1\n")
    with pytest.raises(ValueError, match=r"bad\.csv.*missing column.*source"):
        read_scores_csv(tmp_path / "bad.csv")


# --------------------------------------------------------------------------------------------
# defect g: a missing column is named, not mistaken for a malformed wide matrix
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("header", "missing"),
    [
        ("target,source,performance", "['gain']"),
        ("target,source", "['gain']"),
        ("target,source,gain_pct", "['gain']"),
        ("task,source,gain", "['target']"),
        ("target,src,gain", "['source']"),
    ],
)
def test_gold_missing_column_is_named(tmp_path, header, missing):
    """Without `gain` the old reader took the file for a wide matrix and reported
    "duplicate source row(s) ['t1']" (or "no no-transfer row")."""
    path = tmp_path / "gold.csv"
    n = header.count(",") + 1
    body = "".join(",".join(["t1", "a", "1.0", "2"][:n]) + "\n" for _ in range(1))
    body += ",".join(["t1", "b", "0.5", "3"][:n]) + "\n"
    path.write_text(header + "\n" + body)
    with pytest.raises(EvaluationInputError) as info:
        read_gold_csv(path)
    message = str(info.value)
    assert "gold.csv" in message and f"missing column(s) {missing}" in message
    assert str(header.split(",")) in message  # what is present
    assert "duplicate" not in message


@pytest.mark.parametrize(
    ("header", "missing"),
    [
        ("target,source,predictor", "['score']"),
        ("target,predictor,score", "['source']"),
        ("source,predictor,score", "['target']"),
        ("target,source,gain", "['score']"),  # a gold file given as scores
    ],
)
def test_scores_missing_column_is_named(tmp_path, header, missing):
    path = tmp_path / "scores.csv"
    path.write_text(header + "\nt1,a,1\nt1,b,2\n")
    with pytest.raises(EvaluationInputError) as info:
        read_scores_csv(path)
    message = str(info.value)
    assert "scores.csv" in message and f"missing column(s) {missing}" in message
    assert str(header.split(",")) in message


def test_gold_file_without_gain_through_evaluate_files(tmp_path):
    """The `taskscout evaluate` engine names the missing column too."""
    from taskscout.evaluation.report import evaluate_files

    (tmp_path / "gold.csv").write_text("target,source,performance\nt1,a,70\nt1,b,71\n")
    (tmp_path / "scores.csv").write_text("target,source,predictor,score\nt1,a,p,1\nt1,b,p,2\n")
    with pytest.raises(ValueError, match=r"missing column\(s\) \['gain'\]"):
        evaluate_files(tmp_path / "gold.csv", [tmp_path / "scores.csv"])


def test_readers_name_the_line(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("target,source,predictor,score\nt1,a,p,1\n\nt1,b,p,2,9\n")
    with pytest.raises(EvaluationInputError, match=r"s\.csv: line 4 has 5 field"):
        read_scores_csv(path)
    path.write_text("target,source,predictor,score\nt1,a,p,1\n\nt1,b,p,x\n")
    with pytest.raises(EvaluationInputError, match=r"not a number: 'x' \(line 4\)"):
        read_scores_csv(path)
    path.write_text("target,source,predictor,score\nt1,a,p,1\n,b,p,2\n")
    with pytest.raises(EvaluationInputError, match=r"empty target name on line\(s\) \[3\]"):
        read_scores_csv(path)
    path.write_text("target,source,predictor,score\n")
    with pytest.raises(EvaluationInputError, match="no data rows"):
        read_scores_csv(path)
    path.write_text("target,source,gain\nt1,a,1\nt1,b,inf\n")
    with pytest.raises(
        EvaluationInputError, match=r"gain has infinite value\(s\) on line\(s\) \[3\]"
    ):
        read_gold_csv(path)
    with pytest.raises(FileNotFoundError):
        read_gold_csv(tmp_path / "absent.csv")


def test_utf8_bom_and_a_predictor_named_random(tmp_path):
    path = tmp_path / "scores.csv"
    path.write_bytes(
        "target,source,predictor,score\nt1,a,random,1\nt1,b,random,2\n".encode("utf-8-sig")
    )
    df = read_scores_csv(path)
    assert list(df.columns) == list(SCORE_COLUMNS)
    assert set(df["predictor"]) == {"random"}


# --------------------------------------------------------------------------------------------
# property: malformed CSVs give EvaluationInputError, never another exception
# --------------------------------------------------------------------------------------------
_NAMES = [*GOLD_COLUMNS, "performance", "predictor", "score", "none", "t1", "a", "x", ""]
_CELLS = st.one_of(
    st.sampled_from(["", " ", "nan", "NA", "inf", "-inf", "1e400", "1", "-2.5", "none", "a"]),
    st.text(alphabet=string.ascii_letters + string.digits + ' ,."\n\r;\t-+e\x00é', max_size=6),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)


def _csv_text(header: list[str], rows: list[list[str]], sep: str) -> str:
    return "\n".join(sep.join(r) for r in [header, *rows]) + "\n"


@st.composite
def csv_bytes(draw) -> bytes:
    """Mostly near-valid gold/scores files (real column names, rows of the header's width
    or one off), sometimes arbitrary bytes."""
    if draw(st.integers(0, 5)) == 0:  # anything at all
        return draw(st.binary(max_size=200))
    header = draw(
        st.one_of(
            st.permutations(["target", "source", "predictor", "score", "gain"]).flatmap(
                lambda names: st.integers(0, 5).map(lambda n: list(names[:n]))
            ),
            st.lists(st.one_of(st.sampled_from(_NAMES), _CELLS), max_size=6),
        )
    )
    n = len(header)
    width = st.sampled_from([n, n, n, n + 1, max(n - 1, 0)])
    rows = draw(
        st.lists(width.flatmap(lambda w: st.lists(_CELLS, min_size=w, max_size=w)), max_size=5)
    )
    text = _csv_text(header, rows, draw(st.sampled_from([",", ",", ", ", ";"])))
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "utf-8-sig", "latin-1", "utf-16"]))
    return text.encode(encoding, errors="replace")


def _check_frame(df: pd.DataFrame, columns: list[str]) -> None:
    assert isinstance(df, pd.DataFrame) and len(df) > 0
    assert list(df.columns)[: len(columns)] == columns
    for col in df.columns:
        if col in ("gain", "performance", "score"):
            assert df[col].dtype == float and np.isfinite(df[col].to_numpy()).all()
        else:
            assert all(isinstance(v, str) and v != "" for v in df[col])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=csv_bytes())
def test_readers_raise_only_evaluation_input_error(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("csv") / "input.csv"
    path.write_bytes(data)
    try:
        gold = read_gold_csv(path)
    except EvaluationInputError as exc:
        assert str(path) in str(exc)
    else:
        _check_frame(gold, list(GOLD_COLUMNS))
        assert not gold.duplicated(["target", "source"]).any()
    try:
        scores = read_scores_csv(path)
    except EvaluationInputError as exc:
        assert str(path) in str(exc)
    else:
        _check_frame(scores, list(SCORE_COLUMNS))
        assert not scores.duplicated(["target", "source", "predictor"]).any()
        # what the reader accepts, evaluate_long accepts as scores (or names what is wrong)
        with contextlib.suppress(EvaluationInputError), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # dropped self pairs, small targets
            evaluate_long(
                scores[["target", "source"]].assign(gain=1.0).drop_duplicates(["target", "source"]),
                scores,
            )


def test_readme_workflow_scores_with_the_random_predictor(tmp_path):
    """README: `taskscout predict ... --out scores.csv` (predictors 'all' include the
    registered `random`) then `taskscout evaluate --gold gold.csv --scores scores.csv`; the
    engine used to fail with "predictor name 'random' is reserved"."""
    from taskscout.evaluation.longform import RANDOM_BASELINE
    from taskscout.evaluation.report import evaluate_files, summary_markdown

    gold = _gold_frame()
    scores = _scores_frame(gold).replace({"predictor": {"flat": "random"}})
    gold.to_csv(tmp_path / "gold.csv", index=False)
    scores.to_csv(tmp_path / "scores.csv", index=False)
    result = evaluate_files(tmp_path / "gold.csv", [tmp_path / "scores.csv"])
    assert list(result.summary.index) == ["oracle", "random", RANDOM_BASELINE]
    assert result.summary.loc["random", "n_targets"] == 3
    assert result.summary.loc[RANDOM_BASELINE, "spearman"] == 0.0
    table = summary_markdown(result.summary)
    assert "| random |" in table and f"| {RANDOM_BASELINE} |" in table
