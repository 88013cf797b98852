"""The corrupted landmark benchmark (Oxford5k, Paris6k, ROxford5k, RParis6k): the run
(:mod:`~robustret.experiment.landmarks.run`) and its shareable query sets
(:mod:`~robustret.experiment.landmarks.export`). Part of layer 5, the experiment.

``python -m robustret.experiment.landmarks`` runs :mod:`robustret.cli.landmarks`
(docs/landmarks.md).
"""

from __future__ import annotations

from robustret.experiment.landmarks.run import (
    LandmarkConfig,
    LandmarkResult,
    relevance_by_setup,
    run_landmarks,
)

__all__ = ["LandmarkConfig", "LandmarkResult", "relevance_by_setup", "run_landmarks"]
