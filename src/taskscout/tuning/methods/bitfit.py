"""BitFit (Ben Zaken et al. 2022): tune only the bias terms of the transformer layers."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from taskscout.tuning.methods.base import MethodConfig, TuningMethod, register


@dataclass
class BitFitMethodConfig(MethodConfig):
    pass


@register
class BitFitMethod(TuningMethod):
    """Tuned state: every bias inside the transformer layers (attention q/k/v and output, FFN
    intermediate and output, both LayerNorms), 7H + 4H = 4,224 values per MiniLM layer.
    Embedding-layer biases stay frozen so that every tuned parameter belongs to a layer."""

    name = "bitfit"
    config_class = BitFitMethodConfig
    default_lr = 1e-3

    def __init__(self, encoder: nn.Module, config: BitFitMethodConfig):
        super().__init__(encoder, config)
        self.encoder = encoder
        for name, param in encoder.named_parameters():
            param.requires_grad_(name.endswith(".bias") and ".layer." in f".{name}")

    def forward(self, input_ids, attention_mask, token_type_ids):
        return self.encoder(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        ).last_hidden_state
