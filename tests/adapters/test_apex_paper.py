"""Paper mode (mode: paper = the Apex feed + the simulated broker) against the local venue on
loopback, with the real apexomni client: the same candles through a backtest and through paper
mode (venue replaying them from their first candle in lockstep) give identical signals and
trades; the journal holds every bar, signal, order, fill and trade; `tradebot run` stops after
--max-bars or a Ctrl-C with the results of a backtest, and a wrong venue URL is exit 2 with a
message naming it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import msgspec
import pytest

from adapters.apex.venue import LocalVenue
from engine.bars import Bars
from engine.bootstrap import build_engine
from engine.bus import PRIORITY_SINK
from engine.cli import main
from engine.config import load_config
from engine.events import BarClosed, OrderFilled, SignalRaised, SubmitOrder, TradeClosed
from engine.journal import read_events
from tests.adapters.real_sample import real_sample

ROOT = Path(__file__).resolve().parents[2]
PAPER = ROOT / "configs" / "paper.yaml"
N_BARS = 420  # the volume profile warms up over 200: about 200 bars of decisions


def _sig(s: SignalRaised | TradeClosed) -> dict:
    d = msgspec.structs.asdict(s)
    d.pop("ts_init_ns")  # when the event was made: wall time live, bar time in a backtest
    return d


def _trades(acct) -> list[dict]:  # type: ignore[no-untyped-def]
    return [_sig(t) for t in acct.trades]


def _record(engine) -> list[SignalRaised]:  # type: ignore[no-untyped-def]
    out: list[SignalRaised] = []
    engine.bus.subscribe(SignalRaised, out.append, priority=PRIORITY_SINK, name="test")
    return out


@pytest.fixture(scope="module")
def sample(real_bars: Bars, tmp_path_factory: pytest.TempPathFactory) -> tuple[Bars, Path]:
    return real_sample(real_bars, tmp_path_factory.mktemp("paper"), N_BARS)


def test_paper_run_has_the_backtests_signals_and_trades(sample: tuple[Bars, Path],
                                                       tmp_path: Path) -> None:
    bars, path = sample
    common = {"output.dir": str(tmp_path / "bt"), "output.report": False}
    bt_cfg = load_config(PAPER, {**common, "mode": "backtest", "data.file": str(path),
                                 "data.venue": None, "execution.workers": 1})
    bt = build_engine(bt_cfg)
    bt_signals = _record(bt)
    bt.run()

    with LocalVenue(bars, speed=0) as venue:  # replays from the first candle, lockstep
        cfg = load_config(PAPER, {**common, "data.venue": venue.url, "data.warmup_bars": 0,
                                  "data.poll_interval_s": 0.005})
        paper = build_engine(cfg, journal_path=tmp_path / "journal.sqlite")
        paper.feed.max_bars = len(bars)  # type: ignore[attr-defined]
        paper_signals = _record(paper)
        last = paper.run()
    assert last is not None and last.seq == len(bars) - 1
    assert paper.store.count == bt.store.count == len(bars)

    assert len(bt_signals) >= 3, "the sample must exercise the strategies"
    assert [_sig(s) for s in paper_signals] == [_sig(s) for s in bt_signals]
    n_trades = 0
    for name, acct in bt.accounts.items():
        assert _trades(paper.accounts[name]) == _trades(acct), name
        n_trades += len(acct.trades)
    assert n_trades >= 6

    # the journal: every bar, signal, order, fill and trade of the paper run
    events = list(read_events(tmp_path / "journal.sqlite"))
    kinds: dict[type, int] = {}
    for e in events:
        kinds[type(e)] = kinds.get(type(e), 0) + 1
    assert kinds[BarClosed] == len(bars)
    assert kinds[SignalRaised] == len(paper_signals)
    assert kinds[TradeClosed] == n_trades
    assert kinds[SubmitOrder] >= n_trades and kinds[OrderFilled] >= n_trades


def _tradebot(*args: str, **kw) -> subprocess.Popen:  # type: ignore[no-untyped-def]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "engine.cli", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def test_cli_max_bars_stops_and_writes_the_results(sample: tuple[Bars, Path], tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    bars, _ = sample
    b = bars.slice(0, 240)
    with LocalVenue(b, speed=0, start=int(b.ts_open_ns[230]) // 1_000_000) as venue:
        rc = main(["run", str(PAPER), "--venue", venue.url, "--max-bars", "3",
                   "--out", str(tmp_path / "a")])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert len([x for x in err.splitlines() if x.startswith("bar ")]) == 3
    assert "feed: 3 bars after" in err and "0 gaps" in err
    assert "paper: BTC-USDT 15m" in out
    for f in ("trades.csv", "equity.csv", "metrics.json", "config.resolved.yaml",
              "journal.sqlite"):
        assert (tmp_path / "a" / f).is_file(), f
    # the journal starts with the history (ts_init_ns 0: it reached no handler), then the run
    journal = [e for e in read_events(tmp_path / "a" / "journal.sqlite")
               if isinstance(e, BarClosed)]
    history = [e for e in journal if e.ts_init_ns == 0]
    assert len(history) > 200 and len(journal) == len(history) + 3
    assert [e.seq for e in journal] == list(range(len(journal)))
    # history up to candle 228; 229 (the newest closed at start), 230 and 231 run
    assert [e.ts_event_ns for e in journal] == b.ts_close_ns[229 - len(history):232].tolist()


def test_cli_ctrl_c_stops_cleanly_and_writes_the_results(sample: tuple[Bars, Path],
                                                        tmp_path: Path) -> None:
    bars, _ = sample
    b = bars.slice(0, 240)
    start = int(b.ts_open_ns[230]) // 1_000_000  # 230 candles of history, 10 to come
    with LocalVenue(b, speed=0, start=start) as venue:
        p = _tradebot("run", str(PAPER), "--venue", venue.url, "--out", str(tmp_path / "b"))
        assert p.stderr is not None
        deadline = time.monotonic() + 120
        last_close = time.strftime("%Y-%m-%d %H:%M", time.gmtime(int(b.ts_close_ns[-1]) // 10**9))
        seen: list[str] = []
        while time.monotonic() < deadline:  # until the file's last candle is through
            line = p.stderr.readline()
            seen.append(line)
            if (line.startswith("bar ") and last_close in line) or not line:
                break
        time.sleep(0.3)
        p.send_signal(signal.SIGINT)  # the venue has nothing more: the feed is waiting
        out, err = p.communicate(timeout=60)
    assert p.returncode == 0, "".join(seen) + err
    assert "stopping after the current bar" in err
    assert "Traceback" not in err
    bar_lines = [x for x in seen if x.startswith("bar ")]
    first_seq = int(bar_lines[0].split()[1].rstrip(":"))
    assert len(bar_lines) == 11  # the newest closed at start, then the 10 to come
    eq = (tmp_path / "b" / "equity.csv").read_text().splitlines()
    assert len(eq) == 1 + first_seq + 11  # header, the history, the bars run
    assert (tmp_path / "b" / "journal.sqlite").is_file()
    assert "paper: BTC-USDT 15m" in out


@pytest.mark.parametrize("url", ["http://127.0.0.1:9", "ftp://nowhere"])
def test_cli_wrong_venue_is_exit_2_naming_it(url: str, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["run", str(PAPER), "--venue", url, "--max-bars", "1", "--out",
               str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.startswith("error:") and url.split("//")[1] in err
    assert "Traceback" not in err
    assert not (tmp_path / "x").exists()  # nothing written


def test_max_bars_is_refused_for_a_backtest(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["run", str(ROOT / "configs" / "default.yaml"), "--max-bars", "5",
               "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert rc == 2 and "--max-bars" in err and "data.end" in err


def test_paper_config_without_a_venue_says_what_to_set(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    text = "\n".join(x for x in PAPER.read_text().splitlines()
                     if not x.strip().startswith("venue:"))
    cfg = tmp_path / "paper.yaml"
    cfg.write_text(text)
    rc = main(["run", str(cfg), "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert rc == 2 and "data.venue" in err and "--venue" in err and "Traceback" not in err
