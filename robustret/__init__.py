"""robustret: robustness research on degraded-query image retrieval.

The package is layered so that imports flow one way:

* bottom: :mod:`robustret.checks`, :mod:`robustret.rng`, :mod:`robustret.registry`,
  :mod:`robustret.device`, :mod:`robustret.io`, :mod:`robustret.paths`;
* middle: :mod:`degradations`, :mod:`restoration`, :mod:`robustret.data`,
  :mod:`robustret.models`, :mod:`robustret.retrieval`, :mod:`robustret.metrics`;
* top: :mod:`robustret.train`, :mod:`robustret.pipeline`, :mod:`robustret.runner`,
  :mod:`robustret.report`, :mod:`robustret.experiment`.

This module imports nothing heavy so that ``import robustret`` stays cheap.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
