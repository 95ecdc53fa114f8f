"""The studies, ``taskscout report``/``study`` and ``--report`` on ``rank``/``evaluate``, end to
end on a tiny store of real LoRA and prompt runs (tiny backbone, demo tasks)."""

from __future__ import annotations

import re
import shutil

import pandas as pd
import pytest
from typer.testing import CliRunner

from taskscout import api
from taskscout.cli import app
from taskscout.store import RunStore
from taskscout.studies import StudyInputs, feng_study, tupate_study
from taskscout.studies.common import BASELINE_ROWS

TASKS = ("mnli", "snli", "qnli", "boolq", "sms_spam")
PROMPT = {"prompt_length": 4, "encoder_hidden": 16}
QUIET = {"progress": False, "threads": 1, "epochs": 2, "early_epochs": 1, "batch_size": 8}

runner = CliRunner()


@pytest.fixture(scope="module")
def tiny_pool(tmp_path_factory, tiny_backbone):
    """LoRA and prompt runs of 5 demo tasks, and synthetic gains between them."""
    root = tmp_path_factory.mktemp("study")
    # closed before the tests snapshot it: an open connection checkpoints its WAL whenever the
    # garbage collector happens to close it, which would look like a study writing the store
    with RunStore(root / "store") as db:
        for task in TASKS:
            for method, extra in (("lora", {}), ("prompt", {"method_options": PROMPT})):
                api.tune(
                    task,
                    method=method,
                    store=db,
                    backbone=str(tiny_backbone),
                    max_train=16,
                    max_dev=8,
                    **extra,
                    **QUIET,
                )
    rows = [
        (t, s, float(3 * i - j + 0.5 * (i * j % 3)))
        for i, t in enumerate(TASKS)
        for j, s in enumerate(TASKS)
        if s != t
    ]
    gold = pd.DataFrame(rows, columns=["target", "source", "gain"])
    gold.to_csv(root / "gains.csv", index=False)
    return root / "store", gold, root / "gains.csv"


def _untouched(store):
    """A copy of the store's files, to prove a study never writes the given store."""
    return {p.name: p.read_bytes() for p in store.rglob("*") if p.is_file()}


def _check_summary(summary: pd.DataFrame, expect: list[str]):
    names = set(summary["predictor"])
    assert names >= BASELINE_ROWS, names
    for name in expect:
        assert name in names, (name, sorted(names))
    for m in ("spearman", "gain@1"):
        ok = summary[m].notna()
        assert (summary.loc[ok, f"{m} lo"] <= summary.loc[ok, m] + 1e-9).all()
        assert (summary.loc[ok, m] <= summary.loc[ok, f"{m} hi"] + 1e-9).all()


def test_tupate_study_rows_sections_and_untouched_store(tiny_pool, tiny_backbone):
    store, gold, _ = tiny_pool
    before = _untouched(store)
    inp = StudyInputs(store, gold, "synthetic", backbone=str(tiny_backbone), progress=False)
    study = tupate_study(inp, limited=8)
    assert not [n for n in study.report.notes if "skipped" in n], study.report.notes
    _check_summary(study.tables["methods"], ["tupate-lora@best", "tupate-prompt-delta@best"])
    ck = set(study.tables["checkpoints"]["predictor"])
    assert {"tupate-lora@early", "tupate-lora@best"} <= ck
    assert set(study.tables["best_minus_early"]["verdict"]) <= {
        "better",
        "worse",
        "no difference shown",
    }
    # in-class: the demo NLI family (mnli, snli, qnli) gives 3 rankable targets
    inc = study.tables["in_vs_all_class"]
    assert (inc.loc[inc["predictor"].str.endswith("[in-class]"), "n_targets"] == 3).all()
    lim = set(study.tables["limited_vs_full"]["predictor"])
    assert {"tupate-lora@best [8 ex]", "tupate-lora@best [full]"} <= lim
    ids = study.report.figure_ids
    assert ids == ["fig-methods", "fig-early", "fig-class", "fig-limited"]
    assert _untouched(store) == before


