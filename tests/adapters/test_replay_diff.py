"""`tradebot replay-diff JOURNAL` against real runs: a paper run and a live run through the real
CLI against the local venue (lockstep, real candles, the real apexomni client), then their
journals diffed against a backtest replay of the journaled bars.

- the paper run's replay is identical (exit 0);
- the live run against a venue with 5 bps slippage reports slippage on exactly the bars its fills
  happened on, each 5 bps adverse, and nothing else (exit 1);
- the paper venue served one candle with another close than the candle file has (a bar revised
  after the fact): with ``--data FILE`` the diff lists that bar with both values and blames the
  signal it changed on it;
- a journal with an injected ``HandlerFailed`` (a strategy disabled, its later orders absent)
  blames the missing orders on the disabled handler;
- a paper run whose risk gate refused an entry live (``max_orders_per_minute`` counts wall time,
  the replay bar time) blames the refusal, and the missing trade on it;
- a journal with an injected restart (``Reconciled``) blames the cancel it delayed on it;
- a run killed before its close at the end replays identically (the replay does not close);
- bad inputs (no such file, not a journal, an empty journal, no config beside it) are exit 2
  with a message saying what to give.
"""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path

import pytest
import yaml

from adapters.apex.client import ApexCredentials
from adapters.apex.venue import LocalVenue
from adapters.synth_data import write_csv
from engine.bars import Bars
from engine.cli import main
from engine.events import (
    BarClosed,
    CancelOrder,
    HandlerFailed,
    ModifyOrder,
    OrderCanceled,
    OrderFilled,
    Reconciled,
    SubmitOrder,
    TradeClosed,
)
from engine.journal import Journal, read_events
from engine.replay_diff import bars_first

ROOT = Path(__file__).resolve().parents[2]
PAPER = ROOT / "configs" / "paper.yaml"
LIVE = ROOT / "configs" / "live.yaml"
FIRST, N = 30_000, 430  # real candles; the venue starts at candle START: history before it
START = 230  # live bars: 230 .. 429
REVISED = 250  # the candle the paper venue serves with another close than the file
LIVE_BARS = N - START
SLIPPAGE = 0.0005  # the live venue's adverse slippage on market and stop fills (5 bps)


@pytest.fixture(scope="module")
def sample(real_bars: Bars, tmp_path_factory: pytest.TempPathFactory) -> tuple[Bars, Path]:
    bars = real_bars.slice(FIRST, FIRST + N)
    path = tmp_path_factory.mktemp("replay_diff") / "BTCUSDT_15m_data.csv"
    write_csv(bars, path)
    return bars, path


def _revised(bars: Bars) -> Bars:
    """``bars`` with candle REVISED closing 3 % lower (low moved with it): what the venue served
    live, before the candle file got the final value."""
    close, low = bars.close.copy(), bars.low.copy()
    close[REVISED] *= 0.97
    low[REVISED] = min(low[REVISED], close[REVISED])
    return Bars.from_columns(bars.symbol, bars.timeframe, bars.tf_ns, bars.ts_open_ns,
                             bars.open, bars.high, low, close, bars.volume)


def _start_ms(bars: Bars) -> int:
    return int(bars.ts_open_ns[START]) // 1_000_000


