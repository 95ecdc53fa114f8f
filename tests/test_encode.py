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


def test_encode_cache_memory_and_disk(tiny_tokenizer, tmp_path, fresh_memory):
    data = _cls_task()
    first = encode_task(data, tiny_tokenizer, 32, cache_dir=tmp_path)
    files = list(tmp_path.glob("cached-*.pkl"))
    assert len(files) == 1
    assert encode_task(data, tiny_tokenizer, 32, cache_dir=tmp_path) is first  # memory hit
    fresh_memory.clear()
    from_disk = encode_task(data, tiny_tokenizer, 32, cache_dir=tmp_path)
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
    assert len(list(tmp_path.glob("cached-*.pkl"))) == 3


def test_corrupt_disk_cache_is_rebuilt(tiny_tokenizer, tmp_path, fresh_memory):
    data = _cls_task()
    good = encode_task(data, tiny_tokenizer, 32, cache_dir=tmp_path)
    (path,) = tmp_path.glob("cached-*.pkl")
    path.write_bytes(path.read_bytes()[:40])  # truncated pickle
    fresh_memory.clear()
    rebuilt = encode_task(data, tiny_tokenizer, 32, cache_dir=tmp_path)
    assert rebuilt == good
    with path.open("rb") as fh:  # the file on disk was rewritten and is whole again
        assert pickle.load(fh) == good
    path.write_bytes(b"not a pickle at all")
    fresh_memory.clear()
    assert encode_task(data, tiny_tokenizer, 32, cache_dir=tmp_path) == good


def test_tokenizer_fingerprint_ignores_last_call_truncation(tiny_tokenizer):
    """The backend remembers the last call's max_length; the cache key must not change."""
    from taskscout.backbone import tokenizer_fingerprint

    tiny_tokenizer(["good day"], truncation=True, max_length=16)
    before = tokenizer_fingerprint(tiny_tokenizer)
    tiny_tokenizer(["good day"], truncation=True, max_length=48)
    assert tokenizer_fingerprint(tiny_tokenizer) == before


def test_cache_leaves_no_temporary_files(tiny_tokenizer, tmp_path, fresh_memory):
    encode_task(_cls_task("tmpcheck"), tiny_tokenizer, 32, cache_dir=tmp_path)
    assert [p.suffix for p in tmp_path.iterdir()] == [".pkl"]
