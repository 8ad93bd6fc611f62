"""ApeX Omni market data: closed candles as ``BarClosed`` events (paper and live modes).

``ApexFeed`` implements ``engine.ports.BarFeed`` for a live venue: ``history()`` is ``None``, so
the composition root appends each bar to the ``BarStore`` as it arrives. It works against the real
ApeX Omni (``data.venue: main`` or ``test``) and against the local venue (``tradebot venue``,
``http://127.0.0.1:PORT``), through the official ``apexomni`` client; market data needs no keys.

Behaviour:

- **Warm-up.** ``fetch_warmup(n)`` returns the newest ``n`` closed candles (paginated, at most
  200 a request); the composition root puts them in the store as history, so feature handlers
  catch up on them before the first live bar and nothing trades on them.
- **Closed candles only, decided by the venue's clock.** Every poll first asks the venue for its
  time (``/api/v1/time``) and then for candles; a candle opening at ``t`` is delivered once
  ``t + timeframe <= server time``, never the forming one. The local clock is never used to
  decide a close (the local venue's clock is virtual and may run 900x or in lockstep).
- **Polling.** Between closes the feed sleeps until the next expected close per server time
  (scaled by the measured speed of the venue's clock, at most ``max_wait_s`` at a time), then
  polls every ``poll_interval_s`` until the candle is there. In lockstep (``--speed 0``) the venue
  advances as soon as the newest closed candle was seen, so the next poll follows at once.
- **Back-fill.** Each poll asks for everything after the last delivered candle, so a missed poll,
  an outage or a reconnect delivers the missed candles, in order, once.
- **Duplicates and revisions.** The last delivered candle is fetched again with every poll: the
  same values are a duplicate (counted, logged at debug); other values are a revision (counted,
  logged as a warning; the bar the engine already acted on is kept).
- **Gaps the venue cannot fill** (a later candle exists, earlier ones never come) follow
  ``data.gaps``: ``fail`` raises ``DataError``; ``keep`` delivers the next candle as the next
  ``seq``; ``fill`` inserts flat bars (OHLC = previous close, volume 0), as ``engine.datafile``.
- **Errors.** An unreachable venue or a URL that does not answer like the ApeX API raises
  ``VenueUnreachable`` naming the URL at start; during a run, transient errors are logged and
  retried with capped backoff, and the gap is back-filled when the venue answers again.

Stop it with ``request_stop()`` (Ctrl-C handler of ``tradebot run``) or ``max_bars``.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from adapters.apex.client import NETWORKS, ApexClient
from engine.bars import Bars
from engine.datafile import engine_symbol
from engine.errors import (
    ConfigError,
    DataError,
    TransientVenueError,
    VenueError,
    VenueUnreachable,
)
from engine.events import BarClosed
from engine.timeframes import timeframe_ns

logger = logging.getLogger(__name__)

MAX_KLINES = 200  # the venue's limit per klines request
NS_PER_MS = 1_000_000
# engine timeframe -> ApeX kline interval
INTERVALS = {"1m": "1", "5m": "5", "15m": "15", "30m": "30", "1h": "60", "2h": "120",
             "4h": "240", "6h": "360", "12h": "720", "1d": "D", "1w": "W"}


class FeedStopped(BaseException):  # a control-flow signal, not an error
    """Raised inside the feed's I/O by ``request_stop`` to end the wait at once.

    A ``BaseException`` (like ``KeyboardInterrupt``), so that the client's ``except Exception``
    (which maps every apexomni/requests failure to a ``VenueError``) lets it through: a Ctrl-C
    during a klines request used to end the run as "error: klines ...: apexomni raised
    FeedStopped" (exit 2) instead of stopping it cleanly."""


def resolve_venue(venue: str | None) -> str:
    """The REST base URL for ``data.venue``: ``main``/``test`` (ApeX Omni) or an http(s) URL.

    Raises:
        ConfigError: neither a network name nor an http(s) URL.
    """
    if venue is None:
        raise ConfigError(
            "data.venue is not set: paper and live modes read candles from ApeX Omni; set "
            "data.venue to main, test, or the URL of a local venue (tradebot venue), or pass "
            "--venue URL"
        )
    v = venue.strip()
    if v.lower() in NETWORKS:
        return NETWORKS[v.lower()]
    if not v.startswith(("http://", "https://")):
        raise ConfigError(
            f"data.venue {venue!r} is neither main, test nor an http(s) URL; e.g. "
            "http://127.0.0.1:8765 for `tradebot venue`"
        )
    return v.rstrip("/")  # apexomni breaks on a trailing slash (//api/...)


