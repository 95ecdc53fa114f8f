"""Tuned parameters as task embeddings (TuPaTE, Zhou et al. 2022) and prompt embeddings.

For methods that tune per-layer parameters (lora, bitfit, prefix) the layer vector v_l is the
concatenation of layer l's tuned parameters (fixed order, prefix after reparametrisation) and

    layer_reduce="mean":   e = (1/L) sum_l v_l          shape (D,)
    layer_reduce="concat": e = [v_1; ...; v_L]          shape (L*D,)   (the official code's choice
                                                                        for LoRA/BitFit)
For ``prompt`` the embedding is the prompt matrix P (prompt_length x H), ``layer_reduce="none"``;
its token mean is the vector form used by cosine ranking.
"""

from __future__ import annotations

import torch

from taskscout.tuning.methods import TuningMethod

LAYER_REDUCES = ("mean", "concat")


def tupate_vector(method: TuningMethod, layer_reduce: str = "mean") -> torch.Tensor:
    """The TuPaTE vector of a tuned method, float32 on CPU."""
    vectors = method.layer_vectors()
    if layer_reduce == "mean":
        return torch.stack(vectors).mean(0)
    if layer_reduce == "concat":
        return torch.cat(vectors)
    raise ValueError(f"layer_reduce must be one of {LAYER_REDUCES}, not {layer_reduce!r}")


def method_embedding(method: TuningMethod, layer_reduce: str = "mean") -> tuple[torch.Tensor, str]:
    """(embedding, layer_reduce actually used): the prompt matrix for ``prompt``, else TuPaTE."""
    if method.name == "prompt":
        with torch.no_grad():
            return method.prompt_matrix().detach().float().clone(), "none"
    return tupate_vector(method, layer_reduce).detach().clone(), layer_reduce


def as_vector(embedding: torch.Tensor) -> torch.Tensor:
    """The vector form of an embedding: itself if 1-D, the mean over rows of a matrix (prompt)."""
    return embedding if embedding.ndim == 1 else embedding.mean(0)
