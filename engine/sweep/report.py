"""The sweep's report: ``sweep.html``, ``sweep.png``, ``best.yaml``, ``summary.json``,
``table.csv``.

``sweep.html`` (plotly, opening offline with ``plotly.min.js`` written beside it, as
``engine.report`` does) shows the top-N table, a heatmap of the best score for each pair of
swept params, each param's importance (the share of the score's variance explained by that
param's value alone: a variance-based importance, cheap and independent of the search method),
the in-sample vs out-of-sample scatter, the walk-forward equity and the overfitting diagnostics.
``sweep.png`` is the same figures as a still image (matplotlib). ``best.yaml`` is the chosen
candidate as a run config that ``tradebot run`` accepts.
"""

from __future__ import annotations

import csv
import html
import itertools
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import yaml

MAX_PAIRS = 12


def _fmt(v: Any, nd: int = 3) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.{nd}f}"
    return str(v)


def _short(path: str) -> str:
    """``strategies[ts].params.x`` -> ``ts.x``; ``signals.params.x`` -> ``signals.x``."""
    import re

    return re.sub(r"^(strategies|features)\[([^\]]+)\]", r"\2", path).replace(".params.", ".")


def importance(rows: list[dict[str, Any]], dims: list[str]) -> dict[str, float]:
    """Eta squared of the score per param: between-value variance / total variance."""
    ok = [r for r in rows if r.get("score") is not None]
    out: dict[str, float] = {}
    if len(ok) < 3:
        return out
    for d in dims:
        have = [r for r in ok if d in r["params"]]
        if len(have) < 3:
            continue
        s = np.array([r["score"] for r in have], dtype=np.float64)
        tot = float(((s - s.mean()) ** 2).sum())
        if tot <= 0:
            out[d] = 0.0
            continue
        groups: dict[str, list[float]] = {}
        for r, v in zip(have, s, strict=True):
            groups.setdefault(repr(r["params"][d]), []).append(float(v))
        between = sum(len(g) * (np.mean(g) - s.mean()) ** 2 for g in groups.values())
        out[d] = float(between / tot)
    return out


def _sort_key(v: Any) -> tuple[int, Any]:
    return (0, v) if isinstance(v, int | float) else (1, str(v))


def heatmaps(rows: list[dict[str, Any]], dims: list[str]) -> list[dict[str, Any]]:
    """For each pair of params that vary together: the best score per pair of values."""
    ok = [r for r in rows if r.get("score") is not None]
    out = []
    for a, b in itertools.combinations(dims, 2):
        have = [r for r in ok if a in r["params"] and b in r["params"]]
        xa = sorted({json.dumps(r["params"][a]) for r in have},
                    key=lambda v: _sort_key(json.loads(v)))
        yb = sorted({json.dumps(r["params"][b]) for r in have},
                    key=lambda v: _sort_key(json.loads(v)))
        if len(xa) < 2 or len(yb) < 2:
            continue
        z = np.full((len(yb), len(xa)), np.nan)
        for r in have:
            i = yb.index(json.dumps(r["params"][b]))
            j = xa.index(json.dumps(r["params"][a]))
            z[i, j] = r["score"] if np.isnan(z[i, j]) else max(z[i, j], r["score"])
        out.append({"x": a, "y": b, "xv": [json.loads(v) for v in xa],
                    "yv": [json.loads(v) for v in yb], "z": z})
        if len(out) >= MAX_PAIRS:
            break
    return out


def best_config(best: Any, name: str) -> dict[str, Any]:
    raw = best.config.resolved_dict()
    raw["name"] = f"{name}-best"
    raw["execution"]["workers"] = 0
    raw["output"] = {"dir": f"runs/{name}-best", "progress": True, "report": True}
    return raw


