"""The UI in headless Chromium, connected over real ZeroMQ sockets to an engine end that plays
real-engine events of real BTC/USDT candles (tests/ui/publisher.py, WIRE.md)."""

from __future__ import annotations

import time

import pytest
from dash.testing.wait import until

from tests.ui.conftest import ARTIFACTS, free_port
from tests.ui.publisher import WirePublisher
from ui import figures
from ui.app import create_app
from ui.state import UiState
from ui.subscriber import Subscriber

pytestmark = [pytest.mark.real_data, pytest.mark.slow]

GD = "var gd = document.querySelector('#price .js-plotly-plot');"


def candles(dc) -> int:
    """Candles the browser's price chart holds (three points per candle in the wick traces)."""
    up, dn = figures.IDX["up_wick"], figures.IDX["dn_wick"]
    return int(dc.driver.execute_script(
        GD + f"if (!gd || !gd.data || !gd.data[{dn}]) return 0;"
        f"return Math.floor(((gd.data[{up}].x || []).length + (gd.data[{dn}].x || []).length)"
        " / 3);"))


def drawn(dc) -> tuple[int, str, str]:
    """Candles the browser draws, and the times of its first and last candle."""
    up, dn = figures.IDX["up_wick"], figures.IDX["dn_wick"]
    n, first, last = dc.driver.execute_script(
        GD + "if (!gd || !gd.data || !gd.data[arguments[1]]) return [0, '', ''];"
        "var n = 0, first = 'z', last = '';"
        "[arguments[0], arguments[1]].forEach(function (i) { var xs = gd.data[i].x || [];"
        "  n += xs.length; for (var k = 0; k < xs.length; k += 3) {"
        "    if (xs[k] < first) first = xs[k]; if (xs[k] > last) last = xs[k]; } });"
        "return [Math.floor(n / 3), first, last];", up, dn)
    return int(n), str(first), str(last)


def relayout(dc, update: dict) -> None:
    """What a drag, the wheel or a double-click on the chart does (a ``plotly_relayout``)."""
    dc.driver.execute_script(GD + "Plotly.relayout(gd, arguments[0]);", update)


def state_xs(state) -> list[str]:
    with state.lock:
        return [b.x for b in state.bars_by_seq.values()]


def newer(state, x0: str, x1: str) -> int:
    """The UI's bars after ``x0`` up to ``x1`` (bars the browser drew since it showed ``x0``)."""
    return sum(1 for x in state_xs(state) if x0 < x <= x1)


def trace_len(dc, name: str) -> int:
    return int(dc.driver.execute_script(
        GD + f"return gd && gd.data && gd.data[{figures.IDX[name]}] && "
        f"gd.data[{figures.IDX[name]}].x ? gd.data[{figures.IDX[name]}].x.length : 0;"))


def text(dc, css: str) -> str:
    """Text of the first match, read in the page (no stale elements while React re-renders)."""
    return str(dc.driver.execute_script(
        "var e = document.querySelector(arguments[0]); return e ? e.textContent : '';", css))


