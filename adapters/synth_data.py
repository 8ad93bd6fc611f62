"""A seeded synthetic 15m BTC-like bar series, calibrated to real BTC/USDT 15m candles.

The bundled default dataset, ``data/SYNTH-BTCUSDT_15m_data.csv``, is made by this module so that
``make run`` works offline on a fresh clone without shipping market data. It is **not** market
data: the symbol says SYNTH and ``data/README.md`` says how it was made.

The model, per 15-minute bar t with time-of-day slot s(t) (96 slots, UTC):

- **Returns.** ``r_t = drift + seasonal_vol[s] * sigma_t * z_t``: ``z_t`` is Student-t with
  ``dof`` degrees of freedom scaled to unit variance (fat tails), and
  ``sigma_t^2 = omega + alpha * e_{t-1}^2 + beta * sigma_{t-1}^2`` with ``e = sigma * z`` is a
  GARCH(1,1) on the deseasonalised return (volatility clustering). ``close = open * exp(r)`` and
  ``open`` is the previous close.
- **High and low.** The log price inside the bar is taken as a Brownian bridge from open to close
  with volatility ``intrabar * seasonal_vol[s] * sigma_t``. Its maximum above the open has the
  exact law ``P(M > m) = exp(-2 m (m - r) / v)`` for ``m >= max(0, r)``, sampled by inversion (and
  the minimum likewise), so high >= max(open, close) and low <= min(open, close) by construction,
  and wide bars come with volatile periods, as in real data.
- **Volume.** ``log volume = vol_const + volume_profile[s] + vol_range_slope * log(log(high/low))
  + u_t`` with ``u`` an AR(1) of coefficient ``vol_ar`` and standard deviation ``vol_noise``:
  a 96-slot intraday volume profile, volume that rises with the bar's range, and volume
  persistence beyond what the range explains.

``calibrate(bars)`` estimates every parameter from real bars: slot means of |r| for the volatility
seasonality, a Student-t GARCH(1,1) maximum-likelihood fit (variance targeting) for
omega/alpha/beta/dof, ``intrabar`` by matching the median bar range, and a least-squares fit with
slot fixed effects for the volume equation. ``SynthParams()``'s defaults are its output on the real
data (see ``SynthParams``); ``tradebot data synth --calibrate FILE --print-params`` redoes it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from engine.bars import Bars
from engine.errors import DataError
from engine.timeframes import timeframe_ns

SLOTS = 96  # 15-minute slots in a UTC day
TIMEFRAME = "15m"
TF_NS = timeframe_ns(TIMEFRAME)
DEFAULT_BARS = 20_000
DEFAULT_SEED = 7
DEFAULT_START = "2024-01-01 00:00:00"
DEFAULT_SYMBOL = "SYNTH-BTCUSDT"

F64 = NDArray[np.float64]

# fmt: off
# Calibrated on ../shared/data/BTCUSDT_15m_data.csv (Binance BTC/USDT 15m, 2023-04-01 ..
# 2025-03-21, 69,122 bars) with `tradebot data synth --calibrate <that file> --print-params`.
_SEASONAL_VOL: tuple[float, ...] = (
    0.937, 1.087, 1.11, 1.008, 1.104, 1.044, 1.104, 1.033, 0.999, 0.987, 0.923, 0.855,
    0.865, 0.809, 0.771, 0.684, 0.729, 0.755, 0.749, 0.702, 0.764, 0.749, 0.721, 0.698,
    0.785, 0.761, 0.786, 0.79, 0.833, 0.846, 0.817, 0.729, 0.924, 0.868, 0.801, 0.795,
    0.815, 0.811, 0.789, 0.799, 0.765, 0.836, 0.782, 0.741, 0.823, 0.811, 0.827, 0.773,
    0.917, 0.912, 1.126, 0.996, 0.984, 0.981, 1.454, 1.359, 1.446, 1.399, 1.673, 1.439,
    1.479, 1.522, 1.332, 1.19, 1.298, 1.35, 1.206, 1.188, 1.238, 1.274, 1.312, 1.148,
    1.231, 1.164, 1.068, 1.095, 1.143, 1.102, 1.106, 1.158, 1.228, 1.034, 1.011, 1.053,
    1.161, 1.05, 1.043, 1.008, 1.127, 1.021, 0.961, 0.936, 1.071, 0.96, 0.8, 0.754,
)
_VOLUME_PROFILE: tuple[float, ...] = (
    0.047, -0.128, -0.139, -0.131, -0.136, -0.144, -0.107, -0.114, -0.069, -0.11, -0.104, -0.082,
    -0.069, -0.103, -0.075, -0.076, -0.016, -0.105, -0.086, -0.09, -0.065, -0.084, -0.083, -0.057,
    -0.018, -0.053, -0.029, 0.006, 0.04, 0.033, 0.129, 0.199, 0.085, 0.021, 0.044, 0.068,
    0.079, 0.063, 0.064, 0.041, 0.086, 0.052, 0.039, 0.054, 0.056, 0.024, 0.033, 0.06,
    0.089, 0.058, 0.131, 0.075, 0.127, 0.117, 0.165, 0.189, 0.215, 0.172, 0.25, 0.26,
    0.258, 0.206, 0.234, 0.211, 0.236, 0.143, 0.158, 0.102, 0.095, 0.048, 0.04, 0.027,
    0.074, -0.003, -0.013, -0.015, 0.004, -0.028, -0.051, 0.009, -0.016, -0.063, -0.097, -0.054,
    -0.137, -0.17, -0.258, -0.318, -0.134, -0.209, -0.256, -0.3, -0.119, -0.185, -0.171, -0.148,
)
# fmt: on


@dataclass(frozen=True, slots=True)
class SynthParams:
    """Parameters of the synthetic series (see the module docstring for the model).

    The defaults are ``calibrate()``'s output on the real BTC/USDT 15m data, rounded, with two
    deliberate exceptions: ``drift`` is 0 (the real data's +1.6e-5 per bar is the 2023-25 bull
    market; a demo dataset should not favour longs) and ``start_price`` is 42,000 (about the real
    price on 2024-01-01, where the synthetic series starts).
    """

    drift: float = 0.0  # mean log return per bar
    omega: float = 2.96e-08  # GARCH constant (deseasonalised log-return variance units)
    alpha: float = 0.09318  # GARCH reaction to the last squared shock
    beta: float = 0.9023  # GARCH persistence of the variance
    dof: float = 5.054  # Student-t degrees of freedom of the shocks (> 2)
    intrabar: float = 1.273  # intrabar volatility / bar volatility, for high and low
    vol_const: float = 10.36  # mean log volume at the median slot
    vol_range_slope: float = 0.8029  # d log(volume) / d log(range)
    vol_ar: float = 0.6812  # AR(1) coefficient of the log-volume residual
    vol_noise: float = 0.5284  # standard deviation of the log-volume residual
    start_price: float = 42_000.0
    seasonal_vol: tuple[float, ...] = _SEASONAL_VOL  # return volatility per slot, mean 1
    volume_profile: tuple[float, ...] = _VOLUME_PROFILE  # log-volume offset per slot, mean 0

    def __post_init__(self) -> None:
        if len(self.seasonal_vol) != SLOTS or len(self.volume_profile) != SLOTS:
            raise ValueError(f"seasonal_vol and volume_profile need {SLOTS} values each")
        if not (self.dof > 2 and self.omega > 0 and self.alpha >= 0 and self.beta >= 0
                and self.alpha + self.beta < 1 and abs(self.vol_ar) < 1):
            raise ValueError(f"SynthParams out of range: {self}")


# -- calibration --------------------------------------------------------------------------------


def _slot(ts_open_ns: NDArray[np.int64]) -> NDArray[np.int64]:
    return (ts_open_ns // TF_NS) % SLOTS


def _slot_mean(values: F64, slot: NDArray[np.int64]) -> F64:
    return np.bincount(slot, values, SLOTS) / np.bincount(slot, None, SLOTS)


def _garch_variance(e: F64, omega: float, alpha: float, beta: float, var0: float) -> F64:
    """sigma_t^2 = omega + alpha e_{t-1}^2 + beta sigma_{t-1}^2, from sigma_0^2 = var0."""
    from scipy.signal import lfilter  # calibration only; generation needs numpy alone

    x = np.empty_like(e)
    x[0] = var0
    x[1:] = omega + alpha * e[:-1] ** 2
    return lfilter([1.0], [1.0, -beta], x)


def _fit_garch_t(e: F64) -> tuple[float, float, float, float]:
    """Student-t GARCH(1,1) by maximum likelihood with variance targeting.

    Returns:
        (omega, alpha, beta, dof).
    """
    from scipy.optimize import minimize
    from scipy.special import gammaln

    var = float(e.var())

    def nll(theta: F64) -> float:
        alpha, beta, dof = (float(x) for x in theta)
        if alpha + beta >= 0.9995:  # keep the variance stationary
            return 1e12
        s2 = _garch_variance(e, var * (1 - alpha - beta), alpha, beta, var)
        ll = (gammaln((dof + 1) / 2) - gammaln(dof / 2) - 0.5 * math.log(math.pi * (dof - 2))
              - 0.5 * np.log(s2) - (dof + 1) / 2 * np.log1p(e**2 / ((dof - 2) * s2)))
        return -float(ll.sum())

    fit = minimize(nll, np.array([0.08, 0.90, 5.0]), method="L-BFGS-B",
                   bounds=[(1e-4, 0.5), (0.3, 0.999), (2.1, 60.0)])
    alpha, beta, dof = (float(x) for x in fit.x)
    return var * (1 - alpha - beta), alpha, beta, dof


def _student_t(rng: np.random.Generator, dof: float, n: int) -> F64:
    """Student-t draws scaled to unit variance."""
    return rng.standard_t(dof, size=n) * math.sqrt((dof - 2) / dof)


def _simulate(
    p: SynthParams, slot: NDArray[np.int64], rng: np.random.Generator
) -> tuple[F64, F64, F64]:
    """Log returns, their volatility ``sd`` and the log-volume residual for bars in ``slot``."""
    n = slot.size
    z = _student_t(rng, p.dof, n)
    eta = rng.standard_normal(n)
    seasonal = np.asarray(p.seasonal_vol)[slot]
    sigma = np.empty(n)
    resid = np.empty(n)
    s2 = p.omega / (1 - p.alpha - p.beta)  # start at the unconditional variance
    e_prev, u_prev = 0.0, 0.0
    u_scale = p.vol_noise * math.sqrt(1 - p.vol_ar * p.vol_ar)
    for i in range(n):  # the GARCH and AR(1) recursions: ~1 µs a step in plain Python
        s2 = p.omega + p.alpha * e_prev * e_prev + p.beta * s2
        sigma[i] = math.sqrt(s2)
        e_prev = sigma[i] * z[i]
        u_prev = p.vol_ar * u_prev + u_scale * eta[i]
        resid[i] = u_prev
    sd = seasonal * sigma
    return p.drift + sd * z, sd, resid


def _bridge_extremes(r: F64, sd: F64, u_hi: F64, u_lo: F64) -> tuple[F64, F64]:
    """Log distance of high above and low below the open for a Brownian bridge 0 -> r.

    Inverts P(M > m) = exp(-2 m (m - r) / sd^2) at uniform draws ``u``; the minimum is the
    maximum of the mirrored bridge 0 -> -r.
    """
    v2 = -2.0 * sd * sd
    up = (r + np.sqrt(r * r + v2 * np.log(u_hi))) / 2
    down = (-r + np.sqrt(r * r + v2 * np.log(u_lo))) / 2
    return up, down


def _fit_intrabar(p: SynthParams, target_median_range: float) -> float:
    """The intrabar multiplier whose simulated median log(high/low) matches the real one.

    The bars are simulated from ``p`` itself (100,000 of them, seed 0, so calibration is
    deterministic) rather than built on the real returns: the GARCH spreads volatility more
    unevenly than the real series does, and it is the *generated* bars whose median range must
    match.
    """
    rng = np.random.default_rng(0)
    n = 100_000
    r, sd, _ = _simulate(p, _slot(np.arange(n, dtype=np.int64) * TF_NS), rng)
    u_hi, u_lo = 1.0 - rng.random(n), 1.0 - rng.random(n)  # in (0, 1]
    lo, hi = 0.05, 5.0
    for _ in range(50):  # bisection: the median range grows with the multiplier
        mid = (lo + hi) / 2
        up, down = _bridge_extremes(r, mid * sd, u_hi, u_lo)
        if float(np.median(up + down)) < target_median_range:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def _fit_volume(log_vol: F64, log_range: F64, slot: NDArray[np.int64]) -> dict[str, object]:
    """log volume = const + profile[slot] + slope * log_range + AR(1) residual, least squares.

    The slot effects are fitted jointly with the slope (by demeaning within each slot), so the
    range's own intraday pattern is not counted twice.
    """

    def within(x: F64) -> F64:
        return x - _slot_mean(x, slot)[slot]

    wr, wv = within(log_range), within(log_vol)
    slope = float(np.dot(wr, wv) / np.dot(wr, wr))
    effects = _slot_mean(log_vol - slope * log_range, slot)
    const = float(effects.mean())
    resid = log_vol - effects[slot] - slope * log_range
    ar = float(np.corrcoef(resid[1:], resid[:-1])[0, 1])
    return {"vol_const": const, "vol_range_slope": slope, "vol_ar": ar,
            "vol_noise": float(resid.std()), "volume_profile": effects - const}


def calibrate(bars: Bars) -> SynthParams:
    """Estimate ``SynthParams`` from real 15m bars.

    Args:
        bars: at least 30 days of gap-free 15m bars (more is better: the defaults used 720 days).

    Returns:
        Parameters with ``drift`` measured (the defaults set it to 0 on purpose) and
        ``start_price`` left at its default.

    Raises:
        DataError: the bars are not 15m or too few.
    """
    if bars.tf_ns != TF_NS or len(bars) < 30 * SLOTS:
        raise DataError(f"calibrate needs at least {30 * SLOTS} bars of 15m data; got "
                        f"{len(bars)} bars of {bars.timeframe}")
    r = np.diff(np.log(bars.close))
    slot = _slot(bars.ts_open_ns)[1:]  # r[i] belongs to bar i + 1
    drift = float(r.mean())
    seasonal = _slot_mean(np.abs(r - drift), slot)
    seasonal /= seasonal.mean()
    e = (r - drift) / seasonal[slot]
    omega, alpha, beta, dof = _fit_garch_t(e)
    log_range = np.log(bars.high[1:] / bars.low[1:])
    volume = _fit_volume(np.log(bars.volume[1:]), np.log(np.maximum(log_range, 1e-6)), slot)
    profile = np.asarray(volume.pop("volume_profile"))
    p = SynthParams(
        drift=drift, omega=omega, alpha=alpha, beta=beta, dof=dof,
        seasonal_vol=tuple(float(x) for x in seasonal),
        volume_profile=tuple(float(x) for x in profile),
        **volume,  # type: ignore[arg-type]
    )
    return replace(p, intrabar=_fit_intrabar(p, float(np.median(log_range))))


def rounded(p: SynthParams) -> SynthParams:
    """``p`` with 4 significant digits (per-slot values to 3 decimals), as stored in code."""

    def sig(x: float) -> float:
        return float(f"{x:.4g}")

    scalars = {f.name: sig(getattr(p, f.name)) for f in fields(p)
               if isinstance(getattr(p, f.name), float)}
    return replace(p, seasonal_vol=tuple(round(x, 3) for x in p.seasonal_vol),
                   volume_profile=tuple(round(x, 3) for x in p.volume_profile), **scalars)


def format_params(p: SynthParams) -> str:
    """Python source of ``p`` (rounded) to paste into this module's defaults."""
    p = rounded(p)
    lines = [f"{f.name}: float = {getattr(p, f.name)!r}" for f in fields(p)
             if isinstance(getattr(p, f.name), float)]
    for name, values in (("_SEASONAL_VOL", p.seasonal_vol), ("_VOLUME_PROFILE", p.volume_profile)):
        lines.append(f"{name}: tuple[float, ...] = (")
        for i in range(0, SLOTS, 12):
            lines.append("    " + ", ".join(f"{x}" for x in values[i:i + 12]) + ",")
        lines.append(")")
    return "\n".join(lines)


