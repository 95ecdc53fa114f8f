"""Tokenise a task once per (task data, tokenizer, max_len), cache it, and batch it.

Features are plain Python lists. The label encoding per task type: class index (classification,
pair), float (regression), one index per sub-token with -100 on all but the first sub-token of a
word (token classification), the index of the right choice (multiple choice, whose
``input_ids`` hold one sequence per choice).

The disk cache (``<cache_dir>/<task>-<key>.safetensors``) holds only integer and float arrays
(safetensors: a JSON header plus raw numbers, nothing in it can run code) and is validated on
read; a damaged or foreign file is ignored and rewritten. No cache file is ever unpickled.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from taskscout.backbone import tokenizer_fingerprint
from taskscout.data import TaskData, TaskSpec, TaskType

IGNORE_INDEX = -100


@dataclass
class EncodedSplit:
    """Tokenised rows of one split. ``input_ids[i]`` is a list of ids, or for multiple choice a
    list (one per choice) of lists of ids; ``token_type_ids`` mirrors it; ``labels[i]`` as above."""

    task_type: TaskType
    input_ids: list
    token_type_ids: list
    labels: list
    word_ids: list | None = None  # token classification: first-sub-token positions per row
    lengths: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.labels)


def _length(ids) -> int:
    return max(len(x) for x in ids) if ids and isinstance(ids[0], list) else len(ids)


def encode_rows(rows: list[dict], spec: TaskSpec, tokenizer, max_len: int) -> EncodedSplit:
    """Tokenise canonical rows (see ``taskscout.data``) of one task type."""
    t = spec.type
    kw = dict(truncation=True, max_length=max_len, return_token_type_ids=True)
    input_ids, type_ids, labels, word_ids = [], [], [], None
    if t in (TaskType.CLASSIFICATION, TaskType.PAIR_CLASSIFICATION, TaskType.REGRESSION):
        texts = [r["text"] for r in rows]
        pairs = [r.get("text_pair") for r in rows]
        if any(p is not None for p in pairs):
            enc = tokenizer(texts, [p or "" for p in pairs], **kw)
        else:
            enc = tokenizer(texts, **kw)
        input_ids, type_ids = enc["input_ids"], enc["token_type_ids"]
        if t is TaskType.REGRESSION:
            labels = [float(r["label"]) for r in rows]
        else:
            index = {label: i for i, label in enumerate(spec.labels)}
            labels = [index[r["label"]] for r in rows]
    elif t is TaskType.TOKEN_CLASSIFICATION:
        index = {tag: i for i, tag in enumerate(spec.labels)}
        enc = tokenizer([r["tokens"] for r in rows], is_split_into_words=True, **kw)
        input_ids, type_ids, word_ids = enc["input_ids"], enc["token_type_ids"], []
        for i, row in enumerate(rows):
            seq, previous, firsts = [], None, []
            for w in enc.word_ids(i):
                if w is None or w == previous:
                    seq.append(IGNORE_INDEX)
                else:
                    seq.append(index[row["tags"][w]])
                    firsts.append(w)
                previous = w
            labels.append(seq)
            word_ids.append(firsts)
    elif t is TaskType.MULTIPLE_CHOICE:
        flat_text = [r["text"] for r in rows for _ in r["choices"]]
        flat_choice = [c for r in rows for c in r["choices"]]
        enc = tokenizer(flat_text, flat_choice, **kw)
        start = 0
        for r in rows:
            n = len(r["choices"])
            input_ids.append(enc["input_ids"][start : start + n])
            type_ids.append(enc["token_type_ids"][start : start + n])
            start += n
            labels.append(int(r["label"]))
    else:  # pragma: no cover - TaskType is closed
        raise ValueError(f"unsupported task type {t}")
    split = EncodedSplit(t, input_ids, type_ids, labels, word_ids)
    split.lengths = [_length(ids) for ids in input_ids]
    return split


# -- the disk cache ----------------------------------------------------------------------------

CACHE_FORMAT = "taskscout-encoded-splits/1"  # safetensors metadata "format"; part of the key
CACHE_SUFFIX = ".safetensors"
SPLITS = ("train", "dev")


def _ragged(seqs: list[list], dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """(concatenated values, int64 length of each sequence)."""
    lens = torch.tensor([len(x) for x in seqs], dtype=torch.int64)
    flat = [v for x in seqs for v in x]
    return torch.tensor(flat, dtype=dtype), lens


def _split_tensors(split: EncodedSplit, prefix: str) -> dict[str, torch.Tensor]:
    """The arrays of one split: token ids (int32) and their per-sequence lengths, for multiple
    choice the number of choices per row, the labels, word ids and row lengths (int64)."""
    multiple = split.task_type is TaskType.MULTIPLE_CHOICE
    seqs = [s for row in split.input_ids for s in row] if multiple else split.input_ids
    types = [s for row in split.token_type_ids for s in row] if multiple else split.token_type_ids
    if [len(s) for s in seqs] != [len(s) for s in types]:
        raise ValueError("token_type_ids do not mirror input_ids")
    out = {}
    out[f"{prefix}.ids"], out[f"{prefix}.seq_len"] = _ragged(seqs, torch.int32)
    out[f"{prefix}.type_ids"], _ = _ragged(types, torch.int32)
    if multiple:
        out[f"{prefix}.choices"] = torch.tensor(
            [len(row) for row in split.input_ids], dtype=torch.int64
        )
    if split.task_type is TaskType.TOKEN_CLASSIFICATION:
        out[f"{prefix}.labels"], out[f"{prefix}.label_len"] = _ragged(split.labels, torch.int64)
    elif split.task_type is TaskType.REGRESSION:
        out[f"{prefix}.labels"] = torch.tensor(split.labels, dtype=torch.float64)
    else:
        out[f"{prefix}.labels"] = torch.tensor(split.labels, dtype=torch.int64)
    if split.word_ids is not None:
        out[f"{prefix}.word_ids"], out[f"{prefix}.word_len"] = _ragged(split.word_ids, torch.int64)
    out[f"{prefix}.lengths"] = torch.tensor(split.lengths, dtype=torch.int64)
    return out


def _take(tensors: dict[str, torch.Tensor], name: str, dtype: torch.dtype) -> torch.Tensor:
    t = tensors.get(name)
    if t is None:
        raise ValueError(f"no array {name!r}")
    if t.dtype != dtype or t.dim() != 1:
        raise ValueError(f"{name}: expected a 1-D {dtype} array, got {t.dtype} {tuple(t.shape)}")
    return t


def _unragged(values: torch.Tensor, lens: torch.Tensor, name: str) -> list[list]:
    if bool((lens < 0).any()) or int(lens.sum()) != values.numel():
        raise ValueError(f"{name}: sequence lengths do not add up to {values.numel()} values")
    flat, out, start = values.tolist(), [], 0
    for n in lens.tolist():
        out.append(flat[start : start + n])
        start += n
    return out


def _split_from_tensors(
    tensors: dict[str, torch.Tensor], prefix: str, task_type: TaskType
) -> EncodedSplit:
    """Inverse of :func:`_split_tensors`; ValueError on any missing array, wrong dtype or shape,
    or inconsistent length."""
    seq_len = _take(tensors, f"{prefix}.seq_len", torch.int64)
    seqs = _unragged(_take(tensors, f"{prefix}.ids", torch.int32), seq_len, f"{prefix}.ids")
    types = _unragged(
        _take(tensors, f"{prefix}.type_ids", torch.int32), seq_len, f"{prefix}.type_ids"
    )
    if task_type is TaskType.MULTIPLE_CHOICE:
        choices = _take(tensors, f"{prefix}.choices", torch.int64)
        input_ids = _unragged_rows(seqs, choices, f"{prefix}.choices")
        type_ids = _unragged_rows(types, choices, f"{prefix}.choices")
    else:
        input_ids, type_ids = seqs, types
    n = len(input_ids)
    if task_type is TaskType.TOKEN_CLASSIFICATION:
        label_len = _take(tensors, f"{prefix}.label_len", torch.int64)
        labels = _unragged(_take(tensors, f"{prefix}.labels", torch.int64), label_len, "labels")
    elif task_type is TaskType.REGRESSION:
        labels = _take(tensors, f"{prefix}.labels", torch.float64).tolist()
    else:
        labels = _take(tensors, f"{prefix}.labels", torch.int64).tolist()
    word_ids = None
    if f"{prefix}.word_ids" in tensors:
        word_len = _take(tensors, f"{prefix}.word_len", torch.int64)
        word_ids = _unragged(_take(tensors, f"{prefix}.word_ids", torch.int64), word_len, "words")
    lengths = _take(tensors, f"{prefix}.lengths", torch.int64).tolist()
    if any(len(x) != n for x in (labels, lengths, word_ids if word_ids is not None else labels)):
        raise ValueError(f"{prefix}: arrays disagree on the number of rows ({n})")
    return EncodedSplit(task_type, input_ids, type_ids, labels, word_ids, lengths)


def _unragged_rows(seqs: list[list], counts: torch.Tensor, name: str) -> list[list[list]]:
    if bool((counts < 0).any()) or int(counts.sum()) != len(seqs):
        raise ValueError(f"{name}: choice counts do not add up to {len(seqs)} sequences")
    out, start = [], 0
    for n in counts.tolist():
        out.append(seqs[start : start + n])
        start += n
    return out


def write_encoded(path: Path, splits: tuple[EncodedSplit, EncodedSplit], key: str) -> None:
    """Atomically writes (train, dev) splits to ``path`` (safetensors; metadata: format, task
    type, cache ``key``). Concurrent writers of one key each write a temp file of their own."""
    tensors = {}
    for prefix, split in zip(SPLITS, splits, strict=True):
        tensors.update(_split_tensors(split, prefix))
    meta = {"format": CACHE_FORMAT, "task_type": str(splits[0].task_type), "key": key}
    data = st_save(tensors, metadata=meta)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex}.tmp")  # one per writer
    try:
        tmp.write_bytes(data)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def read_encoded(
    path: Path, task_type: TaskType, key: str
) -> tuple[EncodedSplit, EncodedSplit] | None:
    """The (train, dev) splits cached in ``path`` for ``key``, or None if the file is missing,
    unreadable, not a cache file of this format, of another task type or key, or inconsistent.
    Parses numbers only: nothing in the file is executed."""
    try:
        data = path.read_bytes()
        meta = _metadata(data)
        if meta != {"format": CACHE_FORMAT, "task_type": str(task_type), "key": key}:
            return None
        tensors = st_load(data)
        train, dev = (_split_from_tensors(tensors, p, TaskType(task_type)) for p in SPLITS)
    except Exception:  # any unreadable, foreign or inconsistent file: not a cache hit
        return None
    return train, dev


def _metadata(data: bytes) -> dict | None:
    """The ``__metadata__`` of a safetensors file's JSON header (ValueError if malformed)."""
    if len(data) < 8:
        raise ValueError("too short for a safetensors file")
    n = int.from_bytes(data[:8], "little")
    if n > len(data) - 8:
        raise ValueError("header longer than the file")
    return json.loads(data[8 : 8 + n].decode("utf-8")).get("__metadata__")


