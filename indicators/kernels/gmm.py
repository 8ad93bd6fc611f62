"""1-D Gaussian mixtures fitted by EM on a binned sample (numba).

The volume-profile nodes (``indicators.gmm``) fit mixtures to the reference bot's synthetic
sample: ``c_j`` copies of bin price ``x_j``. EM on that sample depends on it only through the
pairs ``(x_j, c_j)``, so it runs here on the bins with integer weights: the same E and M steps
as ``sklearn.mixture.GaussianMixture`` on the repeated sample (``covariance_type`` "diag", which
in one dimension is "full"; ``reg_covar`` added to each variance; convergence when the mean
log-likelihood per sample changes by less than ``tol``; at most ``max_iter`` iterations), at
O(bins · components) per iteration instead of O(samples · components) plus scikit-learn's
per-call overhead: tens of microseconds per fit instead of tens of milliseconds.

**Initialisation** (where it differs from scikit-learn, whose k-means starts from random
seeded centres): a weighted k-means (Lloyd) on the bins, iterated until the assignment stops
changing, whose labels give the one-hot responsibilities of the first M step, as in
scikit-learn; it is run from three deterministic starts (weighted quantiles, evenly spaced
prices, a deterministic k-means++) and the EM fit with the highest likelihood is kept. Same data,
same result, no seed needed. EM has local optima: from different starts two fits of one profile
can differ, more so with more components; ``tests/indicators/test_gmm_kernel.py`` measures the
agreement with scikit-learn on real profiles and that ours is at least as likely.

BIC: ``-2 · log-likelihood + (3n - 1) · log(N)`` with ``N`` the sample size (n means, n
variances, n - 1 free weights), as scikit-learn counts them in one dimension.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

_LOG_2PI = math.log(2.0 * math.pi)


@njit(cache=True, nogil=True)
def _quantile_start_nb(x: np.ndarray, w: np.ndarray, n: int, centres: np.ndarray) -> None:
    """Centres at the weighted (k + 0.5) / n quantiles."""
    m = x.shape[0]
    total = 0.0
    for j in range(m):
        total += w[j]
    k = 0
    acc = 0.0
    for j in range(m):
        acc += w[j]
        while k < n and acc >= (k + 0.5) / n * total:
            centres[k] = x[j]
            k += 1
    while k < n:
        centres[k] = x[m - 1]
        k += 1


@njit(cache=True, nogil=True)
def _farthest_start_nb(x: np.ndarray, w: np.ndarray, n: int, centres: np.ndarray) -> None:
    """A deterministic k-means++: the heaviest bin first, then each time the bin maximising
    weight x squared distance to its nearest centre."""
    m = x.shape[0]
    best = 0
    for j in range(1, m):
        if w[j] > w[best]:
            best = j
    centres[0] = x[best]
    for k in range(1, n):
        best = 0
        score = -1.0
        for j in range(m):
            d = np.inf
            for c in range(k):
                d = min(d, (x[j] - centres[c]) ** 2)
            if w[j] * d > score:
                score = w[j] * d
                best = j
        centres[k] = x[best]


@njit(cache=True, nogil=True)
def _start_nb(x: np.ndarray, w: np.ndarray, n: int, how: int, centres: np.ndarray) -> None:
    """k-means starting centres: 0 = weighted quantiles; 1 = evenly spaced over the price
    range; 2 = deterministic k-means++ (``_farthest_start_nb``)."""
    if how == 0:
        _quantile_start_nb(x, w, n, centres)
    elif how == 1:
        m = x.shape[0]
        for k in range(n):
            centres[k] = x[0] + (x[m - 1] - x[0]) * (k + 0.5) / n
    else:
        _farthest_start_nb(x, w, n, centres)


@njit(cache=True, nogil=True)
def _kmeans_labels_nb(x: np.ndarray, w: np.ndarray, n: int, how: int,
                      labels: np.ndarray) -> None:
    """Weighted 1-D Lloyd k-means of points ``x`` (ascending) with weights ``w`` into
    ``labels``, from the starting centres ``_start_nb(how)``."""
    m = x.shape[0]
    centres = np.empty(n)
    _start_nb(x, w, n, how, centres)
    for j in range(m):
        labels[j] = -1
    sums = np.empty(n)
    wts = np.empty(n)
    for _ in range(300):
        changed = False
        for j in range(m):
            best = 0
            bd = abs(x[j] - centres[0])
            for c in range(1, n):
                d = abs(x[j] - centres[c])
                if d < bd:
                    bd = d
                    best = c
            if labels[j] != best:
                labels[j] = best
                changed = True
        if not changed:
            break
        sums[:] = 0.0
        wts[:] = 0.0
        for j in range(m):
            sums[labels[j]] += w[j] * x[j]
            wts[labels[j]] += w[j]
        for c in range(n):
            if wts[c] > 0:
                centres[c] = sums[c] / wts[c]


@njit(cache=True, nogil=True)
def _m_step_nb(x: np.ndarray, w: np.ndarray, resp: np.ndarray, reg: float, means: np.ndarray,
               var: np.ndarray, weights: np.ndarray) -> None:
    m, n = resp.shape
    total = 0.0
    for j in range(m):
        total += w[j]
    for c in range(n):
        nk = 10.0 * np.finfo(np.float64).eps
        s = 0.0
        for j in range(m):
            r = w[j] * resp[j, c]
            nk += r
            s += r * x[j]
        mu = s / nk
        v = 0.0
        for j in range(m):
            d = x[j] - mu
            v += w[j] * resp[j, c] * d * d
        means[c] = mu
        var[c] = v / nk + reg
        weights[c] = nk / total
    # scikit-learn normalises the weights by their sum (nk includes the 10 eps)
    s = 0.0
    for c in range(n):
        s += weights[c]
    for c in range(n):
        weights[c] /= s


@njit(cache=True, nogil=True)
def _e_step_nb(x: np.ndarray, w: np.ndarray, means: np.ndarray, var: np.ndarray,
               weights: np.ndarray, resp: np.ndarray) -> float:
    """Responsibilities into ``resp``; returns the total weighted log-likelihood."""
    m, n = resp.shape
    ll = 0.0
    for j in range(m):
        top = -np.inf
        for c in range(n):
            d = x[j] - means[c]
            lp = math.log(weights[c]) - 0.5 * (_LOG_2PI + math.log(var[c]) + d * d / var[c])
            resp[j, c] = lp
            if lp > top:
                top = lp
        s = 0.0
        for c in range(n):
            s += math.exp(resp[j, c] - top)
        lse = top + math.log(s)
        for c in range(n):
            resp[j, c] = math.exp(resp[j, c] - lse)
        ll += w[j] * lse
    return ll


@njit(cache=True, nogil=True)
def _fit_once_nb(x: np.ndarray, w: np.ndarray, n: int, how: int, max_iter: int, tol: float,
                 reg: float, means: np.ndarray, var: np.ndarray,
                 weights: np.ndarray) -> tuple[float, int]:
    """EM from the k-means start ``how``; returns (total log-likelihood, iterations)."""
    m = x.shape[0]
    labels = np.empty(m, np.int64)
    _kmeans_labels_nb(x, w, n, how, labels)
    resp = np.zeros((m, n))
    for j in range(m):
        resp[j, labels[j]] = 1.0
    total = 0.0
    for j in range(m):
        total += w[j]
    _m_step_nb(x, w, resp, reg, means, var, weights)
    lower = -np.inf
    it = 0
    while it < max_iter:
        it += 1
        prev = lower
        ll = _e_step_nb(x, w, means, var, weights, resp)
        _m_step_nb(x, w, resp, reg, means, var, weights)
        lower = ll / total
        if abs(lower - prev) < tol:
            break
    # as scikit-learn: the fit is the last M step's parameters, scored by one more E step
    return _e_step_nb(x, w, means, var, weights, resp), it


N_STARTS = 3


@njit(cache=True, nogil=True)
def gmm_fit_nb(x: np.ndarray, w: np.ndarray, n: int, max_iter: int, tol: float, reg: float,
               means: np.ndarray, var: np.ndarray, weights: np.ndarray) -> tuple[float, int]:
    """Fit an ``n``-component mixture to points ``x`` (ascending) with sample counts ``w``:
    EM from each of the ``N_STARTS`` deterministic k-means starts (``_start_nb``), keeping the
    highest likelihood (the first on a tie).

    Args:
        x: bin prices, ascending; w: copies of each (>= 0, total > 0).
        n: components (>= 1, <= number of points with w > 0).
        max_iter, tol, reg: EM limits and the variance floor (scikit-learn's ``reg_covar``).
        means, var, weights: float64[n], receive the fit (sorted by mean).

    Returns:
        ``(bic, iterations of the kept fit)``.
    """
    total = 0.0
    for j in range(x.shape[0]):
        total += w[j]
    mu = np.empty(n)
    va = np.empty(n)
    wt = np.empty(n)
    best = -np.inf
    best_it = 0
    for how in range(N_STARTS):
        ll, it = _fit_once_nb(x, w, n, how, max_iter, tol, reg, mu, va, wt)
        if ll > best:
            best = ll
            best_it = it
            means[:] = mu
            var[:] = va
            weights[:] = wt
    order = np.argsort(means)
    means[:] = means[order]
    var[:] = var[order]
    weights[:] = weights[order]
    return -2.0 * best + (3 * n - 1) * math.log(total), best_it


# -- low-volume nodes ------------------------------------------------------------------------------
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


@njit(cache=True, nogil=True, inline="always")
def _pdf_nb(x: float, means: np.ndarray, stds: np.ndarray, weights: np.ndarray) -> float:
    d = 0.0
    for c in range(means.shape[0]):
        z = (x - means[c]) / stds[c]
        d += weights[c] * math.exp(-0.5 * z * z) / stds[c]
    return d * _INV_SQRT_2PI


@njit(cache=True, nogil=True)
def density_minimum_nb(a: float, b: float, means: np.ndarray, stds: np.ndarray,
                       weights: np.ndarray, grid: int) -> float:
    """Where the mixture density is lowest on [a, b]: ``grid`` evenly spaced points, then as
    many across the two cells around the best one (the first best on ties)."""
    step = (b - a) / (grid - 1)
    best_k = 0
    best = np.inf
    for k in range(grid):
        d = _pdf_nb(a + step * k, means, stds, weights)
        if d < best:
            best = d
            best_k = k
    lo = a + step * max(0, best_k - 1)
    hi = a + step * min(grid - 1, best_k + 1)
    fine = (hi - lo) / (grid - 1)
    best = np.inf
    x_best = lo
    for k in range(grid):
        x = lo + fine * k
        d = _pdf_nb(x, means, stds, weights)
        if d < best:
            best = d
            x_best = x
    return x_best


@njit(cache=True, nogil=True)
def is_thin_nb(prices: np.ndarray, volumes: np.ndarray, price: float, thr: float) -> bool:
    """The LVN test around ``price``: the nearest bin (the first on ties) has traded bins on both
    sides, and it or the nearest traded bin on either side holds <= ``thr``."""
    m = prices.shape[0]
    j = 0
    bd = abs(prices[0] - price)
    for i in range(1, m):
        d = abs(prices[i] - price)
        if d < bd:
            bd = d
            j = i
    left = -1
    for i in range(j - 1, -1, -1):
        if volumes[i] > 0:
            left = i
            break
    right = -1
    for i in range(j + 1, m):
        if volumes[i] > 0:
            right = i
            break
    if left < 0 or right < 0:
        return False
    return volumes[j] <= thr or volumes[left] <= thr or volumes[right] <= thr


@njit(cache=True, nogil=True)
def lvns_nb(prices: np.ndarray, volumes: np.ndarray, means: np.ndarray, stds: np.ndarray,
            weights: np.ndarray, thr: float, grid: int, out: np.ndarray) -> int:
    """Low-volume nodes into ``out`` (ascending; returns how many): between each pair of
    adjacent means (sorted), the density minimum (``density_minimum_nb``) where the profile is
    thin (``is_thin_nb`` with the volume threshold ``thr``)."""
    n = 0
    for c in range(means.shape[0] - 1):
        a, b = means[c], means[c + 1]
        if not b > a:
            continue
        p = density_minimum_nb(a, b, means, stds, weights, grid)
        if is_thin_nb(prices, volumes, p, thr):
            out[n] = p
            n += 1
    return n