@pytest.fixture(scope="module")
def paper_run(sample: tuple[Bars, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A paper run by `tradebot run` (history from the venue, then LIVE_BARS lockstep bars) on a
    venue serving the revised candle; its output folder."""
    bars, _ = sample
    out = tmp_path_factory.mktemp("paper") / "run"
    with LocalVenue(_revised(bars), speed=0, start=_start_ms(bars)) as venue:
        rc = main(["run", str(PAPER), "--venue", venue.url, "--max-bars", str(LIVE_BARS),
                   "--out", str(out), "--no-progress"])
    assert rc == 0
    return out


def _diff(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main(["replay-diff", *args])
    o, e = capsys.readouterr()
    return rc, o, e


def _report(tmp_path: Path, capsys: pytest.CaptureFixture[str], *args: str
            ) -> tuple[int, dict]:  # type: ignore[type-arg]
    out = tmp_path / "diff.json"
    rc, o, e = _diff(capsys, *args, "--json", "--out", str(out))
    assert "Traceback" not in e, e
    assert f"report in {out}" in o
    return rc, json.loads(out.read_text())


def test_paper_run_replays_identically(paper_run: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = _diff(capsys, str(paper_run / "journal.sqlite"))
    assert rc == 0, out + err
    assert "result: identical" in out
    events = list(read_events(paper_run / "journal.sqlite"))
    history = sum(1 for e in events if isinstance(e, BarClosed) and e.ts_init_ns == 0)
    assert history > 200  # the warm-up came from the venue, and was not traded in the replay
    assert f"{history:,} history, {LIVE_BARS} live" in out
    n_sig = sum(1 for e in events if type(e).__name__ == "SignalRaised")
    n_fill = sum(1 for e in events if isinstance(e, OrderFilled))
    n_trades = sum(1 for e in events if isinstance(e, TradeClosed))
    assert n_sig >= 3 and n_trades >= 6, "the sample must exercise the strategies"
    assert f"signals: {n_sig} live, {n_sig} backtest, {n_sig} matched" in out
    assert f"fills: {n_fill} live, {n_fill} backtest, {n_fill} matched" in out
    assert f"trades: {n_trades} live, {n_trades} backtest, {n_trades} matched" in out


def test_revised_bar_is_found_with_data_and_blamed(
        paper_run: Path, sample: tuple[Bars, Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    bars, path = sample
    journal = paper_run / "journal.sqlite"
    seq = next(e.seq for e in read_events(journal) if isinstance(e, BarClosed)
               and e.ts_event_ns == int(bars.ts_open_ns[REVISED]) + bars.tf_ns)
    rc, rep = _report(tmp_path, capsys, str(journal), "--data", str(path))
    assert rc == 1 and not rep["identical"]
    assert [r["bar"] for r in rep["revised"]] == [seq]
    was, now = bars.close[REVISED] * 0.97, bars.close[REVISED]
    assert f"close {was:.10g} -> {now:.10g}" in rep["revised"][0]["what"]
    assert rep["first_divergence"]["bar"] == seq
    # the revised close raised a signal live that the file's candle does not: blamed on it
    sig = [d for d in rep["differences"] if d["stream"] == "signals"]
    assert sig and sig[0]["bar"] == seq and sig[0]["kind"] == "extra"
    assert sig[0]["cause"].startswith(f"bar {seq} revised after the fact")
    assert all("revised" in d["cause"] or "follows" in d["cause"] for d in rep["differences"])


def _rewrite(src: Path, dst: Path, edit) -> None:  # type: ignore[no-untyped-def]
    """Journal ``dst``: ``src``'s run with its event list passed through ``edit``."""
    db = sqlite3.connect(src)
    run_id = db.execute("SELECT run_id FROM events LIMIT 1").fetchone()[0]
    db.close()
    j = Journal(dst, run_id, include_bars=True)
    for e in edit(list(read_events(src, run_id))):
        j(e)
    j.close()


def test_injected_handler_failure_is_blamed(paper_run: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    src = paper_run / "journal.sqlite"
    events = list(read_events(src))
    name = "vah_exit"
    first = min(e.seq for e in events if isinstance(e, SubmitOrder) and e.account == name)
    fail_at = first - 1  # disabled the bar before its first entry: flat, nothing of it after
    # a durable journal writes a bar before its events, a plain one after them
    after_bar = fail_at if bars_first(events) else fail_at - 1

    def edit(evs: list) -> list:  # type: ignore[type-arg]
        out, failed = [], False
        for e in evs:
            mine = isinstance(e, (SubmitOrder, OrderFilled, OrderCanceled, CancelOrder,
                                  ModifyOrder, TradeClosed)) and e.account == name
            if failed and mine:
                continue  # the disabled strategy traded no more
            out.append(e)
            if isinstance(e, BarClosed) and e.seq == after_bar:  # published on bar fail_at
                out.append(HandlerFailed(ts_event_ns=e.ts_event_ns, ts_init_ns=1,
                                         handler=f"strategy:{name}",
                                         error="ZeroDivisionError: float division by zero"))
                failed = True
        return out

    dst = tmp_path / "run" / "journal.sqlite"
    _rewrite(src, dst, edit)
    (tmp_path / "run" / "config.resolved.yaml").write_text(
        (paper_run / "config.resolved.yaml").read_text())
    rc, rep = _report(tmp_path, capsys, str(dst))
    assert rc == 1
    assert rep["handlers_disabled"] == [{"side": "live", "bar": fail_at,
                                         "handler": f"strategy:{name}",
                                         "error": "ZeroDivisionError: float division by zero"}]
    diffs = [d for d in rep["differences"] if d["stream"] == name]
    assert diffs and {d["stream"] for d in rep["differences"]} == {name}
    assert diffs[0]["bar"] == first and diffs[0]["kind"] == "missing"
    assert any("submit" in x and "ENTRY" in x for x in diffs[0]["backtest"])
    for d in diffs:
        assert d["cause"].startswith(f"handler strategy:{name} disabled at bar {fail_at}"), d
    # the text: a summary first, then the strategy's section from its first divergence
    rc, out, _ = _diff(capsys, str(dst))
    head, _, body = out.partition("\n## ")
    assert rc == 1 and f"first divergence at bar {fail_at}" in head
    assert f"{name}: {len(diffs)} difference" in body


def test_killed_run_without_its_close_at_end_replays_identically(
        paper_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A run killed after its last bar never closed its positions (no END_OF_DATA fills): the
    replay does not close them either, so the two still agree."""
    src = paper_run / "journal.sqlite"
    events = list(read_events(src))
    last = max(i for i, e in enumerate(events) if isinstance(e, BarClosed))
    assert any(isinstance(e, OrderFilled) and e.tag == "END_OF_DATA" for e in events[last:]), \
        "the sample must hold positions at its end"
    dst = tmp_path / "run" / "journal.sqlite"
    _rewrite(src, dst, lambda evs: evs[:last + 1])
    (tmp_path / "run" / "config.resolved.yaml").write_text(
        (paper_run / "config.resolved.yaml").read_text())
    rc, out, err = _diff(capsys, str(dst))
    assert rc == 0, out + err
    assert "result: identical" in out


def test_an_edited_config_is_said_and_its_effect_listed(
        paper_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The run's config.resolved.yaml edited afterwards (a wider ATR stop): the summary says the
    config is not what the run hashed, and the signals differ in their stop from the first one."""
    cfg = tmp_path / "edited.yaml"
    text = (paper_run / "config.resolved.yaml").read_text()
    assert "stop_atr_mult: 4.5" in text
    cfg.write_text(text.replace("stop_atr_mult: 4.5", "stop_atr_mult: 6.0"))
    rc, out, err = _diff(capsys, str(paper_run / "journal.sqlite"), "--config", str(cfg))
    assert rc == 1, out + err
    assert "edited after the run" in out.split("\n")[1]
    first = next(x for x in out.splitlines() if x.startswith("bar "))
    assert "value: stop differs and the journal records no cause" in first
    assert "follows the signal stop difference at bar" in out


def test_restart_is_blamed_for_what_it_delayed(paper_run: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """A run restarted (``Reconciled`` journaled): a cancel of the strategy's that came two bars
    late, after the restart, is one timing difference blamed on the restart."""
    src = paper_run / "journal.sqlite"
    events = list(read_events(src))
    bf = bars_first(events)
    name = "vah_exit"
    bar_of: dict[int, int] = {}  # event index -> the bar it belongs to (the diff's own rule)
    nxt = None
    for i in range(len(events) - 1, -1, -1):
        if isinstance(events[i], BarClosed) and not bf:
            nxt = events[i].seq
        bar_of[i] = nxt if nxt is not None else -1
    if bf:
        cur = -1
        for i, e in enumerate(events):
            if isinstance(e, BarClosed):
                cur = e.seq
            bar_of[i] = cur
    k = next(i for i, e in enumerate(events) if isinstance(e, CancelOrder) and e.account == name)
    moved, b = events[k], bar_of[k]
    restart = b + 2
    rec = Reconciled(ts_event_ns=moved.ts_event_ns, ts_init_ns=1, account=name,
                     resumed_from=str(src), actions=("adopted the venue's fill of the stop",))

    def edit(evs: list) -> list:  # type: ignore[type-arg]
        out, skipped = [], False
        for e in evs:
            if e == moved and not skipped:  # read again: an equal event, not the same object
                skipped = True
                continue
            out.append(e)
            if isinstance(e, BarClosed) and e.seq == (restart if bf else restart - 1):
                out += [rec, moved]  # both on bar `restart`
        return out

    dst = tmp_path / "run" / "journal.sqlite"
    _rewrite(src, dst, edit)
    (tmp_path / "run" / "config.resolved.yaml").write_text(
        (paper_run / "config.resolved.yaml").read_text())
    rc, rep = _report(tmp_path, capsys, str(dst))
    assert rc == 1
    assert rep["restarts"] == [{"bar": restart, "account": name,
                                "what": "adopted the venue's fill of the stop"}]
    assert len(rep["differences"]) == 1, rep["differences"]
    d = rep["differences"][0]
    assert (d["stream"], d["bar"], d["kind"]) == (name, b, "timing")
    assert d["cause"] == (f"the run restarted at bar {restart} (reconciliation of {name}: adopted "
                          "the venue's fill of the stop): the run did this 2 bars later than the "
                          "backtest")


def test_risk_refusal_live_is_blamed(sample: tuple[Bars, Path], tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    """A paper run with ``risk.max_orders_per_minute: 1``: lockstep bars come many a second, so
    live (wall clock) the entry after the first is refused; the replay counts bar time and sends
    it. The diff blames the refusal, and what follows it."""
    bars, _ = sample
    raw = yaml.safe_load(PAPER.read_text())
    raw["strategies"] = [{"name": "vah_exit", "kind": "vah_exit"}]
    raw["risk"] = {"max_orders_per_minute": 1}
    cfg = tmp_path / "paper_risk.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    out = tmp_path / "run"
    with LocalVenue(bars, speed=0, start=_start_ms(bars)) as venue:
        rc = main(["run", str(cfg), "--venue", venue.url, "--max-bars", str(LIVE_BARS),
                   "--out", str(out), "--no-progress"])
    assert rc == 0
    refused = [e for e in read_events(out / "journal.sqlite")
               if isinstance(e, OrderCanceled) and e.reason.startswith("risk:")]
    assert refused, "the limit must refuse an entry live"
    rc, rep = _report(tmp_path, capsys, str(out / "journal.sqlite"))
    assert rc == 1
    first = rep["differences"][0]
    assert first["stream"] == "vah_exit" and first["kind"] == "extra"
    assert first["live"][0].startswith("buy market ENTRY refused by the risk gate: risk: ") or \
        first["live"][0].startswith("sell market ENTRY refused by the risk gate: risk: ")
    assert first["cause"].startswith("order refused live: ")
    assert rep["first_divergence"]["bar"] == first["bar"]
    later = [d for d in rep["differences"][1:] if d["stream"] == "vah_exit"]
    assert later and all(d["cause"].startswith(("order refused live", "follows the divergence"))
                         for d in later)


def test_live_run_with_venue_slippage_reports_it_on_the_fill_bars(
        sample: tuple[Bars, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    creds = ApexCredentials("rd-key", "rd-secret", "rd-pass", "c0ffee" * 22)
    for k, v in (("APEX_API_KEY", creds.key), ("APEX_API_SECRET", creds.secret),
                 ("APEX_API_PASSPHRASE", creds.passphrase), ("APEX_ZK_SEEDS", creds.zk_seeds)):
        monkeypatch.setenv(k, v)
    bars, _ = sample
    raw = yaml.safe_load(LIVE.read_text())
    raw["strategies"] = [{"name": "trailing_stop", "kind": "trailing_stop"}]
    raw["risk"] = None  # the limits: tests/engine/test_risk.py
    raw["costs"].update(taker_fee_bps=5, maker_fee_bps=5, slippage_bps=0)  # the venue's fees
    raw["account"].update(initial_cash=10_000, position_size_frac=0.5)
    cfg = tmp_path / "live.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    out = tmp_path / "live"
    with LocalVenue(bars, speed=0, start=_start_ms(bars), taker_fee=0.0005, maker_fee=0.0005,
                    slippage=SLIPPAGE) as venue:
        rc = main(["run", str(cfg), "--venue", venue.url, "--max-bars", str(LIVE_BARS),
                   "--out", str(out), "--no-progress"])
    assert rc == 0
    fills = [e for e in read_events(out / "journal.sqlite") if isinstance(e, OrderFilled)]
    assert len(fills) >= 2, "the sample must trade"
    rc, rep = _report(tmp_path, capsys, str(out / "journal.sqlite"))
    assert rc == 1
    # one difference per fill, on its bar, blamed on slippage; nothing else differs but when
    # the venue let the engine know of a fill (a cancel that follows a stop fill can come a bar
    # later than in the backtest: reported as one timing difference)
    diffs = [d for d in rep["differences"] if d["kind"] != "timing"]
    assert sorted(d["bar"] for d in diffs) == sorted(f.seq for f in fills)
    assert rep["counts"]["fills"]["matched"] == len(fills)
    for d in diffs:
        assert d["kind"] == "value" and d["stream"] == "trailing_stop"
        assert d["cause"].startswith("slippage: filled 5.00 bps worse than the backtest's "
                                     "model price")
    # the live fill prices are the backtest's moved 5 bps against the trade
    for d in diffs:
        live_px = float(d["live"][0].split(" @ ")[1].split()[0])
        bt_px = float(d["backtest"][0].split(" @ ")[1].split()[0])
        # within 0.005 bps: the venue writes its prices to its tick
        assert math.isclose(abs(live_px / bt_px - 1), SLIPPAGE, rel_tol=1e-3)


@pytest.mark.parametrize("case", ["missing", "not_a_journal", "empty", "no_bars", "no_config",
                                  "bad_config"])
def test_bad_input_is_exit_2_with_what_to_give(case: str, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "journal.sqlite"
    want = {"missing": "no such file", "not_a_journal": "not a tradebot journal",
            "empty": "the journal is empty", "no_bars": "has no live bars journaled",
            "no_config": "--config",
            "bad_config": "invalid config"}[case]
    if case == "not_a_journal":
        path.write_text("time,open\n")
    elif case == "empty":
        Journal(path, "x").close()
    elif case == "no_bars":  # a backtest's journal: events, but its bars are the input file
        j = Journal(path, "default-0")
        j(HandlerFailed(ts_event_ns=1, ts_init_ns=1, handler="signals", error="x"))
        j.close()
    elif case in ("no_config", "bad_config"):
        j = Journal(path, "paper-0", include_bars=True)
        j(BarClosed(ts_event_ns=900 * 10**9, ts_init_ns=1, symbol="BTC-USDT", timeframe="15m",
                    seq=0, open=1.0, high=1.0, low=1.0, close=1.0, volume=1.0))
        j.close()
        if case == "bad_config":
            (tmp_path / "config.resolved.yaml").write_text("config_hash: x\nnot_a_key: 1\n")
    rc, out, err = _diff(capsys, str(path))
    assert rc == 2, out + err
    assert err.startswith("error:") and want in err and "Traceback" not in err


def test_help_says_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["replay-diff", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    assert "0 when" in text and "1 when there are differences" in text and "2 on bad input" in text