# -- generation ---------------------------------------------------------------------------------


def generate(
    n: int = DEFAULT_BARS,
    seed: int = DEFAULT_SEED,
    params: SynthParams | None = None,
    start: str = DEFAULT_START,
    symbol: str = DEFAULT_SYMBOL,
) -> Bars:
    """Generate ``n`` synthetic 15m bars from ``start`` (UTC open time of the first bar).

    The same arguments always give the same bars (and ``to_csv_text`` the same bytes) with the
    same numpy version on the same platform.

    Raises:
        ValueError: ``n < 1`` or ``start`` is not on the 15m grid.
    """
    p = params or SynthParams()
    t0 = int(np.datetime64(start, "ns").astype(np.int64))
    if n < 1 or t0 % TF_NS:
        raise ValueError(f"need n >= 1 and a start on the 15m grid; got n={n}, start={start!r}")
    rng = np.random.default_rng(seed)
    ts = t0 + np.arange(n, dtype=np.int64) * TF_NS
    slot = _slot(ts)
    # The draws come in a fixed order (shocks and volume noise in _simulate, then high/low):
    # the stream decides the bytes of the file.
    r, sd, resid = _simulate(p, slot, rng)
    u_hi, u_lo = 1.0 - rng.random(n), 1.0 - rng.random(n)  # in (0, 1]: log() stays finite
    log_close = math.log(p.start_price) + np.cumsum(r)
    log_open = np.concatenate(([math.log(p.start_price)], log_close[:-1]))
    up, down = _bridge_extremes(r, p.intrabar * sd, u_hi, u_lo)
    log_range = np.maximum(up + down, 1e-6)
    log_volume = (p.vol_const + np.asarray(p.volume_profile)[slot]
                  + p.vol_range_slope * np.log(log_range) + resid)

    # Round like the exchange (price tick 0.01, volume step 0.00001), then restore the OHLC
    # bounds that rounding can break by a cent.
    o, c = np.round(np.exp(log_open), 2), np.round(np.exp(log_close), 2)
    h = np.maximum(np.round(np.exp(log_open + up), 2), np.maximum(o, c))
    lo = np.maximum(np.minimum(np.round(np.exp(log_open - down), 2), np.minimum(o, c)), 0.01)
    v = np.maximum(np.round(np.exp(log_volume), 5), 1e-5)
    return Bars.from_columns(symbol, TIMEFRAME, TF_NS, ts, o, h, lo, c, v)