_MEMORY: dict[str, tuple[EncodedSplit, EncodedSplit]] = {}
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]")


def cache_key(data: TaskData, tokenizer, max_len: int) -> str:
    """24 hex chars identifying (task rows + spec, tokenizer, max_len, cache format)."""
    text = f"{data.fingerprint()}|{tokenizer_fingerprint(tokenizer)}|{max_len}|{CACHE_FORMAT}"
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def cache_path(cache_dir: str | Path, data: TaskData, key: str) -> Path:
    """``<cache_dir>/<task name, made file-safe>-<key>.safetensors``."""
    name = _UNSAFE_NAME.sub("_", data.spec.name)[:80] or "task"
    return Path(cache_dir) / f"{name}-{key}{CACHE_SUFFIX}"


def encode_task(
    data: TaskData, tokenizer, max_len: int, cache_dir: str | Path | None = None
) -> tuple[EncodedSplit, EncodedSplit]:
    """(train, dev) features, memoised in-process and, with ``cache_dir``, on disk (see the
    module docstring: a damaged or foreign cache file is ignored and rewritten)."""
    key = cache_key(data, tokenizer, max_len)
    if key in _MEMORY:
        return _MEMORY[key]
    path = cache_path(cache_dir, data, key) if cache_dir else None
    if path is not None and path.is_file():
        cached = read_encoded(path, data.spec.type, key)
        if cached is not None:
            _MEMORY[key] = cached
            return cached
    result = (
        encode_rows(data.train, data.spec, tokenizer, max_len),
        encode_rows(data.dev, data.spec, tokenizer, max_len),
    )
    _MEMORY[key] = result
    if path is not None:
        write_encoded(path, result, key)  # replaces a damaged or foreign file
    return result


