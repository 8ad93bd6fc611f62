"""Every validation failure names the file, the line and the problem."""

from __future__ import annotations

import numpy as np
import pytest

from engine.datafile import load_bars, parse_name, validate_file
from engine.errors import DataError

HEADER = "timestamp,open,high,low,close,volume\n"
GOOD = [
    "2024-01-01 00:00:00,100,101,99,100.5,10",
    "2024-01-01 00:15:00,100.5,102,100,101,12",
    "2024-01-01 00:30:00,101,101.5,100.2,100.8,9",
    "2024-01-01 00:45:00,100.8,101,100,100.1,11",
]


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TRADEBOT_CACHE_DIR", str(tmp_path / "cache"))


def write(tmp_path, rows, header=HEADER, name="TESTUSDT_15m_data.csv"):
    p = tmp_path / name
    p.write_text(header + "\n".join(rows) + "\n")
    return p


def test_good_file_loads(tmp_path):
    b = load_bars(write(tmp_path, GOOD))
    assert (b.symbol, b.timeframe, len(b)) == ("TEST-USDT", "15m", 4)
    assert b.close.tolist() == [100.5, 101, 100.8, 100.1]
    assert int(b.ts_open_ns[1] - b.ts_open_ns[0]) == 15 * 60 * 10**9
    assert int(b.ts_close_ns[0]) == int(b.ts_open_ns[1])


def test_epoch_milliseconds_equal_datetimes(tmp_path):
    ms = [str(int(np.datetime64(r.split(",")[0], "ms").astype(np.int64))) + r[19:] for r in GOOD]
    a = load_bars(write(tmp_path, GOOD))
    b = load_bars(write(tmp_path, ms, name="EPOCHUSDT_15m_data.csv"))
    assert a.ts_open_ns.tolist() == b.ts_open_ns.tolist()
    assert a.close.tolist() == b.close.tolist()


def test_iso_times_with_t_and_z(tmp_path):
    rows = [r.replace(" ", "T", 1).replace(",", "Z,", 1) for r in GOOD]
    assert load_bars(write(tmp_path, rows)).ts_open_ns.tolist() == load_bars(
        write(tmp_path, GOOD, name="B_15m_data.csv")).ts_open_ns.tolist()


@pytest.mark.parametrize(
    ("rows", "header", "line", "words"),
    [
        (GOOD, "timestamp,open,high,low,close\n", "line 1", "missing ['volume']"),
        (GOOD, "timestamp,open,high,low,close,volume,extra\n", "line 1", "unexpected ['extra']"),
        ([*GOOD[:2], "2024-01-01 00:30:00,101,abc,100.2,100.8,9", GOOD[3]], HEADER, "line 4",
         "high 'abc' is not a number"),
        ([*GOOD[:2], "2024-01-01 00:30:00,101,101.5,100.2,,9", GOOD[3]], HEADER, "line 4",
         "close"),
        ([*GOOD[:2], "2024-01-01 00:30:00,101,101.5,100.2,NaN,9", GOOD[3]], HEADER, "line 4",
         "NaN"),
        ([*GOOD[:2], "yesterday,101,101.5,100.2,100.8,9", GOOD[3]], HEADER, "line 4",
         "'yesterday' is not a time"),
        ([GOOD[0], GOOD[0], *GOOD[1:]], HEADER, "line 3", "duplicate timestamp"),
        ([GOOD[1], GOOD[0], *GOOD[2:]], HEADER, "line 3", "earlier than the line before"),
        ([*GOOD[:2], "2024-01-01 00:31:00,101,101.5,100.2,100.8,9"], HEADER, "line 4",
         "not on the bar grid"),
        ([*GOOD[:2], "2024-01-01 00:30:00,101,100.5,100.2,100.8,9"], HEADER, "line 4",
         "high/low do not bound open/close"),
        ([*GOOD[:2], "2024-01-01 00:30:00,101,101.5,100.2,100.8,-9"], HEADER, "line 4",
         "negative volume"),
    ],
)
def test_bad_files_name_file_line_and_problem(tmp_path, rows, header, line, words):
    p = write(tmp_path, rows, header=header)
    with pytest.raises(DataError) as ei:
        load_bars(p)
    msg = str(ei.value)
    assert str(p) in msg and line in msg and words in msg, msg
    rep = validate_file(p)
    assert not rep.ok and words in rep.summary()


def test_empty_file_and_header_only(tmp_path):
    p = tmp_path / "E_15m_data.csv"
    p.write_text("")
    with pytest.raises(DataError, match="empty"):
        load_bars(p)
    p.write_text(HEADER)
    with pytest.raises(DataError, match="no bars"):
        load_bars(p)


def test_many_bad_lines_are_counted(tmp_path):
    rows = [r.rsplit(",", 1)[0] + ",-1" for r in GOOD]
    with pytest.raises(DataError, match=r"line 2, 3, 4 \(and 1 more\): negative volume"):
        load_bars(write(tmp_path, rows))


def test_gap_policies(tmp_path):
    rows = [GOOD[0], GOOD[1], "2024-01-01 01:15:00,101,101.5,100.2,100.8,9"]
    p = write(tmp_path, rows)
    with pytest.raises(DataError, match="1 gaps, 3 missing bars, largest 3 bars after "
                                        "2024-01-01 00:15:00.*'fill'.*'keep'"):
        load_bars(p)
    kept = load_bars(p, gaps="keep")
    assert len(kept) == 3
    filled = load_bars(p, gaps="fill")
    assert len(filled) == 6
    assert filled.close.tolist() == [100.5, 101, 101, 101, 101, 100.8]
    assert filled.volume.tolist() == [10, 12, 0, 0, 0, 9]
    assert filled.high[2] == filled.low[2] == 101
    assert "1 gaps" in validate_file(p).summary()


def test_bad_name_says_how_to_fix(tmp_path):
    p = write(tmp_path, GOOD, name="prices.csv")
    with pytest.raises(DataError, match="SYMBOL_TIMEFRAME_data.csv.*data.symbol"):
        load_bars(p)
    assert load_bars(p, symbol="ETHUSDT", timeframe="15m").symbol == "ETH-USDT"
    assert parse_name(p.with_name("SYNTH-BTCUSDT_1h_data.csv")) == ("SYNTH-BTCUSDT", "1h")


def test_cache_hit_is_identical_and_a_changed_file_is_reparsed(tmp_path):
    p = write(tmp_path, GOOD)
    a = load_bars(p)
    cached = list((tmp_path / "cache" / "bars").glob("*.npy"))
    assert len(cached) == 1
    b = load_bars(p)
    assert a.close.tolist() == b.close.tolist()
    p.write_text(HEADER + "\n".join([*GOOD[:3], "2024-01-01 00:45:00,100.8,101,100,100.05,11"]))
    assert load_bars(p).close[-1] == 100.05  # new size/mtime: a new key, never stale
    p.write_text(HEADER + "\n".join([*GOOD[:3], "2024-01-01 00:45:00,100.8,101,100,oops,11"]))
    with pytest.raises(DataError, match="oops"):  # invalid data is never served from cache
        load_bars(p)


def test_real_file_validates(real_data_path):
    rep = validate_file(real_data_path)
    assert rep.ok and rep.rows == 69_122 and rep.gaps.count == 0
    assert (rep.symbol, rep.first_open) == ("BTC-USDT", "2023-04-01 00:00:00")
