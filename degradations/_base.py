"""Shared machinery: range handling, raw random words, chunked batch execution.

Every degradation is computed per chunk of images (a fixed number of pixels per chunk, see
:data:`CHUNK_ELEMENTS`, chosen for speed: docs/benchmarks.md). Each image's noise comes from
its own contiguous run of 64-bit words, so chunking never changes the output.

Random words are drawn with numpy's SFC64 bit generator seeded from the caller's
``torch.Generator`` (:func:`robustret.core.rng.draw_seed`), which is cheaper per value than torch's
samplers. Words are turned into noise on the CPU (or, for integer thresholds, on the data's
device), so CPU and CUDA get the same noise for a seed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from robustret.core.checks import check_choice, check_images
from robustret.core.rng import check_seed, draw_seed, make_generator, sample_seed

#: pixels (B * C * H * W) handled per internal chunk: 64 images of 1x96x96.
CHUNK_ELEMENTS = 64 * 96 * 96
RANGE_MODES = ("clip", "minmax")


def check_batch(images: object) -> Tensor:
    """Shape and dtype of a batch to degrade (values are checked per chunk, see
    :func:`run_chunked`); H and W must not be empty.

    Returns:
        ``images``.
    Raises:
        TypeError, ValueError: not a (B, C, H, W) float tensor with C in {1, 3}, or H or W is 0.
    """
    check_images(images, "images", check_values=False)
    if min(images.shape[-2:]) == 0:
        raise ValueError(f"images must have H and W >= 1; got images of shape "
                         f"{tuple(images.shape)}")
    return images


def check_range_mode(range_mode: str) -> str:
    """Return ``range_mode`` or raise ValueError naming the valid modes."""
    return check_choice(range_mode, RANGE_MODES, "range_mode")


def finish_range_(images: Tensor, range_mode: str) -> Tensor:
    """Bring a degraded batch back to ``[0, 1]`` in place.

    Args:
        images: (B, C, H, W) float, any range; modified in place.
        range_mode: ``"clip"`` clamps to ``[0, 1]``; ``"minmax"`` re-stretches each image by its
            own minimum and maximum, as the study's reference code did (a constant image, where
            max == min, is clamped instead of divided by zero).

    Returns:
        ``images``.
    """
    if range_mode == "clip":
        return images.clamp_(0.0, 1.0)
    flat = images.view(images.shape[0], -1)
    low = flat.amin(dim=1, keepdim=True)
    span = flat.amax(dim=1, keepdim=True) - low
    flat.sub_(low).div_(torch.where(span > 0, span, torch.ones_like(span)))
    constant = (span <= 0).squeeze(1)
    if bool(constant.any()):
        flat[constant] = flat[constant].add_(low[constant]).clamp_(0.0, 1.0)
    return images


def chunk_length(images: Tensor) -> int:
    """Images per internal chunk: ``CHUNK_ELEMENTS`` pixels, at least one image."""
    per_image = max(1, images[0].numel()) if images.shape[0] else 1
    return max(1, CHUNK_ELEMENTS // per_image)


class WordSource:
    """Raw 64-bit random words, ``k`` per image, for images ``start:stop`` in order.

    Args:
        streams: one bit generator shared by the whole batch (images take consecutive runs of
            words), or a sequence with one bit generator per image.
    """

    def __init__(self, streams: np.random.BitGenerator | Sequence[np.random.BitGenerator]) -> None:
        self.streams = streams

    @classmethod
    def from_generator(cls, generator: torch.Generator | None) -> WordSource:
        """One SFC64 stream seeded by one draw from ``generator``."""
        return cls(np.random.SFC64(draw_seed(generator)))

    def take(self, start: int, stop: int, k: int) -> np.ndarray:
        """(stop - start, k) uint64 words; a shared stream must be read in order."""
        if isinstance(self.streams, np.random.BitGenerator):
            return self.streams.random_raw((stop - start) * k).reshape(stop - start, k)
        words = np.empty((stop - start, k), dtype=np.uint64)
        for row, i in enumerate(range(start, stop)):
            words[row] = self.streams[i].random_raw(k)
        return words


Core = Callable[..., Tensor]


def run_chunked(
    images: Tensor,
    core: Core,
    params: dict[str, Tensor],
    words_per_image: int,
    source: WordSource | None,
    range_mode: str,
    in_range: bool = False,
) -> Tensor:
    """Apply ``core`` chunk by chunk into a fresh output, then fix the range.

    ``in_range=True`` says the core only averages input values, so its output is already in
    [0, 1] and ``"clip"`` has nothing to do (the pass is skipped; ``"minmax"`` still runs).

    ``core(x, words, out, **params)`` reads the chunk ``x`` (B', C, H, W), the chunk's
    ``words`` ((B', k) uint64 numpy array or None) and the chunk's slice of every ``(B,)``
    parameter, and writes the degraded chunk into ``out`` (same shape). It must not modify ``x``.

    The values of ``images`` (finite, in [0, 1]) are checked chunk by chunk, while the chunk is
    in cache, so callers check only shape and dtype (``check_images(..., check_values=False)``)
    and a large batch is not read twice.

    Args:
        images: (B, C, H, W) float in [0, 1], any device.
        core: writes one degraded chunk, as above.
        params: (B,) tensors, sliced per chunk.
        words_per_image: 64-bit words each image needs (0: none, ``source`` unused).
        source: the random words, or None.
        range_mode: ``"clip"`` or ``"minmax"``.
        in_range: the core's output is already in [0, 1].

    Returns:
        (B, C, H, W) in [0, 1], same dtype and device as ``images``.

    Raises:
        ValueError: NaN, inf or values outside [0, 1] in any chunk.
    """
    work_dtype = images.dtype if images.dtype in (torch.float32, torch.float64) else torch.float32
    x_all = images.to(work_dtype)
    out = torch.empty_like(x_all, memory_format=torch.contiguous_format)
    step = chunk_length(images)
    for start in range(0, images.shape[0], step):
        stop = min(images.shape[0], start + step)
        words = source.take(start, stop, words_per_image) if words_per_image else None
        chunk_params = {name: value[start:stop] for name, value in params.items()}
        core(check_images(x_all[start:stop], "images"), words, out[start:stop], **chunk_params)
        if not (in_range and range_mode == "clip"):
            finish_range_(out[start:stop], range_mode)
    return out if out.dtype == images.dtype else out.to(images.dtype)


def per_index_generators(seed: int, indices: Sequence[int] | Tensor) -> list[torch.Generator]:
    """One CPU generator per image, seeded by ``sample_seed(seed, index)``.

    Raises:
        TypeError, ValueError: ``seed`` or an index is not a non-negative integer.
    """
    seed = check_seed(seed)
    if isinstance(indices, Tensor):
        indices = indices.tolist()
    return [make_generator(sample_seed(seed, i)) for i in indices]
