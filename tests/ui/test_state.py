"""UiState, the figures and the sidebar as plain functions (no sockets, no browser)."""

from __future__ import annotations

import math

import pytest

from ui import figures
from ui.sidebar import fallback_setup, normalize_engine_setup, risk_reward, ui_profile
from ui.state import Log, UiState, find_columns, timeframe_ms

NS = 1_000_000
T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC, ms


def bar(seq: int, close: float = 100.0) -> dict:
    return {"ts_event_ns": (T0 + (seq + 1) * 900_000) * NS, "ts_init_ns": 0, "symbol": "BTC-USDT",
            "timeframe": "15m", "seq": seq, "open": close - 1, "high": close + 2,
            "low": close - 2, "close": close, "volume": 10.0 + seq}


def msg(seq: int, typ: str, data: dict, run: str = "r1") -> dict:
    return {"v": 1, "seq": seq, "run": run, "type": typ, "ts": T0, "data": data}


def snapshot(n: int, seq: int, run: str = "r1", **extra) -> dict:
    return {"ok": True, "seq": seq, "snapshot": {
        "run": run, "mode": "paper", "symbol": "BTC-USDT", "timeframe": "15m",
        "bars": [bar(i) for i in range(n)],
        "features": [{"bar_seq": i, "values": {"vp_poc": 100.0, "vp_vah": 101.0, "vp_val": 99.0,
                                               "stoch_chart_s9": 50.0}} for i in range(n)],
        "equity": [{"bar_seq": i, "equity": {"a": 1000.0 + i}} for i in range(n)],
        "status": {"paused": False, "alive": True}, **extra}}


def test_timeframes_and_columns():
    assert timeframe_ms("15m") == 900_000 and timeframe_ms("1h") == 3_600_000
    assert timeframe_ms("bogus") == 0
    cols = find_columns(["vp_poc", "vp_vah", "vp_val", "stoch_chart_s9", "stoch_chart_s60",
                         "linreg_100_intercept", "linreg_100_std", "cnn_p_buy", "atr_14_sma_atr"])
    assert cols["poc"] == "vp_poc" and cols["s60"] == "stoch_chart_s60"
    assert cols["reg_mid"] == "linreg_100_intercept" and cols["p_buy"] == "cnn_p_buy"
    assert "p_sell" not in cols


def test_log_since_and_truncation():
    log = Log(3)
    for i in range(5):
        log.append(i)
    assert log.since(3) == ([3, 4], False)
    assert log.since(5) == ([], False)
    assert log.since(0) == ([2, 3, 4], True)  # 0 and 1 were dropped: re-render


def test_snapshot_then_messages_in_sequence():
    st = UiState()
    st.apply_snapshot(snapshot(5, seq=20))
    assert st.seq == 20 and len(st.bars_by_seq) == 5 and st.conn.state == "live"
    assert st.check(msg(20, "BarClosed", bar(4))) == "drop"  # already in the snapshot
    assert st.apply_message("bar.BTC-USDT", msg(21, "BarClosed", bar(5))) == "apply"
    assert st.apply_message("bar.BTC-USDT", msg(23, "BarClosed", bar(6))) == "resync"  # gap
    assert 6 not in st.bars_by_seq and st.conn.gaps == 1
    assert st.apply_message("bar.BTC-USDT", msg(22, "BarClosed", bar(6), run="r2")) == "resync"
    # the bar's x is its open time (the wire's bar time is the close)
    assert st.bars_by_seq[0].x == "2024-01-01 00:00"


def test_delta_is_what_arrived_and_a_snapshot_forces_a_full_render():
    st = UiState()
    st.apply_snapshot(snapshot(3, seq=10))
    view, cur = st.view()
    assert len(view["bars"]) == 3
    st.apply_message("bar.X", msg(11, "BarClosed", bar(3)))
    st.apply_message("features.X", msg(12, "features", {"bar_seq": 3,
                                                        "values": {"vp_poc": 101.0}}))
    delta, cur2 = st.delta(cur)
    assert [b.seq for b in delta["bars"]] == [3] and [s for s, _ in delta["features"]] == [3]
    again, _ = st.delta(cur2)
    assert again["bars"] == [] and again["features"] == []
    st.apply_snapshot(snapshot(2, seq=5, run="r2"))
    assert st.delta(cur2)[0] is None  # another gen: the browser re-renders


