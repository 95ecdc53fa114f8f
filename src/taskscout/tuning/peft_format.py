"""A LoRA run's tuned state as a Hugging Face PEFT adapter folder, and back.

A PEFT adapter folder (what ``peft.PeftModel.from_pretrained(base, folder)`` loads) holds

* ``adapter_config.json``: ``peft_type`` ``LORA``, ``r``, ``lora_alpha``, ``lora_dropout``,
  ``target_modules``, ``bias`` ``none``, ``base_model_name_or_path`` (written by
  ``peft.LoraConfig.save_pretrained``, so every field peft expects is there);
* ``adapter_model.safetensors``: ``base_model.model.<module path>.lora_A.weight`` (r x H) and
  ``...lora_B.weight`` (H x r) of each target module of a ``BertModel``-like base.

taskscout's LoRA method (:class:`taskscout.tuning.methods.lora.LoraMethod`) injects the same
peft layers into the bare encoder, so a tuned-state name maps one to one:
``encoder.<module path>.lora_A.default.weight`` <-> ``base_model.model.<module path>.lora_A.weight``
(the wrapper's ``encoder.`` attribute and peft's adapter name ``default`` dropped). Tensors are
copied unchanged (float32), so an export followed by an import gives the same tensors bit for bit.

A task head may sit beside the adapter (:func:`write_task_head` / :func:`read_task_head`):
``head.safetensors`` (``weight`` (K, H), ``bias`` (K,)) and ``taskscout_head.json`` (task
name, task type, labels, metric). Nothing here unpickles: only safetensors and JSON are read.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from taskscout.backbone import PACKAGED_ID

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
HEAD_WEIGHTS = "head.safetensors"
HEAD_INFO = "taskscout_head.json"
PEFT_PREFIX = "base_model.model."
METHOD_PREFIX = "encoder."  # LoraMethod keeps the encoder as ``self.encoder``
ADAPTER_NAME = "default"
HEAD_FORMAT = "taskscout-head/1"

_TUNED = re.compile(r"^encoder\.(?P<path>.+)\.(?P<ab>lora_[AB])\.default\.weight$")
_PEFT = re.compile(r"^base_model\.model\.(?P<path>.+)\.(?P<ab>lora_[AB])\.weight$")
#: adapter_config fields whose non-default values taskscout's LoRA cannot reproduce
_UNSUPPORTED = {
    "use_dora": False,
    "use_rslora": False,
    "fan_in_fan_out": False,
    "bias": "none",
    "modules_to_save": None,
    "layers_to_transform": None,
    "rank_pattern": {},
    "alpha_pattern": {},
}


class AdapterMismatchError(ValueError):
    """A PEFT adapter does not fit the pool: other base model, target modules, rank or shape.
    The message names every difference."""


def peft_key(tuned_name: str) -> str:
    """A LoRA tuned-state name (with or without ``method.``) -> the PEFT adapter key."""
    m = _TUNED.match(tuned_name.removeprefix("method."))
    if m is None:
        raise ValueError(f"{tuned_name!r} is not a LoRA tuned-state name (encoder.*.lora_A/B...)")
    return f"{PEFT_PREFIX}{m['path']}.{m['ab']}.weight"


def tuned_key(key: str) -> str:
    """A PEFT adapter key -> the LoRA tuned-state name (no ``method.`` prefix)."""
    m = _PEFT.match(key)
    if m is None:
        raise ValueError(
            f"adapter tensor {key!r} is not a LoRA weight "
            "(expected base_model.model.<module>.lora_A.weight or lora_B.weight)"
        )
    return f"{METHOD_PREFIX}{m['path']}.{m['ab']}.{ADAPTER_NAME}.weight"


@dataclass
class LoraAdapter:
    """A PEFT LoRA adapter read from a folder. ``state``: tuned-state names (no ``method.``
    prefix) -> float tensors; ``method_config``: taskscout's LoRA config (r, alpha, dropout,
    target_modules); ``base_model``: ``base_model_name_or_path`` ("" if absent)."""

    folder: Path
    method_config: dict
    base_model: str
    state: dict[str, torch.Tensor]
    raw_config: dict = field(default_factory=dict)

    @property
    def modules(self) -> set[str]:
        """The last name of every module that carries LoRA weights (e.g. query, value)."""
        return {k.split(".lora_")[0].rsplit(".", 1)[-1] for k in self.state}


def write_lora_adapter(
    folder: str | Path,
    state: dict[str, torch.Tensor],
    method_config: dict,
    base_model: str,
    *,
    overwrite: bool = False,
) -> Path:
    """Write a LoRA tuned state (keys ``[method.]encoder.*.lora_[AB].default.weight``; any
    ``head.*`` key is ignored) as a PEFT adapter folder; returns the folder.

    ``method_config``: the run's LoRA config (``r``, ``alpha``, ``dropout``,
    ``target_modules``); ``base_model``: written as ``base_model_name_or_path``. ValueError
    before anything is written if the state holds no LoRA tensor or a tensor whose shape
    disagrees with ``r``; FileExistsError if the folder holds an adapter and not ``overwrite``.
    """
    from peft import LoraConfig

    folder = Path(folder)
    lora = {k: v for k, v in state.items() if not k.startswith("head.")}
    if not lora:
        raise ValueError("the state holds no LoRA tensors (is it a lora run's checkpoint?)")
    r = int(method_config["r"])
    tensors = {}
    for name, tensor in lora.items():
        key = peft_key(name)
        rank_dim = 0 if ".lora_A." in key else 1
        if tensor.dim() != 2 or tensor.shape[rank_dim] != r:
            raise ValueError(f"{name} has shape {tuple(tensor.shape)}, not rank {r}")
        tensors[key] = tensor.detach().to("cpu").contiguous()
    if not overwrite and any((folder / f).exists() for f in (ADAPTER_CONFIG, ADAPTER_WEIGHTS)):
        raise FileExistsError(f"{folder} already holds an adapter (pass overwrite=True)")
    config = LoraConfig(
        r=r,
        lora_alpha=method_config["alpha"],
        lora_dropout=float(method_config["dropout"]),
        target_modules=list(method_config["target_modules"]),
        bias="none",
        inference_mode=True,
    )
    config.base_model_name_or_path = base_model
    folder.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(str(folder))
    save_file(tensors, str(folder / ADAPTER_WEIGHTS), metadata={"format": "pt"})
    return folder


def read_lora_adapter(folder: str | Path) -> LoraAdapter:
    """Read a PEFT LoRA adapter folder (``adapter_config.json`` + ``adapter_model.safetensors``;
    a pickled ``adapter_model.bin`` is refused, never loaded). ValueError naming the problem
    for a missing file, another PEFT type, a LoRA variant taskscout cannot reproduce (DoRA,
    rsLoRA, bias, per-module ranks, ...), a tensor that is not a LoRA weight, or shapes that
    disagree with ``r``."""
    folder = Path(folder)
    cfg_path, weights = folder / ADAPTER_CONFIG, folder / ADAPTER_WEIGHTS
    if not cfg_path.is_file():
        raise ValueError(f"{folder} is not a PEFT adapter folder: no {ADAPTER_CONFIG}")
    if not weights.is_file():
        extra = (
            " (adapter_model.bin is pickled: convert it to safetensors)"
            if (folder / "adapter_model.bin").exists()
            else ""
        )
        raise ValueError(f"{folder} has no {ADAPTER_WEIGHTS}{extra}")
    try:
        raw = json.loads(cfg_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{cfg_path} is not valid JSON: {exc}") from None
    if raw.get("peft_type") != "LORA":
        raise ValueError(f"{folder}: peft_type is {raw.get('peft_type')!r}, only LORA is supported")
    bad = [
        f"{k}={raw[k]!r}"
        for k, default in _UNSUPPORTED.items()
        if raw.get(k) is not None and raw[k] != default
    ]
    if bad:
        raise ValueError(f"{folder}: LoRA variant not supported by taskscout: {', '.join(bad)}")
    targets = raw.get("target_modules")
    if isinstance(targets, str):
        raise ValueError(f"{folder}: target_modules is a regex ({targets!r}); need a list")
    method_config = {
        "r": int(raw["r"]),
        "alpha": raw["lora_alpha"],
        "dropout": float(raw.get("lora_dropout") or 0.0),
        # peft matches target names as suffixes: "attention.self.query" is "query"
        "target_modules": sorted({str(t).rsplit(".", 1)[-1] for t in targets or []}),
    }
    state = {}
    for key, tensor in load_file(str(weights)).items():
        name = tuned_key(key)
        rank_dim = 0 if ".lora_A." in name else 1
        if tensor.dim() != 2 or tensor.shape[rank_dim] != method_config["r"]:
            raise ValueError(
                f"{folder}: {key} has shape {tuple(tensor.shape)}, not rank {method_config['r']}"
            )
        state[name] = tensor.float() if tensor.dtype != torch.float32 else tensor
    if not state:
        raise ValueError(f"{weights} holds no tensors")
    return LoraAdapter(
        folder, method_config, str(raw.get("base_model_name_or_path") or ""), state, raw
    )


def check_adapter_fits(
    adapter: LoraAdapter,
    expected_state: dict[str, torch.Tensor],
    expected_config: dict,
    base_names: set[str],
) -> None:
    """Raise :class:`AdapterMismatchError` naming every difference between ``adapter`` and
    what the pool's LoRA holds: ``expected_state`` (the tuned state of a LoRA built on the
    pool's backbone: names and shapes), ``expected_config`` (its ``r`` and
    ``target_modules``), ``base_names`` (the names the pool's backbone goes by; an adapter
    with an empty ``base_model_name_or_path`` is judged by its tensors only)."""
    problems = []
    if adapter.base_model and adapter.base_model not in base_names:
        problems.append(
            f"base model {adapter.base_model!r} is not the pool's backbone "
            f"({' / '.join(sorted(base_names))})"
        )
    want_targets = sorted(expected_config["target_modules"])
    if adapter.method_config["target_modules"] != want_targets:
        problems.append(
            f"target modules {adapter.method_config['target_modules']} differ from the pool's "
            f"{want_targets}"
        )
    if adapter.method_config["r"] != int(expected_config["r"]):
        problems.append(
            f"rank r={adapter.method_config['r']}, the pool's LoRA has r={expected_config['r']}"
        )
    if not problems:
        missing = sorted(set(expected_state) - set(adapter.state))
        extra = sorted(set(adapter.state) - set(expected_state))
        if missing or extra:
            problems.append(
                f"tensor names differ from the pool's backbone: missing {missing[:3]}, "
                f"unexpected {extra[:3]} (another architecture or layer count?)"
            )
        else:
            for name, want in expected_state.items():
                got = adapter.state[name]
                if tuple(got.shape) != tuple(want.shape):
                    problems.append(
                        f"{name} has shape {tuple(got.shape)}, the pool's backbone needs "
                        f"{tuple(want.shape)} (another hidden size?)"
                    )
                    break
    if problems:
        raise AdapterMismatchError(
            f"adapter {adapter.folder} does not fit this pool: " + "; ".join(problems)
        )


# --- the task head -------------------------------------------------------------------------


def write_task_head(
    folder: str | Path, head_state: dict[str, torch.Tensor], spec: dict, *, task: str = ""
) -> Path:
    """Write a task head beside an adapter: ``head.safetensors`` (the head's ``weight`` (K, H)
    and ``bias`` (K,); keys with or without ``head.``) and ``taskscout_head.json`` (format,
    task, type, labels, metric from ``spec``, a :meth:`TaskSpec.to_dict`). Returns the folder."""
    folder = Path(folder)
    tensors = {
        k.removeprefix("head."): v.detach().to("cpu").contiguous()
        for k, v in head_state.items()
        if k.startswith("head.") or "." not in k
    }
    if set(tensors) != {"weight", "bias"}:
        raise ValueError(f"a task head needs weight and bias, got {sorted(tensors)}")
    folder.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(folder / HEAD_WEIGHTS), metadata={"format": HEAD_FORMAT})
    info = {
        "format": HEAD_FORMAT,
        "task": task or spec.get("name", ""),
        "type": spec.get("type"),
        "labels": spec.get("labels"),
        "metric": spec.get("metric"),
        "spec": spec,
    }
    (folder / HEAD_INFO).write_text(json.dumps(info, indent=2, sort_keys=True), encoding="utf-8")
    return folder


def read_task_head(folder: str | Path) -> tuple[dict[str, torch.Tensor], dict] | None:
    """``({"head.weight", "head.bias"}, info)`` of a head written by :func:`write_task_head`,
    or None if the folder has none. ValueError for a damaged or inconsistent head."""
    folder = Path(folder)
    if not (folder / HEAD_WEIGHTS).is_file() or not (folder / HEAD_INFO).is_file():
        return None
    info = json.loads((folder / HEAD_INFO).read_text(encoding="utf-8"))
    tensors = load_file(str(folder / HEAD_WEIGHTS))
    if set(tensors) != {"weight", "bias"} or info.get("format") != HEAD_FORMAT:
        raise ValueError(f"{folder / HEAD_WEIGHTS}: not a taskscout task head")
    labels = info.get("labels")
    if labels and tensors["weight"].shape[0] != len(labels):
        raise ValueError(
            f"{folder}: head has {tensors['weight'].shape[0]} outputs for {len(labels)} labels"
        )
    return {f"head.{k}": v for k, v in tensors.items()}, info


def write_adapter_folder(
    folder: str | Path,
    state: dict[str, torch.Tensor],
    method_config: dict,
    *,
    backbone_id: str,
    backbone_location: str | None,
    spec: dict | None = None,
    task: str = "",
    overwrite: bool = False,
) -> Path:
    """A kept lora state (``method.*`` keys, optionally ``head.*``) as a PEFT adapter folder
    (:func:`write_lora_adapter`) with its task head beside it (:func:`write_task_head`) when
    the state has one and ``spec`` is given. ``base_model_name_or_path`` is the hub id of the
    packaged MiniLM, else ``backbone_location`` (the folder the backbone was loaded from)."""
    base = PACKAGED_ID if backbone_id == PACKAGED_ID else (backbone_location or "")
    out = write_lora_adapter(
        folder,
        {k: v for k, v in state.items() if k.startswith("method.")},
        method_config,
        base,
        overwrite=overwrite,
    )
    head = {k: v for k, v in state.items() if k.startswith("head.")}
    if head and spec is not None:
        write_task_head(out, head, spec, task=task)
    return out
