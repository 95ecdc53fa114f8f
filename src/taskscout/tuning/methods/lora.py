"""LoRA (Hu et al. 2021) via peft: rank-r updates of the attention query and value projections."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from taskscout.tuning.methods.base import MethodConfig, TuningMethod, register


@dataclass
class LoraMethodConfig(MethodConfig):
    r: int = 8
    alpha: int = 8
    dropout: float = 0.0
    target_modules: list[str] = field(default_factory=lambda: ["query", "value"])


@register
class LoraMethod(TuningMethod):
    """Tuned state: ``lora_A`` (r x H) and ``lora_B`` (H x r) of each target module per layer;
    the TuPaTE layer vector is their concatenation, r*H*4 = 12,288 values for MiniLM."""

    name = "lora"
    config_class = LoraMethodConfig
    default_lr = 1e-3

    def __init__(self, encoder: nn.Module, config: LoraMethodConfig):
        super().__init__(encoder, config)
        from peft import LoraConfig, inject_adapter_in_model

        lora = LoraConfig(
            r=config.r,
            lora_alpha=config.alpha,
            lora_dropout=config.dropout,
            target_modules=list(config.target_modules),
            bias="none",
        )
        self.encoder = inject_adapter_in_model(lora, encoder)
        for name, param in self.encoder.named_parameters():
            param.requires_grad_("lora_" in name)

    def forward(self, input_ids, attention_mask, token_type_ids):
        return self.encoder(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        ).last_hidden_state
