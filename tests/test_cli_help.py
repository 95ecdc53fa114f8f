"""The command tree's help: every command's --help works, every option and argument has help
text, no flag shows a ``<bool>`` value label, and the shared defaults agree across commands."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from taskscout.cli import app
from taskscout.cli.common import CHECKPOINTS, EMBEDDING_METHODS, TUNING_METHODS, cli_words, guard
from taskscout.tuning.methods import METHODS

runner = CliRunner()


def _walk(command, path=()):
    yield path, command
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        yield from _walk(sub, (*path, name))


TREE = list(_walk(typer.main.get_command(app)))
COMMANDS = {" ".join(path): cmd for path, cmd in TREE}
COMPUTE = ["tune", "embed", "rank", "predict", "demo", "transfer", "affinity fit"]
COMPUTE += ["affinity evaluate"]


def test_the_tree_has_every_command():
    expected = {"tasks", "tune", "embed", "rank", "predict", "evaluate", "runs", "runs list"}
    expected |= {"runs delete", "runs gc", "gc", "transfer", "gains", "demo", "affinity fit"}
    expected |= {"affinity evaluate"}
    assert expected <= set(COMMANDS)


@pytest.mark.parametrize("path", [p for p, _ in TREE], ids=lambda p: " ".join(p) or "root")
def test_help_works_and_every_option_has_help(path):
    res = runner.invoke(app, [*path, "--help"])
    assert res.exit_code == 0, res.output
    assert "Usage:" in res.output
    for line in res.output.splitlines():  # click's own --help is the only <bool> left
        assert "<bool>" not in line or "--help" in line, line
    command = COMMANDS[" ".join(path)]
    ctx = typer.Context(command)
    for param in command.params:
        if param.name == "help":
            continue
        assert (param.help or "").strip(), f"{' '.join(path)}: {param.name} has no help text"
        if param.param_type_name == "option" and getattr(param, "is_flag", False):
            label = param.display_type_rich(ctx)
            assert not label, f"{' '.join(path)}: flag {param.name} shows {label!r}"


def _option(command: str, name: str):
    return next(p for p in COMMANDS[command].params if p.name == name)


def test_shared_defaults_agree():
    for command in ("embed", "rank", "predict", "affinity fit", "affinity evaluate"):
        assert _option(command, "checkpoint").default == "early", command
    for command in ("tune", "embed", "rank", "demo"):
        assert _option(command, "method").default == "lora", command
    # transfer / gains start from the source's best checkpoint, and say so
    for command in ("transfer", "gains"):
        option = _option(command, "checkpoint")
        assert option.default == "best" and "best checkpoint" in option.help
    # transfer / verify / gains default to the measured protocol (benchmarks/README.md)
    for command in ("transfer", "verify", "gains"):
        assert _option(command, "method").default == "lora", command
    for command in ("transfer", "verify"):
        assert _option(command, "max_train").default == 500, command
        assert _option(command, "min_steps").default == 180, command
    assert "0,1,2" in _option("transfer", "seeds").help


def test_compute_commands_take_device_and_threads():
    for command in COMPUTE:
        names = {p.name for p in COMMANDS[command].params}
        assert {"device", "threads"} <= names, command


def test_method_choices_are_the_registered_methods():
    assert set(TUNING_METHODS) == set(METHODS)
    assert set(EMBEDDING_METHODS) == set(METHODS) - {"full"}
    assert set(CHECKPOINTS) == {"early", "best", "late"}


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("give its task type (--type / type=: classification", "give its task type (--type:"),
        ("no column 'x': pass text_col= with the right name", "pass --text-col with"),
        ("missing score for predictor='p2', target='t2'", "predictor='p2', target='t2'"),
        ("(e.g. text_col=..., label_col=...)", "(e.g. --text-col ..., --label-col ...)"),
        ("give the pool once: store= or pool= (an alias)", "--store/--pool (an alias)"),
        ("a == b and x=y stay", "a == b and x=y stay"),
    ],
)
def test_error_messages_speak_cli_words(message, expected):
    assert expected in cli_words(message)


def test_guard_turns_user_errors_into_exit_2_and_keeps_bugs():
    with pytest.raises(typer.Exit) as exit_info, guard():
        raise ValueError("max_train=0 must be positive")
    assert exit_info.value.exit_code == 2
    with pytest.raises(KeyError), guard():  # a bug: its traceback is kept
        raise KeyError("x")
