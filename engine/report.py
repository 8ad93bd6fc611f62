"""The comparison report of a run: the table as CSV, equity curves as interactive HTML and PNG.

Written by ``tradebot run`` into the run's output folder beside the metrics, trades and equity:

- ``comparison.csv``: one row per strategy, the printed table's columns (sortable in a
  spreadsheet), ``comparison.txt`` the printed table itself;
- ``report.html``: equity curves (one line per strategy, zoom, hover, toggle by clicking the
  legend), the drawdown of each, and the table. It loads ``plotly.min.js`` from the same folder
  (written once beside it), so it opens offline and stays small;
- ``equity.png``: the equity curves as a still image (for a README, a chat, a paper).

Plotting libraries are imported here only, when a report is written.
"""

from __future__ import annotations

import csv
import html
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from engine.metrics import TABLE_COLUMNS, cagr_note, cell_text, format_table

# a chart with more points than this is thinned (every k-th bar, the last one always kept): a
# 69k-bar backtest stays a fast page; the metrics are computed on every bar regardless
MAX_POINTS = 5_000


def _cell(v: Any) -> Any:
    return "" if isinstance(v, float) and not math.isfinite(v) else v


def write_comparison(out_dir: Path, metrics: Mapping[str, Mapping[str, Any]]) -> list[Path]:
    """``comparison.csv`` (raw numbers, one row per strategy) and ``comparison.txt``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    p_csv = out_dir / "comparison.csv"
    keys = [k for k, _, _ in TABLE_COLUMNS]
    with p_csv.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["strategy", *keys])
        for name, m in metrics.items():
            w.writerow([name, *(_cell(m[k]) for k in keys)])
    p_txt = out_dir / "comparison.txt"
    note = cagr_note(dict(metrics))
    p_txt.write_text(format_table(dict(metrics)) + "\n" + (note + "\n" if note else ""))
    return [p_csv, p_txt]


def _thin(n: int) -> NDArray[np.int64]:
    if n <= MAX_POINTS:
        return np.arange(n)
    idx = np.arange(0, n, -(-n // MAX_POINTS))
    return idx if idx[-1] == n - 1 else np.append(idx, n - 1)


def _drawdown_pct(eq: NDArray[np.float64]) -> NDArray[np.float64]:
    peak = np.maximum.accumulate(eq)
    return (eq / peak - 1.0) * 100.0


def write_report(out_dir: Path, title: str, times: NDArray[np.datetime64],
                 equity: Mapping[str, NDArray[np.float64]],
                 metrics: Mapping[str, Mapping[str, Any]]) -> list[Path]:
    """Write ``report.html`` (+ ``plotly.min.js``) and ``equity.png``; return their paths.

    Args:
        out_dir: the run's output folder.
        title: the page title (config name, symbol, timeframe, bars).
        times: bar open times, one per equity point.
        equity: equity per bar for each strategy.
        metrics: the comparison table's rows (``engine.metrics.compute_metrics``).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    idx = _thin(len(times))
    t = times[idx]
    return [_html(out_dir, title, t, idx, equity, metrics), _png(out_dir, title, t, idx, equity)]


def _html(out_dir: Path, title: str, t: NDArray[np.datetime64], idx: NDArray[np.int64],
          equity: Mapping[str, NDArray[np.float64]],
          metrics: Mapping[str, Mapping[str, Any]]) -> Path:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.7, 0.3],
                        vertical_spacing=0.04,
                        subplot_titles=("Equity (quote currency)", "Drawdown %"))
    for name, eq in equity.items():
        eq = np.asarray(eq, dtype=np.float64)
        fig.add_trace(go.Scatter(x=t, y=eq[idx], name=name, legendgroup=name, mode="lines"),
                      row=1, col=1)
        fig.add_trace(go.Scatter(x=t, y=_drawdown_pct(eq)[idx], name=name, legendgroup=name,
                                 showlegend=False, mode="lines"), row=2, col=1)
    fig.update_layout(title=title, height=720, hovermode="x unified",
                      margin={"l": 60, "r": 20, "t": 70, "b": 40})
    heads = ["strategy", *(h for _, h, _ in TABLE_COLUMNS)]
    rows = []
    for name, m in metrics.items():
        cells = [html.escape(name)]
        for key, _, fmt in TABLE_COLUMNS:
            v = m[key]
            cells.append(cell_text(key, v, fmt))
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    table = ("<table><thead><tr>" + "".join(f"<th>{h}</th>" for h in heads)
             + "</tr></thead><tbody>" + "".join(rows) + "</tbody></table>")
    note = cagr_note(dict(metrics))
    if note:
        table += f"<p>{html.escape(note)}</p>"
    chart = fig.to_html(full_html=False, include_plotlyjs="directory")
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:1.5em}}table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:.25em .6em;text-align:right}}td:first-child,th:first-child
{{text-align:left}}</style></head>
<body><h2>{html.escape(title)}</h2>{table}{chart}</body></html>
"""
    p = out_dir / "report.html"
    p.write_text(page)
    from plotly.offline import get_plotlyjs

    js = out_dir / "plotly.min.js"
    if not js.exists():
        js.write_text(get_plotlyjs())
    return p


def _png(out_dir: Path, title: str, t: NDArray[np.datetime64], idx: NDArray[np.int64],
         equity: Mapping[str, NDArray[np.float64]]) -> Path:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11, 5.5), dpi=100)
    for name, eq in equity.items():
        ax.plot(t, np.asarray(eq, dtype=np.float64)[idx], label=name, linewidth=1.1)
    ax.set_title(title)
    ax.set_ylabel("equity")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.autofmt_xdate()
    fig.tight_layout()
    p = out_dir / "equity.png"
    fig.savefig(p)
    plt.close(fig)
    return p
