"""Build a :class:`~robustret.demo.service.DemoService` from a finished experiment folder."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from robustret.core.checks import ConfigError
from robustret.core.device import resolve_device
from robustret.demo.restorers import RestorerMenu
from robustret.demo.service import DemoService
from robustret.experiment.config import ExperimentConfig, load_config_file
from robustret.experiment.descriptors import whitened
from robustret.experiment.runner import load_data
from robustret.experiment.served import ServedRestorer
from robustret.experiment.trained import TrainedModel, gallery_embeddings, weights_key
from robustret.models import load_retriever

log = logging.getLogger(__name__)


def load_run(run_dir: str | Path, device: str = "auto") -> DemoService:
    """The service of ``run_dir``: its data set (reloaded from the resolved ``config.json``),
    its retriever (``results.json["resolved"]["retriever_checkpoint"]``), the gallery
    embeddings cached beside that checkpoint (computed and cached when missing), and every
    restorer the run trained (``results.json["resolved"]["restorers"]``, loaded from the run's
    cache as the run used them) beside the untrained ones.

    Raises:
        ConfigError: a file is missing or does not describe a finished run; the retriever's
            or a trained restorer's checkpoint is missing, does not verify against its
            ``.sha256`` sidecar, has none, or (a restorer's) is not the file the run used.
    """
    run_dir = Path(run_dir)
    files = {name: run_dir / name for name in ("config.json", "results.json")}
    for name, path in files.items():
        if not path.is_file():
            raise ConfigError(f"{run_dir} is not a finished experiment folder: no {name}")
    try:
        config = ExperimentConfig.from_dict(load_config_file(files["config.json"]))
        results = json.loads(files["results.json"].read_text())
        resolved = results["resolved"]
        checkpoint = Path(resolved["retriever_checkpoint"])
        served = [ServedRestorer.from_json(entry) for entry in resolved.get("restorers", ())]
        if "restorers" not in resolved and any(row.get("restorer_seen")
                                               for row in results.get("rows", ())):
            log.warning("%s records no trained restorers (written before runs recorded them): "
                        "the page offers the untrained ones only; re-run the experiment's "
                        "command to record them (its finished conditions are reused)", run_dir)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(f"{run_dir}: cannot read the run's config.json / results.json "
                          f"({exc})") from exc
    if not checkpoint.is_file():
        raise ConfigError(f"the run's retriever checkpoint {checkpoint} is missing "
                          "(set ROBUSTRET_CACHE to the run's cache)")
    try:
        torch_device = resolve_device(device)
    except ValueError as exc:  # cuda asked for where there is none, or a bad spec
        raise ConfigError(str(exc)) from exc
    try:  # the run's cached checkpoint: written with a sidecar, so it must verify
        model = load_retriever(checkpoint, torch_device, required=True)
    except ValueError as exc:
        raise ConfigError(f"the run's retriever checkpoint cannot be trusted: {exc}; re-run the "
                          "experiment's command to rebuild it") from exc
    data = load_data(config)
    channels = int(data.gallery.images.shape[1])
    menu = RestorerMenu.of_run(served, config.restore, torch_device, channels)
    trained = TrainedModel(model, str(resolved.get("retriever_key", "")), checkpoint,
                           weights_key(model, checkpoint))
    embeddings, key = gallery_embeddings(trained, data.gallery.images, torch_device)
    trained, embeddings, _ = whitened(config, trained, embeddings, key)  # the run's --whiten
    return DemoService(model, data.gallery.images, data.gallery.labels, data.queries.images,
                       data.queries.labels, data.class_names, gallery_embeddings=embeddings,
                       seed=config.seed, device=torch_device, restorers=menu)
