"""Volume profile kernels: histogram, POC, value area, HVNs and peaks, per window and rolling.

**Window.** Bar ``i``'s profile reads the ``lookback`` bars before it, ``[i - lookback, i)``
(the reference bot's, ``include_current=False``), or the ``lookback`` bars ending at it,
``(i - lookback, i]`` (``include_current=True``). NaN while fewer bars exist (warm-up:
``lookback`` bars, or ``lookback - 1`` with the current bar).

**Grid.** ``bins`` equal bins between the window's lowest low ``lo`` and highest high ``hi``;
edge ``k`` is ``numpy.linspace(lo, hi, bins + 1)[k]`` bit for bit (``k * step + lo``, the last
edge ``hi``). A price ``p`` belongs to bin ``j`` when ``edge[j] <= p < edge[j + 1]``, the last
bin closed on the right: exactly ``numpy.histogram(..., bins=edges)`` and the reference bot's
``numpy.digitize(p, edges) - 1`` clipped. A bin's price is its centre
``(edge[j] + edge[j + 1]) / 2``.

**Placing volume** (``mode``):

- ``CLOSE``: a bar's whole volume goes to the bin of its close (the reference bot's fast mode,
  ``numpy.histogram(close, edges, weights=volume)``);
- ``RANGE``: a bar's volume is spread **evenly** over every bin from the bin of its low to the
  bin of its high, inclusive, ``volume / (bins covered)`` each (the reference bot's "precise"
  mode). Evenly, because a bar says nothing about where in its range it traded.

**Levels** (``levels_nb``) of one profile:

- **POC**: the centre of the first bin holding the most volume, and that volume;
- **value area** (``va_frac``, default 0.70): start at the POC bin; while the accumulated
  volume is below ``va_frac`` of the total, look at the next bin below and the next bin above;
  take the lower one if it is strictly larger, else the upper one (**ties go up**). At an edge
  the other side is taken (the reference bot instead stopped when it reached the top edge and
  the next lower bin was empty, leaving a value area under 70 %). VAH/VAL = centres of the
  highest/lowest bins taken;
- **HVN**: every bin with volume > 0 and >= the ``hvn_pct`` percentile (default 75, linear
  interpolation, ``numpy.percentile``) of the **non-empty** bins (the reference bot included
  empty bins, so on a sparse close-only profile its threshold was often 0 and every non-empty
  bin was an HVN);
- **peaks**: ``scipy.signal.find_peaks(volume / max volume, prominence, distance)``
  (``indicators.kernels.peaks``), default prominence 0.05 and distance 3 bins.

The per-bar summary (``SUMMARY``) adds, relative to a reference price (the bar's close): the
nearest HVN and peak at or below it and strictly above it (NaN when there is none).

**Degenerate windows** (defined results, never an exception):

- all bars at one price (``hi == lo``): every bin's price is that price and all the volume sits
  in the first bin; POC = VAH = VAL = that price, one HVN there, no peak (the reference bot
  returned an all-zero profile);
- zero total volume: POC, VAH, VAL NaN, POC volume 0, no HVN, no peak (the reference bot
  reported bin 0's centre as POC).

**Exact sums.** Volume is placed in multiples of a power-of-two quantum
``q = 2**(e - 52)``, where ``2**(e - 1) <= n * max volume < 2**e`` over the window's ``n``
bars: each share becomes ``rint(share / q) * q``. Every bin and the total then stay integer
multiples of ``q`` below ``2**53 * q``, so floating-point addition and subtraction are exact
and the profile does not depend on the order bars were added or removed. The rounding moves a
share by at most ``q / 2``, about 1e-16 of the window's volume (a share smaller than that
rounds to 0: its bin stays empty).

**Rolling update** (``rolling_profile_nb``). The window's low, high and largest volume come
from monotonic deques. While the low and high stay the same the grid is the same, and while the
quantum stays the same, so the profile is updated by taking the bar that left out of its bin(s)
and putting the bar that entered in: O(1) close-only, O(bins covered) range-spread. When the low
or high changes, every bin edge moves and a bar's bin can change anywhere, so the profile is
rebuilt from the window (O(lookback); on the real 15m data about one bar in eight), as it is
when the quantum changes. The levels are then derived in O(bins) (the percentile by selection,
not sorting; peaks lower than the prominence skipped). Thanks to the exact sums the rolling
profile equals the from-scratch one bit for bit, hence so do all the levels.

Causal: bar ``i``'s outputs read bars ``< i`` (``<= i`` with ``include_current``) for the
profile and bar ``i``'s close for the nearest-level columns. Inputs must be finite, volume >= 0.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from indicators.kernels.peaks import find_peaks_nb

CLOSE = 0
RANGE = 1

SUMMARY = ("poc", "poc_volume", "vah", "val", "n_hvn", "hvn_below", "hvn_above", "n_peaks",
           "peak_below", "peak_above")
N_OUT = len(SUMMARY)
# rolling state, float64[N_STATE]: grid low, grid high, quantum, last bar processed (-1 before
# the first), rebuilds (grid or quantum moved), one-bar-out/one-bar-in updates
N_STATE = 6


# -- grid ------------------------------------------------------------------------------------------
@njit(cache=True, nogil=True, inline="always")
def edge_nb(lo: float, hi: float, step: float, bins: int, k: int) -> float:
    """Edge ``k`` of the grid: ``numpy.linspace(lo, hi, bins + 1)[k]`` bit for bit."""
    if k >= bins:
        return hi
    return k * step + lo


@njit(cache=True, nogil=True, inline="always")
def bin_index_nb(p: float, lo: float, hi: float, step: float, inv: float, bins: int) -> int:
    """Bin of price ``p``: ``edge[j] <= p < edge[j + 1]``, last bin closed, clipped to the grid.

    A guess from ``(p - lo) * inv`` (``inv = bins / (hi - lo)``) corrected against the exact
    edges, as ``numpy.histogram`` does. ``hi == lo``: bin 0.
    """
    if hi <= lo:
        return 0
    j = int((p - lo) * inv)
    if j < 0:
        j = 0
    elif j > bins - 1:
        j = bins - 1
    while j > 0 and p < edge_nb(lo, hi, step, bins, j):
        j -= 1
    while j < bins - 1 and p >= edge_nb(lo, hi, step, bins, j + 1):
        j += 1
    return j


@njit(cache=True, nogil=True)
def bin_prices_nb(lo: float, hi: float, bins: int, out: np.ndarray) -> None:
    """Bin centres ``(edge[j] + edge[j + 1]) / 2`` into ``out`` (all ``lo`` when hi == lo)."""
    step = (hi - lo) / bins
    for j in range(bins):
        out[j] = (edge_nb(lo, hi, step, bins, j) + edge_nb(lo, hi, step, bins, j + 1)) / 2


@njit(cache=True, nogil=True)
def quantum_nb(n: int, vmax: float) -> float:
    """The power of two ``q`` that volumes are placed in for a window of ``n`` bars whose
    largest volume is ``vmax``: ``2**(e - 52)`` with ``n * vmax < 2**e`` (1.0 when vmax is 0).
    """
    if not vmax > 0.0:
        return 1.0
    _, e = math.frexp(n * vmax)
    return math.ldexp(1.0, e - 52)


@njit(cache=True, nogil=True, inline="always")
def place_bar_nb(vols: np.ndarray, h: float, lo_p: float, c: float, v: float, lo: float,
                 hi: float, step: float, inv: float, bins: int, mode: int, q: float,
                 sign: float) -> None:
    """Add (``sign`` 1.0) or remove (``sign`` -1.0) one bar's volume on the grid, each share
    rounded to a multiple of ``q`` (so adding then removing a bar restores ``vols`` exactly)."""
    if mode == CLOSE:
        j = bin_index_nb(c, lo, hi, step, inv, bins)
        vols[j] += sign * (np.rint(v / q) * q)
        return
    a = bin_index_nb(lo_p, lo, hi, step, inv, bins)
    b = bin_index_nb(h, lo, hi, step, inv, bins)
    share = sign * (np.rint(v / (b - a + 1) / q) * q)
    for j in range(a, b + 1):
        vols[j] += share


@njit(cache=True, nogil=True)
def build_nb(high: np.ndarray, low: np.ndarray, close: np.ndarray, volume: np.ndarray,
             start: int, stop: int, bins: int, mode: int, lo: float, hi: float, q: float,
             vols: np.ndarray) -> None:
    """Profile of bars ``[start, stop)`` on the grid ``lo..hi`` with quantum ``q``, from
    scratch, into ``vols``."""
    step = (hi - lo) / bins
    inv = bins / (hi - lo) if hi > lo else 0.0
    vols[:] = 0.0
    for i in range(start, stop):
        place_bar_nb(vols, high[i], low[i], close[i], volume[i], lo, hi, step, inv, bins, mode,
                     q, 1.0)


@njit(cache=True, nogil=True)
def profile_nb(high: np.ndarray, low: np.ndarray, close: np.ndarray, volume: np.ndarray,
               start: int, stop: int, bins: int, mode: int,
               vols: np.ndarray) -> tuple[float, float]:
    """Volume profile of bars ``[start, stop)`` from scratch (module docstring).

    Args:
        high, low, close, volume: the bar columns (finite, volume >= 0).
        start, stop: the window, ``start < stop``.
        bins: number of bins.
        mode: ``CLOSE`` or ``RANGE``.
        vols: float64[bins], receives the volume per bin.

    Returns:
        ``(lo, hi)``: the window's lowest low and highest high, the grid's ends.
    """
    lo = np.inf
    hi = -np.inf
    vmax = 0.0
    for i in range(start, stop):
        if low[i] < lo:
            lo = low[i]
        if high[i] > hi:
            hi = high[i]
        if volume[i] > vmax:
            vmax = volume[i]
    build_nb(high, low, close, volume, start, stop, bins, mode, lo, hi,
             quantum_nb(stop - start, vmax), vols)
    return lo, hi


# -- levels ----------------------------------------------------------------------------------------
@njit(cache=True, nogil=True)
def _select_nb(a: np.ndarray, m: int, k: int) -> float:
    """k-th smallest of ``a[:m]``, in place (Wirth's selection): afterwards ``a[:k] <= a[k]
    <= a[k+1:m]``."""
    left = 0
    right = m - 1
    while left < right:
        x = a[k]
        i = left
        j = right
        while True:
            while a[i] < x:
                i += 1
            while x < a[j]:
                j -= 1
            if i <= j:
                t = a[i]
                a[i] = a[j]
                a[j] = t
                i += 1
                j -= 1
            if i > j:
                break
        if j < k:
            left = i
        if k < i:
            right = j
    return a[k]


@njit(cache=True, nogil=True)
def hvn_threshold_nb(vols: np.ndarray, hvn_pct: float, work: np.ndarray) -> float:
    """``numpy.percentile(vols[vols > 0], hvn_pct)`` (linear), bit for bit, without sorting.

    ``work`` is float64 scratch of at least ``len(vols)``. NaN when every bin is empty.
    """
    m = 0
    for j in range(vols.shape[0]):
        work[m] = vols[j]  # branch-free compaction: kept only when non-empty
        m += vols[j] > 0.0
    return _percentile_nb(work, m, hvn_pct)


@njit(cache=True, nogil=True)
def _percentile_nb(work: np.ndarray, m: int, hvn_pct: float) -> float:
    """``numpy.percentile(work[:m], hvn_pct)`` (linear); reorders ``work[:m]``; NaN if m == 0."""
    if m == 0:
        return np.nan
    vi = (m - 1) * (hvn_pct / 100.0)
    if vi >= m - 1:
        top = work[0]
        for j in range(1, m):
            if work[j] > top:
                top = work[j]
        return top
    k = int(np.floor(vi))
    g = vi - k
    a = _select_nb(work, m, k)
    b = work[k + 1]
    for j in range(k + 2, m):
        if work[j] < b:
            b = work[j]
    d = b - a
    if g >= 0.5:  # numpy's _lerp: the form that is exact at the nearer end
        return b - d * (1 - g)
    return a + d * g


@njit(cache=True, nogil=True)
def value_area_nb(vols: np.ndarray, poc: int, va_frac: float, total: float) -> tuple[int, int]:
    """Bins ``(val_bin, vah_bin)`` of the value area grown from bin ``poc`` (module docstring).

    One bin per step: the next lower bin if it holds strictly more than the next upper one,
    else the upper one (ties up); at an edge the other side. Stops once ``va_frac`` of
    ``total`` (the sum of ``vols`` in bin order) is covered, or the whole grid is.
    """
    bins = vols.shape[0]
    target = va_frac * total
    lo_i = poc
    hi_i = poc
    acc = vols[poc]
    while acc < target:
        has_lo = lo_i > 0
        has_hi = hi_i < bins - 1
        if not has_lo and not has_hi:
            break
        lower = vols[lo_i - 1] if has_lo else 0.0
        upper = vols[hi_i + 1] if has_hi else 0.0
        if has_lo and (lower > upper or not has_hi):
            lo_i -= 1
            acc += lower
        else:
            hi_i += 1
            acc += upper
    return lo_i, hi_i


@njit(cache=True, nogil=True)
def levels_nb(vols: np.ndarray, lo: float, hi: float, ref: float, va_frac: float,
              hvn_pct: float, prominence: float, distance: int, out: np.ndarray,
              work: np.ndarray, peaks: np.ndarray, removed: np.ndarray,
              order: np.ndarray) -> float:
    """Summary levels of one profile (module docstring) into ``out[:N_OUT]``, in ``SUMMARY``
    order.

    Args:
        vols: volume per bin, on the grid ``lo..hi``.
        lo, hi: the grid's ends.
        ref: the price nearest levels are measured from (the bar's close).
        va_frac: value-area fraction (0-1].
        hvn_pct: HVN percentile of the non-empty bins (0-100).
        prominence: minimum peak prominence as a fraction of the largest bin.
        distance: minimum peak spacing in bins.
        out: float64[N_OUT], receives the summary.
        work: float64 scratch of ``2 * bins``.
        peaks: int64 scratch of ``bins``; receives the peak bins, ascending (count in
            ``out[7]``).
        removed, order: bool and int64 scratch of ``bins``.

    Returns:
        The HVN threshold (NaN for an empty profile); HVNs are the bins with volume > 0 and
        >= it.
    """
    bins = vols.shape[0]
    step = (hi - lo) / bins
    poc = 0
    top = vols[0]
    total = vols[0]
    work[0] = vols[0]
    m = int(vols[0] > 0.0)
    for j in range(1, bins):  # POC, total and the non-empty bins (for the HVN percentile)
        v = vols[j]
        total += v
        work[m] = v
        m += v > 0.0
        if v > top:
            poc = j
            top = v
    if not top > 0.0:
        out[0] = np.nan
        out[1] = 0.0
        out[2] = np.nan
        out[3] = np.nan
        out[4] = 0.0
        out[5] = np.nan
        out[6] = np.nan
        out[7] = 0.0
        out[8] = np.nan
        out[9] = np.nan
        return np.nan
    out[0] = (edge_nb(lo, hi, step, bins, poc) + edge_nb(lo, hi, step, bins, poc + 1)) / 2
    out[1] = top
    va_lo, va_hi = value_area_nb(vols, poc, va_frac, total)
    out[2] = (edge_nb(lo, hi, step, bins, va_hi) + edge_nb(lo, hi, step, bins, va_hi + 1)) / 2
    out[3] = (edge_nb(lo, hi, step, bins, va_lo) + edge_nb(lo, hi, step, bins, va_lo + 1)) / 2
    thr = _percentile_nb(work, m, hvn_pct)
    n_hvn = 0
    below = np.nan
    above = np.nan
    for j in range(bins):
        if vols[j] > 0.0 and vols[j] >= thr:
            n_hvn += 1
            p = (edge_nb(lo, hi, step, bins, j) + edge_nb(lo, hi, step, bins, j + 1)) / 2
            if p <= ref:
                below = p  # ascending: the last one at or below ref is the nearest
            elif above != above:
                above = p
    out[4] = n_hvn
    out[5] = below
    out[6] = above
    scaled = work[bins:2 * bins]
    for j in range(bins):
        scaled[j] = vols[j] / top
    n_peaks = find_peaks_nb(scaled, prominence, distance, True, peaks, removed,
                            order) if hi > lo else 0
    below = np.nan
    above = np.nan
    for r in range(n_peaks):
        j = peaks[r]
        p = (edge_nb(lo, hi, step, bins, j) + edge_nb(lo, hi, step, bins, j + 1)) / 2
        if p <= ref:
            below = p
        elif above != above:
            above = p
    out[7] = n_peaks
    out[8] = below
    out[9] = above
    return thr


@njit(cache=True, nogil=True)
def window_nb(high: np.ndarray, low: np.ndarray, close: np.ndarray, volume: np.ndarray,
              bins: int, mode: int, va_frac: float, hvn_pct: float, prominence: float,
              distance: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, np.ndarray,
                                      float, float]:
    """One window's full profile in one call (``profile_nb``, ``bin_prices_nb``,
    ``levels_nb``): ``(vols, prices, summary, hvn_threshold, peak_bins, lo, hi)`` for all the
    given bars; the summary's nearest-level entries are NaN (no reference price)."""
    vols = np.zeros(bins)
    lo, hi = profile_nb(high, low, close, volume, 0, close.shape[0], bins, mode, vols)
    prices = np.empty(bins)
    bin_prices_nb(lo, hi, bins, prices)
    out = np.empty(N_OUT)
    peaks = np.empty(bins, np.int64)
    thr = levels_nb(vols, lo, hi, np.nan, va_frac, hvn_pct, prominence, distance, out,
                    np.empty(2 * bins), peaks, np.empty(bins, np.bool_),
                    np.empty(bins, np.int64))
    return vols, prices, out, thr, peaks[:int(out[7])].copy(), lo, hi


# -- rolling ---------------------------------------------------------------------------------------
@njit(cache=True, nogil=True, inline="always")
def _push_max_nb(q: np.ndarray, head: int, tail: int, x: np.ndarray, j: int) -> int:
    """Push index ``j`` on a deque of decreasing ``x`` values; return the new tail."""
    while tail > head and x[q[tail - 1]] <= x[j]:
        tail -= 1
    q[tail] = j
    return tail + 1


@njit(cache=True, nogil=True, inline="always")
def _push_min_nb(q: np.ndarray, head: int, tail: int, x: np.ndarray, j: int) -> int:
    """Push index ``j`` on a deque of increasing ``x`` values; return the new tail."""
    while tail > head and x[q[tail - 1]] >= x[j]:
        tail -= 1
    q[tail] = j
    return tail + 1


@njit(cache=True, nogil=True)
def rolling_profile_nb(high: np.ndarray, low: np.ndarray, close: np.ndarray,
                       volume: np.ndarray, first: int, stop: int, lookback: int, bins: int,
                       mode: int, include_current: bool, va_frac: float, hvn_pct: float,
                       prominence: float, distance: int, vols: np.ndarray, state: np.ndarray,
                       out: np.ndarray) -> None:
    """Per-bar profile summaries of bars ``first .. stop-1`` into ``out[i - first, :N_OUT]``.

    The one kernel behind every path: the whole history (``first=0, stop=n``), one closed bar
    (``first=i, stop=i+1``) and a catch-up over missed bars. The profile ``vols`` and ``state``
    (``N_STATE``: grid low, grid high, quantum, last bar, rebuilds, updates; from
    ``rolling_state_nb``) carry over between calls, so calling it bar by bar performs exactly
    the arithmetic of one whole-history call; and since the sums are exact (module docstring)
    every bar's profile also equals ``profile_nb`` of its window bit for bit.

    Bar ``i`` updates the profile by one bar out and one bar in when bar ``i - 1`` was the last
    processed and the window's low, high and quantum are unchanged; otherwise it rebuilds the
    profile from the window. Warm-up rows are NaN. See the module docstring for the window,
    grid, levels, degenerate windows and causality.

    Args:
        high, low, close, volume: the bar columns, holding at least bars ``< stop``.
        first, stop: the bars to compute.
        lookback: bars per window (>= 1).
        bins: bins per profile (>= 1).
        mode: ``CLOSE`` or ``RANGE``.
        include_current: window ``(i - lookback, i]`` instead of ``[i - lookback, i)``.
        va_frac, hvn_pct, prominence, distance: see ``levels_nb``.
        vols: float64[bins], the running profile.
        state: float64[N_STATE], the running state.
        out: float64[stop - first, N_OUT].
    """
    shift = 0 if include_current else 1
    work = np.empty(2 * bins)
    peaks = np.empty(bins, np.int64)
    removed = np.empty(bins, np.bool_)
    order = np.empty(bins, np.int64)
    cap = stop - first + lookback
    qh = np.empty(cap, np.int64)  # window indices by decreasing high
    ql = np.empty(cap, np.int64)  # ... by increasing low
    qv = np.empty(cap, np.int64)  # ... by decreasing volume
    h_head = h_tail = l_head = l_tail = v_head = v_tail = 0
    for j in range(max(0, first - shift - lookback + 1), first - shift):  # the first window
        h_tail = _push_max_nb(qh, h_head, h_tail, high, j)
        l_tail = _push_min_nb(ql, l_head, l_tail, low, j)
        v_tail = _push_max_nb(qv, v_head, v_tail, volume, j)
    for i in range(first, stop):
        r = i - first
        new = i - shift  # the window's newest bar
        if new >= 0:
            gone = new - lookback
            while h_tail > h_head and qh[h_head] <= gone:
                h_head += 1
            while l_tail > l_head and ql[l_head] <= gone:
                l_head += 1
            while v_tail > v_head and qv[v_head] <= gone:
                v_head += 1
            h_tail = _push_max_nb(qh, h_head, h_tail, high, new)
            l_tail = _push_min_nb(ql, l_head, l_tail, low, new)
            v_tail = _push_max_nb(qv, v_head, v_tail, volume, new)
        incremental = state[3] == i - 1
        state[3] = i
        if new + 1 < lookback:
            out[r, :] = np.nan
            state[0] = np.nan
            continue
        start = new - lookback + 1
        lo = low[ql[l_head]]
        hi = high[qh[h_head]]
        q = quantum_nb(lookback, volume[qv[v_head]])
        if incremental and lo == state[0] and hi == state[1] and q == state[2]:
            step = (hi - lo) / bins
            inv = bins / (hi - lo) if hi > lo else 0.0
            old = start - 1
            place_bar_nb(vols, high[old], low[old], close[old], volume[old], lo, hi, step, inv,
                         bins, mode, q, -1.0)
            place_bar_nb(vols, high[new], low[new], close[new], volume[new], lo, hi, step, inv,
                         bins, mode, q, 1.0)
            state[5] += 1
        else:
            build_nb(high, low, close, volume, start, new + 1, bins, mode, lo, hi, q, vols)
            state[0] = lo
            state[1] = hi
            state[2] = q
            state[4] += 1
        levels_nb(vols, lo, hi, close[i], va_frac, hvn_pct, prominence, distance, out[r], work,
                  peaks, removed, order)


@njit(cache=True, nogil=True)
def rolling_state_nb(bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Fresh ``(vols, state)`` for ``rolling_profile_nb``: an empty profile, no bar processed."""
    state = np.zeros(N_STATE)
    state[0] = np.nan
    state[1] = np.nan
    state[2] = np.nan
    state[3] = -1.0
    return np.zeros(bins), state