def write_all(outcome: Any, plan: Any) -> list[Path]:
    out_dir: Path = outcome.out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    spec = plan.spec
    rows = outcome.rows
    dims = list(plan.dims)
    paths = []
    p_sum = out_dir / "summary.json"
    summary = dict(outcome.summary)
    summary["top"] = rows[:spec.report.top_n]
    summary["importance"] = importance(rows, dims)
    p_sum.write_text(json.dumps(summary, indent=1, default=_json_default))
    paths.append(p_sum)
    p_tab = out_dir / "table.csv"
    keys = [k for k in (rows[0] if rows else {}) if k != "params"]
    with p_tab.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([*keys, *dims])
        for r in rows:
            w.writerow([_fmt(r.get(k), 6) for k in keys] + [r["params"].get(d, "") for d in dims])
    paths.append(p_tab)
    if outcome.best is not None:
        p_best = out_dir / "best.yaml"
        why = summary.get("best_yaml_from", "the best score")
        head = (f"# best candidate of sweep {spec.name!r} ({why}); objective "
                f"{spec.objective.metric} = {_fmt(outcome.best_score)}\n"
                f"# run it: tradebot run {p_best}\n")
        p_best.write_text(head + yaml.safe_dump(best_config(outcome.best, spec.name),
                                                sort_keys=False))
        paths.append(p_best)
    paths += _html(out_dir, outcome, plan, summary)
    paths.append(_png(out_dir, outcome, plan, summary))
    return paths


def _json_default(o: Any) -> Any:
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, float | np.floating):
        return None if not math.isfinite(float(o)) else float(o)
    return str(o)


def _times(t: list[int]) -> Any:
    return np.asarray(t, dtype="int64").astype("datetime64[ns]")


def _params_text(params: dict[str, Any]) -> str:
    return ", ".join(f"{_short(k)}={Path(v).name if k == 'data.file' else v}"
                     for k, v in params.items())


def _table(rows: list[dict[str, Any]], dims: list[str], top: int) -> str:
    if not rows:
        return "<p>no results</p>"
    cols = [k for k in rows[0] if k not in ("params", "cand", "error")]
    heads = ["#", *cols, "params", "error"]
    body = []
    for i, r in enumerate(rows[:top], 1):
        cells = [str(i), *(html.escape(_fmt(r.get(k))) for k in cols),
                 html.escape(_params_text(r["params"])), html.escape((r.get("error") or "")[:200])]
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return ("<table><thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in heads)
            + "</tr></thead><tbody>" + "".join(body) + "</tbody></table>")


def _diag_text(summary: dict[str, Any]) -> str:
    d = summary.get("diagnostics", {})
    parts = []
    if "pbo" in d:
        p = d["pbo"]
        parts.append(f"PBO (CSCV, {p.get('splits')} groups, {p.get('combinations')} splits"
                     f"{', over ' + p['over'] if p.get('over') else ''}): "
                     f"<b>{_fmt(p.get('pbo'), 2)}</b>")
    if "deflated_sharpe" in d:
        s = d["deflated_sharpe"]
        parts.append(f"deflated Sharpe ratio of the best ({s.get('trials')} trials): "
                     f"<b>{_fmt(s.get('dsr'), 3)}</b> (per-bar Sharpe "
                     f"{_fmt(s.get('sharpe_per_bar'), 4)}, expected max of the trials "
                     f"{_fmt(s.get('expected_max_sharpe'), 4)})")
    if not parts:
        parts.append("no overfitting diagnostic: too few successful candidates")
    return "<p>" + "<br>".join(parts) + "</p>"


def _retrain_table(rt: dict[str, Any] | None) -> str:
    """``walk_forward.retrain_model``: per window, the model trained on its train bars and the
    chosen candidate's test window traded hybrid (that model) vs rules."""
    if not rt:
        return ""
    heads = ("window", "file", "train bars", "test bars", "strategy", "model samples "
             "(train/val/test)", "best epoch", "val loss", "rules return %", "hybrid return %",
             "diff return %", "rules Sharpe", "hybrid Sharpe", "diff Sharpe", "rules trades",
             "hybrid trades", "error")
    body = ""
    for w in rt.get("windows", []):
        m, r, h, d = w["model"], w["rules"], w["hybrid"], w["diff"]
        smp = m.get("samples") or {}
        body += "<tr>" + "".join(f"<td>{html.escape(_fmt(c))}</td>" for c in (
            w["window"], "-" if w["file"] == "None" else Path(w["file"]).name,
            f"{w['train'][0]}-{w['train'][1]}", f"{w['test'][0]}-{w['test'][1]}",
            w["strategy"], "/".join(str(smp.get(k, "")) for k in ("train", "val", "test")),
            m.get("best_epoch"), m.get("val_loss"), r.get("total_return_pct"),
            h.get("total_return_pct"), d.get("total_return_pct"), r.get("sharpe"),
            h.get("sharpe"), d.get("sharpe"), r.get("trades"), h.get("trades"),
            (m.get("error") or h.get("error") or "")[:200])) + "</tr>"
    tot = ""
    if "compounded_return_pct" in rt:
        c = rt["compounded_return_pct"]
        tot = (f"<p>compounded over the {rt['compared_windows']} test windows: rules "
               f"{_fmt(c['rules'], 2)} %, hybrid {_fmt(c['hybrid'], 2)} %; hybrid better in "
               f"{rt['hybrid_better_windows']} of {rt['compared_windows']} windows (mean "
               f"difference {_fmt(rt['mean_diff_return_pct'], 2)} % per window)</p>")
    return ("<h3>CNN retrained per window: hybrid vs rules, out-of-sample</h3><p>Each window's "
            f"model ({html.escape(rt.get('trainer', ''))}, {html.escape(rt.get('config', ''))})"
            " was trained on that window's train bars only; the window's chosen candidate then "
            "traded the test window with signals mode hybrid (that model) and rules.</p>"
            + tot + "<table><thead><tr>" + "".join(f"<th>{h}</th>" for h in heads)
            + "</tr></thead><tbody>" + body + "</tbody></table>")


