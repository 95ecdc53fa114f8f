"""A tuning method plus a task head: the trainable model for one task.

Heads (DESIGN section 3), always freshly initialised and never part of a task embedding:
classification / pair / regression: linear on the masked mean of the text's last hidden states
(the pooling all-MiniLM-L6-v2 was trained with); token classification: linear per sub-token;
multiple choice: linear -> 1 score per (text, choice), softmax over the choices.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from taskscout.data import TaskSpec, TaskType
from taskscout.encode import IGNORE_INDEX
from taskscout.tuning.methods import TuningMethod, build_method


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(N, T, H), (N, T) -> (N, H): mean over positions where mask is 1."""
    mask = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)


class TaskModel(nn.Module):
    """``forward(batch)`` -> logits: (B, num_labels) classification, (B,) regression,
    (B, T, num_labels) token classification, (B, C) multiple choice."""

    def __init__(self, method: TuningMethod, spec: TaskSpec, dropout: float = 0.1):
        super().__init__()
        self.method = method
        self.spec = spec
        out = len(spec.labels) if spec.type in _CLASSES else 1
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(method.hidden_size, out)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        ids, mask, types = batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]
        kind = self.spec.type
        if kind is TaskType.MULTIPLE_CHOICE:
            b, c, t = ids.shape
            hidden = self.method(ids.view(b * c, t), mask.view(b * c, t), types.view(b * c, t))
            scores = self.head(self.dropout(mean_pool(hidden, mask.view(b * c, t)))).view(b, c)
            if "choice_mask" in batch:
                scores = scores.masked_fill(
                    batch["choice_mask"] == 0, torch.finfo(scores.dtype).min
                )
            return scores
        hidden = self.method(ids, mask, types)
        if kind is TaskType.TOKEN_CLASSIFICATION:
            return self.head(self.dropout(hidden))
        logits = self.head(self.dropout(mean_pool(hidden, mask)))
        return logits.squeeze(-1) if kind is TaskType.REGRESSION else logits

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Cross-entropy (MSE for regression; padding/non-first sub-tokens ignored)."""
        logits = logits.float()
        if self.spec.type is TaskType.REGRESSION:
            return F.mse_loss(logits, labels.float())
        if self.spec.type is TaskType.TOKEN_CLASSIFICATION:
            return F.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=IGNORE_INDEX
            )
        return F.cross_entropy(logits, labels)

    # --- checkpoints: only what is trained ------------------------------------------------
    def trainable_state(self) -> dict[str, torch.Tensor]:
        """``method.<name>`` for the method's tuned parameters, ``head.<name>`` for the head."""
        state = {f"method.{k}": v for k, v in self.method.tuned_state().items()}
        state.update(
            {
                f"head.{k}": v.detach().to("cpu", copy=True)
                for k, v in self.head.state_dict().items()
            }
        )
        return state

    def load_trainable_state(self, state: dict[str, torch.Tensor], *, head: bool = True) -> None:
        """Load a checkpoint; ``head=False`` loads only the method part (transfer: fresh head)."""
        self.method.load_tuned_state(
            {k.removeprefix("method."): v for k, v in state.items() if k.startswith("method.")}
        )
        if head:
            self.head.load_state_dict(
                {k.removeprefix("head."): v for k, v in state.items() if k.startswith("head.")}
            )


_CLASSES = (TaskType.CLASSIFICATION, TaskType.PAIR_CLASSIFICATION, TaskType.TOKEN_CLASSIFICATION)


def init_method(
    name: str, encoder: nn.Module, options: dict | None = None, *, seed: int
) -> TuningMethod:
    """Method ``name`` on ``encoder`` at its seeded initialisation: ``torch.manual_seed(seed)``,
    then the method. The one place that fixes the RNG order of a run's initialisation; tuning,
    transfer runs and ``tupate-<m>-delta`` (which rebuilds a run's init) all rely on it."""
    torch.manual_seed(seed)
    return build_method(name, encoder, options)


def build_task_model(
    name: str, encoder: nn.Module, spec: TaskSpec, options: dict | None = None, *, seed: int
) -> TaskModel:
    """The trainable model of a run before training: :func:`init_method`, then a fresh head
    (its initialisation drawn right after the method's)."""
    return TaskModel(init_method(name, encoder, options, seed=seed), spec)
