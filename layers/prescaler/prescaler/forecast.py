"""Forecast: per-minute invocations for the next minutes, from the endpoint's own recent history.

The method is a seasonal "max over recent cycles" at minute resolution, chosen by backtest skill:

1. Candidate patterns are the hourly, daily and weekly cycles. A pattern is eligible when the
   history holds at least two of its cycles (and at least 24 hours in all): with less there is no
   forecast-driven raise.
2. A pattern's forecast for minute ``t`` is the largest value seen at ``t - k * period`` (``k = 1 ..
   cycles``), each widened by ``drift_minutes`` either side. Taking the largest of the recent cycles
   covers a spike whose start drifts, survives one missing spike, and follows a schedule that moves
   after one cycle. Daily and weekly lags are counted in wall-clock time of ``timezone``, so a
   local-time job keeps its slot across daylight-saving shifts.
3. Each eligible pattern is backtested on the last day of history: for every minute, the peak it
   would have forecast over the next ``window`` minutes against the peak that came (mean absolute
   error, invocations per minute). The pattern with the smallest error is used, but only if it beats
   persistence (the last observed minute): otherwise the traffic has no pattern worth acting on and
   the forecast is marked unusable.

Pure numpy/pandas, no clock, no AWS: ``forecast`` is called by both Lambdas and, once per simulated
minute, by the simulator's ``predictive`` policy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pandas as pd

from prescaler.history import MINUTE, SERIES_NAME, active_minutes, as_minute_series, to_utc

#: A forecast-driven raise needs at least this much history (and two cycles of its pattern).
MIN_HISTORY = pd.Timedelta(hours=24)
#: Backtest the candidate patterns on at most this many of the newest minutes (a week when the
#: weekly cycle is a candidate, so that its once-a-week spike is in the backtest).
SKILL_MINUTES = 1440
SKILL_MINUTES_WEEKLY = 7 * 1440
#: Backtest windows are at most this long (a longer forecast range is scored as the planner uses
#: it: the peak of the next few minutes).
SKILL_WINDOW_MINUTES = 15
#: A pattern is used only if its backtest error is below this fraction of persistence's.
SKILL_MARGIN = 0.9


@dataclass(frozen=True)
class Pattern:
    """A seasonal cycle the forecaster can use."""

    name: str
    period_minutes: int
    cycles: int
    wall_clock: bool  # lags counted in local wall-clock time (daylight saving) rather than UTC


PATTERNS: tuple[Pattern, ...] = (
    Pattern("hourly", 60, cycles=3, wall_clock=False),
    Pattern("daily", 1440, cycles=3, wall_clock=True),
    Pattern("weekly", 10080, cycles=2, wall_clock=True),
)


@dataclass(frozen=True)
class Forecast:
    """Predicted invocations per minute over ``[start, end)``.

    Attributes:
        values: per-minute UTC series of predicted invocations over ``[start, end)``.
        pattern: the cycle used (``hourly``, ``daily``, ``weekly``) or ``none``.
        usable: whether a raise may be based on it (False: too little history, no data, or no
            pattern that beats persistence).
        peak_invocations_per_minute: the largest predicted minute.
        window_start / window_end: the run of minutes around the peak within 90% of it (end
            exclusive), UTC.
        reason: one line a human can read.
        skill: backtest error per candidate (mean absolute error of the window peak,
            invocations per minute), ``persistence`` included.
    """

    start: pd.Timestamp
    end: pd.Timestamp
    values: pd.Series
    pattern: str
    usable: bool
    peak_invocations_per_minute: float
    window_start: pd.Timestamp
    window_end: pd.Timestamp
    history_minutes: int
    reason: str
    skill: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-ready summary (the CLI's and the handlers' ``forecast`` object)."""
        return {
            "pattern": self.pattern,
            "usable": self.usable,
            "peak_invocations_per_minute": finite_or_none(self.peak_invocations_per_minute),
            "window_start": self.window_start.isoformat(),
            "window_end": self.window_end.isoformat(),
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "history_minutes": self.history_minutes,
            "skill_mae": {k: finite_or_none(v) for k, v in self.skill.items()},
            "reason": self.reason,
        }


def finite_or_none(value: float, digits: int = 3) -> float | None:
    """A number for strict JSON: rounded, or None when it is NaN or infinite."""
    return round(float(value), digits) if math.isfinite(value) else None


def _rolling_max(y: np.ndarray, half_width: int) -> np.ndarray:
    """Centered max over ``[i - half_width, i + half_width]`` (clipped at the edges)."""
    out = y.copy()
    for s in range(1, min(half_width, len(y) - 1) + 1):
        np.maximum(out[s:], y[:-s], out=out[s:])
        np.maximum(out[:-s], y[s:], out=out[:-s])
    return out


