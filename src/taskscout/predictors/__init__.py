"""Source-ranking predictors: ``get_predictor(name).score(target, sources, pool)``.

Names: ``tupate-{lora,bitfit,prefix,prompt}`` (``tupate-<m>-delta``: minus the seeded init),
``prompt-{mean,token}-{manhattan,euclidean,cosine}``,
``ensemble``, ``ensemble-rank``, ``datasize``, ``random``, ``curvegrad``, ``textemb``,
``taskemb``, ``logme`` (see each module), ``affinity`` (a learned scorer,
:mod:`taskscout.affinity`; needs ``scorer=DIR``). Higher score = predicted more helpful.
"""

from taskscout.affinity import predictor as _affinity  # noqa: F401  (registration)
from taskscout.predictors import baselines, ensemble, prompt_metrics, tupate_delta  # noqa: F401
from taskscout.predictors.base import (
    PREDICTORS,
    Pool,
    Predictor,
    Scores,
    TupatePredictor,
    get_predictor,
)

__all__ = ["PREDICTORS", "Pool", "Predictor", "Scores", "TupatePredictor", "get_predictor"]
