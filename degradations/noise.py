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
- the mixture (:func:`noise_mixture`, the study's ``noise``): each image one of the three, by
  its ``kind``, from a run of words long enough for either.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from robustret.core.rng import check_generator

from ._base import WordSource, check_batch, check_range_mode, run_chunked


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
    ``out`` is a contiguous float32 CPU tensor, the normals are built in ``out`` itself with
    one temporary instead of a fresh buffer per chunk (see docs/benchmarks.md).
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


#: the mixture's kinds, in the order of the drawn ``kind`` values 0, 1, 2
MIXTURE_KINDS = ("gaussian_noise", "salt_pepper", "speckle")


def mixture_words(pixels: int) -> int:
    """64-bit words one image of ``pixels`` values needs for any kind of the mixture."""
    return max(normal_words(pixels), int16_words(pixels))


def mixture_core(
    x: Tensor, words: np.ndarray, out: Tensor, kind: Tensor, sigma: float, p: float,
    amplitude: float,
) -> Tensor:
    """Image i gets the noise of ``MIXTURE_KINDS[kind[i]]`` from its own row of ``words``.

    Args:
        x: (B, C, H, W) float chunk; not modified.
        words: (B, k) uint64, k >= :func:`mixture_words`; consumed.
        out: (B, C, H, W) output buffer.
        kind: (B,) int64 in {0, 1, 2}.
        sigma, p, amplitude: the three kinds' parameters.

    Returns:
        ``out``, unclipped.
    """
    kinds = kind.tolist()
    for value in sorted(set(kinds)):
        rows = [i for i, v in enumerate(kinds) if v == value]
        sub_words = words[rows]
        index = torch.tensor(rows, device=x.device)
        sub_x = x.index_select(0, index)
        sub_out = torch.empty_like(sub_x)
        if value == 0:
            gaussian_core(sub_x, sub_words, sub_out, sigma)
        elif value == 1:
            salt_pepper_core(sub_x, sub_words, sub_out, p)
        else:
            speckle_core(sub_x, sub_words, sub_out, amplitude)
        out.index_copy_(0, index, sub_out)
    return out


def _check_amount(name: str, value: float, upper: float | None = None) -> float:
    value = float(value)
    if not math.isfinite(value) or value < 0 or (upper is not None and value > upper):
        bound = f"in [0, {upper}]" if upper is not None else ">= 0"
        raise ValueError(f"{name} must be a finite number {bound}; got {value}")
    return value


def _run_noise(
    images: Tensor, core: Callable[..., Tensor], words_per_image: Callable[[int], int],
    generator: torch.Generator | None, range_mode: str, params: dict[str, Tensor] | None = None,
) -> Tensor:
    """Shared body of the three noise wrappers: check, then run ``core`` chunk by chunk.

    ``core(x, words, out)`` fills ``out`` from a (b, C, H, W) chunk and its random words;
    ``words_per_image(n_values)`` says how many words one image needs.
    """
    check_batch(images)
    check_generator(generator)
    check_range_mode(range_mode)
    k = words_per_image(images[0].numel()) if images.shape[0] else 0
    source = WordSource.from_generator(generator)
    return run_chunked(images, core, params or {}, k, source, range_mode)


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


def noise_mixture(
    images: Tensor, kind: int | Tensor, sigma: float = 0.1, p: float = 0.1,
    amplitude: float = 0.1, *, generator: torch.Generator | None = None,
    range_mode: str = "clip",
) -> Tensor:
    """The study's mixed noise with given kinds: image i gets noise ``MIXTURE_KINDS[kind[i]]``.

    ``degradations.apply(images, "noise")`` draws ``kind`` uniformly from {0, 1, 2} per image;
    this function applies given kinds (e.g. recorded ones).

    Args:
        images: (B, C, H, W) float in [0, 1], any device.
        kind: 0 (Gaussian), 1 (salt-and-pepper) or 2 (speckle) for all images, or a (B,)
            integer tensor.
        sigma: the Gaussian kind's standard deviation, >= 0.
        p: the salt-and-pepper kind's fraction of replaced values, in [0, 1].
        amplitude: the speckle kind's half-width, >= 0.
        generator: source of the pixel noise; None uses torch's global generator.
        range_mode: ``"clip"`` (default) or ``"minmax"``.

    Returns:
        (B, C, H, W) in [0, 1], same device and dtype as ``images``.

    Raises:
        ValueError: bad images, amounts, kinds or ``range_mode``.
    """
    sigma, p = _check_amount("sigma", sigma), _check_amount("p", p, 1.0)
    amplitude = _check_amount("amplitude", amplitude)
    check_batch(images)
    kinds = torch.as_tensor(kind, dtype=torch.int64).reshape(-1).expand(images.shape[0])
    if kinds.numel() and (int(kinds.min()) < 0 or int(kinds.max()) > 2):
        raise ValueError(f"kind must be 0, 1 or 2 ({', '.join(MIXTURE_KINDS)}); got "
                         f"{kinds.tolist()}")

    def core(x: Tensor, words: np.ndarray, out: Tensor, kind: Tensor) -> Tensor:
        return mixture_core(x, words, out, kind, sigma, p, amplitude)

    return _run_noise(images, core, mixture_words, generator, range_mode, {"kind": kinds})
