"""Event-to-browser latency of the Dash UI with a 10,000-candle chart (headless Chromium).

Workload: the real engine's events over about 10,300 real BTC/USDT 15m bars
(``tests/ui/engine_source.py``); a WIRE.md publisher (``tests/ui/publisher.py``, real ZeroMQ
PUB + ROUTER) holds the first 10,000 as history, the UI (``ui.app`` with its ``Subscriber``
thread) takes them in one snapshot, and then the publisher sends one bar (with its features,
equity and whatever the strategies did) every ``period`` seconds. The page records, on every
``plotly_afterplot`` of the price chart, the wall time and the x of its last candle; a bar's
latency is that time minus the time its ``bar`` message was published (same machine, same
clock): ZeroMQ, the SUB thread, the next ``dcc.Interval`` tick, the Patch over HTTP and
Plotly's redraw of the chart (the window of bars the browser holds: the last ``--visible`` bars
and some slack, not the 10,000). Target (issue 10): p95 < 300 ms.

Also reported: the first render (page load to the first afterplot that shows the last of the
10,000 bars), the size of one incremental update against a full figure of all 10,000 bars, and
how long the history takes to appear after a pan to the oldest bars and a zoom out to all of them
(a ``plotly_relayout`` as a drag or the wheel emits it; the window is drawn anew server-side).

Run alone: ``python bench/bench_ui.py [--bars N] [--interval-ms MS]``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import REAL_DATA

HOOK = """
var gd = document.querySelector('#price .js-plotly-plot');
if (!gd || !gd.on || !gd.data) { return false; }
if (!window.__uiLog) {
  window.__uiLog = [];
  gd.on('plotly_afterplot', function () {
    var last = '', n = 0;
    [UP, DN].forEach(function (i) {
      var t = gd.data && gd.data[i];
      if (t && t.x && t.x.length) { n += t.x.length / 3; var x = t.x[t.x.length - 2];
                                    if (x > last) { last = x; } }
    });
    if (n) { window.__uiLog.push([Date.now(), n, last]); }
  });
}
return true;
"""


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(bars: int = 10_000, live_bars: int = 40, period: float = 0.5,
        interval_ms: int | None = None, modes: tuple[str, ...] = ("svg", "webgl")
        ) -> dict[str, object]:
    """One UI process holding ``bars`` candles; for each of ``modes`` (the price chart's traces
    as SVG ``scatter`` or WebGL ``scattergl``) a fresh browser page, its first render, then
    ``live_bars`` bars one every ``period`` s, then a pan and a zoom-out. Keys are prefixed with
    the mode after the first one (``webgl_latency_p95_ms``)."""
    if shutil.which("chromium") is None or shutil.which("chromedriver") is None:
        raise RuntimeError("bench_ui needs Debian's chromium and chromedriver (apt-get install "
                           "chromium chromium-driver)")
    from dash.testing.wait import until

    from tests.ui.engine_source import engine_messages
    from tests.ui.publisher import WirePublisher
    from ui import figures
    from ui.state import UiState
    from ui.subscriber import Subscriber

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    live_all = live_bars * len(modes)
    days = (bars + live_all + 400) // 96 + 2  # 96 bars a day; the profile warms up first
    start = "2023-06-01"
    end = time.strftime("%Y-%m-%d", time.gmtime(time.mktime(time.strptime(start, "%Y-%m-%d"))
                                                 + days * 86400))
    t0 = time.perf_counter()
    msgs = engine_messages(REAL_DATA, start, end)
    n_have = sum(1 for m in msgs if m[0].startswith("bar."))
    prep_s = time.perf_counter() - t0
    pub = WirePublisher(msgs, rate_bars=1.0 / period, start_bars=n_have - live_all - 2)
    pub.hold.set()
    pub.start()
    pub.ready.wait(30)
    state = UiState(max_bars=bars + live_all + 10)
    sub = Subscriber(state, pub.pub_addr, pub.cmd_addr, bars=bars, timeout_s=10.0)
    sub.start()
    out: dict[str, object] = {"chart_candles": bars, "live_bars": live_bars,
                              "bar_period_s": period, "interval_ms": interval_ms,
                              "prepare_events_s": round(prep_s, 2)}
    os.environ.setdefault("DASH_TEST_CHROMEPATH", shutil.which("chromium") or "")
    try:
        until(lambda: len(state.bars_by_seq) >= bars, timeout=60)
        for i, mode in enumerate(modes):
            res = _one_mode(state, pub, mode, live_bars, period, interval_ms)
            out.update({(f"{mode}_{k}" if i else k): v for k, v in res.items()})
        # sizes: one incremental update vs a full figure of every bar
        view, _ = state.view()
        out["full_figure_bytes"] = len(json.dumps(figures.price_figure(view), default=str))
        out["one_bar_patch_bytes"] = _one_bar_patch_bytes(state, figures)
    finally:
        sub.stop()
        pub.stop()
    return out


def _one_mode(state, pub, mode: str, live_bars: int, period: float,  # type: ignore[no-untyped-def]
              interval_ms: int | None) -> dict[str, object]:
    from dash.testing.application_runners import ThreadedRunner
    from dash.testing.composite import DashComposite
    from dash.testing.wait import until
    from selenium import webdriver

    from ui import figures
    from ui.app import create_app

    opts = webdriver.ChromeOptions()
    opts.add_argument("--enable-unsafe-swiftshader")  # WebGL in headless Chromium (software)
    with ThreadedRunner() as server, DashComposite(
            server, browser="Chrome", headless=True, percy_run=False, percy_finalize=False,
            wait_timeout=60, options=[opts]) as dc:
        dc.driver.set_window_size(1500, 1100)
        t_load = time.time()
        kw: dict[str, object] = {} if interval_ms is None else {"interval_ms": interval_ms}
        dc.start_server(create_app(state, pub.cmd_addr, webgl=mode == "webgl", **kw),
                        port=_port())
        hook = HOOK.replace("UP", str(figures.IDX["up_wick"])).replace(
            "DN", str(figures.IDX["dn_wick"]))
        until(lambda: dc.driver.execute_script(hook), timeout=240, poll=0.01)
        with state.lock:
            last_x = next(reversed(state.bars_by_seq.values())).x
            held = len(state.bars_by_seq)
        # the first render: the page shows the last of the 10,000 bars the UI holds (read from
        # the chart's data: that render may come before the hook is installed)
        until(lambda: _drawn(dc)[1] == last_x, timeout=300, poll=0.02)
        first = time.time() - t_load
        shown_candles = _drawn(dc)[0]
        n0 = len(pub.sent_bars)
        cpu0 = _browser_cpu_s(dc)
        pub.hold.clear()
        until(lambda: len(pub.sent_bars) >= n0 + live_bars, timeout=live_bars * period * 4)
        pub.hold.set()
        time.sleep(2.0)
        cpu1 = _browser_cpu_s(dc)
        log = dc.driver.execute_script("return window.__uiLog || [];")
        history = _pan_to_history(dc, state)
        errors = dc.get_logs()
    sent = pub.sent_bars[n0:n0 + live_bars]
    with state.lock:
        x_of = {b.seq: b.x for b in state.bars_by_seq.values()}
    shown: dict[str, float] = {}
    for t_ms, _, x in log:
        shown.setdefault(str(x), t_ms / 1000.0)
    lat = sorted((shown[x_of[seq]] - t) * 1000.0 for seq, t in sent
                 if seq in x_of and x_of[seq] in shown)
    return {
        "ui_bars_held": held, "browser_candles_drawn": shown_candles,
        "first_render_s": round(first, 2), "bars_seen": len(lat),
        "latency_p50_ms": _pct(lat, 50), "latency_p95_ms": _pct(lat, 95),
        "latency_max_ms": round(lat[-1], 1) if lat else None, "target_p95_ms": 300,
        "browser_console_errors": len(errors),
        # CPU time of the browser's processes per live bar (the page's renderer; the GPU
        # process rasterizes WebGL in software): less noisy than wall time on a shared machine
        **{f"browser_cpu_ms_per_bar_{k}": round((cpu1.get(k, 0.0) - cpu0.get(k, 0.0)) * 1000
                                                / live_bars, 1) for k in ("renderer", "gpu")},
        **history,
    }


def _browser_cpu_s(dc) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """User + system CPU seconds of the browser's processes (children of chromedriver), by
    kind (``renderer``, ``gpu``, ``other``); empty where /proc is not there."""
    try:
        root = dc.driver.service.process.pid
        kids: dict[int, list[int]] = {}
        for entry in Path("/proc").iterdir():
            d = entry.name
            if d.isdigit():
                try:
                    ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
                kids.setdefault(ppid, []).append(int(d))
        out: dict[str, float] = {}
        todo, tck = list(kids.get(root, [])), os.sysconf("SC_CLK_TCK")
        while todo:
            pid = todo.pop()
            todo += kids.get(pid, [])
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
                st = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            kind = ("renderer" if b"--type=renderer" in cmd else
                    "gpu" if b"--type=gpu-process" in cmd else "other")
            out[kind] = out.get(kind, 0.0) + (int(st[11]) + int(st[12])) / tck
        return out
    except (AttributeError, OSError):
        return {}


def _drawn(dc) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    """Candles in the browser's price chart and the time of the last one."""
    return tuple(dc.driver.execute_script(  # type: ignore[return-value]
        "var gd = document.querySelector('#price .js-plotly-plot');"
        "var n = 0, last = ''; if (!gd || !gd.data) return [0, ''];"
        f"[{figures_idx('up_wick')}, {figures_idx('dn_wick')}].forEach(function (i) {{"
        "  var t = gd.data[i]; if (t && t.x && t.x.length) { n += t.x.length / 3;"
        "    var x = t.x[t.x.length - 2]; if (x > last) { last = x; } } });"
        "return [n, last];"))


