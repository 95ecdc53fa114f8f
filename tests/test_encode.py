"""Encoding of the five task types, dynamic-padding collation, length-grouped batching and the
encode cache, with the tiny backbone's real WordPiece tokenizer."""

from __future__ import annotations

import pickle
import random

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import taskscout.encode as encode_mod
from taskscout.data import TaskData, TaskSpec, TaskType
from taskscout.encode import (
    IGNORE_INDEX,
    collate,
    encode_rows,
    encode_task,
    length_grouped_batches,
    sorted_batches,
)

CLS_SPEC = TaskSpec("cls", "classification", "accuracy", ("neg", "pos"))
PAIR_SPEC = TaskSpec("pair", "pair_classification", "accuracy", ("contradiction", "entailment"))
REG_SPEC = TaskSpec("reg", "regression", "pearson", None)
TOK_SPEC = TaskSpec("tok", "token_classification", "seqeval_f1", ("B-PER", "I-PER", "O"))
MC_SPEC = TaskSpec("mc", "multiple_choice", "accuracy", None)

# words the tiny vocabulary lacks: WordPiece splits them into several pieces
RARE = ["xylophone", "quizzically", "zqvbk"]


def test_rare_words_really_split_into_several_pieces(tiny_tokenizer):
    for word in RARE:
        assert len(tiny_tokenizer.tokenize(word)) >= 3, word
    assert tiny_tokenizer.tokenize("the") == ["the"]


def test_classification_ids_and_label_indices(tiny_tokenizer):
    rows = [{"text": "the dog was good", "label": "pos"}, {"text": "bad day", "label": "neg"}]
    split = encode_rows(rows, CLS_SPEC, tiny_tokenizer, 64)
    assert split.task_type is TaskType.CLASSIFICATION
    assert split.labels == [1, 0]
    for row, ids, types, n in zip(
        rows, split.input_ids, split.token_type_ids, split.lengths, strict=True
    ):
        assert ids == tiny_tokenizer(row["text"])["input_ids"]
        assert ids[0] == tiny_tokenizer.cls_token_id and ids[-1] == tiny_tokenizer.sep_token_id
        assert set(types) == {0}
        assert n == len(ids)
    assert split.word_ids is None


def test_pair_classification_has_two_segments(tiny_tokenizer):
    rows = [
        {"text": "a man is here", "text_pair": "a man", "label": "entailment"},
        {"text": "the dog", "text_pair": "no dog is in the house", "label": "contradiction"},
    ]
    split = encode_rows(rows, PAIR_SPEC, tiny_tokenizer, 64)
    assert split.labels == [1, 0]
    for row, ids, types in zip(rows, split.input_ids, split.token_type_ids, strict=True):
        ref = tiny_tokenizer(row["text"], row["text_pair"])
        assert ids == ref["input_ids"]
        assert types == ref["token_type_ids"]
        n_second = len(tiny_tokenizer.tokenize(row["text_pair"])) + 1  # + final [SEP]
        assert types.count(1) == n_second
        assert ids.count(tiny_tokenizer.sep_token_id) == 2


def test_regression_labels_are_floats_and_pairs_supported(tiny_tokenizer):
    rows = [
        {"text": "good", "text_pair": "great", "label": 4.5},
        {"text": "bad", "text_pair": "the worst", "label": -1},
    ]
    split = encode_rows(rows, REG_SPEC, tiny_tokenizer, 64)
    assert split.labels == [4.5, -1.0]
    assert all(isinstance(x, float) for x in split.labels)
    assert 1 in split.token_type_ids[1]
    single = encode_rows([{"text": "good day", "label": 0.25}], REG_SPEC, tiny_tokenizer, 64)
    assert set(single.token_type_ids[0]) == {0}
    assert single.labels == [0.25]


