"""Measured intermediate-task transfer (DESIGN sections 5-6).

* :mod:`.run` -- one transfer run (target tuned from a source's checkpoint) and its no-transfer
  twin;
* :mod:`.jobs` -- the picklable unit of work that executors run and the driver commits;
* :mod:`.executors` -- in-process, local worker processes, Ray;
* :mod:`.scheduler` -- the (source, target) x seeds matrix: plan, estimate, resume, retry;
* :mod:`.gains` -- the long-form gold table ``target,source,gain,performance,gain_std,n_seeds``
  with paired-seed t intervals and the sources tied with each target's best;
* :mod:`.adaptive` -- adaptive seeds: racing a target's sources (``transfer --adaptive``).

A matrix shares one :class:`taskscout.tuning.config.TuneConfig` (its ``settings``), which also
gives each target's no-transfer run id.
"""

from taskscout.store import TransferRecord, TransferTable
from taskscout.transfer.gains import gains_table
from taskscout.transfer.run import TransferOutcome, run_transfer
from taskscout.transfer.scheduler import MatrixPlan, plan_matrix, run_matrix

__all__ = [
    "MatrixPlan",
    "TransferRecord",
    "TransferTable",
    "TransferOutcome",
    "gains_table",
    "plan_matrix",
    "run_matrix",
    "run_transfer",
]
