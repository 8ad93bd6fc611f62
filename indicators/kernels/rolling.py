"""Rolling building blocks as numba step functions over explicit state arrays.

Each primitive is a small state (numpy arrays) plus an ``*_push_nb`` step that takes one new value
and returns the current output. The whole-array kernels loop these steps, and the per-bar
handlers call them once per closed bar, so both forms run the same arithmetic in the same order
and agree exactly.

- Rolling max / min: a monotonic deque of indices in a ring buffer (amortised O(1) per value;
  the window is never rescanned).
- SMA: a ring buffer and a running sum, re-summed from the buffer every ``window`` pushes so that
  rounding error cannot accumulate over millions of bars.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# -- rolling extreme --------------------------------------------------------------------------------
# state: idx (int64[n]: deque of absolute indices, circular), vals (float64[n]: values by index % n),
#        meta (int64[3]: head, count, pushes so far)


def extreme_state(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fresh state of a rolling max/min over ``n`` values."""
    return np.zeros(n, np.int64), np.full(n, np.nan), np.zeros(3, np.int64)


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def extreme_push_nb(idx, vals, meta, x, n, is_max):  # type: ignore[no-untyped-def]
    """Push ``x``; return the max (``is_max``) or min over the last ``min(pushes, n)`` values."""
    i = meta[2]
    head = meta[0]
    cnt = meta[1]
    # drop the front if it left the window (before its slot in vals is overwritten)
    if cnt > 0 and idx[head] <= i - n:
        head = (head + 1) % n
        cnt -= 1
    vals[i % n] = x
    # drop from the back everything that can never be the extreme again
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


# -- simple moving average -------------------------------------------------------------------------
# state: buf (float64[m]), meta (float64[3]: running sum, valid values pushed, pushes since resum)


def sma_state(m: int) -> tuple[np.ndarray, np.ndarray]:
    """Fresh state of a simple moving average over ``m`` values."""
    return np.zeros(m), np.zeros(3)


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def sma_push_nb(buf, meta, x, m, min_periods):  # type: ignore[no-untyped-def]
    """Push ``x`` (NaN inputs are skipped: only leading NaNs occur); return the mean of the last
    ``min(valid, m)`` values, or NaN while fewer than ``min_periods`` valid values were pushed."""
    if x != x:  # NaN: warm-up of the input series
        return np.nan
    k = int(meta[1])
    s = meta[0]
    if k >= m:
        s -= buf[k % m]
    buf[k % m] = x
    s += x
    k += 1
    since = meta[2] + 1.0
    if since >= m:  # re-sum from the buffer: no drift over long runs
        s = 0.0
        for j in range(min(k, m)):
            s += buf[j]
        since = 0.0
    meta[0] = s
    meta[1] = k
    meta[2] = since
    if k < min_periods:
        return np.nan
    return s / min(k, m)


@njit(cache=True, nogil=True, error_model="numpy")
def sma_nb(x, m, min_periods, out):  # type: ignore[no-untyped-def]
    """Simple moving average of ``x`` over ``m`` values (pandas ``rolling(m, min_periods).mean()``
    after dropping leading NaNs). Causal: ``out[i]`` uses ``x[<= i]`` only."""
    buf = np.zeros(m)
    meta = np.zeros(3)
    for i in range(x.shape[0]):
        out[i] = sma_push_nb(buf, meta, x[i], m, min_periods)
    return out


@njit(cache=True, nogil=True, error_model="numpy")
def rolling_max_nb(x, n, out):  # type: ignore[no-untyped-def]
    """Rolling max over ``n`` values (pandas ``rolling(n).max()``); NaN for the first n-1."""
    idx = np.zeros(n, np.int64)
    vals = np.full(n, np.nan)
    meta = np.zeros(3, np.int64)
    for i in range(x.shape[0]):
        v = extreme_push_nb(idx, vals, meta, x[i], n, True)
        out[i] = v if i >= n - 1 else np.nan
    return out


@njit(cache=True, nogil=True, error_model="numpy")
def rolling_min_nb(x, n, out):  # type: ignore[no-untyped-def]
    """Rolling min over ``n`` values (pandas ``rolling(n).min()``); NaN for the first n-1."""
    idx = np.zeros(n, np.int64)
    vals = np.full(n, np.nan)
    meta = np.zeros(3, np.int64)
    for i in range(x.shape[0]):
        v = extreme_push_nb(idx, vals, meta, x[i], n, False)
        out[i] = v if i >= n - 1 else np.nan
    return out


# -- fast whole-array forms ------------------------------------------------------------------------
# The batch kernels below avoid ring-buffer modulo arithmetic (the whole array is there), which
# makes them several times faster than looping the push steps; tests prove them equal to the
# per-bar steps on the real data (|diff| <= 1e-9).


@njit(cache=True, nogil=True, error_model="numpy")
def rolling_extreme_batch_nb(x, n, is_max, full, out):  # type: ignore[no-untyped-def]
    """Rolling max/min over ``n`` values with a monotonic deque of indices (amortised O(1)).
    ``full``: NaN for the first n-1 values; else over the values available so far."""
    size = x.shape[0]
    q = np.empty(size, np.int64)
    head = 0
    tail = 0
    for i in range(size):
        if head < tail and q[head] <= i - n:
            head += 1
        v = x[i]
        if is_max:
            while head < tail and x[q[tail - 1]] <= v:
                tail -= 1
        else:
            while head < tail and x[q[tail - 1]] >= v:
                tail -= 1
        q[tail] = i
        tail += 1
        out[i] = np.nan if (full and i < n - 1) else x[q[head]]
    return out


@njit(cache=True, nogil=True, error_model="numpy")
def sma_batch_nb(x, m, min_periods, out):  # type: ignore[no-untyped-def]
    """Same as ``sma_nb`` (leading NaNs skipped, re-summed every m values), with locals only."""
    size = x.shape[0]
    start = 0
    while start < size and x[start] != x[start]:
        out[start] = np.nan
        start += 1
    s = 0.0
    since = 0
    for i in range(start, size):
        k = i - start  # valid values before this one
        if k >= m:
            s -= x[i - m]
        s += x[i]
        since += 1
        if since >= m:
            s = 0.0
            for j in range(max(start, i - m + 1), i + 1):
                s += x[j]
            since = 0
        cnt = k + 1
        out[i] = np.nan if cnt < min_periods else s / min(cnt, m)
    return out