def test_token_classification_labels_only_first_subtoken(tiny_tokenizer):
    rows = [
        {"tokens": ["xylophone", "the", "quizzically"], "tags": ["B-PER", "O", "I-PER"]},
        {"tokens": ["zqvbk", "dog"], "tags": ["O", "B-PER"]},
    ]
    split = encode_rows(rows, TOK_SPEC, tiny_tokenizer, 64)
    index = {t: i for i, t in enumerate(TOK_SPEC.labels)}
    for row, ids, labels, firsts in zip(
        rows, split.input_ids, split.labels, split.word_ids, strict=True
    ):
        expected = [IGNORE_INDEX]  # [CLS]
        for word, tag in zip(row["tokens"], row["tags"], strict=True):
            pieces = len(tiny_tokenizer.tokenize(word))
            expected += [index[tag]] + [IGNORE_INDEX] * (pieces - 1)
        expected.append(IGNORE_INDEX)  # [SEP]
        assert labels == expected
        assert len(labels) == len(ids)
        assert firsts == list(range(len(row["tokens"])))
    # the multi-piece words really produced ignored continuation positions
    assert split.labels[0].count(IGNORE_INDEX) > 2


def test_token_classification_truncation_drops_words_past_max_len(tiny_tokenizer):
    rows = [{"tokens": ["xylophone"] * 6, "tags": ["B-PER"] * 6}]
    split = encode_rows(rows, TOK_SPEC, tiny_tokenizer, 12)
    assert len(split.input_ids[0]) == 12
    kept = [x for x in split.labels[0] if x != IGNORE_INDEX]
    assert 0 < len(kept) < 6
    assert split.word_ids[0] == list(range(len(kept)))


def test_multiple_choice_one_sequence_per_choice(tiny_tokenizer):
    rows = [
        {"text": "the man was sad", "choices": ["he was bad", "he was happy"], "label": 0},
        {"text": "the dog", "choices": ["good", "the bad dog in the house", "day"], "label": 2},
    ]
    split = encode_rows(rows, MC_SPEC, tiny_tokenizer, 64)
    assert split.labels == [0, 2]
    assert [len(x) for x in split.input_ids] == [2, 3]
    for row, ids, types, n in zip(
        rows, split.input_ids, split.token_type_ids, split.lengths, strict=True
    ):
        for choice, seq, seq_types in zip(row["choices"], ids, types, strict=True):
            ref = tiny_tokenizer(row["text"], choice)
            assert seq == ref["input_ids"] and seq_types == ref["token_type_ids"]
        assert n == max(len(s) for s in ids)


def test_truncation_respects_max_len(tiny_tokenizer):
    long = " ".join(["house"] * 100)
    split = encode_rows([{"text": long, "label": "pos"}], CLS_SPEC, tiny_tokenizer, 16)
    assert len(split.input_ids[0]) == 16 == split.lengths[0]
    assert split.input_ids[0][-1] == tiny_tokenizer.sep_token_id


# --- collate ----------------------------------------------------------------------------


def test_collate_pads_to_longest_row(tiny_tokenizer):
    rows = [
        {"text": "good", "label": "pos"},
        {"text": "the man in the house was bad", "label": "neg"},
        {"text": "a day", "label": "pos"},
    ]
    split = encode_rows(rows, CLS_SPEC, tiny_tokenizer, 64)
    pad = tiny_tokenizer.pad_token_id
    batch = collate(split, [0, 1, 2], pad)
    width = max(split.lengths)
    for key in ("input_ids", "token_type_ids", "attention_mask"):
        assert batch[key].shape == (3, width) and batch[key].dtype == torch.long
    assert batch["attention_mask"].sum(1).tolist() == split.lengths
    assert batch["input_ids"][0, split.lengths[0] :].eq(pad).all()
    assert batch["input_ids"][1].tolist() == split.input_ids[1]
    assert batch["labels"].tolist() == [1, 0, 1] and batch["labels"].dtype == torch.long
    # a subset is padded to its own longest row only (dynamic padding)
    assert collate(split, [0, 2], pad)["input_ids"].shape == (
        2,
        max(split.lengths[i] for i in (0, 2)),
    )


def test_collate_regression_and_token_labels(tiny_tokenizer):
    pad = tiny_tokenizer.pad_token_id
    reg = encode_rows(
        [{"text": "good", "label": 1.5}, {"text": "bad day", "label": -2}],
        REG_SPEC,
        tiny_tokenizer,
        64,
    )
    batch = collate(reg, [0, 1], pad)
    assert batch["labels"].dtype == torch.float32 and batch["labels"].tolist() == [1.5, -2.0]
    tok = encode_rows(
        [
            {"tokens": ["dog"], "tags": ["B-PER"]},
            {"tokens": ["xylophone", "man"], "tags": ["O", "O"]},
        ],
        TOK_SPEC,
        tiny_tokenizer,
        64,
    )
    batch = collate(tok, [0, 1], pad)
    width = max(tok.lengths)
    assert batch["labels"].shape == (2, width) == batch["input_ids"].shape
    assert batch["labels"][0].tolist() == tok.labels[0] + [IGNORE_INDEX] * (width - tok.lengths[0])


