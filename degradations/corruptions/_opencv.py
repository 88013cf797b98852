"""OpenCV paths of the corruption suite's filters for CPU tensors, planes spread over threads.

On the CPU a 2-D filter of one small plane is what OpenCV is built for: ``cv2.sepFilter2D``
and ``cv2.filter2D`` keep a 96 x 96 plane in cache and pick their own algorithm (direct or,
for large kernels, DFT), where torch's ``conv2d`` on (N, 1, H, W) planes and the padded batched
FFT pass over the whole batch several times (measured in docs/benchmarks.md, "Every
degradation family"). OpenCV releases the GIL inside each call, so :func:`map_ranges` runs
contiguous ranges of planes in ``torch.get_num_threads()`` threads; each plane's result does not
depend on the thread, so the output is the same bytes for any thread count.

The callers keep the torch path for other devices and dtypes (:func:`opencv_ready`); the two
agree within float rounding (tests/test_degradations/test_opencv_paths.py).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

import cv2
import numpy as np
import torch
from torch import Tensor

#: torch's border names -> OpenCV's (torch's ``"reflect"`` leaves the edge out, as
#: ``BORDER_REFLECT_101``; ``"replicate"`` repeats it, as ``BORDER_REPLICATE``)
BORDERS = {"replicate": cv2.BORDER_REPLICATE, "reflect": cv2.BORDER_REFLECT_101}
#: scipy.ndimage's border names (module ``_fields``) -> OpenCV's: ``"reflect"`` repeats the
#: edge (d c b a | a b c d), ``"mirror"`` leaves it out, ``"nearest"`` repeats the edge pixel
SCIPY_BORDERS = {"reflect": cv2.BORDER_REFLECT, "mirror": cv2.BORDER_REFLECT_101,
                 "nearest": cv2.BORDER_REPLICATE}


def opencv_ready(x: Tensor, reach: int) -> bool:
    """Whether the OpenCV path serves ``x`` (B, C, H, W): a CPU float32 / float64 tensor whose
    sides exceed the filter's half-width ``reach`` (where torch falls back from reflection)."""
    return (x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64)
            and reach < min(x.shape[-2:]))


@lru_cache(maxsize=4)
def _pool(pid: int, workers: int) -> ThreadPoolExecutor:
    """One pool per process and size: a forked child (a data-loader worker) gets its own, as
    the parent's threads do not exist there."""
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="degradations")


def map_ranges(work: Callable[[int, int], None], count: int) -> None:
    """``work(start, stop)`` over ``range(count)`` cut into one contiguous range per torch
    thread, run in a thread pool (inline with one thread); re-raises the first error."""
    workers = max(1, min(torch.get_num_threads(), count))
    if workers == 1:
        work(0, count)
        return
    edges = np.linspace(0, count, workers + 1).round().astype(int)
    pool = _pool(os.getpid(), workers)
    futures = [pool.submit(work, int(a), int(b)) for a, b in zip(edges, edges[1:])]
    for future in futures:
        future.result()


def sep_filter(x: Tensor, taps: np.ndarray, mode: str, borders: dict[str, int] = BORDERS) -> Tensor:
    """Every channel of ``x`` (B, C, H, W), CPU, correlated with ``taps`` along W then H
    (``cv2.sepFilter2D``, border ``borders[mode]``: torch's names by default,
    :data:`SCIPY_BORDERS` for scipy's); a new tensor of ``x``'s dtype."""
    b, c, h, w = x.shape
    planes = x.detach().contiguous().view(b * c, h, w).numpy()
    out = np.empty_like(planes)
    kernel = np.asarray(taps, dtype=planes.dtype)
    border = borders[mode]

    def work(start: int, stop: int) -> None:
        for i in range(start, stop):
            out[i] = cv2.sepFilter2D(planes[i], -1, kernel, kernel, borderType=border)

    map_ranges(work, b * c)
    return torch.from_numpy(out).view(b, c, h, w)


