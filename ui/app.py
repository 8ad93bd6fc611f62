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
import time
from typing import Any

from dash import Dash, Input, Output, State, ctx, html, no_update

from ui import figures, layout
from ui.sidebar import fallback_setup, normalize_engine_setup
from ui.state import UiState
from ui.subscriber import request

TRADING = {"close", "flatten", "buy", "sell"}


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


def create_app(state: UiState, commands: str, *, n_visible: int = 300, interval_ms: int = 400,
               setup_timeout_s: float = 1.0, command_timeout_s: float = 3.0) -> Dash:
    app = Dash(__name__, title="tradebot monitor", update_title=None)
    app.layout = layout.build(n_visible, interval_ms)

    # Two callbacks so that a slow full render is never superseded by the next Interval tick
    # (Dash drops the older response of a callback fired again while it runs): the tick only
    # patches; when it needs a full figure it sets the "render" token, and render() answers that.
    @app.callback(
        Output("price", "figure", allow_duplicate=True),
        Output("equity", "figure", allow_duplicate=True),
        Output("cursor", "data", allow_duplicate=True), Output("render", "data"),
        Output("status", "children"), Output("strategies", "data"),
        Output("strategy-pick", "options"),
        Input("tick", "n_intervals"),
        State("cursor", "data"), State("render", "data"), State("n-visible", "value"),
        State("follow", "value"), prevent_initial_call=True,
    )
    def tick(_n: int, cursor: dict[str, Any] | None, render: dict[str, Any] | None, nvis: int,
             follow: list[str]):
        status = status_children(state.status_line())
        rows = state.table()
        options = [{"label": r["strategy"], "value": r["strategy"]} for r in rows]
        delta, new_cursor = state.delta(cursor)
        if delta is None or delta["accounts"] != (cursor or {}).get("accounts"):
            gen = state.gen
            fell_behind = (cursor or {}).get("gen") == gen  # same snapshot, logs moved on
            if render and render.get("gen") == gen and (
                    not fell_behind or time.time() - render.get("t", 0) < 10):
                token = no_update  # a full render for this snapshot is on its way (however
                # long a 10,000-candle figure takes on a busy machine: never a second one)
            else:
                token = {"gen": gen, "t": time.time()}
            return no_update, no_update, no_update, token, status, rows, options
        new_cursor["accounts"] = delta["accounts"]
        ranges = (state.visible_range(int(nvis or n_visible))
                  if "follow" in (follow or []) and delta["bars"] else None)
        price = figures.patch_price(delta, ranges)
        equity = figures.patch_equity(delta["equity"], delta["accounts"])
        return (price if price is not None else no_update,
                equity if equity is not None else no_update,
                new_cursor, no_update, status, rows, options)

    @app.callback(
        Output("price", "figure"), Output("equity", "figure"), Output("cursor", "data"),
        Input("render", "data"), State("n-visible", "value"), State("follow", "value"),
        prevent_initial_call=True,
    )
    def full_render(_token: dict[str, Any] | None, nvis: int, follow: list[str]):
        view, cur = state.view()
        ranges = (state.visible_range(int(nvis or n_visible))
                  if "follow" in (follow or []) else None)
        cur["accounts"] = view["accounts"]
        return (figures.price_figure(view, ranges=ranges),
                figures.equity_figure(view["equity"], view["accounts"]), cur)

    @app.callback(Output("follow", "value"), Input("price", "relayoutData"),
                  Input("n-visible", "value"), prevent_initial_call=True)
    def follow_toggle(relayout: dict[str, Any] | None, _nvis: int):
        if ctx.triggered_id == "n-visible":
            return ["follow"]
        relayout = relayout or {}
        if any(k.startswith("xaxis.range") for k in relayout):
            return []  # the user panned or zoomed: stop following the last bar
        if any(k.startswith("xaxis.autorange") for k in relayout):
            return ["follow"]
        return no_update

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
