"""The Dash monitoring app: a subscriber of the engine's ZeroMQ bridge (WIRE.md), nothing more.

``create_app(state, commands)`` wires the layout (``ui.layout``) to one ``UiState`` fed by the
``Subscriber`` thread. A ``dcc.Interval`` (400 ms) drains what arrived since the browser's cursor
and sends it as a ``Patch`` that extends the figures in place; a full figure goes out only on the
first render, after a snapshot (engine restart, gap) or when the browser fell behind the bounded
logs. Commands go to the engine's ROUTER from the callback's thread over a fresh DEALER; anything
that trades asks for a confirmation first.
"""

from __future__ import annotations

import math
import re
import time
from typing import Any

from dash import Dash, Input, Output, State, ctx, html, no_update
from dash.exceptions import PreventUpdate
from flask import request as http_request

from ui import figures, layout
from ui.sidebar import fallback_setup, normalize_engine_setup
from ui.state import UiState
from ui.subscriber import request

TRADING = {"close", "flatten", "buy", "sell"}
WINDOW_SLACK = 0.5  # bars held beyond the visible ones, as a share of them, on each side
RENDER_WAIT_S = 10.0  # a full render not answered by then is asked for again
WAIT_S = 10.0  # the page's long poll for bars is answered after this long at the latest
DECIMATED_RENDER_S = 2.0  # a window of multi-bar candles is redrawn at most this often
_X_KEY = re.compile(r"^xaxis\d*\.range(\[([01])\])?$")


def relayout_x_range(relayout: dict[str, Any]) -> list[Any] | None:
    """The x range of a Plotly ``relayoutData`` after a pan or zoom (any of the shared x axes:
    ``xaxis3.range[0]``/``[1]`` or ``xaxis.range``), or None."""
    lo = hi = None
    for key, v in relayout.items():
        m = _X_KEY.match(key)
        if not m:
            continue
        if m.group(2) is None and isinstance(v, list | tuple) and len(v) == 2:
            return [v[0], v[1]]
        if m.group(2) == "0":
            lo = v
        elif m.group(2) == "1":
            hi = v
    return [lo, hi] if lo is not None and hi is not None else None


def _fmt(v: Any, nd: int = 2) -> str:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return "-"
    return f"{f:,.{nd}f}" if math.isfinite(f) else "-"


def status_children(s: dict[str, Any]) -> list[Any]:
    """The status line: mode, symbol, last bar, connection and lag, engine alive, paused."""
    conn_color = {"live": "#00e676", "stale": "#ffa726", "connecting": "#90caf9"}.get(
        s["conn"], "#ff5252")
    lag = f"{s['lag_ms']:.0f} ms" if math.isfinite(s["lag_ms"]) else "-"
    ago = f"{s['since_s']:.1f} s ago" if math.isfinite(s["since_s"]) else "never"
    parts = [
        ("mode", str(s["mode"]), None), ("symbol", str(s["symbol"]), None),
        ("last bar", str(s["last_bar"]), None), ("bars", str(s["bars"]), None),
        ("connection", s["conn"], conn_color), ("lag", lag, None), ("last message", ago, None),
        ("engine", "finished" if s["finished"] else "alive" if s["alive"] else "not alive",
         "#90caf9" if s["finished"] else "#00e676" if s["alive"] else "#ff5252"),
        ("entries", "paused" if s["paused"] else "on", "#ffa726" if s["paused"] else None),
        ("run", str(s["run"] or "-"), "#888"),
    ]
    out: list[Any] = []
    for label, value, color in parts:
        out.append(html.Span([html.Span(f"{label} ", style={"color": "#888"}),
                              html.B(value, id=f"st-{label.replace(' ', '-')}",
                                     style={"color": color} if color else {})],
                             style={"marginRight": "16px"}))
    return out


def setup_rows(setup: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"strategy": r["strategy"], "side": r["side"], "entry": _fmt(r["entry"]),
             "stop": _fmt(r["stop"]),
             "targets": (_fmt(r["targets"][0]) + (f" (+{len(r['targets']) - 1})"
                                                  if len(r["targets"]) > 1 else "")
                         if r["targets"] else "-"),
             "rr": _fmt(r["rr"])} for r in setup["rows"]]


