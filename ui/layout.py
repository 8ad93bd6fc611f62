"""The page: status line, chart with its view controls, equity curves and strategy table on the
left; the sidebar (selected alarm's setups, mini volume profile, commands) on the right."""

from __future__ import annotations

from dash import dash_table, dcc, html

DARK = {"backgroundColor": "#111", "color": "#ddd", "fontFamily": "DejaVu Sans, sans-serif",
        "fontSize": "13px"}
PANEL = {"backgroundColor": "#1a1a1a", "padding": "8px", "borderRadius": "4px",
         "marginBottom": "8px"}
BTN = {"marginRight": "6px", "marginBottom": "4px", "backgroundColor": "#333", "color": "#eee",
       "border": "1px solid #555", "borderRadius": "3px", "padding": "4px 10px",
       "cursor": "pointer"}
TABLE_STYLE = {
    "style_header": {"backgroundColor": "#222", "color": "#bbb", "fontWeight": "bold",
                     "border": "1px solid #333"},
    "style_cell": {"backgroundColor": "#161616", "color": "#ddd", "border": "1px solid #333",
                   "fontSize": "11px", "padding": "2px 4px", "textAlign": "right"},
    "style_table": {"overflowX": "auto"},
    "style_cell_conditional": [{"if": {"column_id": c}, "textAlign": "left"}
                               for c in ("strategy", "side")],
}


def build(n_visible: int, interval_ms: int) -> html.Div:
    visible = sorted({100, 200, 300, 500, 1000, 2000, 5000, 10_000, n_visible})
    strategies_cols = [("strategy", "strategy"), ("equity", "equity"), ("position", "position"),
                       ("open_pnl", "open PnL"), ("trades", "trades"),
                       ("win_rate_pct", "win %"), ("max_dd_pct", "max DD %")]
    setup_cols = [("strategy", "strategy"), ("entry", "entry"),
                  ("stop", "stop"), ("targets", "targets"), ("rr", "R:R")]
    main = html.Div([
        html.Div([
            html.Span("visible bars ", style={"color": "#888"}),
            dcc.Dropdown(id="n-visible", options=[{"label": str(v), "value": v} for v in visible],
                         value=n_visible, clearable=False,
                         style={"width": "90px", "display": "inline-block", "color": "#111",
                                "verticalAlign": "middle"}),
            dcc.Checklist(id="follow", options=[{"label": " follow the last bar",
                                                 "value": "follow"}],
                          value=["follow"], labelStyle={"color": "#ddd"},
                          style={"display": "inline-block", "marginLeft": "12px"}),
            html.Span("  drag to pan, wheel to zoom, double-click to reset; click an alarm "
                      "marker for its setup", style={"color": "#777", "marginLeft": "12px"}),
        ], style={"marginBottom": "4px"}),
        dcc.Graph(id="price", config={"scrollZoom": True, "displaylogo": False},
                  style={"height": "760px"}),
        html.Div([
            html.Div([html.H4("Equity", style={"margin": "2px"}),
                      dcc.Graph(id="equity", config={"displaylogo": False},
                                style={"height": "260px"})],
                     style={"flex": "1", "minWidth": "0"}),
            html.Div([html.H4("Strategies", style={"margin": "2px"}),
                      dash_table.DataTable(id="strategies", data=[],
                                           columns=[{"id": i, "name": n}
                                                    for i, n in strategies_cols],
                                           **TABLE_STYLE)],
                     style={"flex": "1", "minWidth": "0", "marginLeft": "8px"}),
        ], style={"display": "flex"}),
    ], style={"flex": "1", "minWidth": "0"})
    side = html.Div([
        html.Div([html.Div(id="setup-title"),
                  html.Button("current bar", id="current-bar", style={**BTN, "marginTop": "4px"}),
                  dash_table.DataTable(id="setup-table", data=[],
                                       columns=[{"id": i, "name": n} for i, n in setup_cols],
                                       **TABLE_STYLE),
                  dcc.Graph(id="profile", config={"displayModeBar": False},
                            style={"height": "260px", "marginTop": "6px"}),
                  html.Div(id="setup-note", style={"color": "#777", "fontSize": "11px"})],
                 style=PANEL),
        html.Div([
            html.H4("Commands", style={"margin": "2px 0 6px 0"}),
            html.Button("pause entries", id="btn-pause", style=BTN),
            html.Button("resume", id="btn-resume", style=BTN),
            html.Div([
                dcc.Dropdown(id="strategy-pick", options=[], placeholder="strategy",
                             style={"color": "#111", "marginBottom": "4px"}),
                html.Button("close strategy", id="btn-close", style=BTN),
                html.Button("flatten all", id="btn-flatten", style={**BTN, "color": "#ff8a80"}),
                html.Button("buy from alarm", id="btn-buy", style={**BTN, "color": "#69f0ae"}),
                html.Button("sell from alarm", id="btn-sell", style={**BTN, "color": "#ff8a80"}),
            ], style={"marginTop": "6px"}),
            html.Div(id="cmd-reply", style={"marginTop": "6px", "minHeight": "18px"}),
            dcc.ConfirmDialog(id="confirm"),
        ], style=PANEL),
    ], style={"width": "470px", "marginLeft": "8px", "flexShrink": "0"})
    return html.Div([
        html.Div([html.B("tradebot monitor", style={"marginRight": "18px"}),
                  html.Span(id="status")],
                 style={**PANEL, "lineHeight": "1.6"}),
        html.Div([main, side], style={"display": "flex"}),
        dcc.Store(id="cursor", data=None),
        dcc.Store(id="render", data=None),  # a full render asked for: {"rid", "why", ...}
        dcc.Store(id="rendered", data=None),  # the last one answered: {"rid", "t"}
        dcc.Store(id="win", data=None),  # the bars the browser holds: {"lo", "hi", "k", "n"}
        dcc.Store(id="eq-cursor", data=None),
        dcc.Store(id="wake", data=None),  # set by the page's long poll when bars arrive
        dcc.Store(id="gl", data=None),  # the browser has WebGL (set at page load)
        dcc.Store(id="selected", data=None),
        dcc.Store(id="pending", data=None),
        dcc.Interval(id="tick", interval=interval_ms, n_intervals=0),
        dcc.Interval(id="status-tick", interval=1000, n_intervals=0),
        dcc.Interval(id="slow-tick", interval=3000, n_intervals=0),
    ], style={**DARK, "padding": "8px", "minHeight": "100vh"})
