"""The run's descriptor stage after training: a PCA-whitening learned on the gallery's training
part (``--whiten pca``, ``--dim N``), set into the retriever and applied to the gallery.

The retriever trains on the gallery (its first ``retriever.max_images`` images when that is
set); the whitening is learned from those images' embeddings only, never from the queries. It
is deterministic given the embeddings, so it is recomputed each run (a matrix product) rather
than stored; what it decides is keyed: the whitened retriever's ``content_key`` and the
gallery's key both add the whitening's settings and code
(:attr:`robustret.models.descriptor.DescriptorSpec.whitening_key`), so finished conditions,
restorers trained through the retriever and cached indexes of raw embeddings are never reused
for whitened ones. Without whitening everything is returned unchanged.
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor

from robustret.core.checks import ConfigError
from robustret.core.keys import fingerprint, source_hash
from robustret.experiment.trained import TrainedModel
from robustret.models.whitening import apply_whitening, fit_whitening

log = logging.getLogger(__name__)

#: the code that decides a whitening and the whitened descriptors
WHITENING_CODE = ("robustret.models.whitening", "robustret.experiment.descriptors")
#: rows whitened at once (the raw gallery may be memory-mapped)
BLOCK = 1 << 14
#: fewer training embeddings than this many per kept direction draw a warning: measured in
#: docs/descriptors.md, 320 embeddings for 319 directions cost COIL-20 40 points of mAP, for 32
#: (10 per direction) about 3
FEW = 10


def whitened(config, retriever: TrainedModel, gallery: Tensor, gallery_key: str
             ) -> tuple[TrainedModel, Tensor, str]:
    """The retriever, gallery embeddings and gallery key of a run's descriptors.

    Args:
        config: the resolved run configuration (``descriptor``, ``retriever.max_images``).
        retriever: the trained retriever, without a whitening.
        gallery: (G, D) float32, its raw gallery embeddings (in gallery order).
        gallery_key: their key.
    Returns:
        ``(retriever, gallery, key)``: unchanged without whitening; else the retriever with
        the whitening set (:meth:`robustret.models.Retriever.set_whitening`; a new
        ``content_key``), the (G, d) whitened, L2-normalised gallery and its key.
    Raises:
        ConfigError: too few training embeddings for ``--dim``.
    """
    spec = config.descriptor
    if spec.whiten == "none":
        return retriever, gallery, gallery_key
    limit = config.retriever.max_images
    training = gallery[:limit] if limit is not None else gallery
    try:
        whitening = fit_whitening(training.float(), dim=spec.dim)
    except ValueError as exc:
        raise ConfigError(f"--whiten {spec.whiten}: {exc}") from exc
    model = retriever.model
    model.set_whitening(whitening)
    layer = model.whitening.whitening  # the float32 values embed() uses, for the gallery too
    log.info("whitening: %d-d -> %d-d, learned on %d gallery embeddings", whitening.input_dim,
             whitening.output_dim, len(training))
    if len(training) < FEW * whitening.output_dim:
        log.warning("whitening %d directions learned from only %d embeddings magnifies "
                    "directions of almost no variance and can cost much accuracy "
                    "(docs/descriptors.md, Measured); pass a smaller --dim (<= %d)",
                    whitening.output_dim, len(training), max(1, len(training) // FEW))
    with torch.no_grad():
        rows = torch.cat([apply_whitening(block.float(), layer) for block in gallery.split(BLOCK)])
    code = source_hash(*WHITENING_CODE)
    content = fingerprint("descriptor", retriever.content_key, *spec.whitening_key, len(training),
                          code)
    key = fingerprint("gallery-descriptor", gallery_key, *spec.whitening_key, len(training), code)
    return TrainedModel(model, retriever.key, retriever.checkpoint, content), rows, key
