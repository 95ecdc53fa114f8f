"""Baseline predictors (Vu et al. 2020; You et al. 2021): higher score = predicted more helpful.

* ``datasize``  p(s) = |train(s)|.
* ``random``    p(s) = U(0, 1) drawn from sha256(seed, target, source): deterministic per seed and
  target, independent of the order (and number) of the sources.
* ``curvegrad`` p(s) = -||g_t - g_s||_2, g = :func:`loss_curve_slopes` of the stored training-loss
  curve of the task's run of ``method`` (default lora).
* ``textemb``   p(s) = cos(x_t, x_s), x = :func:`text_embedding` of <= 1000 training texts under
  the frozen backbone.
* ``taskemb``   p(s) = cos(F_t, F_s), F = :func:`fisher_task_embedding` of the task-tuned model
  (the run's ``best`` checkpoint) over <= 256 training examples.

LogME lives in :mod:`taskscout.predictors.logme` (re-exported here for older imports).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from taskscout.backbone import load_backbone
from taskscout.data import TaskSpec, TaskType
from taskscout.embeddings.similarity import cosine_scores
from taskscout.encode import IGNORE_INDEX, collate, encode_rows, sorted_batches
from taskscout.predictors.base import Pool, Reads, Scores, check_sources
from taskscout.predictors.logme import LogMEPredictor, logme, method_features  # noqa: F401
from taskscout.predictors.registry import register
from taskscout.tuning.methods import build_method
from taskscout.tuning.model import TaskModel
from taskscout.tuning.run import run_backbone_location

# --- datasize / random ---------------------------------------------------------------------


@dataclass
class DataSizePredictor:
    """p(s) = number of training examples of s (the store's task record, else its latest run)."""

    name: str = "datasize"
    reads = Reads()

    def score(self, target: str, sources: list[str], pool: Pool) -> Scores:
        out = {}
        for s in check_sources(target, sources):
            info = pool.task_info(s)
            if info is not None:
                out[s] = float(info["num_train"])
            else:
                out[s] = float(pool.require_run(s).num_train)
        return Scores(out)


def _uniform(*parts: object) -> float:
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


@dataclass
class RandomPredictor:
    """p(s) ~ U(0, 1), a deterministic function of (seed, target, source)."""

    seed: int = 0
    name: str = "random"
    reads = Reads()

    def score(self, target: str, sources: list[str], pool: Pool | None = None) -> Scores:
        names = check_sources(target, sources)
        return Scores({s: _uniform(self.seed, target, s) for s in names}, {"seed": self.seed})


# --- curvegrad -----------------------------------------------------------------------------

CURVE_POINTS: tuple[float, ...] = (0.1, 0.2, 0.3, 0.5, 0.7)


def loss_curve_slopes(
    loss: Sequence[float],
    steps: Sequence[float] | None = None,
    points: Sequence[float] = CURVE_POINTS,
    window: float = 0.05,
    min_points: int = 3,
) -> np.ndarray:
    """Slopes of a training-loss curve at fractions ``points`` of training (CurveGrad).

    ``loss[k]`` is the training loss at global step ``steps[k]`` (default 1, 2, ...); training
    ends at the last step T, and u_k = steps[k] / T is the fraction of training. For each point p,
    the slope is the least-squares line fit of loss against u over the points with
    |u_k - p| <= ``window``; if fewer than ``min_points`` fall in that window, over the
    ``min_points`` points nearest to p instead. The slope is in loss units per *whole training*
    (d loss / d u), so curves of runs with different step counts are comparable: for
    loss = a + b * step / T every slope is b. Returns shape (len(points),).
    """
    y = np.asarray(loss, dtype=np.float64)
    x = np.arange(1, len(y) + 1, dtype=np.float64) if steps is None else np.asarray(steps, float)
    if y.ndim != 1 or x.shape != y.shape:
        raise ValueError(f"loss and steps must be 1-D of equal length, got {y.shape}, {x.shape}")
    if len(y) < 2:
        raise ValueError(f"a loss curve needs at least 2 points for slopes, got {len(y)}")
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    if x[-1] <= 0:
        raise ValueError("steps must be positive")
    u = x / x[-1]
    slopes = []
    for p in points:
        selected = np.flatnonzero(np.abs(u - p) <= window + 1e-9)  # symmetric despite rounding
        if len(selected) < min_points:
            selected = np.argsort(np.abs(u - p), kind="stable")[: max(2, min_points)]
        xs, ys = u[selected], y[selected]
        var = ((xs - xs.mean()) ** 2).sum()
        slopes.append(0.0 if var == 0 else float(((xs - xs.mean()) * (ys - ys.mean())).sum() / var))
    return np.asarray(slopes)


@dataclass
class CurveGradPredictor:
    """p(s) = -||slopes(t) - slopes(s)||_2 over the loss curves of the tasks' ``method`` runs."""

    method: str = "lora"
    points: tuple[float, ...] = CURVE_POINTS
    window: float = 0.05
    name: str = "curvegrad"

    @property
    def reads(self) -> Reads:
        return Reads(methods=(self.method,))

    def vector(self, pool: Pool, task: str) -> np.ndarray:
        run = pool.require_run(task, self.method)
        steps = run.train_loss_steps or None
        return loss_curve_slopes(run.loss_curve, steps, self.points, self.window)

    def score(self, target: str, sources: list[str], pool: Pool) -> Scores:
        names = check_sources(target, sources)
        g_t = self.vector(pool, target)
        return Scores(
            {s: -float(np.linalg.norm(g_t - self.vector(pool, s))) for s in names},
            {"method": self.method},
        )


# --- textemb -------------------------------------------------------------------------------


def task_texts(rows: list[dict]) -> list[str | tuple[str, str]]:
    """One text (or text pair) per canonical row: text (+ text_pair), joined tokens (token
    classification), or the question paired with its choices joined (multiple choice)."""
    out: list[str | tuple[str, str]] = []
    for r in rows:
        if "tokens" in r and "text" not in r:
            out.append(" ".join(map(str, r["tokens"])))
        elif r.get("choices") is not None:
            out.append((str(r.get("text") or ""), " ".join(map(str, r["choices"]))))
        elif r.get("text_pair") is not None:
            out.append((r["text"], r["text_pair"]))
        else:
            out.append(r["text"])
    return out


def _mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    mask = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)


