"""The local Apex venue fills orders exactly like the backtest's SimBroker (engine.fills' policy).

The same bars and the same decisions (a market entry with an attached stop-loss and take-profit
whenever flat, decided on a bar's close) go once through ``adapters.sim_broker.SimBroker`` and once
through the venue with the real apexomni client: fills must agree in order, side, size, price,
fee, liquidity and the gap flag. Needs apexomni (fails in CI without it, skips elsewhere).
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from adapters.sim_broker import SimBroker
from engine.bars import Bars
from engine.events import BarClosed, OrderFilled, SubmitOrder
from engine.fills import Costs, IntrabarPolicy
from engine.portfolio import Account
from tests.adapters.test_apex_venue import MIN15_NS, T0_MS, make_bars
from tests.conftest import need

TAKER, MAKER = 0.0005, 0.0002


@pytest.fixture(autouse=True, scope="module")
def _needs_apexomni():
    need(importlib.util.find_spec("apexomni") is not None,
         "apexomni is not installed (make venv installs it with --no-deps)")


def _decisions(bars, every: int = 7) -> dict[int, tuple[str, float, float]]:
    """On these bars' closes, if flat: (side, stop, target) around the close, 0.1 ticks."""
    out = {}
    for n in range(0, len(bars.close) - 1, every):
        c = float(bars.close[n])
        long = (n // every) % 2 == 0
        stop, target = (c - 35, c + 50) if long else (c + 35, c - 50)
        out[n] = ("buy" if long else "sell", round(stop, 1), round(target, 1))
    return out


def _sim_fills(bars, decisions, policy):
    fills: list[OrderFilled] = []
    acct: Account

    def publish(e):
        if isinstance(e, OrderFilled):
            fills.append(e)
            acct.on_order_filled(e)

    acct = Account("a", bars.symbol, 10_000.0, publish)
    broker = SimBroker(acct, publish, Costs(TAKER, MAKER, 0.0), policy)
    for n in range(len(bars.close)):
        bar = BarClosed(ts_event_ns=int(bars.ts_open_ns[n]) + bars.tf_ns, ts_init_ns=0,
                        symbol=bars.symbol, timeframe="15m", seq=n, open=float(bars.open[n]),
                        high=float(bars.high[n]), low=float(bars.low[n]),
                        close=float(bars.close[n]), volume=float(bars.volume[n]))
        broker.on_bar_closed(bar)
        if n in decisions and acct.qty == 0.0:
            side, stop, target = decisions[n]
            broker.on_submit_order(SubmitOrder(
                ts_event_ns=0, ts_init_ns=0, account="a", order_id=f"o{n}", side=side,
                type="market", seq=n, qty=0.01, stop_loss=stop, take_profit=target,
                tag="ENTRY"))
    return [(f.side.upper(), round(f.qty, 9), round(f.price, 6), round(f.fee, 9),
             f.liquidity.upper(), f.gap) for f in fills]


def _venue_fills(bars, decisions, policy):
    from adapters.apex.client import ApexClient
    from adapters.apex.venue import LocalVenue

    with LocalVenue(bars, taker_fee=TAKER, maker_fee=MAKER, policy=policy,
                    tick_size="0.1") as v:
        c = ApexClient(v.url, v.credentials)
        for n in range(len(bars.close)):
            v.advance()  # candle n closes: the decision below is taken on its close
            if n in decisions and v.book.qty == 0.0:
                side, stop, target = decisions[n]
                close = float(bars.close[n])
                worst = round(close * (1.05 if side == "buy" else 0.95), 1)
                exit_side = "SELL" if side == "buy" else "BUY"
                c.create_order(
                    symbol="BTC-USDT", side=side.upper(), type="MARKET", size="0.010",
                    price=f"{worst:.1f}", timeInForce="IMMEDIATE_OR_CANCEL", clientId=f"o{n}",
                    isOpenTpslOrder=True, triggerPriceType="MARKET",
                    isSetOpenSl=True, slSide=exit_side, slSize="0.010",
                    slTriggerPrice=f"{stop:.1f}", slPrice=f"{worst:.1f}",
                    isSetOpenTp=True, tpSide=exit_side, tpSize="0.010",
                    tpTriggerPrice=f"{target:.1f}", tpPrice=f"{worst:.1f}")
        rows = list(reversed(c.fills(limit=1000)["orders"]))  # oldest first
    return [(f["side"], round(float(f["size"]), 9), round(float(f["price"]), 6),
             round(float(f["fee"]), 9), f["liquidity"], f["gap"]) for f in rows]


def gappy_bars(n: int, seed: int) -> Bars:
    """15m candles whose opens jump away from the previous close (stops and limits gap)."""
    rng = np.random.default_rng(seed)
    close = np.round(40_000 + np.cumsum(rng.normal(0, 30, n)), 1)
    open_ = np.round(np.concatenate([[40_000.0], close[:-1]]) + rng.normal(0, 40, n), 1)
    high = np.round(np.maximum(open_, close) + rng.uniform(1, 30, n), 1)
    low = np.round(np.minimum(open_, close) - rng.uniform(1, 30, n), 1)
    ts = np.arange(n, dtype=np.int64) * MIN15_NS + T0_MS * 1_000_000
    return Bars.from_columns("BTC-USDT", "15m", MIN15_NS, ts, open_, high, low, close,
                             rng.uniform(1, 10, n))


@pytest.mark.parametrize(("policy", "gappy"), [(IntrabarPolicy.STOP_FIRST, False),
                                               (IntrabarPolicy.OHLC_PATH, False),
                                               (IntrabarPolicy.STOP_FIRST, True)])
def test_venue_fills_equal_the_sim_brokers(policy, gappy):
    bars = gappy_bars(160, seed=5) if gappy else make_bars(160, seed=11)
    decisions = _decisions(bars)
    sim = _sim_fills(bars, decisions, policy)
    venue = _venue_fills(bars, decisions, policy)
    assert len(sim) > 20  # entries, stops and targets all happen
    assert {f[4] for f in sim} == {"TAKER", "MAKER"}
    assert any(f[5] for f in sim) == gappy  # gap fills happen (only) on gappy candles
    # the venue writes 8 decimals; prices are on a 0.1 grid and sizes 0.01, so every price and
    # fee here has at most 7: the rounding below only removes binary noise
    assert venue == sim