def _html(out_dir: Path, outcome: Any, plan: Any, summary: dict[str, Any]) -> list[Path]:
    import plotly.graph_objects as go
    from plotly.offline import get_plotlyjs

    spec = plan.spec
    dims = list(plan.dims)
    figs = []
    eq = summary.get("equity", {})
    if eq:
        f = go.Figure()
        for name, c in eq.items():
            if c.get("t"):
                f.add_trace(go.Scatter(x=_times(c["t"]), y=c["e"], name=name, mode="lines"))
        f.update_layout(title="Equity: " + ("stitched out-of-sample walk-forward vs the "
                                            "in-sample best" if summary["mode"] == "walk_forward"
                                            else "best candidate"), height=420)
        figs.append(f)
    sc = summary.get("scatter", [])
    if sc:
        f = go.Figure()
        for chosen in (False, True):
            pts = [p for p in sc if p["chosen"] == chosen]
            if pts:
                f.add_trace(go.Scatter(
                    x=[p["is"] for p in pts], y=[p["oos"] for p in pts], mode="markers",
                    name="chosen" if chosen else "candidates",
                    marker={"size": 10 if chosen else 6, "opacity": 0.9 if chosen else 0.5},
                    text=[f"{p['cand']} w{p.get('window', '')}" for p in pts]))
        f.update_layout(title="In-sample vs out-of-sample: " + summary.get("scatter_label", ""),
                        xaxis_title="in-sample", yaxis_title="out-of-sample", height=420)
        figs.append(f)
    imp = summary.get("importance", {})
    if imp:
        ks = sorted(imp, key=imp.get)
        f = go.Figure(go.Bar(x=[imp[k] for k in ks], y=[_short(k) for k in ks],
                             orientation="h"))
        f.update_layout(title="Parameter importance (share of score variance explained)",
                        height=120 + 30 * len(ks))
        figs.append(f)
    for h in heatmaps(outcome.rows, dims):
        f = go.Figure(go.Heatmap(z=h["z"], x=[str(v) for v in h["xv"]],
                                 y=[str(v) for v in h["yv"]], colorbar={"title": "best"}))
        f.update_layout(title=f"best {spec.objective.metric}: {_short(h['x'])} x "
                              f"{_short(h['y'])}", xaxis_title=_short(h["x"]),
                        yaxis_title=_short(h["y"]), height=380)
        figs.append(f)
    charts = "".join(f.to_html(full_html=False, include_plotlyjs=False) for f in figs)
    s = summary
    head = (f"{s.get('method')} search, objective {spec.objective.metric} "
            f"(min {spec.objective.min_trades} trades), {len(outcome.rows)} candidates, "
            f"{s.get('executed')} runs executed, {s.get('reused')} reused from the store, "
            f"{s.get('failed_results')} failed; {s.get('executor')}, "
            f"{_fmt(s.get('elapsed_s'), 1)} s")
    wtab = ""
    if s.get("windows"):
        wr = s["windows"]
        wtab = "<h3>Walk-forward windows</h3><table><thead><tr>" + "".join(
            f"<th>{h}</th>" for h in ("window", "file", "train bars", "test bars", "strategy",
                                      "params", "train score", "test score", "test return %",
                                      "test trades")) + "</tr></thead><tbody>"
        for w in wr:
            wtab += "<tr>" + "".join(f"<td>{html.escape(_fmt(c))}</td>" for c in (
                w["window"], "-" if w["file"] == "None" else Path(w["file"]).name,
                f"{w['train'][0]}-{w['train'][1]}", f"{w['test'][0]}-{w['test'][1]}",
                w["strategy"], _params_text(w["params"]),
                w["train_score"], w["test_score"], w["test_return_pct"], w["test_trades"],
            )) + "</tr>"
        wtab += "</tbody></table>"
    wtab += _retrain_table(s.get("retrain_model"))
    title = f"sweep {spec.name}"
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<script src="plotly.min.js"></script>
<style>body{{font-family:sans-serif;margin:1.5em}}table{{border-collapse:collapse;margin:1em 0;
font-size:90%}}td,th{{border:1px solid #ccc;padding:.2em .5em;text-align:right}}td:last-child,
td:nth-last-child(2){{text-align:left}}</style></head>
<body><h2>{html.escape(title)}</h2><p>{html.escape(head)}</p>{_diag_text(summary)}
<h3>Top {spec.report.top_n}</h3>{_table(outcome.rows, dims, spec.report.top_n)}{wtab}{charts}
</body></html>
"""
    p = out_dir / "sweep.html"
    p.write_text(page)
    js = out_dir / "plotly.min.js"
    if not js.exists():
        js.write_text(get_plotlyjs())
    return [p, js]


def _png(out_dir: Path, outcome: Any, plan: Any, summary: dict[str, Any]) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dims = list(plan.dims)
    hm = heatmaps(outcome.rows, dims)[:1]
    imp = summary.get("importance", {})
    fig, axes = plt.subplots(2, 2, figsize=(14, 9))
    ax = axes[0][0]
    for name, c in summary.get("equity", {}).items():
        if c.get("t"):
            ax.plot(_times(c["t"]), c["e"], label=name, lw=1.2)
    ax.set_title("equity")
    if any(c.get("t") for c in summary.get("equity", {}).values()):
        ax.legend(fontsize=8)
    ax.tick_params(axis="x", labelrotation=20, labelsize=8)
    ax = axes[0][1]
    sc = summary.get("scatter", [])
    for chosen, col in ((False, "tab:blue"), (True, "tab:red")):
        pts = [p for p in sc if p["chosen"] == chosen]
        if pts:
            ax.scatter([p["is"] for p in pts], [p["oos"] for p in pts], s=40 if chosen else 12,
                       c=col, alpha=0.9 if chosen else 0.4,
                       label="chosen" if chosen else "candidates")
    ax.axhline(0, color="grey", lw=0.5)
    ax.axvline(0, color="grey", lw=0.5)
    ax.set_title("in-sample vs out-of-sample: " + summary.get("scatter_label", ""), fontsize=9)
    ax.set_xlabel("in-sample")
    ax.set_ylabel("out-of-sample")
    if sc:
        ax.legend(fontsize=8)
    ax = axes[1][0]
    if imp:
        ks = sorted(imp, key=imp.get)
        ax.barh([_short(k) for k in ks], [imp[k] for k in ks])
        ax.tick_params(axis="y", labelsize=7)
    ax.set_title("parameter importance (share of score variance)")
    ax = axes[1][1]
    if hm:
        h = hm[0]
        im = ax.imshow(h["z"], aspect="auto", origin="lower", cmap="viridis")
        ax.set_xticks(range(len(h["xv"])), [str(v) for v in h["xv"]], fontsize=7,
                      rotation=30)
        ax.set_yticks(range(len(h["yv"])), [str(v) for v in h["yv"]], fontsize=7)
        ax.set_xlabel(_short(h["x"]))
        ax.set_ylabel(_short(h["y"]))
        fig.colorbar(im, ax=ax)
        ax.set_title(f"best {plan.spec.objective.metric} per pair of values")
    else:
        ax.set_title("(no pair of params varies together)")
    fig.suptitle(f"sweep {plan.spec.name}")
    fig.tight_layout()
    p = out_dir / "sweep.png"
    fig.savefig(p, dpi=90)
    plt.close(fig)
    return p
