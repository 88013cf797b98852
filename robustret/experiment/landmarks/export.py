"""The corrupted landmark queries as shareable query sets ("ROxford5k-C"): written and read in
the format of :mod:`robustret.experiment.query_sets` (``manifest.json`` with its sidecar,
``queries.npy`` with the exact float32 images, one PNG per query).

Each query is its own class in the set: label i is query i, ``class_names`` are the query
names. The manifest records the benchmark spec, the image size and ``dataset_options``
(``protocol: landmarks``, the format, channels, that queries are box crops) and the key of the
clean cropped queries, so ``--queries DIR`` refuses a set made from other queries, another seed
or another size.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from robustret.data import ImageSet, RetrievalData
from robustret.data.landmarks import LandmarkBenchmark
from robustret.evaluation.pipeline import DegradedQueries
from robustret.experiment.query_sets import query_set_for, write_query_set


def query_image_set(bench: LandmarkBenchmark, queries: Tensor) -> ImageSet:
    """The cropped, resized queries (Q, C, H, W) as an :class:`ImageSet`: label i = query i,
    class names = the query names, metadata ``file`` = the photo each was cropped from."""
    return ImageSet(queries, torch.arange(len(queries), dtype=torch.int64),
                    [q.name for q in bench.queries],
                    {"file": [q.file.name for q in bench.queries]})


def export_sets(out: Path, bench: LandmarkBenchmark, queries: ImageSet, config: Any) -> Path:
    """Write one query set per (degradation, severity) of ``config`` into ``out/NAME-sLEVEL``.

    The sets hold exactly the degraded queries the run scored (same seeds: the draws of
    :func:`robustret.evaluation.pipeline.degradation_seed`).

    Returns:
        ``out``.
    """
    # the writer reads only the queries; the gallery slot holds them too (the benchmark's
    # gallery is not part of a query set: it is the benchmark itself)
    data = RetrievalData(config.dataset, queries, queries, list(queries.class_names))
    options = {"protocol": "landmarks", "format": bench.format.value,
               "channels": config.channels, "queries": "cropped to their box, then resized"}
    for degradation in config.degradations:
        for severity in config.severities:
            write_query_set(out / f"{degradation}-s{severity}", data, degradation, int(severity),
                            config.seed, dataset=config.dataset, dataset_options=options,
                            image_size=config.image_size)
    return out


def exported_queries(folder: Path, degradation: str, severity: int, *, seed: int,
                     queries: ImageSet) -> DegradedQueries:
    """The verified degraded queries of one condition from the sets under ``folder``.

    Raises:
        ConfigError: no set for the condition, another seed, other clean queries, or a file
            that fails its checksum (one line naming it).
    """
    return query_set_for(folder, degradation, severity, seed=seed, queries=queries)
