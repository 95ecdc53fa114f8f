"""Measured intermediate-task transfer (DESIGN sections 5-6).

* :mod:`.settings` -- the tuning settings one matrix shares, and the ids derived from them;
* :mod:`.run` -- one transfer run (target tuned from a source's checkpoint) and its no-transfer
  twin;
* :mod:`.jobs` -- the picklable unit of work that executors run and the driver commits;
* :mod:`.executors` -- in-process, local worker processes, Ray;
* :mod:`.scheduler` -- the (source, target) x seeds matrix: plan, estimate, resume, retry;
* :mod:`.gains` -- the long-form gold table ``target,source,gain,performance,gain_std,n_seeds``.
"""

from taskscout.store import TransferRecord, TransferTable
from taskscout.transfer.gains import gains_table
from taskscout.transfer.run import build_target_model, run_transfer
from taskscout.transfer.scheduler import MatrixPlan, plan_matrix, run_matrix
from taskscout.transfer.settings import TuneSettings

__all__ = [
    "MatrixPlan",
    "TransferRecord",
    "TransferTable",
    "TuneSettings",
    "build_target_model",
    "gains_table",
    "plan_matrix",
    "run_matrix",
    "run_transfer",
]