def test_bounded_memory():
    st = UiState(max_bars=50)
    st.apply_snapshot(snapshot(40, seq=1))
    for i in range(40, 200):
        st.apply_message("bar.X", msg(i - 38, "BarClosed", bar(i)))
    assert len(st.bars_by_seq) == 50 and min(st.bars_by_seq) == 150
    assert len(st.logs["bars"]) == 50


def test_stops_targets_and_positions_follow_the_orders():
    st = UiState()
    st.apply_snapshot(snapshot(2, seq=1))
    seq = 1

    def send(topic, typ, data):
        nonlocal seq
        seq += 1
        assert st.apply_message(topic, msg(seq, typ, data)) == "apply"

    base = {"ts_event_ns": 0, "ts_init_ns": 0, "account": "a"}
    send("order.X", "SubmitOrder", {**base, "order_id": "a-1", "side": "buy", "type": "market",
                                    "seq": 1, "reduce_only": False, "stop_loss": math.nan,
                                    "take_profit": math.nan, "tag": "ENTRY"})
    send("order.X", "SubmitOrder", {**base, "order_id": "a-2", "side": "sell", "type": "stop",
                                    "seq": 1, "price": 95.0, "reduce_only": True,
                                    "tag": "STOP_LOSS"})
    send("fill.X", "OrderFilled", {**base, "order_id": "a-1", "side": "buy", "qty": 2.0,
                                   "price": 100.0, "fee": 0.1, "seq": 1, "tag": "ENTRY"})
    send("bar.X", "BarClosed", bar(2, close=103.0))
    send("order.X", "ModifyOrder", {**base, "order_id": "a-2", "price": 98.0})
    send("bar.X", "BarClosed", bar(3, close=104.0))
    # one segment per price the stop held: 95 over bar 2 (closed when it moved), 98 from bar 3
    levels = [(lv.x, lv.x_end, lv.kind, lv.price) for lv in st.logs["levels"].items]
    assert levels == [("2024-01-01 00:30", "2024-01-01 00:45", "stop", 95.0)]
    assert [(lv.x, lv.price) for lv in st.live_levels()] == [("2024-01-01 00:45", 98.0)]
    row = st.table()[0]
    assert row["position"] == 2.0 and row["open_pnl"] == pytest.approx(8.0)
    send("fill.X", "OrderFilled", {**base, "order_id": "a-2", "side": "sell", "qty": 2.0,
                                   "price": 98.0, "fee": 0.1, "seq": 4, "tag": "STOP_LOSS"})
    send("trade.X", "TradeClosed", {**base, "symbol": "X", "side": "long", "pnl": -4.2})
    send("bar.X", "BarClosed", bar(4))
    assert len(st.logs["levels"]) == 2 and st.live_levels() == []  # flat: the stop is gone
    row = st.table()[0]
    assert row["position"] == 0.0 and row["trades"] == 1 and row["win_rate_pct"] == 0.0


def test_bridge_snapshot_positions_are_authoritative():
    st = UiState()
    st.apply_snapshot(snapshot(3, seq=9, positions={"a": {
        "side": "short", "qty": 0.5, "entry_price": 102.0,
        "orders": [{"order_id": "a-7", "type": "stop", "price": 110.0},
                   {"order_id": "a-8", "type": "limit", "price": 90.0}]}}))
    assert st.positions["a"] == {"qty": -0.5, "entry": 102.0}
    st.apply_message("bar.X", msg(10, "BarClosed", bar(3)))
    assert sorted((lv.kind, lv.price) for lv in st.live_levels()) == [
        ("stop", 110.0), ("target", 90.0)]


def test_status_line_lag_and_liveness():
    st = UiState()
    st.apply_snapshot(snapshot(1, seq=1))
    now = T0 / 1000 + 0.25
    st.apply_message("status.X", msg(2, "status", {"paused": True, "alive": True}), now=now)
    s = st.status_line(now=now + 0.1)
    assert s["paused"] and s["alive"] and s["lag_ms"] == pytest.approx(250.0)
    assert not st.status_line(now=now + 10)["alive"]  # silent for 10 s: not alive


