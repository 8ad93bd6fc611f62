"""How a simulated order fills inside one bar: the one explicit intrabar policy.

A bar only tells us open, high, low and close. We model the price path inside it as four points,
``open -> first extreme -> second extreme -> close``, moving monotonically between them. Which
extreme comes first is the policy:

- ``stop_first`` (default, worst case): the extreme *against* the open position comes first, so
  when a stop and a target are both inside the bar, the stop fills.
- ``target_first`` (best case): the favourable extreme first.
- ``ohlc_path``: a rising bar (close >= open) went open -> low -> high -> close, a falling bar
  open -> high -> low -> close (backtrader's and many brokers' assumption).

Fill prices (all documented modelling assumptions):

- A market order decided on a bar's close fills at the next bar's open (``market_fill:
  next_open``, default) or at that close (``market_fill: close``).
- A stop triggers when the path reaches its price and fills there; if the bar *opens* beyond it
  (a gap), it fills at the open, which is worse. Slippage applies adversely on top.
- A resting limit (take-profit) fills at its limit price, also on a gap open: no price
  improvement is assumed.
- Every fill that depended on the order of the two extremes (fills at both extremes in one bar)
  is flagged ``ambiguous``, so results can be reported as a bracket, not one silent assumption.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum


class IntrabarPolicy(StrEnum):
    STOP_FIRST = "stop_first"
    TARGET_FIRST = "target_first"
    OHLC_PATH = "ohlc_path"


class MarketFill(StrEnum):
    NEXT_OPEN = "next_open"
    CLOSE = "close"


# Path point indices inside a bar.
OPEN, FIRST, SECOND, CLOSE = 0, 1, 2, 3


def bar_path(
    o: float, h: float, lo: float, c: float, policy: IntrabarPolicy, position_sign: int
) -> tuple[float, float, float, float]:
    """Return the four modelled path prices of a bar.

    Args:
        position_sign: +1 long, -1 short, 0 flat at the start of the bar's evaluation. Used by
            the worst/best-case policies to decide which extreme is adverse.
    """
    if policy is IntrabarPolicy.OHLC_PATH:
        low_first = c >= o
    elif policy is IntrabarPolicy.STOP_FIRST:
        low_first = position_sign >= 0  # long (or flat): the low is the adverse extreme
    else:
        low_first = position_sign < 0  # best case: a short sees its low first
    return (o, lo, h, c) if low_first else (o, h, lo, c)


def crossing(
    is_buy: bool, is_stop: bool, trigger: float, path: tuple[float, float, float, float], start: int
) -> tuple[int, float, bool] | None:
    """Find where a stop or limit order first executes on the path from point ``start`` on.

    A buy stop and a sell limit execute when the price is at or above ``trigger``; a sell stop and
    a buy limit at or below it.

    Returns:
        ``(point_index, fill_price, is_gap)``, or ``None`` if the bar never reaches the trigger.
        ``is_gap`` is true when the order was already through at point ``start`` (for orders
        working since the previous bar that is the open).
    """
    upward = is_buy == is_stop  # buy stop / sell limit need the price to rise to the trigger
    for j in range(start, 4):
        p = path[j]
        hit = p >= trigger if upward else p <= trigger
        if hit:
            if j == start:
                # Already through when the order became active: a stop fills at this (worse)
                # price, a resting limit at its own price (no price improvement assumed).
                return j, (p if is_stop else trigger), True
            return j, trigger, False
    return None


@dataclass(frozen=True, slots=True)
class Costs:
    """Fees and slippage as fractions of notional (config gives basis points)."""

    taker_fee: float = 0.0
    maker_fee: float = 0.0
    slippage: float = 0.0

    @classmethod
    def from_bps(cls, taker_fee_bps: float, maker_fee_bps: float, slippage_bps: float) -> Costs:
        return cls(taker_fee_bps / 1e4, maker_fee_bps / 1e4, slippage_bps / 1e4)

    def slipped(self, price: float, is_buy: bool) -> float:
        """Price after adverse slippage (buys pay more, sells get less)."""
        if self.slippage == 0.0:
            return price
        return price * (1.0 + self.slippage) if is_buy else price * (1.0 - self.slippage)


def size_for_equity_frac(equity: float, frac: float, price: float, fee_rate: float) -> float:
    """Quantity whose notional plus fee equals ``frac`` of ``equity`` at ``price``."""
    if price <= 0.0 or not math.isfinite(price) or equity <= 0.0:
        return 0.0
    return frac * equity / (price * (1.0 + fee_rate))
