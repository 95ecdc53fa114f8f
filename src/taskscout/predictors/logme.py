"""LogME (You et al. 2021) as a source predictor, for every task type, fast.

``logme(features, labels, regression)`` is the evidence; :class:`LogMEPredictor` scores a
source s for a target t as

    p(s) = LogME(F_s(t), y(t))

where F_s(t) are features of <= ``max_examples`` target training rows under source s's tuned
``method`` (its ``checkpoint``), and y(t) the target's labels, per task type:

* classification, pair classification: the mean-pooled last hidden states of each row, the
  class index (one-hot columns);
* regression: the same features, the real-valued label (``regression=True``);
* multiple choice: every (context, choice) sequence as one binary example: its mean-pooled
  states, label 1 for the correct choice and 0 for the others;
* token classification: the last hidden state of the first sub-token of every word, its tag.

Speed: the backbone is loaded and the method built once per (backbone, method config); each
source's tuned state is copied into it in place (:meth:`TuningMethod.load_tuned_state`); the
forward passes run in length-sorted batches under ``torch.inference_mode``. Features are
cached per (source run, checkpoint, target data fingerprint, max examples, max_len) in memory
and, with ``disk_cache``, under ``<store>/cache/logme/`` as safetensors (never pickled; a
damaged file is ignored and rewritten).
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from taskscout.backbone import load_backbone
from taskscout.data import TaskType
from taskscout.encode import IGNORE_INDEX, EncodedSplit, collate, encode_rows, sorted_batches
from taskscout.predictors.base import Pool, Reads, Scores, check_sources
from taskscout.predictors.registry import register
from taskscout.tuning.methods import build_method
from taskscout.tuning.model import mean_pool
from taskscout.tuning.run import run_backbone_location
from taskscout.util import make_progress

FEATURE_FORMAT = "taskscout-logme-features/1"

# --- the evidence ----------------------------------------------------------------------------


def _logme_single(
    sigma: np.ndarray, x2: np.ndarray, res_x2: float, n: int, d: int, max_iter: int = 100
) -> float:
    alpha, beta = 1.0, 1.0
    for _ in range(max_iter):
        t = alpha / beta
        gamma = float((sigma / (sigma + t)).sum())
        m2 = float((sigma * x2 / (t + sigma) ** 2).sum())
        res2 = float((x2 / (1.0 + sigma / t) ** 2).sum() + res_x2)
        alpha = gamma / (m2 + 1e-5)
        beta = (n - gamma) / (res2 + 1e-5)
        if abs(alpha / beta - t) / t <= 1e-3:
            break
    t = alpha / beta
    m2 = float((sigma * x2 / (t + sigma) ** 2).sum())
    res2 = float((x2 / (1.0 + sigma / t) ** 2).sum() + res_x2)
    logdet = float(np.log(alpha + beta * sigma).sum()) + (d - len(sigma)) * np.log(alpha)
    evidence = (
        d / 2.0 * np.log(alpha)
        + n / 2.0 * np.log(beta)
        - 0.5 * logdet
        - beta / 2.0 * res2
        - alpha / 2.0 * m2
        - n / 2.0 * np.log(2 * np.pi)
    )
    return float(evidence / n)


def logme(features: np.ndarray, labels: np.ndarray, regression: bool = False) -> float:
    """LogME (You et al. 2021): the maximum log marginal evidence per example of a Bayesian
    linear model y = F w + eps, w ~ N(0, alpha^-1 I), eps ~ N(0, beta^-1):

        L(alpha, beta) = n/2 log beta + D/2 log alpha - n/2 log 2 pi - beta/2 ||F m - y||^2
                         - alpha/2 m'm - 1/2 log |A|,   A = alpha I + beta F'F,  m = beta A^-1 F'y

    maximised by the paper's fixed-point iteration (with F = U S V', sigma = S^2, x = U'y,
    t = alpha/beta: gamma = sum sigma/(sigma+t), alpha <- gamma / m'm,
    beta <- (n - gamma) / ||F m - y||^2), and divided by n. Classification: the mean over classes
    of the evidence of the one-hot column of each class; regression: of ``labels`` itself
    (columns of a 2-D ``labels`` are averaged likewise). ``features``: (n, D). Higher = better.
    """
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2:
        raise ValueError(f"features must be (n, D), got {f.shape}")
    n, d = f.shape
    y = np.asarray(labels)
    if len(y) != n:
        raise ValueError(f"{n} feature rows but {len(y)} labels")
    if regression:
        cols = y.astype(np.float64).reshape(n, -1)
    else:
        classes = np.unique(y)
        cols = (y.reshape(-1, 1) == classes.reshape(1, -1)).astype(np.float64)
    u, s, _ = np.linalg.svd(f, full_matrices=False)
    sigma = s**2
    evidences = []
    for k in range(cols.shape[1]):
        col = cols[:, k]
        x = u.T @ col
        x2 = x**2
        res_x2 = max(float(col @ col - x2.sum()), 0.0)
        evidences.append(_logme_single(sigma, x2, res_x2, n, d))
    return float(np.mean(evidences))


# --- features ----------------------------------------------------------------------------------


@torch.no_grad()
def method_features(method, split, pad_id: int, batch_size: int = 64) -> torch.Tensor:
    """Mean-pooled last hidden states (n, H) of ``split``'s rows under a tuning method, in row
    order and batches of consecutive rows (the reference implementation; :func:`target_features`
    is the fast one)."""
    was_training = method.training
    method.eval()
    out = []
    for start in range(0, len(split), batch_size):
        batch = collate(split, list(range(start, min(start + batch_size, len(split)))), pad_id)
        hidden = method(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
        out.append(mean_pool(hidden.float(), batch["attention_mask"]))
    method.train(was_training)
    return torch.cat(out)


def flatten_choices(split: EncodedSplit) -> EncodedSplit:
    """A multiple-choice split as a pair split of its (context, choice) sequences: row i's
    choice j becomes one example, label 1 if j is row i's answer else 0 (order: row, choice)."""
    if split.task_type is not TaskType.MULTIPLE_CHOICE:
        raise ValueError(f"not a multiple-choice split: {split.task_type}")
    ids = [seq for row in split.input_ids for seq in row]
    types = [seq for row in split.token_type_ids for seq in row]
    labels = [
        int(j == answer)
        for row, answer in zip(split.input_ids, split.labels, strict=True)
        for j in range(len(row))
    ]
    flat = EncodedSplit(TaskType.PAIR_CLASSIFICATION, ids, types, labels)
    flat.lengths = [len(s) for s in ids]
    return flat


