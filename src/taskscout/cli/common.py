"""What every ``taskscout`` command shares: the two consoles, option types declared once, the
error guard, the table renderer, output-path and epoch checks, and the read-only store opener.

Option aliases are typer ``Annotated`` types: a command declares ``store: StoreOpt = Path("runs")``
and gets the same flag names, help text and parse-time validation as every other command.
"""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Literal, NoReturn, get_args

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from taskscout.backbone import BackboneError
from taskscout.data import TaskDataError
from taskscout.store import RunStore, StoreError
from taskscout.tuning.config import TuneConfig
from taskscout.util import console as err

# --------------------------------------------------------------------------------------------
# the two streams: data on stdout, everything else on stderr

#: stdout: tables, JSON, CSV (wide when piped, so tables are not truncated)
out = Console() if sys.stdout.isatty() else Console(width=160)
#: ``err`` (imported above): stderr, for progress bars, status lines, warnings and errors

# --------------------------------------------------------------------------------------------
# choices, validated at parse time (before any work)

Method = Literal["lora", "bitfit", "prefix", "prompt"]  # the methods with task embeddings
TuneMethod = Literal["lora", "bitfit", "prefix", "prompt", "full"]  # full: the whole encoder
Checkpoint = Literal["early", "best", "late"]
Precision = Literal["auto", "fp32", "bf16"]
LayerReduce = Literal["mean", "concat"]
TaskType = Literal[
    "classification",
    "pair_classification",
    "regression",
    "token_classification",
    "multiple_choice",
]
TUNING_METHODS: tuple[str, ...] = get_args(TuneMethod)
EMBEDDING_METHODS: tuple[str, ...] = get_args(Method)
CHECKPOINTS: tuple[str, ...] = get_args(Checkpoint)


def flag(*decls: str, help: str) -> typer.models.OptionInfo:  # noqa: A002 - typer's name
    """A boolean flag option that shows no ``<bool>`` value label in --help."""
    return typer.Option(*decls, metavar="", help=help)


# --------------------------------------------------------------------------------------------
# shared option types


def _check_output_path(value: Path | str | None, param: typer.CallbackParam) -> None:
    """A file the command will write: ``-`` (stdout), or a path that is not a folder and whose
    folder exists. Raises :class:`typer.BadParameter` naming the option otherwise."""
    if value is None or str(value) == "-":
        return
    path = Path(value).expanduser()
    if path.is_dir():
        raise typer.BadParameter(f"{path} is a folder; give a file path", param=param)
    if not path.parent.is_dir():
        raise typer.BadParameter(
            f"cannot write {path}: folder {path.parent} does not exist", param=param
        )


def output_file(ctx: typer.Context, param: typer.CallbackParam, value):
    """typer callback of every output-file option: checked when the command line is parsed."""
    _check_output_path(value, param)
    return value


def output_folder(ctx: typer.Context, param: typer.CallbackParam, value):
    """typer callback of an output-folder option: it may not be an existing file, and the folder
    it lives in must exist."""
    if value is None:
        return value
    path = Path(value).expanduser()
    if path.exists() and not path.is_dir():
        raise typer.BadParameter(f"{path} exists and is not a folder", param=param)
    if not path.parent.is_dir():
        raise typer.BadParameter(
            f"cannot create {path}: folder {path.parent} does not exist", param=param
        )
    return value


