"""robustret: robustness research on degraded-query image retrieval.

The package is layered so that imports flow one way:

* bottom: :mod:`robustret.core.checks`, :mod:`robustret.core.rng`, :mod:`robustret.core.registry`,
  :mod:`robustret.core.device`, :mod:`robustret.core.io`, :mod:`robustret.core.paths`;
* middle: :mod:`degradations`, :mod:`restoration`, :mod:`robustret.data`,
  :mod:`robustret.models`, :mod:`robustret.retrieval`, :mod:`robustret.retrieval.metrics`;
* top: :mod:`robustret.train`, :mod:`robustret.evaluation.pipeline`,
:mod:`robustret.experiment.runner`,
  :mod:`robustret.report.files`, :mod:`robustret.cli.experiment`.

This module imports nothing heavy so that ``import robustret`` stays cheap.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