def target_features(
    method, split: EncodedSplit, pad_id: int, batch_size: int = 64
) -> tuple[torch.Tensor, np.ndarray, bool]:
    """``(features, labels, regression)`` of a target split under ``method`` (see the module
    docstring for each task type): features (N, H) float32 in example order, labels (N,)
    (int64 classes, or float64 for regression). Batches are sorted by length (least padding);
    no gradients (``torch.inference_mode``)."""
    kind = split.task_type
    if kind is TaskType.MULTIPLE_CHOICE:
        split = flatten_choices(split)
    if len(split) == 0:
        raise ValueError("LogME needs at least one target example")
    was_training = method.training
    method.eval()
    pooled: list[torch.Tensor | None] = [None] * len(split)
    tokens: list[tuple[int, torch.Tensor, list[int]]] = []
    try:
        with torch.inference_mode():
            for idx in sorted_batches(split.lengths, batch_size):
                batch = collate(split, idx, pad_id)
                hidden = method(
                    batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]
                ).float()
                if kind is TaskType.TOKEN_CLASSIFICATION:
                    keep = batch["labels"] != IGNORE_INDEX
                    for k, i in enumerate(idx):
                        tokens.append((i, hidden[k][keep[k]], batch["labels"][k][keep[k]].tolist()))
                else:
                    for k, vec in zip(idx, mean_pool(hidden, batch["attention_mask"]), strict=True):
                        pooled[k] = vec
    finally:
        method.train(was_training)
    if kind is TaskType.TOKEN_CLASSIFICATION:
        tokens.sort(key=lambda x: x[0])
        feats = torch.cat([t[1] for t in tokens]) if tokens else torch.zeros(0)
        labels = np.asarray([lab for t in tokens for lab in t[2]], dtype=np.int64)
        if len(labels) == 0:
            raise ValueError("the target's rows have no tagged tokens")
        return feats.contiguous(), labels, False
    regression = kind is TaskType.REGRESSION
    labels = np.asarray(split.labels, dtype=np.float64 if regression else np.int64)
    return torch.stack(pooled).contiguous(), labels, regression


# --- the feature cache -------------------------------------------------------------------------

_MEMORY: dict[str, tuple[torch.Tensor, np.ndarray, bool]] = {}


