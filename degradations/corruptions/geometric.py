"""ImageNet-C's elastic transform, batched and seeded: a random affine plus a smoothed random
displacement field, applied with one ``grid_sample``.

ImageNet-C warps the image with a random affine (three anchor points moved by U(-a, a) each),
then resamples it at ``p + alpha * G_sigma * U(-1, 1)`` per coordinate (two interpolations);
here both are composed into one sampling, ``out(p) = x(A^-1 (p + d(p)))``, bilinear with
mirrored borders (OpenCV's REFLECT_101). ``alpha``, ``sigma`` and ``affine`` are in pixels of
a 64 px image (Tiny-ImageNet-C writes them as fractions of its side, ``64 * 0.1``) and scale
with ``min(H, W) / 64`` at run time. The drawn anchor shifts come back as parameters.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from .._base import check_batch, check_range_mode
from ..degradation import DEGRADATIONS, Degradation, Params
from ._fields import (
    FIELD_WORDS,
    REFERENCE_SIDE,
    check_number,
    gaussian_smooth,
    per_image,
    run_field_corruption,
    size_factor,
    uniform_field,
)

#: the drawn shifts of the three anchor points, in units of the shorter side
AFFINE_KEYS = ("affine_x0", "affine_y0", "affine_x1", "affine_y1", "affine_x2", "affine_y2")
#: (alpha, sigma, affine) per severity, pixels of a 64 px image: field and affine both grow
#: over Tiny-ImageNet-C's ranges (whose own levels shrink the affine, so their damage falls
#: with severity; docs/degradations.md)
ELASTIC_LEVELS = (
    (2.56, 1.92, 1.28),
    (4.48, 1.92, 1.92),
    (6.4, 1.92, 2.56),
    (8.32, 1.92, 3.84),
    (10.24, 1.92, 5.12),
)
#: the largest ``affine`` (a quarter of the side): the anchors, a third of the side from the
#: centre, stay far from collinear
MAX_AFFINE = REFERENCE_SIDE / 4
#: ImageNet-C smooths the displacement with a Gaussian truncated at 3 sigma
TRUNCATE = 3.0


def inverse_affine(shifts: Tensor, size: tuple[int, int]) -> Tensor:
    """The affine maps taking the moved anchors back to the anchors, (B, 2, 3) float64.

    The anchors are ImageNet-C's: the centre c plus (q, q), (q, -q) and (-q, -q) in (x, y)
    pixels, q = min(H, W) / 3; anchor k moves by ``min(H, W) * (shift_xk, shift_yk)``.

    Args:
        shifts: (B, 6) in units of the shorter side, ordered as :data:`AFFINE_KEYS`.
        size: (H, W).
    """
    h, w = size
    side = min(h, w)
    q, cx, cy = side / 3, (w - 1) / 2, (h - 1) / 2
    anchors = torch.tensor([[cx + q, cy + q], [cx + q, cy - q], [cx - q, cy - q]],
                           dtype=torch.float64)
    moved = anchors + side * shifts.to(torch.float64).view(-1, 3, 2)  # (B, 3, 2)
    ones = torch.ones(moved.shape[0], 3, 1, dtype=torch.float64)
    solution = torch.linalg.solve(torch.cat((moved, ones), dim=2), anchors.expand_as(moved))
    return solution.transpose(1, 2)  # (B, 2, 3): [x y 1] of a moved point -> its anchor


def elastic_core(
    x: Tensor, words: np.ndarray, out: Tensor, shifts: Tensor, *, alpha: float, sigma: float,
) -> Tensor:
    """out(p) = x(A^-1 (p + d(p))), d = alpha f * G_{sigma f} * U(-1, 1)^2, f = min(H, W) / 64.

    Args:
        x: (B, C, H, W) chunk; not modified.
        words: (B, k) uint64 field seeds.
        out: (B, C, H, W) output.
        shifts: (B, 6) anchor shifts (:data:`AFFINE_KEYS` order), units of the shorter side.
        alpha, sigma: the displacement field, pixels of a 64 px image.
    """
    b, _, h, w = x.shape
    f = size_factor(h, w)
    # grid_sample's coordinates of the source point, g = N [px, py, 1] per image: the inverse
    # affine map scaled to [-1, 1] (align_corners), at p = (x, y) + alpha f field(x, y), summed
    # term by term into the grid (within float rounding of mapping p, then scaling)
    norm = inverse_affine(shifts, (h, w)) * torch.tensor(
        [[2 / max(w - 1, 1)], [2 / max(h - 1, 1)]], dtype=torch.float64)
    norm[:, :, 2] -= 1.0
    norm = norm.to(x.device, x.dtype)  # (B, 2, 3)
    cols = torch.arange(w, device=x.device, dtype=x.dtype).view(1, 1, w)
    rows = torch.arange(h, device=x.device, dtype=x.dtype).view(1, h, 1)
    grid = torch.empty(b, h, w, 2, device=x.device, dtype=x.dtype)
    field = None
    if alpha > 0:
        noise = uniform_field(words, (2, h, w), x.device)
        field = gaussian_smooth(noise, sigma * f, truncate=TRUNCATE).to(x.dtype)  # (B, 2, H, W)
    for axis in range(2):
        n = norm[:, axis].view(b, 3, 1, 1)
        torch.add(n[:, 0] * cols, n[:, 1] * rows + n[:, 2], out=grid[..., axis])
        if field is not None:
            grid[..., axis].addcmul_(field[:, 0], n[:, 0] * (alpha * f))
            grid[..., axis].addcmul_(field[:, 1], n[:, 1] * (alpha * f))
    out.copy_(F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection",
                            align_corners=True))
    return out


def _shift_matrix(shifts: dict[str, float | Tensor], batch: int) -> Tensor:
    """(B, 6) float64 from the six named shifts (numbers or (B,) tensors)."""
    columns = [per_image(shifts[key], batch, key) for key in AFFINE_KEYS]
    matrix = torch.stack(columns, dim=1)
    if bool((matrix.abs() > 0.25).any()):
        raise ValueError(f"affine shifts must be within a quarter of the shorter side "
                         f"([-0.25, 0.25]); got up to {float(matrix.abs().max())}")
    return matrix


def elastic_transform(
    images: Tensor, affine_x0: float | Tensor = 0.0, affine_y0: float | Tensor = 0.0,
    affine_x1: float | Tensor = 0.0, affine_y1: float | Tensor = 0.0,
    affine_x2: float | Tensor = 0.0, affine_y2: float | Tensor = 0.0, alpha: float = 6.4,
    sigma: float = 1.92, *, generator: torch.Generator | None = None, range_mode: str = "clip",
) -> Tensor:
    """ImageNet-C's elastic transform with given anchor shifts and a random field.

    ``degradations.apply(images, "elastic_transform")`` draws the shifts per image
    (U(-affine, affine) / 64 each); this function applies given ones (zero: no affine).

    Args:
        images: (B, C, H, W) float in [0, 1], any device.
        affine_x0 .. affine_y2: shift of anchor k (see :func:`inverse_affine`) in x and y,
            units of the shorter side, in [-0.25, 0.25]; numbers or (B,) tensors.
        alpha: displacement scale, pixels of a 64 px image, >= 0 (0: no field).
        sigma: smoothing of the field, pixels of a 64 px image, >= 0.
        generator: CPU ``torch.Generator`` for the field; None uses torch's global one.
        range_mode: ``"clip"`` (default) or ``"minmax"``.

    Returns:
        (B, C, H, W) in [0, 1], same device and dtype as ``images``.

    Raises:
        ValueError: bad images, parameters or ``range_mode``.
    """
    alpha, sigma = _check_field(alpha, sigma)
    named = dict(zip(AFFINE_KEYS, (affine_x0, affine_y0, affine_x1, affine_y1, affine_x2,
                                   affine_y2)))
    shifts = _shift_matrix(named, check_batch(images).shape[0])

    def core(x: Tensor, words: np.ndarray, out: Tensor, shifts: Tensor) -> Tensor:
        return elastic_core(x, words, out, shifts, alpha=alpha, sigma=sigma)

    return run_field_corruption(images, core, {"shifts": shifts}, generator, range_mode)


def _check_field(alpha: float, sigma: float) -> tuple[float, float]:
    return check_number("alpha", alpha, 0.0), check_number("sigma", sigma, 0.0)


@DEGRADATIONS.register("elastic_transform")
class ElasticTransform(Degradation):
    """ImageNet-C's elastic transform; see :func:`elastic_transform`.

    Drawn: the six anchor shifts :data:`AFFINE_KEYS`, (B,) each, U(-affine, affine) / 64 in
    units of the shorter side.
    """

    severities = tuple(dict(zip(("alpha", "sigma", "affine"), level))
                       for level in ELASTIC_LEVELS)
    family = "digital"

    def __init__(self, alpha: float = 6.4, sigma: float = 1.92, affine: float = 2.56,
                 range_mode: str = "clip") -> None:
        super().__init__()
        self.alpha, self.sigma = _check_field(alpha, sigma)
        self.affine = check_number("affine", affine, 0.0, MAX_AFFINE)
        self.range_mode = check_range_mode(range_mode)

    def sample_params(
        self, batch_size: int, generator: torch.Generator | None = None, *,
        size: tuple[int, int] | None = None,
    ) -> Params:
        u = torch.rand(len(AFFINE_KEYS), batch_size, generator=generator) * 2 - 1
        scale = self.affine / REFERENCE_SIDE
        return {key: u[k] * scale for k, key in enumerate(AFFINE_KEYS)}

    def words_per_image(self, pixels: int) -> int:
        return FIELD_WORDS

    def core(self, x: Tensor, words: np.ndarray, out: Tensor, **params: Tensor) -> Tensor:
        shifts = torch.stack([params[key] for key in AFFINE_KEYS], dim=1)
        return elastic_core(x, words, out, shifts, alpha=self.alpha, sigma=self.sigma)
