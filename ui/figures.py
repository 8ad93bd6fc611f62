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

from ui.state import find_columns

UP, DOWN = "#26a69a", "#ef5350"
STOCH = {"s9": "gold", "s14": "dodgerblue", "s40": "white", "s60": "magenta"}
CNN = {"p_buy": "#00e676", "p_sell": "#ff5252", "p_hold": "#9e9e9e"}
PALETTE = ["#42a5f5", "#ffa726", "#ab47bc", "#66bb6a", "#ef5350", "#26c6da", "#d4e157",
           "#8d6e63"]

# (name, row): the order is the contract between price_figure and patch_price.
TRACES: list[tuple[str, int]] = [
    ("up_wick", 1), ("up_body", 1), ("dn_wick", 1), ("dn_body", 1),
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
    **{k: ("text",) for k in ("up_wick", "dn_wick", "stop_now", "target_now")},
    **{k: ("text", "customdata") for k in ("sig_buy", "sig_sell", "entry", "exit", "stop",
                                           "target")},
}
X_AXES = ("xaxis", "xaxis2", "xaxis3", "xaxis4")  # shared: every row follows the same range
REG_K = 2.0  # channel half-width in residual standard deviations


def _nan(v: float) -> float | None:
    return v if v is not None and math.isfinite(v) else None


def _columns(bars: list[Any]) -> dict[str, dict[str, list[Any]]]:
    """Candles and volume as segments of four + two line traces: ``[x, x, None]`` per bar.

    One SVG path per trace instead of one element per candle (Plotly's candlestick and bar
    traces): redrawing 10,000 candles on every update is what kept the chart from being fluid.
    """
    out = {k: {"x": [], "y": []} for k in ("up_wick", "up_body", "dn_wick", "dn_body",
                                            "vol_up", "vol_dn")}
    out["up_wick"]["text"] = []
    out["dn_wick"]["text"] = []
    for b in bars:
        up = b.close >= b.open
        wick, body, vol = (out["up_wick"], out["up_body"], out["vol_up"]) if up else (
            out["dn_wick"], out["dn_body"], out["vol_dn"])
        xs = [b.x, b.x, None]
        wick["x"] += xs
        wick["y"] += [b.low, b.high, None]
        t = f"O {b.open:.2f}  H {b.high:.2f}  L {b.low:.2f}  C {b.close:.2f}  V {b.volume:.2f}"
        wick["text"] += [t, t, None]
        body["x"] += xs
        body["y"] += [b.open, b.close, None]
        vol["x"] += xs
        vol["y"] += [0.0, b.volume, None]
    return out


def candle_count(fig_data: list[dict[str, Any]]) -> int:
    """Candles in a figure's ``data`` (three points per candle in the two wick traces)."""
    return sum(len(fig_data[IDX[k]].get("x") or ()) for k in ("up_wick", "dn_wick")) // 3


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
        "up_wick": go.Scatter(name="price", mode="lines", legendgroup="price",
                              line={"color": UP, "width": 1}, hoverinfo="x+text"),
        "up_body": go.Scatter(name="up", mode="lines", legendgroup="price", showlegend=False,
                              line={"color": UP, "width": 3}, hoverinfo="skip"),
        "dn_wick": go.Scatter(name="down", mode="lines", legendgroup="price", showlegend=False,
                              line={"color": DOWN, "width": 1}, hoverinfo="x+text"),
        "dn_body": go.Scatter(name="down body", mode="lines", legendgroup="price",
                              showlegend=False, line={"color": DOWN, "width": 3},
                              hoverinfo="skip"),
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
        "vol_up": go.Scatter(name="volume", mode="lines", showlegend=False,
                             line={"color": UP, "width": 2}, hoverinfo="x+y"),
        "vol_dn": go.Scatter(name="volume down", mode="lines", showlegend=False,
                             line={"color": DOWN, "width": 2}, hoverinfo="x+y"),
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
    fig.update_layout(
        template="plotly_dark", uirevision="keep", dragmode="pan", hovermode="x",
        margin={"l": 55, "r": 10, "t": 48, "b": 25}, paper_bgcolor="#111", plot_bgcolor="#111",
        legend={"orientation": "h", "y": 1.0, "yanchor": "bottom", "x": 0, "font": {"size": 10}},
        height=760, bargap=0.1,
    )
    out = fig.to_plotly_json()
    if webgl:  # the value-area band stays SVG: scattergl draws no "tonexty" fill of hv steps
        for (name, _), tr in zip(TRACES, out["data"], strict=True):
            if name not in ("vah", "val"):
                tr["type"] = "scattergl"
    return json.dumps(out, cls=plotly.utils.PlotlyJSONEncoder)


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
    cols = _columns(view["bars"])
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
    data = {**_columns(delta["bars"]), **_feature_columns(delta["features"], delta["x_of"], fcols),
            **_marker_columns(delta["signals"], delta["fills"], delta["levels"], delta["x_of"])}
    live = _live_columns(delta.get("live_levels", []))
    if not any(d["x"] for d in data.values()) and ranges is None:
        return None
    p = Patch()
    for name, d in live.items():  # small: a few working orders
        for k, v in d.items():
            p["data"][IDX[name]][k] = v
    for name, d in data.items():
        if not d["x"]:
            continue
        i = IDX[name]
        for k, v in d.items():
            p["data"][i][k].extend(v)
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