def feature_key(
    run_id: str, checkpoint: str, fingerprint: str, max_examples: int, max_len: int
) -> str:
    """24 hex chars naming the features of one (source run, checkpoint, target data, sample
    size, max_len) under :data:`FEATURE_FORMAT`."""
    text = json.dumps(
        [run_id, checkpoint, fingerprint, int(max_examples), int(max_len), FEATURE_FORMAT]
    )
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _read_cached(path: Path, key: str) -> tuple[torch.Tensor, np.ndarray, bool] | None:
    try:
        tensors = load_file(str(path))
        feats, labels, flag = tensors["features"], tensors["labels"], tensors["regression"]
        if tensors.get("key") is None or bytes(tensors["key"].tolist()).decode() != key:
            return None
        if feats.dim() != 2 or labels.dim() != 1 or len(labels) != len(feats):
            return None
        return feats, labels.numpy(), bool(flag.item())
    except Exception:  # noqa: BLE001 - damaged or foreign file: not a cache hit
        return None


def _write_cached(path: Path, key: str, value: tuple[torch.Tensor, np.ndarray, bool]) -> None:
    feats, labels, regression = value
    tensors = {
        "features": feats.contiguous(),
        "labels": torch.from_numpy(np.ascontiguousarray(labels)),
        "regression": torch.tensor([int(regression)], dtype=torch.int8),
        "key": torch.tensor(list(key.encode()), dtype=torch.uint8),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex}.tmp")
    try:
        save_file(tensors, str(tmp), metadata={"format": FEATURE_FORMAT})
        tmp.replace(path)
    except OSError:
        pass  # a read-only store: the features stay in memory only
    finally:
        tmp.unlink(missing_ok=True)


def clear_feature_cache() -> None:
    """Forget the in-memory features (the disk cache stays)."""
    _MEMORY.clear()


# --- the predictor -----------------------------------------------------------------------------


@dataclass
class LogMEPredictor:
    """p(s) = LogME(features of the target's <= ``max_examples`` training rows under source s's
    tuned ``method`` (its ``checkpoint``), target labels), for every target task type (see the
    module docstring). ``batch_size``: rows per forward pass; ``disk_cache``: keep features
    under ``<store>/cache/logme/``."""

    method: str = "lora"
    checkpoint: str = "best"
    max_examples: int = 500
    batch_size: int = 64
    disk_cache: bool = True
    name: str = "logme"

    @property
    def reads(self) -> Reads:  # the sources' checkpoints and the target's data, no target run
        return Reads(methods=(self.method,), target_run=False, task_data=True)

    def score(self, target: str, sources: list[str], pool: Pool) -> Scores:
        names = check_sources(target, sources)
        if self.max_examples < 1:
            raise ValueError(f"max_examples must be >= 1, not {self.max_examples}")
        runs = {s: pool.require_run(s, self.method) for s in names}  # missing: error first
        data = pool.task_data(target, max_train=self.max_examples)
        rows = data.train[: self.max_examples]
        fingerprint = data.fingerprint()
        cache_dir = pool.store.root / "cache" / "logme" if self.disk_cache else None
        # one loaded backbone and one method per (backbone, method config); states swapped in
        models: dict[tuple, tuple] = {}
        splits: dict[tuple, EncodedSplit] = {}
        out = {}
        with make_progress(enabled=pool.progress, extra=False) as bar:
            task = bar.add_task(f"logme features for {target}", total=len(names))
            for s in names:
                run = runs[s]
                max_len = int(run.config["train"]["max_len"])
                key = feature_key(
                    run.run_id, self.checkpoint, fingerprint, self.max_examples, max_len
                )
                value = _MEMORY.get(key)
                path = cache_dir / f"{key}.safetensors" if cache_dir is not None else None
                if value is None and path is not None and path.is_file():
                    value = _read_cached(path, key)
                if value is None:
                    location = run_backbone_location(run)
                    mkey = (
                        location,
                        run.method,
                        json.dumps(run.config["method_config"], sort_keys=True),
                    )
                    if mkey not in models:
                        _, tokenizer, encoder = load_backbone(location)
                        models[mkey] = (
                            tokenizer,
                            build_method(run.method, encoder, run.config["method_config"]),
                        )
                    tokenizer, method = models[mkey]
                    skey = (location, max_len)
                    if skey not in splits:
                        splits[skey] = encode_rows(rows, data.spec, tokenizer, max_len)
                    state = pool.store.load_checkpoint(run.run_id, self.checkpoint)
                    method.load_tuned_state(
                        {
                            k.removeprefix("method."): v
                            for k, v in state.items()
                            if k.startswith("method.")
                        }
                    )
                    value = target_features(
                        method, splits[skey], tokenizer.pad_token_id, self.batch_size
                    )
                    if path is not None:
                        _write_cached(path, key, value)
                _MEMORY[key] = value
                feats, labels, regression = value
                out[s] = logme(feats.numpy(), labels, regression=regression)
                bar.update(task, advance=1)
        return Scores(out, {"method": self.method, "target_type": str(data.spec.type)})


register("logme", lambda **kw: LogMEPredictor(**kw))
