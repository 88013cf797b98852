"""Total-variation denoising, the switching median and the kind-routed denoiser."""

from __future__ import annotations

import pytest
import torch

import degradations
import restoration
from restoration.denoise import switching_median, tv_denoise
from restoration.estimate_noise import SALT_PEPPER
from robustret.core.quality import psnr
from robustret.core.rng import make_generator


def _squares(n: int = 4, size: int = 32) -> torch.Tensor:
    """Piecewise constant images: a dark ground and one bright square each."""
    images = torch.full((n, 1, size, size), 0.25)
    for i in range(n):
        top = 4 + 3 * i
        images[i, :, top:top + 12, 6:20] = 0.75
    return images


def _rof(u: torch.Tensor, f: torch.Tensor, weight: float) -> torch.Tensor:
    """(B,) ROF objective ``||u - f||^2 / 2 + weight * TV(u)``, isotropic, forward
    differences (the discretisation tv_denoise minimises)."""
    gx = torch.zeros_like(u)
    gy = torch.zeros_like(u)
    gx[..., :-1] = u[..., 1:] - u[..., :-1]
    gy[..., :-1, :] = u[..., 1:, :] - u[..., :-1, :]
    tv = torch.sqrt(gx**2 + gy**2).flatten(1).sum(1)
    return 0.5 * ((u - f) ** 2).flatten(1).sum(1) + weight * tv


def test_tv_minimises_the_rof_objective() -> None:
    clean = _squares()
    noisy = (clean + 0.1 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))
             ).clamp(0, 1)
    u = tv_denoise(noisy, 0.1, iterations=300)
    best = _rof(u, noisy, 0.1)
    assert bool((best < _rof(noisy, noisy, 0.1)).all())
    # no small step in a random direction lowers it (a minimiser up to the iterations' error)
    g = torch.Generator().manual_seed(1)
    for _ in range(5):
        step = 0.01 * torch.randn(u.shape, generator=g)
        assert bool((_rof(u + step, noisy, 0.1) > best - 1e-3 * best).all())
    # and it removes the noise while the square's edges stay sharp
    assert float(psnr(u.clamp(0, 1), clean).mean()) > float(psnr(noisy, clean).mean()) + 6
    assert float((u[0, 0, 10, 10] - u[0, 0, 1, 10]).abs()) > 0.4


def test_each_image_gets_its_own_weight() -> None:
    noisy = (_squares() + 0.1 * torch.randn(4, 1, 32, 32,
                                             generator=torch.Generator().manual_seed(2))
             ).clamp(0, 1)
    weights = torch.tensor([0.0, 0.05, 0.1, 0.3])
    together = tv_denoise(noisy, weights, iterations=30)
    for i in range(4):
        alone = tv_denoise(noisy[i:i + 1], float(weights[i]), iterations=30)
        torch.testing.assert_close(together[i:i + 1], alone, atol=1e-6, rtol=0)
    assert torch.equal(together[0], noisy[0])  # weight 0: unchanged
    # a larger weight removes more variation
    variation = [float((together[i, :, :, 1:] - together[i, :, :, :-1]).abs().sum())
                 for i in range(1, 4)]
    assert variation[0] > variation[1] > variation[2]


@pytest.mark.parametrize("bad", [-0.1, float("nan"), torch.tensor([0.1, 0.2])])
def test_tv_refuses_bad_weights(bad) -> None:
    with pytest.raises(ValueError, match="weight"):
        tv_denoise(torch.rand(3, 1, 8, 8), bad)


def test_switching_median_replaces_only_the_impulses() -> None:
    clean = 0.2 + 0.6 * torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    noisy = degradations.apply(clean, "salt_pepper", 3, generator=make_generator(4))
    restored = switching_median(noisy)
    extreme = (noisy <= 0) | (noisy >= 1)
    assert bool(extreme.any())
    assert torch.equal(restored[~extreme], noisy[~extreme])  # every exact value kept
    assert bool(((restored[extreme] > 0) & (restored[extreme] < 1)).all())
    assert float((restored - clean).abs().mean()) < float(
        (restoration.build("median")(noisy) - clean).abs().mean())
    # a window of impulses only takes the plain median
    flat = torch.zeros(1, 1, 9, 9)
    assert torch.equal(switching_median(flat), flat)


def test_kind_denoiser_routes_each_image_by_its_kind() -> None:
    clean = _squares(4)
    noisy = torch.cat([
        degradations.apply(clean[:2], "salt_pepper", 3, generator=make_generator(5)),
        degradations.apply(clean[2:], "gaussian_noise", 3, generator=make_generator(6))])
    kind = torch.tensor([SALT_PEPPER, SALT_PEPPER, 0, 0])
    out = restoration.build("kind_denoise")(noisy, {"kind": kind})
    assert torch.equal(out[:2], restoration.build("switching_median")(noisy[:2]))
    torch.testing.assert_close(out[2:], restoration.build("tv")(noisy[2:]), atol=1e-6, rtol=0)
    assert float(psnr(out, clean).mean()) > float(psnr(noisy, clean).mean()) + 5
    with pytest.raises(ValueError, match="kind"):
        restoration.build("kind_denoise")(noisy)


def test_tv_restorer_leaves_a_clean_image_nearly_alone() -> None:
    clean = _squares()
    assert float((restoration.build("tv")(clean) - clean).abs().max()) < 1e-3


def test_divergence_is_minus_the_adjoint_of_the_gradient() -> None:
    """<grad u, p> = -<u, div p> for every u and every field p that is 0 where the forward
    differences are (last column of px, last row of py): the pair Chambolle's step needs."""
    from restoration.denoise import _divergence, _gradient

    g = torch.Generator().manual_seed(7)
    u = torch.randn(2, 3, 9, 11, generator=g)
    px, py = torch.randn(u.shape, generator=g), torch.randn(u.shape, generator=g)
    px[..., -1] = 0
    py[..., -1, :] = 0
    gx, gy = torch.zeros_like(u), torch.zeros_like(u)
    _gradient(u, gx, gy)
    div = _divergence(px, py, torch.empty_like(u))
    torch.testing.assert_close((gx * px + gy * py).sum(), -(u * div).sum(), rtol=1e-5, atol=1e-4)