def test_price_figure_and_patch():
    st = UiState()
    st.apply_snapshot(snapshot(30, seq=1, signals=[{
        "ts_event_ns": bar(20)["ts_event_ns"], "seq": 20, "alarm_id": "A1", "side": "long",
        "entry_price": 100.0, "stop_price": 95.0, "targets": [110.0]}]))
    view, cur = st.view()
    fig = figures.price_figure(view, ranges=st.visible_range(10))
    data = fig["data"]
    assert len(data) == len(figures.TRACES)
    for name, keys in figures.EXTRA_ARRAYS.items():  # empty now, extended later: must exist
        assert all(isinstance(data[figures.IDX[name]][k], list) for k in keys), name
    assert figures.candle_count(data) == 30
    assert data[figures.IDX["sig_buy"]]["customdata"] == ["A1"]
    assert len(data[figures.IDX["poc"]]["y"]) == 30 and data[figures.IDX["s9"]]["y"][0] == 50.0
    # bar 20 opens 05:00; the range starts half a bar before
    assert fig["layout"]["xaxis"]["range"][0] == "2024-01-01 04:52"
    st.apply_message("bar.X", msg(2, "BarClosed", bar(30)))
    delta, _ = st.delta(cur)
    ops = figures.patch_price(delta, st.visible_range(10)).to_plotly_json()["operations"]
    extends = {tuple(o["location"]): o["params"]["value"] for o in ops
               if o["operation"] == "Extend"}
    assert extends[("data", figures.IDX["up_wick"], "x")] == ["2024-01-01 07:30"] * 2 + [None]
    assert extends[("data", figures.IDX["up_body"], "y")] == [99.0, 100.0, None]  # open, close
    assert extends[("data", figures.IDX["vol_up"], "y")] == [0.0, 40.0, None]
    assert ("data", figures.IDX["poc"], "x") not in extends  # no feature row for bar 30 yet
    assert any(o["location"] == ["layout", "xaxis4", "range"] for o in ops)
    empty, _ = st.delta(st.cursor())
    assert figures.patch_price(empty) is None


def test_sidebar_engine_reply_and_fallback():
    rep = {"ok": True, "result": {"alarm_id": "A1", "strategies": {
        "poc_target": {"side": "long", "entry": 100.0, "stop": 95.0, "targets": [110.0],
                       "rr": [2.0]}}, "profile": {"prices": [99.0, 100.0], "volumes": [1.0, 3.0],
                                                  "poc": 100.0, "gmm": {"x": [99.0, 100.0],
                                                                        "density": [0.1, 0.2]}}}}
    s = normalize_engine_setup(rep, None)
    assert s["source"] == "engine" and s["rows"][0]["rr"] == 2.0
    assert normalize_engine_setup({"ok": False, "error": "unknown op"}, None) is None
    fig = figures.profile_figure(s["profile"], s["rows"][0])
    assert [t["type"] for t in fig["data"]] == ["bar", "scatter"]  # volumes + GMM curve
    assert risk_reward("short", 100.0, 105.0, 90.0) == pytest.approx(2.0)
    assert math.isnan(risk_reward("long", 100.0, 100.0, 110.0))
    st = UiState()
    st.apply_snapshot(snapshot(30, seq=1, signals=[{
        "ts_event_ns": 0, "seq": 20, "alarm_id": "A1", "side": "long", "entry_price": 100.0,
        "stop_price": 95.0, "targets": [110.0, 105.0]}]))
    fb = fallback_setup(st, None)
    assert fb["source"] == "ui" and [r["rr"] for r in fb["rows"]] == [2.0, 1.0]
    prof = ui_profile(st.recent_bars(30))
    assert prof["val"] <= prof["poc"] <= prof["vah"]
    assert sum(prof["volumes"]) == pytest.approx(sum(b.volume for b in st.recent_bars(30)))


