"""TaskType, TaskSpec and TaskData (spec validation, JSON round trip, fingerprint)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taskscout.data import DEFAULT_METRIC, METRICS, TaskData, TaskSpec, TaskType

SPECS = [
    TaskSpec("sst", TaskType.CLASSIFICATION, "accuracy", ("negative", "positive"), "sentiment"),
    TaskSpec(
        "mrpc",
        "pair_classification",
        "f1",
        ["not_equivalent", "equivalent"],
        family="paraphrase_similarity",
        title="MRPC",
        positive_label="equivalent",
    ),
    TaskSpec("stsb", TaskType.REGRESSION, "pearson", None),
    TaskSpec("ner", TaskType.TOKEN_CLASSIFICATION, "seqeval_f1", ("O", "B-PER", "I-PER")),
    TaskSpec("copa", TaskType.MULTIPLE_CHOICE, "accuracy", None, title="COPA"),
]


def test_task_type_values_and_parse():
    assert [t.value for t in TaskType] == [
        "classification",
        "pair_classification",
        "regression",
        "token_classification",
        "multiple_choice",
    ]
    assert TaskType.REGRESSION == "regression"
    assert isinstance(TaskType.REGRESSION, str)
    assert str(TaskType.MULTIPLE_CHOICE) == "multiple_choice"
    assert TaskType.parse("Pair-Classification") is TaskType.PAIR_CLASSIFICATION
    with pytest.raises(ValueError, match="unknown task type 'ner'"):
        TaskType.parse("ner")


def test_default_metrics():
    assert set(DEFAULT_METRIC) == set(TaskType)
    assert DEFAULT_METRIC[TaskType.REGRESSION] == "pearson"
    assert DEFAULT_METRIC[TaskType.TOKEN_CLASSIFICATION] == "seqeval_f1"
    assert set(DEFAULT_METRIC.values()) <= METRICS
    assert {"accuracy", "mcc", "f1", "pearson", "seqeval_f1"} == set(METRICS)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_spec_json_round_trip(spec):
    d = json.loads(json.dumps(spec.to_dict()))
    back = TaskSpec.from_dict(d)
    assert back == spec
    assert isinstance(back.type, TaskType)
    assert back.labels is None or isinstance(back.labels, tuple)


def test_spec_coerces_type_and_labels():
    spec = SPECS[1]
    assert spec.type is TaskType.PAIR_CLASSIFICATION
    assert spec.labels == ("not_equivalent", "equivalent")
    assert spec.label2id == {"not_equivalent": 0, "equivalent": 1}
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.name = "other"  # type: ignore[misc]


def test_num_labels():
    assert [s.num_labels for s in SPECS] == [2, 2, 1, 3, 1]


def test_from_dict_ignores_catalog_extras_and_defaults_metric():
    spec = TaskSpec.from_dict(
        {"name": "t", "type": "regression", "labels": None, "num_train": 5, "source": []}
    )
    assert spec.metric == "pearson"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"metric": "bleu"}, "unknown metric 'bleu'"),
        ({"metric": "pearson"}, "metric 'pearson' does not apply to type classification"),
        ({"labels": None}, "needs a list of labels"),
        ({"labels": ("a", "a")}, "duplicate labels"),
        ({"labels": ("a", "")}, "non-empty strings"),
        ({"positive_label": "c"}, "positive_label 'c' is not one of the labels"),
        ({"metric": "f1"}, "needs positive_label"),
        ({"name": " "}, "non-empty string"),
    ],
)
def test_spec_rejects_inconsistent(kwargs, message):
    base = {"name": "t", "type": "classification", "metric": "accuracy", "labels": ("a", "b")}
    base.update(kwargs)
    with pytest.raises(ValueError, match=message):
        TaskSpec(**base)


def test_spec_labels_forbidden_for_regression_and_multiple_choice():
    with pytest.raises(ValueError, match="labels must be None"):
        TaskSpec("r", "regression", "pearson", ("a",))
    with pytest.raises(ValueError, match="labels must be None"):
        TaskSpec("m", "multiple_choice", "accuracy", ("0", "1"))


@given(
    labels=st.lists(
        st.text(min_size=1, max_size=8).filter(str.strip), min_size=2, max_size=6, unique=True
    ),
    family=st.none() | st.text(max_size=10),
)
def test_spec_round_trip_property(labels, family):
    spec = TaskSpec("x", "classification", "mcc", tuple(labels), family=family)
    assert TaskSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec


# --------------------------------------------------------------------------- TaskData


def _data() -> TaskData:
    spec = TaskSpec("toy", TaskType.CLASSIFICATION, "accuracy", ("neg", "pos"))
    train = [{"text": "good", "label": "pos"}, {"text": "bad", "label": "neg"}]
    dev = [{"text": "fine", "label": "pos"}]
    return TaskData(spec=spec, train=train, dev=dev, source="memory")


#: Pinned so that a change of the fingerprint recipe (which invalidates caches) is deliberate.
TOY_FINGERPRINT = "4768e5ead59ae6447b623041ef3bac2dfe1a227d3d4d3485854b6d950dd7ae87"


def test_fingerprint_stable_and_pinned():
    a, b = _data(), _data()
    fp = a.fingerprint()
    assert len(fp) == 64 and int(fp, 16) >= 0
    assert fp == b.fingerprint() == a.fingerprint()
    assert fp == TOY_FINGERPRINT


def test_fingerprint_ignores_source_and_key_order():
    a = _data()
    b = _data()
    b.source = "elsewhere"
    b.train = [{"label": "pos", "text": "good"}, {"label": "neg", "text": "bad"}]
    assert a.fingerprint() == b.fingerprint()


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.train[0].update(text="good!"),
        lambda d: d.dev[0].update(label="neg"),
        lambda d: d.train.reverse(),
        lambda d: d.train.append(d.dev.pop()),
        lambda d: setattr(d, "spec", dataclasses.replace(d.spec, metric="mcc")),
        lambda d: setattr(d, "spec", dataclasses.replace(d.spec, name="toy2")),
    ],
)
def test_fingerprint_sensitive_to_any_change(mutate):
    d = _data()
    before = d.fingerprint()
    mutate(d)
    assert d.fingerprint() != before


def test_fingerprint_same_in_another_process():
    code = (
        "from taskscout.data import TaskData, TaskSpec\n"
        "s = TaskSpec('toy', 'classification', 'accuracy', ('neg', 'pos'))\n"
        "d = TaskData(s, [{'text': 'good', 'label': 'pos'}, {'text': 'bad', 'label': 'neg'}],"
        " [{'text': 'fine', 'label': 'pos'}], 'x')\n"
        "print(d.fingerprint())\n"
    )
    env = dict(os.environ, PYTHONHASHSEED="12345")
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.strip() == _data().fingerprint()


def test_task_data_repr_is_short():
    d = _data()
    d.train = d.train * 5000
    text = repr(d)
    assert len(text) < 200
    assert "train=10000" in text and "'toy'" in text