def test_feng_study_rows_and_ablations(tiny_pool, tiny_backbone):
    store, gold, _ = tiny_pool
    inp = StudyInputs(store, gold, "synthetic", backbone=str(tiny_backbone), progress=False)
    study = feng_study(
        inp,
        ensemble=1,
        backbone_kind=False,
        m_values=(8, None),
        betas=(1.0, 2.0),
        low_resource=(8,),
        low_targets=("snli",),
    )
    main = study.tables["main"]
    _check_summary(main, ["affinity-light", "prompt-mean-cosine", "prompt-token-manhattan"])
    abl = set(study.tables["ablations"]["predictor"])
    assert {"light M=8 beta=1", "light M=all beta=1", "light M=all beta=2"} <= abl
    lofo = study.tables["leave_one_family_out"]
    assert "affinity-light" in set(lofo["predictor"])
    assert "low_resource" in study.tables, study.report.notes
    low = study.tables["low_resource"]
    assert "affinity-light [8 ex]" in set(low["predictor"])
    assert low["n_targets"].max() == 1
    assert study.report.figure_ids == ["fig-main", "fig-ablations", "fig-lofo", "fig-low"]
    assert any("skipped" in n for n in study.report.notes)  # the backbone scorer, said so


def test_feng_study_fits_the_backbone_scorer_in_every_section(tiny_pool, tiny_backbone):
    store, gold, _ = tiny_pool
    before = _untouched(store)
    inp = StudyInputs(store, gold, "synthetic", backbone=str(tiny_backbone), progress=False)
    study = feng_study(
        inp,
        ensemble=1,
        backbone_epochs=1,
        m_values=(None,),
        betas=(1.0, 2.0),
        low_resource=(8,),
        low_targets=("snli",),
    )
    _check_summary(study.tables["main"], ["affinity-light", "affinity-backbone"])
    abl = set(study.tables["ablations"]["predictor"])
    assert {"backbone M=all beta=1", "backbone M=all beta=2", "light M=all beta=2"} <= abl
    assert len([p for p in abl if p.startswith(("light M=", "backbone M="))]) == 4  # no repeat
    assert "affinity-backbone" in set(study.tables["leave_one_family_out"]["predictor"])
    assert "affinity-backbone [8 ex]" in set(study.tables["low_resource"]["predictor"])
    assert not any("skipped" in n for n in study.report.notes), study.report.notes
    assert _untouched(store) == before


