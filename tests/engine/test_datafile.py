"""engine.datafile: every refusal names the file, the line and the problem; gaps; the cache."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

import engine.datafile as datafile
from engine.cli import main
from engine.datafile import engine_symbol, load_bars, parse_name, validate_file
from engine.errors import ConfigError, DataError

HEADER = "timestamp,open,high,low,close,volume"
GOOD = [
    "2024-01-01 00:00:00,100,101,99,100.5,10",
    "2024-01-01 00:15:00,100.5,102,100,101,12",
    "2024-01-01 00:30:00,101,101.5,100.2,100.8,9",
    "2024-01-01 00:45:00,100.8,101,100,100.1,11",
]
MIN15 = 15 * 60 * 10**9


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TRADEBOT_CACHE_DIR", str(tmp_path / "cache"))


def write(tmp_path, rows, header=HEADER, name="TESTUSDT_15m_data.csv", end="\n"):
    p = tmp_path / name
    p.write_bytes((end.join([header, *rows]) + end).encode())
    return p


def row3(line: str) -> list[str]:
    """GOOD with its third bar (file line 4) replaced."""
    return [*GOOD[:2], line, GOOD[3]]


# -- good files ---------------------------------------------------------------------------------


def test_good_file_loads_with_open_times(tmp_path):
    b = load_bars(write(tmp_path, GOOD))
    assert (b.symbol, b.timeframe, b.tf_ns, len(b)) == ("TEST-USDT", "15m", MIN15, 4)
    assert b.close.tolist() == [100.5, 101, 100.8, 100.1]
    assert b.ts_open_ns[0] == np.datetime64("2024-01-01T00:00", "ns").astype(np.int64)
    assert b.ts_close_ns[0] == b.ts_open_ns[1]


def test_epoch_milliseconds_equal_datetimes(tmp_path):
    ms = [f"{np.datetime64(r[:19], 'ms').astype(np.int64)}{r[19:]}" for r in GOOD]
    a = load_bars(write(tmp_path, GOOD))
    b = load_bars(write(tmp_path, ms, name="EPOCHUSDT_15m_data.csv"))
    for col in ("ts_open_ns", "open", "high", "low", "close", "volume"):
        assert getattr(a, col).tolist() == getattr(b, col).tolist()


def test_iso_t_z_and_offsets_are_utc(tmp_path):
    iso = [r.replace(" ", "T", 1).replace(",", "Z,", 1) for r in GOOD]
    plus1 = [r.replace(" ", "T", 1).replace(",", "+00:00,", 1) for r in GOOD]
    base = load_bars(write(tmp_path, GOOD)).ts_open_ns.tolist()
    assert load_bars(write(tmp_path, iso, name="A_15m_data.csv")).ts_open_ns.tolist() == base
    assert load_bars(write(tmp_path, plus1, name="B_15m_data.csv")).ts_open_ns.tolist() == base
    shifted = [f"2024-01-01T01:{r[14:16]}:00+01:00{r[19:]}" for r in GOOD]
    assert load_bars(write(tmp_path, shifted, name="C_15m_data.csv")).ts_open_ns.tolist() == base


def test_tolerated_layouts(tmp_path):
    """Column order, CRLF, a byte-order mark, spaces, quotes and trailing blank lines are fine."""
    base = load_bars(write(tmp_path, GOOD))
    shuffled = [",".join(r.split(",")[i] for i in (5, 0, 4, 3, 2, 1)) for r in GOOD]
    variants = [
        write(tmp_path, shuffled, header="volume,timestamp,close,low,high,open",
              name="A_15m_data.csv"),
        write(tmp_path, GOOD, end="\r\n", name="B_15m_data.csv"),
        write(tmp_path, GOOD, header="\ufeff" + HEADER, name="C_15m_data.csv"),
        write(tmp_path, [r.replace(",", " , ") for r in GOOD], name="D_15m_data.csv"),
        write(tmp_path, [*GOOD, "", ""], name="E_15m_data.csv"),
        write(tmp_path, ['"' + r.replace(",", '","') + '"' for r in GOOD], name="F_15m_data.csv"),
    ]
    for p in variants:
        b = load_bars(p)
        assert b.close.tolist() == base.close.tolist(), p
        assert b.ts_open_ns.tolist() == base.ts_open_ns.tolist(), p


# -- refusals -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rows", "header", "where", "problem"),
    [
        (GOOD, "timestamp,open,high,low,close", "line 1", "missing ['volume']"),
        (GOOD, HEADER + ",extra", "line 1", "unexpected ['extra']"),
        (GOOD, "timestamp,open,high,low,close,close", "line 1", "repeated ['close']"),
        (row3("2024-01-01 00:30:00,101,abc,100.2,100.8,9"), HEADER, "line 4",
         "high 'abc' is not a number"),
        (row3("2024-01-01 00:30:00,101,101.5,100.2,,9"), HEADER, "line 4", "close is empty"),
        (row3("2024-01-01 00:30:00,101,101.5,100.2,NaN,9"), HEADER, "line 4",
         "close is 'NaN' (not a number)"),
        (row3("2024-01-01 00:30:00,101,inf,100.2,100.8,9"), HEADER, "line 4",
         "high is infinite"),
        (row3("2024-01-01 00:30:00,101,101.5,100.2,100.8"), HEADER, "line 4", "volume is empty"),
        (row3("2024-01-01 00:30:00,101,101.5,100.2,100.8,9,7"), HEADER, "line 4",
         "7 values"),
        ([GOOD[0] + ",7", *GOOD[1:]], HEADER, "line 2", "more fields than the 6 columns"),
        (row3("yesterday,101,101.5,100.2,100.8,9"), HEADER, "line 4",
         "timestamp 'yesterday' is not a time"),
        (row3(",101,101.5,100.2,100.8,9"), HEADER, "line 4", "timestamp is empty"),
        ([*GOOD[:2], "", *GOOD[2:]], HEADER, "line 4", "blank line between bars"),
        ([*GOOD[:2], "", "2024-01-01 00:30:00,101,abc,100.2,100.8,9"], HEADER, "line 4",
         "blank line between bars"),
        ([*row3("2024-01-01 00:30:00,101,abc,100.2,100.8,9"), "", ""], HEADER, "line 4",
         "high 'abc' is not a number"),
        ([GOOD[0], GOOD[0], *GOOD[1:]], HEADER, "line 3",
         "duplicate timestamp 2024-01-01 00:00:00"),
        ([GOOD[1], GOOD[0], *GOOD[2:]], HEADER, "line 3", "earlier than the line before"),
        (row3("2024-01-01 00:31:00,101,101.5,100.2,100.8,9"), HEADER, "line 4",
         "timestamp 2024-01-01 00:31:00 is not on the 15m grid"),
        (row3("2024-01-01 00:30:00,101,100.5,100.2,100.8,9"), HEADER, "line 4",
         "high/low do not bound open/close"),
        (row3("2024-01-01 00:30:00,101,101.5,100.9,100.8,9"), HEADER, "line 4",
         "high/low do not bound open/close"),
        (row3("2024-01-01 00:30:00,0,0,0,0,9"), HEADER, "line 4", "zero or negative"),
        (row3("2024-01-01 00:30:00,101,101.5,100.2,100.8,-9"), HEADER, "line 4",
         "negative volume -9"),
        ([f"{1704067200 + 900 * i}{r[19:]}" for i, r in enumerate(GOOD)], HEADER,
         "lines 2, 3, 4 (and 1 more)", "epoch seconds? multiply by 1000"),
        (["1704067200000" + GOOD[0][19:], *GOOD[1:]], HEADER, "lines 3, 4, 5",
         "not an integer number of epoch milliseconds"),
    ],
)
def test_refusal_names_file_line_and_problem(tmp_path, rows, header, where, problem):
    p = write(tmp_path, rows, header=header)
    with pytest.raises(DataError) as err:
        load_bars(p)
    msg = str(err.value)
    assert msg.startswith(f"{p}: {where}"), msg
    assert problem in msg, msg
    assert "; " in msg.split(problem, 1)[1], msg  # followed by what to do
    report = validate_file(p)
    assert not report.ok and report.problems == (msg,)
    assert "INVALID" in report.summary() and problem in report.summary()


def test_empty_file_and_header_only(tmp_path):
    p = tmp_path / "E_15m_data.csv"
    p.write_text("")
    with pytest.raises(DataError, match=f"^{p}: the file is empty; it needs the header"):
        load_bars(p)
    p.write_text(HEADER + "\n")
    with pytest.raises(DataError, match="no bars after the header"):
        load_bars(p)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        load_bars(tmp_path / "NOPE_15m_data.csv")


def test_many_bad_lines_are_counted(tmp_path):
    rows = [r.rsplit(",", 1)[0] + ",-1" for r in GOOD]
    with pytest.raises(DataError, match=r": lines 2, 3, 4 \(and 1 more\): negative volume"):
        load_bars(write(tmp_path, rows))


def test_first_bad_column_and_all_its_lines(tmp_path):
    rows = [GOOD[0], GOOD[1].replace("100.5,", "x,", 1), GOOD[2],
            GOOD[3].replace("100.8,", "y,", 1)]
    with pytest.raises(DataError, match=r"lines 3, 5: open 'x' is not a number"):
        load_bars(write(tmp_path, rows))


# -- names ----------------------------------------------------------------------------------------


def test_names_give_symbol_and_timeframe():
    assert parse_name("data/BTCUSDT_15m_data.csv") == ("BTC-USDT", "15m")
    assert parse_name("ETHBTC_1h_data.csv") == ("ETH-BTC", "1h")
    assert parse_name("SYNTH-BTCUSDT_1d_data.csv") == ("SYNTH-BTCUSDT", "1d")
    assert parse_name("solusdc_4h_data.csv") == ("SOL-USDC", "4h")
    assert engine_symbol("FDUSDUSDT") == "FDUSD-USDT" and engine_symbol("WEIRD") == "WEIRD"


@pytest.mark.parametrize("name", ["prices.csv", "BTC_USDT_15m_data.csv", "BTCUSDT_15x_data.csv",
                                  "BTCUSDT_15m.csv"])
def test_bad_name_says_the_pattern_and_the_options(tmp_path, name):
    p = write(tmp_path, GOOD, name=name)
    with pytest.raises(DataError) as err:
        load_bars(p)
    msg = str(err.value)
    assert str(p) in msg and "SYMBOL_TIMEFRAME_data.csv" in msg and "--symbol/--timeframe" in msg
    b = load_bars(p, symbol="ETHUSDT", timeframe="15m")
    assert (b.symbol, b.timeframe) == ("ETH-USDT", "15m")


def test_explicit_timeframe_is_validated_against_the_grid(tmp_path):
    p = write(tmp_path, GOOD)
    # 15m bars read as 1h: the message says what the spacing really is
    with pytest.raises(DataError, match=r"bars are 15m apart .* timeframe given .* is 1h; pass "
                                        r"--timeframe 15m"):
        load_bars(p, timeframe="1h")
    with pytest.raises(DataError, match=r"lines 4, 5: .*not on the 1h grid"):
        load_bars(write(tmp_path, [GOOD[0], "2024-01-01 01:00:00,100.5,102,100,101,12",
                                   "2024-01-01 01:30:00,101,101.5,100.2,100.8,9",
                                   "2024-01-01 02:15:00,100.8,101,100,100.1,11"]),
                  timeframe="1h")
    with pytest.raises(DataError, match="timeframe '15x' is not valid"):
        load_bars(p, timeframe="15x")


def test_weekly_bars_open_on_mondays(tmp_path):
    mondays = [f"2024-01-{d:02d} 00:00:00,1,2,0.5,1.5,3" for d in (1, 8, 15)]
    assert len(load_bars(write(tmp_path, mondays, name="X_1w_data.csv"))) == 3
    thursdays = [f"2024-01-{d:02d} 00:00:00,1,2,0.5,1.5,3" for d in (4, 11)]
    with pytest.raises(DataError, match=r"lines 2, 3: .*not on the 1w grid"):
        load_bars(write(tmp_path, thursdays, name="Y_1w_data.csv"))


# -- gaps -----------------------------------------------------------------------------------------

GAPPY = [GOOD[0], GOOD[1], "2024-01-01 01:15:00,101,101.5,100.2,100.8,9",
         "2024-01-01 01:30:00,100.8,101,100,100.1,11", "2024-01-01 02:00:00,100,101,99,100,5"]


def test_gaps_fail_lists_them_and_the_options(tmp_path):
    p = write(tmp_path, GAPPY)
    with pytest.raises(DataError) as err:
        load_bars(p)
    msg = str(err.value)
    assert msg.startswith(f"{p}: 2 gaps, 4 missing bars, largest 3 bars after 2024-01-01 00:15:00 "
                          "(line 4)"), msg
    assert "after 2024-01-01 01:30:00 (line 6): 1 bars" in msg
    assert "'fill'" in msg and "'keep'" in msg and "--gaps" in msg


def test_gaps_keep_and_fill(tmp_path):
    p = write(tmp_path, GAPPY)
    kept = load_bars(p, gaps="keep")
    assert len(kept) == 5 and kept.close.tolist() == [100.5, 101, 100.8, 100.1, 100]
    filled = load_bars(p, gaps="fill")
    assert len(filled) == 9
    assert np.all(np.diff(filled.ts_open_ns) == MIN15)
    assert filled.close.tolist() == [100.5, 101, 101, 101, 101, 100.8, 100.1, 100.1, 100]
    assert filled.volume.tolist() == [10, 12, 0, 0, 0, 9, 11, 0, 5]
    flat = filled.slice(2, 5)
    assert flat.open.tolist() == flat.high.tolist() == flat.low.tolist() == [101.0] * 3


def test_report_counts_gaps_under_every_policy(tmp_path):
    p = write(tmp_path, GAPPY)
    failed = validate_file(p)
    assert not failed.ok and failed.rows == 5 and "2 gaps" in failed.problems[0]
    kept = validate_file(p, gaps="keep")
    assert kept.ok and kept.problems == ()
    assert (kept.gaps.count, kept.gaps.missing_bars) == (2, 4)
    assert kept.gaps.largest == datafile.Gap("2024-01-01 00:15:00", 4, 3)
    text = kept.summary()
    assert "OK" in text and "5 bars" in text and "2 gaps, 4 missing bars" in text
    with pytest.raises(ConfigError, match="gap policy"):
        validate_file(p, gaps="skip")  # type: ignore[arg-type]


def test_report_statistics(tmp_path):
    r = validate_file(write(tmp_path, GOOD))
    assert r.ok and (r.rows, r.symbol, r.timeframe) == (4, "TEST-USDT", "15m")
    assert (r.first_open, r.last_open) == ("2024-01-01 00:00:00", "2024-01-01 00:45:00")
    assert (r.price_min, r.price_max, r.total_volume) == (99, 102, 42)
    assert r.gaps.count == 0 and "no gaps" in r.summary()


# -- cache ----------------------------------------------------------------------------------------


def entries(tmp_path):
    return sorted((tmp_path / "cache" / "bars").glob("*.npy"))


def test_cache_hit_is_identical_and_skips_parsing(tmp_path, monkeypatch):
    p = write(tmp_path, GOOD)
    a = load_bars(p)
    assert len(entries(tmp_path)) == 1
    monkeypatch.setattr(datafile, "_parse", lambda *a, **k: pytest.fail("parsed despite cache"))
    b = load_bars(p)
    for col in ("ts_open_ns", "open", "high", "low", "close", "volume"):
        assert getattr(a, col).tolist() == getattr(b, col).tolist()


def test_an_edit_is_never_served_stale_even_with_same_size_and_mtime(tmp_path):
    p = write(tmp_path, GOOD)
    assert load_bars(p).close[-1] == 100.1
    st = p.stat()
    p.write_text(p.read_text().replace("100.1,11", "100.2,11"))  # same size
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))  # and the old mtime, as rsync -t would
    assert p.stat().st_size == st.st_size
    assert load_bars(p).close[-1] == 100.2
    assert len(entries(tmp_path)) == 1  # the entry of the old content was evicted
    p.write_text(p.read_text().replace("100.2,11", "oops,11"))
    with pytest.raises(DataError, match="'oops' is not a number"):  # unvalidated: never served
        load_bars(p)


def test_cache_is_per_timeframe(tmp_path):
    p = write(tmp_path, GOOD)
    load_bars(p)  # cached as validated for 15m
    with pytest.raises(DataError, match=r"bars are 15m apart .* is 1h"):
        load_bars(p, timeframe="1h")


def test_damaged_or_foreign_cache_entries_are_ignored(tmp_path):
    p = write(tmp_path, GOOD)
    load_bars(p)
    (entry,) = entries(tmp_path)
    entry.write_bytes(entry.read_bytes()[:40])  # truncated
    assert load_bars(p).close.tolist() == [100.5, 101, 100.8, 100.1]
    np.save(entry, np.arange(4.0))  # not BAR_DTYPE records
    assert load_bars(p).close.tolist() == [100.5, 101, 100.8, 100.1]


def test_unwritable_cache_does_not_stop_loading(tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    monkeypatch.setenv("TRADEBOT_CACHE_DIR", str(blocker))
    assert len(load_bars(write(tmp_path, GOOD))) == 4


def test_use_cache_false_and_validate_write_nothing(tmp_path):
    p = write(tmp_path, GOOD)
    load_bars(p, use_cache=False)
    validate_file(p)
    assert entries(tmp_path) == []


# -- tradebot data validate ------------------------------------------------------------------------


def test_cli_validate_good_bad_and_gappy_files(tmp_path, capsys):
    good = write(tmp_path, GOOD)
    assert main(["data", "validate", str(good)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{good}: OK\n") and "TEST-USDT 15m: 4 bars" in out

    bad = write(tmp_path, row3("2024-01-01 00:30:00,101,101.5,100.2,100.8,-9"),
                name="B_15m_data.csv")
    assert main(["data", "validate", str(bad)]) == 1
    out = capsys.readouterr().out
    assert f"{bad}: INVALID" in out and f"{bad}: line 4: negative volume -9" in out

    gappy = write(tmp_path, GAPPY, name="G_15m_data.csv")
    assert main(["data", "validate", str(gappy)]) == 1
    out = capsys.readouterr().out
    assert "INVALID" in out and "2 gaps, 4 missing bars" in out and "--gaps" in out
    assert main(["data", "validate", str(gappy), "--gaps", "fill"]) == 0
    out = capsys.readouterr().out
    assert "OK" in out and "2 gaps, 4 missing bars" in out and "policy: fill" in out


def test_cli_validate_names_and_missing_files(tmp_path, capsys):
    plain = write(tmp_path, GOOD, name="prices.csv")
    assert main(["data", "validate", str(plain)]) == 1
    assert "--symbol/--timeframe" in capsys.readouterr().out
    assert main(["data", "validate", str(plain), "--symbol", "ETHUSDT", "--timeframe", "15m"]) == 0
    assert "ETH-USDT 15m: 4 bars" in capsys.readouterr().out
    assert main(["data", "validate", str(tmp_path / "NONE_15m_data.csv")]) == 1
    assert "file not found" in capsys.readouterr().out


# -- the real data -------------------------------------------------------------------------------


def test_real_file_validates_and_loads_fast(real_data_path):
    rep = validate_file(real_data_path)
    assert rep.ok, rep.summary()
    assert (rep.rows, rep.gaps.count, rep.symbol) == (69_122, 0, "BTC-USDT")
    assert (rep.first_open, rep.last_open) == ("2023-04-01 00:00:00", "2025-03-21 00:15:00")
    t0 = time.perf_counter()
    bars = load_bars(real_data_path, use_cache=False)
    assert time.perf_counter() - t0 < 1.0  # measured ~0.1 s; a whole second is a generous bound
    assert np.all(np.diff(bars.ts_open_ns) == MIN15)
    assert (bars.open[0], bars.close[0], bars.volume[0]) == (28465.36, 28500.0, 329.11997)


def test_missing_real_data_fails_in_ci_and_skips_elsewhere(monkeypatch):
    from tests.conftest import need

    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI needs this real part: gone"):
        need(False, "gone")
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception, match="gone"):
        need(False, "gone")
    need(True, "present")  # no effect


def test_a_binary_file_is_named_as_such(tmp_path):
    p = tmp_path / "BIN-USDT_15m_data.csv"
    p.write_bytes(b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 4)
    with pytest.raises(DataError, match=r"a binary file, not a CSV \(it contains NUL bytes\)"):
        load_bars(p, use_cache=False)
    report = validate_file(p)
    assert not report.ok and "binary file" in report.problems[0]