def apex_interval(timeframe: str) -> str:
    try:
        return INTERVALS[timeframe]
    except KeyError:
        raise ConfigError(
            f"timeframe {timeframe!r} has no ApeX Omni candles; use one of "
            f"{', '.join(INTERVALS)}"
        ) from None


Candle = tuple[int, float, float, float, float, float]  # open ms, o, h, l, c, v


class KlineClient:
    """Candles and server time from one venue, errors turned into the engine's classes.

    Args:
        base_url: REST base URL (see ``resolve_venue``).
        symbol: engine symbol, ``BTC-USDT``.
        timeframe: ``15m`` etc.
        api: the checked client to use (default: a new ``ApexClient`` for ``base_url``).
    """

    def __init__(self, base_url: str, symbol: str, timeframe: str, *, timeout_s: float = 10.0,
                 api: Any = None) -> None:
        self.base_url = base_url
        self.symbol = engine_symbol(symbol)
        self.timeframe = timeframe
        self.interval = apex_interval(timeframe)
        self.tf_ms = timeframe_ns(timeframe) // NS_PER_MS
        self.api = api if api is not None else ApexClient(base_url, timeout=timeout_s)
        self.requests = 0
        self.duplicates = 0  # candles sent twice in one answer
        self._time_path: str | None = None

    def _call(self, action: str, fn: Callable[..., Any], **kwargs: Any) -> Any:
        self.requests += 1
        return self.api.call(action, fn, **kwargs)

    def server_time_ms(self) -> int:
        """The venue's clock, epoch milliseconds (``/api/v1/time``; ``/api/v3/time``, which
        Omni documents, when the first is missing)."""
        if self._time_path == "v3":
            data = self._call("server time", self._v3_time)
        else:
            try:
                data = self._call("server time", self.api.public.server_time)
                self._time_path = "v1"
            except VenueUnreachable:
                raise
            except VenueError as first:
                if self._time_path == "v1":
                    raise
                # no /api/v1/time here (an error reply or a non-JSON 404 page): try v3 once;
                # if that fails too, the first error is the one to report
                try:
                    data = self._call("server time", self._v3_time)
                except VenueError:
                    raise first from None
                self._time_path = "v3"
        t = data.get("time") if isinstance(data, dict) else data
        try:
            v = int(float(t))
        except (TypeError, ValueError):
            raise VenueError(f"server time: {self.base_url} answered {data!r}; expected "
                             "{'time': epoch ms}") from None
        return v * 1000 if v < 10**11 else v  # seconds on some deployments

    def _v3_time(self) -> Any:
        pub = self.api.public
        return pub._submit_request(method="GET", path=pub.endpoint + "/api/v3/time")

    def klines(self, start_ms: int, end_ms: int) -> list[Candle]:
        """Candles opening in ``[start_ms, end_ms]`` (one request: at most 200), sorted, valid."""
        # start/end in seconds; the end is inside the last wanted candle, so an inclusive and an
        # exclusive end both return it
        data = self._call(
            f"klines {self.symbol} {self.timeframe}", self.api.public.klines_v3,
            symbol=self.symbol, interval=self.interval, start=start_ms // 1000,
            end=(end_ms + self.tf_ms) // 1000 - 1, limit=MAX_KLINES,
        )
        rows: Any = data
        if isinstance(data, dict):
            rows = data.get(self.symbol.replace("-", ""), data.get(self.symbol, []))
        if not isinstance(rows, list):
            raise VenueError(f"klines: {self.base_url} answered {str(data)[:200]!r}; expected "
                             f"{{'{self.symbol.replace('-', '')}': [candles]}}")
        out: dict[int, Candle] = {}
        for r in rows:
            c = _parse_candle(r, self.tf_ms)
            if c is None or not start_ms <= c[0] <= end_ms:
                continue
            if c[0] in out:
                if out[c[0]] == c:
                    self.duplicates += 1
                    logger.debug("%s %s: the venue sent the candle of %s twice; using it once",
                                 self.symbol, self.timeframe, _iso_ms(c[0]))
                else:
                    logger.warning("%s %s: the venue sent two different candles for %s in one "
                                   "answer; using the later", self.symbol, self.timeframe,
                                   _iso_ms(c[0]))
            out[c[0]] = c
        return [out[k] for k in sorted(out)]

    def klines_range(self, start_ms: int, end_ms: int,
                     on_page: Callable[[list[Candle]], None] | None = None) -> list[Candle]:
        """Candles opening in ``[start_ms, end_ms]``, paginated 200 at a time."""
        out: list[Candle] = []
        cursor = start_ms
        while cursor <= end_ms:
            page_end = min(end_ms, cursor + (MAX_KLINES - 1) * self.tf_ms)
            page = self.klines(cursor, page_end)
            if on_page is not None:
                on_page(page)
            out.extend(page)
            cursor = page_end + self.tf_ms
        return out


