"""Walk-forward windows and the stitched out-of-sample equity.

Window ``k`` optimises on bars ``[train_lo, train_hi)`` and trades the chosen params on the next
``[test_lo, test_hi)`` with ``train_hi == test_lo``: the optimisation runs on an engine fed only
the train bars (a separate run; no test bar exists in it), so nothing of the test window can
reach the choice. ``rolling`` slides a train window of fixed length; ``anchored`` keeps it
starting at bar 0. Test windows follow each other (``step_bars`` = ``test_bars`` by default), so
their equity can be stitched into one out-of-sample curve.

Each test run starts flat with the initial cash and its indicators warm up inside the window
(the same as any run over those bars); the stitched curve compounds the windows' returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.errors import ConfigError


@dataclass(frozen=True)
class Window:
    k: int
    train_lo: int
    train_hi: int
    test_lo: int
    test_hi: int


def windows(n_bars: int, wf: Any, where: str = "walk_forward") -> list[Window]:
    """The windows over ``n_bars`` bars for a ``WalkForwardConfig``.

    Raises:
        ConfigError: the data is too short for one train and one test window.
    """
    step = wf.step_bars or wf.test_bars
    out = []
    k = 0
    start = 0
    while True:
        train_lo = 0 if wf.mode == "anchored" else start
        train_hi = start + wf.train_bars
        test_hi = train_hi + wf.test_bars
        if test_hi > n_bars:
            break
        out.append(Window(k, train_lo, train_hi, train_hi, test_hi))
        k += 1
        start += step
    if not out:
        raise ConfigError(
            f"{where}: {n_bars} bars are fewer than train_bars {wf.train_bars} + test_bars "
            f"{wf.test_bars}; shorten the windows or give more data")
    if wf.max_windows is not None and len(out) > wf.max_windows:
        out = out[-wf.max_windows:]
        out = [Window(i, w.train_lo, w.train_hi, w.test_lo, w.test_hi) for i, w in enumerate(out)]
    return out


def stitch(curves: list[dict[str, list[float]]], initial: float) -> dict[str, list[float]]:
    """Chain test-window equity curves (each starting at ``initial``) into one compounding
    curve: window k is scaled to start where window k-1 ended."""
    t: list[float] = []
    e: list[float] = []
    level = initial
    for c in curves:
        if not c.get("e"):
            continue
        scale = level / initial
        t += c["t"]
        e += [x * scale for x in c["e"]]
        level = e[-1]
    return {"t": t, "e": e}