def test_collate_multiple_choice_ragged_choices(tiny_tokenizer):
    rows = [
        {"text": "the man", "choices": ["good", "bad"], "label": 1},
        {"text": "the dog in the house", "choices": ["a", "the day was great", "b"], "label": 2},
    ]
    split = encode_rows(rows, MC_SPEC, tiny_tokenizer, 64)
    pad = tiny_tokenizer.pad_token_id
    batch = collate(split, [0, 1], pad)
    width = max(len(s) for x in split.input_ids for s in x)
    for key in ("input_ids", "token_type_ids", "attention_mask"):
        assert batch[key].shape == (2, 3, width), key
    assert batch["choice_mask"].tolist() == [[1, 1, 0], [1, 1, 1]]
    assert batch["labels"].tolist() == [1, 2]
    assert batch["input_ids"][1, 1, : len(split.input_ids[1][1])].tolist() == split.input_ids[1][1]
    real = [len(s) for x in split.input_ids for s in x]
    mask = batch["attention_mask"].view(6, width).sum(1).tolist()
    assert [mask[i] for i in (0, 1, 3, 4, 5)] == real
    # the padding choice is all padding ids
    assert batch["input_ids"][0, 2].eq(pad).all()


# --- batching ---------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 200), min_size=1, max_size=300),
    batch_size=st.integers(1, 17),
    mega=st.integers(1, 5),
    seed=st.integers(0, 2**16),
)
def test_length_grouped_batches_cover_every_index_once(lengths, batch_size, mega, seed):
    batches = length_grouped_batches(lengths, batch_size, random.Random(seed), mega=mega)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(len(lengths)))
    assert all(1 <= len(b) <= batch_size for b in batches)
    # within a batch, lengths are in descending order (cut from a sorted mega-batch)
    assert all(
        [lengths[i] for i in b] == sorted((lengths[i] for i in b), reverse=True) for b in batches
    )
    again = length_grouped_batches(lengths, batch_size, random.Random(seed), mega=mega)
    assert again == batches


def test_length_grouped_batches_depend_on_seed_and_group_lengths():
    rng = random.Random(1)
    lengths = [rng.randint(1, 128) for _ in range(500)]
    a = length_grouped_batches(lengths, 8, random.Random(0))
    b = length_grouped_batches(lengths, 8, random.Random(1))
    assert a != b
    # grouping: the spread of lengths inside a batch is far below the global spread
    spread = sum(max(lengths[i] for i in x) - min(lengths[i] for i in x) for x in a) / len(a)
    assert spread < 0.2 * (max(lengths) - min(lengths))


def test_sorted_batches_are_descending_and_complete():
    lengths = [3, 9, 1, 7, 7, 2]
    batches = sorted_batches(lengths, 4)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(6))
    assert [lengths[i] for i in flat] == sorted(lengths, reverse=True)


# --- cache ------------------------------------------------------------------------------


def _cls_task(name="cached", n=12) -> TaskData:
    rows = [{"text": f"the day {i} was good", "label": "pos"} for i in range(n)]
    rows += [{"text": f"bad man {i}", "label": "neg"} for i in range(n)]
    return TaskData(TaskSpec(name, "classification", "accuracy", ("neg", "pos")), rows, rows[:6])


@pytest.fixture
def fresh_memory(monkeypatch):
    """An empty in-process encode cache for this test only."""
    monkeypatch.setattr(encode_mod, "_MEMORY", {})
    return encode_mod._MEMORY


def _forbid_encoding(monkeypatch):
    """Makes tokenising fail, so a result can only come from a cache."""

    def fail(*args, **kwargs):
        raise AssertionError("tokenised although a valid cache entry exists")

    monkeypatch.setattr(encode_mod, "encode_rows", fail)


