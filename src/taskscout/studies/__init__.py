"""The two papers' studies, and the pool report, as functions over a pool and a gold.

* :mod:`.common` -- a temporary copy of a pool (the given store is never modified), the
  TaskWeb gold, the baselines every row is shown beside (``random`` = exact expectation,
  ``datasize``, ``source-prior`` = a source's mean gain on the other targets, computed without
  the held-out target), evaluation with 90 % bootstrap intervals over targets.
* :mod:`.pool_report` -- the inputs of :func:`taskscout.report.pool_report` from a pool.
* :mod:`.tupate` -- Zhou et al. 2022: each method and the ensembles, early vs best checkpoint,
  in-class vs all-class sources, limited vs full source data.
* :mod:`.feng` -- Feng et al. 2023: the six prompt-similarity metrics, the affinity scorer
  (light and backbone) with ablations of M and beta, leave-one-task-type-out, low-resource
  targets.

Each study returns a :class:`~taskscout.studies.common.Study`: its tables (DataFrames with
``<metric>``, ``<metric> lo``, ``<metric> hi`` columns) and the :class:`taskscout.report.Report`
that shows them.
"""

from taskscout.studies.common import Study, StudyInputs, open_study_pool
from taskscout.studies.feng import feng_study
from taskscout.studies.pool_report import pool_report_inputs
from taskscout.studies.tupate import tupate_study

__all__ = [
    "Study",
    "StudyInputs",
    "feng_study",
    "open_study_pool",
    "pool_report_inputs",
    "tupate_study",
]
