"""Restorer checkpoints: the architecture name and options beside the weights.

A checkpoint is one dict ``{"restorer": {"name", "options"}, "model": state_dict, "version",
...extra}``, written atomically; :func:`load` rebuilds the model from it with
``RESTORERS.build`` and needs no other information. Training checkpoints (``DIR/last.pt``)
have the same ``restorer`` and ``model`` entries plus the optimizer state.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from restoration.base import Restorer
from restoration.registry import RESTORERS
from robustret import __version__
from robustret.core.io import atomic_save, load_checkpoint

log = logging.getLogger(__name__)


def checkpoint_meta(model: Restorer) -> dict[str, Any]:
    """What :func:`load` needs to rebuild ``model``: ``{"name": ..., "options": {...}}``.

    Raises:
        ValueError: ``model`` was not built through the registry (its name is unknown).
    """
    name = model.restorer_name
    if name is None or name not in RESTORERS:
        raise ValueError(
            f"cannot record how to rebuild this {type(model).__name__} (registry name "
            f"{name!r}); build it with restoration.build(name, **options) so that its "
            "checkpoint can be loaded")
    return {"name": name, "options": dict(model.restorer_options)}


def save(model: Restorer, path: str | Path, **extra: Any) -> Path:
    """Save ``model`` (architecture, options, weights) atomically to ``path``, with a
    ``path.sha256`` checksum that :func:`load` verifies.

    Args:
        model: a restorer built with ``restoration.build``.
        path: the ``.pt`` file to write.
        **extra: further entries stored in the checkpoint (e.g. ``degradation="noise"``).
    Returns:
        ``path``.
    Raises:
        ValueError: see :func:`checkpoint_meta`.
    """
    return atomic_save({"restorer": checkpoint_meta(model), "model": model.state_dict(),
                        "version": __version__, **extra}, path, checksum=True)


def load(path: str | Path, device: str | torch.device = "cpu") -> Restorer:
    """Rebuild a restorer from a checkpoint file or a training folder (``DIR/last.pt``).

    Args:
        path: a ``.pt`` written by :func:`save` or by restorer training, or its folder.
        device: where to put the model.
    Returns:
        The restorer in ``eval()`` mode on ``device``; ``model.checkpoint_info`` holds the
        checkpoint's other metadata (degradation, epoch, config) when present.
    Raises:
        FileNotFoundError: no checkpoint there.
        ValueError: the file holds no restorer metadata or its weights do not fit.
    """
    path = Path(path)
    file = path / "last.pt" if path.is_dir() else path
    state = load_checkpoint(file)
    meta = state.get("restorer")
    if not isinstance(meta, dict) or "name" not in meta:
        raise ValueError(f"{file} is not a restorer checkpoint (no 'restorer' entry with the "
                         "architecture name); save restorers with restoration.save")
    options = meta.get("options", {})
    model = RESTORERS.build(meta["name"], **options)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as exc:
        raise ValueError(f"weights in {file} do not fit {meta['name']}({options}): {exc}") from exc
    model.checkpoint_info = {k: v for k, v in state.items()
                             if k not in ("model", "optimizer", "scheduler", "history")}
    log.info("loaded restorer %s from %s", meta["name"], file)
    return model.to(device).eval()