@torch.no_grad()
def text_embedding(
    texts: Sequence[str | tuple[str, str]],
    tokenizer,
    encoder: nn.Module,
    batch_size: int = 64,
    max_len: int = 128,
) -> torch.Tensor:
    """TextEmb (Vu et al. 2020): x = (1/N) sum_n mean_{i in tokens(n)} h_i^(last), the frozen
    encoder's last-layer token states averaged over each example's tokens, then over the N
    examples. ``texts``: strings or (text, text_pair) tuples. Returns (H,) float32."""
    if not texts:
        raise ValueError("text_embedding needs at least one text")
    was_training = encoder.training
    encoder.eval()
    total, count = None, 0
    for start in range(0, len(texts), batch_size):
        chunk = texts[start : start + batch_size]
        # each text (or pair) is tokenised on its own, so its encoding is batch-independent
        encs = [
            tokenizer(
                *(t if isinstance(t, tuple) else (t,)),
                truncation=True,
                max_length=max_len,
                return_token_type_ids=True,
            )
            for t in chunk
        ]
        width = max(len(e["input_ids"]) for e in encs)
        ids = torch.full((len(encs), width), tokenizer.pad_token_id or 0, dtype=torch.long)
        types = torch.zeros((len(encs), width), dtype=torch.long)
        mask = torch.zeros((len(encs), width), dtype=torch.long)
        for i, e in enumerate(encs):
            k = len(e["input_ids"])
            ids[i, :k] = torch.tensor(e["input_ids"])
            types[i, :k] = torch.tensor(e["token_type_ids"])
            mask[i, :k] = 1
        hidden = encoder(input_ids=ids, attention_mask=mask, token_type_ids=types)
        pooled = _mean_pool(hidden.last_hidden_state.float(), mask).sum(0)
        total = pooled if total is None else total + pooled
        count += len(chunk)
    encoder.train(was_training)
    return (total / count).float()


_TEXTEMB_CACHE: dict[tuple, torch.Tensor] = {}


