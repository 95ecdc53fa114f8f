"""taskscout.transfer.cost: a run's relative work, from its rows' lengths and its epochs."""

from __future__ import annotations

import pytest

from taskscout.data import TaskData, TaskSpec, TaskType
from taskscout.transfer.cost import CHARS_PER_TOKEN, EVAL_SHARE, row_tokens, run_work
from taskscout.tuning.config import TuneConfig


def _pair(n_chars: int) -> dict:
    return {"text": "a" * n_chars, "text_pair": "", "label": "x"}


def test_a_row_costs_its_encoded_sequences_each_truncated():
    n = 45  # characters
    one = n / CHARS_PER_TOKEN + 3  # tokens + [CLS], [SEP]s
    assert row_tokens({"text": "a" * n, "label": "x"}, 128) == pytest.approx(one)
    pair = {"text": "a" * n, "text_pair": "b" * n, "label": "x"}
    two = 2 * n / CHARS_PER_TOKEN + 3
    assert row_tokens(pair, 128) == pytest.approx(two)
    # multiple choice: one sequence per choice, the text repeated in each
    mc = {"text": "a" * n, "choices": ["", "b" * n], "label": 0}
    assert row_tokens(mc, 128) == pytest.approx(one + two)
    # truncation at max_len, per sequence
    assert row_tokens({"text": "a" * 10_000, "choices": ["x"] * 4, "label": 0}, 64) == 4 * 64


def test_run_work_counts_the_epochs_a_step_budget_gives():
    spec = TaskSpec("t", TaskType.PAIR_CLASSIFICATION, "accuracy", ("x", "y"))
    small = TaskData(spec, [_pair(90)] * 64, [_pair(90)] * 30)
    plain = TuneConfig(method="lora", epochs=3, batch_size=32)
    per_epoch = 64 * (90 / CHARS_PER_TOKEN + 3) + EVAL_SHARE * 30 * (90 / CHARS_PER_TOKEN + 3)
    assert run_work(small, plain) == pytest.approx(3 * per_epoch)
    # 2 steps per epoch, a budget of 20 steps: 10 epochs
    budget = TuneConfig(method="lora", epochs=3, batch_size=32, min_steps=20)
    assert run_work(small, budget) == pytest.approx(10 * per_epoch)
    # a task with 4x the rows but the same budget trains fewer epochs, not 4x the work
    big = TaskData(spec, [_pair(90)] * 256, [_pair(90)] * 30)
    assert run_work(big, budget) < 4 * run_work(small, budget)


def test_makespan_is_bounded_by_the_longest_job_and_the_even_share():
    from taskscout.transfer.scheduler import makespan

    assert makespan([], 4) == 0.0
    # one long tune run the transfers wait on: a second worker does not halve it
    assert makespan([2300.0], 2) == 2300.0
    assert makespan([10.0, 10.0, 10.0, 10.0], 2) == 20.0
    # longest first: 7+3 | 5+5 -> 10 (first-come order 3,5 | 5,7 would give 12)
    assert makespan([3.0, 5.0, 5.0, 7.0], 2) == 10.0
    assert makespan([3.0, 5.0], 1) == 8.0