def _pan_to_history(dc, state) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """Pan to the oldest bars (a ``plotly_relayout`` as a drag emits it), then zoom out to all
    of them: the time until the browser draws that range, and the candles it draws."""
    from dash.testing.wait import until

    with state.lock:
        bars = list(state.bars_by_seq.values())
    out: dict[str, object] = {}
    for name, (a, b, end) in (("pan_to_oldest", (bars[0].x, bars[299].x, bars[299].x)),
                              ("zoom_out_all", (bars[0].x, bars[-1].x, bars[-20].x))):
        n_log = int(dc.driver.execute_script("return window.__uiLog.length;"))
        t0 = time.time()
        dc.driver.execute_script(
            "var gd = document.querySelector('#price .js-plotly-plot');"
            "Plotly.relayout(gd, {'xaxis.range': [arguments[0], arguments[1]]});", a, b)
        first = dc.driver.execute_script  # the window's first candle is at or before a

        def drawn() -> bool:
            return bool(first(
                "var gd = document.querySelector('#price .js-plotly-plot');"
                "var l = window.__uiLog; if (l.length <= arguments[1]) return false;"
                f"var xs = [{figures_idx('up_wick')}, {figures_idx('dn_wick')}].map("
                "function (i) { return gd.data[i].x[0] || 'z'; });"
                "return (xs[0] < xs[1] ? xs[0] : xs[1]) <= arguments[0]"
                " && l[l.length - 1][2] >= arguments[2];", a, n_log, end))

        try:
            until(drawn, timeout=120, poll=0.02)
        except Exception:
            print("history view not drawn:", a, b, n_log, dc.driver.execute_script(
                "var gd = document.querySelector('#price .js-plotly-plot');"
                "return [window.__uiLog.slice(-3), gd.data[0].x.slice(0, 3), gd.layout.xaxis.range,"
                " typeof Plotly];"), dc.get_logs())
            raise
        out[f"{name}_ms"] = round((time.time() - t0) * 1000.0, 1)
        out[f"{name}_candles_drawn"] = int(dc.driver.execute_script(
            "var l = window.__uiLog; return l[l.length - 1][1];"))
    return out