def _invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_cli_report_study_and_report_options(tiny_pool, tiny_backbone, tmp_path, monkeypatch):
    store, gold, gold_csv = tiny_pool
    monkeypatch.chdir(tmp_path)  # no shared/benchmarks/taskweb to find from here
    monkeypatch.delenv("TASKSCOUT_TASKWEB_DIR", raising=False)
    work = tmp_path / "pool"
    shutil.copytree(store, work)
    bb = str(tiny_backbone)
    out = tmp_path / "r.html"
    res = _invoke(
        "report",
        "--pool",
        work,
        "--target",
        "snli",
        "--gold",
        gold_csv,
        "--backbone",
        bb,
        "--ensemble",
        "2",
        "--no-progress",
        "--out",
        out,
    )
    assert res.exit_code == 0, res.output
    page = out.read_text()
    for fid in ("fig-ranking", "fig-map", "fig-heatmap-gold", "fig-eval-spearman", "fig-scatter"):
        assert f'id="{fid}"' in page
    assert "affinity-light-lora" in page
    # no gold: the gold sections are omitted with a sentence, not an error
    res = _invoke(
        "report",
        "--pool",
        work,
        "--target",
        "snli",
        "--backbone",
        bb,
        "--taskweb-dir",
        tmp_path / "nowhere",
        "--out",
        tmp_path / "n.html",
    )
    assert res.exit_code != 0 and "pairs.csv" in res.output  # a named dir without pairs.csv
    res = _invoke(
        "report", "--pool", work, "--target", "snli", "--backbone", bb, "--out", tmp_path / "n.html"
    )
    assert res.exit_code == 0, res.output
    page = (tmp_path / "n.html").read_text()
    assert 'id="fig-map"' in page and 'id="fig-heatmap-gold"' not in page
    assert "No predictor-vs-gold table" in page and "tupate-lora-delta" in page
    # study tupate through the CLI
    res = _invoke(
        "study",
        "tupate",
        "--pool",
        work,
        "--gold",
        gold_csv,
        "--backbone",
        bb,
        "--limited",
        "0",
        "--no-progress",
        "--out",
        tmp_path / "s.html",
    )
    assert res.exit_code == 0, res.output
    assert 'id="fig-methods"' in (tmp_path / "s.html").read_text()
    # rank --report / evaluate --report
    res = _invoke(
        "rank",
        "snli",
        "--pool",
        work,
        "--backbone",
        bb,
        "--no-tune",
        "--predictor",
        "tupate-lora-delta",
        "--report",
        tmp_path / "rank.html",
        "--no-progress",
    )
    assert res.exit_code == 0, res.output
    page = (tmp_path / "rank.html").read_text()
    assert 'id="fig-ranking"' in page and 'id="fig-map"' in page
    assert "No predictor-vs-gold table" in page
    scores = tmp_path / "scores.csv"
    res = _invoke(
        "predict",
        "--targets",
        ",".join(TASKS),
        "--pool",
        work,
        "--backbone",
        bb,
        "--predictors",
        "tupate-lora-delta,datasize",
        "--out",
        scores,
    )
    assert res.exit_code == 0, res.output
    res = _invoke(
        "evaluate", "--gold", gold_csv, "--scores", scores, "--report", tmp_path / "eval.html"
    )
    assert res.exit_code == 0, res.output
    page = (tmp_path / "eval.html").read_text()
    assert 'id="fig-scatter"' in page and 'id="fig-heatmap-gold"' in page
    assert re.search(r"No pool was given", page)


def test_cli_bad_options_fail_before_work(tiny_pool, tmp_path):
    store, _, gold_csv = tiny_pool
    for args in (
        ("report", "--pool", store, "--out", tmp_path / "x.txt"),
        (
            "study",
            "feng",
            "--pool",
            store,
            "--gold",
            gold_csv,
            "--betas",
            "-1",
            "--out",
            tmp_path / "x.html",
        ),
        (
            "study",
            "feng",
            "--pool",
            store,
            "--gold",
            gold_csv,
            "--m",
            "0",
            "--out",
            tmp_path / "x.html",
        ),
        ("evaluate", "--gold", gold_csv, "--scores", gold_csv, "--report", tmp_path / "x.png"),
        (
            "study",
            "tupate",
            "--pool",
            tmp_path / "missing",
            "--gold",
            gold_csv,
            "--out",
            tmp_path / "x.html",
        ),
    ):
        res = _invoke(*args)
        assert res.exit_code == 2, (args, res.output)
        assert "error:" in res.output and "Traceback" not in res.output
    assert not list(tmp_path.glob("x.*"))


@pytest.mark.parametrize(
    "budget", [{}, {"min_steps": 6, "bf16": False}, {"min_steps": 6, "early_epochs": 1}]
)
def test_same_recipe_round_trips_the_pool_run_settings(tmp_path, tiny_backbone, budget):
    """A study's re-tune copies the pool run's training settings exactly: precision and step
    budget included (a bf16 re-tune beside fp32 sources, or one without the budget, would make
    the target's embedding incomparable)."""
    from taskscout.studies.common import open_study_pool, same_recipe

    options = {**QUIET, **budget}
    with RunStore(tmp_path / "store") as db:
        run = api.tune(
            "snli", method="lora", store=db, backbone=str(tiny_backbone), max_train=16,
            max_dev=8, **options,
        )  # fmt: skip
    pool = open_study_pool(tmp_path / "store", str(tiny_backbone), "early")
    config = same_recipe(pool, "snli", "lora", max_train=8, data_dir=None)
    assert config.max_train == 8
    for device in ("cpu", "cuda"):  # resolving never re-decides the pool's precision
        assert config.resolved(device).train_dict(0) == run.config["train"]
    pool.store.close()
