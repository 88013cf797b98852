"""Layer 5, the experiment: its configuration, the restorer recipes and the family policy, the
plan of conditions, preflight checks, cached artefacts (trained models, finished conditions,
query sets), cluster jobs, seeds, and :func:`~robustret.experiment.runner.run`.

May import: layers 1-4. ``python -m robustret.experiment`` runs :mod:`robustret.cli.experiment`.
"""
