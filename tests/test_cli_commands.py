"""Every ``taskscout`` command end to end through typer's CliRunner, on a tiny random BERT and
the bundled demo tasks: exit codes, what lands on stdout / stderr, files written, stores left
alone. Includes the CLI defects d (choices and --early-epochs checked before tuning), e (output
paths checked before work) and f (read-only commands never create a store)."""

from __future__ import annotations

import gc
import io
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from taskscout.cli import app
from taskscout.store import RunStore

runner = CliRunner()
POOL = ("mnli", "snli", "sms_spam")
FAST = [
    "--max-train", "16", "--max-dev", "8", "--epochs", "2", "--early-epochs", "1",
    "--batch-size", "8", "--threads", "1", "--no-progress",
]  # fmt: skip


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def flat(text: str) -> str:
    """Words joined by single spaces (undoes rich's wrapping and panel borders)."""
    return " ".join(text.replace("│", " ").split())


@pytest.fixture(scope="module")
def pool(tmp_path_factory, tiny_backbone):
    """A store with lora runs of POOL, tuned through ``taskscout tune``; returns (store, ids)."""
    store = tmp_path_factory.mktemp("cli") / "store"
    ids = {}
    for task in POOL:
        res = invoke("tune", task, "--store", store, "--backbone", tiny_backbone, *FAST, "--json")
        assert res.exit_code == 0, res.output
        info = json.loads(res.stdout)
        assert info["task"] == task and info["method"] == "lora"
        assert info["num_train"] == 16 and len(info["dev_scores"]) == 2
        ids[task] = info["run_id"]
    return store, ids


def test_tasks_lists_the_bundled_catalog():
    res = invoke("tasks", "--json")
    assert res.exit_code == 0, res.output
    names = {r["name"] for r in json.loads(res.stdout)}
    assert set(POOL) <= names
    table = invoke("tasks")
    assert table.exit_code == 0 and "mnli" in table.stdout and "tasks in" in table.stdout


def test_tune_reuses_a_stored_run(pool, tiny_backbone):
    store, ids = pool
    res = invoke("tune", "mnli", "--store", store, "--backbone", tiny_backbone, *FAST)
    assert res.exit_code == 0, res.output
    assert "already in the store" in res.stdout and ids["mnli"] in res.stdout


def test_embed_reads_a_stored_run(pool, tiny_backbone):
    store, ids = pool
    args = ["embed", "snli", "--store", store, "--backbone", tiny_backbone, "--json"]
    res = invoke(*args, "--checkpoint", "best", "--layer-reduce", "concat")
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)
    assert info["task"] == "snli" and info["checkpoint"] == "best"
    assert info["layer_reduce"] == "concat" and Path(info["file"]).is_file()
    by_id = invoke("embed", "snli", "--store", store, "--run-id", ids["snli"], "--json")
    assert by_id.exit_code == 0, by_id.output
    assert json.loads(by_id.stdout)["checkpoint"] == "early"


def test_runs_lists_every_run(pool):
    store, ids = pool
    for args in (["runs"], ["runs", "list"]):
        res = invoke(*args, "--store", store, "--json")
        assert res.exit_code == 0, res.output
        assert {r["run_id"] for r in json.loads(res.stdout)} == set(ids.values())
    table = invoke("runs", "--store", store)
    assert table.exit_code == 0 and all(t in table.stdout for t in POOL)


def test_rank_json_csv_and_stdout(pool, tiny_backbone, tmp_path):
    store, _ = pool
    base = ["rank", "mnli", "--pool", store, "--backbone", tiny_backbone, "--no-tune"]
    res = invoke(*base, "--json")
    assert res.exit_code == 0, res.output
    records = json.loads(res.stdout)
    assert [r["rank"] for r in records] == [1, 2]
    assert {r["source"] for r in records} == {"snli", "sms_spam"}
    piped = invoke(*base, "--csv", "-")
    assert piped.exit_code == 0, piped.output
    frame = pd.read_csv(io.StringIO(piped.stdout))  # the CSV alone on stdout
    assert frame["source"].tolist() == [r["source"] for r in records]
    target = tmp_path / "ranking.csv"
    written = invoke(*base, "--csv", target)
    assert written.exit_code == 0, written.output
    assert pd.read_csv(target)["source"].tolist() == frame["source"].tolist()
    assert "sources for mnli" in written.stdout and "wrote 2 rows" in written.stderr


