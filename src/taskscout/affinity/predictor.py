"""The ``affinity`` predictor: a fitted affinity scorer as a source-ranking predictor.

``get_predictor("affinity", scorer="scorer/").score(target, sources, pool)`` returns the
predicted gain of each source in metric points (higher = more helpful); ``scores.info["std"]``
maps each source to the ensemble's standard deviation (NaN for a single scorer). The pool must
match what the scorer was trained with (backbone, method, checkpoint, embedding shape):
otherwise :class:`~taskscout.embeddings.similarity.IncompatibleEmbeddingError`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from taskscout.affinity.data import EmbeddingSet
from taskscout.affinity.io import load_model, read_scorer_config
from taskscout.embeddings.similarity import IncompatibleEmbeddingError
from taskscout.predictors.base import Pool, Reads, Scores, check_sources
from taskscout.predictors.registry import register


@dataclass
class AffinityPredictor:
    """``scorer``: a scorer folder (``taskscout affinity fit --out``) or a fitted
    :class:`~taskscout.affinity.ensemble.AffinityModel`."""

    scorer: str | os.PathLike | object | None = None
    name: str = "affinity"
    _model: object = field(default=None, repr=False)

    def __post_init__(self):
        if self.scorer is None:  # refused at once, before a target is tuned for it
            raise ValueError(
                "the affinity predictor needs a fitted scorer: pass scorer=DIR "
                "(CLI: --scorer DIR; fit one with `taskscout affinity fit`)"
            )

    @property
    def reads(self) -> Reads:
        """The scorer's method (from its folder's config; lora for an unset scorer)."""
        if self._model is not None:
            method = self._model.info.method
        elif isinstance(self.scorer, (str, os.PathLike)):
            method = read_scorer_config(self.scorer)[1].method
        elif self.scorer is not None:
            method = self.scorer.info.method
        else:
            method = "lora"
        return Reads(methods=(method,), checkpoint=True)

    def model(self, pool: Pool):
        if self._model is None:
            if self.scorer is None:
                raise ValueError(
                    "the affinity predictor needs a fitted scorer: pass scorer=DIR "
                    "(CLI: --scorer DIR; fit one with `taskscout affinity fit`)"
                )
            if isinstance(self.scorer, (str, os.PathLike)):
                config, info = read_scorer_config(self.scorer)
                location = None
                if config.kind == "backbone":
                    if info.backbone != pool.backbone:
                        raise IncompatibleEmbeddingError(
                            f"scorer {Path(self.scorer)} was trained on backbone "
                            f"{info.backbone!r} but the pool uses {pool.backbone!r}"
                        )
                    location = pool.backbone_location()
                self._model = load_model(self.scorer, backbone_location=location)
            else:
                self._model = self.scorer
        return self._model

    def score(self, target: str, sources: list[str], pool: Pool) -> Scores:
        names = check_sources(target, sources)
        model = self.model(pool)
        emb = EmbeddingSet.from_pool(pool, model.info.method, [target, *names])
        mean, std = model.predict([target] * len(names), names, emb)
        return Scores(
            zip(names, mean.tolist(), strict=True),
            {
                "std": dict(zip(names, std.tolist(), strict=True)),
                "kind": model.config.kind,
                "method": model.info.method,
                "unit": "metric points",
            },
        )


register("affinity", lambda **kw: AffinityPredictor(**kw))