def create_app(state: UiState, commands: str, *, n_visible: int = 300, interval_ms: int = 100,
               min_update_ms: int = 200, max_candles: int = 2000, webgl: bool | None = None,
               setup_timeout_s: float = 1.0, command_timeout_s: float = 3.0) -> Dash:
    """The app. ``interval_ms``: how often the browser asks for news (an empty answer costs the
    server a few ms); ``min_update_ms``: the least time between two chart updates (bars that
    arrive meanwhile go together); ``max_candles``: a window with more bars is drawn as candles
    of several bars each; ``webgl``: draw the price chart's traces with WebGL (``scattergl``:
    about twice as fast a redraw, measured) - None: when the browser has WebGL, else SVG."""
    app = Dash(__name__, title="tradebot monitor", update_title=None)
    app.layout = layout.build(n_visible, interval_ms)
    min_gap_s = min_update_ms / 1000.0
    @app.server.route("/_ui/wait")
    def wait_bars() -> Any:  # the page's long poll: answers as soon as a bar arrives
        since = http_request.args.get("since", "")
        return {"bars": state.wait_bars(since, WAIT_S)}

    # The page asks the server to tell it when bars arrive (a long poll outside Dash) and then
    # fires the tick at once through the "wake" store, so a bar does not wait for the next
    # interval; the interval stays as the fallback (and drives coalesced updates).
    app.clientside_callback(
        "function (_) { if (window.__uiWait) { return window.dash_clientside.no_update; }"
        " window.__uiWait = true; var since = '';"
        " function loop() { fetch('" + app.config.requests_pathname_prefix + "_ui/wait?since='"
        " + encodeURIComponent(since)).then(function (r) { return r.json(); })"
        ".then(function (d) { if (d.bars !== since) { since = d.bars;"
        " window.dash_clientside.set_props('wake', {data: since}); } loop(); })"
        ".catch(function () { setTimeout(loop, 1000); }); }"
        " loop(); return window.dash_clientside.no_update; }",
        Output("wake", "data"), Input("wake", "id"))
    app.clientside_callback(  # does this browser have WebGL? (read once, at page load)
        "function (_) { try { var c = document.createElement('canvas');"
        " return !!(c.getContext('webgl2') || c.getContext('webgl')); }"
        " catch (e) { return false; } }",
        Output("gl", "data"), Input("gl", "id"))
    slack = WINDOW_SLACK

    def token(why: str, x_range: list[Any] | None = None) -> dict[str, Any]:
        return {"rid": time.time_ns(), "t": time.time(), "why": why, "range": x_range}

    # The browser holds a window of the bars, not all 10,000: the last `n-visible` bars plus
    # `slack` of them (following), or the range the user panned/zoomed to plus `slack` of its
    # width on each side. `tick` extends a following window in place with a Patch;
    # `full_render` draws a window anew when a "render" token asks for it (a snapshot, a pan or
    # zoom, a following window grown past its slack). Two callbacks, so that a full render is
    # never superseded by the next tick (Dash drops the older response of a callback fired
    # again while it runs), and no tick patches while a render is on its way (its patch would
    # land on the new window twice).
    @app.callback(
        Output("price", "figure", allow_duplicate=True),
        Output("cursor", "data", allow_duplicate=True),
        Output("win", "data", allow_duplicate=True),
        Output("render", "data", allow_duplicate=True),
        Input("tick", "n_intervals"), Input("wake", "data"),
        State("cursor", "data"), State("render", "data"), State("rendered", "data"),
        State("win", "data"), State("n-visible", "value"), State("follow", "value"),
        State("gl", "data"), prevent_initial_call=True,
    )
    def tick(_n: int, _wake: str | None, cursor: dict[str, Any] | None,
             render: dict[str, Any] | None,
             rendered: dict[str, Any] | None, win: dict[str, Any] | None, nvis: int,
             follow: list[str], has_gl: bool | None):
        if webgl is None and has_gl is None:
            raise PreventUpdate  # the page has not said yet whether it has WebGL
        now = time.time()
        cursor, win = cursor or {}, win or {}
        if render and render.get("rid") != (rendered or {}).get("rid") and (
                now - render.get("t", 0) < RENDER_WAIT_S):
            raise PreventUpdate  # a full render is on its way (however long it takes)
        delta, new_cursor = state.delta(cursor)
        if delta is None:  # another snapshot, or the browser fell behind the bounded logs
            return no_update, no_update, no_update, token("snapshot")
        if not any(delta[k] for k in ("bars", "features", "signals", "fills", "levels")):
            raise PreventUpdate
        if now - cursor.get("t", 0) < min_gap_s:
            raise PreventUpdate  # coalesce: at most one update per min_update_ms
        if not state.last_bar_ready(now=now):
            raise PreventUpdate  # the last bar's features and events are on their way
        new_cursor["t"] = now
        if win.get("hi") is not None:  # the user looks at history: nothing new is in view
            return no_update, new_cursor, no_update, no_update
        nvis = int(nvis or n_visible)
        if win.get("k", 1) > 1 or win.get("n", 0) + len(delta["bars"]) > nvis * (1 + 2 * slack):
            if win.get("k", 1) > 1 and now - (rendered or {}).get("t", 0) < DECIMATED_RENDER_S:
                raise PreventUpdate
            return no_update, no_update, no_update, token("window")  # draw a fresh window
        following = "follow" in (follow or [])
        ranges = state.visible_range(nvis) if following and delta["bars"] else None
        price = figures.patch_price(delta, ranges)
        win = {**win, "n": win.get("n", 0) + len(delta["bars"])}
        return price if price is not None else no_update, new_cursor, win, no_update

    @app.callback(
        Output("price", "figure"), Output("cursor", "data"), Output("win", "data"),
        Output("rendered", "data"),
        Input("render", "data"), Input("gl", "data"), State("n-visible", "value"),
        State("follow", "value"), State("win", "data"), prevent_initial_call=True,
    )
    def full_render(tok: dict[str, Any] | None, has_gl: bool | None, nvis: int,
                    follow: list[str], win: dict[str, Any] | None):
        if webgl is None and has_gl is None:
            raise PreventUpdate  # drawn once the page has said whether it has WebGL
        tok = tok or {}
        nvis = int(nvis or n_visible)
        if tok.get("why") == "view":
            x_range = tok.get("range")
        else:  # keep what the user looks at, or follow
            x_range = None if "follow" in (follow or []) else (win or {}).get("range")
        w = state.window(nvis, x_range, slack) if x_range is not None else None
        if w is None:
            x_range = None
            w = state.window(nvis, None, slack)
        if w is None:
            view, cur = state.view()
            ranges = None
        else:
            view, cur = state.view(w["lo"], w["hi"], max_candles)
            ranges = w["ranges"]
        cur["t"] = time.time()
        gl = bool(has_gl) if webgl is None else webgl
        return (figures.price_figure(view, ranges=ranges, webgl=gl), cur,
                {**view["window"], "range": x_range},
                {"rid": tok.get("rid"), "t": time.time()})

    @app.callback(
        Output("follow", "value"), Output("render", "data", allow_duplicate=True),
        Input("price", "relayoutData"), Input("follow", "value"), Input("n-visible", "value"),
        prevent_initial_call=True,
    )
    def view_change(relayout: dict[str, Any] | None, follow: list[str], _nvis: int):
        trig = ctx.triggered_id
        if trig == "n-visible":
            return ["follow"], token("view")
        if trig == "follow":
            if "follow" in (follow or []):
                return no_update, token("view")
            raise PreventUpdate  # stop following: keep what is shown, without moving it
        x_range = relayout_x_range(relayout or {})
        if x_range is not None:  # the user panned or zoomed: stop following, draw that range
            return [], token("view", x_range)
        if any(k.startswith("xaxis") and "autorange" in k for k in relayout or {}):
            return ["follow"], token("view")  # double-click: back to the last bars
        raise PreventUpdate

    @app.callback(
        Output("status", "children"), Output("strategies", "data"),
        Output("strategy-pick", "options"),
        Output("equity", "figure"), Output("eq-cursor", "data"),
        Input("status-tick", "n_intervals"), State("eq-cursor", "data"),
    )
    def status_tick(_n: int, eq_cursor: dict[str, Any] | None):
        status = status_children(state.status_line())
        rows = state.table()
        options = [{"label": r["strategy"], "value": r["strategy"]} for r in rows]
        eq_cursor = eq_cursor or {}
        with state.lock:
            accounts = list(state.accounts)
            log = state.logs["equity"]
            items, truncated = log.since(int(eq_cursor.get("k", 0)))
            new = {"gen": state.gen, "k": log.total, "accounts": accounts}
            full = (truncated or eq_cursor.get("gen") != state.gen
                    or eq_cursor.get("accounts") != accounts)
            if full:
                items = list(log.items)
        if full:
            equity = figures.equity_figure(items, accounts)
        else:
            equity = figures.patch_equity(items, accounts) or no_update
        return status, rows, options, equity, new

    @app.callback(Output("selected", "data"), Input("price", "clickData"),
                  Input("current-bar", "n_clicks"), prevent_initial_call=True)
    def select(click: dict[str, Any] | None, _n: int):
        if ctx.triggered_id == "current-bar":
            return None
        for p in (click or {}).get("points", []):
            if p.get("curveNumber") in (figures.IDX["sig_buy"], figures.IDX["sig_sell"]):
                return p.get("customdata")
        return no_update

    @app.callback(
        Output("setup-title", "children"), Output("setup-table", "data"),
        Output("profile", "figure"), Output("setup-note", "children"),
        Input("selected", "data"), Input("slow-tick", "n_intervals"),
    )
    def sidebar(alarm_id: str | None, _n: int):
        sig = state.signal(alarm_id)  # the selected alarm, or the last one
        setup = None
        if state.conn.state == "live":
            # the selected alarm: its setups and the profile at its bar; none selected: the
            # current bar's profile with the last alarm's setups
            rep = request(commands, {"op": "setup", "alarm_id": alarm_id}, setup_timeout_s)
            setup = normalize_engine_setup(rep, sig if alarm_id else None)
            if setup is not None and not alarm_id and sig is not None:
                last = normalize_engine_setup(request(
                    commands, {"op": "setup", "alarm_id": sig.get("alarm_id")},
                    setup_timeout_s), sig)
                if last is not None:
                    setup["rows"] = last["rows"]
        if setup is None:
            setup = fallback_setup(state, alarm_id)
        if alarm_id and sig is not None:
            title = [html.B(f"{'BUY' if sig.get('side') == 'long' else 'SELL'} alarm "),
                     html.Code(alarm_id, id="selected-alarm")]
        else:
            last_id = sig.get("alarm_id") if sig else None
            title = [html.B("current bar"),
                     html.Span(f"  (setups of the last alarm {last_id})" if last_id
                               else "  (no alarm yet)", style={"color": "#888"})]
        first = setup["rows"][0] if setup["rows"] else None
        prof = figures.profile_figure(setup["profile"], {
            "entry": first["entry"], "stop": first["stop"], "targets": first["targets"]}
            if first else None)
        src = "engine" if setup["source"] == "engine" else "UI fallback"
        note = f"setup from the {src}" + (f": {setup['note']}" if setup["note"] else "")
        return title, setup_rows(setup), prof, note

    @app.callback(
        Output("confirm", "displayed"), Output("confirm", "message"), Output("pending", "data"),
        Output("cmd-reply", "children", allow_duplicate=True),
        Input("btn-pause", "n_clicks"), Input("btn-resume", "n_clicks"),
        Input("btn-close", "n_clicks"), Input("btn-flatten", "n_clicks"),
        Input("btn-buy", "n_clicks"), Input("btn-sell", "n_clicks"),
        State("strategy-pick", "value"), State("selected", "data"),
        prevent_initial_call=True,
    )
    def ask(_p, _r, _c, _f, _b, _s, strategy: str | None, alarm_id: str | None):
        op = str(ctx.triggered_id or "").removeprefix("btn-")
        if not op:
            return no_update, no_update, no_update, no_update
        cmd: dict[str, Any] = {"op": op}
        if op in ("close", "buy", "sell"):
            if not strategy:
                return False, "", None, reply_children(
                    {"ok": False, "error": f"{op}: pick a strategy first"}, op)
            cmd["strategy"] = strategy
        if op in ("buy", "sell"):
            if not alarm_id:
                return False, "", None, reply_children(
                    {"ok": False, "error": f"{op}: click an alarm marker on the chart first"}, op)
            cmd["alarm_id"] = alarm_id
        if op not in TRADING:
            rep = request(commands, cmd, command_timeout_s)
            return False, "", None, reply_children(rep, op)
        what = {"close": f"Close the position of {strategy}?",
                "flatten": "Flatten every strategy's position?",
                "buy": f"BUY for {strategy} from alarm {alarm_id}?",
                "sell": f"SELL for {strategy} from alarm {alarm_id}?"}[op]
        return True, what + " This trades.", cmd, no_update

    @app.callback(
        Output("cmd-reply", "children", allow_duplicate=True),
        Input("confirm", "submit_n_clicks"), State("pending", "data"),
        prevent_initial_call=True,
    )
    def confirmed(_n: int, cmd: dict[str, Any] | None):
        if not cmd:
            return no_update
        return reply_children(request(commands, cmd, command_timeout_s), str(cmd.get("op")))

    return app


def reply_children(rep: dict[str, Any], op: str) -> list[Any]:
    ok = bool(rep.get("ok"))
    text = (f"{op}: ok" + (f" ({rep.get('result')})" if rep.get("result") not in (None, "")
                           else "")
            if ok else f"{op}: refused: {rep.get('error')}")
    return [html.Span(time.strftime("%H:%M:%S "), style={"color": "#888"}),
            html.Span(text, id="cmd-reply-text", **{"data-ok": "1" if ok else "0"},
                      style={"color": "#00e676" if ok else "#ff5252"})]
