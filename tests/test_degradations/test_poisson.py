"""The Poisson sampler of shot_noise (degradations.corruptions._poisson): exact Poisson counts
(a chi-square test at fixed words, so the test is deterministic), one word per value, tables
that hold the CDF."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
import torch

from degradations.corruptions import _poisson


def _counts(rate: float, photons: float, n: int, seed: int) -> np.ndarray:
    words = np.random.default_rng(seed).integers(0, 2**64, size=(1, n), dtype=np.uint64)
    out = np.empty((1, n))
    _poisson.poisson_shot(np.full((1, n), rate / photons), photons, words, out)
    counts = out[0] * photons
    np.testing.assert_allclose(counts, np.round(counts), atol=1e-9)
    return np.round(counts).astype(int)


@pytest.mark.parametrize(("rate", "photons"), [
    (0.05, 37.7), (0.3, 3.0), (1.0, 37.7), (5.1, 37.7), (37.7, 37.7), (150.3, 500.0),
    (499.9, 500.0), (0.95, 1000.0), (700.6, 1000.0),
])
def test_counts_are_poisson(rate: float, photons: float) -> None:
    """Both parts (the tabulated rate and the thinned remainder), grid spacings 1/4, 1/2, 1."""
    n = 100_000
    counts = _counts(rate, photons, n, seed=int(rate * 10))
    ks = np.arange(counts.max() + 2)
    expected = scipy.stats.poisson.pmf(ks, rate) * n
    observed = np.bincount(counts, minlength=len(ks))
    cells = expected > 5
    rest = n - observed[cells].sum(), n - expected[cells].sum()  # pooled small cells
    chi2 = ((observed[cells] - expected[cells]) ** 2 / expected[cells]).sum()
    chi2 += (rest[0] - rest[1]) ** 2 / max(rest[1], 1e-9) if rest[1] > 5 else 0.0
    assert scipy.stats.chi2.sf(chi2, cells.sum()) > 1e-3
    assert counts.mean() == pytest.approx(rate, abs=4 * math.sqrt(rate / n))


def test_rate_zero_gives_zero_and_each_value_uses_its_own_word() -> None:
    assert not _counts(0.0, 10.0, 1000, seed=1).any()
    rng = np.random.default_rng(2)
    values = rng.random((3, 500))
    words = rng.integers(0, 2**64, size=(3, 500), dtype=np.uint64)
    a, b = np.empty((3, 500)), np.empty((3, 500))
    _poisson.poisson_shot(values, 20.0, words, a)
    words[1, 17] ^= np.uint64(0xFFFF0000FFFF)  # another word for one value
    _poisson.poisson_shot(values, 20.0, words, b)
    changed = np.argwhere(a != b)
    assert changed.tolist() in ([], [[1, 17]])
    one = np.empty((1, 500))
    _poisson.poisson_shot(values[2:], 20.0, words[2:], one)  # a row alone: the same counts
    np.testing.assert_array_equal(one[0], b[2])


def test_tables_hold_the_cdf() -> None:
    tables = _poisson.poisson_tables(37.7)
    assert tables.spacing == 0.25 and _poisson.grid_spacing(500.0) == 0.5
    assert np.all(np.diff(tables.ladder) >= 0)  # one sorted array for every row
    rows = (tables.ladder.reshape(-1, tables.size)
            - (np.arange(len(tables.ladder) // tables.size) << 33)[:, None])
    j = 40  # rate 10
    np.testing.assert_allclose(rows[j] / 2.0**32, scipy.stats.poisson.cdf(np.arange(tables.size),
                                                                           j * 0.25), atol=1e-9)
    assert rows[:, -1].min() == 2**32


def test_a_strided_output_is_refused() -> None:
    words = np.zeros((2, 8), np.uint64)
    with pytest.raises(ValueError, match="C-contiguous"):
        _poisson.poisson_shot(np.zeros((2, 8)), 5.0, words, np.empty((8, 2)).T)


def test_shot_core_writes_any_output_layout_alike() -> None:
    """The path of a CUDA or strided output (counts in a buffer, then copied) equals the
    direct one, float32 and float64."""
    from degradations.corruptions import noise_blur

    rng = np.random.default_rng(4)
    words = rng.integers(0, 2**64, size=(2, 3 * 8 * 8), dtype=np.uint64)
    for dtype in (torch.float32, torch.float64):
        x = torch.from_numpy(rng.random((2, 3, 8, 8))).to(dtype)
        direct = noise_blur.shot_core(x, words, torch.empty_like(x), 20.0)
        strided = torch.empty(2, 3, 8, 8, dtype=dtype).transpose(2, 3)
        torch.testing.assert_close(noise_blur.shot_core(x, words, strided, 20.0), direct,
                                   atol=0, rtol=0)
        assert not torch.equal(direct, x)


def test_beyond_the_tables_numpy_draws_each_image_from_its_first_word() -> None:
    """More photons than the tables hold: numpy's sampler per image, still Poisson and
    seeded by the image's words only."""
    rng = np.random.default_rng(5)
    photons = 2 * _poisson.MAX_PEAK
    values = np.full((2, 50_000), 0.6)
    words = rng.integers(0, 2**64, size=(2, 50_000), dtype=np.uint64)
    out = np.empty((2, 50_000))
    _poisson.poisson_shot(values, photons, words, out)
    counts = out * photons
    rate = 0.6 * photons
    assert abs(counts.mean() - rate) < 4 * math.sqrt(rate / counts.size)
    assert counts.var() == pytest.approx(rate, rel=0.03)
    one = np.empty((1, 50_000))
    _poisson.poisson_shot(values[1:], photons, words[1:], one)
    np.testing.assert_array_equal(one[0], out[1])
