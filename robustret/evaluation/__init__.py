"""Layer 3, evaluation: one condition of the table
(:class:`~robustret.evaluation.results.Condition`),
its degraded and restored queries, the one pipeline that scores them
(:func:`~robustret.evaluation.pipeline.evaluate_condition`) and the typed
:class:`~robustret.evaluation.results.ResultRow` it returns.

May import: ``robustret.core``, ``degradations``, ``restoration``, ``robustret.data``,
``robustret.models``, ``robustret.retrieval``.
"""
