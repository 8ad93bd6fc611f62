"""Write a run's results: resolved config, metrics, trades and equity, and the printed table."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from engine.bars import BarStore
from engine.config import RunConfig
from engine.metrics import compute_metrics, format_table
from engine.portfolio import Account

TRADE_COLUMNS = (
    "strategy", "side", "entry_time", "entry_price", "exit_time", "exit_price", "qty", "pnl",
    "fees", "exit_reason", "ambiguous", "entry_seq", "exit_seq",
)


def _iso(ns: int) -> str:
    return str(np.datetime64(int(ns), "ns").astype("datetime64[s]")).replace("T", " ")


def all_metrics(accounts: dict[str, Account], store: BarStore) -> dict[str, dict[str, Any]]:
    close = store.column("close")
    out = {}
    for name, a in accounts.items():
        cash, qty = a.state_per_bar(close.shape[0])
        out[name] = compute_metrics(
            cash + qty * close, a.trades, initial_cash=a.initial_cash, tf_ns=store.tf_ns,
            fees_paid=a.fees_paid, exposed_bars=int(np.count_nonzero(qty)),
        )
    return out


def write_results(
    out_dir: Path, config: RunConfig, accounts: dict[str, Account], store: BarStore,
    metrics: dict[str, dict[str, Any]],
) -> list[Path]:
    """Write config.resolved.yaml, metrics.json, trades.csv and equity.csv, and with
    ``output.report`` the comparison (CSV, text), report.html and equity.png; return the paths.

    Times are bar **open** times (UTC) of the bar in which the fill happened, the CSV convention.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    resolved = {"config_hash": config.config_hash(), **config.resolved_dict()}
    p_cfg = out_dir / "config.resolved.yaml"
    p_cfg.write_text(yaml.safe_dump(resolved, sort_keys=False))
    p_met = out_dir / "metrics.json"
    p_met.write_text(json.dumps(
        {k: {m: (None if isinstance(v, float) and not math.isfinite(v) else v)
             for m, v in d.items()} for k, d in metrics.items()}, indent=2))
    ts_open = store.raw_column("ts_open_ns")
    p_tr = out_dir / "trades.csv"
    with p_tr.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(TRADE_COLUMNS)
        for name, a in accounts.items():
            for t in a.trades:
                w.writerow([
                    name, t.side, _iso(ts_open[t.entry_seq]), repr(t.entry_price),
                    _iso(ts_open[t.exit_seq]), repr(t.exit_price), repr(t.qty),
                    f"{t.pnl:.6f}", f"{t.fees:.6f}", t.exit_reason, int(t.ambiguous),
                    t.entry_seq, t.exit_seq,
                ])
    p_eq = out_dir / "equity.csv"
    n = store.count
    close = store.column("close")
    cols = {name: a.equity_curve(close) for name, a in accounts.items()}
    with p_eq.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["timestamp", *cols])
        for i in range(n):
            w.writerow([_iso(ts_open[i]), *(f"{c[i]:.4f}" for c in cols.values())])
    paths = [p_cfg, p_met, p_tr, p_eq]
    if config.output.report:
        from engine.report import write_comparison, write_report

        paths += write_comparison(out_dir, metrics)
        title = f"{config.name}: {store.symbol} {store.timeframe}, {n:,} bars"
        paths += write_report(out_dir, title, ts_open[:n].astype("datetime64[ns]"), cols,
                              metrics)
    return paths


def table(metrics: dict[str, dict[str, Any]]) -> str:
    return format_table(metrics)
