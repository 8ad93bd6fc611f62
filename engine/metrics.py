"""Performance metrics of one account, from bar-level equity and closed trades.

Units are in the names: ``_pct`` is 0-100, ``_hours`` hours. Sharpe and Sortino are annualised
from bar returns (crypto trades every day: ``bars_per_year = 365 * 24 h / timeframe``), risk-free
rate 0. CAGR is annualised only for a run of at least ``MIN_CAGR_DAYS`` (365) days: a shorter
run's growth raised to the power 365/days is an extrapolation (31 days of +7.7 % would read as
+140 % a year), so CAGR is NaN there, ``null`` in metrics.json and ``n/a`` in the table, with a
note pointing at the total return; ``days`` (the run's length) is in every metrics dict. Max
drawdown is measured on the bar-level equity marked at every close, not on trade
exits, so it includes open-trade drawdowns (the reference bot measured trade closes only).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from engine.events import TradeClosed

NS_PER_YEAR = 365 * 24 * 3600 * 1_000_000_000
NS_PER_DAY = 24 * 3600 * 1_000_000_000
MIN_CAGR_DAYS = 365  # shorter runs are not annualised (see the module docstring)


def compute_metrics(
    equity: Sequence[float] | np.ndarray,
    trades: Sequence[TradeClosed],
    *,
    initial_cash: float,
    tf_ns: int,
    fees_paid: float,
    exposed_bars: int,
) -> dict[str, float | int]:
    """Return the metrics dict written to metrics.json (keys in snake_case with units)."""
    eq = np.asarray(equity, dtype=np.float64)
    n = eq.shape[0]
    final = float(eq[-1]) if n else initial_cash
    total_return = final / initial_cash - 1.0
    years = n * tf_ns / NS_PER_YEAR
    days = n * tf_ns / NS_PER_DAY
    # below a year CAGR is an extrapolation nobody should read: NaN (module docstring)
    cagr = ((final / initial_cash) ** (1.0 / years) - 1.0
            if days >= MIN_CAGR_DAYS and final > 0 else math.nan)
    bars_per_year = NS_PER_YEAR / tf_ns
    prev = np.concatenate(([initial_cash], eq[:-1])) if n else eq
    rets = eq / prev - 1.0 if n else eq
    sd = float(rets.std(ddof=1)) if n > 1 else 0.0
    mean = float(rets.mean()) if n else 0.0
    sharpe = mean / sd * math.sqrt(bars_per_year) if sd > 0 else 0.0
    downside = np.minimum(rets, 0.0)
    dd_sd = float(np.sqrt(np.mean(downside**2))) if n else 0.0
    sortino = mean / dd_sd * math.sqrt(bars_per_year) if dd_sd > 0 else 0.0
    peak = np.maximum.accumulate(np.concatenate(([initial_cash], eq)))
    max_dd = float(((np.concatenate(([initial_cash], eq)) / peak) - 1.0).min()) if n else 0.0

    pnls = np.array([t.pnl for t in trades], dtype=np.float64)
    wins = pnls[pnls > 0]
    losses = pnls[pnls < 0]
    gross_loss = float(-losses.sum())
    profit_factor = float(wins.sum()) / gross_loss if gross_loss > 0 else (
        math.inf if wins.size else 0.0
    )
    hold_hours = [(t.exit_ts_ns - t.entry_ts_ns) / 3.6e12 for t in trades]
    return {
        "total_return_pct": 100.0 * total_return,
        "cagr_pct": 100.0 * cagr,
        "final_equity": final,
        "net_pnl": final - initial_cash,
        "trades": len(trades),
        "win_rate_pct": 100.0 * wins.size / len(trades) if trades else 0.0,
        "profit_factor": profit_factor,
        "max_drawdown_pct": 100.0 * max_dd,
        "sharpe": sharpe,
        "sortino": sortino,
        "exposure_pct": 100.0 * exposed_bars / n if n else 0.0,
        "avg_holding_hours": float(np.mean(hold_hours)) if hold_hours else 0.0,
        "fees_paid": fees_paid,
        "ambiguous_trades": sum(1 for t in trades if t.ambiguous),
        "bars": n,
        "days": days,
    }


TABLE_COLUMNS = (
    ("total_return_pct", "return %", "{:+.2f}"),
    ("cagr_pct", "CAGR %", "{:+.2f}"),
    ("trades", "trades", "{:d}"),
    ("win_rate_pct", "win %", "{:.1f}"),
    ("profit_factor", "PF", "{:.2f}"),
    ("max_drawdown_pct", "max DD %", "{:.2f}"),
    ("sharpe", "Sharpe", "{:.2f}"),
    ("sortino", "Sortino", "{:.2f}"),
    ("exposure_pct", "exposure %", "{:.1f}"),
    ("avg_holding_hours", "avg hold h", "{:.1f}"),
    ("fees_paid", "fees", "{:.2f}"),
    ("ambiguous_trades", "ambiguous", "{:d}"),
)


def cell_text(key: str, v: float | int | None, fmt: str) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a" if key == "cagr_pct" else "nan"
    return fmt.format(v)


def cagr_note(rows: dict[str, dict[str, float | int]]) -> str:
    """The note printed under the table when CAGR is not shown for a short run ("" otherwise)."""
    short = [m for m in rows.values() if m.get("days", 0) < MIN_CAGR_DAYS]
    if not short:
        return ""
    days = float(short[0].get("days", 0.0))
    return (f"CAGR n/a: the run covers {days:.1f} days; growth over less than {MIN_CAGR_DAYS} "
            "days is not annualised (read the total return instead)")


def format_table(rows: dict[str, dict[str, float | int]]) -> str:
    """A plain-text comparison table, one row per strategy."""
    header = ["strategy", *[h for _, h, _ in TABLE_COLUMNS]]
    body = []
    for name, m in rows.items():
        cells = [name]
        for key, _, fmt in TABLE_COLUMNS:
            v = m[key]
            cells.append(cell_text(key, v, fmt))
        body.append(cells)
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    line = "  ".join
    out = [line(h.ljust(w) if i == 0 else h.rjust(w)
                for i, (h, w) in enumerate(zip(header, widths, strict=True)))]
    out.append(line("-" * w for w in widths))
    for r in body:
        out.append(line(c.ljust(w) if i == 0 else c.rjust(w)
                        for i, (c, w) in enumerate(zip(r, widths, strict=True))))
    return "\n".join(out)
