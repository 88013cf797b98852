"""The study's analytic motion blur, applied in the frequency domain.

For a uniform linear motion of the scene by ``(a W, b H)`` pixels during the exposure ``T``
(Gonzalez & Woods), the transfer function on the DFT grid is

    H(u, v) = T sin(pi p) / (pi p) exp(-j pi p) = T * sinc(p) * exp(-j pi p),  p = u a + v b,

with ``u`` the integer frequency index along the columns (width W) and ``v`` along the rows
(height H), centred (-W/2 .. W/2 - 1). A shift by ``d`` pixels multiplies the DFT by
exp(-2 pi j u d / W), so ``u a = u d / W``: ``a`` is the horizontal displacement in units of the
image width and ``b`` the vertical one in units of the height. A blur of ``length`` pixels at
``angle`` degrees (0 = to the right, 90 = downwards, image rows grow downwards) is therefore
``a = length cos(angle) / W``, ``b = length sin(angle) / H``. The exp(-j pi p) factor makes the
blur causal: the image is smeared from its position over ``length`` pixels, and its centroid
moves by ``length / 2``.

:func:`motion_blur_transfer` is the one implementation of H: the degradation multiplies by it
and the Wiener restorer (``restoration.classical``) inverts it. H is built directly in FFT
order (``fftfreq``), which equals building it on the centred grid and ``ifftshift``-ing it,
with no spectrum shift. H(0, 0) = T, so with T = 1 the mean of the image is kept.

The default ``method="rfft"`` uses the half spectrum (rfft2/irfft2; for its speed against
``"fft"`` see docs/benchmarks.md). ``real(ifft2(F H))`` equals ``irfft2`` of the Hermitian part
of H, ``(H(k) + conj(H(-k))) / 2``; that part differs from H only on the Nyquist row/column of
even sizes (where the centred grid has -N/2 but not +N/2), and the half spectrum uses it there,
so both methods give the same image.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from robustret.core.checks import check_choice

from ._base import check_batch, check_range_mode, run_chunked

METHODS = ("rfft", "fft")


def blur_from_length(length: float, angle: float, size: tuple[int, int]) -> tuple[float, float]:
    """``(a, b)`` of a blur of ``length`` pixels at ``angle`` degrees on an image of ``size``.

    Args:
        length: blur length in pixels.
        angle: direction in degrees (0 = right, 90 = down).
        size: ``(H, W)`` of the image.

    Returns:
        ``(a, b)``: displacement in image widths and heights.
    """
    height, width = size
    rad = math.radians(angle)
    return length * math.cos(rad) / width, length * math.sin(rad) / height


def _per_image(value: float | Tensor, device: torch.device | None) -> Tensor:
    """A float or (B,) tensor as a (B or 1, 1, 1, 1) float32 tensor on ``device``."""
    return torch.as_tensor(value, dtype=torch.float32).to(device).reshape(-1, 1, 1, 1)


def _transfer(u: Tensor, v: Tensor, a: Tensor, b: Tensor, t: Tensor | None) -> Tensor:
    """H = T sinc(p) exp(-j pi p), p = u a + v b, on the grid of columns ``u`` x rows ``v``.

    Args:
        u: (W',) float32 column frequencies; v: (H',) float32 row frequencies.
        a, b: (B or 1, 1, 1, 1) float32 displacements; t: same shape, or None for T = 1.

    Returns:
        (B or 1, 1, H', W') complex64.
    """
    p = u.view(1, 1, 1, -1) * a + v.view(1, 1, -1, 1) * b  # (B, 1, H', W')
    magnitude = torch.sinc(p)
    if t is not None:
        magnitude.mul_(t)
    return torch.polar(magnitude, p.mul_(-math.pi))


def motion_blur_transfer(
    height: int, width: int, a: float | Tensor, b: float | Tensor, t: float | Tensor = 1.0, *,
    half: bool = True, device: torch.device | str | None = None,
) -> Tensor:
    """The study's transfer function H(u, v; a, b, T) in FFT order, one per image.

    Args:
        height, width: image size.
        a, b: displacement in image widths / heights, a float or (B,) float tensor.
        t: exposure T (scales H; 1 keeps the mean), a float or (B,) tensor.
        half: the Hermitian part on the rfft2 half spectrum (``width // 2 + 1`` columns), for
            ``irfft2``; False: H on the full spectrum, for ``fft2`` / ``ifft2``.
        device: where to build H (None: the CPU).

    Returns:
        (B or 1, 1, height, width // 2 + 1 or width) complex64; B > 1 when ``a``, ``b`` or ``t``
        has B entries.
    """
    device = torch.device(device) if device is not None else None
    a_, b_ = _per_image(a, device), _per_image(b, device)
    t_ = None if not isinstance(t, Tensor) and float(t) == 1.0 else _per_image(t, device)
    v = torch.fft.fftfreq(height, 1.0 / height, device=device)  # 0, 1, .., -H/2, .., -1
    if not half:
        return _transfer(torch.fft.fftfreq(width, 1.0 / width, device=device), v, a_, b_, t_)
    u = torch.arange(width // 2 + 1, dtype=torch.float32, device=device)
    if width % 2 == 0:
        u[-1] = -(width // 2)  # the centred grid's Nyquist frequency
    result = _transfer(u, v, a_, b_, t_)
    # Hermitian part (H(k) + conj(H(-k))) / 2 = (H(u, v) + H(u*, v*)) / 2, where u* = u except
    # that the Nyquist frequency -N/2 becomes +N/2 (sinc is even): only the Nyquist row and
    # column of even sizes change.
    if height % 2 == 0:
        u_star = u.clone()
        if width % 2 == 0:
            u_star[-1] = width // 2
        row = _transfer(u_star, torch.tensor([height / 2], device=device), a_, b_, t_)
        result[..., height // 2 : height // 2 + 1, :].add_(row).mul_(0.5)
    if width % 2 == 0:
        rows = torch.ones(height, dtype=torch.bool, device=device)
        if height % 2 == 0:
            rows[height // 2] = False  # the corner was done with the row
        col = _transfer(torch.tensor([width / 2], device=device), v[rows], a_, b_, t_)
        last = result[..., -1:]
        last[..., rows, :] = (last[..., rows, :] + col) * 0.5
    return result


def motion_blur_core(
    x: Tensor, words: object, out: Tensor, a: Tensor, b: Tensor, t: float | Tensor = 1.0,
    method: str = "rfft",
) -> Tensor:
    """Write ``real(ifft2(fft2(x) * H))`` of the chunk ``x`` (B, C, H, W) into ``out``.

    Args:
        x: (B, C, H, W) float chunk; not modified.
        words: unused (the blur draws no pixel noise).
        out: (B, C, H, W) output buffer.
        a, b: (B,) float displacements; t: exposure, float or (B,).
        method: ``"rfft"`` or ``"fft"``.

    Returns:
        ``out``, unclipped.
    """
    height, width = x.shape[-2:]
    xf = x.float()
    transfer = motion_blur_transfer(height, width, a, b, t, half=method == "rfft",
                                    device=x.device)
    if method == "rfft":
        spectrum = torch.fft.rfft2(xf)
        spectrum.mul_(transfer)
        return out.copy_(torch.fft.irfft2(spectrum, s=(height, width)))
    spectrum = torch.fft.fft2(xf)
    spectrum.mul_(transfer)
    return out.copy_(torch.fft.ifft2(spectrum).real)


def motion_blur(
    images: Tensor, a: float | Tensor = 0.0, b: float | Tensor = 0.0, t: float = 1.0, *,
    method: str = "rfft", range_mode: str = "clip",
) -> Tensor:
    """Blur every image with the study's transfer function H(u, v; a, b, T).

    Args:
        images: (B, C, H, W) float in [0, 1], any device.
        a: horizontal displacement in image widths, a float or (B,) tensor (per image).
        b: vertical displacement in image heights, a float or (B,) tensor.
        t: exposure T; 1 keeps the mean brightness.
        method: ``"rfft"`` (default, half spectrum) or ``"fft"`` (full complex spectrum).
        range_mode: ``"clip"`` (default) or ``"minmax"`` (the reference code's per-image stretch).

    Returns:
        (B, C, H, W) in [0, 1], same device and dtype as ``images``.

    Raises:
        ValueError: bad images, ``method`` or ``range_mode``.
    """
    check_batch(images)
    check_range_mode(range_mode)
    check_choice(method, METHODS, "method")
    batch = images.shape[0]
    params = {
        "a": torch.as_tensor(a, dtype=torch.float32).reshape(-1).expand(batch),
        "b": torch.as_tensor(b, dtype=torch.float32).reshape(-1).expand(batch),
    }

    def core(x: Tensor, words: object, out: Tensor, a: Tensor, b: Tensor) -> Tensor:
        return motion_blur_core(x, words, out, a, b, t, method)

    return run_chunked(images, core, params, 0, None, range_mode)
