"""The whole path, via the CLI.

config -> feed -> bus -> handlers -> strategy -> broker -> results.
"""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import pytest
import yaml

from engine.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_benchmark_config_runs_and_writes_results(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    out = tmp_path / "run"
    assert main(["run", "configs/benchmark.yaml", "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "stoch_cross" in printed and "return %" in printed and "20,000 bars" in printed
    metrics = json.loads((out / "metrics.json").read_text())["stoch_cross"]
    for key in ("total_return_pct", "cagr_pct", "win_rate_pct", "trades", "profit_factor",
                "max_drawdown_pct", "sharpe", "sortino", "exposure_pct", "avg_holding_hours",
                "fees_paid"):
        assert key in metrics
    rows = list(csv.DictReader((out / "trades.csv").open()))
    assert len(rows) == metrics["trades"] > 100
    assert {"strategy", "side", "entry_time", "entry_price", "exit_time", "exit_price", "qty",
            "pnl", "fees", "exit_reason"} <= rows[0].keys()
    assert {r["exit_reason"] for r in rows} <= {"STOP_LOSS", "SIGNAL_EXIT", "END_OF_DATA"}
    # trades add up to the final equity
    pnl = sum(float(r["pnl"]) for r in rows)
    assert metrics["net_pnl"] == pytest.approx(pnl, abs=1e-3)  # csv rounds pnl to 6 decimals
    eq = list(csv.DictReader((out / "equity.csv").open()))
    assert len(eq) == 20_000
    assert float(eq[-1]["stoch_cross"]) == pytest.approx(metrics["final_equity"])
    resolved = yaml.safe_load((out / "config.resolved.yaml").read_text())
    assert len(resolved["config_hash"]) == 16 and resolved["costs"]["taker_fee_bps"] == 5
    # the report: the comparison as CSV with the same numbers, the charts
    comp = list(csv.DictReader((out / "comparison.csv").open()))
    assert [r["strategy"] for r in comp] == ["stoch_cross"]
    assert float(comp[0]["total_return_pct"]) == pytest.approx(metrics["total_return_pct"])
    page = (out / "report.html").read_text()
    assert "stoch_cross" in page and 'src="plotly.min.js"' in page
    assert (out / "plotly.min.js").stat().st_size > 1_000_000
    assert (out / "equity.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_config_is_refused_with_the_key_path(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("data: {file: x_15m_data.csv}\nstrategies: [{name: a, kind: stoch_cross}]\n"
                   "costs: {taker_fee: 5}\n")
    assert main(["run", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "costs.taker_fee: unknown key" in err and str(cfg) in err


def test_unknown_strategy_gets_did_you_mean(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("data: {file: data/SYNTH-BTCUSDT_15m_data.csv}\n"
                   "strategies: [{name: a, kind: stoch_crosss}]\n")
    assert main(["run", str(cfg)]) == 2
    assert "did you mean 'stoch_cross'" in capsys.readouterr().err


def test_bad_plugin_params_name_the_strategy(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("data: {file: data/SYNTH-BTCUSDT_15m_data.csv}\n"
                   "strategies: [{name: a, kind: stoch_cross, params: {lower_pct: 90}}]\n")
    assert main(["run", str(cfg)]) == 2
    assert "strategies[a]" in capsys.readouterr().err


def test_data_validate_and_indicators_commands(tmp_path, capsys, real_data_path):
    assert main(["data", "validate", str(real_data_path)]) == 0
    assert "69,122 bars" in capsys.readouterr().out
    bad = tmp_path / "X_15m_data.csv"
    bad.write_text("timestamp,open,high,low,close,volume\n2024-01-01 00:00:00,1,0.5,1,1,1\n")
    assert main(["data", "validate", str(bad)]) == 1
    assert "line 2" in capsys.readouterr().out
    src = tmp_path / "BTCUSDT_15m_data.csv"
    shutil.copy(ROOT / "data" / "SYNTH-BTCUSDT_15m_data.csv", src)
    out = tmp_path / "ind.csv"
    assert main(["indicators", "--data", str(src), "--out", str(out)]) == 0
    with out.open() as fh:
        header = next(csv.reader(fh))
    assert {"stoch_14_3_3_k", "atr_14_wilder", "linreg_100_slope", "s60_model", "s60_chart",
            "slope_20"} <= set(header)


def test_precompute_and_per_bar_paths_trade_identically(real_bars):
    from adapters.csv_feed import CsvFeed
    from bench.bench_engine import run_config
    from engine.bootstrap import build_engine

    bars = real_bars.slice(0, 6000)
    fast = build_engine(run_config(), feed=CsvFeed.from_bars(bars), precompute=True)
    slow = build_engine(run_config(), feed=CsvFeed.from_bars(bars), precompute=False)
    fast.run()
    slow.run()
    a, b = fast.accounts["stoch_cross"].trades, slow.accounts["stoch_cross"].trades
    assert len(a) > 50 and a == b


def test_same_trades_as_backtesting_py(real_bars):
    pytest.importorskip("backtesting", reason="backtesting.py is a bench extra")
    from bench.bench_engine import compare_trades, run_ours, run_peer

    bars = real_bars.slice(20_000, 26_000)
    _, eng = run_ours(bars)
    _, peer_trades, _ = run_peer(bars)
    res = compare_trades(eng, peer_trades, bars)
    assert res["identical"], res
    assert res["ours_trades"] > 50
    assert not math.isnan(eng.accounts["stoch_cross"].cash)
