"""robustret: robustness research on degraded-query image retrieval.

Its sub-packages are the layers; imports only go down (docs/architecture.md, enforced by
tests/test_architecture/test_layers.py):

1. :mod:`robustret.core`: contracts, seeds, registry, devices, verified files, cache keys;
2. :mod:`degradations`, :mod:`restoration`, :mod:`robustret.data`, :mod:`robustret.models`,
   :mod:`robustret.retrieval`;
3. :mod:`robustret.train`, :mod:`robustret.evaluation`;
4. :mod:`robustret.report`;
5. :mod:`robustret.experiment`;
6. :mod:`robustret.cli`, :mod:`robustret.demo`.

This module imports nothing, so that ``import robustret`` stays cheap.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
