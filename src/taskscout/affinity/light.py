"""The light scorer: a small MLP over pair features of any vector task embedding.

Features of a pair (e_t, e_s) of D-dim vectors (TuPaTE of any method; for ``prompt`` the token
mean of P): both are centred by the mean of the *training* tasks' vectors and projected on the
top ``k`` principal directions of those training vectors (PCA by SVD, ``k = min(pca_dim,
#training tasks - 1, D)``, each coordinate divided by its training standard deviation), giving
a_t, a_s in R^k; the feature vector is ``[a_t, a_s, a_t * a_s, |a_t - a_s|, cos(e_t, e_s)]``
(4k + 1 values; the cosine on the raw vectors). The reduction matters: with ~10 training tasks
and D = 384 .. 12k a model on raw coordinates has far more inputs than distinct tasks.

Model: Linear(4k+1, hidden) - ReLU - Dropout - Linear(hidden, 1), initialised (PyTorch's
default ``nn.Linear`` scheme) and dropped out from generators seeded by the head's seed,
trained like the backbone scorer (smooth-L1 with ``beta`` on z-scored gains, AdamW). A torch
MLP rather than gradient boosting, so that both scorers share the loss (and its ``beta``
ablation), the learning-rate search, the seeded ensemble and the save format; sklearn's Huber
boosting sets its threshold as a residual quantile, not as ``beta``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from taskscout.affinity.train import SeededDropout, seeded_linear, torch_generator


class VectorFeaturizer:
    """PCA + standardisation fitted on training-task vectors; pair features of (e_t, e_s).

    ``mean`` (D,), ``components`` (k, D) with orthonormal rows, ``scale`` (k,) > 0: the
    training vectors' mean, top-k principal directions and the standard deviation of each
    projected coordinate. Deterministic (no random draw).
    """

    def __init__(self, mean: torch.Tensor, components: torch.Tensor, scale: torch.Tensor):
        self.mean = mean.float().contiguous()  # (D,)
        self.components = components.float().contiguous()  # (k, D), orthonormal rows
        self.scale = scale.float().contiguous()  # (k,)

    @classmethod
    def fit(cls, vectors: torch.Tensor, pca_dim: int) -> VectorFeaturizer:
        """Fit on ``vectors`` (T, D), one row per training task (T >= 2); ``k = min(pca_dim,
        T - 1, D)`` (at least 1)."""
        if vectors.ndim != 2 or len(vectors) < 2:
            raise ValueError(f"need >= 2 training task vectors (T, D), got {tuple(vectors.shape)}")
        x = vectors.double()
        mean = x.mean(dim=0)
        k = max(1, min(pca_dim, len(x) - 1, x.shape[1]))
        _, s, vt = torch.linalg.svd(x - mean, full_matrices=False)
        components = vt[:k]
        proj = (x - mean) @ components.T
        scale = proj.std(dim=0).clamp(min=1e-8)
        return cls(mean, components, scale)

    @property
    def dim(self) -> int:
        """Number of pair features, ``4k + 1``."""
        return 4 * self.components.shape[0] + 1

    def project(self, e: torch.Tensor) -> torch.Tensor:
        """(N, D) -> (N, k) float32: centred, projected, standardised coordinates."""
        return ((e.float() - self.mean) @ self.components.T) / self.scale

    def __call__(self, e_t: torch.Tensor, e_s: torch.Tensor) -> torch.Tensor:
        """(N, D), (N, D) -> (N, 4k + 1) float32."""
        a, b = self.project(e_t), self.project(e_s)
        cos = F.cosine_similarity(e_t.double(), e_s.double(), dim=1, eps=1e-12).float()
        return torch.cat([a, b, a * b, (a - b).abs(), cos.unsqueeze(1)], dim=1)

    def state(self) -> dict[str, torch.Tensor]:
        """The tensors that define the featurizer (for saving): mean, components, scale."""
        return {"mean": self.mean, "components": self.components, "scale": self.scale}

    @classmethod
    def from_state(cls, state: dict[str, torch.Tensor]) -> VectorFeaturizer:
        """Inverse of :meth:`state`."""
        return cls(state["mean"], state["components"], state["scale"])


class LightHead(nn.Module):
    """MLP: (B, F) pair features -> (B,) z-scored gain.

    The weights are initialised from the ``"init"`` stream of ``seed`` and the dropout masks
    (probability ``dropout`` in [0, 1), training mode only) come from its ``"dropout"``
    stream (:mod:`taskscout.affinity.train`): building or training a head never reads or
    advances torch's global generator, and two heads of one seed are identical.
    """

    def __init__(self, in_dim: int, hidden: int, seed: int, dropout: float = 0.1):
        super().__init__()
        init = torch_generator(seed, "init")
        self.net = nn.Sequential(
            seeded_linear(in_dim, hidden, init),
            nn.ReLU(),
            SeededDropout(dropout, seed),
            seeded_linear(hidden, 1, init),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, F) float32 -> (B,) predicted z-scored gains."""
        return self.net(x).squeeze(-1)