def test_ui_follows_an_engine_through_a_restart(browser, real_messages):
    dc = browser
    pub = WirePublisher(real_messages, run="run-1", rate_bars=8, start_bars=1500)
    pub.start()
    assert pub.ready.wait(10)
    state = UiState(max_bars=10_000)
    sub = Subscriber(state, pub.pub_addr, pub.cmd_addr, bars=2000, quiet_s=1.5, timeout_s=1.0)
    sub.start()
    pub2 = None
    try:
        # SVG traces (the other test draws with WebGL, the default where the browser has it)
        dc.start_server(create_app(state, pub.cmd_addr, n_visible=300, webgl=False),
                        port=free_port())
        # the late joiner is complete at once: the snapshot's 1,500 bars in the UI, the browser
        # drawing a window of them (the last 300 in view and 150 more) up to the last bar
        until(lambda: len(state_xs(state)) >= 1500 and drawn(dc)[0] >= 400, timeout=20)
        until(lambda: dc.driver.execute_script(
            "return document.querySelectorAll('#price .scatterlayer .js-line').length") > 10,
            timeout=10)
        assert trace_len(dc, "poc") >= 400 and trace_len(dc, "s9") >= 400
        until(lambda: text(dc, "#st-connection") == "live", timeout=5)
        until(lambda: text(dc, "#st-symbol") == "BTC-USDT", timeout=5)
        # updates as bars arrive, extended in place (at most a few updates a second, so bars
        # published at 8/s go a few at a time); the window stays bounded
        last0, t0 = drawn(dc)[2], time.monotonic()
        until(lambda: newer(state, last0, drawn(dc)[2]) >= 16, timeout=10)
        print(f"browser: 16 bars in {time.monotonic() - t0:.2f} s (published at 8/s)")
        pub.hold.set()
        time.sleep(0.8)
        # the browser holds exactly the UI's bars from its window's first to the last one
        xs = state_xs(state)
        until(lambda: drawn(dc)[2] == xs[-1], timeout=5)
        n, first, last = drawn(dc)
        assert n == sum(1 for x in xs if first <= x <= last) and 400 <= n <= 600, (n, first)
        # the whole history is reachable: pan to the oldest bars (the window is drawn anew) ...
        relayout(dc, {"xaxis.range": [xs[0], xs[299]]})
        until(lambda: drawn(dc)[1] == xs[0], timeout=10)
        assert dc.find_element("#follow input").is_selected() is False  # stopped following
        # ... zoom out to all of them: every alarm, entry, stop and target of the run
        relayout(dc, {"xaxis.range": [xs[0], xs[-1]]})
        until(lambda: drawn(dc)[0] == len(xs), timeout=15)
        assert trace_len(dc, "sig_buy") + trace_len(dc, "sig_sell") > 10
        assert trace_len(dc, "poc") > 1000 and trace_len(dc, "s9") > 1000
        assert trace_len(dc, "entry") > 0 and trace_len(dc, "stop") > 0
        pub.hold.clear()
        # sidebar: the setup of the current bar, then of a clicked alarm
        until(lambda: len(dc.driver.find_elements("css selector", "#setup-table td")) > 0,
              timeout=10)
        alarm = dc.driver.execute_script(
            GD + f"var t = gd.data[{figures.IDX['sig_buy']}]; var k = t.x.length - 1;"
            f"gd.emit('plotly_click', {{points: [{{curveNumber: {figures.IDX['sig_buy']},"
            " pointNumber: k, data: t, x: t.x[k], y: t.y[k]}]}); return t.customdata[k];")
        until(lambda: text(dc, "#selected-alarm") == alarm, timeout=10)
        until(lambda: "entry" in text(dc, "#setup-table") and
              len(dc.driver.find_elements("css selector", "#profile .barlayer path")) > 0,
              timeout=10)
        dc.driver.save_screenshot(str(ARTIFACTS / "ui_live.png"))
        # a double-click (autorange) follows the last bar again, in a window of the last bars
        relayout(dc, {"xaxis.autorange": True})
        until(lambda: dc.find_element("#follow input").is_selected()
              and 400 <= drawn(dc)[0] <= 600
              and newer(state, drawn(dc)[2], state_xs(state)[-1]) < 16, timeout=10)
        # a pause from the UI reaches the engine and comes back in its status
        dc.find_element("#btn-pause").click()
        until(lambda: "pause: ok" in text(dc, "#cmd-reply"), timeout=10)
        assert [c["op"] for c in pub.commands] == ["pause"]
        until(lambda: text(dc, "#st-entries") == "paused", timeout=10)
        # anything that trades asks first; the backtest engine refuses with its reason
        dc.find_element("#btn-flatten").click()
        until(lambda: _alert(dc) is not None, timeout=5)
        alert = dc.driver.switch_to.alert
        assert "Flatten" in alert.text
        alert.accept()
        until(lambda: "refused" in text(dc, "#cmd-reply"), timeout=10)
        assert "backtest" in text(dc, "#cmd-reply")
        assert pub.commands[-1]["op"] == "flatten"
        assert dc.get_logs() == [], "browser console errors"
        # the engine goes away: the UI says so
        run1_last = state_xs(state)[-1]
        pub.stop()
        until(lambda: text(dc, "#st-connection") in ("stale", "disconnected"), timeout=10)
        # ... and comes back as another run on the same ports: a new snapshot, a new chart
        pub2 = WirePublisher(real_messages, run="run-2", rate_bars=8, start_bars=800,
                             pub=pub.pub_addr, cmd=pub.cmd_addr)
        pub2.start()
        until(lambda: text(dc, "#st-run") == "run-2" and text(dc, "#st-connection") == "live",
              timeout=20)
        until(lambda: len(state_xs(state)) < 1000 and drawn(dc)[2] < run1_last
              and newer(state, drawn(dc)[2], state_xs(state)[-1]) < 16,
              timeout=10)  # the new run's chart, following its last bar again
        last0 = drawn(dc)[2]
        until(lambda: newer(state, last0, drawn(dc)[2]) >= 5, timeout=10)
        assert 400 <= drawn(dc)[0] <= 600
        assert state.conn.snapshots >= 2
        dc.driver.save_screenshot(str(ARTIFACTS / "ui_after_restart.png"))
        assert dc.get_logs() == [], "browser console errors"
    except BaseException:
        print("FAILED at", time.time(), state.status_line(), pub.is_alive(),
              text(dc, "#status"))
        dc.driver.save_screenshot(str(ARTIFACTS / "ui_failure.png"))
        raise
    finally:
        sub.stop()
        pub.stop()
        if pub2 is not None:
            pub2.stop()


