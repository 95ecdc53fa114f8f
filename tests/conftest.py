"""Shared fixtures: a tiny randomly initialised BERT written to disk like a real Hugging Face
model folder (config + safetensors weights + fast WordPiece tokenizer), and small in-test tasks.

Tests pass the folder as ``backbone=str(path)``, so the real local-path loading code runs.
"""

from __future__ import annotations

import json
import random
import re
import unicodedata
from collections import Counter
from pathlib import Path

import pytest
import torch

from taskscout.data import TaskData, TaskSpec, demo_data_dir

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
TINY = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "max_position_embeddings": 256,
}
_WORD = re.compile(r"[a-z0-9]+|[^\sa-z0-9]")


def _strip_accents(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")


def _demo_texts() -> list[str]:
    texts: list[str] = []
    for path in sorted(demo_data_dir().glob("*/*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            for key in ("text", "text_pair"):
                if isinstance(row.get(key), str):
                    texts.append(row[key])
            for key in ("choices", "tokens"):
                if isinstance(row.get(key), list):
                    texts.extend(str(x) for x in row[key])
    return texts


def build_vocab(num_words: int = 1500) -> list[str]:
    """[PAD] [UNK] [CLS] [SEP] [MASK], the most frequent lowercased demo-suite words, then every
    single character of the suite and its ``##`` continuation form."""
    counts: Counter[str] = Counter()
    chars: set[str] = set("abcdefghijklmnopqrstuvwxyz0123456789.,;:!?'\"-()")
    for text in _demo_texts():
        text = _strip_accents(text.lower())
        counts.update(w for w in _WORD.findall(text) if len(w) > 1)
        chars.update(c for c in text if not c.isspace() and c.isprintable())
    words = [w for w, _ in counts.most_common(num_words)]
    vocab = list(SPECIAL_TOKENS)
    seen = set(vocab)
    for token in [*words, *sorted(chars), *(f"##{c}" for c in sorted(chars))]:
        if token not in seen:
            seen.add(token)
            vocab.append(token)
    return vocab


def write_tiny_backbone(folder: Path, *, seed: int = 0, **overrides) -> Path:
    """A randomly initialised ``BertModel`` saved with ``save_pretrained`` (safetensors) plus a
    fast WordPiece tokenizer; returns ``folder``."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    vocab_file = folder / "vocab.txt"
    vocab_file.write_text("\n".join(build_vocab()) + "\n", encoding="utf-8")
    vocab = vocab_file.read_text(encoding="utf-8").split()
    tokenizer = BertTokenizerFast(vocab_file=str(vocab_file), do_lower_case=True)
    if len(tokenizer) != len(vocab):  # transformers >= 5 ignores vocab_file: pass the vocab
        tokenizer = BertTokenizerFast(
            vocab={tok: i for i, tok in enumerate(vocab)}, do_lower_case=True
        )
    assert len(tokenizer) == len(vocab), "tiny tokenizer did not load its vocabulary"
    tokenizer.model_max_length = TINY["max_position_embeddings"]
    tokenizer.save_pretrained(str(folder))
    config = BertConfig(vocab_size=len(tokenizer), **{**TINY, **overrides})
    torch.manual_seed(seed)
    BertModel(config).save_pretrained(str(folder), safe_serialization=True)
    return folder


@pytest.fixture(scope="session")
def tiny_backbone(tmp_path_factory) -> Path:
    """Folder of the tiny BERT (hidden 32, 2 layers, 2 heads, intermediate 64)."""
    return write_tiny_backbone(tmp_path_factory.mktemp("backbones") / "tiny-bert")


@pytest.fixture(scope="session")
def tiny_config() -> dict:
    """The tiny backbone's architecture settings."""
    return dict(TINY)


@pytest.fixture(scope="session")
def tiny_backbone_h48(tmp_path_factory) -> Path:
    """A second tiny BERT with hidden size 48 (a different backbone id and embedding dims)."""
    return write_tiny_backbone(
        tmp_path_factory.mktemp("backbones48") / "tiny-bert-48", seed=1, hidden_size=48
    )


# --- small in-test tasks ------------------------------------------------------------------

_POS = ["good", "great", "happy", "love", "best", "nice"]
_NEG = ["bad", "poor", "sad", "hate", "worst", "never"]
_FILL = ["the", "man", "dog", "is", "was", "in", "on", "a", "day", "house", "car", "time"]


def _sentence(rng: random.Random, key: str, n: int = 6) -> str:
    words = [rng.choice(_FILL) for _ in range(n)]
    words.insert(rng.randrange(n + 1), key)
    return " ".join(words)


def easy_classification(
    n_train: int = 64, n_dev: int = 32, *, seed: int = 0, metric: str = "accuracy", n_fill: int = 3
) -> TaskData:
    """Sentiment by one keyword among ``n_fill`` filler words: easily learnable, balanced."""
    rng = random.Random(seed)

    def rows(n):
        out = []
        for i in range(n):
            label = "pos" if i % 2 == 0 else "neg"
            key = rng.choice(_POS if label == "pos" else _NEG)
            out.append({"text": _sentence(rng, key, n_fill), "label": label})
        return out

    spec = TaskSpec(
        name=f"easy_cls_{metric}",
        type="classification",
        metric=metric,
        labels=("neg", "pos"),
        positive_label="pos" if metric == "f1" else None,
    )
    return TaskData(spec, rows(n_train), rows(n_dev))


def easy_pair(n_train: int = 48, n_dev: int = 24, *, seed: int = 0):
    rng = random.Random(seed)

    def rows(n):
        out = []
        for i in range(n):
            label = "same" if i % 2 == 0 else "other"
            key = rng.choice(_POS)
            pair_key = key if label == "same" else rng.choice(_NEG)
            out.append(
                {
                    "text": _sentence(rng, key),
                    "text_pair": _sentence(rng, pair_key, 3),
                    "label": label,
                }
            )
        return out

    spec = TaskSpec("easy_pair", "pair_classification", "accuracy", ("other", "same"))
    return TaskData(spec, rows(n_train), rows(n_dev))


def easy_regression(n_train: int = 48, n_dev: int = 24, *, seed: int = 0):
    """Score = (#positive - #negative keywords) / 3, in [-1, 1]."""
    rng = random.Random(seed)

    def rows(n):
        out = []
        for _ in range(n):
            p, q = rng.randint(0, 3), rng.randint(0, 3)
            words = [rng.choice(_POS) for _ in range(p)] + [rng.choice(_NEG) for _ in range(q)]
            words += [rng.choice(_FILL) for _ in range(4)]
            rng.shuffle(words)
            out.append({"text": " ".join(words), "label": (p - q) / 3.0})
        return out

    spec = TaskSpec("easy_reg", "regression", "pearson", None)
    return TaskData(spec, rows(n_train), rows(n_dev))


def easy_tokens(n_train: int = 48, n_dev: int = 24, *, seed: int = 0):
    """Tags keyword words as entities (B-POS / B-NEG), the rest O; words of several pieces."""
    rng = random.Random(seed)

    def rows(n):
        out = []
        for _ in range(n):
            tokens, tags = [], []
            for _ in range(rng.randint(4, 8)):
                r = rng.random()
                if r < 0.25:
                    tokens.append(rng.choice(_POS))
                    tags.append("B-POS")
                elif r < 0.5:
                    tokens.append(rng.choice(_NEG))
                    tags.append("B-NEG")
                else:
                    tokens.append(rng.choice(_FILL))
                    tags.append("O")
            out.append({"tokens": tokens, "tags": tags})
        return out

    spec = TaskSpec("easy_tok", "token_classification", "seqeval_f1", ("B-NEG", "B-POS", "O"))
    return TaskData(spec, rows(n_train), rows(n_dev))


def easy_choice(n_train: int = 32, n_dev: int = 16, *, seed: int = 0):
    """Pick the positive choice; rows have 2 or 3 choices (ragged)."""
    rng = random.Random(seed)

    def rows(n):
        out = []
        for i in range(n):
            k = 2 + i % 2
            choices = [_sentence(rng, rng.choice(_NEG), 3) for _ in range(k)]
            label = rng.randrange(k)
            choices[label] = _sentence(rng, rng.choice(_POS), 3)
            out.append({"text": "which one is good", "choices": choices, "label": label})
        return out

    spec = TaskSpec("easy_mc", "multiple_choice", "accuracy", None)
    return TaskData(spec, rows(n_train), rows(n_dev))


TASK_BUILDERS = {
    "classification": easy_classification,
    "pair_classification": easy_pair,
    "regression": easy_regression,
    "token_classification": easy_tokens,
    "multiple_choice": easy_choice,
}


@pytest.fixture(scope="session")
def make_task():
    """``make_task(type, **kwargs)`` -> a small synthetic :class:`TaskData` of that type."""

    def make(task_type: str, **kwargs) -> TaskData:
        return TASK_BUILDERS[task_type](**kwargs)

    return make


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_backbone):
    """The tiny backbone's fast tokenizer, loaded through taskscout's backbone loader."""
    from taskscout.backbone import load_backbone

    return load_backbone(str(tiny_backbone))[1]


@pytest.fixture(autouse=True)
def _no_data_dir_env(monkeypatch):
    """Catalog names resolve to the bundled demo suite, whatever the caller's environment."""
    monkeypatch.delenv("TASKSCOUT_DATA_DIR", raising=False)


@pytest.fixture(autouse=True)
def _taskscout_home(monkeypatch, tmp_path_factory):
    """Per-user state (the standard pool's copy) goes to a temporary home, never ~/.cache."""
    monkeypatch.setenv("TASKSCOUT_HOME", str(tmp_path_factory.mktemp("taskscout-home")))


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    """Tiny models gain nothing from threads; one thread keeps timings steady on a busy box."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def pytest_collection_modifyitems(config, items):
    """Tests on the real MiniLM are slow too: `pytest -m "not slow"` is the fast subset."""
    for item in items:
        if item.get_closest_marker("integration") is not None:
            item.add_marker(pytest.mark.slow)
