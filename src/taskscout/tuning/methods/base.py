"""The contract every tuning method implements, and the method registry.

A method wraps a frozen encoder, adds (or unfreezes) the parameters it tunes, and maps a batch of
token ids to hidden states aligned with the input tokens. Its *tuned state* (the parameters it
trains, without the task head) is what checkpoints hold, what a transfer carries over, and what
task embeddings are computed from.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import ClassVar

import torch
from torch import nn

_LAYER = re.compile(r"(?:^|\.)layer\.(\d+)\.")


@dataclass
class MethodConfig:
    """Base of every method's config dataclass; ``to_dict`` is hashed into the run id."""

    def to_dict(self) -> dict:
        return asdict(self)


class TuningMethod(nn.Module):
    """A frozen encoder plus the parameters one PEFT method tunes.

    ``forward(input_ids, attention_mask, token_type_ids)`` takes (N, T) tensors and returns the
    last hidden states (N, T, H) for the input positions (virtual tokens removed).
    """

    name: ClassVar[str]
    config_class: ClassVar[type[MethodConfig]]
    default_lr: ClassVar[float]
    #: How the task embedding reduces over layers: per-layer methods take ``mean`` (default) or
    #: ``concat``; a method whose embedding is one matrix (prompt) has only ``none``.
    layer_reduces: ClassVar[tuple[str, ...]] = ("mean", "concat")

    @classmethod
    def embedding_reduce(cls, requested: str = "mean") -> str:
        """The layer reduction this method's embedding uses when ``requested`` is asked for:
        ``requested`` itself if the method supports it, ``none`` for a matrix embedding
        (prompt) whatever was asked; ValueError for an unknown reduction."""
        if requested not in ("mean", "concat", "none"):
            raise ValueError(f"layer_reduce must be 'mean' or 'concat', not {requested!r}")
        if not cls.layer_reduces:
            raise ValueError(f"method {cls.name!r} has no task embedding")
        if cls.layer_reduces == ("none",):
            return "none"
        if requested not in cls.layer_reduces:
            raise ValueError(
                f"method {cls.name!r} embeddings reduce layers by {' or '.join(cls.layer_reduces)}"
                f", not {requested!r}"
            )
        return requested

    def __init__(self, encoder: nn.Module, config: MethodConfig):
        super().__init__()
        self.config = config
        self.hidden_size = encoder.config.hidden_size
        self.num_layers = encoder.config.num_hidden_layers
        for param in encoder.parameters():
            param.requires_grad_(False)

    # --- the tuned parameters -------------------------------------------------------------
    def tuned_parameters(self) -> dict[str, nn.Parameter]:
        """Name -> parameter for everything this method trains (names are stable across runs)."""
        return {n: p for n, p in self.named_parameters() if p.requires_grad}

    def tuned_state(self) -> dict[str, torch.Tensor]:
        """Detached CPU copies of the tuned parameters."""
        return {
            n: p.detach().to("cpu", copy=True).contiguous()
            for n, p in self.tuned_parameters().items()
        }

    def load_tuned_state(self, state: dict[str, torch.Tensor]) -> None:
        """Copy ``state`` into the tuned parameters; names and shapes must match exactly."""
        params = self.tuned_parameters()
        missing, unexpected = set(params) - set(state), set(state) - set(params)
        if missing or unexpected:
            raise ValueError(
                f"{self.name} checkpoint does not fit this model: missing {sorted(missing)[:5]}, "
                f"unexpected {sorted(unexpected)[:5]} (made with another method or backbone?)"
            )
        with torch.no_grad():
            for name, param in params.items():
                if tuple(state[name].shape) != tuple(param.shape):
                    raise ValueError(
                        f"{self.name} checkpoint tensor {name} has shape "
                        f"{tuple(state[name].shape)}, "
                        f"this model expects {tuple(param.shape)} (another backbone or config?)"
                    )
                param.copy_(state[name])

    # --- task embeddings ------------------------------------------------------------------
    def layer_vectors(self) -> list[torch.Tensor]:
        """TuPaTE: for each transformer layer l, its tuned parameters flattened and concatenated
        in a fixed (sorted-name) order, v_l of shape (D,). Default: group parameters by the
        ``layer.<i>.`` in their name; methods with other layouts override this."""
        groups: dict[int, list[tuple[str, torch.Tensor]]] = {}
        for name, param in self.tuned_parameters().items():
            match = _LAYER.search(name)
            if match is None:
                raise ValueError(f"tuned parameter {name} belongs to no layer")
            groups.setdefault(int(match.group(1)), []).append((name, param.detach()))
        return [
            torch.cat([p.reshape(-1).float() for _, p in sorted(groups[i], key=lambda x: x[0])])
            for i in sorted(groups)
        ]

    def forward(self, input_ids, attention_mask, token_type_ids):  # pragma: no cover - abstract
        raise NotImplementedError


METHODS: dict[str, type[TuningMethod]] = {}


def register(cls: type[TuningMethod]) -> type[TuningMethod]:
    METHODS[cls.name] = cls
    return cls


def get_method(name: str) -> type[TuningMethod]:
    """The method class registered as ``name`` (lora, bitfit, prefix, prompt, full)."""
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown tuning method {name!r}; choose from {sorted(METHODS)}") from None


def build_method(name: str, encoder: nn.Module, options: dict | None = None) -> TuningMethod:
    """Instantiate method ``name`` on ``encoder`` with config fields from ``options``."""
    cls = get_method(name)
    fields = cls.config_class.__dataclass_fields__
    unknown = set(options or {}) - set(fields)
    if unknown:
        raise ValueError(f"unknown option(s) {sorted(unknown)} for {name}; valid: {sorted(fields)}")
    return cls(encoder, cls.config_class(**(options or {})))
