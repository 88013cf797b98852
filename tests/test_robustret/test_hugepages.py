"""The huge-page hint: given only where it is safe, never changes values."""

from __future__ import annotations

import pytest
import torch

from robustret import hugepages
from robustret.hugepages import MIN_BYTES, advise_huge_pages, empty_like_huge


def test_small_and_strided_tensors_are_not_advised() -> None:
    assert advise_huge_pages(torch.empty(1024)) is False
    big = torch.empty(2, MIN_BYTES // 4 + 1)
    assert advise_huge_pages(big.t()) is False  # not contiguous


def test_large_buffer_is_advised_and_holds_what_is_written() -> None:
    if hugepages._madvise is None:
        pytest.skip("madvise(MADV_HUGEPAGE) is not available on this platform")
    x = torch.empty(MIN_BYTES // 4 + 4096)
    out = empty_like_huge(x)
    assert out.shape == x.shape and out.dtype == x.dtype and out.is_contiguous()
    assert advise_huge_pages(out) is True
    out.copy_(torch.arange(out.numel(), dtype=torch.float32))
    assert float(out[-1]) == out.numel() - 1 and float(out[12345]) == 12345.0


def test_degradations_output_is_unchanged_by_the_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    import degradations
    from degradations import _base

    x = torch.rand(3, 1, 2048, 2048, generator=torch.Generator().manual_seed(0))  # 48 MiB: advised
    assert x.numel() * 4 >= MIN_BYTES
    hinted = degradations.apply(x, "gaussian_noise", 3, generator=torch.Generator().manual_seed(1))
    monkeypatch.setattr(_base, "empty_like_huge", lambda t: torch.empty_like(t))
    plain = degradations.apply(x, "gaussian_noise", 3, generator=torch.Generator().manual_seed(1))
    assert torch.equal(hinted, plain)
