"""A seeded synthetic 15m BTC-like series, calibrated to the statistics of real BTC/USDT data.

The bundled default dataset (``data/SYNTH-BTCUSDT_15m_data.csv``) is made by this module so that
``make run`` works offline on a fresh clone without shipping market data. It is **not** market
data: the name says SYNTH, and ``data/README.md`` says how it was made.

Model, per 15-minute bar t (slot s = time of day, 96 slots):

- log return r_t = sigma_t * seasonal_vol[s] * z_t, z_t Student-t(dof) scaled to unit variance
  (fat tails), sigma_t^2 = omega + alpha * r_{t-1}^2 + beta * sigma_{t-1}^2 (GARCH(1,1):
  volatility clustering);
- open = previous close; close = open * exp(r_t);
- high/low extend beyond max/min(open, close) by |N(0,1)| * wick * sigma_t each side;
- log volume = vol_a + vol_b * log(range / close) + volume_profile[s] + N(0, vol_noise):
  intraday volume seasonality, and volume that rises with range.

``calibrate(bars)`` estimates these numbers from real bars; the defaults below came from running
it on ``../shared/data/BTCUSDT_15m_data.csv`` (``tradebot data synth --calibrate FILE`` prints a
fresh set and the stylised facts of both series).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from engine.bars import Bars
from engine.timeframes import timeframe_ns

SLOTS = 96  # 15-minute slots per day


def _default_profile() -> tuple[float, ...]:
    # Mean log-volume deviation per UTC slot of the real data (calibrate() output, rounded).
    return _REAL_VOLUME_PROFILE


@dataclass(frozen=True)
class SynthParams:
    omega: float = 4.11e-07
    alpha: float = 0.1
    beta: float = 0.8369
    dof: float = 4.275
    wick: float = 0.3359
    vol_a: float = 9.971
    vol_b: float = 0.7375
    vol_noise: float = 0.5551
    start_price: float = 42_000.0  # a round level inside the real data's range
    volume_profile: tuple[float, ...] = field(default_factory=_default_profile)
    seasonal_vol: tuple[float, ...] = field(default_factory=lambda: _REAL_VOL_SEASONAL)


def calibrate(bars: Bars) -> SynthParams:
    """Estimate ``SynthParams`` from real bars (moments and least squares; no optimiser)."""
    c = bars.close
    r = np.diff(np.log(c))
    slot = ((bars.ts_open_ns // timeframe_ns("15m")) % SLOTS)[1:]
    seas = np.array([r[slot == s].std() for s in range(SLOTS)])
    seas = seas / seas.mean()
    rn = r / seas[slot]
    var = rn.var()
    # GARCH persistence from the decay of the |r| autocorrelation; alpha from kurtosis level.
    a2 = np.abs(rn) - np.abs(rn).mean()
    ac = [np.dot(a2[:-k], a2[k:]) / np.dot(a2, a2) for k in (1, 10)]
    persistence = float(np.clip((ac[1] / max(ac[0], 1e-6)) ** (1 / 9), 0.80, 0.995))
    alpha = 0.10
    beta = persistence - alpha
    omega = var * (1 - alpha - beta)
    kurt = float(((rn - rn.mean()) ** 4).mean() / var**2)
    dof = float(np.clip(4 + 6 / max(kurt - 3, 0.5), 2.5, 30))
    rng = (bars.high - bars.low) / c
    body = np.abs(bars.close - bars.open) / c
    wick = float(np.median((rng - body)[1:]) / (2 * 0.6745 * math.sqrt(var)))
    lv = np.log(bars.volume[1:])
    lr = np.log(np.maximum(rng[1:], 1e-6))
    vslot = slot
    prof = np.array([lv[vslot == s].mean() for s in range(SLOTS)])
    prof -= prof.mean()
    y = lv - prof[vslot]
    b, a = np.polyfit(lr, y, 1)
    noise = float(np.std(y - (a + b * lr)))
    return SynthParams(
        omega=float(omega), alpha=alpha, beta=float(beta), dof=dof, wick=wick,
        vol_a=float(a), vol_b=float(b), vol_noise=noise, start_price=float(c[0]),
        volume_profile=tuple(round(float(x), 3) for x in prof),
        seasonal_vol=tuple(round(float(x), 3) for x in seas),
    )


def generate(n: int = 20_000, seed: int = 7, params: SynthParams | None = None,
             start: str = "2024-01-01 00:00:00", symbol: str = "SYNTH-BTCUSDT") -> Bars:
    """Generate ``n`` synthetic 15m bars; the same seed gives the same bars."""
    p = params or SynthParams()
    rng = np.random.default_rng(seed)
    tf = timeframe_ns("15m")
    t0 = int(np.datetime64(start, "ns").astype(np.int64))
    ts = t0 + np.arange(n, dtype=np.int64) * tf
    slot = (ts // tf) % SLOTS
    seas = np.asarray(p.seasonal_vol)[slot]
    z = rng.standard_t(p.dof, size=n) * math.sqrt((p.dof - 2) / p.dof)
    r = np.empty(n)
    sig2 = p.omega / max(1 - p.alpha - p.beta, 1e-6)
    sig = np.empty(n)
    prev = 0.0
    for i in range(n):  # GARCH recursion (n is small: plain Python is fine here)
        sig2 = p.omega + p.alpha * prev * prev + p.beta * sig2
        sig[i] = math.sqrt(sig2)
        r[i] = sig[i] * seas[i] * z[i]
        prev = r[i] / seas[i]
    close = p.start_price * np.exp(np.cumsum(r))
    open_ = np.concatenate(([p.start_price], close[:-1]))
    up = np.abs(rng.standard_normal(n)) * p.wick * sig * seas
    dn = np.abs(rng.standard_normal(n)) * p.wick * sig * seas
    high = np.maximum(open_, close) * np.exp(up)
    low = np.minimum(open_, close) * np.exp(-dn)
    rngf = (high - low) / close
    lv = (p.vol_a + p.vol_b * np.log(np.maximum(rngf, 1e-6)) + np.asarray(p.volume_profile)[slot]
          + rng.standard_normal(n) * p.vol_noise)
    volume = np.exp(lv)
    # round like an exchange feed: 2 decimals for prices, 5 for volume (and keep OHLC ordered)
    o, c = np.round(open_, 2), np.round(close, 2)
    h = np.maximum(np.round(high, 2), np.maximum(o, c))
    lo = np.minimum(np.round(low, 2), np.minimum(o, c))
    return Bars.from_columns(symbol, "15m", tf, ts, o, h, lo, c, np.round(volume, 5))


def write_csv(bars: Bars, path: str) -> None:
    """Write bars in the project's CSV format (deterministic bytes)."""
    ts = bars.ts_open_ns.astype("datetime64[ns]").astype("datetime64[s]").astype(str)
    with open(path, "w", newline="\n") as fh:  # noqa: PTH123
        fh.write("timestamp,open,high,low,close,volume\n")
        for i in range(len(bars)):
            fh.write(f"{ts[i].replace('T', ' ')},{bars.open[i]:.2f},{bars.high[i]:.2f},"
                     f"{bars.low[i]:.2f},{bars.close[i]:.2f},{bars.volume[i]:.5f}\n")


