"""Plotly figures of the monitor, as plain functions of ``UiState.view()`` / ``delta()`` output.

The price figure has a fixed list of traces (``TRACES``) so that an update is a Dash ``Patch``
that extends each trace's arrays in place (``patch_price``): the browser receives the new bars
only, never the 10,000 it already shows. A full figure (``price_figure``) is built on the first
render and after every snapshot (another run, a gap).

Rows: 1 candles with the value area band, POC, HVN levels, regression channel, signal markers
(text = alarm id, ``customdata`` = alarm id for the sidebar), fills and each strategy's working
stop and target at every bar; 2 volume; 3 stochastics S9/S14/S40/S60 with 20/80 lines; 4 the
CNN's probabilities (empty until a ``*_p_buy`` column arrives).
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Iterable
from typing import Any

import plotly
import plotly.graph_objects as go
from dash import Patch
from plotly.subplots import make_subplots

from ui.state import find_columns, parse_x

UP, DOWN = "#26a69a", "#ef5350"
STOCH = {"s9": "gold", "s14": "dodgerblue", "s40": "white", "s60": "magenta"}
CNN = {"p_buy": "#00e676", "p_sell": "#ff5252", "p_hold": "#9e9e9e"}
PALETTE = ["#42a5f5", "#ffa726", "#ab47bc", "#66bb6a", "#ef5350", "#26c6da", "#d4e157",
           "#8d6e63"]

# (name, row): the order is the contract between price_figure and patch_price.
TRACES: list[tuple[str, int]] = [
    ("ohlc", 1), ("up", 1), ("dn", 1),
    ("vah", 1), ("val", 1), ("poc", 1), ("hvn_below", 1), ("hvn_above", 1),
    ("reg_mid", 1), ("reg_up", 1), ("reg_lo", 1),
    ("stop", 1), ("target", 1), ("stop_now", 1), ("target_now", 1),
    ("entry", 1), ("exit", 1), ("sig_buy", 1), ("sig_sell", 1),
    ("vol_up", 2), ("vol_dn", 2), ("s9", 3), ("s14", 3), ("s40", 3), ("s60", 3),
    ("p_buy", 4), ("p_sell", 4), ("p_hold", 4),
]
IDX = {name: i for i, (name, _) in enumerate(TRACES)}
# per trace, the arrays besides x and y that updates extend
EXTRA_ARRAYS = {
    **{k: ("text",) for k in ("ohlc", "stop_now", "target_now")},
    **{k: ("text", "customdata") for k in ("sig_buy", "sig_sell", "entry", "exit", "stop",
                                           "target")},
}
X_AXES = ("xaxis", "xaxis2", "xaxis3", "xaxis4")  # shared: every row follows the same range
REG_K = 2.0  # channel half-width in residual standard deviations
ALWAYS_VISIBLE = ("ohlc", "up", "dn", "vol_up", "vol_dn")
# the page's legend (HTML, ui/layout.py): label, colour, how it is drawn (line, dash, dot, fill,
# marker symbol)
LEGEND: list[tuple[str, str, str]] = [
    ("up", UP, "fill"), ("down", DOWN, "fill"), ("value area", "rgba(255,193,7,0.35)", "fill"),
    ("POC", "#ffc107", "line"), ("HVN", "#90caf9", "dot"), ("regression ±2σ", "#b39ddb", "dash"),
    ("stops", "#ff1744", "line"), ("targets", "#00e676", "line"), ("entries", "#29b6f6", "●"),
    ("exits", "#ffa726", "✕"), ("BUY alarm", "#ffeb3b", "▲"), ("SELL alarm", "#e040fb", "▼"),
    *((k.upper(), c, "line") for k, c in STOCH.items()),
    *((k, c, "line") for k, c in CNN.items()),
]
SVG_ALWAYS = ("up", "dn", "vol_up", "vol_dn", "vah", "val")  # filled: SVG even with WebGL


def _nan(v: float) -> float | None:
    return v if v is not None and math.isfinite(v) else None


BODY_W = 0.7  # a candle's body, volume bar: this share of its period wide
PLOT_PX = 900  # about the chart's width in pixels: a wick is this share of the range wide


def candle_widths(period_ms: float, span_ms: float | None) -> tuple[float, float]:
    """Half-widths in ms of a candle's body and wick: the body ``BODY_W`` of the period, the
    wick about one pixel of a chart showing ``span_ms`` (at most half the body)."""
    body = period_ms * BODY_W / 2
    px = (span_ms or period_ms * 300) / PLOT_PX
    return body, min(body / 2, max(period_ms * 0.03, px / 2))


def _columns(bars: list[Any], period_ms: float, span_ms: float | None = None
             ) -> dict[str, dict[str, list[Any]]]:
    """Candles and volume as filled rectangles, one SVG path per trace (``fill: toself``,
    ``[x0, x1, x1, x0, None]`` per rectangle, x in epoch ms), and ``ohlc``: one point per candle
    (its close, the OHLC text on hover; the chart's bars in order).

    Plotly draws a line trace as one ``<path>`` per run between gaps: candles drawn as line
    segments were 1,400 SVG elements per update, restyled on every redraw.
    """
    bw, ww = candle_widths(period_ms, span_ms)
    out: dict[str, dict[str, list[Any]]] = {
        k: {"x": [], "y": []} for k in ("up", "dn", "vol_up", "vol_dn")}
    ohlc: dict[str, list[Any]] = {"x": [], "y": [], "text": []}
    out["ohlc"] = ohlc
    for b in bars:
        up = b.close >= b.open
        c, v = (out["up"], out["vol_up"]) if up else (out["dn"], out["vol_dn"])
        t = float(b.t_ms)
        lo_b, hi_b = (b.open, b.close) if up else (b.close, b.open)
        cx, cy = c["x"], c["y"]
        for x0, x1, y0, y1 in ((t - bw, t + bw, lo_b, hi_b), (t - ww, t + ww, b.low, lo_b),
                               (t - ww, t + ww, hi_b, b.high)):
            if y1 > y0:
                cx += (x0, x1, x1, x0, None)
                cy += (y0, y0, y1, y1, None)
        v["x"] += (t - bw, t + bw, t + bw, t - bw, None)
        v["y"] += (0.0, 0.0, b.volume, b.volume, None)
        ohlc["x"].append(b.x)
        ohlc["y"].append(b.close)
        ohlc["text"].append(
            f"O {b.open:.2f}  H {b.high:.2f}  L {b.low:.2f}  C {b.close:.2f}  V {b.volume:.2f}")
    return out


def candle_count(fig_data: list[dict[str, Any]]) -> int:
    """Candles in a figure's ``data`` (one point per candle in the ``ohlc`` trace)."""
    return len(fig_data[IDX["ohlc"]].get("x") or ())


def _feature_columns(features: Iterable[tuple[int, dict[str, float]]], x_of: dict[int, str],
                     cols: dict[str, str]) -> dict[str, dict[str, list[Any]]]:
    out: dict[str, dict[str, list[Any]]] = {}
    names = ["vah", "val", "poc", "hvn_below", "hvn_above", "reg_mid", "reg_up", "reg_lo",
             "s9", "s14", "s40", "s60", "p_buy", "p_sell", "p_hold"]
    for n in names:
        out[n] = {"x": [], "y": []}
    roles = [(out[r]["x"], out[r]["y"], cols[r]) for r in
             ("vah", "val", "poc", "hvn_below", "hvn_above", "s9", "s14", "s40", "s60",
              "p_buy", "p_sell", "p_hold") if r in cols]
    reg = "reg_mid" in cols
    mid_c, sd_c = cols.get("reg_mid", ""), cols.get("reg_std", "")
    nan = math.nan
    for seq, vals in features:
        x = x_of.get(seq)
        if x is None:
            continue
        for xs, ys, col in roles:
            v = vals.get(col, nan)
            xs.append(x)
            ys.append(v if v == v and v not in (math.inf, -math.inf) else None)
        if reg:
            mid = vals.get(mid_c, nan)
            sd = vals.get(sd_c, nan)
            for role, k in (("reg_mid", 0.0), ("reg_up", REG_K), ("reg_lo", -REG_K)):
                out[role]["x"].append(x)
                out[role]["y"].append(_nan(mid + k * sd))
    return {k: v for k, v in out.items() if v["x"]}


def _marker_columns(signals: list[dict[str, Any]], fills: list[dict[str, Any]],
                    levels: list[Any], x_of: dict[int, str]) -> dict[str, dict[str, list[Any]]]:
    out: dict[str, dict[str, list[Any]]] = {
        k: {"x": [], "y": [], "text": [], "customdata": []}
        for k in ("sig_buy", "sig_sell", "entry", "exit", "stop", "target")}
    for s in signals:
        x = x_of.get(int(s.get("seq", -1)))
        if x is None:
            continue
        key = "sig_buy" if s.get("side") == "long" else "sig_sell"
        out[key]["x"].append(x)
        out[key]["y"].append(s.get("entry_price"))
        out[key]["text"].append(str(s.get("alarm_id", "")))
        out[key]["customdata"].append(str(s.get("alarm_id", "")))
    for f in fills:
        if f.get("x") is None:
            continue
        key = "entry" if f.get("is_entry") else "exit"
        out[key]["x"].append(f["x"])
        out[key]["y"].append(f.get("price"))
        out[key]["text"].append(f"{f.get('account', '')} {f.get('side', '')} "
                                f"{f.get('tag', '')}".strip())
        out[key]["customdata"].append(str(f.get("account", "")))
    for lv in levels:  # one segment per run of a level: [first open, last close, gap]
        o = out[lv.kind]
        o["x"] += [lv.x, lv.x_end, None]
        o["y"] += [lv.price, lv.price, None]
        label = f"{lv.account} {lv.kind}"
        o["text"] += [label, label, None]
        o["customdata"] += [lv.account, lv.account, None]
    return {k: v for k, v in out.items() if v["x"]}


def _live_columns(live: list[Any]) -> dict[str, dict[str, list[Any]]]:
    """The stop/target runs still going (replaced, not extended, on every update)."""
    out = {k: {"x": [], "y": [], "text": []} for k in ("stop_now", "target_now")}
    for lv in live:
        o = out[lv.kind + "_now"]
        o["x"] += [lv.x, lv.x_end, None]
        o["y"] += [lv.price, lv.price, None]
        label = f"{lv.account} {lv.kind} (working)"
        o["text"] += [label, label, None]
    return out


@functools.lru_cache(maxsize=2)
def _price_skeleton(webgl: bool = False) -> str:
    """The price figure without data, as JSON (built once: plotly's objects are slow).
    ``webgl``: every trace a ``scattergl`` (drawn by the GPU instead of as SVG paths)."""
    fig = make_subplots(rows=4, cols=1, shared_xaxes=True, vertical_spacing=0.015,
                        row_heights=[0.55, 0.1, 0.2, 0.15])
    line = {"width": 1}
    specs: dict[str, Any] = {
        "ohlc": go.Scatter(name="price", mode="lines", legendgroup="price",
                           showlegend=False, line={"color": UP, "width": 0},
                           hoverinfo="x+text"),
        "up": go.Scatter(name="price", mode="none", legendgroup="price", fill="toself",
                         fillcolor=UP, hoverinfo="skip"),
        "dn": go.Scatter(name="down", mode="none", legendgroup="price", showlegend=False,
                         fill="toself", fillcolor=DOWN, hoverinfo="skip"),
        "vah": go.Scatter(name="VAH", mode="lines", line={"width": 0, "shape": "hv"},
                          hoverinfo="skip", showlegend=False),
        "val": go.Scatter(name="value area", mode="lines", line={"width": 0, "shape": "hv"},
                          fill="tonexty", fillcolor="rgba(255,193,7,0.10)", hoverinfo="skip"),
        "poc": go.Scatter(name="POC", mode="lines", line={"color": "#ffc107", "width": 1.2,
                                                          "shape": "hv"}),
        "hvn_below": go.Scatter(name="HVN", mode="lines", legendgroup="hvn",
                                line={"color": "#90caf9", "width": 1, "dash": "dot",
                                      "shape": "hv"}),
        "hvn_above": go.Scatter(name="HVN above", mode="lines", legendgroup="hvn",
                                showlegend=False, line={"color": "#90caf9", "width": 1,
                                                        "dash": "dot", "shape": "hv"}),
        "reg_mid": go.Scatter(name="regression", mode="lines", legendgroup="reg",
                              line={"color": "#b39ddb", "width": 1}),
        "reg_up": go.Scatter(name="reg +2σ", mode="lines", legendgroup="reg", showlegend=False,
                             line={"color": "#b39ddb", "width": 1, "dash": "dash"}),
        "reg_lo": go.Scatter(name="reg -2σ", mode="lines", legendgroup="reg", showlegend=False,
                             line={"color": "#b39ddb", "width": 1, "dash": "dash"}),
        "stop": go.Scatter(name="stops", mode="lines", hoverinfo="text+y", connectgaps=False,
                           line={"color": "rgba(255,23,68,0.8)", "width": 2}),
        "target": go.Scatter(name="targets", mode="lines", hoverinfo="text+y",
                             connectgaps=False, line={"color": "rgba(0,230,118,0.8)",
                                                      "width": 2}),
        "stop_now": go.Scatter(name="stop now", mode="lines", hoverinfo="text+y",
                               showlegend=False, line={"color": "#ff1744", "width": 2.5}),
        "target_now": go.Scatter(name="target now", mode="lines", hoverinfo="text+y",
                                 showlegend=False, line={"color": "#00e676", "width": 2.5}),
        "entry": go.Scatter(name="entries", mode="markers", hoverinfo="text+y",
                            marker={"symbol": "circle", "size": 8, "color": "#29b6f6",
                                    "line": {"width": 1, "color": "white"}}),
        "exit": go.Scatter(name="exits", mode="markers", hoverinfo="text+y",
                           marker={"symbol": "x", "size": 8, "color": "#ffa726"}),
        "sig_buy": go.Scatter(name="BUY alarm", mode="markers", hoverinfo="text+y",
                              marker={"symbol": "triangle-up", "size": 13, "color": "#ffeb3b",
                                      "line": {"width": 1, "color": "black"}}),
        "sig_sell": go.Scatter(name="SELL alarm", mode="markers", hoverinfo="text+y",
                               marker={"symbol": "triangle-down", "size": 13, "color": "#e040fb",
                                       "line": {"width": 1, "color": "black"}}),
        "vol_up": go.Scatter(name="volume", mode="none", showlegend=False, fill="toself",
                             fillcolor=UP, hoverinfo="skip"),
        "vol_dn": go.Scatter(name="volume down", mode="none", showlegend=False, fill="toself",
                             fillcolor=DOWN, hoverinfo="skip"),
        **{k: go.Scatter(name=k.upper(), mode="lines", line={**line, "color": c})
           for k, c in STOCH.items()},
        **{k: go.Scatter(name=k, mode="lines", line={**line, "color": c})
           for k, c in CNN.items()},
    }
    for name, row in TRACES:  # empty traces: validating 10,000-point arrays costs seconds
        fig.add_trace(specs[name], row=row, col=1)
    for y in (20, 80):
        fig.add_hline(y=y, row=3, col=1, line={"color": "#888", "width": 1, "dash": "dash"})
    fig.update_yaxes(range=[0, 100], row=3, col=1, title_text="stoch")
    fig.update_yaxes(range=[0, 1], row=4, col=1, title_text="CNN")
    fig.update_yaxes(title_text="vol", row=2, col=1)
    fig.update_xaxes(rangeslider_visible=False, type="date")
    for row in (2, 3, 4):  # grid lines in the price panel only (20/80 lines in the stochastics)
        fig.update_xaxes(showgrid=False, row=row, col=1)
        fig.update_yaxes(showgrid=False, row=row, col=1)
    # no Plotly legend: it was redrawn (and measured) on every update, about a third of a
    # redraw; the page shows LEGEND as HTML above the chart (ui/layout.py)
    fig.update_layout(
        template="plotly_dark", uirevision="keep", dragmode="pan", hovermode="x",
        margin={"l": 55, "r": 10, "t": 12, "b": 25}, paper_bgcolor="#111", plot_bgcolor="#111",
        showlegend=False, height=760, bargap=0.1,
    )
    out = fig.to_plotly_json()
    if webgl:  # the fills stay SVG (one path each): the candles, volume and value-area band
        for (name, _), tr in zip(TRACES, out["data"], strict=True):
            if name not in SVG_ALWAYS:
                tr["type"] = "scattergl"
    return json.dumps(out, cls=plotly.utils.PlotlyJSONEncoder)


def _span(ranges: tuple[list[Any], Any] | None) -> float | None:
    """The width in ms of the x range in ``ranges`` (None: not known)."""
    if ranges is None:
        return None
    t0, t1 = (parse_x(v) for v in ranges[0][:2])
    return abs(t1 - t0) if t0 is not None and t1 is not None else None


def _period(bars: list[Any]) -> float:
    """A candle's period when the state did not say: the least gap between two of them."""
    gaps = [b.t_ms - a.t_ms for a, b in zip(bars, bars[1:]) if b.t_ms > a.t_ms]
    return float(min(gaps)) if gaps else 60_000.0


def price_figure(view: dict[str, Any], *,
                 ranges: tuple[list[str], list[float] | None] | None = None,
                 webgl: bool = False) -> dict[str, Any]:
    """The full price figure of a ``UiState.view()``, as the dict Dash sends (the arrays go in
    unvalidated: plotly's validators take seconds over 10,000 candles)."""
    out = json.loads(_price_skeleton(webgl))
    if ranges is not None:
        for key, ax in out["layout"].items():
            if key.startswith("xaxis"):
                ax["range"] = ranges[0]
                ax.pop("autorange", None)
        if ranges[1] is not None:
            out["layout"]["yaxis"]["range"] = ranges[1]
            out["layout"]["yaxis"].pop("autorange", None)
    period = float(view.get("tf_ms") or 0) * view.get("k", 1) or _period(view["bars"])
    cols = _columns(view["bars"], period, _span(ranges))
    fcols = find_columns({n for _, v in view["features"][-1:] for n in v})
    data = {**cols, **_feature_columns(view["features"], view["x_of"], fcols),
            **_marker_columns(view["signals"], view["fills"], view["levels"], view["x_of"]),
            **_live_columns(view.get("live_levels", []))}
    for i, (name, _) in enumerate(TRACES):
        tr = out["data"][i]
        tr["x"] = []
        tr["y"] = []
        for key in EXTRA_ARRAYS.get(name, ()):  # a Patch can only extend arrays that exist
            tr[key] = []
        tr.update(data.get(name, {}))
        tr["visible"] = bool(tr["x"]) or name in ALWAYS_VISIBLE  # an empty trace costs a redraw
    if view.get("k", 1) > 1:
        out["layout"].setdefault("annotations", []).append({
            "text": f"one candle = {view['k']} bars (zoom in for single bars)",
            "showarrow": False, "xref": "x domain", "yref": "y domain", "x": 0.0, "y": 1.0,
            "xanchor": "left", "yanchor": "top", "font": {"color": "#aaa", "size": 11}})
    if "p_buy" not in fcols:
        out["layout"].setdefault("annotations", []).append({
            "text": "no CNN probabilities in this run (signals mode rules)", "showarrow": False,
            "xref": "x4 domain", "yref": "y4 domain", "x": 0.5, "y": 0.5,
            "font": {"color": "#777", "size": 11}})
    return out


def patch_price(delta: dict[str, Any], ranges: tuple[list[str], list[float]] | None = None,
                columns: Iterable[str] = ()) -> Patch | None:
    """A ``Patch`` that extends every trace with what ``UiState.delta`` returned (None: nothing
    new). ``ranges``: follow the last bars (x and price y range)."""
    names = set(columns)
    for _, v in delta["features"]:
        names.update(v)
    fcols = find_columns(names)
    period = float(delta.get("tf_ms") or 0) or _period(delta["bars"])
    data = {**_columns(delta["bars"], period, _span(ranges)),
            **_feature_columns(delta["features"], delta["x_of"], fcols),
            **_marker_columns(delta["signals"], delta["fills"], delta["levels"], delta["x_of"])}
    live = _live_columns(delta.get("live_levels", []))
    if not any(d["x"] for d in data.values()) and ranges is None:
        return None
    p = Patch()
    for name, d in live.items():  # small: a few working orders
        for k, v in d.items():
            p["data"][IDX[name]][k] = v
        p["data"][IDX[name]]["visible"] = bool(d["x"])
    for name, d in data.items():
        if not d["x"]:
            continue
        i = IDX[name]
        for k, v in d.items():
            p["data"][i][k].extend(v)
        if name not in ALWAYS_VISIBLE:
            p["data"][i]["visible"] = True  # hidden while it was empty
    if ranges is not None:
        for ax in X_AXES:
            p["layout"][ax]["range"] = ranges[0]
        p["layout"]["yaxis"]["range"] = ranges[1]
    return p


def equity_figure(view_equity: list[tuple[int, str | None, dict[str, float]]],
                  accounts: list[str], max_points: int = 2000) -> dict[str, Any]:
    """Equity curve of every strategy (one trace per account, in ``accounts`` order), at most
    ``max_points`` points each (every k-th bar and the last: 10,000 bars x six strategies
    redrawn on every update cost the browser as much as the price chart)."""
    if max_points and len(view_equity) > max_points:
        k = math.ceil(len(view_equity) / max_points)
        view_equity = view_equity[::k] + ([view_equity[-1]] if (len(view_equity) - 1) % k
                                          else [])
    fig = go.Figure()
    for i, acct in enumerate(accounts):
        fig.add_trace(go.Scatter(name=acct, mode="lines",
                                 line={"width": 1.3, "color": PALETTE[i % len(PALETTE)]}))
    fig.update_layout(template="plotly_dark", uirevision="keep", height=260,
                      margin={"l": 55, "r": 10, "t": 10, "b": 25}, paper_bgcolor="#111",
                      plot_bgcolor="#111", legend={"font": {"size": 10}})
    out = fig.to_dict()
    for i, acct in enumerate(accounts):
        xs, ys = [], []
        for _, x, eq in view_equity:
            if x is not None and acct in eq:
                xs.append(x)
                ys.append(_nan(eq[acct]))
        out["data"][i]["x"] = xs
        out["data"][i]["y"] = ys
    return out


def patch_equity(delta_equity: list[tuple[int, str | None, dict[str, float]]],
                 accounts: list[str]) -> Patch | None:
    if not delta_equity:
        return None
    p = Patch()
    for i, acct in enumerate(accounts):
        xs, ys = [], []
        for _, x, eq in delta_equity:
            if x is not None and acct in eq:
                xs.append(x)
                ys.append(_nan(eq[acct]))
        if xs:
            p["data"][i]["x"].extend(xs)
            p["data"][i]["y"].extend(ys)
    return p


def profile_figure(profile: dict[str, Any] | None, setup: dict[str, Any] | None = None
                   ) -> dict[str, Any]:
    """The sidebar's mini volume profile: bars of volume by price, the Gaussian-mixture curve,
    LVNs, POC/VAH/VAL and the selected setup's entry, stop and first target (a plain dict:
    plotly's objects cost a second per figure on a busy machine)."""
    data: list[dict[str, Any]] = []
    shapes: list[dict[str, Any]] = []
    notes: list[dict[str, Any]] = []

    def hline(y: Any, color: str, dash: str, width: float = 1.0, label: str = "") -> None:
        if y is None or not math.isfinite(y):
            return
        shapes.append({"type": "line", "xref": "paper", "x0": 0, "x1": 1, "y0": y, "y1": y,
                       "line": {"color": color, "width": width, "dash": dash}})
        if label:
            notes.append({"text": label, "xref": "paper", "x": 1, "xanchor": "right", "y": y,
                          "yanchor": "bottom", "showarrow": False,
                          "font": {"size": 9, "color": color}})

    if profile:
        prices = list(profile.get("prices") or [])
        vols = list(profile.get("volumes") or [])
        data.append({"type": "bar", "x": vols, "y": prices, "orientation": "h",
                     "name": "volume", "marker": {"color": "rgba(120,144,156,0.7)"}})
        gmm = profile.get("gmm") or {}
        if gmm.get("x") and gmm.get("density"):
            dens = list(gmm["density"])
            top = max((d for d in dens if d is not None and math.isfinite(d)), default=0.0)
            scale = (max(vols) / top) if vols and top > 0 else 1.0
            data.append({"type": "scatter", "mode": "lines", "name": "GMM",
                         "x": [d * scale for d in dens], "y": list(gmm["x"]),
                         "line": {"color": "orange", "width": 2}})
        hline(profile.get("poc"), "white", "solid", 1.0, "POC")
        hline(profile.get("vah"), "#ffc107", "dot", 1.0, "VAH")
        hline(profile.get("val"), "#ffc107", "dot", 1.0, "VAL")
        for v in profile.get("lvn") or ():
            hline(v, "#00e5ff", "dashdot", 1.0, "LVN")
    if setup:
        hline(setup.get("entry"), "yellow", "dash", 1.5, "entry")
        hline(setup.get("stop"), "#ff1744", "dot", 1.5, "stop")
        tg = [t for t in setup.get("targets") or () if t is not None and math.isfinite(t)]
        if tg:
            hline(tg[0], "#76ff03", "solid", 1.5, "target")
    return {"data": data, "layout": {
        "template": _dark_template(), "height": 260, "showlegend": False, "bargap": 0,
        "margin": {"l": 50, "r": 5, "t": 5, "b": 20}, "paper_bgcolor": "#111",
        "plot_bgcolor": "#111", "shapes": shapes, "annotations": notes,
        "font": {"color": "#ddd"}, "xaxis": {"gridcolor": "#333"},
        "yaxis": {"gridcolor": "#333"}}}


@functools.lru_cache(maxsize=1)
def _dark_template() -> dict[str, Any]:
    import plotly.io as pio

    return json.loads(json.dumps(pio.templates["plotly_dark"].to_plotly_json(),
                                 cls=plotly.utils.PlotlyJSONEncoder))