def _parse_candle(r: Any, tf_ms: int) -> Candle | None:
    """A candle from the venue's ``{"t","o","h","l","c","v"}`` (values as strings), or None
    (logged) when it is malformed or inconsistent."""
    try:
        t = int(float(r["t"]))
        o, h, lo, c, v = (float(r[k]) for k in ("o", "h", "l", "c", "v"))
    except (KeyError, TypeError, ValueError):
        logger.error("venue candle %r is malformed; skipped", r)
        return None
    if t < 10**11:  # seconds
        t *= 1000
    ok = (all(math.isfinite(x) for x in (o, h, lo, c, v)) and min(o, h, lo, c) > 0 and v >= 0
          and h >= max(o, c, lo) and lo <= min(o, c)
          and (t % tf_ms == 0 or tf_ms >= 86_400_000))
    if not ok:
        logger.error("venue candle at %s is inconsistent (o=%s h=%s l=%s c=%s v=%s); skipped",
                     _iso_ms(t), o, h, lo, c, v)
        return None
    return (t, o, h, lo, c, v)


def candles_to_bars(candles: list[Candle], symbol: str, timeframe: str) -> Bars:
    """``Bars`` from candles (open ms, o, h, l, c, v)."""
    t = np.array([c[0] for c in candles], dtype=np.int64) * NS_PER_MS
    arr = np.array([c[1:] for c in candles], dtype=np.float64).reshape(-1, 5)
    return Bars.from_columns(symbol, timeframe, timeframe_ns(timeframe), t, arr[:, 0], arr[:, 1],
                             arr[:, 2], arr[:, 3], arr[:, 4])


def _iso_ms(ms: int) -> str:
    return str(np.datetime64(int(ms), "ms").astype("datetime64[s]")).replace("T", " ")


@dataclass
class FeedStats:
    """What the feed did (for logs, tests and the benchmark)."""

    polls: int = 0
    delivered: int = 0
    warmup: int = 0
    duplicates: int = 0
    revised: int = 0
    backfilled: int = 0  # candles delivered in a poll that found more than one
    gaps: int = 0
    filled: int = 0  # flat bars inserted under gaps: fill
    errors: int = 0
    revisions: list[tuple[int, Candle, Candle]] = field(default_factory=list)