def length_grouped_batches(
    lengths: list[int], batch_size: int, rng: random.Random, mega: int = 50
) -> list[list[int]]:
    """Shuffled batches of similar length (as transformers' LengthGroupedSampler).

    Indices are shuffled, cut into mega-batches of ``mega * batch_size``, each sorted by
    descending length and cut into batches; the batch order is then shuffled.
    """
    order = list(range(len(lengths)))
    rng.shuffle(order)
    size = mega * batch_size
    batches = []
    for start in range(0, len(order), size):
        chunk = sorted(order[start : start + size], key=lambda i: -lengths[i])
        batches.extend(chunk[j : j + batch_size] for j in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


def sorted_batches(lengths: list[int], batch_size: int) -> list[list[int]]:
    """Evaluation batches in descending length order (least padding, deterministic)."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return [order[j : j + batch_size] for j in range(0, len(order), batch_size)]


def _pad(seqs: list[list[int]], value: int, width: int | None = None) -> torch.Tensor:
    width = width or max(len(s) for s in seqs)
    out = torch.full((len(seqs), width), value, dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = torch.tensor(s, dtype=torch.long)
    return out


def collate(split: EncodedSplit, indices: list[int], pad_id: int) -> dict[str, torch.Tensor]:
    """Pad the rows ``indices`` to the longest one (dynamic padding).

    Returns ``input_ids``, ``attention_mask``, ``token_type_ids`` of shape (B, T), or (B, C, T) for
    multiple choice (plus ``choice_mask`` (B, C), 0 for padding choices), and ``labels`` of
    shape (B,), or (B, T) for token classification.
    """
    ids = [split.input_ids[i] for i in indices]
    types = [split.token_type_ids[i] for i in indices]
    if split.task_type is TaskType.MULTIPLE_CHOICE:
        # rows may have different numbers of choices: pad with empty choices, masked in the head
        n_max = max(len(x) for x in ids)
        flat_ids = [s for x in ids for s in x + [[pad_id]] * (n_max - len(x))]
        flat_types = [s for x in types for s in x + [[0]] * (n_max - len(x))]
        width = max(len(s) for s in flat_ids)
        mask = [[1] * len(s) for s in flat_ids]  # a padding choice is one attended pad token
        shape = (len(ids), n_max, width)
        return {
            "input_ids": _pad(flat_ids, pad_id).view(shape),
            "token_type_ids": _pad(flat_types, 0).view(shape),
            "attention_mask": _pad(mask, 0, width).view(shape),
            "choice_mask": torch.tensor([[1] * len(x) + [0] * (n_max - len(x)) for x in ids]),
            "labels": torch.tensor([split.labels[i] for i in indices], dtype=torch.long),
        }
    batch = {
        "input_ids": _pad(ids, pad_id),
        "token_type_ids": _pad(types, 0),
        "attention_mask": _pad([[1] * len(s) for s in ids], 0),
    }
    labels = [split.labels[i] for i in indices]
    if split.task_type is TaskType.TOKEN_CLASSIFICATION:
        batch["labels"] = _pad(labels, IGNORE_INDEX)
    elif split.task_type is TaskType.REGRESSION:
        batch["labels"] = torch.tensor(labels, dtype=torch.float32)
    else:
        batch["labels"] = torch.tensor(labels, dtype=torch.long)
    return batch
