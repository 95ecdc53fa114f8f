"""Task specification (:class:`TaskSpec`) and in-memory task data (:class:`TaskData`).

The canonical row schema (identical to the shared benchmark data's JSONL schema):

=====================  ==========================================================
type                   row
=====================  ==========================================================
classification         ``{"text": str, "label": str}``
pair_classification    ``{"text": str, "text_pair": str, "label": str}``
regression             ``{"text": str, ["text_pair": str,] "label": float}``
token_classification   ``{"tokens": [str], "tags": [str]}``
multiple_choice        ``{"text": str, "choices": [str], "label": int}``
=====================  ==========================================================
"""

from __future__ import annotations

import enum
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any


class TaskType(enum.StrEnum):
    """The five supported task types (values are the strings used in files and the CLI).

    A ``str`` subclass: ``TaskType.REGRESSION == "regression"``.
    """

    CLASSIFICATION = "classification"
    PAIR_CLASSIFICATION = "pair_classification"
    REGRESSION = "regression"
    TOKEN_CLASSIFICATION = "token_classification"  # noqa: S105 - a task type, not a secret
    MULTIPLE_CHOICE = "multiple_choice"

    @classmethod
    def parse(cls, value: str | TaskType) -> TaskType:
        """``TaskType`` from a string (case-insensitive, ``-`` accepted for ``_``)."""
        if isinstance(value, cls):
            return value
        text = str(value).strip().lower().replace("-", "_")
        try:
            return cls(text)
        except ValueError:
            allowed = ", ".join(t.value for t in cls)
            raise ValueError(f"unknown task type {value!r}; expected one of: {allowed}") from None


#: Default metric per task type (the metric column of DESIGN.md section 3).
DEFAULT_METRIC: dict[TaskType, str] = {
    TaskType.CLASSIFICATION: "accuracy",
    TaskType.PAIR_CLASSIFICATION: "accuracy",
    TaskType.REGRESSION: "pearson",
    TaskType.TOKEN_CLASSIFICATION: "seqeval_f1",
    TaskType.MULTIPLE_CHOICE: "accuracy",
}

#: Every metric name a task may declare.
METRICS: frozenset[str] = frozenset({"accuracy", "mcc", "f1", "pearson", "seqeval_f1"})

#: Which metrics make sense for which task type (token accuracy is allowed for POS-like tasks).
METRICS_BY_TYPE: dict[TaskType, frozenset[str]] = {
    TaskType.CLASSIFICATION: frozenset({"accuracy", "mcc", "f1"}),
    TaskType.PAIR_CLASSIFICATION: frozenset({"accuracy", "mcc", "f1"}),
    TaskType.REGRESSION: frozenset({"pearson"}),
    TaskType.TOKEN_CLASSIFICATION: frozenset({"seqeval_f1", "accuracy"}),
    TaskType.MULTIPLE_CHOICE: frozenset({"accuracy"}),
}

#: Types whose ``label`` is a class name drawn from ``TaskSpec.labels``.
LABELLED_TYPES: frozenset[TaskType] = frozenset(
    {TaskType.CLASSIFICATION, TaskType.PAIR_CLASSIFICATION}
)