def filter_planes(x: Tensor, kernels: np.ndarray, mode: str) -> Tensor:
    """Every channel of image i of ``x`` (B, C, H, W), CPU, correlated with ``kernels[i]``
    ((B or 1, K, K), K odd, centre at ``[K // 2, K // 2]``; ``cv2.filter2D``, border ``mode``);
    a new tensor of ``x``'s dtype."""
    b, c, h, w = x.shape
    planes = x.detach().contiguous().view(b * c, h, w).numpy()
    out = np.empty_like(planes)
    kernels = np.ascontiguousarray(kernels, dtype=planes.dtype)
    border = BORDERS[mode]
    shared = len(kernels) == 1

    def work(start: int, stop: int) -> None:
        for i in range(start, stop):
            kernel = kernels[0 if shared else i // c]
            out[i] = cv2.filter2D(planes[i], -1, kernel, borderType=border)

    map_ranges(work, b * c)
    return torch.from_numpy(out).view(b, c, h, w)


def warp_ready(x: Tensor) -> bool:
    """Whether :func:`zoom_sum` and :func:`shifted_sum` serve ``x``: a CPU float32 tensor.
    OpenCV 5 samples float32 images at their exact (unquantised) positions in ``warpAffine``;
    float64 ones at 1/32 px steps (its remap tables), so those, and other devices, take the
    exact torch path."""
    return x.device.type == "cpu" and x.dtype == torch.float32


def _warp_images(x: Tensor, out: Tensor, blur: Callable[[int, np.ndarray], np.ndarray]) -> None:
    """out[i] = blur(i, image i) for each image of ``x`` (B, C, H, W) float32 CPU, the image
    as one (H, W, 3) array for RGB (OpenCV's exact float path holds for 1 and 3 channels, not
    for 2), plane by plane otherwise; images over threads."""
    b, c = x.shape[:2]
    src = x.detach().contiguous().numpy()
    dst = out.numpy()

    def work(start: int, stop: int) -> None:
        for i in range(start, stop):
            if c == 3:
                image = np.ascontiguousarray(src[i].transpose(1, 2, 0))
                dst[i] = blur(i, image).transpose(2, 0, 1)
            else:
                for k in range(c):
                    dst[i, k] = blur(i, src[i, k])

    map_ranges(work, b)


def shifted_sum(x: Tensor, out: Tensor, shifts: np.ndarray, weights: np.ndarray) -> Tensor:
    """out(p) = sum_t weights[t] x(p + shifts[i, t]) for image i, bilinear samples, edge
    pixels repeated beyond the border (``cv2.warpAffine`` translations, per image).

    Args:
        x: (B, C, H, W) float32 CPU (:func:`warp_ready`).
        out: (B, C, H, W) float32 CPU; written and returned.
        shifts: (B, T, 2) offsets (x right, y down) in pixels.
        weights: (T,) weight of each offset.
    """
    h, w = x.shape[-2:]
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    mats = np.zeros((*shifts.shape[:2], 2, 3))
    mats[..., 0, 0] = mats[..., 1, 1] = 1.0
    mats[..., 0, 2], mats[..., 1, 2] = shifts[..., 0], shifts[..., 1]

    def blur(i: int, image: np.ndarray) -> np.ndarray:
        acc = np.zeros_like(image)
        warped = np.empty_like(image)
        for mat, weight in zip(mats[i], weights):
            cv2.warpAffine(image, mat, (w, h), dst=warped, flags=flags,
                           borderMode=cv2.BORDER_REPLICATE)
            cv2.scaleAdd(warped, float(weight), acc, dst=acc)
        return acc

    _warp_images(x, out, blur)
    return out


def zoom_sum(x: Tensor, out: Tensor, factors: np.ndarray) -> Tensor:
    """out = (x + sum over ``factors`` of the centre zoom of x by each) / (count + 1), per image
    (``cv2.warpAffine``, bilinear, edge pixels repeated; images spread over threads).

    Output pixel ``(i, j)`` samples the input at ``c + ((i, j) - c) / zoom``, ``c`` the centre
    ``((H - 1) / 2, (W - 1) / 2)``: :func:`degradations.corruptions._kernels.zoom_indices` on
    both axes. RGB images are warped as one (H, W, 3) array (OpenCV's exact float path holds
    for 1 and 3 channels, not for 2), other channel counts plane by plane.

    Args:
        x: (B, C, H, W) float32 CPU (:func:`warp_ready`).
        out: (B, C, H, W) float32 CPU, contiguous; written and returned.
        factors: the zooms, each >= 1 (a factor 1 adds the image itself).
    """
    h, w = x.shape[-2:]
    cy, cx = (h - 1) / 2, (w - 1) / 2
    zooms = np.asarray(factors, dtype=np.float64)
    mats = [np.array([[1 / z, 0, cx * (1 - 1 / z)], [0, 1 / z, cy * (1 - 1 / z)]])
            for z in zooms[zooms != 1]]  # a zoom by 1 is the image: added without a warp
    copies = 1 + int(np.sum(zooms == 1))
    scale = np.float32(1 / (len(zooms) + 1))
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP

    def blur(i: int, image: np.ndarray) -> np.ndarray:
        acc = image * np.float32(copies)
        warped = np.empty_like(image)
        for mat in mats:
            cv2.warpAffine(image, mat, (w, h), dst=warped, flags=flags,
                           borderMode=cv2.BORDER_REPLICATE)
            cv2.add(acc, warped, dst=acc)
        return np.multiply(acc, scale, out=acc)

    _warp_images(x, out, blur)
    return out


def valid_rows_filter(x: Tensor, taps: np.ndarray, keep: int) -> Tensor:
    """``out[..., y, :] = sum_i taps[i] x[..., y + i, :]`` for y < ``keep`` (a correlation
    along H that never reads past the last row: ``keep + len(taps) - 1 <= H``), per plane by
    ``cv2.filter2D`` with the kernel anchored at its first tap; planes over threads.

    Args:
        x: (B, C, H, W) float32 / float64 CPU (:func:`opencv_ready`).
        taps: 1-D weights.
        keep: output rows.

    Returns:
        (B, C, keep, W), a new tensor of ``x``'s dtype.
    """
    b, c, h, w = x.shape
    if keep + len(taps) - 1 > h:
        raise ValueError(f"{len(taps)} taps over {keep} rows need {keep + len(taps) - 1} rows; "
                         f"got {h}")
    planes = x.detach().contiguous().view(b * c, h, w).numpy()
    out = np.empty((b * c, keep, w), dtype=planes.dtype)
    kernel = np.asarray(taps, dtype=planes.dtype).reshape(-1, 1)

    def work(start: int, stop: int) -> None:
        for i in range(start, stop):
            src = planes[i, : keep + len(taps) - 1]
            out[i] = cv2.filter2D(src, -1, kernel, anchor=(0, 0),
                                  borderType=cv2.BORDER_CONSTANT)[:keep]

    map_ranges(work, b * c)
    return torch.from_numpy(out).view(b, c, keep, w)


#: the structuring elements of the octagonal distance: the 3 x 3 square, the cross
_SQUARE = np.ones((3, 3), np.uint8)
_CROSS = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))


