"""Gaussian-mixture nodes of a volume profile (scikit-learn), fitted only when asked for.

The reference bot's recipe, seeded, so the same profile always gives the same nodes:

- **samples**: every non-empty bin contributes ``max(1, int(volume / total * 1000))`` copies of
  its price (about 1000 samples); at least 10 samples and 2 distinct prices are needed, else
  the result is empty (``GmmNodes.empty``);
- **mixture**: ``GaussianMixture(n, random_state=42, max_iter=100)`` for n = 2..5 (never more
  components than distinct prices), keeping the lowest BIC. The reference bot asked for
  ``covariance_type="full"``; on 1-D data a full, a diagonal and a spherical covariance are the
  same model (one variance per component, the same parameter count for the BIC), so
  ``"diag"`` is used, whose code path in scikit-learn is about a third faster;
- **LVNs**: between each pair of adjacent component means (sorted), the minimum of the mixture
  density (bounded scalar minimisation). A candidate is kept only where the profile is
  genuinely thin: the volume of the bin nearest to it, or of the nearest non-empty bin on its
  left or on its right, is <= the 25th percentile of the non-empty bins; and non-empty bins
  exist on both sides of that nearest bin;
- **two-component peaks** (trade targets): the sorted means of a 2-component fit on
  ``int(volume / total * 1000)`` copies per bin (bins that round to 0 left out), as the
  reference bot's ``find_dual_distribution_peaks``; when no bin rounds to 0 that sample is the
  one above, and the n = 2 fit already made is reused (same data, same seed: the same fit);
- **curves** for the UI on the bin prices, each scaled so its maximum equals the largest bin:
  ``curve`` (the two-component density, the reference bot's orange line) and
  ``mixture_curve`` (the BIC-chosen mixture).

Determinism: every fit uses ``random_state=42`` and runs with BLAS/OpenMP limited to one thread
(``threadpoolctl``). One thread also matters for speed: on a busy 2-core machine scikit-learn's
k-means initialisation with its default threads took ~0.5-1 s per profile instead of ~0.1 s.

scikit-learn and scipy are imported on the first fit, not with the module, so importing
``indicators`` stays cheap (scikit-learn alone takes seconds to import).

Cost: about five small EM fits, tens of milliseconds (``bench/bench_volume_profile.py``). So
nodes are never computed per bar: ``GmmCache`` keeps them per window (start seq, stop seq, mode,
bins), and only a trade setup, the UI or an exit plugin asking for LVNs triggers a fit.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    from sklearn.mixture import GaussianMixture

F64 = NDArray[np.float64]
SEED = 42
SAMPLES = 1000
MIN_SAMPLES = 10
MIN_COMPONENTS = 2
MAX_COMPONENTS = 5
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


def samples(prices: F64, volumes: F64, at_least_one: bool) -> F64:
    """The reference bot's synthetic sample: ``int(volume / total * 1000)`` copies of each bin's
    price (at least one per non-empty bin when ``at_least_one``)."""
    total = volumes.sum()
    if not total > 0:
        return np.empty(0)
    counts = (volumes / total * SAMPLES).astype(np.int64)
    if at_least_one:
        counts = np.where(volumes > 0, np.maximum(counts, 1), 0)
    return np.repeat(prices, counts)


_CONTROLLER: list[object] = []


def _one_thread():  # type: ignore[no-untyped-def]
    """Limit BLAS/OpenMP to one thread for the fits. The ``ThreadpoolController`` is made once,
    after scikit-learn is imported (a fresh ``threadpool_limits`` rescans every loaded library,
    ~6 ms a call here, a fifth of a fit)."""
    if not _CONTROLLER:
        import sklearn.mixture  # noqa: F401 - load its native libraries before the scan
        from threadpoolctl import ThreadpoolController

        _CONTROLLER.append(ThreadpoolController())
    return _CONTROLLER[0].limit(limits=1)  # type: ignore[attr-defined]


def _fit(x: F64, n: int) -> GaussianMixture:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import GaussianMixture

    with warnings.catch_warnings():
        # max_iter=100 as the reference; a fit stopping there is still a usable mixture
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm = GaussianMixture(n, covariance_type="diag", random_state=SEED, max_iter=100)
        return gm.fit(x.reshape(-1, 1))


def _components(gm: GaussianMixture) -> tuple[F64, F64, F64]:
    """(means, stds, weights) sorted by mean."""
    mu = gm.means_[:, 0]
    order = np.argsort(mu, kind="stable")
    sd = np.sqrt(gm.covariances_.reshape(-1))
    return mu[order], sd[order], gm.weights_[order]


def mixture_pdf(x: F64, means: F64, stds: F64, weights: F64) -> F64:
    """Density of a 1-D Gaussian mixture at ``x``."""
    z = (np.asarray(x, dtype=np.float64)[:, None] - means[None, :]) / stds[None, :]
    return (weights[None, :] * np.exp(-0.5 * z * z) / (stds[None, :] * _SQRT_2PI)).sum(axis=1)


def _scaled(dens: F64, volumes: F64) -> F64:
    top = dens.max() if dens.size else 0.0
    return dens / top * volumes.max() if top > 0 else np.zeros_like(dens)


def _is_thin(prices: F64, volumes: F64, price: float, thr: float) -> bool:
    """The reference bot's LVN test around ``price`` (module docstring)."""
    j = int(np.argmin(np.abs(prices - price)))
    nonempty = np.flatnonzero(volumes > 0)
    left = nonempty[nonempty < j]
    right = nonempty[nonempty > j]
    if left.size == 0 or right.size == 0:
        return False
    return bool(volumes[j] <= thr or volumes[left[-1]] <= thr or volumes[right[0]] <= thr)