def figures_idx(name: str) -> int:
    from ui import figures

    return figures.IDX[name]


def _pct(xs: list[float], p: float) -> float | None:
    if not xs:
        return None
    k = min(len(xs) - 1, max(0, round(p / 100 * (len(xs) - 1))))
    return round(xs[k], 1)


def _one_bar_patch_bytes(state, figures) -> int:  # type: ignore[no-untyped-def]
    with state.lock:
        cur = state.cursor()
        cur = {k: (v - 1 if k in ("bars", "features", "equity") else v) for k, v in cur.items()}
    delta, _ = state.delta(cur)
    if delta is None:
        return 0
    p = figures.patch_price(delta, state.visible_range(300))
    return len(json.dumps(p.to_plotly_json(), default=str)) if p is not None else 0


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--bars", type=int, default=10_000)
    ap.add_argument("--live", type=int, default=40)
    ap.add_argument("--period", type=float, default=0.5)
    ap.add_argument("--interval-ms", type=int, default=None,
                    help="the UI's poll period (default: the UI's own)")
    ap.add_argument("--modes", default="svg,webgl",
                    help="price chart drawn as svg, webgl or both (default svg,webgl)")
    a = ap.parse_args()
    for k, v in run(a.bars, a.live, a.period, a.interval_ms,
                    tuple(a.modes.split(","))).items():
        print(f"  {k:32s} {v}")
