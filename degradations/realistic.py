"""Realistic variants of the study's motion blur and resolution loss: the same drawn
parameters and families, without the study's synthetic fingerprints.

The study's degradations are exact in ways a camera is not: its motion blur is a circular,
noise-free sinc in the frequency domain (the image wraps around its borders and every spectral
zero is exactly zero), and its resolution loss copies each Haar block mean to a perfectly
constant block. An estimator or a restorer can exploit such fingerprints and then fail on real
photos. These variants keep the study's parameter distributions (so a row of one can be read
beside a row of the other) and change only the physics:

- ``realistic_motion_blur`` (family ``blur``): the displacement ``(a W, b H)`` drawn as the
  study draws it (a, b ~ N(0, sigma) per image), rendered as an anti-aliased line segment
  from 0 to the displacement (the study's kernel: its transfer function is this segment's
  spectrum) and applied by *linear* convolution (edge pixels repeat beyond the border, nothing
  wraps around), then mild Gaussian sensor noise (``noise`` 0.01);
- ``realistic_lowres`` (family ``resolution``): the study's per-image level
  (``floor(levels + u)``), reduced by area averaging by ``2**level`` on a sampling grid at a
  random sub-pixel phase and brought back to full size by bilinear or bicubic interpolation
  (drawn per image), so no block is constant and block edges do not sit on a fixed grid.

Drawn parameters: ``a``, ``b`` (B,) for the blur; ``level`` (B,) int64, ``dx``, ``dy`` (B,) in
[0, 1) (the offset in low-resolution pixels) and ``upsample`` (B,) int64 (0 bilinear, 1
bicubic) for the resolution loss; all replayable with ``apply_params``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .corruptions._kernels import fft_convolve, splat_kernels
from .degradation import DEGRADATIONS, Degradation, Params
from .noise import gaussian_core, normal_words
from .resolution import check_level, levels_from_uniform

#: the upsampling modes of ``realistic_lowres``, in the order of its drawn ``upsample`` codes
UPSAMPLE_MODES = ("bilinear", "bicubic")
#: the study's severities, shared so that each variant is read beside its study degradation
_BLUR_SIGMAS = (0.02, 0.035, 0.05, 0.075, 0.10)
_LEVELS = (1.0, 1.25, 1.5, 2.0, 3.0)


def line_kernels(dx: Tensor, dy: Tensor, reach: int, samples: int) -> Tensor:
    """Per-image kernels of a uniform line blur: the exposure integrates the image over the
    displacements ``s (dx, dy)``, ``s`` in [0, 1] (the study's H(u, v; a, b) in space).

    The segment from 0 to ``(dx, dy)`` (pixels) is sampled at ``samples``
    evenly spaced points, each splatted bilinearly onto the kernel grid (points beyond the
    grid land on its edge), and the kernel normalised to sum 1 (a zero-length segment gives
    the identity kernel). Each image's kernel depends on its own displacement only.

    Args:
        dx, dy: (B,) displacement in pixels (x right, y down), float.
        reach: kernel half-width in pixels, >= max(|dx|, |dy|) + 1.
        samples: points on the segment, >= 2; four per pixel of the longest segment that can
            occur keeps the kernel smooth.

    Returns:
        (B, 2 reach + 1, 2 reach + 1) float kernels, centre at ``[reach, reach]``;
        ``sum_q K[q] x(p - q)`` is the blurred image.
    """
    t = torch.linspace(0.0, 1.0, samples, device=dx.device, dtype=dx.dtype)
    kernels = splat_kernels(dx[:, None] * t, dy[:, None] * t, torch.ones_like(t), reach)
    return kernels / kernels.sum(dim=(1, 2), keepdim=True)


def realistic_motion_blur_core(x: Tensor, words: np.ndarray, out: Tensor, a: Tensor, b: Tensor,
                               noise: float) -> Tensor:
    """Line blur of displacement ``(a W, b H)`` by linear convolution, plus N(0, noise) per
    value from ``words`` (consumed); ``a``, ``b`` (B,). Writes ``out``, returns it."""
    h, w = x.shape[-2:]
    dx = a.to(x.device, torch.float64) * w
    dy = b.to(x.device, torch.float64) * h
    longest = float(torch.maximum(dx.abs(), dy.abs()).max()) if len(a) else 0.0
    reach = min(int(math.ceil(longest)) + 1, max(h, w))
    # the sample count follows the image size, not the batch: an image's kernel is its own
    kernels = line_kernels(dx, dy, reach, 8 * max(h, w) + 1).to(x.dtype)
    blurred = fft_convolve(x, kernels, "replicate")  # linear: edge pixels repeat, no wrap
    return gaussian_core(blurred.contiguous(), words, out, noise)


def shift_subpixel(x: Tensor, dx: Tensor, dy: Tensor) -> Tensor:
    """``x`` (B, C, H, W) moved by (dx, dy) (B,) pixels with bilinear interpolation, the edge
    pixels repeating beyond the border."""
    b, _, h, w = x.shape
    theta = torch.zeros(b, 2, 3, device=x.device, dtype=x.dtype)
    theta[:, 0, 0], theta[:, 1, 1] = 1, 1
    theta[:, 0, 2] = -2 * dx.to(x.device, x.dtype) / w  # sample at p - d: the content moves by +d
    theta[:, 1, 2] = -2 * dy.to(x.device, x.dtype) / h
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def realistic_lowres_core(x: Tensor, words: object, out: Tensor, level: Tensor, dx: Tensor,
                          dy: Tensor, upsample: Tensor) -> Tensor:
    """Per image: shift by ``(dx, dy) * 2**level`` pixels, area-average down by ``2**level``,
    interpolate back up (``UPSAMPLE_MODES[upsample]``) and shift back: the sampling grid
    sits at a random phase, the content does not move. ``level`` (B,) int64 >= 0; ``dx``,
    ``dy`` (B,) in [0, 1); ``upsample`` (B,) int64. Writes ``out``, returns it."""
    h, w = x.shape[-2:]
    keys = torch.stack([level.cpu(), upsample.cpu()], dim=1)
    for value, mode in {tuple(row) for row in keys.tolist()}:
        chosen = ((keys[:, 0] == value) & (keys[:, 1] == mode)).nonzero().flatten()
        index = chosen.to(x.device)
        part = x.index_select(0, index)
        if value == 0:
            out.index_copy_(0, index, part)
            continue
        factor = 2 ** int(value)
        moved = shift_subpixel(part, dx[chosen] * factor, dy[chosen] * factor)
        small = F.adaptive_avg_pool2d(moved, (max(1, h // factor), max(1, w // factor)))
        big = F.interpolate(small, size=(h, w), mode=UPSAMPLE_MODES[mode], align_corners=False)
        back = shift_subpixel(big, -dx[chosen] * factor, -dy[chosen] * factor)
        out.index_copy_(0, index, back)
    return out


@DEGRADATIONS.register("realistic_motion_blur")
class RealisticMotionBlur(Degradation):
    """The study's motion blur drawn the same way (a, b ~ N(0, sigma) per image), applied as a
    camera would: a line segment by linear convolution, with mild sensor noise; see
    :func:`realistic_motion_blur_core`."""

    severities = tuple({"sigma": s} for s in _BLUR_SIGMAS)
    family = "blur"

    def __init__(self, sigma: float = 0.05, noise: float = 0.01) -> None:
        super().__init__()
        for name, value in (("sigma", sigma), ("noise", noise)):
            if not math.isfinite(float(value)) or float(value) < 0:
                raise ValueError(f"{name} must be finite and >= 0; got {value}")
        self.sigma, self.noise = float(sigma), float(noise)

    def sample_params(self, batch_size: int, generator: torch.Generator | None = None, *,
                      size: tuple[int, int] | None = None) -> Params:
        ab = torch.randn(2, batch_size, generator=generator) * self.sigma
        return {"a": ab[0], "b": ab[1]}

    def words_per_image(self, pixels: int) -> int:
        return normal_words(pixels)

    def core(self, x: Tensor, words: np.ndarray, out: Tensor, a: Tensor, b: Tensor) -> Tensor:
        return realistic_motion_blur_core(x, words, out, a, b, self.noise)


@DEGRADATIONS.register("realistic_lowres")
class RealisticLowres(Degradation):
    """The study's resolution loss drawn the same way (level ``floor(levels + u)`` per image),
    made as a camera or a resizer would: sub-pixel offset, area averaging, bilinear or bicubic
    upsampling; see :func:`realistic_lowres_core`."""

    severities = tuple({"levels": v} for v in _LEVELS)
    family = "resolution"

    def __init__(self, levels: float = 1.5) -> None:
        super().__init__()
        if not math.isfinite(float(levels)) or float(levels) < 0:
            raise ValueError(f"levels must be finite and >= 0; got {levels}")
        self.levels = float(levels)

    def sample_params(self, batch_size: int, generator: torch.Generator | None = None, *,
                      size: tuple[int, int] | None = None) -> Params:
        if size is not None:  # the most levels a draw can give must fit the images
            check_level(math.ceil(self.levels), size, "levels")
        u = torch.rand(4, batch_size, generator=generator)
        return {"level": levels_from_uniform(self.levels, u[0]), "dx": u[1], "dy": u[2],
                "upsample": (u[3] * len(UPSAMPLE_MODES)).long()}

    def core(self, x: Tensor, words: object, out: Tensor, level: Tensor, dx: Tensor,
             dy: Tensor, upsample: Tensor) -> Tensor:
        return realistic_lowres_core(x, words, out, level, dx, dy, upsample)
