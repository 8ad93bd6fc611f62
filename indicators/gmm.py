"""Gaussian-mixture nodes of a volume profile, fitted only when asked for.

The reference bot's recipe (scikit-learn's ``GaussianMixture`` on a synthetic sample), fitted
by the same EM in numba on the binned sample (``indicators.kernels.gmm``):

- **samples**: every non-empty bin contributes ``max(1, int(volume / total * 1000))`` copies of
  its price (about 1000 samples); at least 10 samples and 2 distinct prices are needed, else
  the result is empty (``GmmNodes.empty``). EM on ``c`` copies of a price is EM on that price
  with weight ``c``, so the fit runs on the bins with their counts;
- **mixture**: n = 2..5 components (never more than distinct prices), one variance each (in 1-D
  the reference's ``covariance_type="full"``), ``reg_covar`` 1e-6, ``tol`` 1e-3, at most 100
  EM iterations as scikit-learn's defaults, keeping the lowest BIC (``-2 log L + (3n - 1) log
  N``);
- **LVNs**: between each pair of adjacent component means (sorted), the minimum of the mixture
  density (a 65-point grid between the means, refined by a second 65-point grid around the
  best point: a resolution of 1/2048 of the gap between the means, far finer than a bin;
  ``indicators.kernels.gmm.lvns_nb``). A candidate is kept only where the profile is
  genuinely thin: the volume of the bin nearest to it, or of the nearest non-empty bin on its
  left or on its right, is <= the 25th percentile of the non-empty bins; and non-empty bins
  exist on both sides of that nearest bin;
- **two-component peaks** (trade targets): the sorted means of a 2-component fit on
  ``int(volume / total * 1000)`` copies per bin (bins that round to 0 left out), as the
  reference bot's ``find_dual_distribution_peaks``; when no bin rounds to 0 that sample is the
  one above, and the n = 2 fit already made is reused;
- **curves** for the UI on the bin prices, each scaled so its maximum equals the largest bin:
  ``curve`` (the two-component density, the reference bot's orange line) and
  ``mixture_curve`` (the BIC-chosen mixture).

**Why not scikit-learn at run time.** Its fit costs ~20-60 ms here, almost all per-call
overhead; a backtest asks for a trade setup on every signal (thousands on the real data) and the
exit plugins for LVNs on every trade, so the fits dominated a six-strategy run. The numba fit is
the same model and the same E and M steps (tested against scikit-learn step by step), from
deterministic k-means starts instead of seeded random ones: ~0.5 ms for all five fits, and on
real windows at least as likely as scikit-learn's fit in most cases
(``tests/indicators/test_gmm_kernel.py``). scikit-learn stays the test oracle. (Its ``diag``
path also fails on some real windows: a component on a single price gets a negative variance
from ``E[x^2] - E[x]^2`` at prices near 1e5.)

Determinism: no randomness at all, so the same profile always gives the same nodes.

Cost: well under a millisecond per window (``bench/bench_volume_profile.py``). Nodes are still
never computed per bar: ``GmmCache`` keeps them per window (start seq, stop seq, mode, bins),
and only a trade setup, the UI or an exit plugin asking for LVNs triggers a fit.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from indicators.kernels.gmm import gmm_fit_nb, lvns_nb
from indicators.kernels.volume_profile import hvn_threshold_nb

F64 = NDArray[np.float64]
SAMPLES = 1000
MIN_SAMPLES = 10
MIN_COMPONENTS = 2
MAX_COMPONENTS = 5
MAX_ITER = 100
TOL = 1e-3
REG_COVAR = 1e-6
LVN_GRID = 65
THIN_PCT = 25.0
_SQRT_2PI = math.sqrt(2.0 * math.pi)


@dataclass(frozen=True, eq=False)
class GmmNodes:
    """What the mixtures say about one profile; empty tuples and zero curves when no fit was
    possible (``n_components == 0``).

    Attributes:
        n_components: components of the BIC-chosen mixture (0: not fitted).
        means, stds, weights: its components, sorted by mean (prices, prices, fractions).
        bic: its BIC (NaN when not fitted).
        lvns: low-volume nodes, ascending prices.
        two_peak_means: the two-component fit's means, ascending (the reference bot's targets).
        curve: two-component density at the bin prices, scaled to the largest bin.
        mixture_curve: the chosen mixture's density at the bin prices, scaled the same way.
    """

    n_components: int
    means: tuple[float, ...]
    stds: tuple[float, ...]
    weights: tuple[float, ...]
    bic: float
    lvns: tuple[float, ...]
    two_peak_means: tuple[float, ...]
    curve: F64
    mixture_curve: F64

    @classmethod
    def empty(cls, bins: int) -> GmmNodes:
        z = np.zeros(bins)
        return cls(0, (), (), (), math.nan, (), (), z, z.copy())


def counts(volumes: F64, at_least_one: bool) -> F64:
    """The reference bot's synthetic sample as copies per bin: ``int(volume / total * 1000)``
    (at least one per non-empty bin when ``at_least_one``), as float64."""
    total = volumes.sum()
    if not total > 0:
        return np.zeros_like(volumes)
    c = (volumes / total * SAMPLES).astype(np.int64)
    if at_least_one:
        c = np.where(volumes > 0, np.maximum(c, 1), 0)
    return c.astype(np.float64)


def samples(prices: F64, volumes: F64, at_least_one: bool) -> F64:
    """The synthetic sample itself, ``counts`` copies of each bin's price (for scikit-learn)."""
    return np.repeat(prices, counts(volumes, at_least_one).astype(np.int64))


