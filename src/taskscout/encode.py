"""Tokenise a task once per (task data, tokenizer, max_len), cache it, and batch it.

Features are plain Python lists so they pickle cheaply (worker processes, disk cache). The label
encoding per task type: class index (classification, pair), float (regression), one index per
sub-token with -100 on all but the first sub-token of a word (token classification), the index of
the right choice (multiple choice, whose ``input_ids`` hold one sequence per choice).
"""

from __future__ import annotations

import hashlib
import os
import pickle
import random
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import torch

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


_MEMORY: dict[str, tuple[EncodedSplit, EncodedSplit]] = {}


def encode_task(
    data: TaskData, tokenizer, max_len: int, cache_dir: str | Path | None = None
) -> tuple[EncodedSplit, EncodedSplit]:
    """(train, dev) features, memoised in-process and, with ``cache_dir``, on disk."""
    key = hashlib.sha256(
        f"{data.fingerprint()}|{tokenizer_fingerprint(tokenizer)}|{max_len}".encode()
    ).hexdigest()[:24]
    if key in _MEMORY:
        return _MEMORY[key]
    path = Path(cache_dir) / f"{data.spec.name}-{key}.pkl" if cache_dir else None
    if path is not None and path.is_file():
        try:
            with path.open("rb") as fh:
                _MEMORY[key] = pickle.load(fh)
            return _MEMORY[key]
        except Exception:  # a damaged cache file is rebuilt, never trusted
            path.unlink(missing_ok=True)
    result = (
        encode_rows(data.train, data.spec, tokenizer, max_len),
        encode_rows(data.dev, data.spec, tokenizer, max_len),
    )
    _MEMORY[key] = result
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}-{uuid.uuid4().hex}.tmp")  # one per writer
        with tmp.open("wb") as fh:
            pickle.dump(result, fh, protocol=pickle.HIGHEST_PROTOCOL)
        tmp.replace(path)
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
