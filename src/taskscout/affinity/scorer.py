"""The scorer of Feng et al. (2023): a transformer, initialised from the backbone, reads the
target's and the source's prompt matrices as one sequence and regresses the transfer gain.

Input: ``[P_t; P_s]`` (2L x H) as ``inputs_embeds``, with token_type 0 on the L target tokens and
1 on the L source tokens, and positions 0..2L-1 (the backbone's own position and segment
embeddings, then its embedding LayerNorm), so the order target/source is known. The sequence
runs through the backbone's transformer layers; the hidden states are mean-pooled (MiniLM is a
mean-pooling sentence encoder; the input has no [CLS] token) and a linear head gives the
z-scored gain (see :class:`taskscout.affinity.data.GainScaler`).

Trainable part (``train_layers``, default 1): only the **top** ``train_layers`` transformer
layers and the linear head are trained; the embedding module and the bottom layers stay frozen
at the backbone's weights. Because the frozen bottom is a fixed function of each pair's input,
its output is computed once per pair (:class:`FrozenPairEncoder`) and every epoch, every
learning rate of the search and every ensemble member trains only the top of the network
(:class:`BackboneHead`). The cost of a training step is proportional to the trainable layers
(forward + backward over B x 2L = 16 x 40 tokens per layer, ~7 GFLOP per MiniLM layer): on a
2-core CPU a fit on ~130 pairs (20 epochs, 2-value learning-rate search, 3 members) takes
minutes with 1 layer, and 6x that with all 6 (see the fit times in
``benchmarks/results/affinity_taskweb.md``); ``train_layers = num_layers`` fine-tunes every
layer (the embedding module stays frozen).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from taskscout.affinity.train import SeededDropout, seeded_linear, torch_generator


class BackboneScorerError(ValueError):
    """The backbone cannot host the pair scorer (architecture, segments, positions)."""


def _run_layer(layer: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    out = layer(hidden)
    return out[0] if isinstance(out, tuple) else out


def _parts(encoder: nn.Module) -> tuple[nn.Module, nn.ModuleList]:
    embeddings = getattr(encoder, "embeddings", None)
    layers = getattr(getattr(encoder, "encoder", None), "layer", None)
    if embeddings is None or not isinstance(layers, nn.ModuleList):
        raise BackboneScorerError(
            f"the backbone scorer needs a BERT-like encoder (.embeddings and .encoder.layer), "
            f"got {type(encoder).__name__}; use --kind light"
        )
    return embeddings, layers


class FrozenPairEncoder(nn.Module):
    """Embeddings + bottom ``num_layers - train_layers`` layers of the backbone, frozen.

    ``forward(p_t, p_s)``: (N, L, H), (N, L, H) -> hidden states (N, 2L, H), computed without
    gradients in eval mode (deterministic), in chunks of ``chunk`` pairs.
    """

    def __init__(self, encoder: nn.Module, train_layers: int, prompt_length: int):
        super().__init__()
        embeddings, layers = _parts(encoder)
        n = len(layers)
        if not 1 <= train_layers <= n:
            raise BackboneScorerError(f"train_layers must be in 1..{n}, not {train_layers}")
        config = getattr(encoder, "config", None)
        if getattr(config, "type_vocab_size", 2) < 2:
            raise BackboneScorerError(
                "the backbone has a single token type: it cannot mark target vs source segments;"
                " use --kind light"
            )
        max_pos = getattr(config, "max_position_embeddings", 10**9)
        if 2 * prompt_length > max_pos:
            raise BackboneScorerError(
                f"2L = {2 * prompt_length} prompt tokens exceed the backbone's {max_pos} positions"
            )
        self.embeddings = embeddings
        self.frozen = nn.ModuleList(layers[: n - train_layers])
        self.prompt_length = prompt_length
        self.requires_grad_(False)
        self.eval()

    @torch.no_grad()
    def forward(self, p_t: torch.Tensor, p_s: torch.Tensor, chunk: int = 128) -> torch.Tensor:
        """(N, L, H) target and (N, L, H) source prompts -> (N, 2L, H) float32 hidden states."""
        if p_t.shape != p_s.shape or p_t.ndim != 3 or p_t.shape[1] != self.prompt_length:
            raise BackboneScorerError(
                f"expected two (N, {self.prompt_length}, H) prompt stacks, got "
                f"{tuple(p_t.shape)} and {tuple(p_s.shape)}"
            )
        self.eval()
        length = self.prompt_length
        types = torch.cat([torch.zeros(length), torch.ones(length)]).long().unsqueeze(0)
        positions = torch.arange(2 * length).unsqueeze(0)
        out = []
        for i in range(0, len(p_t), chunk):
            x = torch.cat([p_t[i : i + chunk], p_s[i : i + chunk]], dim=1).float()
            n = x.shape[0]
            h = self.embeddings(
                inputs_embeds=x,
                token_type_ids=types.expand(n, -1),
                position_ids=positions.expand(n, -1),
            )
            for layer in self.frozen:
                h = _run_layer(layer, h)
            out.append(h)
        return torch.cat(out) if out else torch.zeros(0, 2 * length, p_t.shape[-1])


class BackboneHead(nn.Module):
    """The trainable top: copies of the backbone's top ``train_layers`` layers, mean pooling
    over the 2L tokens, dropout and a linear map to one z-scored gain.

    ``forward(hidden)``: (B, 2L, H) -> (B,) z-scored gains. The copied layers start at the
    backbone's weights (no random draw); the linear layer is initialised N(0, 0.02^2) with a
    zero bias from the ``"init"`` stream of ``seed`` and the pooled-output dropout (probability
    ``dropout``) draws from its ``"dropout"`` stream (ensemble members differ by seed). The
    copied transformer layers keep the backbone's own dropout, which draws from torch's global
    generator: :func:`taskscout.affinity.train.fit_head` seeds and restores that generator
    around training, so a fit stays reproducible.
    """

    def __init__(self, encoder: nn.Module, train_layers: int, seed: int, dropout: float = 0.1):
        super().__init__()
        _, layers = _parts(encoder)
        self.layers = nn.ModuleList(copy.deepcopy(layers[len(layers) - train_layers :]))
        self.layers.requires_grad_(True)
        hidden = encoder.config.hidden_size
        self.dropout = SeededDropout(dropout, seed)
        self.out = seeded_linear(hidden, 1, torch_generator(seed, "init"), std=0.02)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """(B, 2L, H) hidden states of :class:`FrozenPairEncoder` -> (B,) z-scored gains."""
        h = hidden
        for layer in self.layers:
            h = _run_layer(layer, h)
        return self.out(self.dropout(h.mean(dim=1))).squeeze(-1)
