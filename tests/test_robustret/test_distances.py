"""Pairwise distances against hand-worked values and a broadcast reference."""

from __future__ import annotations

import pytest
import torch

from robustret.retrieval import cosine_similarities, l2_distances


def test_hand_worked() -> None:
    q = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    g = torch.tensor([[3.0, 4.0], [1.0, 0.0], [0.0, 0.0]])
    torch.testing.assert_close(
        l2_distances(q, g), torch.tensor([[5.0, 1.0, 0.0], [0.0, 20**0.5, 5.0]])
    )
    # zero vectors get cosine similarity 0
    torch.testing.assert_close(
        cosine_similarities(q, g), torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.6, 0.0]])
    )


def test_matches_broadcast(device: torch.device) -> None:
    gen = torch.Generator().manual_seed(0)
    q, g = (
        torch.randn(7, 16, generator=gen).to(device),
        torch.randn(11, 16, generator=gen).to(device),
    )
    ref = torch.norm(g[None] - q[:, None], dim=-1)
    torch.testing.assert_close(l2_distances(q, g), ref, rtol=1e-4, atol=1e-4)
    ref_cos = (q @ g.T) / (q.norm(dim=1)[:, None] * g.norm(dim=1)[None])
    torch.testing.assert_close(cosine_similarities(q, g), ref_cos, rtol=1e-5, atol=1e-5)


def test_identical_rows_distance_zero() -> None:
    x = torch.randn(5, 32) * 100  # ||x||^2 ~ 3e5: float32 cancellation leaves ~sqrt(3e5 * 1e-7 * D)
    d = l2_distances(x, x).diagonal()
    assert torch.all(d >= 0)  # clamped before the square root, never NaN
    assert d.max() < 1.0


def test_bad_shapes() -> None:
    with pytest.raises(ValueError, match="same dimension"):
        l2_distances(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        cosine_similarities(torch.zeros(3), torch.zeros(2, 3))
