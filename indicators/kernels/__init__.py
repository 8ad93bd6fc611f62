"""Numba kernels: arithmetic only (STYLE section 5).

Every public kernel ends in ``_nb`` and comes in two forms that agree bit for bit:

- a whole-array form (``stoch_nb``, ``atr_nb``, ``linreg_nb``, ...) writing into
  preallocated ``out`` arrays, used by ``precompute`` and the array API;
- a per-bar form (``*_update_nb`` or ``*_push_nb``) over a small state made by ``*_state_nb``,
  used by the bus handlers for each closed bar.

Modules: ``rolling`` (max, min, mean), ``stoch`` (stochastic oscillator), ``atr`` (average
true range), ``linreg`` (rolling regression and the reference bot's slope rule),
``volume_profile`` (histogram, POC, value area, HVNs, peaks; one window with ``profile_nb`` +
``levels_nb``, or rolling with ``rolling_profile_nb``, whose one kernel serves the whole
history, a single bar and a catch-up alike, its state carried between calls) and ``peaks``
(``scipy.signal.find_peaks`` rules). Validation, dtype conversion and parameter choice live in
``indicators.api``, ``indicators.handlers`` and ``indicators.profile``; the
Gaussian-mixture nodes (scikit-learn, not numba) in ``indicators.gmm``.
"""

# engine sets NUMBA_CACHE_DIR's default before numba is first imported (engine/cache.py)
import engine as _engine  # noqa: F401
