"""Layer 3, training: the shared epoch loop, weight averaging, augmentation, and the trainers
built on them (the retriever as a classifier, the degradation-robust retriever, restorers).

May import: ``robustret.core``, ``degradations``, ``restoration``, ``robustret.data``,
``robustret.models``, ``robustret.retrieval``.
"""
