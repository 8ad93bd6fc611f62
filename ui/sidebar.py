"""The sidebar's trade setup: per strategy entry, stop, targets and risk/reward, and a mini
volume profile, for the selected alarm or the current bar.

The engine answers it (WIRE.md ``op: setup``): each strategy's own setup and the profile with its
Gaussian-mixture curve and LVNs. When the engine does not answer (an older bridge, a timeout),
``fallback_setup`` builds what the UI itself knows: the alarm's setup (entry, ATR stop, its target
candidates) and a volume-by-price histogram of the last bars; that fallback has no GMM curve and
says so in ``note``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ui.state import UiState


def _f(x: Any) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def risk_reward(side: str, entry: float, stop: float, target: float) -> float:
    """Reward over risk of one setup (NaN when the risk is zero or a price is missing)."""
    risk = abs(entry - stop)
    if not (math.isfinite(risk) and risk > 0 and math.isfinite(target)):
        return math.nan
    reward = (target - entry) if side in ("long", "buy") else (entry - target)
    return reward / risk


def _row(strategy: str, side: str, s: dict[str, Any]) -> dict[str, Any]:
    entry = _f(s.get("entry", s.get("entry_price")))
    stop = _f(s.get("stop", s.get("stop_price")))
    targets = [t for t in (_f(t) for t in (s.get("targets") or ())) if math.isfinite(t)]
    if not targets and math.isfinite(_f(s.get("target"))):
        targets = [_f(s.get("target"))]
    rr_raw = s.get("rr", s.get("risk_reward"))
    rr = _f(rr_raw[0] if isinstance(rr_raw, list | tuple) and rr_raw else rr_raw)
    if not math.isfinite(rr) and targets:
        rr = risk_reward(side, entry, stop, targets[0])
    return {"strategy": strategy, "side": s.get("side", side), "entry": entry, "stop": stop,
            "targets": targets, "rr": rr}


def normalize_engine_setup(rep: dict[str, Any], signal: dict[str, Any] | None
                           ) -> dict[str, Any] | None:
    """The engine's ``setup`` reply as the sidebar's rows and profile (None when unusable)."""
    if not rep.get("ok"):
        return None
    res = rep.get("result", rep)
    if not isinstance(res, dict):
        return None
    side = str(res.get("side") or (signal or {}).get("side", "long"))
    per = res.get("setups") or res.get("strategies") or {}
    rows = []
    if isinstance(per, dict):
        rows = [_row(name, side, s) for name, s in per.items() if isinstance(s, dict)]
    elif isinstance(per, list):
        rows = [_row(str(s.get("strategy", "?")), side, s) for s in per if isinstance(s, dict)]
    profile = res.get("profile") if isinstance(res.get("profile"), dict) else None
    if not rows and profile is None:
        return None
    if profile is not None and not (profile.get("gmm") or {}).get("x"):
        note = "no Gaussian mixture at this bar (a thin profile)"
    else:
        note = ""
    return {"source": "engine", "alarm_id": res.get("alarm_id") or (signal or {}).get("alarm_id"),
            "side": side, "rows": rows, "profile": profile, "note": note}


def ui_profile(bars: list[Any], bins: int = 48) -> dict[str, Any] | None:
    """Volume by price of ``bars`` (each bar's volume spread evenly over its low..high), POC and
    the 70 % value area around it, and the LVNs (local minima under 25 % of the POC volume)."""
    if len(bars) < 5:
        return None
    lo = np.array([b.low for b in bars])
    hi = np.array([b.high for b in bars])
    vol = np.array([b.volume for b in bars])
    pmin, pmax = float(lo.min()), float(hi.max())
    if not pmax > pmin:
        return None
    edges = np.linspace(pmin, pmax, bins + 1)
    mids = (edges[:-1] + edges[1:]) / 2
    hist = np.zeros(bins)
    for lo_i, hi_i, v in zip(lo, hi, vol, strict=True):
        a = np.searchsorted(edges, lo_i, side="right") - 1
        b = np.searchsorted(edges, hi_i, side="left")
        a, b = max(a, 0), min(max(b, a + 1), bins)
        hist[a:b] += v / (b - a)
    poc = int(hist.argmax())
    total, inside = hist.sum(), hist[poc]
    i = j = poc
    while inside < 0.7 * total and (i > 0 or j < bins - 1):
        left = hist[i - 1] if i > 0 else -1.0
        right = hist[j + 1] if j < bins - 1 else -1.0
        if right >= left:
            j += 1
            inside += hist[j]
        else:
            i -= 1
            inside += hist[i]
    lvn = [float(mids[k]) for k in range(1, bins - 1)
           if hist[k] < hist[k - 1] and hist[k] < hist[k + 1] and hist[k] < 0.25 * hist[poc]]
    return {"prices": mids.tolist(), "volumes": hist.tolist(), "poc": float(mids[poc]),
            "vah": float(mids[j]), "val": float(mids[i]), "hvn": [], "lvn": lvn, "gmm": {}}


def fallback_setup(state: UiState, alarm_id: str | None, n_bars: int = 200) -> dict[str, Any]:
    """What the UI knows without the engine: the alarm's own setup and a profile of the last
    ``n_bars`` bars (no Gaussian mixture)."""
    sig = state.signal(alarm_id)
    rows = []
    side = "long"
    if sig is not None:
        side = str(sig.get("side", "long"))
        entry, stop = _f(sig.get("entry_price")), _f(sig.get("stop_price"))
        for k, t in enumerate(list(sig.get("targets") or ())[:4]):
            rows.append({"strategy": f"target {k + 1}", "side": side, "entry": entry,
                         "stop": stop, "targets": [_f(t)],
                         "rr": risk_reward(side, entry, stop, _f(t))})
        if not rows:
            rows.append({"strategy": "signal", "side": side, "entry": entry, "stop": stop,
                         "targets": [], "rr": math.nan})
    profile = ui_profile(state.recent_bars(n_bars))
    return {"source": "ui", "alarm_id": sig.get("alarm_id") if sig else None, "side": side,
            "rows": rows, "profile": profile,
            "note": "engine gave no setup: the alarm's own targets and a profile of the last "
                    f"{n_bars} bars computed here (no GMM curve)"}
