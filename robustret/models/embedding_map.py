"""A linear map between embeddings, learned by ridge regression toward carrying them over.

Restoration in embedding space: for a degradation whose images the retriever embeds far from
their clean counterparts, pairs ``(embed(degraded x), embed(x))`` of training images teach an
affine map ``y = (e - input_mean) W + output_mean`` that moves a degraded query's embedding
toward where its clean image would be. The input may be wider than the output (the embeddings
of several views of one image side by side, the degraded image's own first): ``W`` is
(D_in, D_out), D_in >= D_out. The penalty pulls ``W`` toward ``P``, the matrix that carries the
first D_out inputs over unchanged (the identity when D_in = D_out), not toward zero, so a strong
``ridge`` leaves the embedding as it is up to the shift of the means:

    W = argmin ||(X - mu_x) W - (Y - mu_y)||^2 + r n v ||W - P||^2

with ``n`` training pairs and ``v`` the mean per-dimension variance of the inputs (``r`` is
then free of the embedding's scale and of ``n``). :func:`fit_embedding_map` learns an
:class:`EmbeddingMap` (pure: tensors in, a frozen value out); calling it maps embeddings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class EmbeddingMap:
    """An affine map of (N, D_in) inputs to (N, D_out) embeddings (:func:`fit_embedding_map`).

    Attributes:
        weight: (D_in, D_out) float64.
        input_mean: (D_in,) float64, the mean of the training inputs.
        output_mean: (D_out,) float64, the mean of the training targets.
    """

    weight: Tensor
    input_mean: Tensor
    output_mean: Tensor

    @property
    def input_dim(self) -> int:
        """D_in, the input size it takes."""
        return int(self.weight.shape[0])

    @property
    def output_dim(self) -> int:
        """D_out, the embedding size it gives."""
        return int(self.weight.shape[1])

    def __call__(self, embeddings: Tensor) -> Tensor:
        """Map (N, D_in) inputs; returns (N, D_out) in their dtype and on their device."""
        if embeddings.ndim != 2 or embeddings.shape[1] != self.input_dim:
            raise ValueError(f"inputs must be (N, {self.input_dim}); got "
                             f"{tuple(embeddings.shape)}")
        weight = self.weight.to(embeddings.device)
        centred = embeddings.double() - self.input_mean.to(embeddings.device)
        mapped = centred @ weight + self.output_mean.to(embeddings.device)
        return mapped.to(embeddings.dtype)


def fit_embedding_map(inputs: Tensor, targets: Tensor, *, ridge: float = 1e-3) -> EmbeddingMap:
    """Learn the affine map from ``inputs`` to ``targets`` (module docstring).

    Args:
        inputs: (N, D_in) float, embeddings of the degraded training images (the image's own
            in the first D_out columns, other views of it after them).
        targets: (N, D_out) float, embeddings of the same images clean, row for row;
            D_out <= D_in.
        ridge: r >= 0, the pull toward carrying the first D_out inputs over (0: least
            squares, which needs N > D_in for a unique answer; large: those inputs plus the
            shift of the means).
    Returns:
        An :class:`EmbeddingMap` in float64 on the CPU.
    Raises:
        ValueError: shapes that are not (N, D_in) and (N, D_out) with N >= 2 and
            D_out <= D_in, a negative or non-finite ``ridge``, or non-finite embeddings.
    """
    if (inputs.ndim != 2 or targets.ndim != 2 or len(inputs) != len(targets)
            or len(inputs) < 2 or targets.shape[1] > inputs.shape[1]):
        raise ValueError(f"inputs and targets must be (N, D_in) and (N, D_out) with N >= 2 "
                         f"and D_out <= D_in; got {tuple(inputs.shape)} and "
                         f"{tuple(targets.shape)}")
    if not (math.isfinite(ridge) and ridge >= 0):
        raise ValueError(f"ridge must be a finite number >= 0; got {ridge}")
    x, y = inputs.detach().cpu().double(), targets.detach().cpu().double()
    if not (torch.isfinite(x).all() and torch.isfinite(y).all()):
        raise ValueError("inputs and targets must be finite")
    input_mean, output_mean = x.mean(0), y.mean(0)
    x, y = x - input_mean, y - output_mean
    n, dim = x.shape
    strength = ridge * n * float(x.var(0).mean())
    carry = torch.eye(dim, y.shape[1], dtype=torch.float64)  # P: the first D_out inputs
    gram = x.T @ x + strength * torch.eye(dim, dtype=torch.float64)
    if strength == 0:  # least squares: the pseudo-inverse where the Gram matrix is singular
        weight = torch.linalg.pinv(gram) @ (x.T @ y)
    else:
        weight = torch.linalg.solve(gram, x.T @ y + strength * carry)
    return EmbeddingMap(weight, input_mean, output_mean)