StoreOpt = Annotated[Path, typer.Option("--store", help="Run store directory.")]
PoolOpt = Annotated[
    Path, typer.Option("--store", "--pool", help="Run store directory (the pool of sources).")
]
StandardPoolOpt = Annotated[
    Path | None,
    typer.Option(
        "--store",
        "--pool",
        help="Run store directory (the pool of sources). Default: the standard pool shipped "
        "with taskscout (see `taskscout pool info`), used through a per-user copy under "
        "$TASKSCOUT_HOME (default ~/.cache/taskscout).",
        show_default=False,
    ),
]
TuneMethodOpt = Annotated[
    TuneMethod,
    typer.Option(
        "--method",
        "-m",
        help="lora | bitfit | prefix (P-Tuning v2) | prompt (soft prompt) | full (fine-tune "
        "the whole encoder; no task embedding).",
    ),
]
DataDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        envvar="TASKSCOUT_DATA_DIR",
        help="Folder with catalog.json and <task>/{train,dev}.jsonl "
        "(default: the bundled demo suite).",
    ),
]
MethodOpt = Annotated[
    Method,
    typer.Option(
        "--method",
        "-m",
        help="PEFT method: lora | bitfit | prefix (P-Tuning v2) | prompt (soft prompt).",
    ),
]
CheckpointOpt = Annotated[
    Checkpoint,
    typer.Option(
        "--checkpoint",
        help="Checkpoint whose parameters are used: early (after --early-epochs) | best "
        "(best dev score; alias late).",
    ),
]
LayerReduceOpt = Annotated[
    LayerReduce,
    typer.Option(
        "--layer-reduce",
        help="TuPaTE vector over layers: mean (the paper's) | concat (the official code's).",
    ),
]
BackboneOpt = Annotated[
    str | None,
    typer.Option("--backbone", help="Local model folder or hub id (default: packaged MiniLM)."),
]
DeviceOpt = Annotated[
    str | None,
    typer.Option("--device", envvar="TASKSCOUT_DEVICE", help="cpu (default), cuda or auto."),
]
ThreadsOpt = Annotated[
    int | None,
    typer.Option("--threads", min=1, help="torch threads (default: all available cores)."),
]
SeedOpt = Annotated[int | None, typer.Option("--seed", help="Seed of sampling and init.")]
MaxTrainOpt = Annotated[
    int | None, typer.Option("--max-train", min=1, help="Subsample train to this many (seeded).")
]
MaxDevOpt = Annotated[
    int | None, typer.Option("--max-dev", min=1, help="Subsample dev to this many (seeded).")
]
EpochsOpt = Annotated[int | None, typer.Option("--epochs", min=1, help="Epochs (default 3).")]
EarlyEpochsOpt = Annotated[
    int | None,
    typer.Option(
        "--early-epochs",
        min=1,
        help="Epoch of the early checkpoint (default 2; at most --epochs).",
    ),
]
MinStepsOpt = Annotated[
    int | None,
    typer.Option(
        "--min-steps",
        min=0,
        help="Step budget: raise the epochs so every run makes at least this many optimiser "
        "updates (small tasks get more epochs, at most 50; the recipe: 180). 0: none.",
    ),
]
PrecisionOpt = Annotated[
    Precision,
    typer.Option(
        "--precision",
        help="auto (default: bf16 autocast on CPUs with native bf16, else fp32) | fp32 | bf16. "
        "Part of the run id: pin it to resume or compare runs across machines.",
    ),
]
BatchSizeOpt = Annotated[int | None, typer.Option("--batch-size", min=1, help="Default 32.")]
LrOpt = Annotated[
    float | None, typer.Option("--lr", help="Learning rate (default: the method's own).")
]
MaxLenOpt = Annotated[
    int | None, typer.Option("--max-len", min=8, help="Max tokens per example (default 128).")
]
JsonOpt = Annotated[bool, flag("--json", help="Print JSON instead of a table.")]
NoProgressOpt = Annotated[bool, flag("--no-progress", help="No progress bars on stderr.")]
CsvOpt = Annotated[
    str | None,
    typer.Option(
        "--csv",
        callback=output_file,
        help="Also write the table as CSV to this file ('-': the CSV alone on stdout).",
    ),
]

