"""``run(config)``: builds everything an experiment needs and loops over its conditions.

Caching: the retriever and each restorer are trained once per key of everything that affects
them (data content, image size, profile and epochs, seed, backbone, weights) under
``cache_dir/models``; gallery embeddings are stored beside the retriever; each finished
condition is kept in ``OUT/.conditions`` so an interrupted sweep continues where it stopped.
Results are written only at the end, each file atomically.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

import degradations
from robustret import __version__
from robustret.config import NOISE_FAMILY, ExperimentConfig, fingerprint
from robustret.data import RetrievalData, load
from robustret.device import resolve_device
from robustret.io import atomic_write_json
from robustret.paths import cache_dir
from robustret.pipeline import map_batches, retrieval_grid, score_condition
from robustret.report import table_lines, write_results
from robustret.retrieval import GalleryIndex, extract_embeddings
from robustret.rng import sample_seed
from robustret.sweep import plot_sweep, summarise_sweep, summary_markdown
from robustret.tracking import RunLogger
from restoration.evaluate import restorer_kwargs

log = logging.getLogger(__name__)

#: What the profiles change in the data: images resized to 64 px keep the quick CPU run in minutes.
PROFILE_DATA = {"quick": {"image_size": 64, "per_class": None}, "paper": {"image_size": None, "per_class": None}}
GRID_QUERIES = 8
SEED_DEGRADE, SEED_RETRIEVER, SEED_RESTORER = 1, 2, 3


@dataclass
class RunResult:
    """What :func:`run` produced."""

    rows: list[dict[str, Any]]
    table: str
    paths: dict[str, Path]
    tensorboard_dir: Path | None
    timings: dict[str, float] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


def restorers_for(degradation: str, mode: str) -> list[str]:
    """The restorers applied to ``degradation`` under ``--restore mode``.

    ``auto`` is the study's pairing: the denoising autoencoder for the noise family, SRCNN for
    low resolution and motion blur.
    """
    from restoration.classical import classical_for

    if mode == "none":
        return []
    if mode == "auto":
        return ["dae"] if degradation in NOISE_FAMILY else ["srcnn"]
    if mode == "classical":
        return [classical_for(degradation)]
    if mode == "all":
        return ["dae", "srcnn", classical_for(degradation)]
    return [mode]


def restorer_training_degradation(degradation: str) -> str:
    """What a network restorer for ``degradation`` is trained on: one model for all noises, as in the study."""
    return "noise" if degradation in NOISE_FAMILY else degradation


def _content_hash(data: RetrievalData) -> str:
    digest = hashlib.sha256()
    for part in (data.gallery.images, data.gallery.labels, data.queries.images, data.queries.labels):
        digest.update(part.contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def _file_hash(path: Path | None) -> str | None:
    if path is None:
        return None
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def run(config: ExperimentConfig, *, command: str | None = None) -> RunResult:
    """Run the experiment described by ``config`` and write its results.

    Args:
        config: the validated configuration.
        command: the command line, recorded in the results.

    Returns:
        A :class:`RunResult` with the rows, the printed table and the written paths.

    Raises:
        ValueError, FileNotFoundError, KeyError: bad data spec, weights path, or names.
    """
    began = time.perf_counter()
    timings: dict[str, float] = {}
    device = resolve_device(config.device)
    out_dir = config.out_dir
    models_dir = config.cache_dir or cache_dir("models")
    profile_data = PROFILE_DATA[config.profile]
    image_size = config.image_size or profile_data["image_size"]
    per_class = config.per_class or profile_data["per_class"]
    unknown = [d for d in (*config.degradations, *config.train_degrade) if d not in degradations.available()]
    if unknown:
        raise ValueError(f"unknown degradation {unknown}; available: {', '.join(degradations.available())}")

    tick = time.perf_counter()
    data = load(config.dataset, image_size=image_size, per_class=per_class, seed=config.seed,
                **config.dataset_options)
    timings["load_data_s"] = time.perf_counter() - tick
    log.info("data: %s", data.describe().replace("\n", "; "))
    data_key = _content_hash(data)
    out_dir.mkdir(parents=True, exist_ok=True)
    logger = RunLogger(out_dir / "tb", tensorboard=config.tensorboard)
    try:
        tick = time.perf_counter()
        model, retriever_key = _retriever(config, data, data_key, device, models_dir, logger)
        timings["retriever_s"] = time.perf_counter() - tick

        tick = time.perf_counter()
        indexes = _gallery_indexes(config, model, data, device, models_dir / f"retriever-{retriever_key}")
        timings["gallery_index_s"] = time.perf_counter() - tick

        rows, grids = _evaluate_conditions(config, data, model, indexes, device, models_dir, data_key,
                                           retriever_key, out_dir, logger, timings)
        timings["total_s"] = time.perf_counter() - began
        _log_run(config, logger, rows, grids, data, indexes, data_key)
    finally:
        logger.close()

    extra = ""
    if len(config.severities) > 1:
        metric, k = config.metrics[0], min(config.ks)
        plot_path = plot_sweep(rows, out_dir / "sweep.png", metric=metric, k=k)
        summary = summarise_sweep(rows, metric=metric, k=k)
        atomic_write_json(out_dir / "sweep_summary.json", summary)
        extra = summary_markdown(summary, metric=metric, k=k) + f"\n![sweep]({plot_path.name})\n"
    meta = {
        "config": config.to_dict(),
        "command": command,
        "seed": config.seed,
        "derived_seeds": {"degrade": sample_seed(config.seed, SEED_DEGRADE),
                          "retriever": sample_seed(config.seed, SEED_RETRIEVER)},
        "resolved": {"image_size": image_size, "per_class": per_class, "device": str(device),
                     "retriever_key": retriever_key, "data_key": data_key,
                     "retriever_checkpoint": str(models_dir / f"retriever-{retriever_key}" / "last.pt"),
                     "gallery_size": len(data.gallery), "query_size": len(data.queries),
                     "classes": list(data.class_names)},
        "versions": {"robustret": __version__, "torch": torch.__version__, "python": platform.python_version()},
        "timings": timings,
    }
    atomic_write_json(out_dir / "config.json", meta["config"] | {"resolved": meta["resolved"]})
    paths = write_results(out_dir, rows, meta, extra_markdown=extra)
    return RunResult(rows=rows, table="\n".join(table_lines(rows, markdown=False)), paths=paths,
                     tensorboard_dir=out_dir / "tb" if config.tensorboard else None, timings=timings, meta=meta)


def _retriever(config: ExperimentConfig, data: RetrievalData, data_key: str, device: torch.device,
               models_dir: Path, logger: RunLogger) -> tuple[torch.nn.Module, str]:
    """Train the retriever, or load it from the cache when the same key was trained before."""
    from robustret.models import build_retriever
    from robustret.train.classifier import RetrieverTrainConfig, train_retriever

    train_config = RetrieverTrainConfig.paper() if config.profile == "paper" else RetrieverTrainConfig.quick()
    changes: dict[str, Any] = {"seed": sample_seed(config.seed, SEED_RETRIEVER)}
    if config.retriever_epochs is not None:
        changes["epochs"] = config.retriever_epochs
    train_config = dataclasses.replace(train_config, **changes)
    key = fingerprint("retriever", __version__, data_key, config.backbone, _file_hash(config.weights),
                      dataclasses.asdict(train_config), list(config.train_degrade))
    torch.manual_seed(train_config.seed)
    model = build_retriever(config.backbone, num_classes=len(data.class_names),
                            in_channels=data.gallery.images.shape[1], weights=config.weights).to(device)
    train_degrade = None
    if config.train_degrade:
        names = list(config.train_degrade)

        def train_degrade(images: Tensor, generator: torch.Generator) -> Tensor:
            pick = int(torch.randint(len(names), (1,), generator=generator))
            severity = int(torch.randint(1, 6, (1,), generator=generator))
            return degradations.apply(images, names[pick], severity, generator=generator)

    train_retriever(model, data.gallery, train_config, device=device, out_dir=models_dir / f"retriever-{key}",
                    logger=logger, train_degrade=train_degrade)
    model.eval()
    return model, key


def _gallery_indexes(config: ExperimentConfig, model: torch.nn.Module, data: RetrievalData,
                     device: torch.device, folder: Path) -> dict[str, GalleryIndex]:
    """Gallery embeddings (cached beside the retriever) indexed under each metric."""
    path = folder / "gallery_embeddings.pt"
    embeddings = None
    if path.is_file():
        cached = torch.load(path, map_location="cpu")
        if cached.get("n") == len(data.gallery):
            embeddings = cached["embeddings"]
    if embeddings is None:
        embeddings = extract_embeddings(model, data.gallery.images, device=device)
        from robustret.io import atomic_save

        atomic_save({"embeddings": embeddings, "n": len(data.gallery)}, path)
    return {metric: GalleryIndex(embeddings, data.gallery.labels, metric) for metric in config.metrics}


def _restorer(name: str, degradation: str, config: ExperimentConfig, data: RetrievalData,
              device: torch.device, models_dir: Path, data_key: str) -> tuple[torch.nn.Module, str]:
    """A ready restorer: classical filters are built, networks trained or loaded from the cache.

    A network is trained on the clean gallery degraded on the fly by
    :func:`restorer_training_degradation` of ``degradation``, at the experiment's severities
    (one drawn per batch when there are several).
    """
    import restoration

    if name not in ("dae", "srcnn"):
        return restoration.build(name).to(device).eval(), name
    from restoration.training import RestorerTrainConfig, train_restorer

    target = restorer_training_degradation(degradation)
    severities = sorted(set(config.severities))
    preset = RestorerTrainConfig.paper if config.profile == "paper" else RestorerTrainConfig.quick
    changes: dict[str, Any] = {"seed": sample_seed(config.seed, SEED_RESTORER), "device": str(device),
                               "severity": severities[len(severities) // 2]}
    if config.restorer_epochs is not None:
        changes["epochs"] = config.restorer_epochs
    train_config = preset(name, target, **changes)

    def degrade(images: Tensor, generator: torch.Generator) -> Tensor:
        pick = int(torch.randint(len(severities), (1,), generator=generator)) if len(severities) > 1 else 0
        return degradations.apply(images, target, severities[pick], generator=generator)

    key = fingerprint("restorer", __version__, data_key, severities, dataclasses.asdict(train_config))
    label = f"{name}-{target}-{key}"
    result = train_restorer(train_config, models_dir / label, train_images=data.gallery.images,
                            val_images=data.queries.images, degrade=degrade, tensorboard=config.tensorboard)
    return result.model.eval(), label


def _evaluate_conditions(config: ExperimentConfig, data: RetrievalData, model: torch.nn.Module,
                         indexes: dict[str, GalleryIndex], device: torch.device, models_dir: Path, data_key: str,
                         retriever_key: str, out_dir: Path, logger: RunLogger,
                         timings: dict[str, float]) -> tuple[list[dict[str, Any]], dict[str, Tensor]]:
    """Clean queries, then every (degradation, severity, restorer) condition; finished ones are kept."""
    queries, labels = data.queries.images, data.queries.labels
    done_dir = out_dir / ".conditions"
    grid_index = torch.linspace(0, len(queries) - 1, min(GRID_QUERIES, len(queries))).long()
    grids: dict[str, Tensor] = {}
    rows: list[dict[str, Any]] = []
    k_max = max(config.ks)

    def condition(name: str, key_parts: tuple, images_fn) -> None:
        key = fingerprint(retriever_key, list(config.metrics), list(config.ks), *key_parts)
        path = done_dir / f"{name}-{key}.json"
        tick = time.perf_counter()
        if path.is_file():
            cached = json.loads(path.read_text(encoding="utf-8"))
            rows.extend(cached["rows"])
            log.info("%s: reused finished condition from %s", name, path)
            return
        images = images_fn()
        embeddings = extract_embeddings(model, images, device=device)
        kind, degradation, severity, restorer = key_parts[:4]
        new_rows, retrieved = score_condition(embeddings, labels, indexes, config.ks, query=kind,
                                              degradation=degradation, severity=severity, restorer=restorer)
        rows.extend(new_rows)
        first_metric = config.metrics[0]
        grids[name] = retrieval_grid(images[grid_index], labels[grid_index], data.gallery.images,
                                     data.gallery.labels, retrieved[first_metric][grid_index, : min(5, k_max)])
        atomic_write_json(path, {"rows": new_rows})
        timings[f"{name}_s"] = time.perf_counter() - tick

    condition("clean", ("clean", None, None, None), lambda: queries)
    restorer_cache: dict[tuple[str, str], tuple[torch.nn.Module, str]] = {}
    for degradation in config.degradations:
        for severity in config.severities:
            seed = sample_seed(config.seed, SEED_DEGRADE, severity)
            degraded_cache: dict[str, Any] = {}

            def degraded(degradation: str = degradation, severity: int = severity,
                         seed: int = seed) -> tuple[Tensor, dict[str, Tensor]]:
                if "x" not in degraded_cache:
                    degraded_cache["x"] = degradations.apply_indexed(
                        queries, degradation, severity, seed=seed, indices=torch.arange(len(queries)),
                        return_params=True)
                return degraded_cache["x"]

            condition(f"{degradation}-s{severity}", ("degraded", degradation, severity, None, seed),
                      lambda: degraded()[0])
            for name in restorers_for(degradation, config.restore):
                cache_key = (name, restorer_training_degradation(degradation) if name in ("dae", "srcnn") else name)
                if cache_key not in restorer_cache:
                    tick = time.perf_counter()
                    restorer_cache[cache_key] = _restorer(name, degradation, config, data, device, models_dir,
                                                          data_key)
                    timings[f"restorer_{'-'.join(cache_key)}_s"] = time.perf_counter() - tick
                restorer, restorer_key = restorer_cache[cache_key]
                condition(f"{degradation}-s{severity}-{name}",
                          ("restored", degradation, severity, name, seed, restorer_key),
                          lambda name=name, restorer=restorer: map_batches(
                              restorer, degraded()[0], device=device,
                              per_item=restorer_kwargs(name, degraded()[1])))
    return rows, grids


def _log_run(config: ExperimentConfig, logger: RunLogger, rows: list[dict[str, Any]], grids: dict[str, Tensor],
             data: RetrievalData, indexes: dict[str, GalleryIndex], data_key: str) -> None:
    """TensorBoard: a scalar per row, retrieval grids, gallery projector, hparams."""
    for row in rows:
        parts = [row["degradation"] or "clean", f"s{row['severity']}" if row["severity"] else None,
                 row["query"], row["restorer"], row["metric"]]
        logger.scalar("eval/" + "/".join(p for p in parts if p) + f"/top{row['k']}", row["accuracy"])
    for name, grid in grids.items():
        logger.image_grid(f"retrieval/{name}", grid)
    if config.tensorboard:
        index = next(iter(indexes.values()))
        thumbs = torch.nn.functional.interpolate(data.gallery.images, size=(32, 32), mode="area")
        names = [data.class_names[int(i)] for i in data.gallery.labels]
        logger.embeddings("gallery", index.embeddings, names, thumbs)
        headline = {f"{r['query']}_{r['degradation'] or 'clean'}_{r['restorer'] or ''}_{r['metric']}_top{r['k']}":
                    r["accuracy"] for r in rows if r["k"] == min(config.ks) and r["severity"] in (None, 3)}
        logger.hparams({k: v if not isinstance(v, list) else ",".join(map(str, v))
                        for k, v in config.to_dict().items() if v is not None} | {"data_key": data_key}, headline)