@dataclass(frozen=True)
class TaskSpec:
    """What a task is: its name, type, metric and label set.

    ``labels`` is the ordered label list (class names for classification/pair; tag names for token
    classification) and ``None`` for regression and multiple choice. ``positive_label`` names the
    positive class for metric ``"f1"`` (binary F1 of that class; MRPC: ``"equivalent"``).
    Invalid combinations raise ``ValueError``.
    """

    name: str
    type: TaskType
    metric: str
    labels: tuple[str, ...] | None
    family: str | None = None
    title: str | None = None
    positive_label: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError(f"task name must be a non-empty string, got {self.name!r}")
        task_type = TaskType.parse(self.type)
        object.__setattr__(self, "type", task_type)
        if self.metric not in METRICS:
            raise ValueError(
                f"task {self.name!r}: unknown metric {self.metric!r}; "
                f"expected one of: {', '.join(sorted(METRICS))}"
            )
        if self.metric not in METRICS_BY_TYPE[task_type]:
            raise ValueError(
                f"task {self.name!r}: metric {self.metric!r} does not apply to type "
                f"{task_type.value}; use one of: {', '.join(sorted(METRICS_BY_TYPE[task_type]))}"
            )
        labels = self.labels
        if task_type in (TaskType.REGRESSION, TaskType.MULTIPLE_CHOICE):
            if labels is not None:
                raise ValueError(
                    f"task {self.name!r}: labels must be None for type {task_type.value}"
                )
        else:
            if labels is None or isinstance(labels, str):
                raise ValueError(
                    f"task {self.name!r}: type {task_type.value} needs a list of labels"
                )
            labels = tuple(labels)
            if not labels or not all(isinstance(lab, str) and lab for lab in labels):
                raise ValueError(
                    f"task {self.name!r}: labels must be non-empty strings, got {list(labels)!r}"
                )
            if len(set(labels)) != len(labels):
                raise ValueError(f"task {self.name!r}: duplicate labels in {list(labels)!r}")
            object.__setattr__(self, "labels", labels)
        if self.positive_label is not None and (
            self.labels is None or self.positive_label not in self.labels
        ):
            raise ValueError(
                f"task {self.name!r}: positive_label {self.positive_label!r} is not one of the "
                f"labels {list(self.labels or ())!r}"
            )
        if self.metric == "f1" and self.positive_label is None:
            raise ValueError(
                f"task {self.name!r}: metric 'f1' (binary F1 of the positive class) needs "
                "positive_label"
            )

    @property
    def num_labels(self) -> int:
        """Output size of the head: ``len(labels)``; 1 for regression and multiple choice."""
        if self.labels is None:
            return 1
        return len(self.labels)

    @property
    def label2id(self) -> dict[str, int]:
        """``{label: index}`` in ``labels`` order (empty for regression / multiple choice)."""
        return {lab: i for i, lab in enumerate(self.labels or ())}

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict; ``TaskSpec.from_dict(spec.to_dict()) == spec``."""
        return {
            "name": self.name,
            "type": self.type.value,
            "metric": self.metric,
            "labels": list(self.labels) if self.labels is not None else None,
            "family": self.family,
            "title": self.title,
            "positive_label": self.positive_label,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TaskSpec:
        """Inverse of :meth:`to_dict`. Unknown keys (e.g. a catalog entry's ``num_train``) are
        ignored; a missing ``metric`` defaults to the type's default metric."""
        task_type = TaskType.parse(d["type"])
        labels = d.get("labels")
        return cls(
            name=d["name"],
            type=task_type,
            metric=d.get("metric") or DEFAULT_METRIC[task_type],
            labels=tuple(labels) if labels is not None else None,
            family=d.get("family"),
            title=d.get("title"),
            positive_label=d.get("positive_label"),
        )


def _fingerprint_payload(spec: TaskSpec, train: list[dict], dev: list[dict]):
    opts = {"sort_keys": True, "ensure_ascii": False, "separators": (",", ":")}
    yield json.dumps(spec.to_dict(), **opts)
    for split_name, rows in (("train", train), ("dev", dev)):
        yield f"\n#{split_name} {len(rows)}\n"
        yield json.dumps(rows, **opts)


@dataclass
class TaskData:
    """A task's spec plus its train and dev rows in the canonical schema."""

    spec: TaskSpec
    train: list[dict] = field(repr=False)
    dev: list[dict] = field(repr=False)
    source: str = ""

    def fingerprint(self) -> str:
        """SHA-256 hex digest of the spec and all rows.

        Stable across runs and processes (canonical JSON, sorted keys); any change to the spec or
        to a row changes it. ``source`` is not part of it: the same data read from two places has
        the same fingerprint.
        """
        h = hashlib.sha256()
        for chunk in _fingerprint_payload(self.spec, self.train, self.dev):
            h.update(chunk.encode("utf-8"))
        return h.hexdigest()

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def type(self) -> TaskType:
        return self.spec.type

    def __repr__(self) -> str:
        return (
            f"TaskData(name={self.spec.name!r}, type={self.spec.type.value!r}, "
            f"metric={self.spec.metric!r}, train={len(self.train)}, dev={len(self.dev)}, "
            f"source={self.source!r})"
        )