class ApexFeed:
    """A live ``BarFeed`` of closed ApeX Omni candles (see the module docstring).

    Args:
        base_url: REST base URL (``resolve_venue``).
        symbol: ``BTC-USDT``.
        timeframe: ``15m``.
        gaps: ``fail``, ``keep`` or ``fill`` for gaps the venue cannot fill.
        poll_interval_s: pause between polls once a close is due and the candle is not there yet.
        max_wait_s: longest single sleep while waiting for the next close (the server time is
            asked again after it).
        warmup_bars: closed candles to fetch as history on start (``None``: as many as the
            config's handlers need, set by the composition root).
        max_bars: stop after delivering this many bars (``None``: run until stopped).
        timeout_s: HTTP timeout per request.
        retry_backoff_s: first wait after a venue error (doubling, at most 30 s).
        api: the checked client (``adapters.apex.client.ApexClient``) to use instead of a new one.
    """

    def __init__(
        self,
        base_url: str,
        symbol: str,
        timeframe: str,
        *,
        gaps: str = "fail",
        poll_interval_s: float = 1.0,
        max_wait_s: float = 5.0,
        warmup_bars: int | None = None,
        max_bars: int | None = None,
        timeout_s: float = 10.0,
        retry_backoff_s: float = 0.5,
        api: Any = None,
    ) -> None:
        self.base_url = resolve_venue(base_url)
        self.symbol = engine_symbol(symbol)
        self.timeframe = timeframe
        self.tf_ms = timeframe_ns(timeframe) // NS_PER_MS
        self.gaps = gaps
        self.poll_interval_s = poll_interval_s
        self.max_wait_s = max_wait_s
        self.warmup_bars = warmup_bars
        self.max_bars = max_bars
        self.kl = KlineClient(self.base_url, self.symbol, timeframe, timeout_s=timeout_s,
                              api=api)
        self.stats = FeedStats()
        self._seq = 0
        self._last: Candle | None = None  # the last candle delivered (or the last warm-up one)
        self._recent: deque[Candle] = deque(maxlen=8)
        self._stop = threading.Event()
        self._in_io = False
        self._clock: tuple[float, int] | None = None  # (monotonic s, server ms) first sample
        self._rate = 1.0  # server-clock seconds per wall second
        self._rate_known = False
        self._started = False
        self._late = 0  # polls since a close was due without its candle
        self.retry_backoff_s = retry_backoff_s
        self._backoff = retry_backoff_s  # seconds before the next look after a venue error
        self._engine_clock: Any = None  # bind_clock

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def from_config(cls, data: Any) -> ApexFeed:
        """From the run config's ``data`` section (``venue``, ``symbol``, ``timeframe``,
        ``gaps``, ``poll_interval_s``, ``max_wait_s``, ``warmup_bars``, ``timeout_s``).

        Raises:
            ConfigError: no venue, symbol or timeframe, or a timeframe ApeX does not have.
        """
        symbol, timeframe = data.symbol, data.timeframe
        if (symbol is None or timeframe is None) and getattr(data, "file", None) is not None:
            from engine.datafile import parse_name

            try:
                s, t = parse_name(data.file)
            except DataError:
                s, t = None, None
            symbol, timeframe = symbol or s, timeframe or t
        if symbol is None or timeframe is None:
            raise ConfigError(
                "data.symbol and data.timeframe are needed in paper and live modes (e.g. "
                "symbol: BTC-USDT, timeframe: 15m): the candles come from the venue, not a file"
            )
        return cls(
            getattr(data, "venue", None), symbol, timeframe, gaps=data.gaps,
            poll_interval_s=getattr(data, "poll_interval_s", 1.0),
            max_wait_s=getattr(data, "max_wait_s", 5.0),
            warmup_bars=getattr(data, "warmup_bars", None),
            timeout_s=getattr(data, "timeout_s", 10.0),
        )

    # -- BarFeed ---------------------------------------------------------------------------
    def history(self) -> None:
        """``None``: a live feed (bars are appended to the store as they close)."""
        return None

    def stop(self) -> None:
        """End the iteration after the current bar or wait (any thread)."""
        self._stop.set()

    def request_stop(self) -> None:
        """End the iteration after the current bar; from a signal handler while the feed waits
        on the venue, end the wait at once."""
        self._stop.set()
        if self._in_io:
            raise FeedStopped

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def check(self) -> int:
        """Ask the venue for its time once: the start-up check that the URL is an ApeX API.

        Raises:
            VenueUnreachable: nothing answers at the URL, or not like the ApeX API.
        """
        try:
            return self._server_now()
        except VenueUnreachable:
            raise
        except VenueError as exc:
            raise VenueUnreachable(
                f"{self.base_url} does not answer like the ApeX Omni API ({exc}); check "
                "data.venue / --venue"
            ) from None

    def fetch_warmup(self, n: int | None = None) -> Bars | None:
        """Start the feed: the ``n`` closed candles before the newest closed one, as ``Bars``
        (``None`` when ``n`` is 0 or the venue has none). The newest closed candle at start is
        the first bar the iteration delivers (``seq = len(bars)``), then every later one.

        With ``n = 0`` against a local venue replaying from its first candle, the iteration
        therefore delivers every candle of the file, as a backtest of it does (parity).
        """
        n = self.warmup_bars if n is None else n
        now = self.check()
        newest = self._newest_closed_open(now)
        self._started = True
        self._start_after = newest - self.tf_ms
        self._last = None
        if not n or n <= 0:
            return None
        lo = newest - n * self.tf_ms
        candles = [c for c in self.kl.klines_range(lo, newest - self.tf_ms)
                   if c[0] + self.tf_ms <= now]
        if not candles:
            return None
        candles = self._apply_gaps_list(candles)
        self._last = candles[-1]
        self._recent.extend(candles[-self._recent.maxlen:])  # type: ignore[misc]
        self._seq = len(candles)
        self.stats.warmup = len(candles)
        return candles_to_bars(candles, self.symbol, self.timeframe)

    def resume(self, bars: list[BarClosed]) -> None:
        """Start the feed after ``bars`` (a restarted run's journaled bars, ``engine.restore``):
        the iteration delivers the candles that closed after the last of them (those of the
        downtime first, as after a venue outage), with seqs following theirs.

        Raises:
            VenueUnreachable: nothing answers at the URL, or not like the ApeX API.
        """
        self.check()
        self._started = True
        last = bars[-1]
        open_ms = last.ts_event_ns // NS_PER_MS - self.tf_ms
        self._start_after = open_ms
        tail = bars[-self._recent.maxlen:]  # type: ignore[misc]
        self._recent.extend((b.ts_event_ns // NS_PER_MS - self.tf_ms, b.open, b.high, b.low,
                             b.close, b.volume) for b in tail)
        self._last = self._recent[-1]
        self._seq = last.seq + 1
        self.stats.warmup = len(bars)

    def bind_clock(self, clock: Any) -> None:
        """The engine's clock (``engine.ports.ClockBindable``): while waiting, the feed yields
        ``None`` at least as often as the clock's next timer needs, so timers fire on time."""
        self._engine_clock = clock

    def __iter__(self) -> Iterator[BarClosed | None]:
        if not self._started:
            self.fetch_warmup(0)
        delivered = 0
        while not self._stop.is_set():
            if self.max_bars is not None and delivered >= self.max_bars:
                return
            look = self._look()
            if look is None:
                return
            batch, wait = look
            if self.max_bars is not None:
                batch = batch[: self.max_bars - delivered]
            for c in batch:
                delivered += 1
                yield self._bar(c)
                if self._stop.is_set():
                    return
            if not batch:
                if not self._sleep(wait):
                    return
                if self._engine_clock is not None:
                    yield None  # an idle tick: the loop fires the timers that are due

    def _look(self) -> tuple[list[Candle], float] | None:
        """``_step`` with a venue outage handled (logged, retried with capped backoff: the gap
        is back-filled by the next look that succeeds); ``None`` once stopped."""
        self._in_io = True
        try:
            batch, wait = self._step()
            self._backoff = self.retry_backoff_s
        except FeedStopped:
            return None
        except (TransientVenueError, VenueUnreachable) as exc:
            self.stats.errors += 1
            logger.warning("%s; retrying in %.1f s (missed candles are back-filled)", exc,
                           self._backoff)
            batch, wait = [], self._backoff
            self._backoff = min(self._backoff * 2, 30.0)
        finally:
            self._in_io = False
        if len(batch) > 1:
            self.stats.backfilled += len(batch) - 1
        return batch, wait

    def _bar(self, c: Candle) -> BarClosed:
        bar = BarClosed(
            ts_event_ns=(c[0] + self.tf_ms) * NS_PER_MS, ts_init_ns=time.time_ns(),
            symbol=self.symbol, timeframe=self.timeframe, seq=self._seq,
            open=c[1], high=c[2], low=c[3], close=c[4], volume=c[5],
        )
        self._seq += 1
        self.stats.delivered += 1
        return bar

    # -- polling ---------------------------------------------------------------------------
    def _newest_closed_open(self, now_ms: int) -> int:
        """Open time of the newest candle closed at server time ``now_ms``."""
        return (now_ms // self.tf_ms - 1) * self.tf_ms

    def _server_now(self) -> int:
        now = self.kl.server_time_ms()
        mono = time.monotonic()
        if self._clock is None:
            self._clock = (mono, now)
        else:
            m0, s0 = self._clock
            if mono - m0 > 1.0:
                self._rate = max(1.0, (now - s0) / 1000.0 / (mono - m0))
                self._rate_known = True
        return now

    def _next_open(self) -> int:
        if self._last is not None:
            return self._last[0] + self.tf_ms
        return self._start_after + self.tf_ms

    def _step(self) -> tuple[list[Candle], float]:
        """One look at the venue: its time, and the candles closed after the last delivered one
        when a close is due (several after a missed poll; gaps handled by policy). Returns the
        candles and, when there are none, how long to wait before the next look."""
        now = self._server_now()
        self.stats.polls += 1
        due = self._next_open() + self.tf_ms
        if now < due:  # sleep until the next close per the venue's clock
            # (its speed is measured over the first second: a local venue may run 900x)
            cap = self.max_wait_s if self._rate_known else min(self.max_wait_s, 0.5)
            return [], min(max((due - now) / 1000.0 / self._rate, 0.001), cap)
        newest = self._newest_closed_open(now)
        start = self._last[0] if self._last is not None else self._next_open()
        dup0 = self.kl.duplicates
        fetched = self.kl.klines_range(start, newest)
        self.stats.duplicates += self.kl.duplicates - dup0
        fresh = self._screen(fetched, now)
        if fresh:
            self._late = 0
            return fresh, 0.0
        self._late += 1  # the close is due but the venue has not published the candle yet
        if self._late in (10, 100, 1000):
            logger.info("%s %s: the candle of %s is due by the venue's clock but not published "
                        "after %d polls; still waiting", self.symbol, self.timeframe,
                        _iso_ms(self._next_open()), self._late)
        return [], self.poll_interval_s

    def _screen(self, fetched: list[Candle], now: int) -> list[Candle]:
        """Closed candles after the last delivered one, duplicates/revisions noted, gaps handled
        (only where a later candle proves the earlier ones will not come)."""
        out: list[Candle] = []
        recent = {c[0]: c for c in self._recent}
        last_t = self._last[0] if self._last is not None else self._start_after
        for c in fetched:
            if c[0] + self.tf_ms > now:
                continue  # forming: never delivered
            if c[0] <= last_t:
                seen = recent.get(c[0])
                if seen is None:
                    continue
                if seen == c:
                    if c[0] != last_t:  # the last one is asked for again on purpose
                        self.stats.duplicates += 1
                        logger.debug("%s %s: candle %s sent again (duplicate), ignored",
                                     self.symbol, self.timeframe, _iso_ms(c[0]))
                else:
                    self.stats.revised += 1
                    self.stats.revisions.append((c[0], seen, c))
                    logger.warning(
                        "%s %s: the venue revised the candle of %s after it was delivered: "
                        "was o=%s h=%s l=%s c=%s v=%s, now o=%s h=%s l=%s c=%s v=%s; the engine "
                        "keeps the bar it acted on", self.symbol, self.timeframe, _iso_ms(c[0]),
                        *seen[1:], *c[1:])
                continue
            out.append(c)
        if not out:
            return out
        prev = self._last
        expected = self._next_open()
        result: list[Candle] = []
        for c in out:
            if c[0] > expected:
                result.extend(self._gap(prev, c, expected))
            result.append(c)
            prev, expected = c, c[0] + self.tf_ms
        self._last = result[-1]
        self._recent.extend(result[-self._recent.maxlen:])  # type: ignore[misc]
        return result

    def _gap(self, prev: Candle | None, c: Candle, expected: int) -> list[Candle]:
        missing = (c[0] - expected) // self.tf_ms
        self.stats.gaps += 1
        where = (f"{self.symbol} {self.timeframe}: the venue at {self.base_url} has no candles "
                 f"from {_iso_ms(expected)} to {_iso_ms(c[0] - self.tf_ms)} ({missing} missing) "
                 f"although it has the one at {_iso_ms(c[0])}")
        if self.gaps == "fail":
            raise DataError(f"{where}; set data.gaps: keep (carry on across the gap) or fill "
                            "(insert flat bars) to run through it")
        if self.gaps == "keep" or prev is None:
            logger.warning("%s; kept (data.gaps: keep)", where)
            return []
        logger.warning("%s; filled with %d flat bars (data.gaps: fill)", where, missing)
        self.stats.filled += missing
        p = prev[4]
        return [(expected + i * self.tf_ms, p, p, p, p, 0.0) for i in range(missing)]

    def _apply_gaps_list(self, candles: list[Candle]) -> list[Candle]:
        out: list[Candle] = []
        for c in candles:
            if out and c[0] > out[-1][0] + self.tf_ms:
                out.extend(self._gap(out[-1], c, out[-1][0] + self.tf_ms))
            out.append(c)
        return out

    def _sleep(self, seconds: float) -> bool:
        """Wait up to ``seconds`` (less when the engine's next timer is due sooner); False when
        stopped. ``request_stop`` from a signal handler ends the wait at once."""
        if self._engine_clock is not None:
            seconds = min(seconds, self._engine_clock.seconds_until_due(1.0))
        self._in_io = True
        try:
            return not self._stop.wait(seconds)
        except FeedStopped:
            return False
        finally:
            self._in_io = False
