"""Additive Gaussian, salt-and-pepper and speckle noise, batched and seeded.

All three turn raw 64-bit words (see :mod:`degradations._base`) into noise, one contiguous run
of words per image:

- Gaussian: Box-Muller on 32-bit words, N(0, 1) with 24-bit uniform resolution (tails reach
  5.8 sigma), transformed on the CPU in float32, then moved to the data's device.
- salt-and-pepper: one 16-bit word per pixel decides both "replaced" and "salt or pepper":
  pepper when the word lies in [0, k), salt when it lies in [32768, 32768 + k), with
  k = round(p * 32768); the replaced set only grows with ``p`` for a fixed draw.
- speckle: one 16-bit word per pixel gives e = (s + 1/2) * a / 32768, uniform on (-a, a) in
  65,536 steps.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from robustret.checks import check_images

from ._base import WordSource, check_range_mode, run_chunked


def normal_words(pixels: int) -> int:
    """64-bit words one image of ``pixels`` values needs for Gaussian noise."""
    return (pixels + 1) // 2


def int16_words(pixels: int) -> int:
    """64-bit words one image of ``pixels`` values needs for one 16-bit word per pixel."""
    return (pixels + 3) // 4


def normals_from_words(words: np.ndarray, pixels: int) -> Tensor:
    """Standard normal samples by Box-Muller, per image.

    Args:
        words: (N, k) uint64, k >= ceil(pixels / 2); only the first ceil(pixels / 2) are used.
        pixels: samples wanted per image.

    Returns:
        (N, pixels) float32 on the CPU.
    """
    m = normal_words(pixels)
    bits = torch.from_numpy(words[:, :m].view(np.int32).reshape(words.shape[0], 2, m))  # (N, 2, m)
    radius = bits[:, 0].bitwise_right_shift(8).float()  # 24-bit, in [-2^23, 2^23)
    radius.mul_(-(2.0**-24)).add_(0.5).log_().mul_(-2.0).sqrt_()  # u in (0, 1] -> sqrt(-2 ln u)
    theta = bits[:, 1].float().mul_(2.0 * math.pi * 2.0**-32)  # [-pi, pi)
    z = torch.empty(words.shape[0], 2 * m)
    torch.mul(radius, torch.cos(theta), out=z[:, :m])
    torch.mul(radius, theta.sin_(), out=z[:, m:])
    return z[:, :pixels]


def int16_from_words(words: np.ndarray, pixels: int) -> Tensor:
    """(N, pixels) int16 CPU tensor, the first ``pixels`` 16-bit words of each image."""
    k = int16_words(pixels)
    return torch.from_numpy(words[:, :k].view(np.int16)[:, :pixels])


def gaussian_core(x: Tensor, words: np.ndarray, out: Tensor, sigma: float | Tensor) -> Tensor:
    """out = x + sigma * z, z ~ N(0, 1) from ``words``; ``sigma`` a float or (B,) tensor.

    ``words`` is consumed (overwritten). When each image has an even number of values and
    ``out`` is a contiguous CPU tensor, the normals are built in ``out`` itself with one
    temporary: fresh temporaries per chunk page-fault on this CPU and cost as much as the maths.
    """
    pixels = x[0].numel()
    in_place = pixels % 2 == 0 and out.is_contiguous() and out.device.type == "cpu"
    if not (in_place and x.dtype == torch.float32):
        z = normals_from_words(words, pixels).reshape(x.shape)
        z = z.to(x.device, x.dtype, non_blocking=True)
    else:
        n, m = x.shape[0], pixels // 2
        bits = torch.from_numpy(words[:, :m].view(np.int32).reshape(n, 2, m))  # (N, 2, m)
        halves = out.view(n, 2, m)
        radius, theta = halves[:, 0], halves[:, 1]
        radius.copy_(bits[:, 0].bitwise_right_shift_(8))  # 24-bit, in [-2^23, 2^23)
        radius.mul_(-(2.0**-24)).add_(0.5).log_().mul_(-2.0).sqrt_()  # sqrt(-2 ln u), u in (0, 1]
        theta.copy_(bits[:, 1]).mul_(2.0 * math.pi * 2.0**-32)  # [-pi, pi)
        cos = torch.cos(theta)
        torch.mul(radius, theta.sin_(), out=theta)  # second half: r sin
        radius.mul_(cos)  # first half: r cos, the layout of normals_from_words
        z = out
    if isinstance(sigma, Tensor):
        z.mul_(sigma.to(x.device, x.dtype).view(-1, 1, 1, 1))
        return torch.add(x, z, out=out)
    if z is out:
        return out.mul_(float(sigma)).add_(x)
    return torch.add(x, z, alpha=float(sigma), out=out)


def salt_pepper_core(x: Tensor, words: np.ndarray, out: Tensor, p: float | Tensor) -> Tensor:
    """Pixels with word in [0, k) -> 0, in [32768, 32768 + k) -> 1, k = round(p * 32768)."""
    bits = int16_from_words(words, x[0].numel()).reshape(x.shape).to(x.device, non_blocking=True)
    if isinstance(p, Tensor):  # (B,) per-image fractions
        thr = (p.double() * 32768).round().sub(32768).to(x.device, torch.int32).view(-1, 1, 1, 1)
    else:
        thr = int(round(float(p) * 32768)) - 32768
    out.copy_(x)
    # as int16, [32768, 32768 + k) is [-32768, -32768 + k); flipping the sign bit maps [0, k) there
    out.masked_fill_(bits < thr, 1.0)
    out.masked_fill_(bits.bitwise_xor_(-32768) < thr, 0.0)
    return out


def speckle_core(x: Tensor, words: np.ndarray, out: Tensor, amplitude: float | Tensor) -> Tensor:
    """out = x * (1 + e), e = (s + 1/2) * amplitude / 32768 uniform on (-amplitude, amplitude)."""
    bits = int16_from_words(words, x[0].numel()).reshape(x.shape).to(x.device, non_blocking=True)
    if isinstance(amplitude, Tensor):
        a = amplitude.to(x.device, x.dtype).view(-1, 1, 1, 1)
        torch.mul(bits, a / 32768, out=out).add_(1 + a / 65536)
    else:
        a = float(amplitude)
        torch.mul(bits, a / 32768, out=out).add_(1 + a / 65536)
    return out.mul_(x)


def _check_amount(name: str, value: float, upper: float | None = None) -> float:
    value = float(value)
    if not math.isfinite(value) or value < 0 or (upper is not None and value > upper):
        bound = f"in [0, {upper}]" if upper is not None else ">= 0"
        raise ValueError(f"{name} must be a finite number {bound}; got {value}")
    return value


def _run_noise(
    images: Tensor, core, words_per_image, generator: torch.Generator | None, range_mode: str,
) -> Tensor:
    """Shared body of the three noise wrappers: check, then run ``core`` chunk by chunk.

    ``core(x, words, out)`` fills ``out`` from a (b, C, H, W) chunk and its random words;
    ``words_per_image(n_values)`` says how many words one image needs.
    """
    check_images(images, "images", check_values=False)
    check_range_mode(range_mode)
    k = words_per_image(images[0].numel()) if images.shape[0] else 0
    return run_chunked(images, core, {}, k, WordSource.from_generator(generator), range_mode)


def gaussian_noise(
    images: Tensor, sigma: float = 0.1, *, generator: torch.Generator | None = None,
    range_mode: str = "clip",
) -> Tensor:
    """Additive white Gaussian noise g = f + e, e ~ N(0, sigma) (sigma is a standard deviation).

    Args:
        images: (B, C, H, W) float in [0, 1], any device.
        sigma: standard deviation of the noise, >= 0 (the study: 0.1).
        generator: source of randomness (a CPU ``torch.Generator``); None uses torch's global one.
        range_mode: ``"clip"`` (default) or ``"minmax"`` (the reference code's per-image stretch).

    Returns:
        (B, C, H, W) in [0, 1], same device and dtype as ``images``.
    """
    sigma = _check_amount("sigma", sigma)
    return _run_noise(images, lambda x, w, o: gaussian_core(x, w, o, sigma), normal_words,
                      generator, range_mode)


def salt_pepper_noise(
    images: Tensor, p: float = 0.1, *, generator: torch.Generator | None = None,
    range_mode: str = "clip",
) -> Tensor:
    """Impulse noise: a fraction ``p`` of the pixels set to 0 or 1 (probability 1/2 each).

    Each value (channel) is drawn independently, as the reference code did on grayscale images.

    Args:
        images: (B, C, H, W) float in [0, 1], any device.
        p: expected fraction of replaced values, in [0, 1] (the study: 0.1); resolution 2^-15.
        generator: source of randomness; None uses torch's global generator.
        range_mode: ``"clip"`` (default) or ``"minmax"``.

    Returns:
        (B, C, H, W) in [0, 1], same device and dtype as ``images``.
    """
    p = _check_amount("p", p, 1.0)
    return _run_noise(images, lambda x, w, o: salt_pepper_core(x, w, o, p), int16_words,
                      generator, range_mode)


def speckle_noise(
    images: Tensor, amplitude: float = 0.1, *, generator: torch.Generator | None = None,
    range_mode: str = "clip",
) -> Tensor:
    """Multiplicative noise g = f + f * e, e ~ U(-amplitude, amplitude), per value.

    Args:
        images: (B, C, H, W) float in [0, 1], any device.
        amplitude: half-width of the uniform noise, >= 0 (the study: 0.1).
        generator: source of randomness; None uses torch's global generator.
        range_mode: ``"clip"`` (default) or ``"minmax"``.

    Returns:
        (B, C, H, W) in [0, 1], same device and dtype as ``images``.
    """
    amplitude = _check_amount("amplitude", amplitude)
    return _run_noise(images, lambda x, w, o: speckle_core(x, w, o, amplitude), int16_words,
                      generator, range_mode)