def _utc_offsets(times: pd.DatetimeIndex, timezone: str) -> np.ndarray:
    """UTC offset in minutes of each (UTC) time in ``timezone``."""
    if timezone in ("UTC", "Etc/UTC"):
        return np.zeros(len(times), dtype=np.int64)
    local = times.tz_convert(timezone).tz_localize(None)
    return ((local - times.tz_localize(None)) // MINUTE).to_numpy(dtype=np.int64)


def _seasonal(
    ymax: np.ndarray,
    targets: np.ndarray,
    origin: pd.Timestamp,
    pattern: Pattern,
    timezone: str,
    observed_until: np.ndarray,
    drift: int,
) -> np.ndarray:
    """Max over ``pattern.cycles`` lagged (and drift-widened) values for each target position.

    ``targets`` are minute positions relative to ``origin`` (the history's first minute);
    ``observed_until[i]`` is the exclusive end of what may be read for target ``i``.
    """
    out = np.full(len(targets), np.nan)
    offsets_t = None
    if pattern.wall_clock and timezone not in ("UTC", "Etc/UTC"):
        times = origin + pd.to_timedelta(targets, unit="min")
        offsets_t = _utc_offsets(pd.DatetimeIndex(times), timezone)
    n = len(ymax)
    for k in range(1, pattern.cycles + 1):
        if offsets_t is None:
            src = targets - k * pattern.period_minutes
        else:
            src = targets - k * pattern.period_minutes
            src_times = origin + pd.to_timedelta(src, unit="min")
            src = src + (offsets_t - _utc_offsets(pd.DatetimeIndex(src_times), timezone))
        ok = (src >= 0) & (src < n) & (src + drift < observed_until)
        vals = ymax.take(src, mode="clip")
        vals[~ok] = np.nan
        np.fmax(out, vals, out=out)
    return out


def _window_peaks(values: np.ndarray, width: int) -> np.ndarray:
    """Max over each run of ``width`` consecutive values: shape ``(len(values) - width + 1,)``."""
    out = values[: len(values) - width + 1].copy()
    for s in range(1, width):
        np.maximum(out, values[s: s + len(out)], out=out)
    return out


def _skill(
    y: np.ndarray,
    ymax: np.ndarray,
    origin: pd.Timestamp,
    patterns: list[Pattern],
    timezone: str,
    width: int,
    drift: int,
) -> dict[str, float]:
    """Backtest each pattern and persistence on the newest minutes: window-peak MAE per minute.

    For every window of ``width`` minutes in the backtest span, the peak a pattern forecast for it
    (from data published before the window) is compared with the peak that came. Persistence
    forecasts the peak of the ``width`` minutes before the window: what reacting would have used.
    The span is the last day, or the last week when the weekly pattern is a candidate.
    """
    n = len(y)
    span = SKILL_MINUTES_WEEKLY if any(p.period_minutes >= 10080 for p in patterns) else SKILL_MINUTES
    eval_len = min(span, n - 2 * width + 1)
    if eval_len <= 0:
        return {}
    first = n - eval_len - width + 1  # first window start; first >= width
    peaks = _window_peaks(y[first - width:], width)
    actual = peaks[width:]
    scores = {"persistence": float(np.mean(np.abs(peaks[: len(actual)] - actual)))}
    targets = np.arange(first, n)
    # each target is forecast from the start of the window holding it at the latest: the worst case
    observed_until = targets - width + 1
    for pattern in patterns:
        pred = _seasonal(ymax, targets, origin, pattern, timezone, observed_until, drift)
        pred[np.isnan(pred)] = 0.0
        scores[pattern.name] = float(np.mean(np.abs(_window_peaks(pred, width) - actual)))
    return scores


def forecast(
    history: pd.Series,
    start: datetime | pd.Timestamp,
    end: datetime | pd.Timestamp,
    *,
    drift_minutes: int = 1,
    timezone: str = "UTC",
    min_history: pd.Timedelta = MIN_HISTORY,
) -> Forecast:
    """Forecast invocations per minute over ``[start, end)`` from a per-minute history.

    Args:
        history: per-minute UTC series of invocations (``prescaler.history`` shape), complete
            minutes only, at most 14 days. Its end may be before ``start`` (publication delay): the
            minutes in between are forecast too, from earlier cycles.
        start, end: the forecast range (whole UTC minutes; ``end`` exclusive).
        drift_minutes: widen each past minute by this many minutes either side (spike-start jitter).
        timezone: IANA name of the time zone whose wall clock daily and weekly jobs follow.
        min_history: no usable forecast with less active history than this.

    Returns:
        A ``Forecast``. When ``usable`` is False its values are the last observed minute repeated
        (information only: the planner will not raise on it).

    Raises:
        ValueError: ``end`` is not after ``start``, or ``history`` is not per-minute.
    """
    lo, hi = to_utc(start).floor("min"), to_utc(end).floor("min")
    if hi <= lo:
        raise ValueError(f"forecast range is empty: {lo} .. {hi}")
    out_index = pd.date_range(lo, hi, freq="min", inclusive="left", name="minute")
    history = as_minute_series(history)
    y = history.to_numpy(dtype=float)
    n = len(y)
    active = active_minutes(history) if n else 0

    def unusable(reason: str, skill: dict[str, float] | None = None) -> Forecast:
        level = float(y[-1]) if n and np.isfinite(y[-1]) and y[-1] >= 0 else 0.0
        values = pd.Series(np.full(len(out_index), level), index=out_index, name=SERIES_NAME)
        return Forecast(lo, hi, values, "none", False, level, lo, hi, active, reason, skill or {})

    if n and not np.isfinite(y).all():
        bad = int((~np.isfinite(y)).sum())
        return unusable(f"unreadable data: {bad} minute(s) of history are not finite numbers")
    if n and (y < 0).any():
        return unusable("unreadable data: negative invocation counts in the history")
    if n == 0 or active == 0:
        return unusable("no data: the history window holds no invocations")
    if active < min_history / MINUTE:
        return unusable(f"too little history: {active / 60:.1f} h of traffic, need "
                        f"{min_history / pd.Timedelta(hours=1):.0f} h before any forecast-driven raise")
    eligible = [p for p in PATTERNS if active >= 2 * p.period_minutes]
    width = len(out_index)
    ymax = _rolling_max(y, drift_minutes)
    origin = history.index[0]
    skill = _skill(y, ymax, origin, eligible, timezone, min(max(width, 1), SKILL_WINDOW_MINUTES), drift_minutes)
    skilful = [p for p in eligible if p.name in skill and skill[p.name] < SKILL_MARGIN * skill["persistence"]]
    if not skilful:
        closest = min((p.name for p in eligible if p.name in skill), key=skill.__getitem__, default=None)
        return unusable(
            "no pattern worth acting on: "
            + (f"best ({closest}) window-peak error {skill[closest]:,.0f}/min is not {1 - SKILL_MARGIN:.0%} "
               f"better than persistence {skill['persistence']:,.0f}/min" if closest
               else "too little history to backtest"),
            skill,
        )

    # Every skilful pattern votes; the forecast is their maximum, so a schedule that moved (seen by
    # the hourly cycle first) or a weekly-only spike (seen by the weekly cycle only) is covered.
    targets = (lo - origin) // MINUTE + np.arange(len(out_index), dtype=np.int64)
    observed = np.full(len(targets), n)
    votes = {p.name: _seasonal(ymax, targets, origin, p, timezone, observed, drift_minutes) for p in skilful}
    pred = np.fmax.reduce(list(votes.values()))
    pred = np.where(np.isnan(pred), float(y[-1]), pred)
    values = pd.Series(pred, index=out_index, name=SERIES_NAME)
    peak_at = int(np.argmax(pred))
    peak = float(pred[peak_at])
    near = pred >= 0.9 * peak
    a = peak_at
    while a > 0 and near[a - 1]:
        a -= 1
    b = peak_at
    while b + 1 < len(pred) and near[b + 1]:
        b += 1
    w_start, w_end = out_index[a], out_index[b] + MINUTE
    # Named after the shortest cycle that forecasts (nearly) this peak: the simplest explanation.
    best = next(p for p in skilful if np.nanmax(votes[p.name], initial=-np.inf) >= 0.95 * peak) \
        if np.isfinite(peak) and any(np.isfinite(v).any() for v in votes.values()) else skilful[0]
    others = [p.name for p in skilful if p is not best]
    reason = (
        f"{best.name} pattern ({best.cycles} cycles, drift ±{drift_minutes} min; backtest window-peak "
        f"error {skill[best.name]:,.0f}/min vs {skill['persistence']:,.0f}/min for persistence"
        f"{'; also ' + ', '.join(others) if others else ''}): "
        f"peak {peak:,.0f} invocations/min expected {w_start:%H:%M}-{w_end:%H:%M} UTC"
    )
    return Forecast(lo, hi, values, best.name, True, peak, w_start, w_end, active, reason, skill)
