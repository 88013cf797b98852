"""PCA-whitening of retrieval descriptors, learned from training embeddings.

The descriptor pipeline of Radenovic, Tolias and Chum (TPAMI 2018) without labels: each
embedding is L2-normalised, centred on the training mean, projected on the leading principal
directions and scaled by ``1 / sqrt(eigenvalue + eps)``, then L2-normalised again. On the
training embeddings the projected values (before the last normalisation) have covariance ~ I.
:func:`fit_whitening` learns a :class:`Whitening` (pure: tensors in, a frozen value out);
:func:`apply_whitening` applies it; :class:`WhiteningLayer` is the same as a module, appended to
a retriever's ``embed`` (:meth:`robustret.models.Retriever.set_whitening`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass(frozen=True)
class Whitening:
    """A learned PCA-whitening.

    Attributes:
        mean: (D,) float64, the mean of the L2-normalised training embeddings.
        projection: (D, d) float64, principal directions (columns, largest variance first)
            scaled by ``1 / sqrt(eigenvalue + eps)``.
        eigenvalues: (d,) float64, the variances of those directions (after shrinkage).
    """

    mean: Tensor
    projection: Tensor
    eigenvalues: Tensor

    @property
    def input_dim(self) -> int:
        """D, the embedding size it takes."""
        return int(self.projection.shape[0])

    @property
    def output_dim(self) -> int:
        """d, the descriptor size it gives."""
        return int(self.projection.shape[1])


def fit_whitening(embeddings: Tensor, *, dim: int | None = None, shrinkage: float = 0.0,
                  eps: float = 1e-6) -> Whitening:
    """Learn a PCA-whitening from training embeddings.

    Args:
        embeddings: (N, D) float, the training images' embeddings (not normalised; they are
            L2-normalised here as :func:`apply_whitening` does).
        dim: d, the output size, ``1 <= d <= min(D, N - 1)``; None: ``min(D, N - 1)``.
        shrinkage: in [0, 1]: each eigenvalue becomes ``(1 - s) * l + s * mean(l)`` before the
            scaling (0: plain whitening; 1: a rotation scaled uniformly).
        eps: added to each eigenvalue before ``1 / sqrt`` (> 0).
    Returns:
        A :class:`Whitening` in float64 on the CPU.
    Raises:
        ValueError: not (N, D), too few rows for ``dim``, ``dim`` above D, or a bad
            ``shrinkage`` / ``eps``; each message says what to change.
    """
    if embeddings.ndim != 2 or embeddings.shape[0] < 2:
        raise ValueError(f"fit_whitening needs (N, D) embeddings with N >= 2; got shape "
                         f"{tuple(embeddings.shape)}")
    count, size = embeddings.shape
    limit = min(size, count - 1)
    if dim is not None:
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ValueError(f"dim must be a positive integer; got {dim!r}")
        if dim > size:
            raise ValueError(f"dim {dim} exceeds the embedding size {size}; pass --dim <= "
                             f"{size} (PCA can only reduce)")
        if dim > limit:
            raise ValueError(f"whitening to dim {dim} needs at least {dim + 1} training "
                             f"embeddings; got {count}: pass --dim <= {limit}")
    if not 0.0 <= shrinkage <= 1.0:
        raise ValueError(f"shrinkage must be in [0, 1]; got {shrinkage}")
    if not eps > 0:
        raise ValueError(f"eps must be > 0; got {eps}")
    rows = F.normalize(embeddings.detach().cpu().double(), dim=1)
    mean = rows.mean(dim=0)
    centred = rows - mean
    covariance = centred.T @ centred / (count - 1)  # (D, D)
    values, vectors = torch.linalg.eigh(covariance)  # ascending
    keep = dim or limit
    values, vectors = values.flip(0)[:keep].clamp(min=0.0), vectors.flip(1)[:, :keep]
    values = (1.0 - shrinkage) * values + shrinkage * values.mean()
    projection = vectors / torch.sqrt(values + eps)  # (D, d)
    return Whitening(mean=mean, projection=projection, eigenvalues=values)


def apply_whitening(embeddings: Tensor, whitening: Whitening, *,
                    normalize: bool = True) -> Tensor:
    """Whiten embeddings.

    Args:
        embeddings: (N, D) float, any device.
        whitening: from :func:`fit_whitening`, with ``input_dim`` D.
        normalize: L2-normalise the result (the descriptor); False gives the whitened values
            whose covariance over the training embeddings is ~ I.
    Returns:
        (N, d), the input's dtype and device.
    Raises:
        ValueError: the embeddings are not (N, D).
    """
    if embeddings.ndim != 2 or embeddings.shape[1] != whitening.input_dim:
        raise ValueError(f"the whitening takes (N, {whitening.input_dim}) embeddings; got shape "
                         f"{tuple(embeddings.shape)}")
    mean = whitening.mean.to(embeddings.device, embeddings.dtype)
    projection = whitening.projection.to(embeddings.device, embeddings.dtype)
    out = (F.normalize(embeddings, dim=1) - mean) @ projection
    return F.normalize(out, dim=1) if normalize else out


class WhiteningLayer(nn.Module):
    """:func:`apply_whitening` (with the final L2 normalisation) as a module:
    (B, D) -> (B, d); its values are buffers, so copies and ``.to(device)`` carry them."""

    def __init__(self, whitening: Whitening) -> None:
        super().__init__()
        self.register_buffer("mean", whitening.mean.float().clone())
        self.register_buffer("projection", whitening.projection.float().clone())
        self.register_buffer("eigenvalues", whitening.eigenvalues.float().clone())

    @property
    def whitening(self) -> Whitening:
        """The :class:`Whitening` these buffers hold."""
        return Whitening(self.mean, self.projection, self.eigenvalues)

    def forward(self, embeddings: Tensor) -> Tensor:
        """(B, D) float -> (B, d) L2-normalised descriptors."""
        return apply_whitening(embeddings, self.whitening)
