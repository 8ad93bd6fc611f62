"""`tradebot data download` (adapters/apex/download.py) with the real apexomni client against the
local venue: download -> validate -> backtest round trip, resume that appends only what is
missing, refusal of a file that disagrees with the venue, retries on 5xx/429/non-JSON/timeouts,
and an unreachable venue named in a one-line error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from adapters.apex.download import download, file_name
from adapters.apex.venue import LocalVenue
from engine.bars import Bars
from engine.cli import main
from engine.datafile import load_bars
from engine.errors import DataError, TransientVenueError

ROOT = Path(__file__).resolve().parents[2]
SYNTH = ROOT / "data" / "SYNTH-BTCUSDT_15m_data.csv"
N = 700


@pytest.fixture(scope="module")
def bars() -> Bars:
    return load_bars(SYNTH, symbol="BTC-USDT", use_cache=False).slice(0, N)


@pytest.fixture()
def venue(bars: Bars):  # type: ignore[no-untyped-def]
    # real-time clock from the last candle's open: 699 closed candles, the last one forming
    with LocalVenue(bars, speed=1.0, start=int(bars.ts_open_ns[-1]) // 1_000_000) as v:
        yield v


def _iso(b: Bars, i: int) -> str:
    return str(np.datetime64(int(b.ts_open_ns[i]), "ns").astype("datetime64[s]")).replace("T", " ")


def _same(a: Bars, b: Bars) -> bool:
    return all(np.array_equal(getattr(a, c), getattr(b, c)) for c in
               ("ts_open_ns", "open", "high", "low", "close", "volume"))


def test_round_trip_download_validate_backtest(bars: Bars, venue: LocalVenue, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["data", "download", "--symbol", "BTC-USDT", "--timeframe", "15m",
               "--start", _iso(bars, 0)[:10], "--out", str(tmp_path), "--venue", venue.url,
               "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 0, out
    path = tmp_path / "BTCUSDT_15m_data.csv"
    assert file_name("BTC-USDT", "15m") == path.name
    assert "699 new candles" in out and "OK" in out
    got = load_bars(path, use_cache=False)
    assert _same(got, bars.slice(0, N - 1))  # every closed candle, never the forming one
    kl = [r["query"] for r in venue.requests if r["path"] == "/api/v3/klines"]
    assert len(kl) == 4 and all(int(q["limit"]) <= 200 for q in kl)
    assert main(["data", "validate", str(path)]) == 0
    assert main(["run", str(ROOT / "configs" / "default.yaml"), "--data", str(path),
                 "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    assert (tmp_path / "run" / "trades.csv").is_file()


def test_resume_appends_only_what_is_missing(bars: Bars, venue: LocalVenue,
                                             tmp_path: Path) -> None:
    first = download("BTC-USDT", "15m", _iso(bars, 0), _iso(bars, 300), tmp_path, venue.url,
                     progress=False)
    assert (first.appended, first.existing) == (301, 0)
    before = len(venue.requests)
    again = download("BTC-USDT", "15m", _iso(bars, 0), None, tmp_path, venue.url,
                     progress=False)
    assert (again.appended, again.existing) == (398, 301)
    assert again.report.ok and again.report.rows == N - 1
    assert _same(load_bars(again.path, use_cache=False), bars.slice(0, N - 1))
    kl = [r["query"] for r in venue.requests[before:] if r["path"] == "/api/v3/klines"]
    # one request checks the file's last rows against the venue, then only the rest is fetched
    assert int(kl[0]["start"]) * 1000 == int(bars.ts_open_ns[101]) // 1_000_000
    assert int(kl[1]["start"]) * 1000 == int(bars.ts_open_ns[301]) // 1_000_000
    nothing = download("BTC-USDT", "15m", _iso(bars, 0), None, tmp_path, venue.url,
                       progress=False)
    assert nothing.appended == 0 and nothing.report.rows == N - 1


def test_a_file_that_disagrees_with_the_venue_is_refused(bars: Bars, venue: LocalVenue,
                                                         tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    res = download("BTC-USDT", "15m", _iso(bars, 0), _iso(bars, 300), tmp_path, venue.url,
                   progress=False)
    lines = res.path.read_text().splitlines()
    f = lines[249].split(",")  # line 250 of the file: data row 248
    f[4] = repr(float(f[4]) + 1.0)
    lines[249] = ",".join(f)
    res.path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"line 250 \(.*\) disagrees with the venue"):
        download("BTC-USDT", "15m", _iso(bars, 0), None, tmp_path, venue.url, progress=False)
    rc = main(["data", "download", "--symbol", "BTC-USDT", "--timeframe", "15m", "--start",
               _iso(bars, 0), "--out", str(tmp_path), "--venue", venue.url, "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "line 250" in err and "Traceback" not in err
    assert res.path.read_text().splitlines() == lines  # untouched


def test_retries_with_backoff_on_transient_errors(bars: Bars, venue: LocalVenue,
                                                  tmp_path: Path) -> None:
    waits: list[float] = []
    venue.inject("/api/v3/klines", "html502")
    venue.inject("/api/v3/klines", "rate_limit")
    venue.inject("/api/v3/klines", "http500")
    venue.inject("/api/v3/klines", "timeout", delay=1.0)
    res = download("BTC-USDT", "15m", _iso(bars, 0), None, tmp_path, venue.url,
                   progress=False, timeout_s=0.5, backoff_s=0.25, sleep=waits.append)
    assert res.retries == 4 and res.appended == N - 1
    # doubling backoff for one request (0.25, 0.5, 1, 2), the venue's retryAfter (1 s) for the 429
    assert waits == [0.25, 1.0, 1.0, 2.0]
    assert _same(load_bars(res.path, use_cache=False), bars.slice(0, N - 1))
    venue.inject("/api/v3/klines", "http500", count=3)
    with pytest.raises(TransientVenueError, match=r"gave up after 2 retries.*resumes"):
        download("BTC-USDT", "15m", _iso(bars, 0), None, tmp_path / "b", venue.url,
                 progress=False, retries=2, sleep=waits.append)


def test_unreachable_venue_is_one_line_naming_the_url(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    rc = main(["data", "download", "--symbol", "BTC-USDT", "--timeframe", "15m", "--start",
               "2025-01-01", "--out", str(tmp_path), "--venue", "http://127.0.0.1:9"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error:") and "127.0.0.1:9" in err
    assert "Traceback" not in err and not list(tmp_path.iterdir())
