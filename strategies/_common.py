"""Rules shared by several exit plugins (long rule; shorts mirror through ``sign``).

Internal: plugins import these through ``strategies.api``."""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field

from engine.exits import ExitContext, MoveStop, PositionView
from strategies._profile import window


class PluginParams(BaseModel):
    """A plugin's params base: unknown keys are refused (a typo never silently defaults), and
    params are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ExitParams(PluginParams):
    """Parameters every built-in exit strategy shares (the reference bot's numbers)."""

    lookback: int = Field(default=200, ge=10, description="profile bars for targets and trails")
    trail_every_bars: int = Field(default=10, ge=1)
    trail_buffer_pct: float = Field(default=1.0, ge=0)
    max_hold_bars: int = Field(default=672, ge=1, description="7 days of 15m bars")


def beyond(price: float, entry: float, sign: int, pct: float) -> bool:
    """``price`` is more than ``pct`` % beyond ``entry`` in the trade's favour."""
    return sign * (price - entry * (1 + sign * pct / 100)) > 0


def first_beyond(prices: list[float] | tuple[float, ...], entry: float, sign: int,
                 pct: float) -> float:
    """The nearest level beyond ``entry`` by more than ``pct`` %, or NaN."""
    cands = sorted((p for p in prices if beyond(p, entry, sign, pct)), key=lambda p: sign * p)
    return cands[0] if cands else math.nan


def tighter(new: float, old: float, sign: int) -> bool:
    """A long's stop moves only up, a short's only down."""
    return math.isfinite(new) and (not math.isfinite(old) or sign * (new - old) > 0)


def is_tick(seq: int, since: int, every: int) -> bool:
    """Trailing ticks: on bar ``since`` and every ``every`` bars after it."""
    return since >= 0 and seq >= since and (seq - since) % every == 0


def hvn_trail(ctx: ExitContext, pos: PositionView, seq: int, close: float, lookback: int,
              buffer_pct: float, reason: str = "TRAIL_STOP",
              floor: float = math.nan) -> MoveStop | None:
    """Move the stop to the nearest HVN behind the price by more than ``buffer_pct`` %
    (long: the highest HVN below close·(1 - buffer)), if that tightens it (and clears
    ``floor``, a level the new stop must also be beyond)."""
    s = pos.sign
    prof = window(ctx, seq - lookback + 1, seq + 1)
    limit = close * (1 - s * buffer_pct / 100)
    behind = [h for h in prof.hvns if s * (limit - h) > 0]
    if not behind:
        return None
    cand = max(behind) if s > 0 else min(behind)
    if math.isfinite(floor) and not s * (cand - floor) > 0:
        return None
    if tighter(cand, pos.stop_price, s):
        return MoveStop(cand, reason)
    return None
