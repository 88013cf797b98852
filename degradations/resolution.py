"""Resolution reduction by the Haar wavelet's approximation band, back to the input size.

One Haar level's approximation (LL) band is ``2 x`` the mean of each 2x2 block
(``pywt.dwt2(x, "haar")[0] == 2 * avg_pool2d(x, 2)``). The study's reference code took the LL
band ``level`` times, resized it back with OpenCV and min-max re-stretched the result, so the
effective image is the block mean over ``2**level x 2**level`` blocks. That is what is computed
here, exactly, with average pooling, then upsampled back (``nearest`` by default, the study's
SRCNN input convention).

Sizes not divisible by ``2**level`` are padded by edge replication to the next multiple, pooled,
upsampled and cropped back, so the last partial block is the mean of its real pixels and their
replicated edge.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from robustret.core.checks import check_choice

from ._base import check_batch, check_range_mode, run_chunked

UPSAMPLE_MODES = ("nearest", "bilinear", "bicubic", "area")
#: upsampling modes that copy each block mean into its block (area equals nearest at integer
#: factors): the one-copy fast path applies, and the output stays in the input's range
BLOCK_COPY_UPSAMPLE = ("nearest", "area")


def check_upsample(upsample: str) -> str:
    """Return ``upsample`` or raise ValueError naming the valid modes."""
    return check_choice(upsample, UPSAMPLE_MODES, "upsample")


def max_level(height: int, width: int) -> int:
    """The most Haar levels an ``height x width`` image has: ``floor(log2(min(H, W)))``
    (the ``2**level`` block fits in the image)."""
    return max(1, min(height, width)).bit_length() - 1


def check_level(level: float, size: tuple[int, int], name: str = "level") -> None:
    """Raise ValueError naming ``name`` and the image size when ``level`` exceeds
    :func:`max_level` (a larger level would pool over padding only, and allocate
    ``2**level``-sided buffers)."""
    height, width = size
    limit = max_level(height, width)
    if level > limit:
        raise ValueError(
            f"{name} must be at most log2(min(H, W)) = {limit} for {height}x{width} images "
            f"(a level halves the resolution); got {level}. Use fewer levels or larger images")


def block_mean(images: Tensor, level: int) -> Tensor:
    """Mean over ``2**level`` square blocks = Haar LL band after ``level`` levels / 2**level.

    Args:
        images: (B, C, H, W) float with H and W divisible by ``2**level``.
        level: number of Haar levels, >= 0.

    Returns:
        (B, C, H / 2**level, W / 2**level) float; each value a mean of values of ``images``, so
        inputs in [0, 1] give outputs in [0, 1] exactly (float rounding is monotone).
    """
    out = images
    # row pairs first (contiguous runs), then column pairs: (a + c) + (b + d)
    for _ in range(level):
        b, c, h, w = out.shape
        rows = out.reshape(b, c, h // 2, 2, w)
        pairs = rows[:, :, :, 0] + rows[:, :, :, 1]  # (B, C, H/2, W)
        out = torch.add(pairs[..., 0::2], pairs[..., 1::2]).mul_(0.25)
    return out


def haar_lowres_fixed(images: Tensor, level: int, upsample: str = "nearest") -> Tensor:
    """All images reduced by the same ``level``; (B, C, H, W) in, same shape out, no clipping."""
    if level == 0:
        return images.clone()
    factor = 2**level
    height, width = images.shape[-2:]
    pad_h, pad_w = (-height) % factor, (-width) % factor
    x = F.pad(images, (0, pad_w, 0, pad_h), mode="replicate") if pad_h or pad_w else images
    small = block_mean(x, level)
    size = (height + pad_h, width + pad_w)
    if upsample in BLOCK_COPY_UPSAMPLE:
        big = F.interpolate(small, size=size, mode="nearest")
    else:
        big = F.interpolate(small, size=size, mode=upsample, align_corners=False)
    return big[..., :height, :width] if pad_h or pad_w else big


def upsample_nearest_into(small: Tensor, out: Tensor) -> Tensor:
    """Write ``small`` (B, C, h, w) into ``out`` (B, C, h * f, w * f), each value as an f x f block.

    Two broadcast copies and no full-size temporary: each row widened f times (an f-times
    smaller buffer), then copied to its f output rows, whose long contiguous runs vectorise
    (the alternatives measured are in docs/benchmarks.md). ``out`` must be contiguous.

    Args:
        small: (B, C, h, w) float.
        out: (B, C, h * f, w * f) contiguous, same dtype.

    Returns:
        ``out``.
    """
    b, c, h, w = small.shape
    f = out.shape[-1] // w
    rows = small[..., None].expand(b, c, h, w, f).reshape(b, c, h, 1, w * f)
    out.view(b, c, h, f, w * f).copy_(rows.expand(b, c, h, f, w * f))
    return out


def lowres_nearest_core(x: Tensor, out: Tensor, levels: list[int]) -> Tensor:
    """Per-image levels >= 1, nearest upsampling, sizes divisible by 2**max(levels).

    All images are reduced one level; images of higher levels are reduced further and brought
    back to the one-level grid inside the quarter-size buffer; one copy then writes ``out``. The
    values equal :func:`haar_lowres_fixed`'s: an f-fold nearest upsampling is two nested ones.
    """
    grid = block_mean(x, 1)  # (B, C, H/2, W/2), a fresh buffer
    for value in sorted(set(levels) - {1}):
        index = torch.tensor([i for i, v in enumerate(levels) if v == value], device=x.device)
        deeper = block_mean(grid.index_select(0, index), value - 1)
        back = torch.empty_like(grid[: len(index)])
        grid.index_copy_(0, index, upsample_nearest_into(deeper, back))
    return upsample_nearest_into(grid, out)


def lowres_core(
    x: Tensor, words: object, out: Tensor, level: Tensor, upsample: str = "nearest",
) -> Tensor:
    """Per-image levels, ``level`` (B,) int64, written into ``out`` (B, C, H, W).

    Args:
        x: (B, C, H, W) float chunk; not modified.
        words: unused (no pixel noise).
        out: (B, C, H, W) output buffer.
        level: (B,) int64 levels >= 0.
        upsample: one of ``UPSAMPLE_MODES``.

    Returns:
        ``out``.
    """
    levels = level.tolist()
    distinct = sorted(set(levels))
    if distinct:
        check_level(distinct[-1], (x.shape[-2], x.shape[-1]))
    factor = 2 ** distinct[-1] if distinct else 1
    divisible = x.shape[-2] % factor == 0 and x.shape[-1] % factor == 0
    fast = divisible and bool(distinct) and distinct[0] >= 1 and out.is_contiguous()
    if upsample in BLOCK_COPY_UPSAMPLE and fast:
        return lowres_nearest_core(x, out, levels)  # the fast path: one full-size write
    if len(distinct) == 1:
        return out.copy_(haar_lowres_fixed(x, int(distinct[0]), upsample))
    for value in distinct:
        index = torch.tensor([i for i, v in enumerate(levels) if v == value], device=x.device)
        out.index_copy_(0, index, haar_lowres_fixed(x.index_select(0, index), int(value), upsample))
    return out


def haar_lowres(
    images: Tensor, level: int | Tensor = 1, *, upsample: str = "nearest", range_mode: str = "clip",
) -> Tensor:
    """Keep the Haar approximation band of ``level`` levels (2**level lower resolution).

    The band is resized back to the input size.

    Args:
        images: (B, C, H, W) float in [0, 1], any device.
        level: levels per image: an int >= 0 for all, or a (B,) integer tensor.
        upsample: ``"nearest"`` (default), ``"bilinear"``, ``"bicubic"`` or ``"area"``.
        range_mode: ``"clip"`` (default) or ``"minmax"`` (the reference code's per-image stretch).

    Returns:
        (B, C, H, W) in [0, 1], same device and dtype as ``images``.

    Raises:
        ValueError: bad images, a level below 0 or above ``log2(min(H, W))``, or a bad
            ``upsample`` / ``range_mode``.
    """
    check_batch(images)
    check_upsample(upsample)
    check_range_mode(range_mode)
    levels = torch.as_tensor(level, dtype=torch.int64).reshape(-1).expand(images.shape[0])
    if levels.numel() and int(levels.min()) < 0:
        raise ValueError(f"level must be >= 0; got {levels.tolist()}")
    return run_chunked(images, lambda x, w, o, level: lowres_core(x, w, o, level, upsample),
                       {"level": levels}, 0, None, range_mode, upsample in BLOCK_COPY_UPSAMPLE)


def levels_from_uniform(levels: float, u: Tensor) -> Tensor:
    """Per-image integer level ``floor(levels + u)``, u in [0, 1): expectation ``levels``.

    Monotone in ``levels`` for a fixed draw; an integer ``levels`` gives that level for all.
    """
    return torch.floor(levels + u.double()).to(torch.int64)