def test_predict_writes_long_form_scores(pool, tiny_backbone, tmp_path):
    store, _ = pool
    target = tmp_path / "scores.csv"
    args = ["predict", "--targets", "mnli,snli", "--predictors", "tupate-lora,datasize"]
    res = invoke(*args, "--pool", store, "--backbone", tiny_backbone, "--out", target)
    assert res.exit_code == 0, res.output
    frame = pd.read_csv(target)
    assert list(frame.columns) == ["target", "source", "predictor", "score"]
    assert len(frame) == 2 * 2 * 2 and "wrote 8 scores" in flat(res.stderr)
    to_stdout = invoke(*args, "--pool", store, "--backbone", tiny_backbone, "--out", "-")
    assert to_stdout.exit_code == 0, to_stdout.output
    assert pd.read_csv(io.StringIO(to_stdout.stdout)).shape == frame.shape


def test_evaluate_scores_a_predictor(tmp_path):
    gold = tmp_path / "gold.csv"
    gold.write_text("target,source,gain\nt,a,2.0\nt,b,-1.0\nt,c,0.5\n")
    scores = tmp_path / "p.csv"
    scores.write_text("target,source,score\nt,a,3\nt,b,1\nt,c,2\n")
    res = invoke("evaluate", "--gold", gold, "--scores", scores, "--json")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)["summary"]
    assert set(summary) == {"p", "random (expected)"}  # no predictor column: the stem
    assert summary["p"]["n_targets"] == 1
    table = invoke("evaluate", "--gold", gold, "--scores", scores).stdout
    assert "predictors vs" in table and "random" in table


def test_gains_without_transfers_exits_1(pool):
    store, _ = pool
    res = invoke("gains", "--store", store, "--method", "lora")
    assert res.exit_code == 1
    assert "no complete lora transfers" in flat(res.stderr)


def test_transfer_dry_run_prints_the_plan(tmp_path, tiny_backbone):
    store = tmp_path / "t"
    args = ["transfer", "--targets", "mnli,snli", "--method", "prompt", "--store", store]
    res = invoke(*args, "--backbone", tiny_backbone, "--max-train", 16, "--dry-run")
    assert res.exit_code == 0, res.output
    assert "transfer" in res.stderr and res.stdout == ""
    assert not store.exists()  # a plan changes nothing: no store is created for it


def test_transfer_then_gains(tmp_path, tiny_backbone):
    store = tmp_path / "t"
    args = ["transfer", "--targets", "mnli,snli", "--method", "lora", "--store", store]
    small = ["--max-train", 16, "--max-dev", 8, "--epochs", 2, "--early-epochs", 1]
    small += ["--seeds", 0, "--min-steps", 0]  # one seed, no step budget: a quick matrix
    res = invoke(*args, "--backbone", tiny_backbone, *small, "--batch-size", 8, "--threads", 1)
    assert res.exit_code == 0, res.output
    assert "2 transfers, 0 failed" in flat(res.stderr)
    piped = invoke("gains", "--store", store, "--method", "lora", "--csv", "-")
    assert piped.exit_code == 0, piped.output
    frame = pd.read_csv(io.StringIO(piped.stdout))
    assert sorted(zip(frame.target, frame.source, strict=True)) == [
        ("mnli", "snli"),
        ("snli", "mnli"),
    ]
    matrix = invoke("gains", "--store", store, "--method", "lora")
    assert matrix.exit_code == 0 and "transfer gain" in matrix.stdout
    # a plan with a task never measured: the estimate rests on the measured runs, names it
    wider = ["transfer", "--targets", "mnli,snli,sms_spam", "--method", "lora", "--store", store]
    plan = invoke(*wider, "--backbone", tiny_backbone, *small, "--batch-size", 8, "--dry-run")
    assert plan.exit_code == 0, plan.output
    text = flat(plan.stderr)
    assert "time estimate: ~" in text and "from 4 measured run(s)" in text, text
    assert (
        "never measured with these settings, scaled from the measured tasks by their "
        "tokens x epochs: sms_spam" in text
    ), text
    # another seed of the measured tasks: their seed-0 runs stand for them
    small_1 = [*small[: small.index("--seeds")], "--seeds", 1, "--min-steps", 0]
    other = invoke(*args, "--backbone", tiny_backbone, *small_1, "--batch-size", 8, "--dry-run")
    assert other.exit_code == 0, other.output
    text = flat(other.stderr)
    assert "from 4 measured run(s)" in text and "never measured" not in text, text


