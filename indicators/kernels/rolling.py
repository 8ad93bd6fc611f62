"""Rolling building blocks: max, min and mean, each as a whole-array kernel and a per-bar step.

Per-bar steps (``*_push_nb``) keep their state in small numpy arrays, so a bus handler can hold
the state between closed bars and numba can update it in place:

- rolling max / min: a **monotonic deque** of bar indices in a ring buffer of ``n`` slots
  (amortised O(1) per value; the window is never rescanned);
- rolling mean: a ring buffer and a running sum.

The whole-array kernels compute the same values with faster loops. Rolling max / min use the
van Herk / Gil-Werman block algorithm: three max operations per value and no data-dependent
branch, about 6x faster than the deque's pop loop, whose branch the CPU mispredicts on price
data. Max and min are exact, and both mean forms perform the same additions in the same order,
so the two forms agree bit for bit (``tests/indicators`` checks it on the real data).

Running-sum drift: a running mean adds and subtracts millions of values, so its rounding error
would grow like a random walk. At the first ring-buffer wrap after ``RESYNC_EVERY`` pushes the
sum is recomputed from the ``m`` values in the window, which bounds the error to that of about
``RESYNC_EVERY + m`` additions whatever the series length (relative ~1e-13). At a wrap the
buffer is in time order, so both forms add the same values in the same order. The running sum
is updated as ``s += x_new - x_old``: one addition on the loop-carried dependency chain.

Inputs are 1-D float64 arrays of finite values (``engine.datafile`` rejects NaN and inf prices);
the only NaNs a kernel accepts are *leading* NaNs, the warm-up of a chained input (the mean of a
raw %K that is NaN for its first n-1 bars), which are skipped. Module-level integers below are
compile-time constants for numba.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# -- state layouts ---------------------------------------------------------------------------------
# extreme (deque): meta int64[3] = [head slot, entries, pushes so far]; idx int64[n] = deque of
#                  absolute indices (circular from ``head``); vals float64[n] = value of index j
#                  at slot j % n.
# mean:            meta float64[3] = [running sum, valid values pushed, pushes since re-sum];
#                  buf float64[m] = the last m values, value number j at slot j % m.
EXTREME_META = 3
SMA_META = 3
# Re-sum a running mean from its window at the first ring wrap after this many pushes.
RESYNC_EVERY = 1024


@njit(cache=True, nogil=True)
def extreme_state_nb(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fresh per-bar state of a rolling max or min over ``n`` values.

    Returns:
        ``(idx, vals, meta)``: int64[n], float64[n] and int64[3] arrays for ``extreme_push_nb``.
    """
    return np.zeros(n, np.int64), np.full(n, np.nan), np.zeros(EXTREME_META, np.int64)


@njit(cache=True, nogil=True)
def sma_state_nb(m: int) -> tuple[np.ndarray, np.ndarray]:
    """Fresh per-bar state of a rolling mean over ``m`` values.

    Returns:
        ``(buf, meta)``: float64[m] and float64[3] arrays for ``sma_push_nb``.
    """
    return np.zeros(m), np.zeros(SMA_META)


@njit(cache=True, nogil=True, inline="always")
def extreme_push_nb(
    idx: np.ndarray, vals: np.ndarray, meta: np.ndarray, x: float, n: int, is_max: bool
) -> float:
    """Push one value into a rolling max (``is_max``) or min over ``n`` values; return it.

    Formula: max (min) of the last ``min(pushes, n)`` values, this one included. Units: those of
    ``x``. Warm-up: none (the first pushes cover the values available so far; a caller that
    wants full windows masks the first n-1). Causal: uses the values pushed so far only.
    Amortised O(1): each index enters and leaves the deque once; entries that can never be the
    extreme again (for a max: those <= the newer ``x``) are dropped from the back.
    pandas: ``x.rolling(n, min_periods=1).max()`` (``.min()``).
    """
    i = meta[2]
    head = meta[0]
    cnt = meta[1]
    # Drop the front if it left the window, before its slot in vals is overwritten below.
    if cnt > 0 and idx[head] <= i - n:
        head = (head + 1) % n
        cnt -= 1
    vals[i % n] = x
    while cnt > 0:
        back = (head + cnt - 1) % n
        v = vals[idx[back] % n]
        if (v <= x) if is_max else (v >= x):
            cnt -= 1
        else:
            break
    idx[(head + cnt) % n] = i
    cnt += 1
    meta[0] = head
    meta[1] = cnt
    meta[2] = i + 1
    return vals[idx[head] % n]


@njit(cache=True, nogil=True, inline="always")
def sma_push_nb(buf: np.ndarray, meta: np.ndarray, x: float, m: int, min_periods: int) -> float:
    """Push one value into a rolling mean over ``m`` values; return the mean.

    Formula: mean of the last ``min(valid, m)`` valid values, NaN while fewer than
    ``min_periods`` valid values were pushed. A NaN ``x`` (the warm-up of a chained input) is
    skipped and returns NaN. Units: those of ``x``. Causal. O(1), plus an O(m) re-sum at most
    once per ``max(m, RESYNC_EVERY)`` pushes (module docstring). Same arithmetic, in the same
    order, as ``rolling_mean_nb``. pandas: ``x.rolling(m, min_periods).mean()`` (with leading
    NaNs the two agree: pandas' valid values in the window are exactly the last ones pushed).
    """
    if x != x:
        return np.nan
    if m == 1:  # the mean of one value is that value, exactly (no running-sum rounding)
        meta[1] += 1.0
        return x if meta[1] >= min_periods else np.nan
    k = int(meta[1])
    slot = k % m
    s = meta[0] + (x - buf[slot])  # buf starts at 0: the first m pushes add x exactly
    buf[slot] = x
    k += 1
    since = meta[2] + 1.0
    if slot == m - 1 and since >= RESYNC_EVERY:  # ring full and in time order: re-sum
        s = 0.0
        for j in range(m):
            s += buf[j]
        since = 0.0
    meta[0] = s
    meta[1] = k
    meta[2] = since
    if k < min_periods:
        return np.nan
    return s * (1.0 / m) if k >= m else s / k


