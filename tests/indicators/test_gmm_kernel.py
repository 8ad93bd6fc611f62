"""The numba binned-EM mixture fit against scikit-learn on the repeated sample."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from indicators.kernels.gmm import _e_step_nb, _m_step_nb, gmm_fit_nb
from indicators.profile import window_profile


def _fit(x, w, n):
    mu, var, wt = np.empty(n), np.empty(n), np.empty(n)
    bic, it = gmm_fit_nb(np.asarray(x, float), np.asarray(w, float), n, 100, 1e-3, 1e-6, mu, var,
                         wt)
    return bic, it, mu, var, wt


def _sk(x, w, n):
    from sklearn.mixture import GaussianMixture

    s = np.repeat(np.asarray(x, float), np.asarray(w, int)).reshape(-1, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gm = GaussianMixture(n, covariance_type="full", random_state=42, max_iter=100).fit(s)
    return gm, s


def test_em_steps_equal_sklearn_on_the_repeated_sample():
    # one E and one M step from the same parameters: binned with counts == repeated sample
    from sklearn.mixture import GaussianMixture

    rng = np.random.default_rng(3)
    x = np.sort(rng.uniform(100, 120, 40))
    w = rng.integers(0, 30, 40).astype(float)
    means, var, wt = np.array([105.0, 115.0]), np.array([4.0, 9.0]), np.array([0.4, 0.6])
    resp = np.empty((40, 2))
    ll = _e_step_nb(x, w, means, var, wt, resp)
    s = np.repeat(x, w.astype(int)).reshape(-1, 1)
    gm = GaussianMixture(2, covariance_type="full")
    gm.means_, gm.covariances_, gm.weights_ = means[:, None], var[:, None, None], wt
    gm.precisions_cholesky_ = 1 / np.sqrt(var)[:, None, None]
    assert ll == pytest.approx(gm.score(s) * s.shape[0], rel=1e-12)
    m2, v2, w2 = np.empty(2), np.empty(2), np.empty(2)
    _m_step_nb(x, w, resp, 1e-6, m2, v2, w2)
    gm._m_step(s, np.log(np.repeat(resp, w.astype(int), axis=0)))
    np.testing.assert_allclose(m2, gm.means_[:, 0], rtol=1e-12)
    np.testing.assert_allclose(v2, gm.covariances_.reshape(-1), rtol=1e-9)
    np.testing.assert_allclose(w2, gm.weights_, rtol=1e-12)


def test_two_clear_humps_are_found_with_their_weights():
    x = np.linspace(90, 130, 81)
    dens = 0.6 * np.exp(-0.5 * ((x - 100) / 2) ** 2) + 0.4 * np.exp(-0.5 * ((x - 120) / 3) ** 2)
    w = np.floor(dens / dens.sum() * 5000)
    bic, it, mu, var, wt = _fit(x, w, 2)
    assert mu == pytest.approx([100, 120], abs=0.2)
    assert np.sqrt(var) == pytest.approx([2, 3], abs=0.2)
    assert wt == pytest.approx([0.6 * 2 / (0.6 * 2 + 0.4 * 3), 0.4 * 3 / (0.6 * 2 + 0.4 * 3)],
                               abs=0.02)
    assert 1 <= it < 100 and math.isfinite(bic)


def test_deterministic_and_sorted():
    rng = np.random.default_rng(5)
    x = np.sort(rng.uniform(0, 1, 80))
    w = rng.integers(0, 50, 80).astype(float)
    a, b = _fit(x, w, 4), _fit(x, w, 4)
    assert a[0] == b[0] and np.array_equal(a[2], b[2]) and np.array_equal(a[3], b[3])
    assert np.all(np.diff(a[2]) >= 0) and a[4].sum() == pytest.approx(1.0)


def test_against_sklearn_on_real_profiles(real_bars):
    """Same model, same data: on real windows our fit is at least as likely as scikit-learn's
    in most windows, and the 2-component means (the trade targets) mostly coincide."""
    b = real_bars
    rng = np.random.default_rng(11)
    close2, better = [], []
    for i in rng.integers(300, len(b.close), 25):
        p = window_profile(b.high, b.low, b.close, b.volume, int(i) - 200, int(i))
        counts = np.maximum((p.volumes / p.volumes.sum() * 1000).astype(np.int64),
                            (p.volumes > 0).astype(np.int64))
        keep = counts > 0
        x, w = p.prices[keep], counts[keep].astype(float)
        step = p.prices[1] - p.prices[0]
        for n in (2, 3):
            bic, _, mu, _, _ = _fit(x, w, n)
            gm, s = _sk(x, w, n)
            better.append(bic <= gm.bic(s) + 1e-6 * abs(bic))
            if n == 2:
                close2.append(np.max(np.abs(np.sort(gm.means_[:, 0]) - mu)) < step)
    assert np.mean(close2) >= 0.7, np.mean(close2)
    assert np.mean(better) >= 0.6, np.mean(better)


def test_two_peak_shortcut_equals_the_full_nodes(real_bars):
    from indicators.gmm import GmmCache, fit_nodes, two_peak_means

    b = real_bars
    for i in (1_000, 20_000, 45_000, 69_000):
        for mode in ("close", "range"):
            p = window_profile(b.high, b.low, b.close, b.volume, i - 200, i, mode=mode)
            full = fit_nodes(p.prices, p.volumes).two_peak_means
            assert len(full) == 2 and two_peak_means(p.prices, p.volumes) == full
            cache = GmmCache()
            assert cache.two_peak_means("w", p.prices, p.volumes) == full and cache.fits == 1
            cache.get("w", p.prices, p.volumes)  # the nodes now answer for the same window
            assert cache.two_peak_means("w", p.prices, p.volumes) == full and cache.fits == 2