def test_runs_delete_by_id_and_by_task(tmp_path, tiny_backbone):
    store = tmp_path / "d"
    ids = {}
    for task in ("mnli", "snli"):
        res = invoke("tune", task, "--store", store, "--backbone", tiny_backbone, *FAST, "--json")
        assert res.exit_code == 0, res.output
        ids[task] = json.loads(res.stdout)["run_id"]
    # declined confirmation: nothing deleted, exit 1
    no = runner.invoke(app, ["runs", "delete", ids["mnli"], "--store", str(store)], input="n\n")
    assert no.exit_code == 1
    with RunStore(store, create=False) as db:
        assert db.get_run(ids["mnli"]) is not None
    unknown = invoke("runs", "delete", "nope", "--store", store, "--yes")
    assert unknown.exit_code == 2 and "no run nope" in flat(unknown.stderr)
    yes = runner.invoke(app, ["runs", "delete", ids["mnli"], "--store", str(store)], input="y\n")
    assert yes.exit_code == 0, yes.output
    by_task = invoke("runs", "delete", "--task", "snli", "--method", "lora", "--store", store, "-y")
    assert by_task.exit_code == 0, by_task.output
    with RunStore(store, create=False) as db:
        assert db.find_runs(status=None) == []
        assert list(db.tensor_dir.iterdir()) == []  # their files went with them
    nothing = invoke("runs", "delete", "--store", store)
    assert nothing.exit_code == 2


def test_gc_removes_only_unreferenced_files(pool):
    store, _ = pool
    with RunStore(store, create=False) as db:
        kept = sorted(db.tensor_dir.iterdir())
        orphan = db.tensor_dir / "orphan.safetensors"
    orphan.write_bytes(b"left by a killed process")
    for args in (["gc"], ["runs", "gc"]):
        res = invoke(*args, "--store", store)
        assert res.exit_code == 0, res.output
    assert not orphan.exists() and sorted(Path(store, "tensors").iterdir()) == kept
    assert "removed 0 unreferenced" in flat(res.stderr)


def test_demo_ranks_the_bundled_sources(tmp_path, tiny_backbone):
    store = tmp_path / "demo"
    args = ["demo", "--sources", "bundled", "--store", store, "--backbone", tiny_backbone]
    res = invoke(*args, "--epochs", 1, "--max-train", 8, "--max-dev", 4, "--threads", 1)
    assert res.exit_code == 0, res.output
    assert "Sources ranked for mnli" in res.stdout and "time per task" in res.stdout
    with RunStore(store, create=False) as db:
        assert {r.task for r in db.find_runs()} == {
            "snli", "qnli", "boolq", "sms_spam", "copa", "mnli"
        }  # fmt: skip


def test_demo_on_the_standard_pool_refuses_bundled_only_options(tmp_path, tiny_backbone):
    store = tmp_path / "demo"
    res = invoke("demo", "--backbone", tiny_backbone, "--threads", 1, "--no-progress")
    assert res.exit_code == 2 and "--sources bundled" in flat(res.stderr)
    res = invoke("demo", "--store", store, "--threads", 1, "--no-progress")
    assert res.exit_code == 2 and "--sources bundled" in flat(res.stderr)
    assert not store.exists()


def test_affinity_fit_rejects_a_bad_out_before_work(tmp_path):
    file = tmp_path / "a-file"
    file.write_text("x")
    res = invoke("affinity", "fit", "--pool", tmp_path / "nope", "--out", file)
    assert res.exit_code == 2 and "--out" in flat(res.output)
    assert "is not a folder" in flat(res.output)


def test_errors_name_cli_options_not_keywords(tmp_path):
    data = tmp_path / "my.csv"
    data.write_text("review,stars\ngood,5\nbad,1\n")
    store = tmp_path / "s"
    res = invoke("tune", data, "--type", "classification", "--store", store)
    assert res.exit_code == 2 and "Traceback" not in res.output
    text = flat(res.stderr)
    assert "missing column 'text'" in text and "--text-col" in text and "text_col=" not in text
    assert not store.exists()


# --- defect d: bad choices and --early-epochs fail before any tuning ------------------------


@pytest.mark.parametrize(
    "bad",
    [
        ["--checkpoint", "nope"],
        ["--layer-reduce", "nope"],
        ["--epochs", "1", "--early-epochs", "2"],
    ],
)
def test_embed_rejects_bad_options_before_tuning(tmp_path, tiny_backbone, bad):
    store = tmp_path / "s"
    args = ["embed", "mnli", "--store", store, "--backbone", tiny_backbone]
    res = invoke(*args, "--max-train", 16, "--threads", 1, "--no-progress", *bad)
    assert res.exit_code == 2
    assert bad[-2] in flat(res.output)  # names the option
    assert not store.exists()  # nothing tuned, no store created


def test_early_epochs_above_epochs_is_an_error_not_clamped(tmp_path, tiny_backbone):
    for command in (["tune", "mnli"], ["rank", "mnli"], ["transfer", "--targets", "mnli,snli"]):
        store = tmp_path / command[0]
        res = invoke(*command, "--store", store, "--epochs", 2, "--early-epochs", 3)
        assert res.exit_code == 2, (command, res.output)
        assert "--early-epochs" in flat(res.output) and "above --epochs" in flat(res.output)
        assert not store.exists()


def test_unknown_method_is_refused_at_parse_time(tmp_path):
    res = invoke("tune", "mnli", "--store", tmp_path / "s", "--method", "lorra")
    assert res.exit_code == 2 and "lorra" in flat(res.output)
    assert not (tmp_path / "s").exists()


