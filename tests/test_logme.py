"""LogME: the evidence is unchanged, the fast predictor equals the reference path on
classification targets, every task type is scored, and features are cached (memory, disk)."""

from __future__ import annotations

import numpy as np
import pytest

from taskscout import api
from taskscout.backbone import load_backbone
from taskscout.data import TaskType
from taskscout.encode import encode_rows
from taskscout.predictors import Pool, get_predictor
from taskscout.predictors.logme import (
    LogMEPredictor,
    clear_feature_cache,
    flatten_choices,
    logme,
    method_features,
    target_features,
)
from taskscout.store import RunStore
from taskscout.tuning.methods import build_method

QUIET = {"progress": False, "threads": 1, "epochs": 2, "early_epochs": 1, "batch_size": 8}
SOURCES = ["mnli", "snli", "sms_spam"]


@pytest.fixture(scope="module")
def pool(tmp_path_factory, tiny_backbone) -> Pool:
    db = RunStore(tmp_path_factory.mktemp("logme") / "store")
    for task in SOURCES:
        api.tune(
            task,
            method="lora",
            store=db,
            backbone=str(tiny_backbone),
            max_train=24,
            max_dev=8,
            lr=1e-2,
            **QUIET,
        )
    return Pool.open(db, str(tiny_backbone))


def test_logme_evidence_is_numerically_unchanged():
    # values of the implementation before the move (commit d9b52a7, predictors/baselines.py)
    rng = np.random.default_rng(7)
    f = rng.normal(size=(60, 12))
    y = rng.integers(0, 3, 60)
    yr = f @ rng.normal(size=12) + rng.normal(size=60)
    assert logme(f, y) == -0.8514147460691218
    assert logme(f, yr, regression=True) == -1.7323522757545573
    assert logme(f[:10], y[:10]) == -0.7395247514554489  # fewer rows than features


def _reference_scores(pool: Pool, target: str, sources: list[str], n: int) -> dict[str, float]:
    """The implementation before this module: a fresh backbone and method per source, rows in
    their order in batches of 64, mean-pooled features."""
    data = pool.task_data(target, max_train=n)
    out = {}
    for s in sources:
        run = pool.require_run(s, "lora")
        _, tokenizer, encoder = load_backbone(run.config["backbone_location"])
        method = build_method("lora", encoder, run.config["method_config"])
        state = pool.store.load_checkpoint(run.run_id, "best")
        method.load_tuned_state({k[7:]: v for k, v in state.items() if k.startswith("method.")})
        split = encode_rows(data.train[:n], data.spec, tokenizer, run.config["train"]["max_len"])
        feats = method_features(method, split, tokenizer.pad_token_id).numpy()
        out[s] = logme(feats, np.asarray(split.labels))
    return out


def test_fast_path_equals_the_reference_on_a_classification_target(pool):
    clear_feature_cache()
    sources = ["mnli", "snli"]
    fast = LogMEPredictor(max_examples=24, disk_cache=False).score("sms_spam", sources, pool)
    ref = _reference_scores(pool, "sms_spam", sources, 24)
    for s in sources:
        assert fast[s] == pytest.approx(ref[s], rel=1e-6, abs=1e-9)
    assert fast["mnli"] != fast["snli"]  # the sources' states really were swapped in


@pytest.mark.parametrize(
    "task_type", ["regression", "multiple_choice", "token_classification", "pair_classification"]
)
def test_every_target_type_is_scored(pool, make_task, task_type):
    data = make_task(task_type, n_train=20, n_dev=8)
    pool.tasks[data.spec.name] = data
    scores = get_predictor("logme", max_examples=20, disk_cache=False).score(
        data.spec.name, SOURCES, pool
    )
    assert set(scores) == set(SOURCES) and all(np.isfinite(v) for v in scores.values())
    assert scores.info["target_type"] == task_type


def test_features_per_task_type(pool, make_task, tiny_backbone):
    _, tokenizer, encoder = load_backbone(str(tiny_backbone))
    method = build_method("lora", encoder, {})
    mc = make_task("multiple_choice", n_train=6, n_dev=2)
    split = encode_rows(mc.train, mc.spec, tokenizer, 64)
    flat = flatten_choices(split)
    assert len(flat) == sum(len(r["choices"]) for r in mc.train)
    assert sum(flat.labels) == len(mc.train)  # exactly one correct choice per row
    feats, labels, regression = target_features(method, split, tokenizer.pad_token_id, 4)
    assert feats.shape == (len(flat), 32) and not regression and set(labels) == {0, 1}
    tok = make_task("token_classification", n_train=6, n_dev=2)
    split = encode_rows(tok.train, tok.spec, tokenizer, 64)
    feats, labels, _ = target_features(method, split, tokenizer.pad_token_id, 4)
    words = sum(len(r["tokens"]) for r in tok.train)
    assert feats.shape == (words, 32) and len(labels) == words
    expected = [tok.spec.labels.index(t) for r in tok.train for t in r["tags"]]
    assert labels.tolist() == expected  # first sub-token of each word, in row order
    reg = make_task("regression", n_train=6, n_dev=2)
    split = encode_rows(reg.train, reg.spec, tokenizer, 64)
    feats, labels, regression = target_features(method, split, tokenizer.pad_token_id, 4)
    assert regression and labels.dtype == np.float64 and feats.shape == (6, 32)
    # batch order does not change the features (length-sorted batches are put back in order)
    one, _, _ = target_features(method, split, tokenizer.pad_token_id, 1)
    assert np.allclose(one.numpy(), feats.numpy(), atol=1e-5)
    assert reg.spec.type is TaskType.REGRESSION


def test_disk_cache_is_reused_and_a_damaged_file_is_rewritten(pool):
    clear_feature_cache()
    predictor = LogMEPredictor(max_examples=16)
    first = predictor.score("mnli", ["snli", "sms_spam"], pool)
    files = sorted((pool.store.root / "cache" / "logme").glob("*.safetensors"))
    assert len(files) == 2
    clear_feature_cache()
    stamps = {f: f.stat().st_mtime_ns for f in files}
    again = predictor.score("mnli", ["snli", "sms_spam"], pool)
    assert dict(again) == dict(first)
    assert {f: f.stat().st_mtime_ns for f in files} == stamps  # read, not rewritten
    files[0].write_bytes(b"not a safetensors file")
    clear_feature_cache()
    third = predictor.score("mnli", ["snli", "sms_spam"], pool)
    assert dict(third) == dict(first)
    assert files[0].stat().st_size > 100  # rewritten with real features
    # another sample size is another cache entry
    predictor_8 = LogMEPredictor(max_examples=8)
    predictor_8.score("mnli", ["snli"], pool)
    assert len(list((pool.store.root / "cache" / "logme").glob("*.safetensors"))) == 3


def test_missing_source_run_fails_before_any_feature(pool):
    clear_feature_cache()
    with pytest.raises(ValueError, match="no lora run of task 'qnli'"):
        LogMEPredictor(max_examples=8, disk_cache=False).score("mnli", ["snli", "qnli"], pool)
