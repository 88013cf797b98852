"""Real degraded photos as queries (``--query-folder DIR``): retrieval with the photos as they
are and after restoration that knows nothing, with each photo's estimated degradation.

A folder of real photos has no clean counterpart and no drawn parameters: nothing about how
each photo was degraded is known. So the run

1. trains (or reuses) the retriever and indexes the gallery exactly as an experiment does,
2. reads the class-per-folder ``DIR`` as queries (decoded, cropped and resized like the data
   set's images, to the data's channels; each sub-folder must name a class of the gallery),
3. searches them as they are, and after each restorer that reads no drawn parameter
   (``auto``'s, :data:`robustret.experiment.policy.AUTO`, and the one ``--restore`` names when
   it is another such restorer, e.g. the ``blind`` recipe),
4. estimates each photo's degradation from the photo alone
   (:func:`restoration.estimate.estimate_degradation`),

and writes ``OUT/photo_queries.json`` (the rows and, per photo, its file, class, estimate and
top-k classes of each row) and ``OUT/photo_queries.md``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor

import restoration
from restoration.estimate import estimate_degradation
from robustret.core.checks import ConfigError
from robustret.core.device import resolve_device
from robustret.core.distributed import setup
from robustret.core.io import atomic_write_json, atomic_write_text
from robustret.data import ImageSet
from robustret.data.base import to_float_images
from robustret.data.folder import decode_folder
from robustret.experiment.config import ExperimentConfig
from robustret.experiment.policy import AUTO, BLIND
from robustret.experiment.recipes import RECIPES
from robustret.experiment.runner import _load, _Stage, _train_and_index
from robustret.experiment.trained import trained_restorer
from robustret.retrieval.embed import extract_embeddings
from robustret.retrieval.metrics import topk_hit_rate

log = logging.getLogger(__name__)

AS_THEY_ARE = "as they are"
"""The label of the row that searches the photos unrestored."""


@dataclass(frozen=True)
class PhotoRow:
    """One row: a way of searching the photos and its top-k accuracy.

    Attributes:
        row: :data:`AS_THEY_ARE` or the restorer's name.
        knowledge: what the restorer knew (``estimated`` or ``blind``); None for no restorer.
        metric: the ranking metric.
        accuracy: k -> top-k matching accuracy in [0, 1].
    """

    row: str
    knowledge: str | None
    metric: str
    accuracy: dict[int, float]


@dataclass(frozen=True)
class PhotoQuery:
    """One photo: where it is, its class, its estimated degradation and what each row found.

    Attributes:
        file: its path relative to the query folder.
        class_name: its class (its sub-folder).
        family: the estimated family (``clean``, ``noise``, ``blur``, ``resolution``).
        estimate: the estimated parameters (noise level, blur length and angle, Haar level,
            severity).
        top: row -> the classes of its top-k gallery matches (the first metric), best first.
    """

    file: str
    class_name: str
    family: str
    estimate: dict[str, float]
    top: dict[str, list[str]]


@dataclass(frozen=True)
class PhotoResult:
    """What :func:`run_photo_queries` measured and where it wrote it."""

    rows: list[PhotoRow]
    queries: list[PhotoQuery]
    paths: dict[str, Path]


def load_photo_queries(folder: Path, class_names: Sequence[str], *, image_size: int,
                       channels: int) -> ImageSet:
    """The photos of class-per-folder ``folder`` as a query set of the data's classes.

    Args:
        folder: one sub-folder per class, each named like a class of the gallery.
        class_names: the gallery's class names (labels index these).
        image_size: the data's image size (centre crop to a square, then resize).
        channels: the data's channel count, 1 or 3.

    Returns:
        An :class:`ImageSet` of (N, channels, image_size, image_size) float32 in [0, 1] with
        metadata ``file``.

    Raises:
        ConfigError: not a readable class-per-folder tree, or a class the gallery lacks.
    """
    try:
        decoded = decode_folder(Path(folder), image_size)
    except (ValueError, OSError) as exc:
        raise ConfigError(f"--query-folder {folder}: {exc}") from exc
    names = list(decoded["class_names"])
    unknown = [name for name in names if name not in class_names]
    if unknown:
        raise ConfigError(f"--query-folder {folder}: class folder(s) {', '.join(unknown)} name no "
                          f"class of the gallery ({', '.join(class_names)}); rename or remove them")
    mapping = torch.tensor([list(class_names).index(name) for name in names])
    labels = mapping[torch.as_tensor(decoded["labels"])]
    images = to_float_images(decoded["images"], None, "gray" if channels == 1 else "rgb")
    return ImageSet(images, labels, list(class_names), {"file": list(decoded["files"])})


def photo_restorers(config: ExperimentConfig) -> list[str]:
    """The restorers the photos get: ``auto``'s, then the restorer ``--restore`` names when it
    reads no drawn parameter (a blind recipe, or a filter that reads none)."""
    names = [AUTO]
    chosen = config.restore
    if chosen in RECIPES and RECIPES[chosen].blind or (
            chosen in restoration.available()
            and restoration.knowledge_of(restoration.build(chosen)) != "oracle"):
        names.append(chosen)
    return list(dict.fromkeys(names))


def _ready_restorer(name: str, stage: _Stage) -> restoration.Restorer:
    """A filter built, or a blind recipe trained (or reused) as the experiment would."""
    assert stage.retriever is not None
    target = BLIND if name in RECIPES and RECIPES[name].blind else AUTO
    gallery = next(iter(stage.indexes.values())).embeddings
    return trained_restorer(name, target, list(stage.config.severities), stage.config,
                            stage.data, stage.data_key, stage.device, stage.models_dir,
                            stage.retriever, gallery).model


def _estimates(images: Tensor) -> tuple[list[str], list[dict[str, float]]]:
    estimate = estimate_degradation(images)
    columns = {"noise_level": estimate.noise_level, "blur_length": estimate.blur_length,
               "blur_angle": estimate.blur_angle, "level": estimate.level,
               "severity": estimate.severity}
    values = {name: column.float().tolist() for name, column in columns.items()}
    return estimate.family_names(), [{name: values[name][i] for name in values}
                                     for i in range(len(estimate))]


def run_photo_queries(config: ExperimentConfig) -> PhotoResult:
    """Search ``config.query_folder``'s photos against the gallery, as they are and restored
    (module docstring); write ``photo_queries.json`` and ``photo_queries.md`` into
    ``config.out_dir``."""
    config = config.resolved().validate()
    assert config.query_folder is not None
    stage = _load(config, setup(resolve_device(config.device)))
    config.out_dir.mkdir(parents=True, exist_ok=True)
    _train_and_index(stage, None)
    assert stage.retriever is not None
    _, channels, size, _ = stage.data.gallery.images.shape
    photos = load_photo_queries(config.query_folder, stage.data.class_names, image_size=size,
                                channels=channels)
    log.info("query folder %s: %d photos", config.query_folder, len(photos.labels))
    searched = {AS_THEY_ARE: (photos.images, None)}
    for name in photo_restorers(config):
        restorer = _ready_restorer(name, stage)
        restored = restoration.restore_batches(restorer, photos.images, {}, batch_size=128,
                                               device=stage.device)
        searched[name] = (restored, restoration.knowledge_of(restorer))
    k = max(config.ks)
    rows, top = [], {}
    for label, (images, knowledge) in searched.items():
        embeddings = extract_embeddings(stage.retriever.model, images, device=stage.device)
        for metric, index in stage.indexes.items():
            _, found = index.search(embeddings, min(k, len(index)))
            retrieved = stage.data.gallery.labels[found]
            hits = topk_hit_rate(retrieved, photos.labels, [q for q in config.ks if q <= k])
            rows.append(PhotoRow(label, knowledge, metric, {int(q): float(v)
                                                            for q, v in hits.items()}))
            if metric == config.metrics[0]:
                top[label] = retrieved
    families, estimates = _estimates(photos.images)
    queries = [PhotoQuery(photos.metadata["file"][i], photos.class_names[int(photos.labels[i])],
                          families[i], estimates[i],
                          {label: [photos.class_names[int(c)] for c in found[i]]
                           for label, found in top.items()})
               for i in range(len(photos.labels))]
    return PhotoResult(rows, queries, _write(config.out_dir, rows, queries))


def _write(out_dir: Path, rows: list[PhotoRow], queries: list[PhotoQuery]) -> dict[str, Path]:
    paths = {"json": out_dir / "photo_queries.json", "md": out_dir / "photo_queries.md"}
    atomic_write_json(paths["json"], {"rows": [asdict(row) for row in rows],
                                      "queries": [asdict(query) for query in queries]})
    atomic_write_text(paths["md"], photo_markdown(rows, queries))
    return paths


def photo_markdown(rows: Sequence[PhotoRow], queries: Sequence[PhotoQuery]) -> str:
    """The rows' accuracies, then one line per photo with its estimate and top-1 classes."""
    ks = sorted({k for row in rows for k in row.accuracy})
    lines = ["## Real photos as queries", "",
             "| row | knows | metric | " + " | ".join(f"top-{k}" for k in ks) + " |",
             "|---|---|---|" + "---:|" * len(ks)]
    for row in rows:
        lines.append(f"| {row.row} | {row.knowledge or '-'} | {row.metric} | " + " | ".join(
            f"{100 * row.accuracy[k]:.2f}" for k in ks) + " |")
    labels = list(queries[0].top) if queries else []
    lines += ["", "| photo | class | estimated | " + " | ".join(f"top-1 {label}"
                                                             for label in labels) + " |",
              "|---|---|---|" + "---|" * len(labels)]
    for query in queries:
        lines.append(f"| {query.file} | {query.class_name} | {_describe(query)} | " + " | ".join(
            query.top[label][0] for label in labels) + " |")
    return "\n".join(lines) + "\n"


def _describe(query: PhotoQuery) -> str:
    """The estimate in words: the family and the parameter that matters for it."""
    e = query.estimate
    detail = {"noise": f"level {e['noise_level']:.3f}",
              "blur": f"{e['blur_length']:.1f} px at {e['blur_angle']:.0f} deg",
              "resolution": f"Haar level {int(e['level'])}"}.get(query.family)
    return query.family if detail is None else f"{query.family} ({detail})"