def to_csv_text(bars: Bars) -> str:
    """The bars in the project's CSV format (prices with 2 decimals, volume with 5)."""
    times = bars.ts_open_ns.astype("datetime64[ns]").astype("datetime64[s]").astype(str)
    rows = ["timestamp,open,high,low,close,volume"]
    rows += [
        f"{t.replace('T', ' ')},{o:.2f},{h:.2f},{lo:.2f},{c:.2f},{v:.5f}"
        for t, o, h, lo, c, v in zip(times.tolist(), bars.open.tolist(), bars.high.tolist(),
                                     bars.low.tolist(), bars.close.tolist(),
                                     bars.volume.tolist(), strict=True)
    ]
    return "\n".join(rows) + "\n"


def write_csv(bars: Bars, path: str | Path) -> None:
    """Write ``to_csv_text(bars)`` to ``path`` (``\\n`` line ends on every platform)."""
    Path(path).write_bytes(to_csv_text(bars).encode("ascii"))


# -- stylised facts -----------------------------------------------------------------------------


def _acf(x: F64, lag: int) -> float:
    d = x - x.mean()
    return float(np.dot(d[:-lag], d[lag:]) / np.dot(d, d))


def stylised_facts(bars: Bars) -> dict[str, float | F64]:
    """The statistics the synthetic series is calibrated to reproduce.

    Keys: ``ret_std`` and ``ret_kurtosis`` of 15m log returns (3 for a normal law);
    ``abs_ret_acf1`` .. ``abs_ret_acf10`` (volatility clustering); ``corr_logvol_logrange``;
    ``logvol_acf1``; ``median_range_pct`` (median (high - low) / close, in %); and
    ``volume_profile``, the 96 slot means of log volume minus their mean (an array).
    """
    r = np.diff(np.log(bars.close))
    d = r - r.mean()
    facts: dict[str, float | F64] = {
        "ret_std": float(r.std()),
        "ret_kurtosis": float((d**4).mean() / r.var() ** 2),
    }
    for lag in range(1, 11):
        facts[f"abs_ret_acf{lag}"] = _acf(np.abs(r), lag)
    log_vol = np.log(np.maximum(bars.volume, 1e-12))
    log_range = np.log(np.maximum((bars.high - bars.low) / bars.close, 1e-8))
    facts["corr_logvol_logrange"] = float(np.corrcoef(log_vol, log_range)[0, 1])
    facts["logvol_acf1"] = _acf(log_vol, 1)
    facts["median_range_pct"] = float(np.median((bars.high - bars.low) / bars.close) * 100)
    profile = _slot_mean(log_vol, _slot(bars.ts_open_ns))
    facts["volume_profile"] = profile - profile.mean()
    return facts


def compare_facts(real: Bars, synthetic: Bars) -> list[tuple[str, float, float]]:
    """(statistic, real, synthetic) rows; ``volume_profile_corr`` compares the two profiles."""
    fr, fs = stylised_facts(real), stylised_facts(synthetic)
    rows = [(k, float(v), float(fs[k])) for k, v in fr.items() if k != "volume_profile"]
    corr = float(np.corrcoef(fr["volume_profile"], fs["volume_profile"])[0, 1])
    rows.append(("volume_profile_corr", 1.0, corr))
    return rows
