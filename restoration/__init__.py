"""Restoration: networks and classical filters that map degraded queries back toward clean ones.

Layer 2, a leaf library. May import: ``robustret.core`` (checks, registry, io, batching) and
``degradations`` (the Wiener filter builds the blur's kernel). Training, evaluation and which
restorer serves which degradation live in robustret (``robustret.train.restorer``,
``robustret.cli.restorer_eval``, ``robustret.experiment.policy``).

Public contract:

- :func:`available` -> sorted registry names (``identity``, the networks ``dae``, ``srcnn`` and
  the classical filters ``median``, ``switching_median``, ``nlm``, ``bilateral``, ``tv``,
  ``wiener``, ``bicubic``; ``kind_denoise`` picks ``switching_median`` or ``tv`` by the noise
  kind it is told);
  :func:`networks` / :func:`classical` -> the trainable / the untrained ones;
- :func:`build` ``(name, **options)`` -> a :class:`~restoration.base.Restorer`;
  ``restorer(images, params)`` maps a ``(B, C, H, W)`` batch in ``[0, 1]`` to the same shape
  and range, reading the degradation's drawn ``(B,)`` parameters it uses
  (:attr:`~restoration.base.Restorer.uses_params`) from the ``params`` dict;
- :func:`restore_batches` runs a restorer over N images in fixed-size batches;
- ``estimated`` (:class:`~restoration.routed.EstimateThenRestore`) restores each image by the
  restorer of its *estimated* family with estimated parameters, reading none of the drawn
  ones; :func:`~restoration.base.knowledge_of` says what a restorer knows (``oracle``,
  ``estimated``, ``blind``: :data:`~restoration.base.KNOWLEDGE`); ``oracle_route``
  (:class:`~restoration.routed.OracleRoute`) is its ceiling on the ``wild`` query set, routed
  by each image's drawn family and parameters;
- :func:`restoration.estimate.estimate_degradation` estimates from the degraded images alone
  (no drawn parameters) the family, noise kind and level, line-blur length and angle and Haar
  level, and gives them as the ``params`` dict a restorer reads (docs/estimation.md);
- :func:`save` / :func:`load`: a checkpoint stores the architecture name and options beside the
  weights, so ``load(path)`` rebuilds the model without other information.
"""

from __future__ import annotations

from typing import Any

from restoration.base import KNOWLEDGE, Identity, Restorer, knowledge_of, restore_batches
from restoration.checkpoints import checkpoint_meta, load, save
from restoration.classical import (
    BicubicUpsample,
    BilateralFilter,
    MedianFilter,
    NonLocalMeans,
    WienerDeblur,
)
from restoration.dae import DenoisingAutoencoder
from restoration.denoise import KindDenoiser, SwitchingMedian, TVDenoise
from restoration.hybrid import HybridRestorer
from restoration.registry import IDENTITY, RESTORERS
from restoration.routed import EstimateThenRestore, OracleRoute
from restoration.srcnn import SRCNN

RESTORERS.register(IDENTITY)(Identity)
RESTORERS.register("dae")(DenoisingAutoencoder)
RESTORERS.register("srcnn")(SRCNN)
RESTORERS.register("median")(MedianFilter)
RESTORERS.register("nlm")(NonLocalMeans)
RESTORERS.register("bilateral")(BilateralFilter)
RESTORERS.register("tv")(TVDenoise)
RESTORERS.register("switching_median")(SwitchingMedian)
RESTORERS.register("kind_denoise")(KindDenoiser)
RESTORERS.register("wiener")(WienerDeblur)
RESTORERS.register("bicubic")(BicubicUpsample)
RESTORERS.register("hybrid")(HybridRestorer)
RESTORERS.register("estimated")(EstimateThenRestore)
RESTORERS.register("oracle_route")(OracleRoute)


def available() -> list[str]:
    """Names accepted by :func:`build`, sorted."""
    return RESTORERS.names()


def networks() -> list[str]:
    """Sorted names of the trainable restorers (class attribute ``trainable``)."""
    return RESTORERS.networks()


def classical() -> list[str]:
    """Sorted names of the untrained filters (neither networks nor ``identity``)."""
    return RESTORERS.classical()


def build(name: str, **options: Any) -> Restorer:
    """Build the restorer registered as ``name`` with keyword ``options`` (``RESTORERS.build``).

    Args:
        name: one of :func:`available`.
        **options: constructor options (e.g. ``widths=(4, 4, 4, 4, 4)``, ``channels=3``).
    Returns:
        A :class:`Restorer` in ``eval()`` mode, remembering ``name`` and ``options``.
    Raises:
        KeyError: unknown name; the message lists the available ones.
    """
    return RESTORERS.build(name, **options)


__all__ = [
    "IDENTITY", "KNOWLEDGE", "RESTORERS", "Restorer", "available", "build", "checkpoint_meta",
    "classical", "knowledge_of",
    "load", "networks", "restore_batches", "save",
]
