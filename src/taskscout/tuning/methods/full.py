"""Full fine-tuning: every encoder parameter is trained (intermediate-task training, Phang et
al. 2018, when a transfer run starts from a source's ``full`` checkpoint).

A ``full`` run's checkpoints hold the whole encoder (``method.encoder.*``, about 90 MB for
MiniLM per checkpoint), so transfer from ``full`` = fine-tune the encoder on s, then on t with a
fresh head. It has no TuPaTE task embedding (the tuned "parameters" are the whole network).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from taskscout.tuning.methods.base import MethodConfig, TuningMethod, register


@dataclass
class FullMethodConfig(MethodConfig):
    pass


@register
class FullFineTuning(TuningMethod):
    """Tuned state: all encoder parameters (embeddings, every layer, pooler excluded: unused)."""

    name = "full"
    layer_reduces = ()  # no task embedding: the tuned "parameters" are the whole encoder
    config_class = FullMethodConfig
    default_lr = 3e-5

    def __init__(self, encoder: nn.Module, config: FullMethodConfig):
        super().__init__(encoder, config)
        self.encoder = encoder
        for name, param in encoder.named_parameters():
            param.requires_grad_(not name.startswith("pooler."))

    def layer_vectors(self):
        raise ValueError(
            "method 'full' has no TuPaTE task embedding (it tunes the whole encoder); embed "
            "with a PEFT method (lora, bitfit, prefix, prompt)"
        )

    def forward(self, input_ids, attention_mask, token_type_ids):
        return self.encoder(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        ).last_hidden_state