@njit(cache=True, nogil=True)
def rolling_max_nb(x: np.ndarray, n: int, min_periods: int, out: np.ndarray) -> np.ndarray:
    """Rolling maximum over ``n`` values into ``out``; returns ``out``.

    Formula: ``out[i] = max(x[max(0, i-n+1) .. i])``. Units: those of ``x``. Warm-up: NaN where
    fewer than ``min_periods`` values exist (``i + 1 < min_periods``): ``min_periods = n`` gives
    full windows only, ``1`` values from bar 0. A constant stretch returns the constant (no
    zero-range case). Causal: ``out[i]`` uses ``x[<= i]`` only. O(1) per value (van Herk /
    Gil-Werman, module docstring). pandas: ``x.rolling(n, min_periods).max()``; TA-Lib ``MAX``.
    """
    return _extreme_blocks_nb(x, n, min_periods, 1.0, out)


@njit(cache=True, nogil=True)
def rolling_min_nb(x: np.ndarray, n: int, min_periods: int, out: np.ndarray) -> np.ndarray:
    """Rolling minimum over ``n`` values into ``out``; returns ``out``.

    Same contract as ``rolling_max_nb`` with min for max. pandas:
    ``x.rolling(n, min_periods).min()``; TA-Lib ``MIN``.
    """
    return _extreme_blocks_nb(x, n, min_periods, -1.0, out)


@njit(cache=True, nogil=True, inline="always")
def _extreme_blocks_nb(
    x: np.ndarray, n: int, min_periods: int, sign: float, out: np.ndarray
) -> np.ndarray:
    """Van Herk / Gil-Werman rolling max of ``sign * x``, times ``sign`` (a min for -1).

    Bars are cut into blocks of n. The window ending at bar i (offset ``pos`` in its block) is
    the suffix of the previous block from ``pos + 1`` plus the prefix of this block up to i:
    ``max(suffix[pos + 1], prefix)``. The suffix maxima of a block are computed once, backwards,
    when its last bar arrives, so every value is read a constant number of times and nothing
    after bar i is read before ``out[i]`` is written. Negation is exact: so is the min.
    """
    size = x.shape[0]
    suf = np.empty(max(n, 1))
    pre = 0.0
    pos = 0
    for i in range(size):
        v = sign * x[i]
        if pos == 0:  # a new block starts
            pre = -np.inf
        pre = max(pre, v)  # maxsd: no data-dependent branch to mispredict
        if pos == n - 1:  # the block is complete: the window is exactly this block
            best = pre
            m = v
            suf[n - 1] = v
            for t in range(n - 2, 0, -1):
                m = max(m, sign * x[i - n + 1 + t])
                suf[t] = m
        elif i < n - 1:  # first block, still incomplete: the window is bars 0..i
            best = pre
        else:
            best = max(suf[pos + 1], pre)
        out[i] = np.nan if i + 1 < min_periods else sign * best
        pos += 1
        if pos == n:
            pos = 0
    return out


@njit(cache=True, nogil=True)
def rolling_mean_nb(x: np.ndarray, m: int, min_periods: int, out: np.ndarray) -> np.ndarray:
    """Rolling mean over ``m`` values into ``out``; returns ``out``. ``out`` may be ``x``.

    Formula: mean of the last ``min(valid, m)`` values. Leading NaNs (a chained warm-up) are
    skipped and stay NaN; after them the values must be finite. Warm-up: NaN while fewer than
    ``min_periods`` valid values exist. Units: those of ``x``. Causal: ``out[i]`` uses
    ``x[<= i]`` only. O(1) per value with the drift-bounding re-sum of the module docstring;
    the same arithmetic, in the same order, as ``sma_push_nb``. In place is safe: ``x[i]`` is
    read before ``out[i]`` is written, and the ring buffer keeps the values still needed.
    pandas: ``x.rolling(m, min_periods).mean()``; TA-Lib ``SMA`` (full windows).
    """
    size = x.shape[0]
    start = 0
    while start < size and x[start] != x[start]:
        out[start] = np.nan
        start += 1
    buf = np.zeros(m)
    inv = 1.0 / m
    s = 0.0
    k = 0  # valid values pushed
    slot = 0  # k % m
    since = 0
    if m == 1:  # the mean of one value is that value, exactly (no running-sum rounding)
        for i in range(start, size):
            out[i] = x[i] if i - start + 1 >= min_periods else np.nan
        return out
    for i in range(start, size):
        v = x[i]
        s += v - buf[slot]  # one addition on the loop-carried chain
        buf[slot] = v
        k += 1
        since += 1
        if slot == m - 1:
            slot = 0
            if since >= RESYNC_EVERY:
                s = 0.0
                for j in range(m):
                    s += buf[j]
                since = 0
        else:
            slot += 1
        if k < min_periods:
            out[i] = np.nan
        elif k >= m:
            out[i] = s * inv
        else:
            out[i] = s / k
    return out