@dataclass(frozen=True)
class Mixture:
    """One fitted mixture, components sorted by mean."""

    means: F64
    stds: F64
    weights: F64
    bic: float


def fit_mixture(prices: F64, weights: F64, n: int) -> Mixture:
    """``n``-component mixture of ``prices`` with integer sample ``weights`` (``gmm_fit_nb``).

    Args:
        prices: ascending; weights: copies of each (only those > 0 are used).
        n: components, at most the number of prices with weight > 0.
    """
    keep = weights > 0
    x = np.ascontiguousarray(prices[keep], dtype=np.float64)
    w = np.ascontiguousarray(weights[keep], dtype=np.float64)
    mu, var, wt = np.empty(n), np.empty(n), np.empty(n)
    bic, _ = gmm_fit_nb(x, w, n, MAX_ITER, TOL, REG_COVAR, mu, var, wt)
    return Mixture(mu, np.sqrt(var), wt, float(bic))


def mixture_pdf(x: F64, means: F64, stds: F64, weights: F64) -> F64:
    """Density of a 1-D Gaussian mixture at ``x``."""
    z = (np.asarray(x, dtype=np.float64)[:, None] - means[None, :]) / stds[None, :]
    return (weights[None, :] * np.exp(-0.5 * z * z) / (stds[None, :] * _SQRT_2PI)).sum(axis=1)


def _scaled(dens: F64, volumes: F64) -> F64:
    top = dens.max() if dens.size else 0.0
    return dens / top * volumes.max() if top > 0 else np.zeros_like(dens)


def _lvns(prices: F64, volumes: F64, means: F64, stds: F64, weights: F64) -> tuple[float, ...]:
    thr = hvn_threshold_nb(volumes, THIN_PCT, np.empty(volumes.shape[0]))  # numpy.percentile
    out = np.empty(max(1, means.shape[0] - 1))
    n = lvns_nb(prices, volumes, np.ascontiguousarray(means), np.ascontiguousarray(stds),
                np.ascontiguousarray(weights), float(thr), LVN_GRID, out)
    return tuple(out[:n].tolist())


