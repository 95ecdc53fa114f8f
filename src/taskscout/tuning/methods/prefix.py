"""P-Tuning v2 / prefix tuning (Li & Liang 2021; Liu et al. 2022) via peft.

Every layer gets ``num_virtual_tokens`` trainable key and value vectors prepended to its attention
keys and values; with ``reparametrize`` they are produced by a 2-layer MLP from an (L x H) table.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from torch import nn

from taskscout.tuning.methods.base import MethodConfig, TuningMethod, register


@dataclass
class PrefixMethodConfig(MethodConfig):
    num_virtual_tokens: int = 20
    reparametrize: bool = False
    encoder_hidden_size: int = 512  # MLP width when reparametrize=True


@register
class PrefixMethod(TuningMethod):
    """Tuned state: peft's prefix encoder. TuPaTE layer vector v_l = [K_l; V_l] flattened, the
    layer's key and value prefixes *after* reparametrisation, 2*L*H = 15,360 values for MiniLM."""

    name = "prefix"
    config_class = PrefixMethodConfig
    default_lr = 5e-3

    def __init__(self, encoder: nn.Module, config: PrefixMethodConfig):
        super().__init__(encoder, config)
        from peft import PrefixTuningConfig, get_peft_model

        peft_config = PrefixTuningConfig(
            task_type="FEATURE_EXTRACTION",
            num_virtual_tokens=config.num_virtual_tokens,
            prefix_projection=config.reparametrize,
            encoder_hidden_size=config.encoder_hidden_size,
        )
        with warnings.catch_warnings():  # peft calls a transformers API deprecated in v5
            warnings.simplefilter("ignore", FutureWarning)
            self.peft = get_peft_model(encoder, peft_config)
        for name, param in self.peft.named_parameters():
            param.requires_grad_(name.startswith("prompt_encoder."))

    def forward(self, input_ids, attention_mask, token_type_ids):
        n = input_ids.shape[0]
        prefix_mask = attention_mask.new_ones(n, self.config.num_virtual_tokens)
        # peft's own forward drops token_type_ids (needed for BERT pairs): call the base model.
        return self.peft.base_model(
            input_ids=input_ids,
            attention_mask=torch.cat([prefix_mask, attention_mask], dim=1),
            token_type_ids=token_type_ids,
            past_key_values=self.peft.get_prompt(n),
        ).last_hidden_state

    def prefixes(self) -> torch.Tensor:
        """Key/value prefixes after reparametrisation, shape (num_layers, 2, L, H)."""
        encoder = self.peft.prompt_encoder["default"]
        device = next(encoder.parameters()).device
        tokens = torch.arange(self.config.num_virtual_tokens, device=device)
        out = encoder(tokens.unsqueeze(0)).squeeze(0)  # (L, layers * 2 * H), peft's layout
        out = out.view(self.config.num_virtual_tokens, self.num_layers, 2, self.hidden_size)
        return out.permute(1, 2, 0, 3)

    def layer_vectors(self) -> list[torch.Tensor]:
        with torch.no_grad():
            kv = self.prefixes().float()
        return [kv[layer].reshape(-1) for layer in range(self.num_layers)]