# task options (user files)
TypeOpt = Annotated[
    TaskType | None,
    typer.Option(
        "--type",
        help="Task type of a user data file.",
    ),
]
NameOpt = Annotated[
    str | None, typer.Option("--name", help="Task name of a user file (default: the file stem).")
]
TextColOpt = Annotated[str | None, typer.Option("--text-col", help="Column of the text.")]
TextPairColOpt = Annotated[
    str | None, typer.Option("--text-pair-col", help="Column of the second text of a pair.")
]
LabelColOpt = Annotated[str | None, typer.Option("--label-col", help="Column of the label.")]
TokensColOpt = Annotated[
    str | None, typer.Option("--tokens-col", help="Column of the token list (token tasks).")
]
TagsColOpt = Annotated[
    str | None, typer.Option("--tags-col", help="Column of the tag list (token tasks).")
]
ChoicesColOpt = Annotated[
    str | None, typer.Option("--choices-col", help="Column of the choices (multiple choice).")
]
DevFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--dev-file", help="Dev split of a user file (default: 20 % carved from it, seeded)."
    ),
]
MetricOpt = Annotated[
    str | None,
    typer.Option("--metric", help="Dev metric (default: the task type's, see DESIGN.md 3)."),
]
PositiveLabelOpt = Annotated[
    str | None, typer.Option("--positive-label", help="Positive class of an F1 metric.")
]


def given(**options) -> dict:
    """The options the user gave (None = not given: the API's default applies), ready to pass
    on as keywords: task options, tuning options, ``device`` / ``threads``."""
    return {k: v for k, v in options.items() if v is not None}


def precision_option(value: str) -> bool | None:
    """``--precision`` as ``TuneConfig.bf16``: auto -> None (decided per device), fp32 -> False,
    bf16 -> True."""
    return {"auto": None, "fp32": False, "bf16": True}[value]


def min_steps_option(value: int | None) -> int | None:
    """``--min-steps``: 0 means no budget (None), like leaving it out where the default is none."""
    return value or None


def check_epochs(epochs: int | None, early_epochs: int | None) -> None:
    """``--early-epochs`` above ``--epochs`` is a usage error (never silently clamped); the
    default number of epochs is :class:`TuneConfig`'s."""
    n = epochs if epochs is not None else TuneConfig().epochs
    if early_epochs is not None and early_epochs > n:
        raise typer.BadParameter(
            f"{early_epochs} is above --epochs ({n}); the early checkpoint must come at or "
            "before the last epoch",
            param_hint="'--early-epochs'",
        )


def open_store(path: Path | str, *, create: bool = False) -> RunStore:
    """The run store at ``path``: an EXISTING one unless ``create`` (read-only commands never
    create one): StoreError ``no run store at ...`` otherwise. It is closed when the command
    ends (:func:`close_when_command_ends`)."""
    return close_when_command_ends(RunStore(path, create=create))


#: what the running command opened, closed when it ends (the root app's callback calls
#: :func:`close_command_stores` on its context's close)
_COMMAND_STORES = contextlib.ExitStack()


def close_when_command_ends(db: RunStore) -> RunStore:
    """``db``, closed when the running command ends: no SQLite connection (nor its -wal/-shm
    files) outlives the command waiting on the garbage collector, since a RunStore sits in a
    reference cycle. A command function called outside the CLI leaves it to its caller."""
    _COMMAND_STORES.callback(db.close)
    return db


def close_command_stores() -> None:
    """Close every store the command opened through :func:`open_store` (the stack is reusable:
    the next command in the same process starts empty)."""
    _COMMAND_STORES.close()


# --------------------------------------------------------------------------------------------
# errors

#: errors caused by the user's input or environment: a red message, no traceback, exit 2
USER_ERRORS: tuple[type[BaseException], ...] = (
    TaskDataError,
    BackboneError,
    StoreError,
    ValueError,
    FileNotFoundError,
    NotADirectoryError,
    IsADirectoryError,
    PermissionError,
)

