"""Transparent huge pages for large fresh CPU buffers: a per-buffer hint on Linux.

Writing a fresh 75 MB tensor the first time costs one 4 KiB page fault per page. On this
project's 2-core VMs that is 18,433 faults and 32-65 ms for a (2048, 1, 96, 96) float32 batch,
as much as the degradation computed into it. ``madvise(MADV_HUGEPAGE)`` on the buffer before the
first write makes the kernel back it with 2 MiB pages: ~550 faults and ~9-16 ms (measured with
``benchmarks/bench_degradations.py`` and ``resource.getrusage``; see ``docs/benchmarks.md``).

The hint changes no value and no process-wide setting. It is only given for buffers larger than
glibc's largest dynamic mmap threshold (32 MiB), which malloc places in a mapping of their own,
so no other allocation's pages are touched. Where it cannot be given (not Linux, no
``MADV_HUGEPAGE``, transparent huge pages disabled, a GPU tensor) the buffer is left as it is.
"""

from __future__ import annotations

import ctypes
import mmap
import sys
from collections.abc import Callable

import torch
from torch import Tensor

#: buffers at least this large get the hint: above glibc's largest mmap threshold (32 MiB).
MIN_BYTES = 32 * 1024 * 1024 + 1
HUGE_PAGE_BYTES = 2 * 1024 * 1024
_MADV_HUGEPAGE: int | None = getattr(mmap, "MADV_HUGEPAGE", None)


def _load_madvise() -> Callable[[int, int, int], int] | None:
    if not sys.platform.startswith("linux") or _MADV_HUGEPAGE is None:
        return None
    try:
        madvise = ctypes.CDLL(None, use_errno=True).madvise
    except (OSError, AttributeError):
        return None
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    madvise.restype = ctypes.c_int
    return madvise


_madvise = _load_madvise()


def advise_huge_pages(tensor: Tensor) -> bool:
    """Ask the kernel to back the 2 MiB-aligned part of ``tensor``'s memory with huge pages.

    Args:
        tensor: any tensor; only contiguous CPU tensors of more than 32 MiB are advised.

    Returns:
        True when the hint was accepted, False when it was not given or refused.
    """
    if _madvise is None or tensor.device.type != "cpu" or not tensor.is_contiguous():
        return False
    nbytes = tensor.numel() * tensor.element_size()
    if nbytes < MIN_BYTES:
        return False
    start = tensor.data_ptr()
    first = -(-start // HUGE_PAGE_BYTES) * HUGE_PAGE_BYTES
    last = (start + nbytes) // HUGE_PAGE_BYTES * HUGE_PAGE_BYTES
    if last <= first:
        return False
    return _madvise(first, last - first, _MADV_HUGEPAGE) == 0


def empty_like_huge(tensor: Tensor) -> Tensor:
    """``torch.empty_like(tensor)`` (contiguous), with :func:`advise_huge_pages` applied."""
    out = torch.empty_like(tensor, memory_format=torch.contiguous_format)
    advise_huge_pages(out)
    return out
