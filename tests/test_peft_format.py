"""PEFT adapter folders: a taskscout LoRA run exported loads in peft with the same weights and the
same outputs, imports back bit for bit, and adapters that do not fit are refused unwritten."""

from __future__ import annotations

import json

import pytest
import torch

from taskscout import api
from taskscout.backbone import load_backbone
from taskscout.encode import collate, encode_rows
from taskscout.pools import export_adapter, import_adapter
from taskscout.store import RunStore
from taskscout.tuning.methods import build_method
from taskscout.tuning.peft_format import (
    ADAPTER_CONFIG,
    ADAPTER_WEIGHTS,
    AdapterMismatchError,
    peft_key,
    read_lora_adapter,
    read_task_head,
    tuned_key,
    write_lora_adapter,
    write_task_head,
)

QUIET = {"progress": False, "threads": 1, "epochs": 2, "early_epochs": 1, "batch_size": 8}


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory, tiny_backbone):
    """(store, run) of a lora run of sms_spam on the tiny backbone, trained hard enough (lr 1e-2)
    that lora_B is far from its zero init."""
    db = RunStore(tmp_path_factory.mktemp("peft") / "store")
    run = api.tune(
        "sms_spam",
        method="lora",
        store=db,
        backbone=str(tiny_backbone),
        max_train=32,
        max_dev=8,
        lr=1e-2,
        **QUIET,
    )
    return db, run


def test_key_names_round_trip():
    name = "encoder.encoder.layer.1.attention.self.value.lora_B.default.weight"
    key = peft_key("method." + name)
    assert key == "base_model.model.encoder.layer.1.attention.self.value.lora_B.weight"
    assert tuned_key(key) == name
    with pytest.raises(ValueError, match="not a LoRA"):
        tuned_key("base_model.model.encoder.layer.1.attention.self.value.weight")


def test_export_loads_in_peft_with_equal_weights_and_outputs(lora_run, tiny_backbone, tmp_path):
    from peft import PeftModel

    db, run = lora_run
    folder = export_adapter(db, tmp_path / "adapter", task="sms_spam")
    cfg = json.loads((folder / ADAPTER_CONFIG).read_text())
    assert cfg["peft_type"] == "LORA" and cfg["r"] == 8 and cfg["lora_alpha"] == 8
    assert sorted(cfg["target_modules"]) == ["query", "value"]
    assert cfg["base_model_name_or_path"] == str(tiny_backbone.resolve())

    state = db.load_checkpoint(run.run_id, "best")
    method_state = {k.removeprefix("method."): v for k, v in state.items() if "method." in k}
    assert max(float(v.abs().max()) for k, v in method_state.items() if "lora_B" in k) > 1e-3

    _, tokenizer, base = load_backbone(str(tiny_backbone))
    peft_model = PeftModel.from_pretrained(base, str(folder))
    loaded = {
        n: p for n, p in peft_model.named_parameters() if "lora_" in n
    }  # base_model.model.<path>.lora_A.default.weight
    assert len(loaded) == len(method_state) == 8  # 2 layers x (query, value) x (A, B)
    for name, tensor in method_state.items():
        peft_name = "base_model.model." + name.removeprefix("encoder.")
        assert torch.equal(loaded[peft_name].detach(), tensor), name

    # the merged peft model computes what taskscout's own LoRA model computes
    _, _, encoder = load_backbone(str(tiny_backbone))
    ours = build_method("lora", encoder, run.config["method_config"])
    ours.load_tuned_state(method_state)
    ours.eval()
    data = api.TuneConfig(backbone=str(tiny_backbone), max_train=8).load("sms_spam", 0)
    split = encode_rows(data.train[:8], data.spec, tokenizer, 64)
    batch = collate(split, list(range(8)), tokenizer.pad_token_id)
    merged = peft_model.merge_and_unload().eval()
    with torch.no_grad():
        want = ours(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
        got = merged(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            token_type_ids=batch["token_type_ids"],
        ).last_hidden_state
    assert torch.allclose(got, want, atol=1e-5)
    # ... and differs from the bare backbone (the adapter matters)
    _, _, bare = load_backbone(str(tiny_backbone))
    with torch.no_grad():
        plain = bare(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            token_type_ids=batch["token_type_ids"],
        ).last_hidden_state
    assert not torch.allclose(plain, want, atol=1e-4)


def test_export_then_import_keeps_the_embedding_bit_for_bit(lora_run, tiny_backbone, tmp_path):
    from taskscout.embeddings.task_embedding import embedding_of_run

    db, run = lora_run
    folder = export_adapter(db, tmp_path / "adapter", task="sms_spam")
    assert read_task_head(folder) is not None  # the head travels beside the adapter
    other = RunStore(tmp_path / "other")
    imported = import_adapter(other, folder, "spam_imported", backbone=str(tiny_backbone))
    assert imported.config["provenance"]["imported_from"] == str(folder.resolve())
    want = embedding_of_run(db, run, "best").tensor
    got = embedding_of_run(other, imported, "best").tensor
    assert torch.equal(got, want)
    assert torch.equal(embedding_of_run(other, imported, "early").tensor, want)
    state = other.load_checkpoint(imported.run_id, "best")
    assert torch.equal(state["head.weight"], db.load_checkpoint(run.run_id, "best")["head.weight"])
    # importing the same folder again is a no-op returning the same run
    again = import_adapter(other, folder, "spam_imported", backbone=str(tiny_backbone))
    assert again.run_id == imported.run_id and len(other.find_runs()) == 1


def _rewrite_config(folder, **changes):
    path = folder / ADAPTER_CONFIG
    cfg = json.loads(path.read_text())
    cfg.update(changes)
    path.write_text(json.dumps(cfg))


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"base_model_name_or_path": "bert-base-uncased"}, "base model 'bert-base-uncased'"),
        ({"target_modules": ["query", "key"]}, "target modules ['key', 'query']"),
    ],
)
def test_import_refuses_other_base_or_modules_before_writing(
    lora_run, tiny_backbone, tmp_path, change, needle
):
    db, _ = lora_run
    folder = export_adapter(db, tmp_path / "adapter", task="sms_spam")
    _rewrite_config(folder, **change)
    target = tmp_path / "new-store"
    with pytest.raises(AdapterMismatchError, match=needle.replace("[", r"\[")):
        import_adapter(target, folder, "x", backbone=str(tiny_backbone))
    assert not target.exists()  # nothing written, not even a store