#: keyword names (as API error messages spell them) -> the CLI's option names
KEYWORD_OPTIONS = {
    "store": "--store/--pool",
    "pool": "--store/--pool",
    "type": "--type",
    "name": "--name",
    "text_col": "--text-col",
    "text_pair_col": "--text-pair-col",
    "label_col": "--label-col",
    "tokens_col": "--tokens-col",
    "tags_col": "--tags-col",
    "choices_col": "--choices-col",
    "dev_file": "--dev-file",
    "metric": "--metric",
    "positive_label": "--positive-label",
    "data_dir": "--data-dir",
    "max_train": "--max-train",
    "max_dev": "--max-dev",
    "seed": "--seed",
    "epochs": "--epochs",
    "early_epochs": "--early-epochs",
    "min_steps": "--min-steps",
    "batch_size": "--batch-size",
    "lr": "--lr",
    "max_len": "--max-len",
    "method": "--method",
    "checkpoint": "--checkpoint",
    "layer_reduce": "--layer-reduce",
    "backbone": "--backbone",
    "device": "--device",
    "threads": "--threads",
    "run_id": "--run-id",
    "predictor": "--predictor",
    "scorer": "--scorer",
    "tune_target": "--tune/--no-tune",
}
_KEYWORD = re.compile(r"(?<![\w-])([a-z][a-z0-9_]*)=(?![=\w'\"(\[]|\.\.\.)")
_KEYWORD_VALUE = re.compile(r"(?<![\w-])([a-z][a-z0-9_]*)=(?=\.\.\.)")
_DUPLICATE = re.compile(r"(--[\w/-]+)( / | or |, )\1")


def cli_words(message: str) -> str:
    """``message`` with the API's keyword names in CLI words: ``text_col=`` -> ``--text-col``,
    ``type=...`` -> ``--type ...``, ``store=`` -> ``--store/--pool``; an option named twice in
    a row (``--type / type=``) is named once. ``name='value'`` is left alone: that describes
    data (``predictor='p2', target='t2'``), not an option to pass."""

    def bare(m: re.Match) -> str:
        return KEYWORD_OPTIONS.get(m.group(1), m.group(0))

    def valued(m: re.Match) -> str:
        name = KEYWORD_OPTIONS.get(m.group(1))
        return f"{name} " if name else m.group(0)

    text = _KEYWORD_VALUE.sub(valued, _KEYWORD.sub(bare, message))
    return _DUPLICATE.sub(r"\1", text)


def fail(message: str, code: int = 2) -> NoReturn:
    """Print ``error: message`` in red on stderr and exit with ``code``."""
    err.print(Text.assemble(("error: ", "bold red"), cli_words(message)))
    raise typer.Exit(code)


@contextlib.contextmanager
def guard() -> Iterator[None]:
    """Known user errors (:data:`USER_ERRORS`, and ImportError of an optional extra) become one
    red line on stderr and exit code 2; anything else keeps its traceback."""
    try:
        yield
    except (typer.Exit, typer.Abort):
        raise
    except USER_ERRORS as exc:
        fail(str(exc) or type(exc).__name__)
    except ImportError as exc:
        fail(f"{exc} (an optional dependency is missing)")


# --------------------------------------------------------------------------------------------
# tables


def table(df, title: str | None = None, floats: str = "{:.4f}") -> Table:
    """A rich table of a DataFrame: numbers right-aligned, floats with ``floats``, NaN blank."""
    t = Table(title=title)
    for col in df.columns:
        t.add_column(str(col), justify="right" if df[col].dtype.kind in "if" else "left")
    for row in df.itertuples(index=False):
        t.add_row(*[_cell(v, floats) for v in row])
    return t


def _cell(value, floats: str) -> str:
    if isinstance(value, float):
        return "" if value != value else floats.format(value)
    return "" if value is None else str(value)


def print_frame(df, *, as_json: bool, csv: str | None, title: str, floats: str = "{:.4f}"):
    """The one output convention for a result table: ``--csv -`` -> CSV alone on stdout;
    ``--csv FILE`` -> written, then the table (or JSON) on stdout; ``--json`` -> records."""
    if csv == "-":
        sys.stdout.write(df.to_csv(index=False))
        return
    if csv:
        df.to_csv(csv, index=False)
        err.print(f"wrote {len(df)} rows to {csv}")
    if as_json:
        out.print_json(df.to_json(orient="records"))
    else:
        out.print(table(df, title=title, floats=floats))


def csv_list(value: str | None) -> list[str]:
    """``"a, b,,c"`` -> ``["a", "b", "c"]``."""
    return [v.strip() for v in (value or "").split(",") if v.strip()]
