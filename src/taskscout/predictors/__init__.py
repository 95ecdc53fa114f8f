"""Source-ranking predictors: ``get_predictor(name).score(target, sources, pool)``.

Names: ``tupate-{lora,bitfit,prefix,prompt}`` (``tupate-<m>-delta``: minus the seeded init),
``prompt-{mean,token}-{manhattan,euclidean,cosine}``, ``ensemble``, ``ensemble-rank`` (and their
``-delta`` forms), ``datasize``, ``random``, ``curvegrad``, ``textemb``, ``taskemb``, ``logme``
(see each module), and the default ``gain-model`` (alias ``default``: a learned gain model
over those features, :mod:`taskscout.predictors.gain_model`). Packages above this one register
more the same way (``affinity``, a learned scorer: :mod:`taskscout.affinity.predictor`,
registered when :mod:`taskscout.affinity` is imported). Higher score = predicted more helpful.
Every predictor declares what it reads (:class:`Reads`).
"""

from taskscout.predictors import (  # noqa: F401  (registration)
    baselines,
    ensemble,
    gain_model,
    logme,
    prompt_metrics,
    tupate,
)
from taskscout.predictors.base import Pool, Predictor, Reads, Scores
from taskscout.predictors.registry import PREDICTORS, get_predictor, register
from taskscout.predictors.tupate import TupateDeltaPredictor, TupatePredictor

__all__ = [
    "PREDICTORS",
    "Pool",
    "Predictor",
    "Reads",
    "Scores",
    "TupateDeltaPredictor",
    "TupatePredictor",
    "get_predictor",
    "register",
]
