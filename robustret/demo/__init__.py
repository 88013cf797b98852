"""A local web page to look at retrieval under degradation (``python -m robustret.demo``).

:mod:`robustret.demo.service` holds the logic (pure functions over tensors),
:mod:`robustret.demo.app` the FastAPI app, ``static/`` the page; see docs/demo.md.

Layer 6. May import: anything.
"""
