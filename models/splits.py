"""Time-ordered train / validation / test splits with a purge gap, and walk-forward folds.

A sample stamped on bar ``i`` reads bars ``[i - lookback, i]`` (features, see
``FeatureSpec.lookback_bars``) and its label reads bars ``(i, i + horizon]``. Two samples share no
bar, and so no information, when they are more than ``lookback + horizon`` bars apart. Each
boundary between two parts therefore drops ``purge_bars >= lookback + horizon`` sample bars
(the reference bot's random split of overlapping step-2 windows put near-identical windows on
both sides; its bug 2). The parts are contiguous ranges of bars, oldest first:

    [train ........][purge][validation ...][purge][test ......]

Walk-forward folds (optional) cut the part before the test purge into ``folds + 1`` equal blocks:
fold ``f`` trains on blocks ``0..f`` and validates on block ``f + 1``, with the same purge.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, model_validator

from engine.errors import ConfigError

I64 = NDArray[np.int64]


class SplitSpec(BaseModel):
    """Fractions of the bars (in time order) and the purge gap between parts."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    train_frac: float = Field(default=0.70, gt=0, lt=1)
    val_frac: float = Field(default=0.15, gt=0, lt=1)
    purge_bars: int | None = Field(
        default=None, ge=0,
        description="bars dropped at each boundary; None = the minimum, lookback + horizon")
    walk_forward_folds: int = Field(default=0, ge=0, le=20)

    @model_validator(mode="after")
    def _room_for_test(self) -> SplitSpec:
        if self.train_frac + self.val_frac >= 1.0:
            raise ValueError(
                f"train_frac + val_frac must leave room for the test part, got "
                f"{self.train_frac} + {self.val_frac}")
        return self


@dataclass(frozen=True, slots=True)
class Part:
    """One contiguous part: sample bars ``[start, stop)``."""

    name: str
    start: int
    stop: int

    def seqs(self, usable: NDArray[np.bool_]) -> I64:
        """Sample bars of this part where ``usable`` is True."""
        idx = np.arange(self.start, self.stop, dtype=np.int64)
        return idx[usable[self.start : self.stop]]


@dataclass(frozen=True, slots=True)
class Split:
    train: Part
    val: Part
    test: Part
    purge_bars: int
    folds: tuple[tuple[Part, Part], ...] = ()

    def parts(self) -> tuple[Part, Part, Part]:
        return self.train, self.val, self.test


def min_purge_bars(lookback_bars: int, horizon_bars: int) -> int:
    """The smallest gap that keeps every pair of samples across a boundary disjoint."""
    return lookback_bars + horizon_bars


def _purge(spec: SplitSpec, lookback_bars: int, horizon_bars: int) -> int:
    need = min_purge_bars(lookback_bars, horizon_bars)
    if spec.purge_bars is None:
        return need
    if spec.purge_bars < need:
        raise ConfigError(
            f"split.purge_bars={spec.purge_bars} is below the feature lookback ({lookback_bars}) "
            f"plus the label horizon ({horizon_bars}) = {need}: samples on both sides of a "
            "boundary would share bars; raise it or leave it out (the minimum is used)")
    return spec.purge_bars


def time_split(n_bars: int, spec: SplitSpec, lookback_bars: int, horizon_bars: int) -> Split:
    """Cut ``n_bars`` sample bars into purged train / validation / test parts.

    Raises:
        ConfigError: the purge gap is too small, or a part would be empty.
    """
    gap = _purge(spec, lookback_bars, horizon_bars)
    a = int(n_bars * spec.train_frac)
    b = int(n_bars * (spec.train_frac + spec.val_frac))
    train = Part("train", 0, a)
    val = Part("val", a + gap, b)
    test = Part("test", b + gap, n_bars)
    for p in (train, val, test):
        if p.stop - p.start < 1:
            raise ConfigError(
                f"split part {p.name!r} is empty with {n_bars} bars, purge {gap}: use more data "
                "or larger fractions")
    folds: list[tuple[Part, Part]] = []
    k = spec.walk_forward_folds
    if k:
        block = b // (k + 1)
        for f in range(k):
            tr = Part(f"fold{f}_train", 0, block * (f + 1))
            va = Part(f"fold{f}_val", block * (f + 1) + gap, block * (f + 2))
            if va.stop - va.start < 1 or tr.stop < 1:
                raise ConfigError(
                    f"walk-forward fold {f} is empty ({k} folds over {b} bars, purge {gap}); "
                    "use fewer folds")
            folds.append((tr, va))
    return Split(train, val, test, gap, tuple(folds))