def test_window_of_bars_for_a_following_or_panned_view():
    st = UiState()
    st.apply_snapshot(snapshot(1000, seq=1, signals=[{
        "ts_event_ns": bar(100)["ts_event_ns"], "seq": 100, "alarm_id": "OLD", "side": "long",
        "entry_price": 100.0, "stop_price": 95.0, "targets": [110.0]}]))
    # following: the last 300 bars and half as many more, up to the last bar (open-ended)
    w = st.window(300)
    assert w["lo"] == 1000 - 450 and w["hi"] is None
    view, _ = st.view(w["lo"], w["hi"])
    assert len(view["bars"]) == 450 and view["bars"][-1].seq == 999 and view["signals"] == []
    assert view["window"] == {"lo": 550, "hi": None, "k": 1, "n": 450}
    # panned to bars 100..199 (open times): half the range's width more on each side
    xr = [st.bars_by_seq[100].x, st.bars_by_seq[199].x]
    w = st.window(300, xr)
    assert (w["lo"], w["hi"]) == (51, 248) and w["ranges"][0] == xr  # 99 bars wide: +-49.5
    view, _ = st.view(w["lo"], w["hi"])
    assert [s["alarm_id"] for s in view["signals"]] == ["OLD"]
    assert view["live_levels"] == [] and len(view["features"]) == 198
    lo_p, hi_p = w["ranges"][1]  # the price axis fits the bars in the range
    assert lo_p < 98.0 and hi_p > 102.0
    # a range past the last bar is open-ended; one before the first keeps the first bar
    assert st.window(300, [st.bars_by_seq[900].x, "2030-01-01 00:00"])["hi"] is None
    assert st.window(300, ["2000-01-01", "2000-01-02"])["lo"] == 0
    assert st.window(300, ["nonsense", "2000-01-02"]) is None


def test_zoomed_out_view_draws_candles_of_several_bars():
    st = UiState()
    st.apply_snapshot(snapshot(1000, seq=1))
    view, _ = st.view(max_candles=300)
    assert view["k"] == 4 and len(view["bars"]) == 250 and len(view["features"]) == 250
    first = view["bars"][0]
    src = [st.bars_by_seq[i] for i in range(4)]
    assert (first.x, first.open, first.close) == (src[0].x, src[0].open, src[3].close)
    assert first.high == max(b.high for b in src) and first.volume == sum(b.volume for b in src)
    fig = figures.price_figure(view)
    assert figures.candle_count(fig["data"]) == 250
    assert any("4 bars" in a["text"] for a in fig["layout"]["annotations"])


def test_relayout_ranges_and_chart_times():
    from ui.app import relayout_x_range
    from ui.state import parse_x

    assert relayout_x_range({"xaxis.range[0]": "2024-01-01 00:00",
                             "xaxis.range[1]": "2024-01-02 00:00"}) == [
        "2024-01-01 00:00", "2024-01-02 00:00"]
    assert relayout_x_range({"xaxis3.range": ["a", "b"]}) == ["a", "b"]  # a lower panel
    assert relayout_x_range({"yaxis.range[0]": 1, "yaxis.range[1]": 2}) is None
    assert relayout_x_range({"xaxis.autorange": True}) is None
    assert parse_x("2024-01-01 00:15") == T0 + 900_000
    assert parse_x("2024-01-01 00:00:00.5") == T0 + 500  # Plotly's fractions of a second
    assert parse_x("not a time") is None


def test_equity_figure_is_bounded():
    eq = [(i, f"x{i}", {"a": float(i)}) for i in range(10_001)]
    fig = figures.equity_figure(eq, ["a"], max_points=2000)
    ys = fig["data"][0]["y"]
    assert len(ys) <= 2001 and ys[0] == 0.0 and ys[-1] == 10_000.0  # the last point is kept


def test_wait_bars_wakes_on_a_bar_and_times_out():
    import threading
    import time

    st = UiState()
    st.apply_snapshot(snapshot(3, seq=1))
    now = st.wait_bars("", 0.0)
    assert now == f"{st.gen}:3:1"  # gen, bars, the last bar complete (equity in the snapshot)
    t0 = time.monotonic()
    assert st.wait_bars(now, 0.05) == now  # nothing new: answered at the timeout
    assert time.monotonic() - t0 >= 0.04
    threading.Timer(0.05, st.apply_message, ("bar.X", msg(2, "BarClosed", bar(3)))).start()
    t0 = time.monotonic()
    assert st.wait_bars(now, 5.0) == f"{st.gen}:4:0"  # a bar, its equity still to come
    assert time.monotonic() - t0 < 2.0  # woken by the bar, not the timeout
    assert not st.last_bar_ready(grace_s=60.0)
    assert st.last_bar_ready(grace_s=60.0, now=time.time() + 61)  # no equity: after a while
    st.apply_message("equity.X", msg(3, "equity", {"bar_seq": 3, "equity": {"a": 1.0}}))
    assert st.last_bar_ready(grace_s=60.0) and st.wait_bars("", 0.0) == f"{st.gen}:4:1"