def _lvns(prices: F64, volumes: F64, means: F64, stds: F64, weights: F64) -> tuple[float, ...]:
    from scipy.optimize import minimize_scalar

    thr = float(np.percentile(volumes[volumes > 0], THIN_PCT))
    found = []
    for a, b in itertools.pairwise(means):
        if not b > a:
            continue
        res = minimize_scalar(
            lambda p: float(mixture_pdf(np.array([p]), means, stds, weights)[0]),
            bounds=(float(a), float(b)), method="bounded")
        if _is_thin(prices, volumes, float(res.x), thr):
            found.append(float(res.x))
    return tuple(found)


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
    x = samples(prices, volumes, at_least_one=True)
    distinct = np.unique(x).size
    if x.size < MIN_SAMPLES or distinct < MIN_COMPONENTS:
        return empty
    with _one_thread():
        best: GaussianMixture | None = None
        best_bic = math.inf
        fits: dict[int, GaussianMixture] = {}
        for n in range(MIN_COMPONENTS, min(MAX_COMPONENTS, distinct) + 1):
            gm = fits[n] = _fit(x, n)
            bic = float(gm.bic(x.reshape(-1, 1)))
            if bic < best_bic:
                best, best_bic = gm, bic
        assert best is not None
        mu, sd, w = _components(best)
        x2 = samples(prices, volumes, at_least_one=False)
        two: tuple[float, ...] = ()
        curve = np.zeros_like(prices)
        if x2.size >= MIN_SAMPLES and np.unique(x2).size >= 2:
            same = x2.shape == x.shape and bool(np.array_equal(x2, x))
            mu2, sd2, w2 = _components(fits[2] if same else _fit(x2, 2))
            two = (float(mu2[0]), float(mu2[1]))
            curve = _scaled(mixture_pdf(prices, mu2, sd2, w2), volumes)
    return GmmNodes(
        n_components=int(best.n_components),
        means=tuple(float(m) for m in mu),
        stds=tuple(float(s) for s in sd),
        weights=tuple(float(v) for v in w),
        bic=best_bic,
        lvns=_lvns(prices, volumes, mu, sd, w),
        two_peak_means=two,
        curve=curve,
        mixture_curve=_scaled(mixture_pdf(prices, mu, sd, w), volumes),
    )


class GmmCache:
    """Least-recently-used cache of ``fit_nodes`` results, keyed by window.

    ``fits`` counts the real fits, so a test can prove a backtest never fits per bar.
    """

    def __init__(self, maxsize: int = 256) -> None:
        self._d: OrderedDict[Hashable, GmmNodes] = OrderedDict()
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
