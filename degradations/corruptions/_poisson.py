"""Poisson counts for a batch of rates in [0, ``peak``], by table inversion, from raw words.

``shot_noise`` needs Poisson(c x) for every value x of the batch, c the photon count at full
intensity. numpy's sampler (one call per image) costs 60-175 ns a value on this machine; this
one does a fixed handful of whole-array steps instead (about 42 ns a value). A Poisson
variable splits exactly into independent parts: Poisson(lam) = Poisson(j d) + Poisson(r) with
lam = j d + r, 0 <= r < d, so

- the first part is drawn by inversion of the tabulated CDF of Poisson(j d), j = 0 .. J
  (:func:`poisson_tables`): a guide table gives, for ``u`` in ``[m / M, (m + 1) / M)``, the
  smallest count the inversion can return (Chen and Asau's indexed search) and marks the
  cells that hold a step of the CDF; only their words (2.6% at a peak of 37.7) are compared
  with the CDF and, where beyond the step, placed by a binary search in the row;
- the second by thinning: with N ~ Poisson(d), keeping each of its N events with
  probability r / d leaves Poisson(r). N comes from the word's high 32 bits by inversion
  against fixed thresholds, and the word's place inside N's cell is a uniform that decides
  the kept events: one comparison for N = 1, a binomial inversion for the few values with
  N >= 2 (2.6% at d = 1/4), and no exponential per value.

Each value takes one 64-bit word: its low 32 bits drive the first part, its high 32 bits the
second, so an outcome of probability below about 2^-32 per value is not drawn (numpy's
sampler: 2^-53). The counts are exact otherwise: the tables hold the
CDF in float64 up to a count whose tail beyond it is below 1e-17.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

#: guide cells per probable count at least (the guide has a power of two of cells)
GUIDE = 4
#: the largest peak rate drawn by the tables (at most 1025 rows of 1,502 counts and 4,096
#: guide cells, 45 MB; ImageNet-C's tables go up to 500); above it numpy's sampler draws each
#: image (:func:`poisson_shot`)
MAX_PEAK = 1024.0
#: values handled per step, so that the step's arrays stay in the core's cache
BLOCK = 16384


def grid_spacing(peak: float) -> float:
    """The spacing d of the tabulated rates for rates up to ``peak``: 1/4, or the smallest
    power of two that keeps the tables at most 1025 (a power of two: ``lam / d`` is exact)."""
    d = 0.25
    while peak / d > 1024:
        d *= 2
    return d


def _reach(rate: float) -> int:
    """Counts of Poisson(rate) beyond its mean worth tabulating: the tail beyond
    ``rate + reach`` is below 1e-17."""
    return int(math.ceil(14 * math.sqrt(rate) + 30))


@dataclass(frozen=True)
class PoissonTables:
    """Inversion tables of Poisson(j d), j = 0 .. J, J = floor(peak / d), on 32-bit words.

    With ``limit[j, k] = ceil(2^32 P(X <= k))``, X ~ Poisson(j d) (the last column 2^32), a
    32-bit word w gives the count ``min{k : w < limit[j, k]}``, so P(count <= k) is
    ``limit[j, k] / 2^32``. Stored flat and offset by ``j 2^33`` per row, so that one sorted
    array serves every row (``ladder``).

    Attributes:
        spacing: d, a power of two.
        size: K, counts per row (the tail beyond K - 1, below 1e-17, joins the last).
        shift: a word's guide cell is ``w >> shift``.
        ladder: ((J + 1) K,) int64, ``limit[j, k] + j 2^33`` at ``j K + k``.
        guide: ((J + 1) 2^(32 - shift),) int64, at ``j 2^(32 - shift) + m`` twice the count
            of word ``m << shift`` (the smallest count of any word of cell m), plus 1 where a
            word of the cell has a larger count (a step of the CDF inside the cell).
        thinning: (L,) int64, ``ceil(2^32 P(N <= n))`` for N ~ Poisson(d), n = 0 .. L - 1
            (the last 2^32): the word h has N = n for h in ``[thinning[n - 1], thinning[n])``.
    """

    spacing: float
    size: int
    shift: int
    ladder: np.ndarray
    guide: np.ndarray
    thinning: np.ndarray


@lru_cache(maxsize=4)
def poisson_tables(peak: float) -> PoissonTables:
    """The tables for rates in [0, ``peak``] (cached per peak), ``peak`` <= :data:`MAX_PEAK`."""
    d = grid_spacing(peak)
    rates = np.arange(int(math.floor(peak * (1 / d))) + 1) * d  # (J + 1,), as _block rounds
    size = int(math.ceil(peak)) + _reach(peak)  # K: the tail beyond is below 1e-17
    k = np.arange(size)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_pmf = k * np.log(rates[:, None]) - rates[:, None] - np.array(
            [math.lgamma(v + 1) for v in k])
    log_pmf[0] = np.where(k == 0, 0.0, -np.inf)  # rate 0: always 0
    cdf = np.minimum(np.cumsum(np.exp(log_pmf), axis=1), 1.0)
    limit = np.ceil(cdf * 2.0**32).astype(np.int64)
    limit[:, -1] = 2**32
    shift = 32 - int(math.ceil(math.log2(GUIDE * min(size, 2 * _reach(peak)))))
    starts = np.arange(2 ** (32 - shift), dtype=np.int64) << shift
    first = np.stack([np.searchsorted(row, starts, side="right") for row in limit])
    last = np.stack([np.searchsorted(row, starts + (1 << shift) - 1, side="right")
                     for row in limit])
    guide = (first << 1) | (last != first)  # the count, and whether the cell holds a step
    ladder = limit + (np.arange(len(limit), dtype=np.int64) << 33)[:, None]
    return PoissonTables(d, size, shift, ladder.reshape(-1), guide.reshape(-1), _thinning(d))


def _thinning(d: float) -> np.ndarray:
    """``ceil(2^32 P(N <= n))``, N ~ Poisson(d), n = 0 .. d + reach (the last 2^32)."""
    n = np.arange(int(math.ceil(d)) + _reach(d) + 1)
    cdf = np.cumsum(np.exp(n * math.log(d) - d - np.array([math.lgamma(v + 1) for v in n])))
    limit = np.ceil(np.minimum(cdf, 1.0) * 2.0**32).astype(np.int64)
    limit[-1] = 2**32
    return limit


def poisson_shot(values: np.ndarray, photons: float, words: np.ndarray, out: np.ndarray) -> None:
    """out = Poisson(photons values) / photons, one word per value (above :data:`MAX_PEAK`
    photons, numpy's Poisson sampler per row, seeded by the row's first word).

    Args:
        values: (N, n) float32 or float64, each in [0, 1].
        photons: the rate at value 1, > 0 (sets the tables, :func:`poisson_tables`).
        words: (N, k) uint64, k >= n; value i of row b uses ``words[b, i]`` only.
        out: (N, n) float32 or float64, C-contiguous, written (rates, counts and the
            division in float64).

    Raises:
        ValueError: ``out`` is not C-contiguous (its flat view would be a copy).
    """
    if not out.flags.c_contiguous:
        raise ValueError("out must be C-contiguous: pass np.ascontiguousarray's result and copy "
                         "it back")
    if photons > MAX_PEAK:  # tables too large: numpy's sampler, seeded by each row's first word
        for row, seed in enumerate(words[:, 0].tolist()):
            rng = np.random.Generator(np.random.SFC64(seed))
            counts = rng.poisson(np.multiply(values[row], float(photons), dtype=np.float64))
            np.divide(counts, float(photons), out=out[row], casting="unsafe")
        return
    tables = poisson_tables(float(photons))
    n = values.shape[1]
    flat_values = np.ascontiguousarray(values).reshape(-1)
    flat_words = np.ascontiguousarray(words[:, :n]).reshape(-1)
    flat_out = out.reshape(-1)  # a view: out is contiguous
    counts = np.empty(min(BLOCK, len(flat_values)), np.float64)
    grid = float(photons) / tables.spacing  # exact: the spacing is a power of two
    for start in range(0, len(flat_values), BLOCK):
        stop = min(len(flat_values), start + BLOCK)
        scaled = np.multiply(flat_values[start:stop], grid, dtype=np.float64)  # rate / d
        got = counts[: stop - start]
        _block(scaled, flat_words[start:stop], tables, got)
        np.divide(got, float(photons), out=flat_out[start:stop], casting="unsafe")


def _block(scaled: np.ndarray, words: np.ndarray, tables: PoissonTables, out: np.ndarray) -> None:
    """Counts for one block of rates / d into ``out``: the tabulated part, then the
    remainder's."""
    low = (words & np.uint64(0xFFFFFFFF)).view(np.int64)  # the low 32 bits
    row = np.floor(scaled)  # j <= J for a rate <= peak
    fraction = scaled - row  # r / d, in [0, 1)
    row = row.astype(np.int64)
    # tabulated part: the guide's count; where the word is not below its limit (a step of the
    # CDF inside the guide's cell), the count by binary search in the row
    guided = np.take(tables.guide, (row << (32 - tables.shift)) + (low >> tables.shift))
    count = guided >> 1
    stepped = np.flatnonzero(guided & 1)  # cells holding a step: the word may lie beyond it
    if stepped.size:
        key = (row[stepped] << 33) + low[stepped]
        base = row[stepped] * tables.size
        behind = np.flatnonzero(np.take(tables.ladder, base + count[stepped]) <= key)
        count[stepped[behind]] = (np.searchsorted(tables.ladder, key[behind], side="right")
                                  - base[behind])
    # remainder Poisson(r) by thinning Poisson(d): N = 1 keeps its event where the word's
    # place in N's cell is below r / d; N >= 2 (h >= thinning[1]) by a binomial inversion
    high = (words >> np.uint64(32)).view(np.int64)
    cells = tables.thinning
    place = high - cells[0]
    kept = (place >= 0) & (place < fraction * float(cells[1] - cells[0]))
    np.add(count, kept, out=out)
    beyond = np.flatnonzero(high >= cells[1])
    if beyond.size:
        out[beyond] = count[beyond] + _binomial(high[beyond], fraction[beyond], cells)


def _binomial(high: np.ndarray, fraction: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """Binomial(N, fraction) by inversion, N the cell of ``high`` (>= 2) in ``cells``, the
    uniform the word's place inside that cell."""
    events = np.searchsorted(cells, high, side="right")  # N: thresholds at or below the word
    lower = cells[events - 1]
    place = (high - lower) / (cells[events] - lower)  # in [0, 1)
    pmf = (1.0 - fraction) ** events  # P(K = 0)
    cdf = pmf.copy()
    kept = np.zeros(len(high), np.int64)
    odds = fraction / (1.0 - fraction)
    for k in range(int(events.max())):
        more = place >= cdf
        if not more.any():
            break
        kept += more
        pmf = pmf * ((events - k) / (k + 1)) * odds
        cdf += pmf
    return kept