# --- defect e: output paths checked before any work ------------------------------------------


@pytest.mark.parametrize("where", ["folder", "missing"])
def test_output_paths_fail_at_once_naming_the_option(pool, tiny_backbone, tmp_path, where):
    store, _ = pool
    bad = tmp_path if where == "folder" else tmp_path / "no-such-dir" / "out.csv"
    expected = "is a folder" if where == "folder" else "does not exist"
    before = sorted(p.name for p in Path(store).rglob("*"))
    commands = [
        (["rank", "qnli", "--pool", store, "--backbone", tiny_backbone, *FAST], "--csv"),
        (["predict", "--targets", "mnli", "--pool", store], "--out"),
        (["gains", "--store", store], "--csv"),
        (["affinity", "evaluate", "--pool", store], "--scores-out"),
    ]
    for args, option in commands:
        res = invoke(*args, option, bad)
        assert res.exit_code == 2, (args, res.output)
        text = flat(res.output)
        assert option in text and expected in text, text
    # rank did not tune qnli first: the store is as it was (SQLite's -wal/-shm files come and
    # go with connections elsewhere in the session: not part of what the store holds)
    assert sorted(p.name for p in Path(store).rglob("*") if not sqlite_transient(p)) == [
        name for name in before if not name.endswith(("-wal", "-shm"))
    ]


def sqlite_transient(path: Path) -> bool:
    return path.name.endswith(("-wal", "-shm"))


def test_commands_close_their_store_when_they_end(tmp_path, tiny_backbone):
    """A RunStore sits in a reference cycle, so only the cyclic collector would close a
    forgotten one: with it off, an open connection shows as the store's -wal file."""
    store = tmp_path / "store"
    wal = store / "store.sqlite-wal"
    gc.collect()
    gc.disable()
    try:
        commands = [
            ["tune", "mnli", "--store", store, "--backbone", tiny_backbone, *FAST],
            ["tune", "snli", "--store", store, "--backbone", tiny_backbone, *FAST],
            ["runs", "--store", store],
            ["embed", "mnli", "--store", store, "--backbone", tiny_backbone],
            ["rank", "mnli", "--pool", store, "--backbone", tiny_backbone, "--no-tune"],
            ["gains", "--store", store],  # exit 1: no transfers yet
            ["pool", "info", "--pool", store],
        ]
        for args in commands:
            res = invoke(*args)
            assert res.exit_code == (1 if args[0] == "gains" else 0), (args, res.output)
            assert not wal.exists(), f"{args[0]} left its store open"
    finally:
        gc.enable()


# --- defect f: read-only commands never create a store -----------------------------------------


def test_read_only_commands_never_create_a_store(tmp_path, tiny_backbone):
    typo = tmp_path / "runz"
    commands = [
        ["runs"],
        ["runs", "delete", "abc", "--yes"],
        ["gc"],
        ["gains"],
        ["rank", "mnli", "--no-tune", "--backbone", tiny_backbone],
        ["predict", "--targets", "mnli", "--out", tmp_path / "s.csv"],
        ["embed", "mnli", "--backbone", tiny_backbone],
        ["affinity", "fit", "--gold", tmp_path / "g.csv", "--out", tmp_path / "scorer"],
    ]
    for args in commands:
        res = invoke(*args, "--store", typo)
        assert res.exit_code == 2, (args, res.output)
        assert "no run store at" in flat(res.stderr), (args, res.output)
        assert "Traceback" not in res.output
        assert not typo.exists(), args


def test_tune_precision_is_pinned_and_part_of_the_run_id(pool, tiny_backbone, tmp_path):
    """--precision fp32 / bf16 pin the precision whatever the CPU (so a store resumes with the
    same run ids on another machine); auto is the stored run's; a bad value fails first."""
    store, ids = pool
    store = shutil.copytree(store, tmp_path / "store")  # the shared pool keeps its runs
    seen = {}
    for precision in ("fp32", "bf16"):
        res = invoke(
            "tune", "mnli", "--store", store, "--backbone", tiny_backbone, *FAST, "--json",
            "--precision", precision,
        )  # fmt: skip
        assert res.exit_code == 0, res.output
        seen[precision] = json.loads(res.stdout)["run_id"]
    with RunStore(store, create=False) as db:
        for precision, run_id in seen.items():
            assert db.get_run(run_id).config["train"]["bf16"] is (precision == "bf16")
    assert seen["fp32"] != seen["bf16"] and ids["mnli"] in seen.values()  # auto = one of them
    bad = invoke("tune", "mnli", "--store", store, "--precision", "fp16")
    assert bad.exit_code == 2 and "fp16" in flat(bad.output)
