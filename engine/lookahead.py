"""Lookahead check: does any component's output at bar k change when later bars exist?

``tradebot check-lookahead CONFIG`` runs the config on the whole data and on truncated copies
ending at several cut bars ``k``, on the backtest path (batch precompute included, since that is
where a whole-history computation could peek ahead). For every feature column it compares the
values at bars ``<= k``; for every strategy it compares the decisions it took (signals, orders,
stop moves, cancels, fills) on bars ``<= k``. Any difference is lookahead: the output at k
depended on bars after k. This is freqtrade's lookahead-analysis, done for every component.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.bars import Bars
from engine.config import RunConfig
from engine.errors import DataError
from engine.events import (
    CancelOrder,
    Event,
    ModifyOrder,
    OrderFilled,
    SignalRaised,
    SubmitOrder,
)

_DECISIONS = (SignalRaised, SubmitOrder, ModifyOrder, CancelOrder, OrderFilled)


@dataclass
class ComponentVerdict:
    component: str  # "feature:<column>" or "strategy:<name>"
    ok: bool = True
    first_bad_seq: int | None = None
    cut: int | None = None
    detail: str = ""


@dataclass
class LookaheadReport:
    cuts: list[int]
    verdicts: dict[str, ComponentVerdict] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(v.ok for v in self.verdicts.values())

    def summary(self) -> str:
        lines = [f"cuts at bars {self.cuts}"]
        for v in self.verdicts.values():
            if v.ok:
                lines.append(f"  ok    {v.component}")
            else:
                lines.append(f"  LEAK  {v.component}: bar {v.first_bad_seq} differs when the data "
                             f"continues past bar {v.cut} ({v.detail})")
        lines.append("no lookahead found" if self.ok else "LOOKAHEAD FOUND")
        return "\n".join(lines)


def _decision_key(e: Event) -> tuple[object, ...] | None:
    """What identifies a decision, independent of when the engine created it."""
    if not isinstance(e, _DECISIONS):
        return None
    if "END_OF_DATA" in f"{getattr(e, 'tag', '')} {getattr(e, 'reason', '')}":
        return None  # the truncated run closes its position at its own end: not a decision
    fields = tuple(
        (f, ("nan" if v != v else round(v, 9)) if isinstance(v, float) else v)
        for f in e.__struct_fields__
        if f != "ts_init_ns"
        for v in (getattr(e, f),)
    )
    return (getattr(e, "account", "signals"), type(e).__name__, fields)


Decisions = list[tuple[int, tuple[object, ...]]]


def _warmup(engine: Any) -> int:
    return max((int(getattr(h, "warmup_bars", 0) or 0)
                for h in getattr(engine, "handlers", {}).values()), default=0)


def _run(
    config: RunConfig, bars: Bars, build: Callable[[RunConfig, Bars], Any],
    warmup: list[int] | None = None,
) -> tuple[dict[str, np.ndarray], Decisions]:
    engine = build(config, bars)
    if warmup is not None:
        warmup.append(_warmup(engine))
    log: Decisions = []

    def record(e: Event) -> None:
        key = _decision_key(e)
        if key is not None:
            log.append((engine.store.count - 1, key))

    engine.bus.subscribe_all(record, name="lookahead-recorder")
    engine.run()
    feats = {n: engine.features.column(n).copy() for n in engine.features.names()}
    return feats, log


def _usable_cuts(cuts: list[int], n: int) -> list[int]:
    cuts = [k for k in cuts if 0 < k < n - 1]
    if not cuts:
        raise DataError(f"{n} bar{'s' * (n != 1)}: too few to check for lookahead (the check "
                        "compares runs cut at several bars); use more bars (--bars 0 = all)")
    return cuts


def _past_warmup(cuts: list[int], n: int, warmup: int) -> list[int]:
    """The cuts after the warm-up (inside it every output is NaN: nothing is tested)."""
    kept = [k for k in cuts if k > warmup + 1]
    if not kept:
        raise DataError(
            f"{n:,} bars: too few to check for lookahead: the config's features have a warm-up "
            f"of {warmup:,} bars, so every cut (bars {cuts}) falls inside it and nothing "
            f"would be tested; use at least {2 * (warmup + 2):,} bars (--bars, 0 = all)")
    return kept


def check_lookahead(
    config: RunConfig,
    bars: Bars,
    build: Callable[[RunConfig, Bars], Any],
    cuts: list[int] | None = None,
) -> LookaheadReport:
    """Compare the full run with runs on ``bars[: k + 1]`` for each cut ``k``.

    Args:
        build: ``(config, bars) -> Engine`` (the composition root with a replay feed of
            ``bars``); injected so that tests can use in-memory registries.
        cuts: the cut bars; by default six between 20 % and 95 % of the bars. Cuts inside the
            features' warm-up test nothing and are dropped.

    Raises:
        DataError: too few bars for any cut past the warm-up: the check would test nothing.
    """
    # one process: the recorder listens on the engine's bus, which worker processes do not share
    config = config.model_copy(update={
        "execution": config.execution.model_copy(update={"workers": 1})})
    n = len(bars)
    if cuts is None:
        cuts = sorted({int(n * f) for f in (0.2, 0.35, 0.5, 0.65, 0.8, 0.95)} - {0})
    cuts = _usable_cuts(cuts, n)
    warmup: list[int] = []
    full_feats, full_log = _run(config, bars, build, warmup)
    cuts = _past_warmup(cuts, n, warmup[0])
    report = LookaheadReport(cuts=cuts)
    for col in full_feats:
        report.verdicts[f"feature:{col}"] = ComponentVerdict(f"feature:{col}")
    accounts = sorted({k[0] for _, k in full_log} | {s.name for s in config.strategies})
    for a in accounts:
        report.verdicts[f"strategy:{a}"] = ComponentVerdict(f"strategy:{a}")
    for k in cuts:
        feats, log = _run(config, bars.slice(0, k + 1), build)
        for col, full in full_feats.items():
            v = report.verdicts[f"feature:{col}"]
            if not v.ok:
                continue
            a, b = full[: k + 1], feats[col][: k + 1]
            diff = ~((a == b) | (np.isnan(a) & np.isnan(b)))
            if diff.any():
                i = int(np.argmax(diff))
                v.ok, v.first_bad_seq, v.cut = False, i, k
                v.detail = f"value {b[i]!r} with data ending at {k}, {a[i]!r} with all data"
        for acct in accounts:
            v = report.verdicts[f"strategy:{acct}"]
            if not v.ok:
                continue
            mine_full = [(s, key) for s, key in full_log if key[0] == acct and s <= k]
            mine_cut = [(s, key) for s, key in log if key[0] == acct and s <= k]
            if mine_full != mine_cut:
                i = next((j for j, (x, y) in enumerate(zip(mine_full, mine_cut, strict=False))
                          if x != y), min(len(mine_full), len(mine_cut)))
                bad = (mine_full + mine_cut)[min(i, len(mine_full + mine_cut) - 1)]
                v.ok, v.first_bad_seq, v.cut = False, bad[0], k
                got_cut = mine_cut[i][1][1] if i < len(mine_cut) else "nothing"
                got_full = mine_full[i][1][1] if i < len(mine_full) else "nothing"
                v.detail = (f"decision #{i}: {got_cut} with data ending at {k}, "
                            f"{got_full} with all data")
    return report