def test_encode_cache_memory_and_disk(tiny_tokenizer, tmp_path, fresh_memory, monkeypatch):
    data = _cls_task()
    first = encode_task(data, tiny_tokenizer, 32, cache_dir=tmp_path)
    files = list(tmp_path.glob("cached-*.safetensors"))
    assert len(files) == 1
    assert encode_task(data, tiny_tokenizer, 32, cache_dir=tmp_path) is first  # memory hit
    fresh_memory.clear()
    with monkeypatch.context() as m:
        _forbid_encoding(m)
        from_disk = encode_task(data, tiny_tokenizer, 32, cache_dir=tmp_path)  # disk hit
    assert from_disk is not first
    assert from_disk == first  # dataclass equality: every field
    direct = (
        encode_rows(data.train, data.spec, tiny_tokenizer, 32),
        encode_rows(data.dev, data.spec, tiny_tokenizer, 32),
    )
    assert from_disk == direct
    # another max_len or other rows are other cache entries
    encode_task(data, tiny_tokenizer, 16, cache_dir=tmp_path)
    changed = _cls_task()
    changed.train[0] = {"text": "a new row", "label": "pos"}
    encode_task(changed, tiny_tokenizer, 32, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("cached-*.safetensors"))) == 3


ALL_TYPES = {
    "reg": TaskData(
        REG_SPEC,
        [
            {"text": "good", "text_pair": "great", "label": 4.5},
            {"text": "bad", "text_pair": "the worst", "label": -1.0 / 3.0},
        ],
        [{"text": "good day", "text_pair": "day", "label": 1e-7}],
    ),
    "tok": TaskData(
        TOK_SPEC,
        [
            {"tokens": ["xylophone", "the", "quizzically"], "tags": ["B-PER", "O", "I-PER"]},
            {"tokens": ["zqvbk", "dog"], "tags": ["O", "B-PER"]},
        ],
        [{"tokens": ["the"], "tags": ["O"]}],
    ),
    "mc": TaskData(
        MC_SPEC,
        [
            {"text": "the man was sad", "choices": ["he was bad", "he was happy"], "label": 0},
            {"text": "the dog", "choices": ["good", "the bad dog in the house", "day"], "label": 2},
        ],
        [{"text": "a day", "choices": ["good"], "label": 0}],
    ),
    "pair": TaskData(
        PAIR_SPEC,
        [{"text": "a man is here", "text_pair": "a man", "label": "entailment"}],
        [{"text": "the dog", "text_pair": "no dog", "label": "contradiction"}],
    ),
}


@pytest.mark.parametrize("kind", sorted(ALL_TYPES))
def test_disk_cache_round_trips_every_task_type(
    kind, tiny_tokenizer, tmp_path, fresh_memory, monkeypatch
):
    data = ALL_TYPES[kind]
    first = encode_task(data, tiny_tokenizer, 32, cache_dir=tmp_path)
    fresh_memory.clear()
    _forbid_encoding(monkeypatch)
    again = encode_task(data, tiny_tokenizer, 32, cache_dir=tmp_path)
    assert again == first and again is not first
    for a, b in zip(again, first, strict=True):  # same Python types, not just equal values
        assert [type(x) for x in a.labels] == [type(x) for x in b.labels]


def test_corrupt_disk_cache_is_rebuilt(tiny_tokenizer, tmp_path, fresh_memory):
    data = _cls_task()
    good = encode_task(data, tiny_tokenizer, 32, cache_dir=tmp_path)
    (path,) = tmp_path.glob("cached-*.safetensors")
    whole = path.read_bytes()
    key = path.stem.split("-", 1)[1]
    path.write_bytes(whole[:40])  # truncated
    fresh_memory.clear()
    rebuilt = encode_task(data, tiny_tokenizer, 32, cache_dir=tmp_path)
    assert rebuilt == good
    # the file on disk was rewritten and is whole again
    assert encode_mod.read_encoded(path, TaskType.CLASSIFICATION, key) == good
    for garbage in (b"not a cache file at all", b"", b"\xff" * 8 + b"{}"):
        path.write_bytes(garbage)
        fresh_memory.clear()
        assert encode_task(data, tiny_tokenizer, 32, cache_dir=tmp_path) == good
        assert encode_mod.read_encoded(path, TaskType.CLASSIFICATION, key) == good


