"""The predictor registry: ``register(name, factory)``, ``get_predictor(name, **options)``.

Predictor modules register themselves when imported; :mod:`taskscout.predictors` imports every
built-in one, and packages above it (the learned affinity scorer) register theirs the same way.
"""

from __future__ import annotations

from collections.abc import Callable

from taskscout.predictors.base import Predictor

PREDICTORS: dict[str, Callable[..., Predictor]] = {}


def register(name: str, factory: Callable[..., Predictor]) -> None:
    """Register ``factory(**options) -> Predictor`` as ``name`` (a later call replaces it)."""
    PREDICTORS[name] = factory


def get_predictor(name: str, **options) -> Predictor:
    """The predictor registered as ``name`` (``options`` go to its constructor)."""
    try:
        factory = PREDICTORS[name]
    except KeyError:
        raise ValueError(f"unknown predictor {name!r}; choose from {sorted(PREDICTORS)}") from None
    return factory(**options)