def test_import_refuses_another_rank_and_another_hidden_size(
    lora_run, tiny_backbone, tiny_backbone_h48, tmp_path
):
    db, run = lora_run
    state = db.load_checkpoint(run.run_id, "best")
    small = {k: (v[:4] if "lora_A" in k else v[:, :4]) for k, v in state.items() if "lora_" in k}
    cfg4 = {**run.config["method_config"], "r": 4}
    write_lora_adapter(tmp_path / "r4", small, cfg4, str(tiny_backbone.resolve()))
    existing = RunStore(tmp_path / "pool")
    with pytest.raises(AdapterMismatchError, match="rank r=4, the pool's LoRA has r=8"):
        import_adapter(existing, tmp_path / "r4", "x", backbone=str(tiny_backbone))
    assert existing.find_runs(status=None) == []
    # the h=32 adapter on the h=48 backbone: named base differs and the shapes do not fit
    folder = export_adapter(db, tmp_path / "h32", task="sms_spam")
    _rewrite_config(folder, base_model_name_or_path="")  # judged by its tensors alone
    with pytest.raises(AdapterMismatchError, match=r"has shape \(8, 32\).*\(8, 48\)"):
        import_adapter(existing, folder, "x", backbone=str(tiny_backbone_h48))
    assert existing.find_runs(status=None) == []


def test_read_refuses_what_is_not_a_plain_lora(tmp_path, lora_run):
    db, _ = lora_run
    with pytest.raises(ValueError, match="no adapter_config.json"):
        read_lora_adapter(tmp_path)
    folder = export_adapter(db, tmp_path / "a", task="sms_spam")
    _rewrite_config(folder, use_dora=True)
    with pytest.raises(ValueError, match="use_dora=True"):
        read_lora_adapter(folder)
    _rewrite_config(folder, use_dora=False, peft_type="PREFIX_TUNING")
    with pytest.raises(ValueError, match="only LORA"):
        read_lora_adapter(folder)
    (folder / ADAPTER_WEIGHTS).unlink()
    with pytest.raises(ValueError, match="no adapter_model.safetensors"):
        read_lora_adapter(folder)


def test_task_head_round_trip(tmp_path):
    head = {"head.weight": torch.randn(3, 32), "head.bias": torch.randn(3)}
    spec = {"name": "t", "type": "classification", "metric": "accuracy", "labels": ["a", "b", "c"]}
    write_task_head(tmp_path, head, spec)
    state, info = read_task_head(tmp_path)
    assert info["labels"] == ["a", "b", "c"] and info["type"] == "classification"
    assert all(torch.equal(state[k], head[k]) for k in head)
    with pytest.raises(ValueError, match="weight and bias"):
        write_task_head(tmp_path, {"head.weight": torch.randn(3, 32)}, spec)
    assert read_task_head(tmp_path / "none") is None
