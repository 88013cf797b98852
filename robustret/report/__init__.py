"""Layer 4, reports: the printed table and the result files, run and sweep summaries, plots,
TensorBoard image grids and the approximate index's recall report.

May import: layers 1-3 (``robustret.core``, ``degradations``, ``restoration``, ``data``,
``models``, ``retrieval``, ``train``, ``evaluation``).
"""
