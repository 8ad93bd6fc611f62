"""The volume profile, one module per piece (find it by name):

- ``indicators.profile.columns``: the array API, per-bar levels for a whole series
  (``volume_profile``, ``profile_columns``, ``ProfileColumns``);
- ``indicators.profile.window``: one window's full profile (``window_profile``,
  ``WindowProfile``: prices, volumes, POC, VAH, VAL, HVNs, peaks, GMM nodes on request);
- ``indicators.profile.targets``: a signal's trade setup from a window (``trade_setup``,
  ``ranked_targets``, ``target_candidates``, ``TradeSetupLevels``);
- ``indicators.profile.handler``: the bus handler ``VolumeProfileHandler`` (entry point
  ``volume_profile`` of ``tradebot.feature_handlers``).

The algorithm (window, grid, the two ways to place volume, POC, value area, HVNs, peaks,
degenerate windows, the rolling update) is written once, in ``indicators.kernels.volume_profile``;
the Gaussian-mixture nodes in ``indicators.gmm``; what the levels mean for a trader in
``docs/volume-profile.md``.

```python
from indicators.profile import volume_profile, window_profile, trade_setup
cols = volume_profile(high, low, close, volume, lookback=200, bins=80, mode="close")
cols.poc, cols.vah, cols.val          # per-bar arrays, NaN during warm-up
p = window_profile(high, low, close, volume, start=i - 200, stop=i, mode="range")
p.prices, p.volumes, p.poc, p.vah, p.val, p.hvns, p.peaks     # on the spot
p.lvns(), p.two_peak_means(), p.curve()                       # GMM, fitted on first request
setup = trade_setup(p, "long", entry=close[i], atr=atr14[i])  # stop, targets, arrays
```
"""

from __future__ import annotations

from indicators.profile.columns import Mode, ProfileColumns, profile_columns, volume_profile
from indicators.profile.handler import VolumeProfileHandler, VolumeProfileParams, warm_up_kernels
from indicators.profile.targets import (
    TargetSource,
    TradeSetupLevels,
    ranked_targets,
    target_candidates,
    trade_setup,
)
from indicators.profile.window import WindowProfile, window_profile

__all__ = [
    "Mode",
    "ProfileColumns",
    "TargetSource",
    "TradeSetupLevels",
    "VolumeProfileHandler",
    "VolumeProfileParams",
    "WindowProfile",
    "profile_columns",
    "ranked_targets",
    "target_candidates",
    "trade_setup",
    "volume_profile",
    "warm_up_kernels",
    "window_profile",
]
