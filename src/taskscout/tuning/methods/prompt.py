"""Soft prompt with an MLP prompt encoder (Feng et al. 2023; P-tuning style reparametrisation).

L learned input vectors E (L x H) pass through a 2-layer MLP to give the prompt P = MLP(E)
(L x H), prepended to the word embeddings. P is the task's prompt embedding.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from taskscout.tuning.methods.base import MethodConfig, TuningMethod, register


@dataclass
class PromptMethodConfig(MethodConfig):
    prompt_length: int = 20
    encoder_hidden: int = 200
    init: str = "vocab"  # "vocab": E starts as random word embeddings; "normal": N(0, 0.02)


class PromptEncoder(nn.Module):
    """P = W2 relu(W1 E + b1) + b2 with E (L x H) learned, hidden width ``encoder_hidden``."""

    def __init__(self, length: int, hidden_size: int, encoder_hidden: int):
        super().__init__()
        self.input = nn.Parameter(torch.empty(length, hidden_size))
        self.mlp = nn.Sequential(
            nn.Linear(hidden_size, encoder_hidden),
            nn.ReLU(),
            nn.Linear(encoder_hidden, hidden_size),
        )

    def forward(self) -> torch.Tensor:
        return self.mlp(self.input)


@register
class PromptMethod(TuningMethod):
    """Tuned state: the prompt encoder (E and the MLP). Embedding: the prompt matrix P (L x H);
    as a TuPaTE-style vector, its mean over tokens (H values)."""

    name = "prompt"
    layer_reduces = ("none",)  # the embedding is the prompt matrix P (L x H)
    config_class = PromptMethodConfig
    default_lr = 3e-3

    def __init__(self, encoder: nn.Module, config: PromptMethodConfig):
        super().__init__(encoder, config)
        self.encoder = encoder
        self.prompt_encoder = PromptEncoder(
            config.prompt_length, self.hidden_size, config.encoder_hidden
        )
        words = encoder.get_input_embeddings().weight
        with torch.no_grad():
            if config.init == "vocab":
                rows = torch.randint(0, words.shape[0], (config.prompt_length,))
                self.prompt_encoder.input.copy_(words[rows])
            elif config.init == "normal":
                self.prompt_encoder.input.normal_(0.0, 0.02)
            else:
                raise ValueError(f"prompt init must be 'vocab' or 'normal', not {config.init!r}")

    def prompt_matrix(self) -> torch.Tensor:
        """The prompt P, shape (L, H)."""
        return self.prompt_encoder()

    def forward(self, input_ids, attention_mask, token_type_ids):
        n, length = input_ids.shape[0], self.config.prompt_length
        words = self.encoder.get_input_embeddings()(input_ids)
        prompt = self.prompt_matrix().to(words.dtype).unsqueeze(0).expand(n, -1, -1)
        hidden = self.encoder(
            inputs_embeds=torch.cat([prompt, words], dim=1),
            attention_mask=torch.cat([attention_mask.new_ones(n, length), attention_mask], dim=1),
            token_type_ids=torch.cat([token_type_ids.new_zeros(n, length), token_type_ids], dim=1),
        ).last_hidden_state
        return hidden[:, length:]

    def layer_vectors(self) -> list[torch.Tensor]:
        """The prompt acts at the input layer only: one 'layer', the token mean of P."""
        with torch.no_grad():
            return [self.prompt_matrix().float().mean(dim=0)]