def dilation_distance(reached: Tensor, cap: int) -> Tensor:
    """Steps (at most ``cap``) until each pixel is reached, growing ``reached`` by alternate
    3 x 3 and cross-shaped dilations (``cv2.dilate`` on uint8, per image, images over threads;
    beyond the border nothing is reached, so the border repeats the edge).

    Args:
        reached: (B, 1, h, w) bool CPU, the start set.
        cap: the most steps, at most 255 (counted in uint8).

    Returns:
        (B, 1, h, w) float32 in [0, cap]: 0 where reached at the start.
    """
    if not 0 <= cap <= 255:
        raise ValueError(f"cap must be in [0, 255] (steps are counted in uint8); got {cap}")
    masks = reached.detach().to(torch.uint8).contiguous().numpy()[:, 0]  # (B, h, w)
    out = np.empty(masks.shape, np.float32)

    def work(start: int, stop: int) -> None:
        for i in range(start, stop):
            mask = masks[i]
            steps = np.zeros(mask.shape, np.uint8)
            for step in range(cap):
                steps += 1
                steps -= mask  # + 1 where not yet reached
                if mask.all():
                    break
                mask = cv2.dilate(mask, _SQUARE if step % 2 == 0 else _CROSS)
            out[i] = steps

    map_ranges(work, len(masks))
    return torch.from_numpy(out)[:, None]