@dataclass
class TextEmbPredictor:
    """p(s) = cos(TextEmb(t), TextEmb(s)); ``vectors`` may hold precomputed (H,) vectors by
    task name. Computed vectors are cached in memory by (backbone, data fingerprint, settings)."""

    max_examples: int = 1000
    batch_size: int = 64
    max_len: int = 128
    vectors: dict[str, torch.Tensor] = field(default_factory=dict)
    name: str = "textemb"
    reads = Reads(task_data=True)

    #: The ``kind`` of the task vectors this predictor stores and reads.
    KIND = "textemb"

    def settings(self) -> dict:
        """What a stored vector must have been computed with to be used (the batch size
        changes nothing but float rounding and is not part of it)."""
        return {"max_examples": self.max_examples, "max_len": self.max_len, "seed": 0}

    def vector(self, pool: Pool, task: str) -> torch.Tensor:
        """The (H,) mean text embedding of ``task``: from ``vectors``; else the vector stored in
        the pool with these settings (:meth:`store_vector`: computed from the data the pool's
        runs of the task were tuned on, so it describes that task even where a data folder at
        hand holds something else under its name); else computed from the task's data."""
        if task in self.vectors:
            return self.vectors[task]
        stored = pool.store.load_task_vector(
            task=task, backbone=pool.backbone, kind=self.KIND, settings=self.settings()
        )
        if stored is not None:
            return stored
        data = pool.task_data(task, max_train=self.max_examples)
        return self.compute(pool, data)

    def compute(self, pool: Pool, data) -> torch.Tensor:
        """The mean text embedding of ``data`` (its first ``max_examples`` training rows) under
        the pool's backbone; memoised by (backbone, data fingerprint, settings)."""
        key = (pool.backbone, data.fingerprint(), self.max_examples, self.max_len)
        if key not in _TEXTEMB_CACHE:
            _, tokenizer, encoder = load_backbone(pool.backbone_location())
            texts = task_texts(data.train[: self.max_examples])
            _TEXTEMB_CACHE[key] = text_embedding(
                texts, tokenizer, encoder, self.batch_size, self.max_len
            )
        return _TEXTEMB_CACHE[key]

    def store_vector(self, pool: Pool, task: str) -> torch.Tensor:
        """Computes ``task``'s vector from its data (``pool.tasks`` or ``data_dir``) and stores
        it in the pool's store, so rankings without the data can use it. Returns it."""
        data = pool.task_data(task, max_train=self.max_examples)
        vec = self.compute(pool, data)
        pool.store.save_task_vector(
            task=task,
            backbone=pool.backbone,
            kind=self.KIND,
            settings=self.settings(),
            fingerprint=data.fingerprint(),
            tensor=vec,
        )
        return vec

    def score(self, target: str, sources: list[str], pool: Pool) -> Scores:
        names = check_sources(target, sources)
        t = self.vector(pool, target)
        cos = cosine_scores(t, torch.stack([self.vector(pool, s) for s in names]))
        return Scores(zip(names, cos.tolist(), strict=True))


# --- taskemb -------------------------------------------------------------------------------


def _layer_list(model: nn.Module, num_layers: int) -> nn.ModuleList:
    """The transformer's list of layers (``...encoder.layer`` for BERT-like models)."""
    for name, module in model.named_modules():
        is_list = isinstance(module, nn.ModuleList) and len(module) == num_layers
        if is_list and name.split(".")[-1] in ("layer", "layers"):
            return module
    raise ValueError(f"no list of {num_layers} transformer layers found in the model")


def _loss_sum(model, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """sum_n loss_n, each example's own loss (token tasks: mean over its labelled tokens)."""

    logits = logits.float()
    kind = model.spec.type
    if kind is TaskType.REGRESSION:
        return F.mse_loss(logits, labels.float(), reduction="sum")
    if kind is TaskType.TOKEN_CLASSIFICATION:
        ce = F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]),
            labels.reshape(-1),
            ignore_index=IGNORE_INDEX,
            reduction="none",
        ).view(labels.shape)
        keep = (labels != IGNORE_INDEX).float()
        return ((ce * keep).sum(1) / keep.sum(1).clamp(min=1.0)).sum()
    return F.cross_entropy(logits, labels, reduction="sum")


