"""Restoration: networks and classical filters that map degraded queries back toward clean ones.

Public contract:

- :func:`available` -> sorted registry names (``identity``, ``dae``, ``srcnn`` and the classical
  baselines ``median``, ``nlm``, ``bilateral``, ``wiener``, ``bicubic``);
- :func:`build` ``(name, **options)`` -> a :class:`~restoration.base.Restorer` mapping a
  ``(B, C, H, W)`` batch in ``[0, 1]`` to the same shape and range;
- :func:`save` / :func:`load`: a checkpoint stores the architecture name and options beside the
  weights, so ``load(path)`` rebuilds the model without other information;
- :func:`classical_for` ``(degradation)`` -> the classical baseline name for a degradation.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from robustret import __version__
from robustret.io import atomic_save, load_checkpoint
from robustret.registry import Registry

from restoration.base import Identity, Restorer
from restoration.classical import (
    BicubicUpsample,
    BilateralFilter,
    MedianFilter,
    NonLocalMeans,
    WienerDeblur,
    classical_for,
)
from restoration.dae import DenoisingAutoencoder
from restoration.srcnn import SRCNN

log = logging.getLogger(__name__)

RESTORERS: Registry[Restorer] = Registry("restorer")
RESTORERS.register("identity")(Identity)
RESTORERS.register("dae")(DenoisingAutoencoder)
RESTORERS.register("srcnn")(SRCNN)
RESTORERS.register("median")(MedianFilter)
RESTORERS.register("nlm")(NonLocalMeans)
RESTORERS.register("bilateral")(BilateralFilter)
RESTORERS.register("wiener")(WienerDeblur)
RESTORERS.register("bicubic")(BicubicUpsample)

CLASSICAL = ("median", "nlm", "bilateral", "wiener", "bicubic")
NETWORKS = ("dae", "srcnn")


def available() -> list[str]:
    """Names accepted by :func:`build`, sorted."""
    return RESTORERS.names()


def build(name: str, **options: Any) -> Restorer:
    """Build the restorer registered as ``name`` with keyword ``options``.

    Args:
        name: one of :func:`available`.
        **options: constructor options (e.g. ``widths=(4, 4, 4, 4, 4)``, ``channels=3``).
    Returns:
        A :class:`Restorer` in ``eval()`` mode, remembering ``name`` and ``options``.
    Raises:
        KeyError: unknown name; the message lists the available ones.
    """
    model = RESTORERS.build(name, **options)
    model.restorer_name = name
    model.restorer_options = {k: list(v) if isinstance(v, tuple) else v for k, v in options.items()}
    return model.eval()


def checkpoint_meta(model: Restorer) -> dict[str, Any]:
    """What :func:`load` needs to rebuild ``model``: ``{"name": ..., "options": {...}}``."""
    return {"name": model.restorer_name, "options": dict(model.restorer_options)}


def save(model: Restorer, path: str | Path, **extra: Any) -> Path:
    """Save ``model`` (architecture, options, weights) atomically to ``path``; ``extra`` is stored too."""
    return atomic_save({"restorer": checkpoint_meta(model), "model": model.state_dict(),
                        "version": __version__, **extra}, path)


def load(path: str | Path, device: str | torch.device = "cpu") -> Restorer:
    """Rebuild a restorer from a checkpoint file or a training folder (``DIR/last.pt``).

    Args:
        path: a ``.pt`` written by :func:`save` or by ``restoration.train`` , or its folder.
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
        raise ValueError(f"{file} is not a restorer checkpoint (no 'restorer' entry with the architecture name)")
    model = build(meta["name"], **meta.get("options", {}))
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as exc:
        raise ValueError(f"weights in {file} do not fit {meta['name']}({meta.get('options', {})}): {exc}") from exc
    model.checkpoint_info = {k: v for k, v in state.items()
                             if k not in ("model", "optimizer", "scheduler", "history")}
    log.info("loaded restorer %s from %s", meta["name"], file)
    return model.to(device).eval()


__all__ = [
    "RESTORERS", "CLASSICAL", "NETWORKS", "Restorer", "available", "build", "save", "load", "classical_for",
    "checkpoint_meta",
]
