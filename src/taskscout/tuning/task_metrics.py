"""The dev-set metric of each task (DESIGN section 3), in metric points (x100)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from seqeval.metrics import f1_score as entity_f1
from sklearn.metrics import f1_score, matthews_corrcoef


def accuracy(pred: Sequence, gold: Sequence) -> float:
    """100 * mean(pred == gold)."""
    pred, gold = np.asarray(pred), np.asarray(gold)
    return float(100.0 * (pred == gold).mean()) if len(gold) else math.nan


def mcc(pred: Sequence, gold: Sequence) -> float:
    """100 * Matthews correlation coefficient (CoLA); 0 when undefined."""
    return float(100.0 * matthews_corrcoef(gold, pred))


def binary_f1(pred: Sequence, gold: Sequence, positive) -> float:
    """100 * F1 of the positive class (MRPC)."""
    return float(
        100.0 * f1_score(gold, pred, pos_label=positive, average="binary", zero_division=0)
    )


def pearson(pred: Sequence, gold: Sequence) -> float:
    """100 * Pearson r; 0 when either side is constant (r undefined): a collapsed model scores 0."""
    pred, gold = np.asarray(pred, dtype=float), np.asarray(gold, dtype=float)
    if len(pred) < 2 or pred.std() == 0 or gold.std() == 0:
        return 0.0
    return float(100.0 * np.corrcoef(pred, gold)[0, 1])


def seqeval_f1(pred: list[list[str]], gold: list[list[str]]) -> float:
    """100 * entity-level F1 over BIO tag sequences (seqeval)."""
    return float(100.0 * entity_f1(gold, pred, zero_division=0))


def score(metric: str, pred, gold, *, positive_label=None) -> float:
    """Dispatch on the task's metric name; labels are passed as decoded values."""
    if metric == "accuracy":
        return accuracy(pred, gold)
    if metric == "mcc":
        return mcc(pred, gold)
    if metric == "f1":
        if positive_label is None:
            raise ValueError("metric 'f1' needs the task's positive_label")
        return binary_f1(pred, gold, positive_label)
    if metric == "pearson":
        return pearson(pred, gold)
    if metric == "seqeval_f1":
        return seqeval_f1(pred, gold)
    raise ValueError(f"unknown metric {metric!r}")
