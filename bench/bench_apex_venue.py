"""The local Apex venue's cost per request, seen by the real apexomni client on loopback.

Workload: the venue replays the real BTC/USDT 15m candles in lockstep from 2025-01-01 (61k
candles of history). Measured in the same run, in this process (client and venue share the
interpreter, as in the tests; ``bench_paper`` runs the venue in its own process):

- a feed's poll per bar: ``GET /api/v1/time`` + ``GET /api/v3/klines`` of the one new candle
  through ``ApexClient`` (p50/p99 ms), against the reference of one bare ``requests`` GET of the
  time (the HTTP floor), as a ratio;
- the venue's own work in those two requests, without HTTP (``LocalVenue.route``), in us;
- a market order round trip: ``create_order_v3`` (zk signing in the client, HMAC and zk
  signature checks and the fill in the venue), p50 ms.

Run alone: ``python bench/bench_apex_venue.py``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from bench.common import real_bars


def _pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q))


def run(bars_n: int = 400, orders: int = 40) -> dict[str, object]:
    import logging

    import requests

    logging.basicConfig(level=logging.WARNING)  # before apexomni adds its own handler
    from adapters.apex.client import ApexClient
    from adapters.apex.venue import LocalVenue

    bars = real_bars()
    out: dict[str, object] = {}
    with LocalVenue(bars, start="2025-01-01", record_requests=False) as v:
        c = ApexClient(v.url, v.credentials)
        c.server_time_ms()
        last = int(c.klines("BTC-USDT", "15", limit=2)[0]["t"])  # newest closed: seen
        poll: list[float] = []
        for _ in range(bars_n):
            t0 = time.perf_counter()
            now = c.server_time_ms()
            rows = c.klines("BTC-USDT", "15", start_s=(last + 900_000) // 1000,
                            end_s=now // 1000 - 1)
            poll.append(time.perf_counter() - t0)
            last = int(rows[-1]["t"])
        s = requests.Session()
        raw: list[float] = []
        for _ in range(bars_n):
            t0 = time.perf_counter()
            s.get(v.url + "/api/v1/time", timeout=10).json()
            raw.append(time.perf_counter() - t0)
        q = {"symbol": "BTCUSDT", "interval": "15"}
        route: list[float] = []
        for _ in range(bars_n):
            t0 = time.perf_counter()
            with v.lock:
                v.route("GET", "/api/v1/time", {}, {})
                now = v.now_ms()
                v.route("GET", "/api/v3/klines", {**q, "start": str(now // 1000 - 900),
                                                   "end": str(now // 1000 - 1)}, {})
            route.append(time.perf_counter() - t0)
        rtt: list[float] = []
        px = float(bars.close[v.n_closed() - 1])
        for i in range(orders):
            side = "BUY" if i % 2 == 0 else "SELL"
            worst = round(px * (1.05 if side == "BUY" else 0.95), 2)
            t0 = time.perf_counter()
            c.create_order(symbol="BTC-USDT", side=side, type="MARKET", size="0.010",
                           price=f"{worst:.2f}", timeInForce="IMMEDIATE_OR_CANCEL",
                           clientId=f"bench-{i}")
            rtt.append(time.perf_counter() - t0)
        fills = c.fills(limit=1000)["totalSize"]
    out["poll per bar p50 ms (time + klines)"] = _pct(poll, 50) * 1e3
    out["poll per bar p99 ms"] = _pct(poll, 99) * 1e3
    out["bare requests GET p50 ms"] = _pct(raw, 50) * 1e3
    out["poll / bare GET (x, same run)"] = _pct(poll, 50) / _pct(raw, 50)
    out["venue work per poll p50 us (no HTTP)"] = _pct(route, 50) * 1e6
    out["market order round trip p50 ms"] = _pct(rtt, 50) * 1e3
    out["orders filled"] = int(fills)
    return out


if __name__ == "__main__":
    for k, val in run().items():
        print(f"{k:42s} {val:.4g}" if isinstance(val, float) else f"{k:42s} {val}")
