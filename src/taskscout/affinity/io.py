"""Save and load fitted affinity models: ``<dir>/config.json`` + ``<dir>/weights.safetensors``.

``config.json``: ``{"format": 1, "config": AffinityConfig, "fit": FitInfo}`` -- the
hyperparameters and what the model is tied to (backbone id, embedding method, checkpoint,
layer reduction, embedding shape = prompt length x hidden size or vector dimension), the gain
scaling and the training tasks. ``weights.safetensors``: ``head{k}.<param>`` for each ensemble
member (the backbone kind stores its trainable top layers and linear head; the frozen bottom
is reloaded from the backbone and its id checked), ``featurizer.<name>`` for the light kind's
PCA. A loaded model refuses embeddings of another pool (:meth:`AffinityModel.check_embeddings`).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

from safetensors.torch import load_file, save_file

from taskscout.affinity.data import IncompatibleEmbeddingError
from taskscout.affinity.ensemble import (
    FORMAT,
    AffinityConfig,
    AffinityModel,
    FitInfo,
    head_factory,
)
from taskscout.affinity.light import VectorFeaturizer
from taskscout.affinity.scorer import FrozenPairEncoder
from taskscout.backbone import load_backbone, resolve_backbone

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "weights.safetensors"


class ScorerFileError(ValueError):
    """A scorer folder is missing, incomplete or of an unknown format."""


def save_model(model: AffinityModel, path: str | os.PathLike) -> Path:
    """Write ``model`` to the folder ``path`` (created; existing files of the same names are
    overwritten); returns the folder. Tensors go to safetensors, the rest to JSON: nothing is
    pickled."""
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for k, head in enumerate(model.heads):
        for name, value in head.state_dict().items():
            tensors[f"head{k}.{name}"] = value.detach().contiguous().clone()
    if model.config.kind == "light":
        for name, value in model.frozen.state().items():
            tensors[f"featurizer.{name}"] = value.contiguous().clone()
    save_file(tensors, str(folder / WEIGHTS_FILE), metadata={"format": str(FORMAT)})
    doc = {"format": FORMAT, "config": model.config.to_dict(), "fit": asdict(model.info)}
    (folder / CONFIG_FILE).write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return folder


def read_scorer_config(path: str | os.PathLike) -> tuple[AffinityConfig, FitInfo]:
    """The config and fit info of a saved scorer, without loading weights;
    :class:`ScorerFileError` (naming the file) for a missing, malformed or unknown-format
    folder."""
    folder = Path(path)
    cfg_file = folder / CONFIG_FILE
    if not cfg_file.is_file() or not (folder / WEIGHTS_FILE).is_file():
        raise ScorerFileError(
            f"{folder} is not an affinity scorer folder (needs {CONFIG_FILE} and {WEIGHTS_FILE};"
            " write one with `taskscout affinity fit --out DIR`)"
        )
    try:
        doc = json.loads(cfg_file.read_text(encoding="utf-8"))
        if doc.get("format") != FORMAT:
            raise ScorerFileError(f"{cfg_file}: unknown scorer format {doc.get('format')!r}")
        config = AffinityConfig(**doc["config"])
        if config.lr_grid is not None:
            config.lr_grid = tuple(config.lr_grid)
        info = FitInfo(**doc["fit"])
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ScorerFileError(f"{cfg_file}: malformed scorer config ({exc})") from exc
    return config, info


def load_model(
    path: str | os.PathLike, backbone_location: str | os.PathLike | None = None
) -> AffinityModel:
    """Load a scorer saved by :func:`save_model`.

    Backbone kind: the frozen layers come from ``backbone_location`` (else the location
    recorded at fit time); its backbone id must be the one the scorer was trained with.
    """
    config, info = read_scorer_config(path)
    tensors = load_file(str(Path(path) / WEIGHTS_FILE))
    encoder = None
    if config.kind == "backbone":
        location = backbone_location if backbone_location is not None else info.backbone_location
        ref = resolve_backbone(location)
        if ref.backbone_id != info.backbone:
            raise IncompatibleEmbeddingError(
                f"scorer {path} was trained on backbone {info.backbone!r}, not {ref.backbone_id!r}"
            )
        _, _, encoder = load_backbone(location)
        frozen = FrozenPairEncoder(encoder, config.train_layers, info.embedding_shape[0])
    else:
        state = {
            k.removeprefix("featurizer."): v
            for k, v in tensors.items()
            if k.startswith("featurizer.")
        }
        frozen = VectorFeaturizer.from_state(state)
    make_head = head_factory(config, frozen, encoder)
    heads = []
    for k in range(config.ensemble):
        head = make_head(config.seed + k)
        prefix = f"head{k}."
        state = {n.removeprefix(prefix): v for n, v in tensors.items() if n.startswith(prefix)}
        head.load_state_dict(state)
        head.eval()
        heads.append(head)
    return AffinityModel(config, info, frozen, heads)
