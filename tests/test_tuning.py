"""The tuning methods, heads and trainer on a tiny randomly initialised BERT (see conftest)."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from taskscout.backbone import load_backbone
from taskscout.data import TaskType
from taskscout.embeddings.tupate import method_embedding
from taskscout.encode import collate, encode_task
from taskscout.tuning.config import TuneConfig
from taskscout.tuning.methods import build_method
from taskscout.tuning.model import TaskModel
from taskscout.tuning.trainer import (
    evaluate,
    gold_values,
    make_optimizer,
    predict,
    train_model,
)

METHODS = ("lora", "bitfit", "prefix", "prompt")
LR = 3e-2  # high for real models, right for a 32-wide random BERT learning a keyword task


def make_model(backbone, method, spec, *, seed=0, options=None):
    _, tokenizer, encoder = load_backbone(str(backbone))
    torch.manual_seed(seed)
    return TaskModel(build_method(method, encoder, options), spec), tokenizer


def train(
    backbone,
    method,
    data,
    *,
    epochs=10,
    early_epochs=None,
    seed=0,
    lr=LR,
    batch_size=8,
    options=None,
):
    """Train like ``taskscout.tune`` does, without the store: returns (model, result, splits)."""
    model, tokenizer = make_model(backbone, method, data.spec, seed=seed, options=options)
    train_split, dev_split = encode_task(data, tokenizer, 64)
    config = TuneConfig(
        method=method,
        epochs=epochs,
        early_epochs=early_epochs,
        batch_size=batch_size,
        lr=lr,
        method_options=options or {},
    )
    result = train_model(
        model,
        train_split,
        dev_split,
        config,
        seed=seed,
        pad_id=tokenizer.pad_token_id,
        progress=False,
    )
    return model, result, (train_split, dev_split, tokenizer.pad_token_id)


# --- each method: learning, what is trainable, frozen backbone --------------------------------


@pytest.fixture(scope="module", params=METHODS)
def trained(request, tiny_backbone, make_task):
    method = request.param
    data = make_task("classification", n_train=32, n_dev=16)
    model, tokenizer = make_model(tiny_backbone, method, data.spec)
    initial = model.trainable_state()
    train_split, dev_split = encode_task(data, tokenizer, 64)
    config = TuneConfig(method=method, epochs=10, batch_size=8, lr=LR)
    result = train_model(
        model,
        train_split,
        dev_split,
        config,
        seed=0,
        pad_id=tokenizer.pad_token_id,
        progress=False,
    )
    return method, model, initial, result


def test_training_loss_falls(trained):
    method, _, _, result = trained
    losses = result.loss_curve
    assert len(losses) == 40 == len(result.loss_steps)  # 10 epochs x 4 batches
    assert result.loss_steps == list(range(1, 41))
    first, last = statistics.mean(losses[:6]), statistics.mean(losses[-6:])
    assert last < 0.75 * first, (method, first, last)
    assert all(math.isfinite(x) for x in result.dev_scores) and len(result.dev_scores) == 10
    assert result.examples_seen == 10 * 32


def test_method_parameters_moved(trained):
    method, model, initial, _ = trained
    final = model.trainable_state()
    assert final.keys() == initial.keys()
    moved = [k for k in final if k.startswith("method.") and not torch.equal(final[k], initial[k])]
    method_keys = [k for k in final if k.startswith("method.")]
    assert method_keys and sorted(moved) == sorted(method_keys), method
    assert not torch.equal(final["head.weight"], initial["head.weight"])


EXPECTED_TUNED = {
    # (count per layer, predicate on the parameter name)
    "lora": (4, lambda n: ".lora_A." in n or ".lora_B." in n),
    "bitfit": (8, lambda n: n.endswith(".bias") and ".encoder.layer." in n),
}


def test_only_method_parameters_and_head_are_trainable(trained):
    method, model, _, _ = trained
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    tuned = set(model.method.tuned_parameters())
    assert trainable == {f"method.{n}" for n in tuned} | {"head.weight", "head.bias"}
    layers = model.method.num_layers
    if method in EXPECTED_TUNED:
        per_layer, ok = EXPECTED_TUNED[method]
        assert len(tuned) == per_layer * layers and all(ok(n) for n in tuned), sorted(tuned)
    elif method == "prefix":
        assert tuned == {"peft.prompt_encoder.default.embedding.weight"}
    else:
        assert tuned == {
            "prompt_encoder.input",
            "prompt_encoder.mlp.0.weight",
            "prompt_encoder.mlp.0.bias",
            "prompt_encoder.mlp.2.weight",
            "prompt_encoder.mlp.2.bias",
        }


def test_fused_optimizer_makes_the_per_tensor_loops_update(tiny_backbone, make_task):
    """make_optimizer's fused AdamW: same groups (decay on matrices only), same update as
    torch's per-tensor loop, to float rounding, on real gradients of a fully tuned model (one
    step: later ones feed the rounding back through Adam's normalisation, where a gradient
    near zero turns a 1e-9 difference into 1e-5)."""
    data = make_task("classification", n_train=16, n_dev=8)
    models = [make_model(tiny_backbone, "full", data.spec)[0] for _ in range(2)]
    _, tokenizer, _ = load_backbone(str(tiny_backbone))
    batch = collate(encode_task(data, tokenizer, 64)[0], list(range(8)), tokenizer.pad_token_id)
    fused = make_optimizer(models[0], 1e-2, 0.01)
    assert fused.defaults["fused"] is True
    decays = [g["weight_decay"] for g in fused.param_groups]
    assert decays == [0.01, 0.0]
    assert all(p.ndim >= 2 for p in fused.param_groups[0]["params"])
    loop = torch.optim.AdamW(
        [
            {"params": list(g["params"]), "weight_decay": g["weight_decay"]}
            for g in make_optimizer(models[1], 1e-2, 0.01).param_groups
        ],
        lr=1e-2,
        foreach=False,
    )
    before = [p.detach().clone() for p in models[0].parameters()]
    for model, opt in zip(models, (fused, loop), strict=True):
        model.train()
        torch.manual_seed(0)  # the same dropout masks in both models
        model.loss(model(batch), batch["labels"]).backward()
        opt.step()
    params = list(models[0].parameters())
    moved = max((a - b).abs().max().item() for a, b in zip(params, before, strict=True))
    assert moved > 1e-3  # the step did something (lr 1e-2)
    for a, b in zip(models[0].parameters(), models[1].parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-7)


def _base_name(name: str) -> str:
    """A method's parameter name -> the name in the backbone's own weights file."""
    for prefix in ("peft.base_model.", "encoder."):
        if name.startswith(prefix):
            name = name[len(prefix) :]
            break
    return name.replace(".base_layer.", ".")


def test_backbone_weights_unchanged(trained, tiny_backbone):
    method, model, _, _ = trained
    on_disk = load_file(str(tiny_backbone / "model.safetensors"))
    tuned = set(model.method.tuned_parameters())
    frozen, tuned_base = {}, set()
    for name, param in model.method.named_parameters():
        if name in tuned:
            if method == "bitfit":  # biases of the encoder itself
                tuned_base.add(_base_name(name))
            continue
        frozen[_base_name(name)] = param
    assert set(frozen) | tuned_base == set(on_disk), method  # every backbone tensor accounted for
    changed = [n for n, p in frozen.items() if not torch.equal(p.detach(), on_disk[n])]
    assert changed == []
    if method == "bitfit":
        assert all(
            not torch.equal(dict(model.method.named_parameters())[f"encoder.{n}"], on_disk[n])
            for n in tuned_base
        )
    # the loader's in-process cache was not modified either: a fresh load equals the file
    fresh = load_backbone(str(tiny_backbone))[2].state_dict()
    assert all(torch.equal(fresh[n], on_disk[n]) for n in on_disk)


# --- heads and metrics for every task type --------------------------------------------------


def _reference_metric(spec, pred, gold) -> float:
    from seqeval.metrics import f1_score as seqeval_f1
    from sklearn.metrics import f1_score, matthews_corrcoef

    if spec.metric == "pearson":
        return 100 * float(np.corrcoef(pred, gold)[0, 1])
    if spec.metric == "seqeval_f1":
        return 100 * seqeval_f1(gold, pred)
    if spec.metric == "mcc":
        return 100 * matthews_corrcoef(gold, pred)
    if spec.metric == "f1":
        return 100 * f1_score(gold, pred, pos_label=spec.positive_label)
    return 100 * float(np.mean([p == g for p, g in zip(pred, gold, strict=True)]))


HEAD_CASES = [
    ("classification", {}),
    ("classification", {"metric": "mcc"}),
    ("classification", {"metric": "f1"}),
    ("pair_classification", {}),
    ("regression", {}),
    ("token_classification", {}),
    ("multiple_choice", {}),
]


@pytest.mark.parametrize(("task_type", "kwargs"), HEAD_CASES)
def test_heads_train_and_evaluate_with_the_task_metric(tiny_backbone, make_task, task_type, kwargs):
    data = make_task(task_type, **kwargs)
    model, result, (train_split, dev_split, pad) = train(
        tiny_backbone, "lora", data, epochs=4, batch_size=16
    )
    spec = data.spec
    assert spec.type is TaskType(task_type)
    assert len(result.dev_scores) == 4 and all(math.isfinite(s) for s in result.dev_scores)
    assert all(math.isfinite(x) for x in result.loss_curve)

    batch = collate(dev_split, [0, 1, 2], pad)
    model.eval()
    logits = model(batch)
    expected_shape = {
        "classification": (3, len(spec.labels or ())),
        "pair_classification": (3, len(spec.labels or ())),
        "regression": (3,),
        "token_classification": (*batch["input_ids"].shape, len(spec.labels or ())),
        "multiple_choice": tuple(batch["choice_mask"].shape) if "choice_mask" in batch else None,
    }[task_type]
    assert tuple(logits.shape) == expected_shape

    pred = predict(model, dev_split, pad_id=pad)
    gold = gold_values(spec, dev_split)
    assert len(pred) == len(gold) == len(data.dev)
    if task_type == "token_classification":  # one predicted tag per word (first sub-token)
        assert [len(p) for p in pred] == [len(r["tokens"]) for r in data.dev]
        assert gold == [r["tags"] for r in data.dev]
    elif task_type == "multiple_choice":  # never a padding choice
        assert all(0 <= p < len(r["choices"]) for p, r in zip(pred, data.dev, strict=True))
    elif task_type == "regression":
        assert all(isinstance(p, float) for p in pred)
    else:
        assert set(pred) <= set(spec.labels)
    score = evaluate(model, dev_split, pad_id=pad)
    assert score == pytest.approx(_reference_metric(spec, pred, gold), abs=1e-9)
    assert result.dev_scores[-1] == pytest.approx(score, abs=1e-9)  # the last epoch's model


def test_padding_choices_get_the_lowest_score(tiny_backbone, make_task):
    data = make_task("multiple_choice", n_train=4, n_dev=4)
    model, tokenizer = make_model(tiny_backbone, "lora", data.spec)
    train_split, _ = encode_task(data, tokenizer, 64)
    batch = collate(train_split, [0, 1], tokenizer.pad_token_id)  # 2 and 3 choices
    assert batch["choice_mask"].tolist() == [[1, 1, 0], [1, 1, 1]]
    model.eval()
    with torch.no_grad():
        scores = model(batch)
    assert scores[0, 2] == torch.finfo(scores.dtype).min
    assert torch.isfinite(scores[1]).all() and scores[0, :2].gt(-1e30).all()
    loss = model.loss(scores, batch["labels"])
    assert torch.isfinite(loss)


# --- checkpoints ----------------------------------------------------------------------------


def _score_of_state(backbone, data, state, dev_split, pad) -> float:
    model, _ = make_model(backbone, "lora", data.spec, seed=123)
    model.load_trainable_state(state)
    return evaluate(model, dev_split, pad_id=pad)


def test_early_and_best_checkpoints(tiny_backbone, make_task):
    data = make_task("regression")  # Pearson r: distinct dev scores per epoch
    model, result, (_, dev_split, pad) = train(
        tiny_backbone, "lora", data, epochs=5, early_epochs=2, lr=1e-2
    )
    scores = result.dev_scores
    assert len(set(scores)) == 5, scores  # precondition: each epoch identifiable by its score
    assert result.early_epoch == 2
    assert _score_of_state(tiny_backbone, data, result.early_state, dev_split, pad) == scores[1]
    assert result.best_epoch == int(np.argmax(scores)) + 1
    assert result.best_score == max(scores)
    assert _score_of_state(tiny_backbone, data, result.best_state, dev_split, pad) == max(scores)
    assert result.early_state.keys() == result.best_state.keys() == model.trainable_state().keys()


def test_early_checkpoint_defaults_within_training_and_above_epochs_is_refused(
    tiny_backbone, make_task
):
    data = make_task("classification", n_train=16, n_dev=8)
    # unset: min(2, epochs); a one-epoch run's early checkpoint is its only (= best) epoch
    model, result, _ = train(tiny_backbone, "bitfit", data, epochs=1, early_epochs=None)
    assert result.early_epoch == 1 == result.best_epoch
    assert result.early_state and result.best_state
    final = model.trainable_state()
    assert all(torch.equal(result.early_state[k], final[k]) for k in final)
    assert TuneConfig(epochs=3).resolved_early_epochs == 2
    # explicit and above epochs: refused before any training (was silently clamped)
    with pytest.raises(ValueError, match=r"early_epochs \(5\) must not exceed epochs \(2\)"):
        TuneConfig(epochs=2, early_epochs=5)


# --- determinism ----------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["lora", "prompt"])
def test_same_seed_is_bit_identical_and_other_seed_differs(tiny_backbone, make_task, method):
    data = make_task("classification", n_train=24, n_dev=8)
    runs = [train(tiny_backbone, method, data, epochs=2, seed=s)[0] for s in (0, 0, 1)]
    states = [m.trainable_state() for m in runs]
    embeddings = [method_embedding(m.method)[0] for m in runs]
    assert states[0].keys() == states[1].keys() == states[2].keys()
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    assert torch.equal(embeddings[0], embeddings[1])
    assert not all(torch.equal(states[0][k], states[2][k]) for k in states[0])
    assert not torch.equal(embeddings[0], embeddings[2])


# --- loading checkpoints --------------------------------------------------------------------


def test_load_tuned_state_round_trip_and_rejections(tiny_backbone, make_task):
    data = make_task("classification", n_train=8, n_dev=4)
    source, _, _ = train(tiny_backbone, "lora", data, epochs=1)
    state = source.trainable_state()

    target, _ = make_model(tiny_backbone, "lora", data.spec, seed=5)
    head_before = target.head.weight.detach().clone()
    target.load_trainable_state(state, head=False)  # transfer: method only, fresh head
    assert all(
        torch.equal(target.method.tuned_state()[k.removeprefix("method.")], v)
        for k, v in state.items()
        if k.startswith("method.")
    )
    assert torch.equal(target.head.weight, head_before)
    target.load_trainable_state(state)
    assert torch.equal(target.head.weight, state["head.weight"])

    method_state = {k.removeprefix("method."): v for k, v in state.items() if "method." in k}
    bitfit, _ = make_model(tiny_backbone, "bitfit", data.spec)
    with pytest.raises(ValueError, match=r"bitfit checkpoint does not fit.*another method"):
        bitfit.method.load_tuned_state(method_state)
    small, _ = make_model(tiny_backbone, "lora", data.spec, options={"r": 4})
    with pytest.raises(ValueError, match=r"has shape \(8, 32\).*expects \(4, 32\)"):
        small.method.load_tuned_state(method_state)
    partial = dict(list(method_state.items())[:-1])
    with pytest.raises(ValueError, match="missing"):
        target.method.load_tuned_state(partial)


# --- failures -------------------------------------------------------------------------------


def test_nan_loss_raises_with_a_hint(tiny_backbone, make_task):
    data = make_task("classification", n_train=32, n_dev=8)
    with pytest.raises(
        FloatingPointError, match=r"loss became (nan|-?inf) at step \d+; lower the learning rate"
    ):
        train(tiny_backbone, "lora", data, epochs=3, lr=1e10)


def test_train_config_and_empty_splits_are_rejected(tiny_backbone, make_task):
    bad_options = (
        {"epochs": 0},
        {"early_epochs": 0},
        {"batch_size": 0},
        {"max_len": 4},
        {"epochs": 2, "early_epochs": 3},  # an early checkpoint after training: refused
        {"method": "nope"},
        {"lr": -1.0},
        {"max_train": 0},
        {"method": "lora", "method_options": {"rank": 4}},  # lora's option is r
    )
    for bad in bad_options:
        with pytest.raises(ValueError):
            TuneConfig(**bad)
    data = make_task("classification", n_train=8, n_dev=4)
    model, tokenizer = make_model(tiny_backbone, "lora", data.spec)
    train_split, dev_split = encode_task(data, tokenizer, 64)
    empty = type(dev_split)(dev_split.task_type, [], [], [])
    with pytest.raises(ValueError, match="must not be empty"):
        train_model(model, train_split, empty, TuneConfig(), seed=0, pad_id=0, progress=False)


# --- the step budget (the recipe for small tasks) ---------------------------------------------


@pytest.mark.parametrize(
    ("n", "epochs", "early"),
    [(131, 36, 24), (250, 23, 15), (500, 12, 8), (2000, 3, 2), (10000, 3, 2), (1, 50, 33)],
)
def test_step_budget_epochs_and_early_checkpoint(n, epochs, early):
    config = TuneConfig(min_steps=180, epochs=3, batch_size=32)
    assert config.epochs_for(n) == epochs  # max(3, ceil(180 / ceil(n / 32))), at most 50
    assert config.early_epoch_for(n) == early  # round(2/3 of the epochs)
    assert TuneConfig(epochs=3).epochs_for(n) == 3  # no budget: the epochs as given
    assert TuneConfig(min_steps=180, early_epochs=1).early_epoch_for(n) == 1


def test_step_budget_is_part_of_the_run_id_and_leaves_old_ids_alone(make_task):
    data = make_task("classification", n_train=32, n_dev=16)
    plain = TuneConfig(bf16=False)
    budget = plain.replace(min_steps=100)
    assert "min_steps" not in plain.train_dict(0)  # ids of runs without a budget unchanged
    assert "min_steps" not in plain.to_dict() or plain.to_dict()["min_steps"] is None
    assert plain.run_id(data, 0) != budget.run_id(data, 0)
    assert plain.settings_hash() != budget.settings_hash()
    assert budget.run_id(data, 0) != budget.replace(min_steps=101).run_id(data, 0)
    with pytest.raises(ValueError, match="min_steps must be >= 1"):
        TuneConfig(min_steps=0)


def test_trainer_follows_the_step_budget(tiny_backbone, make_task):
    data = make_task("classification", n_train=16, n_dev=8)
    model, tokenizer = make_model(tiny_backbone, "bitfit", data.spec)
    train_split, dev_split = encode_task(data, tokenizer, 64)
    config = TuneConfig(method="bitfit", epochs=1, batch_size=8, lr=LR, min_steps=7)
    result = train_model(
        model, train_split, dev_split, config, seed=0, pad_id=tokenizer.pad_token_id,
        progress=False,
    )  # fmt: skip
    assert len(result.dev_scores) == 4  # ceil(7 / 2 steps per epoch)
    assert result.loss_steps[-1] == 8
    assert result.early_epoch == 3  # round(2/3 * 4)