def fisher_task_embedding(
    model, split, pad_id: int, max_examples: int = 256, batch_size: int = 16
) -> torch.Tensor:
    """TaskEmb (Vu et al. 2020): the diagonal empirical Fisher of a task-tuned model w.r.t. each
    layer's output hidden states,

        F_l = (1/N) sum_n (1/|T_n|) sum_{i in T_n} (d loss_n / d h_{l,i})^2      (H,) per layer l

    over the first N <= ``max_examples`` rows of ``split`` (gold labels: *empirical* Fisher) and
    the input tokens T_n of each example (virtual prompt tokens are left out; for multiple choice,
    each real choice sequence counts as one example), concatenated over the layers:
    returns (num_layers * H,) float32. ``model`` is a :class:`TaskModel` (evaluated in eval mode).

    Each layer's output is replaced in the forward pass by a detached copy that requires grad (a
    leaf), so ``torch.autograd.grad`` of the summed per-example losses gives every example's own
    gradient w.r.t. it exactly (examples do not interact in an encoder), whatever the method tunes.
    """
    method = model.method
    layers = _layer_list(method, method.num_layers)
    captured: list[torch.Tensor] = []

    def hook(module, inputs, output):
        hidden = output[0] if isinstance(output, tuple) else output
        leaf = hidden.detach().requires_grad_(True)
        captured.append(leaf)
        return (leaf, *output[1:]) if isinstance(output, tuple) else leaf

    n = min(len(split), max_examples)
    if n == 0:
        raise ValueError("fisher_task_embedding needs at least one example")
    lengths = split.lengths[:n]
    sums = torch.zeros(method.num_layers, method.hidden_size, dtype=torch.float64)
    rows = 0.0
    handles = [layer.register_forward_hook(hook) for layer in layers]
    was_training = model.training
    model.eval()
    try:
        for idx in sorted_batches(lengths, batch_size):
            batch = collate(split, idx, pad_id)
            captured.clear()
            with torch.enable_grad():
                loss = _loss_sum(model, model(batch), batch["labels"])
                grads = torch.autograd.grad(loss, captured, allow_unused=True)
            mask = batch["attention_mask"].reshape(-1, batch["attention_mask"].shape[-1])
            weight = (
                batch["choice_mask"].reshape(-1).double()
                if "choice_mask" in batch
                else torch.ones(mask.shape[0], dtype=torch.float64)
            )
            length = mask.shape[1]
            m = mask.unsqueeze(-1).double()
            for layer, grad in enumerate(grads):
                if grad is None:
                    continue
                sq = grad[:, -length:].double() ** 2 * m  # the input positions only
                per_row = sq.sum(1) / m.sum(1).clamp(min=1.0)  # (rows, H)
                sums[layer] += (per_row * weight.unsqueeze(-1)).sum(0)
            rows += float(weight.sum())
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return (sums / max(rows, 1.0)).reshape(-1).float()


def load_tuned_model(pool: Pool, run, checkpoint: str = "best"):
    """(TaskModel with the run's method and head loaded, tokenizer) for a stored run."""
    _, tokenizer, encoder = load_backbone(run_backbone_location(run))
    info = pool.task_info(run.task)
    spec = TaskSpec.from_dict(info["spec"]) if info else pool.task_data(run.task, 1).spec
    model = TaskModel(build_method(run.method, encoder, run.config["method_config"]), spec)
    model.load_trainable_state(pool.store.load_checkpoint(run.run_id, checkpoint))
    model.eval()
    return model, tokenizer


_FISHER_CACHE: dict[tuple, torch.Tensor] = {}


@dataclass
class TaskEmbPredictor:
    """p(s) = cos(TaskEmb(t), TaskEmb(s)), each from the task's ``method`` run (``checkpoint``
    of it, default best) over <= ``max_examples`` of its training examples."""

    method: str = "lora"
    checkpoint: str = "best"
    max_examples: int = 256
    batch_size: int = 16
    name: str = "taskemb"

    @property
    def reads(self) -> Reads:  # its own checkpoint, not the pool's
        return Reads(methods=(self.method,), task_data=True)

    def vector(self, pool: Pool, task: str) -> torch.Tensor:
        run = pool.require_run(task, self.method)
        key = (run.run_id, self.checkpoint, self.max_examples)
        if key not in _FISHER_CACHE:
            model, tokenizer = load_tuned_model(pool, run, self.checkpoint)
            data = pool.task_data(task, max_train=self.max_examples)
            max_len = run.config["train"]["max_len"]
            split = encode_rows(data.train[: self.max_examples], model.spec, tokenizer, max_len)
            _FISHER_CACHE[key] = fisher_task_embedding(
                model, split, tokenizer.pad_token_id, self.max_examples, self.batch_size
            )
        return _FISHER_CACHE[key]

    def score(self, target: str, sources: list[str], pool: Pool) -> Scores:
        names = check_sources(target, sources)
        t = self.vector(pool, target)
        cos = cosine_scores(t, torch.stack([self.vector(pool, s) for s in names]))
        return Scores(zip(names, cos.tolist(), strict=True), {"method": self.method})


register("datasize", lambda **kw: DataSizePredictor(**kw))
register("random", lambda **kw: RandomPredictor(**kw))
register("curvegrad", lambda **kw: CurveGradPredictor(**kw))
register("textemb", lambda **kw: TextEmbPredictor(**kw))
register("taskemb", lambda **kw: TaskEmbPredictor(**kw))
