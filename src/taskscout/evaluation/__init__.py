"""Scoring source-ranking predictors against ground truth (DESIGN.md section 5).

Depends on nothing else in taskscout. Modules:

* :mod:`~taskscout.evaluation.metrics` -- pure per-target metrics and their exact
  random-ranking expectations;
* :mod:`~taskscout.evaluation.files` -- long-form gold/scores CSV readers and their
  :class:`~taskscout.evaluation.files.EvaluationInputError`;
* :mod:`~taskscout.evaluation.longform` -- :func:`~taskscout.evaluation.longform.evaluate_long`,
  every predictor on every target beside the ``"random (expected)"`` baseline row;
* :mod:`~taskscout.evaluation.external` -- TaskWeb's published gold and predictor scores;
* :mod:`~taskscout.evaluation.report` -- tables and records of the results, and
  :func:`~taskscout.evaluation.report.evaluate_files` (the engine of ``taskscout evaluate``).
"""