def stylised_facts(bars: Bars) -> dict[str, float]:
    """The statistics the synthetic series is calibrated to reproduce."""
    r = np.diff(np.log(bars.close))
    a = np.abs(r) - np.abs(r).mean()
    acf = [float(np.dot(a[:-k], a[k:]) / np.dot(a, a)) for k in (1, 5, 10)]
    kurt = float(((r - r.mean()) ** 4).mean() / r.var() ** 2)
    rng = np.log(np.maximum((bars.high - bars.low) / bars.close, 1e-8))
    lv = np.log(np.maximum(bars.volume, 1e-12))
    slot = (bars.ts_open_ns // timeframe_ns("15m")) % SLOTS
    prof = np.array([lv[slot == s].mean() for s in range(SLOTS)])
    return {
        "ret_std": float(r.std()),
        "ret_kurtosis": kurt,
        "abs_ret_acf1": acf[0],
        "abs_ret_acf5": acf[1],
        "abs_ret_acf10": acf[2],
        "corr_logvol_logrange": float(np.corrcoef(lv, rng)[0, 1]),
        "volume_profile": prof - prof.mean(),  # type: ignore[dict-item]
    }


_REAL_VOLUME_PROFILE: tuple[float, ...] = (
    0.056, -0.05, -0.028, -0.107, -0.041, -0.07, -0.039, -0.116, -0.06, -0.154, -0.174, -0.199,
    -0.177, -0.244, -0.258, -0.352, -0.239, -0.322, -0.321, -0.379, -0.285, -0.304, -0.32,
    -0.325, -0.19, -0.271, -0.227, -0.206, -0.131, -0.12, -0.017, -0.014, 0.036, -0.077, -0.096,
    -0.108, -0.054, -0.065, -0.077, -0.127, -0.087, -0.098, -0.118, -0.158, -0.075, -0.112,
    -0.075, -0.101, 0.086, 0.068, 0.237, 0.109, 0.205, 0.177, 0.472, 0.447, 0.548, 0.479, 0.676,
    0.594, 0.652, 0.547, 0.532, 0.433, 0.526, 0.421, 0.373, 0.282, 0.315, 0.243, 0.239, 0.184,
    0.269, 0.127, 0.113, 0.058, 0.156, 0.087, 0.053, 0.111, 0.15, 0.0, -0.07, -0.023, -0.052,
    -0.132, -0.219, -0.375, -0.058, -0.224, -0.304, -0.41, -0.104, -0.25, -0.323, -0.347,
)
_REAL_VOL_SEASONAL: tuple[float, ...] = (
    0.884, 1.193, 1.021, 0.965, 1.169, 0.986, 1.258, 1.01, 1.036, 0.982, 1.007, 0.88, 0.862,
    0.857, 0.741, 0.694, 0.685, 0.735, 0.749, 0.735, 0.73, 0.713, 0.683, 0.703, 0.762, 0.84,
    0.831, 0.899, 0.855, 0.832, 0.76, 0.683, 0.881, 0.825, 0.739, 0.79, 0.759, 0.796, 0.737,
    0.79, 0.742, 0.855, 0.727, 0.681, 0.761, 0.761, 0.777, 0.778, 1.011, 0.888, 1.173, 0.962,
    0.896, 1.114, 1.544, 1.288, 1.388, 1.354, 1.671, 1.331, 1.365, 1.433, 1.256, 1.118, 1.23,
    1.26, 1.181, 1.163, 1.188, 1.272, 1.327, 1.123, 1.195, 1.1, 1.016, 1.068, 1.085, 1.037,
    1.103, 1.191, 1.318, 0.963, 0.983, 1.044, 1.147, 1.192, 1.65, 1.152, 1.169, 1.221, 1.239,
    0.977, 1.076, 0.932, 0.726, 0.739,
)
