"""Peaks of a 1-D profile by the rules of ``scipy.signal.find_peaks``, in numba.

``find_peaks_nb(x, prominence, distance, drop_low, idx, removed, order)`` writes the same
indices as ``scipy.signal.find_peaks(x, prominence=prominence, distance=distance)[0]``:

1. **local maxima**: ``x[i-1] < x[i] > x[i+1]``; a flat top (plateau) counts once, at its
   middle ``(left + right) // 2``; the first and last samples are never peaks;
2. **distance**: peaks are visited from the highest down; a peak not yet removed removes every
   other peak closer than ``distance`` samples. Equal heights are visited right-most first,
   which is what scipy does when its ``argsort`` keeps equal keys in order (its default sort
   is not guaranteed stable, so exactly equal heights may resolve differently there);
3. **prominence**: the height above the higher of the two lowest points reached, on each side,
   before meeting a higher sample or the edge (scipy's ``peak_prominences``, no ``wlen``);
   peaks with prominence ``< prominence`` are dropped.

Two exact shortcuts make it cheap enough to run on every bar's profile:

- a peak lower than ``prominence`` cannot have that prominence (the bases are >= 0 for a
  non-negative profile), and a peak never influences a higher one in step 2, so with
  ``x >= 0`` such peaks are dropped before step 2 without changing the result
  (``drop_low=True``);
- step 2 only links peaks closer than ``distance``, so it runs separately inside each chain of
  peaks whose neighbours are closer than ``distance``; isolated peaks are kept without sorting.

Causal trivially (no time axis). Allocation-free: the caller passes scratch arrays at least
``len(x)`` long. Inputs must be finite.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def local_maxima_nb(x: np.ndarray, min_height: float, idx: np.ndarray) -> int:
    """Write the local maxima of ``x`` at least ``min_height`` high, ascending, into ``idx``.

    scipy's ``_local_maxima_1d``: a sample higher than its left neighbour, followed by equal
    samples and then a lower one, is a peak at the middle ``(left + right) // 2`` of the equal
    run. Edges never are. ``min_height = -inf`` keeps every maximum.

    Args:
        x: the profile.
        min_height: maxima lower than this are not written.
        idx: int64 scratch of at least ``len(x)`` entries, receives the indices.

    Returns:
        How many maxima were written.
    """
    n = x.shape[0]
    m = 0
    i = 1
    i_max = n - 1
    while i < i_max:
        if x[i - 1] < x[i]:
            ahead = i + 1
            while ahead < i_max and x[ahead] == x[i]:
                ahead += 1
            if x[ahead] < x[i]:
                if x[i] >= min_height:
                    idx[m] = (i + ahead - 1) // 2
                    m += 1
                i = ahead
        i += 1
    return m


@njit(cache=True, nogil=True)
def prominence_nb(x: np.ndarray, peak: int) -> float:
    """Prominence of ``x[peak]`` as ``scipy.signal.peak_prominences`` (no ``wlen``).

    Walk left, then right, while samples are <= the peak, tracking the lowest; prominence =
    peak height - the higher of the two lows.
    """
    h = x[peak]
    left_min = h
    i = peak
    while i >= 0 and x[i] <= h:
        if x[i] < left_min:
            left_min = x[i]
        i -= 1
    right_min = h
    i = peak
    n = x.shape[0]
    while i < n and x[i] <= h:
        if x[i] < right_min:
            right_min = x[i]
        i += 1
    return h - max(left_min, right_min)


@njit(cache=True, nogil=True)
def has_prominence_nb(x: np.ndarray, peak: int, prominence: float) -> bool:
    """``prominence_nb(x, peak) >= prominence``, with walks that stop as soon as it is known.

    The prominence is ``h - max(left_min, right_min)`` and ``h - y >= prominence`` can only
    become false as ``y`` grows, so each walk stops at the first sample ``y`` with
    ``h - y >= prominence`` (that side qualifies) or fails at a higher sample or the edge
    (the walk's lowest sample does not qualify, hence the peak does not). Same floating-point
    comparison as on the full value, so the same answer, in a step or two on sparse profiles.
    """
    h = x[peak]
    self_ok = h - h >= prominence  # both of scipy's walks start at the peak itself
    left_ok = self_ok
    i = peak - 1
    while not left_ok and i >= 0 and x[i] <= h:
        left_ok = h - x[i] >= prominence
        i -= 1
    if not left_ok:
        return False
    right_ok = self_ok
    i = peak + 1
    n = x.shape[0]
    while not right_ok and i < n and x[i] <= h:
        right_ok = h - x[i] >= prominence
        i += 1
    return right_ok


@njit(cache=True, nogil=True)
def _distance_chain_nb(x: np.ndarray, idx: np.ndarray, removed: np.ndarray, order: np.ndarray,
                       a: int, b: int, distance: int) -> None:
    """scipy's ``_select_by_peak_distance`` on the peaks ``idx[a:b]`` (one chain).

    The chain's peaks are insertion-sorted highest first (equal heights: the right-most first)
    into ``order``; each peak not yet removed then removes its neighbours closer than
    ``distance``. O(chain length squared) at worst; chains are short.
    """
    c = b - a
    for r in range(c):
        j = a + r
        hj = x[idx[j]]
        k = r
        while k > 0 and x[idx[order[k - 1]]] <= hj:  # <=: a later equal peak goes first
            order[k] = order[k - 1]
            k -= 1
        order[k] = j
    for r in range(c):
        j = order[r]
        if removed[j]:
            continue
        k = j - 1
        while k >= a and idx[j] - idx[k] < distance:
            removed[k] = True
            k -= 1
        k = j + 1
        while k < b and idx[k] - idx[j] < distance:
            removed[k] = True
            k += 1


@njit(cache=True, nogil=True)
def find_peaks_nb(x: np.ndarray, prominence: float, distance: int, drop_low: bool,
                  idx: np.ndarray, removed: np.ndarray, order: np.ndarray) -> int:
    """Peaks of ``x`` as ``scipy.signal.find_peaks(x, prominence=, distance=)`` (module doc).

    Args:
        x: the profile (finite; non-negative when ``drop_low``).
        prominence: minimum prominence, in the units of ``x``.
        distance: minimum spacing in samples (>= 1; 1 disables the rule).
        drop_low: drop maxima lower than ``prominence`` before the distance rule (exact for
            non-negative ``x``, see the module docstring).
        idx: int64 scratch of at least ``len(x)``; receives the peak indices, ascending.
        removed: bool scratch of at least ``len(x)``.
        order: int64 scratch of at least ``len(x)``.

    Returns:
        The number of peaks written to ``idx``.
    """
    m = local_maxima_nb(x, prominence if drop_low else -np.inf, idx)
    for j in range(m):
        removed[j] = False
    if distance > 1 and m > 1:
        a = 0
        for j in range(1, m + 1):
            if j == m or idx[j] - idx[j - 1] >= distance:  # chain [a, j) ends here
                if j - a > 1:
                    _distance_chain_nb(x, idx, removed, order, a, j, distance)
                a = j
    cnt = 0
    for j in range(m):
        if not removed[j] and has_prominence_nb(x, idx[j], prominence):
            idx[cnt] = idx[j]
            cnt += 1
    return cnt
