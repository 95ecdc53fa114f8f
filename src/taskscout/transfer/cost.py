"""What a run costs relative to another: the token positions it pushes through the encoder.

Used to estimate the wall time of a task that was never measured with a matrix's settings
from the tasks that were (:func:`taskscout.transfer.scheduler.estimate_seconds`). The time of
a run is close to proportional to the tokens it processes at these short lengths (the dense
matmuls dominate; attention's quadratic part is small below 128 tokens on MiniLM), so

    work(task) = E x (sum_train tokens + EVAL_SHARE x sum_dev tokens)

with ``E`` the epochs the run trains (:meth:`TuneConfig.epochs_for`: a step budget raises
them for small tasks), a dev evaluation after every epoch, and a row's tokens counted per
encoded sequence -- one for a single text or a pair, one per choice for multiple choice --
as ``min(max_len, characters / CHARS_PER_TOKEN + 3)`` ([CLS], [SEP]s). No tokenizer is run:
the figure only has to rank tasks and scale between them (cosmos_qa's 4 choices of ~100
tokens against wic's one pair of ~30).
"""

from __future__ import annotations

from collections.abc import Iterable

from taskscout.data import TaskData
from taskscout.tuning.config import TuneConfig

#: Characters per WordPiece token of English text, roughly (MiniLM's uncased vocabulary).
CHARS_PER_TOKEN = 4.5
#: A dev example's cost against a training example's: a forward pass without backward.
EVAL_SHARE = 1 / 3


def row_tokens(row: dict, max_len: int) -> float:
    """Estimated token positions of one canonical row once encoded (each sequence truncated
    at ``max_len``): ``text`` (+ ``text_pair``), or ``text`` + each of its ``choices``."""
    text = len(str(row.get("text", "")))
    seqs = (
        [text + len(str(c)) for c in row["choices"]]
        if "choices" in row
        else [text + len(str(row.get("text_pair", "")))]
    )
    return sum(min(float(max_len), n / CHARS_PER_TOKEN + 3.0) for n in seqs)


def _tokens(rows: Iterable[dict], max_len: int) -> float:
    return sum(row_tokens(r, max_len) for r in rows)


def run_work(data: TaskData, settings: TuneConfig) -> float:
    """A tuning run's (or a transfer's, which trains its target the same way) work in token
    positions, ``>= 0``; see the module docstring. Only ratios between tasks mean anything."""
    epochs = settings.epochs_for(len(data.train))
    return epochs * (
        _tokens(data.train, settings.max_len) + EVAL_SHARE * _tokens(data.dev, settings.max_len)
    )