def fit_nodes(prices: F64, volumes: F64) -> GmmNodes:
    """Fit the mixtures to one profile and derive its nodes (module docstring).

    Args:
        prices: bin prices (centres), ascending.
        volumes: volume per bin (>= 0), same length.

    Returns:
        The nodes; ``GmmNodes.empty`` when the profile has fewer than 10 samples or a single
        distinct price (a degenerate window).
    """
    prices = np.ascontiguousarray(prices, dtype=np.float64)
    volumes = np.ascontiguousarray(volumes, dtype=np.float64)
    if prices.shape != volumes.shape or prices.ndim != 1:
        raise ValueError(f"prices and volumes must be 1-D of one length, got {prices.shape} and "
                         f"{volumes.shape}")
    empty = GmmNodes.empty(prices.shape[0])
    c1 = counts(volumes, at_least_one=True)
    distinct = np.unique(prices[c1 > 0]).size
    if c1.sum() < MIN_SAMPLES or distinct < MIN_COMPONENTS:
        return empty
    fits = {n: fit_mixture(prices, c1, n)
            for n in range(MIN_COMPONENTS, min(MAX_COMPONENTS, distinct) + 1)}
    best = min(fits.values(), key=lambda m: m.bic)  # the first (fewest components) on a tie
    c2 = counts(volumes, at_least_one=False)
    two: tuple[float, ...] = ()
    curve = np.zeros_like(prices)
    if c2.sum() >= MIN_SAMPLES and np.unique(prices[c2 > 0]).size >= 2:
        m2 = fits[2] if np.array_equal(c1, c2) else fit_mixture(prices, c2, 2)
        two = (float(m2.means[0]), float(m2.means[1]))
        curve = _scaled(mixture_pdf(prices, m2.means, m2.stds, m2.weights), volumes)
    mu, sd, w = best.means, best.stds, best.weights
    return GmmNodes(
        n_components=int(mu.shape[0]),
        means=tuple(float(m) for m in mu),
        stds=tuple(float(s) for s in sd),
        weights=tuple(float(v) for v in w),
        bic=best.bic,
        lvns=_lvns(prices, volumes, mu, sd, w),
        two_peak_means=two,
        curve=curve,
        mixture_curve=_scaled(mixture_pdf(prices, mu, sd, w), volumes),
    )


def two_peak_means(prices: F64, volumes: F64) -> tuple[float, ...]:
    """Just the two-component means of ``fit_nodes`` (the same fit, the same numbers): what a
    trade setup needs, at a fifth of the cost of all the nodes. Empty when not fittable."""
    prices = np.ascontiguousarray(prices, dtype=np.float64)
    c2 = counts(np.ascontiguousarray(volumes, dtype=np.float64), at_least_one=False)
    if c2.sum() < MIN_SAMPLES or np.unique(prices[c2 > 0]).size < 2:
        return ()
    c1 = counts(np.ascontiguousarray(volumes, dtype=np.float64), at_least_one=True)
    if np.unique(prices[c1 > 0]).size < MIN_COMPONENTS:
        return ()
    m2 = fit_mixture(prices, c2, 2)
    return (float(m2.means[0]), float(m2.means[1]))


class GmmCache:
    """Least-recently-used cache of ``fit_nodes`` results, keyed by window.

    ``fits`` counts the real fits, so a test can prove a backtest never fits per bar.
    """

    def __init__(self, maxsize: int = 256) -> None:
        self._d: OrderedDict[Hashable, GmmNodes] = OrderedDict()
        self._two: OrderedDict[Hashable, tuple[float, ...]] = OrderedDict()
        self.maxsize = maxsize
        self.fits = 0

    def __len__(self) -> int:
        return len(self._d)

    def get(self, key: Hashable, prices: F64, volumes: F64) -> GmmNodes:
        """Nodes of the profile known by ``key``, fitting it on the first request."""
        hit = self._d.get(key)
        if hit is not None:
            self._d.move_to_end(key)
            return hit
        nodes = fit_nodes(prices, volumes)
        self.fits += 1
        self._d[key] = nodes
        if len(self._d) > self.maxsize:
            self._d.popitem(last=False)
        return nodes

    def two_peak_means(self, key: Hashable, prices: F64, volumes: F64) -> tuple[float, ...]:
        """The two-component means of the profile known by ``key`` (from its nodes when they
        are cached, else from the one fit they need, cached too)."""
        nodes = self._d.get(key)
        if nodes is not None:
            return nodes.two_peak_means
        hit = self._two.get(key)
        if hit is not None:
            self._two.move_to_end(key)
            return hit
        two = two_peak_means(prices, volumes)
        self.fits += 1
        self._two[key] = two
        if len(self._two) > self.maxsize:
            self._two.popitem(last=False)
        return two
