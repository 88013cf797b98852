"""Poisson counts for a batch of rates in [0, ``peak``], by table inversion, from raw words.

``shot_noise`` needs Poisson(c x) for every value x of the batch, c the photon count at full
intensity. numpy's sampler (one call per image) costs about 75 ns a value on this machine; this
one does a fixed handful of whole-array steps instead. A Poisson variable splits exactly into
independent parts: Poisson(lam) = Poisson(j d) + Poisson(r) with lam = j d + r, 0 <= r < d,
so

- the first part is drawn by inversion of the tabulated CDF of Poisson(j d), j = 0 .. J
  (:func:`poisson_tables`): a guide table gives, for ``u`` in ``[m / M, (m + 1) / M)``, the
  smallest count the inversion can return (Chen and Asau's indexed search), and the count
  moves up while the CDF is below ``u`` (about one value in ten moves once, few move twice);
- the second by inversion of Poisson(r): counts 0 and 1 for every value by two thresholds
  (``exp(-r)``, ``exp(-r) (1 + r)``), higher counts, rare for ``r < d <= 1``, by a loop over the
  values that need them.

Each value takes one 64-bit word: its low 32 bits are the first inversion's uniform, its high
32 bits the second's (``(k + 1/2) / 2^32``), so an outcome of probability below 2^-32 per value
is not drawn (numpy's sampler: 2^-53). The counts are exact otherwise: the tables hold the
CDF in float64 up to a count whose tail beyond it is below 1e-17.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

#: guide cells per tabulated count at least (the guide has a power of two of cells)
GUIDE = 4
#: the grid's spacing d at most (finer for small peaks, so there are at most 1024 tables)
MAX_SPACING = 1.0
#: where a word's low and high 32 bits sit in its two uint32 halves, on this machine
_HALVES = [0, 1] if sys.byteorder == "little" else [1, 0]
#: values handled per step, so that the step's arrays stay in the core's cache
BLOCK = 32768


def grid_spacing(peak: float) -> float:
    """The spacing d of the tabulated rates for rates up to ``peak``: 1/4, or the power of two
    up to :data:`MAX_SPACING` that keeps the tables at most 1024 (a power of two: ``lam / d``
    is exact)."""
    d = 0.25
    while peak / d > 1024 and d < MAX_SPACING:
        d *= 2
    return d


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
        guide: ((J + 1) 2^(32 - shift),) int64, at ``j 2^(32 - shift) + m`` the count of word
            ``m << shift``, the smallest count of any word of cell m.
    """

    spacing: float
    size: int
    shift: int
    ladder: np.ndarray
    guide: np.ndarray


@lru_cache(maxsize=16)
def poisson_tables(peak: float) -> PoissonTables:
    """The tables for rates in [0, ``peak``] (cached per peak)."""
    d = grid_spacing(peak)
    rates = np.arange(int(math.floor(peak * (1 / d))) + 1) * d  # (J + 1,), as _block rounds
    size = int(math.ceil(peak + 14 * math.sqrt(peak) + 30))  # K: tail beyond < 1e-17
    k = np.arange(size)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_pmf = k * np.log(rates[:, None]) - rates[:, None] - np.array(
            [math.lgamma(v + 1) for v in k])
    log_pmf[0] = np.where(k == 0, 0.0, -np.inf)  # rate 0: always 0
    cdf = np.minimum(np.cumsum(np.exp(log_pmf), axis=1), 1.0)
    limit = np.ceil(cdf * 2.0**32).astype(np.int64)
    limit[:, -1] = 2**32
    shift = 32 - int(math.ceil(math.log2(GUIDE * size)))
    starts = np.arange(2 ** (32 - shift), dtype=np.int64) << shift
    guide = np.stack([np.searchsorted(row, starts, side="right") for row in limit])
    ladder = limit + (np.arange(len(limit), dtype=np.int64) << 33)[:, None]
    return PoissonTables(d, size, shift, ladder.reshape(-1), guide.reshape(-1))


def poisson_shot(values: np.ndarray, photons: float, words: np.ndarray, out: np.ndarray) -> None:
    """out = Poisson(photons values) / photons, one word per value.

    Args:
        values: (N, n) float32 or float64, each in [0, 1].
        photons: the rate at value 1, > 0 (sets the tables, :func:`poisson_tables`).
        words: (N, k) uint64, k >= n; value i of row b uses ``words[b, i]`` only.
        out: (N, n) float32 or float64, written (rates, counts and the division in float64).
    """
    tables = poisson_tables(float(photons))
    n = values.shape[1]
    flat_values = np.ascontiguousarray(values).reshape(-1)
    flat_words = np.ascontiguousarray(words[:, :n]).reshape(-1)
    flat_out = out.reshape(-1)  # a view: out is contiguous
    counts = np.empty(min(BLOCK, len(flat_values)), np.float64)
    for start in range(0, len(flat_values), BLOCK):
        stop = min(len(flat_values), start + BLOCK)
        lam = np.multiply(flat_values[start:stop], float(photons), dtype=np.float64)
        got = counts[: stop - start]
        _block(lam, flat_words[start:stop], tables, got)
        np.divide(got, float(photons), out=flat_out[start:stop], casting="unsafe")


def _block(lam: np.ndarray, words: np.ndarray, tables: PoissonTables, out: np.ndarray) -> None:
    """Counts for one block of rates into ``out``: the tabulated part, then the remainder's."""
    halves = words.view(np.uint32).reshape(-1, 2)[:, _HALVES]  # (low, high) 32 bits
    low = halves[:, 0].astype(np.int64)
    row = np.floor(lam * (1 / tables.spacing))  # <= J for lam <= peak (d a power of two)
    rest = lam - row * tables.spacing  # in [0, d)
    row = row.astype(np.int64)
    # tabulated part: the guide's count; where the word is not below its limit (a step of the
    # CDF inside the guide's cell), the count by binary search in the row
    count = np.take(tables.guide, (row << (32 - tables.shift)) + (low >> tables.shift))
    key = (row << 33) + low
    base = row * tables.size
    behind = np.flatnonzero(np.take(tables.ladder, base + count) <= key)
    if behind.size:
        count[behind] = np.searchsorted(tables.ladder, key[behind], side="right") - base[behind]
    # remainder Poisson(r), r < d: counts 0 and 1 by two thresholds on the high word
    high = halves[:, 1] + 0.5  # float64
    term = np.exp(-rest) * 2.0**32  # 2^32 P(0)
    total = term.copy()
    np.add(count, high > total, out=out)
    term *= rest  # 2^32 P(1)
    total += term
    beyond = np.flatnonzero(high > total)
    out[beyond] += 1
    term, total, rest, high, k = term[beyond], total[beyond], rest[beyond], high[beyond], 1
    while beyond.size:  # counts 2, 3, ... for the few values beyond
        k += 1
        term = term * rest / k
        total = total + term
        more = high > total
        beyond, term, total, rest, high = (beyond[more], term[more], total[more], rest[more],
                                           high[more])
        out[beyond] += 1
