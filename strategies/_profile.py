"""How exit plugins read volume profiles: through the volume-profile handler on the context.

Internal: plugins import ``window`` and ``WindowProfile`` through ``strategies.api``.

Plugins ask ``window(ctx, start, stop)`` for the profile of bars ``[start, stop)``; the handler
(``indicators`` layer, found on ``ExitContext.handlers`` by its ``window_profile`` method)
computes it with the same kernels and mode as the per-bar columns, so backtests, alerts and the
UI agree. ``start``/``stop`` never pass the bar being processed (the store refuses it).
"""

from __future__ import annotations

from typing import Any, Protocol

from engine.errors import ConfigError
from engine.exits import ExitContext


class WindowProfile(Protocol):
    prices: Any  # bin centres
    volumes: Any
    poc: float
    poc_volume: float
    vah: float
    val: float
    hvns: tuple[float, ...]
    peaks: tuple[float, ...]

    def lvns(self) -> tuple[float, ...]: ...

    def two_peak_means(self) -> tuple[float, ...]: ...


def window(ctx: ExitContext, start: int, stop: int) -> WindowProfile:
    h = ctx.handler_with("window_profile")
    if h is None:
        raise ConfigError(
            "this exit strategy needs the volume profile: declare it (required_features "
            "returning [VOLUME_PROFILE], strategies.api) or add a feature "
            "{id: vp, kind: volume_profile} (configs/default.yaml has one)"
        )
    return h.window_profile(max(0, start), stop)