def _alert(dc):
    try:
        return dc.driver.switch_to.alert
    except Exception:
        return None


def test_ui_with_the_real_bridge(browser, real_data_path):
    """The real engine replays real candles through adapters/zmq_bridge.py; the UI joins late,
    shows the engine's own setups (with the Gaussian-mixture curve), its pause reaches the
    engine, and it follows the engine's restart (another run id on the same ports)."""
    from tests.ui.engine_source import BridgedEngine

    dc = browser
    pub, cmd = f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"
    eng = BridgedEngine(real_data_path, "2024-01-01", "2024-01-20", pub=pub, commands=cmd,
                        speed=25).start()
    eng2 = None
    state = UiState()
    sub = Subscriber(state, pub, cmd, quiet_s=2.0, timeout_s=1.0)
    try:
        time.sleep(1.0)  # a late joiner: the snapshot brings what it missed
        sub.start()
        dc.start_server(create_app(state, cmd, n_visible=300), port=free_port())
        until(lambda: candles(dc) >= 50, timeout=20)
        types = dc.driver.execute_script(
            GD + "return gd.data.map(function (t) { return t.type; });")
        assert types.count("scattergl") == len(types) - 2, types  # the browser has WebGL
        assert [types[figures.IDX[k]] for k in ("vah", "val")] == ["scatter"] * 2  # the band
        dc.find_element("#btn-pause").click()
        until(lambda: "pause: ok" in text(dc, "#cmd-reply"), timeout=10)
        assert eng.bridge.paused, "the pause did not reach the engine"
        assert any(c.op == "pause" for c in eng.bridge.commands)  # journaled CommandApplied
        until(lambda: state.status_line()["paused"], timeout=10)  # the engine's heartbeat says so
        until(lambda: text(dc, "#st-entries") == "paused", timeout=30)  # a busy machine's render
        last0 = drawn(dc)[2]
        until(lambda: newer(state, last0, drawn(dc)[2]) >= 40, timeout=15)  # bars keep coming
        until(lambda: trace_len(dc, "sig_buy") + trace_len(dc, "sig_sell") > 0, timeout=20)
        until(lambda: "setup from the engine" in text(dc, "#setup-note"), timeout=15)
        until(lambda: len(dc.driver.find_elements(
            "css selector", "#profile .scatterlayer .js-line")) > 0, timeout=10)  # GMM curve
        assert not eng.done.is_set(), "the replay ended before the checks (machine too slow?)"
        dc.driver.save_screenshot(str(ARTIFACTS / "ui_real_bridge.png"))
        run1 = eng.bridge.run_id
        eng.stop()
        eng2 = BridgedEngine(real_data_path, "2024-02-01", "2024-02-04", pub=pub, commands=cmd,
                             speed=60).start()
        until(lambda: text(dc, "#st-run") == eng2.bridge.run_id != run1, timeout=20)
        until(lambda: str(dc.driver.execute_script(
            GD + f"var a = gd.data[{figures.IDX['up_wick']}].x[0] || '';"
            f"var b = gd.data[{figures.IDX['dn_wick']}].x[0] || '';"
            "return a < b && a ? a : b;"))
              .startswith("2024-02"), timeout=10)  # the new run's chart, not the old one
        assert dc.get_logs() == [], "browser console errors"
    except BaseException:
        print("browser console:", dc.get_logs())
        dc.driver.save_screenshot(str(ARTIFACTS / "ui_failure_bridge.png"))
        raise
    finally:
        sub.stop()
        eng.stop()
        if eng2 is not None:
            eng2.stop()
