"""TuPaTE vectors and prompt embeddings (DESIGN section 4) on the tiny BERT, cosine scoring and
the compatibility checks."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from taskscout.backbone import load_backbone
from taskscout.embeddings.similarity import (
    EmbeddingKey,
    IncompatibleEmbeddingError,
    check_compatible,
    cosine_scores,
)
from taskscout.embeddings.tupate import as_vector, method_embedding, tupate_vector
from taskscout.tuning.methods import build_method


@pytest.fixture(scope="module")
def dims(tiny_backbone, tiny_config):
    """H, number of layers, intermediate size, read from the saved config.json."""
    cfg = json.loads((tiny_backbone / "config.json").read_text())
    out = {
        "H": cfg["hidden_size"],
        "L": cfg["num_hidden_layers"],
        "I": cfg["intermediate_size"],
    }
    assert (out["H"], out["L"], out["I"]) == (
        tiny_config["hidden_size"],
        tiny_config["num_hidden_layers"],
        tiny_config["intermediate_size"],
    )
    return out


def method_on(backbone, name, options=None, *, randomize=True):
    """A method on a fresh tiny encoder; with ``randomize`` its tuned parameters are set to
    random values (LoRA's B starts at zero, which would hide ordering mistakes)."""
    _, _, encoder = load_backbone(str(backbone))
    method = build_method(name, encoder, options)
    if randomize:
        g = torch.Generator().manual_seed(7)
        with torch.no_grad():
            for param in method.tuned_parameters().values():
                param.copy_(torch.randn(param.shape, generator=g))
    return method


# --- dimensions (DESIGN section 4) ----------------------------------------------------------


@pytest.mark.parametrize("r", [8, 4])
def test_lora_dims(tiny_backbone, dims, r):
    method = method_on(tiny_backbone, "lora", {"r": r})
    per_layer = r * dims["H"] * 2 * 2  # (A: r x H) + (B: H x r), for query and value
    assert per_layer == 4 * r * dims["H"]
    assert tupate_vector(method, "mean").shape == (per_layer,)
    assert tupate_vector(method, "concat").shape == (dims["L"] * per_layer,)
    emb, reduce = method_embedding(method, "mean")
    assert emb.shape == (per_layer,) and reduce == "mean" and emb.dtype == torch.float32


def test_bitfit_dims_from_one_layers_parameter_list(tiny_backbone, dims):
    _, _, encoder = load_backbone(str(tiny_backbone))
    layer0 = {
        n.removeprefix("encoder.layer.0."): p
        for n, p in encoder.named_parameters()
        if n.startswith("encoder.layer.0.") and n.endswith(".bias")
    }
    assert sorted(layer0) == sorted(
        [
            "attention.self.query.bias",
            "attention.self.key.bias",
            "attention.self.value.bias",
            "attention.output.dense.bias",
            "attention.output.LayerNorm.bias",
            "intermediate.dense.bias",
            "output.dense.bias",
            "output.LayerNorm.bias",
        ]
    )
    per_layer = sum(p.numel() for p in layer0.values())
    assert per_layer == 7 * dims["H"] + dims["I"]
    method = method_on(tiny_backbone, "bitfit")
    assert tupate_vector(method, "mean").shape == (per_layer,)
    assert tupate_vector(method, "concat").shape == (dims["L"] * per_layer,)


@pytest.mark.parametrize("reparametrize", [False, True])
def test_prefix_dims(tiny_backbone, dims, reparametrize):
    method = method_on(tiny_backbone, "prefix", {"reparametrize": reparametrize})
    length = method.config.num_virtual_tokens
    assert length == 20
    assert tupate_vector(method, "mean").shape == (2 * length * dims["H"],)
    assert tupate_vector(method, "concat").shape == (dims["L"] * 2 * length * dims["H"],)


def test_prompt_matrix_shape_and_vector_form(tiny_backbone, dims):
    method = method_on(tiny_backbone, "prompt")
    emb, reduce = method_embedding(method, "mean")
    assert reduce == "none"
    assert emb.shape == (20, dims["H"])
    assert torch.equal(emb, method.prompt_matrix().detach())
    assert torch.allclose(as_vector(emb), emb.mean(0))
    assert torch.allclose(tupate_vector(method, "mean"), emb.mean(0))


# --- the layer vectors, by hand -------------------------------------------------------------


def test_lora_mean_equals_manual_mean_of_layer_concatenations(tiny_backbone, dims):
    method = method_on(tiny_backbone, "lora")
    params = dict(method.named_parameters())
    per_layer = []
    for layer in range(dims["L"]):
        base = f"encoder.encoder.layer.{layer}.attention.self"
        parts = [
            params[f"{base}.{module}.lora_{ab}.default.weight"].detach().reshape(-1)
            for module in ("query", "value")
            for ab in ("A", "B")
        ]
        per_layer.append(torch.cat(parts))
    manual_mean = sum(per_layer) / len(per_layer)
    assert torch.allclose(tupate_vector(method, "mean"), manual_mean, atol=1e-7)
    assert torch.equal(tupate_vector(method, "concat"), torch.cat(per_layer))
    # layers really differ, so a mean of the wrong layer set would be caught
    assert not torch.equal(per_layer[0], per_layer[1])


def test_bitfit_layer_vectors_by_hand(tiny_backbone, dims):
    method = method_on(tiny_backbone, "bitfit")
    params = dict(method.named_parameters())
    vectors = method.layer_vectors()
    assert len(vectors) == dims["L"]
    for layer, vector in enumerate(vectors):
        prefix = f"encoder.encoder.layer.{layer}."
        names = sorted(n for n in params if n.startswith(prefix) and n.endswith(".bias"))
        assert torch.equal(vector, torch.cat([params[n].detach().reshape(-1) for n in names]))


@pytest.mark.parametrize("reparametrize", [False, True])
def test_prefix_vectors_equal_peft_past_key_values(tiny_backbone, dims, reparametrize):
    method = method_on(tiny_backbone, "prefix", {"reparametrize": reparametrize})
    length, hidden = method.config.num_virtual_tokens, dims["H"]
    cache = method.peft.get_prompt(2)  # what the attention layers actually receive
    vectors = method.layer_vectors()
    assert len(vectors) == dims["L"]
    for layer in (0, dims["L"] - 1):
        keys, values = _layer_kv(cache, layer)  # (batch, heads, L, head_dim)
        k = keys[0].permute(1, 0, 2).reshape(length, hidden)  # heads concatenated per position
        v = values[0].permute(1, 0, 2).reshape(length, hidden)
        expected = torch.cat([k.reshape(-1), v.reshape(-1)]).float()
        assert torch.allclose(vectors[layer], expected, atol=1e-6), layer
    assert not torch.allclose(vectors[0], vectors[-1])
    mean = tupate_vector(method, "mean")
    assert torch.allclose(mean, torch.stack(vectors).mean(0))


def _layer_kv(cache, layer):
    if hasattr(cache, "layers"):  # transformers >= 4.56 Cache objects
        return cache.layers[layer].keys, cache.layers[layer].values
    if hasattr(cache, "key_cache"):
        return cache.key_cache[layer], cache.value_cache[layer]
    return cache[layer][0], cache[layer][1]  # legacy tuple of (key, value) per layer


def test_unknown_layer_reduce_is_rejected(tiny_backbone):
    method = method_on(tiny_backbone, "lora", randomize=False)
    with pytest.raises(ValueError, match="layer_reduce must be one of"):
        tupate_vector(method, "max")


# --- cosine scores --------------------------------------------------------------------------


def _numpy_cosine(t: np.ndarray, s: np.ndarray) -> np.ndarray:
    out = np.zeros(len(s))
    for i, row in enumerate(s):
        denom = np.linalg.norm(t) * np.linalg.norm(row)
        out[i] = 0.0 if denom == 0 else float(t @ row) / denom
    return out


def test_cosine_scores_match_numpy_reference():
    g = torch.Generator().manual_seed(0)
    target = torch.randn(17, generator=g)
    sources = torch.randn(6, 17, generator=g)
    sources[2] = 0.0  # a zero source vector
    sources[3] = -3.0 * target  # anti-parallel
    sources[4] = 0.5 * target  # parallel
    scores = cosine_scores(target, sources)
    assert scores.dtype == torch.float64 and scores.shape == (6,)
    np.testing.assert_allclose(
        scores.numpy(), _numpy_cosine(target.double().numpy(), sources.double().numpy()), atol=1e-12
    )
    assert scores[2] == 0.0
    assert scores[3] == pytest.approx(-1.0) and scores[4] == pytest.approx(1.0)
    assert torch.equal(cosine_scores(torch.zeros(17), sources), torch.zeros(6, dtype=torch.float64))


def test_cosine_scores_across_chunks():
    g = torch.Generator().manual_seed(1)
    target = torch.randn(5, generator=g)
    sources = torch.randn(4100, 5, generator=g)  # more than one 4096-row chunk
    np.testing.assert_allclose(
        cosine_scores(target, sources).numpy(),
        _numpy_cosine(target.double().numpy(), sources.double().numpy()),
        atol=1e-12,
    )


def test_cosine_scores_reject_mismatched_shapes():
    with pytest.raises(IncompatibleEmbeddingError, match="shape mismatch"):
        cosine_scores(torch.ones(4), torch.ones(2, 5))
    with pytest.raises(IncompatibleEmbeddingError):
        cosine_scores(torch.ones(2, 4), torch.ones(2, 4))


# --- compatibility --------------------------------------------------------------------------

KEY = EmbeddingKey("local:tiny@abc", "lora", "mean", (1024,))


def test_check_compatible_accepts_identical_keys():
    check_compatible(KEY, [("a", KEY), ("b", EmbeddingKey(*vars(KEY).values()))])


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("backbone", "sentence-transformers/all-MiniLM-L6-v2"),
        ("method", "bitfit"),
        ("layer_reduce", "concat"),
        ("shape", (512,)),
    ],
)
def test_check_compatible_refuses_any_difference(field, value):
    other = EmbeddingKey(**{**vars(KEY), field: value})
    with pytest.raises(IncompatibleEmbeddingError, match=rf"source 'snli' has {field}="):
        check_compatible(KEY, [("ok", KEY), ("snli", other)])
    assert issubclass(IncompatibleEmbeddingError, ValueError)