def test_inconsistent_cache_arrays_are_not_trusted(tiny_tokenizer, tmp_path, fresh_memory):
    """A well-formed safetensors file with the right metadata but wrong arrays is ignored."""
    from safetensors.torch import load, save

    data = _cls_task()
    good = encode_task(data, tiny_tokenizer, 32, cache_dir=tmp_path)
    (path,) = tmp_path.glob("cached-*.safetensors")
    key = path.stem.split("-", 1)[1]
    meta = {"format": encode_mod.CACHE_FORMAT, "task_type": "classification", "key": key}
    tensors = load(path.read_bytes())
    broken = [
        {**tensors, "train.seq_len": tensors["train.seq_len"] + 1},  # lengths do not add up
        {**tensors, "train.ids": tensors["train.ids"].to(torch.float32)},  # wrong dtype
        {k: v for k, v in tensors.items() if k != "dev.labels"},  # missing array
        {**tensors, "dev.labels": tensors["dev.labels"][:-1]},  # row counts disagree
    ]
    for bad in broken:
        path.write_bytes(save(bad, metadata=meta))
        assert encode_mod.read_encoded(path, TaskType.CLASSIFICATION, key) is None
        fresh_memory.clear()
        assert encode_task(data, tiny_tokenizer, 32, cache_dir=tmp_path) == good
    path.write_bytes(save(tensors, metadata={**meta, "key": "0" * 24}))  # another key's file
    assert encode_mod.read_encoded(path, TaskType.CLASSIFICATION, key) is None


class _Payload:
    """Unpickling this runs ``os.makedirs(marker)``: what a planted cache file could do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        import os

        return (os.makedirs, (self.marker,))


def test_planted_pickle_in_the_cache_is_never_executed(tiny_tokenizer, tmp_path, fresh_memory):
    """Defect a: the cache used to be ``pickle.load``-ed from ``<cache>/<task>-<key>.pkl``, so a
    file planted there ran code when a matching task was encoded (tuned)."""
    import hashlib

    from taskscout.backbone import tokenizer_fingerprint

    data = _cls_task("victim")
    marker = tmp_path / "PWNED"
    old_key = hashlib.sha256(
        f"{data.fingerprint()}|{tokenizer_fingerprint(tiny_tokenizer)}|32".encode()
    ).hexdigest()[:24]
    cache = tmp_path / "cache"
    cache.mkdir()
    planted = pickle.dumps(_Payload(marker))
    (cache / f"victim-{old_key}.pkl").write_bytes(planted)  # where the old code looked
    new_path = encode_mod.cache_path(cache, data, encode_mod.cache_key(data, tiny_tokenizer, 32))
    new_path.write_bytes(planted)  # and the pickle (garbage to safetensors) at the new path
    result = encode_task(data, tiny_tokenizer, 32, cache_dir=cache)
    assert not marker.exists(), "a planted pickle was executed"
    direct = (
        encode_rows(data.train, data.spec, tiny_tokenizer, 32),
        encode_rows(data.dev, data.spec, tiny_tokenizer, 32),
    )
    assert result == direct
    assert new_path.read_bytes() != planted  # the foreign file was replaced by a real entry
    fresh_memory.clear()
    assert encode_task(data, tiny_tokenizer, 32, cache_dir=cache) == direct
    assert not marker.exists()


def test_tokenizer_fingerprint_ignores_last_call_truncation(tiny_tokenizer):
    """The backend remembers the last call's max_length; the cache key must not change."""
    from taskscout.backbone import tokenizer_fingerprint

    tiny_tokenizer(["good day"], truncation=True, max_length=16)
    before = tokenizer_fingerprint(tiny_tokenizer)
    tiny_tokenizer(["good day"], truncation=True, max_length=48)
    assert tokenizer_fingerprint(tiny_tokenizer) == before


def test_cache_leaves_no_temporary_files(tiny_tokenizer, tmp_path, fresh_memory):
    encode_task(_cls_task("tmpcheck"), tiny_tokenizer, 32, cache_dir=tmp_path)
    assert [p.suffix for p in tmp_path.iterdir()] == [".safetensors"]
