"""Input that is wrong in meaning, not only in form: refused by `tradebot run` with what to do."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.cli import main
from engine.run_command import mode_unavailable

ROOT = Path(__file__).resolve().parents[2]
SYNTH = ROOT / "data" / "SYNTH-BTCUSDT_15m_data.csv"
BENCH = str(ROOT / "configs" / "benchmark.yaml")


def bars_file(tmp_path: Path, n: int, name: str = "SYNTH-BTCUSDT_15m_data.csv",
              keep=lambda i: True, zero_volume: bool = False) -> Path:
    head, *rows = SYNTH.read_text().splitlines()
    rows = [r for i, r in enumerate(rows[:n]) if keep(i)]
    if zero_volume:
        rows = [r.rsplit(",", 1)[0] + ",0" for r in rows]
    p = tmp_path / name
    p.write_text("\n".join([head, *rows]) + "\n")
    return p


def run(*args: str) -> int:
    return main(["run", *args, "--no-progress"])


def test_a_file_shorter_than_the_warm_up_is_refused_with_both_counts(tmp_path, capsys):
    out = tmp_path / "out"
    assert run(BENCH, "--data", str(bars_file(tmp_path, 1)), "--out", str(out)) == 2
    err = capsys.readouterr().err
    # stoch_cross reads %K(14,3) %D(3): 17 warm-up bars, + a bar to decide, + one to fill
    assert "1 bar, but this config needs at least 19" in err
    assert "feature 'stoch_14_3_3' has a warm-up of 17 bars" in err
    assert not out.exists()
    assert run(BENCH, "--data", str(bars_file(tmp_path, 19)), "--out", str(out)) == 0


def test_zero_volume_under_a_volume_profile_is_refused_naming_the_feature(tmp_path, capsys):
    data = bars_file(tmp_path, 400, zero_volume=True)
    cfg = tmp_path / "vp.yaml"
    cfg.write_text(f"data: {{file: {data}}}\nfeatures: [{{id: vp, kind: volume_profile}}]\n"
                   "strategies: [{name: a, kind: stoch_cross}]\n")
    out = tmp_path / "out"
    assert run(str(cfg), "--out", str(out)) == 2
    err = capsys.readouterr().err
    assert "feature 'vp' (volume_profile) has no value on any of the 200 bars" in err
    assert "volume is zero on every bar" in err
    assert not out.exists()


def test_each_mode_says_what_it_needs():
    assert mode_unavailable("backtest", ["csv"], ["sim"]) is None
    paper = mode_unavailable("paper", ["csv"], ["sim"])
    assert paper is not None and "Apex market-data feed ('apex' in the tradebot.feeds" in paper
    assert mode_unavailable("paper", ["apex", "csv"], ["sim"]) is None
    live = mode_unavailable("live", ["apex", "csv"], ["sim"])
    assert live is not None and "Apex broker ('apex' in tradebot.brokers" in live
    assert "feed" not in live.split("needs", 1)[1].split(";")[0]  # the feed is there
    assert mode_unavailable("live", ["apex"], ["apex", "sim"]) is None


def test_the_flags_the_hints_name_exist_on_run(tmp_path, capsys):
    gappy = bars_file(tmp_path, 300, keep=lambda i: i not in (100, 101, 200))
    out = str(tmp_path / "out")
    assert run(BENCH, "--data", str(gappy), "--out", out) == 2
    err = capsys.readouterr().err
    assert "2 gaps" in err and "--gaps on `tradebot run`" in err
    assert run(BENCH, "--data", str(gappy), "--out", out, "--gaps", "fill") == 0
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["stoch_cross"]["bars"] == 300
    plain = bars_file(tmp_path, 300, name="prices.csv")
    assert run(BENCH, "--data", str(plain), "--out", out) == 2
    assert "--symbol/--timeframe on `tradebot run`" in capsys.readouterr().err
    assert run(BENCH, "--data", str(plain), "--out", out, "--symbol", "BTCUSDT",
               "--timeframe", "15m") == 0
    assert "BTC-USDT 15m, 300 bars" in capsys.readouterr().out


def test_hourly_bars_in_a_15m_file_say_their_spacing(tmp_path, capsys):
    hourly = bars_file(tmp_path, 2000, keep=lambda i: i % 4 == 0)
    assert run(BENCH, "--data", str(hourly), "--out", str(tmp_path / "out")) == 2
    err = capsys.readouterr().err
    assert "bars are 1h apart" in err and "file name says 15m" in err
    assert "--timeframe 1h" in err and "gaps" not in err
    assert run(BENCH, "--data", str(hourly), "--out", str(tmp_path / "out"),
               "--timeframe", "1h") == 0


def test_a_month_is_not_annualised(tmp_path, capsys):
    month = bars_file(tmp_path, 31 * 96)
    out = tmp_path / "out"
    assert run(BENCH, "--data", str(month), "--out", str(out)) == 0
    printed = capsys.readouterr().out
    assert "n/a" in printed and "CAGR n/a: the run covers 31.0 days" in printed
    m = json.loads((out / "metrics.json").read_text())["stoch_cross"]
    assert m["cagr_pct"] is None and m["days"] == pytest.approx(31.0)
    assert "CAGR n/a" in (out / "comparison.txt").read_text()


def test_check_lookahead_refuses_to_test_nothing(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["check-lookahead", BENCH, "--bars", "-5"])
    assert exc.value.code == 2
    assert "must be 0 (all bars) or a positive number" in capsys.readouterr().err
    data = str(bars_file(tmp_path, 600))
    assert main(["check-lookahead", BENCH, "--data", data, "--bars", "3"]) == 2
    assert "too few to check for lookahead" in capsys.readouterr().err
    assert main(["check-lookahead", BENCH, "--data", data, "--bars", "18"]) == 2
    err = capsys.readouterr().err
    assert "warm-up of 17 bars" in err and "no lookahead found" not in err
    assert main(["check-lookahead", BENCH, "--data", data, "--bars", "200"]) == 0
    assert "no lookahead found" in capsys.readouterr().out
