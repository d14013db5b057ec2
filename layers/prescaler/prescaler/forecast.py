"""Forecast: per-minute invocations for the next minutes, from the endpoint's own recent history.

The method is a seasonal "evidence over recent cycles" at minute resolution, acted on only where a
cost-aware backtest says acting pays:

1. **Candidate periods.** The hourly, daily and weekly cycles, the business day (``workdays``: a
   daily cycle whose evidence for a weekday is the four weekdays before it, and for a Saturday or a
   Sunday the weekend days before it: a job that runs Monday to Friday is prepared for on Monday
   from Friday and Thursday, and not raised for on the weekend from the four weekdays before it,
   which costs the plain daily cycle two idle raises a week and, at two hours a burst, its
   convincing return; the weekly cycle needs two weeks of history to say the same), plus up to
   ``MAX_DISCOVERED`` periods discovered in the history itself (from its first minute with traffic:
   the zeros a young endpoint's window is filled with would swamp them): the highest peaks of the
   autocorrelation of the demand (after
   removing its day-long moving average, so that a 30-minute, 2-hour or 8-hour rhythm stands out
   from the daily swell), at minute resolution, between ``MIN_PERIOD`` and ``MAX_DISCOVERED_PERIOD``
   minutes (computed with numpy's FFT: Wiener-Khinchin).
2. **Eligibility by calendar span.** A period ``P`` is a candidate once the history spans
   ``max(2 P, min(6 P, 24 h))``: six cycles prove a short rhythm (six hourly cycles prove an hourly
   spike, three half-hours of six 30-minute cycles a half-hourly one), no rhythm needs more than a
   day, and every rhythm needs two sightings. Idle minutes are data (zero demand), not missing:
   the span is the window's calendar length, not its count of non-zero minutes.
3. **Evidence, not one sighting.** A pattern's forecast for minute ``t`` is the *second* largest of
   the values seen at ``t - k P`` (``k = 1 .. cycles``; 4 for hourly, daily and discovered periods,
   2 for weekly), each widened by the pattern's drift either side: the level that at least two of
   the recent cycles reached. A spike seen once is not repeated; a spike missing once (a holiday)
   is survived; a drifting start is covered; a schedule that moved is followed after two cycles; a
   weekday-only burst is still seen twice on a Monday (Friday and Thursday). Daily and weekly lags
   are counted in wall-clock time of ``timezone`` (daylight saving).
4. **Cost-aware backtest.** Each candidate is replayed on the newest week (``SKILL_MINUTES``; less
   when the history is shorter: all of it after the shortest candidate's first cycle, a young
   endpoint's history counted from its first invocation, not from the zeros its window is filled
   with, so the Lambda's 14-day window and the same traffic alone choose alike) against what
   the backstop alone (target tracking) would have had: capacity that covers the demand it saw
   ``backstop_reaction_minutes`` ago, kept for ``backstop_hold_minutes``. The loss is asymmetric: a
   minute whose demand exceeds what the capacity serves at the target costs ``breach_minute_cost``
   instance-minutes; every instance-minute raised above the backstop costs one. A pattern is acted
   on only when the breach minutes it prevents are worth more than the instance-minutes it spends
   early (net > 0); patterns are combined greedily, each kept only if the combination's net grows.
   A week, not a day: a daily burst is judged on seven sightings, so that one quiet Sunday or one
   start that jittered does not decide for the next hour.
5. **Learned drift.** Real recurring bursts (a cron job, a nightly batch, a shift change) start a
   few minutes early or late from cycle to cycle; others keep their minute. Each candidate is
   replayed with every drift from 0 to the caller's ``drift_minutes`` and with each wider drift of
   ``DRIFT_CANDIDATES`` (3, 7, 15 minutes either side, at most ``P / MAX_DRIFT_FRACTION``: a start
   that wanders over a quarter of the period is not that rhythm); the greedy combination takes the
   drift that nets most, the narrower among equals (a spike that keeps its minute is not paid for a
   minute early and a minute late, and its relax is not held a minute longer). A wider drift is a
   further hypothesis fitted to the same data, so it is kept only when it also nets more than
   nothing in the older and in the newer half of the span, each holding at least two periods: a
   rhythm pays in both halves, a fit to a lucky burst in noise seldom does.
6. **Never worse than the backstop on pattern-free bursts.** The backtest is in-sample: the best of
   the hourly, daily, weekly and up to three discovered periods, each at several drifts, fitted to
   the same minutes. On bursts at random times (no rhythm: ``_bursts`` in the property tests) such
   a fit still "pays" at the default price of a breach minute, and acting on it cost 5-15% more
   instance-hours than the concurrency backstop alone, up to 32% more than the invocations one, or
   breached more (17 and 36 of 298 ten-hour traces on 35941c0). Measured there,
   the fits prevent at most ~60% of the backstop's breach minutes and return at most ~2.4x what they
   spend (breach minutes prevented x ``breach_minute_cost`` over the instance-minutes raised above
   the backstop), while real recurring bursts (hourly jittered bursts, the reference day, the Azure
   Functions cron spikes) prevent 90-100% of them and hourly jittered ones return 4-7x. So a pattern,
   and the combination acted on, must be *convincing*: prevent at least ``RHYTHM_COVERAGE`` (2/3) of
   the backstop's breach minutes in the span, or return at least ``CostModel.min_return`` (3x). And
   every sub-daily period (hourly and the discovered ones: many hypotheses with many cycles each),
   like every wider drift, must be convincing in the older and in the newer half of the span's
   traffic alike (from its first minute with demand), each holding two periods: a fit to a few lucky
   bursts convinces in one half at most. Daily and weekly cycles at the caller's drift are judged on
   the whole span: a week holds one weekly cycle and seven daily ones.

Pure numpy/pandas, no clock, no AWS: ``forecast`` is called by both Lambdas and, once per simulated
minute, by the simulator's ``predictive`` policy.
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Protocol

import numpy as np
import pandas as pd

from prescaler.history import MINUTE, SERIES_NAME, as_minute_series, to_utc

#: Backtest the candidates on this many of the newest minutes, or on all the history allows after the
#: shortest candidate's first cycle: a week of a daily burst is seven sightings to judge it by, where
#: the newest day alone is one (a quiet Sunday, or one start that jittered past the drift, would
#: decide for the whole next hour).
SKILL_MINUTES = 7 * 1440
#: Spike-start drifts (minutes either side) each candidate is also backtested with, beyond the
#: caller's ``drift_minutes``: a burst whose start jitters by several minutes from cycle to cycle is
#: caught by the drift the backtest finds pays best (the widening costs instance-minutes, so a
#: punctual spike keeps the narrow one).
DRIFT_CANDIDATES = (3, 7, 15)
#: ... at most a ``1 / MAX_DRIFT_FRACTION`` of the period either side (7 minutes for an hourly spike).
MAX_DRIFT_FRACTION = 8
#: Periods discovered from the autocorrelation: at most this many, within these bounds (minutes).
MAX_DISCOVERED = 3
MIN_PERIOD = 15
MAX_DISCOVERED_PERIOD = 720
#: An autocorrelation peak below this, or less than this far above the trough between half its lag
#: and it, is not a rhythm.
MIN_AUTOCORRELATION = 0.2
MIN_PROMINENCE = 0.2
#: Cycles of evidence that prove a short period (capped at a day of history), and the least any
#: period needs.
PROOF_CYCLES = 6
PROOF_SPAN_CAP = 1440
MIN_CYCLES = 2
DAY_MINUTES = 1440
#: A pattern that prevents at least this share of the backstop's breach minutes in the backtest
#: explains them (a rhythm); one that prevents fewer must return ``CostModel.min_return``.
RHYTHM_COVERAGE = 2 / 3
#: The forecast is the level that at least this many of the recent cycles reached.
EVIDENCE_CYCLES = 2


@dataclass(frozen=True)
class Pattern:
    """A seasonal cycle the forecaster can use."""

    name: str
    period_minutes: int
    cycles: int
    wall_clock: bool  # lags counted in local wall-clock time (daylight saving) rather than UTC
    discovered: bool = False
    drift_minutes: int | None = None  # the spike-start drift (min) the backtest chose; None: not chosen yet
    workdays: bool = False  # daily lags count days of the same kind only (Monday-Friday, or the weekend)

    @property
    def min_span_minutes(self) -> int:
        """Calendar span of history this pattern needs: ``max(2 P, min(6 P, 24 h))``."""
        p = self.period_minutes
        return max(MIN_CYCLES * p, min(PROOF_CYCLES * p, PROOF_SPAN_CAP))


PATTERNS: tuple[Pattern, ...] = (
    Pattern("hourly", 60, cycles=4, wall_clock=False),
    # four days: a weekday burst is still seen twice on a Monday (Friday, Thursday; the weekend not)
    Pattern("daily", 1440, cycles=4, wall_clock=True),
    Pattern("weekly", 10080, cycles=2, wall_clock=True),
    # a business-day job: a weekday's evidence is the four weekdays before it, a weekend day's the weekend
    # days before it (a weekday-only burst is not raised for on Saturday and Sunday)
    Pattern("workdays", 1440, cycles=4, wall_clock=True, workdays=True),
)


@functools.cache
def _same_kind_days(cycles: int) -> np.ndarray:
    """``[weekday, k - 1]``: how many days back the ``k``-th day of the same kind (Monday-Friday, or
    Saturday-Sunday) is, for each weekday (Monday 0). Computed once per ``cycles``: callers index it,
    never write to it."""
    out = np.zeros((7, cycles), dtype=np.int64)
    for w in range(7):
        kind = w >= 5
        back = [d for d in range(1, 7 * cycles + 1) if ((w - d) % 7 >= 5) == kind][:cycles]
        out[w] = back
    return out


@dataclass(frozen=True)
class CostModel:
    """The asymmetric loss the backtest judges a pattern by (units in the names).

    Attributes:
        target_invocations_per_instance: per instance per minute; capacity in instances serves
            ``instances x target`` invocations a minute without breaching.
        baseline_instances: the MinCapacity outside spikes.
        breach_minute_cost: instance-minutes one breach minute is worth (the price of a minute over
            the SLO divided by the price of an instance-minute). Higher: act on weaker patterns.
        lookahead_minutes: how early a raise is made (lead time + horizon): the minutes a raise is
            paid for before its spike.
        backstop_reaction_minutes: target tracking's delay from demand to capacity in service
            (metric delay + 3 datapoints + provisioning).
        backstop_hold_minutes: how long target tracking keeps capacity after the demand that asked
            for it (15 low datapoints before scale-in).
        backstop_datapoints: consecutive datapoints above target before target tracking scales out
            (3): it sizes from demand sustained that long, and misses shorter bursts.
        saturation_ratio: what an instance serves before latency breaks, over the target (1.25: a
            target set 20% under saturation, as AWS advises and as the reference endpoint has).
        min_return: the least return a pattern (and the combination acted on) must show in the
            backtest: the breach minutes it prevents, at ``breach_minute_cost``, over the
            instance-minutes it spends above the backstop (3: it must pay even at a third of the
            price of a breach minute). The backtest is in-sample (the best of several patterns and
            drifts fitted to the same minutes), and on bursts at random times such fits return
            1.2-2.4x, real recurring bursts 4x or more (module docstring, step 6).
    """

    target_invocations_per_instance: float = 2400.0
    baseline_instances: int = 2
    breach_minute_cost: float = 30.0
    lookahead_minutes: int = 6
    backstop_reaction_minutes: int = 7
    backstop_hold_minutes: int = 15
    backstop_datapoints: int = 3
    saturation_ratio: float = 1.25
    min_return: float = 3.0


@dataclass(frozen=True)
class Forecast:
    """Predicted invocations per minute over ``[start, end)``.

    Attributes:
        values: per-minute UTC series of predicted invocations over ``[start, end)``.
        pattern: the cycle used (``hourly``, ``daily``, ``weekly``, a discovered ``2-hour`` ...),
            ``calendar`` (a declared event only) or ``none``.
        usable: whether a raise may be based on it (False: too little history, no data, or no
            pattern whose backtest says acting pays).
        peak_invocations_per_minute: the largest predicted minute.
        window_start / window_end: the run of minutes around the peak within 90% of it (end
            exclusive), UTC.
        history_minutes: the calendar span of the history (minutes; idle minutes count).
        reason: one line a human can read.
        skill: backtest per candidate: net instance-minutes saved by acting on it (breach minutes
            prevented x ``breach_minute_cost`` - instance-minutes spent above the backstop);
            ``backstop_breach_minutes`` is the backstop's own count on the same span.
        periods: the periods (minutes) that were candidates, discovered ones included.
        calendar_only: the values come from declared events alone (no usable pattern): 0 outside
            the events' windows.
        prepare: per-minute invocations the planner prepares for: the forecast at the minutes of a
            cycle where acting paid (the backstop breached there in at least two cycles), 0 at the
            others (the backstop serves them); None: all of ``values``.
        judged: the candidates were backtested on readable history long enough for at least one
            of them (True for every usable pattern, and for "no pattern worth acting on"); False for
            missing, unreadable, flat or too short history, where "no pattern" is not a finding. The
            planner relaxes a raise whose pattern is gone only on a judged forecast.
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
    periods: tuple[int, ...] = ()
    calendar_only: bool = False
    prepare: pd.Series | None = None
    judged: bool = False

    @property
    def prepared(self) -> pd.Series:
        """What a raise may be based on: ``prepare``, or ``values`` when none was set."""
        return self.values if self.prepare is None else self.prepare

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
            "candidate_periods_minutes": list(self.periods),
            "skill_net_instance_minutes": {k: finite_or_none(v) for k, v in self.skill.items()},
            "calendar_only": self.calendar_only,
            "judged": self.judged,
            "prepared_peak_invocations_per_minute": finite_or_none(float(self.prepared.max()))
            if len(self.prepared) else None,
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


def _trailing_max(y: np.ndarray, width: int) -> np.ndarray:
    """Max over ``[i - width + 1, i]`` (clipped at the start)."""
    out = y.copy()
    for s in range(1, min(width, len(y))):
        np.maximum(out[s:], y[:-s], out=out[s:])
    return out


def _leading_max(y: np.ndarray, width: int) -> np.ndarray:
    """Max over ``[i, i + width - 1]`` (clipped at the end)."""
    out = y.copy()
    for s in range(1, min(width, len(y))):
        np.maximum(out[:-s], y[s:], out=out[:-s])
    return out


def _utc_offsets(times: pd.DatetimeIndex, timezone: str) -> np.ndarray:
    """UTC offset in minutes of each (UTC) time in ``timezone``."""
    if timezone in ("UTC", "Etc/UTC"):
        return np.zeros(len(times), dtype=np.int64)
    local = times.tz_convert(timezone).tz_localize(None)
    return ((local - times.tz_localize(None)) // MINUTE).to_numpy(dtype=np.int64)


def _duration(minutes: int) -> str:
    """``5 h 59 min``, ``6 h``, ``45 min``."""
    h, m = divmod(int(minutes), 60)
    return " ".join(part for part in (f"{h} h" if h else "", f"{m} min" if m or not h else "") if part)


def _period_name(minutes: int) -> str:
    return f"{minutes // 60}-hour" if minutes % 60 == 0 else f"{minutes}-minute"


def discover_periods(y: np.ndarray, limit: int = MAX_DISCOVERED) -> list[int]:
    """Recurring periods (minutes) in a per-minute demand series, strongest first.

    Method: subtract the centred day-long moving average (the daily swell would otherwise dominate),
    take the autocorrelation by FFT (Wiener-Khinchin), and keep its local maxima between
    ``MIN_PERIOD`` and ``min(MAX_DISCOVERED_PERIOD, len(y) / 2)`` minutes whose value is at least
    ``MIN_AUTOCORRELATION``, at least ``MIN_PROMINENCE`` above the lowest autocorrelation between
    half its lag and it, and at least half the strongest; of those, a peak at a whole multiple of
    a shorter kept period (within a minute) is that period's echo and is dropped.
    """
    n = len(y)
    top = min(MAX_DISCOVERED_PERIOD, n // 2)
    if top < MIN_PERIOD + 1:
        return []
    width = min(1441, n)
    c = np.concatenate(([0.0], np.cumsum(y, dtype=float)))
    half = width // 2
    lo = np.clip(np.arange(n) - half, 0, n)
    hi = np.clip(np.arange(n) + half + 1, 0, n)
    x = y - (c[hi] - c[lo]) / (hi - lo)
    var = float((x * x).sum())  # not np.dot: BLAS threads cost milliseconds on a busy machine
    if var <= 0 or not math.isfinite(var):
        return []
    size = 1 << (n + top + 2).bit_length()  # zero padding past the largest lag: no wrap-around
    spec = np.fft.rfft(x, size)
    acf = np.fft.irfft(spec.real ** 2 + spec.imag ** 2, size)[: top + 2] / var
    # unbiased: a lag of L has n - L pairs
    acf = acf * n / np.maximum(n - np.arange(len(acf)), 1)
    lags = np.arange(MIN_PERIOD, top + 1)
    a = acf[lags]
    peaks = lags[(a >= MIN_AUTOCORRELATION) & (a >= acf[lags - 1]) & (a >= acf[lags + 1])]
    # a rhythm rises well above the trough before it (half a period back); smooth noise does not
    prominent = [lag for lag in peaks if acf[lag] - acf[lag // 2: lag].min() >= MIN_PROMINENCE]
    peaks = np.asarray(prominent, dtype=int)
    if len(peaks) == 0:
        return []
    # the fundamental, not its multiples: in lag order, among peaks close to the strongest
    strong = peaks[acf[peaks] >= max(MIN_AUTOCORRELATION, 0.5 * float(acf[peaks].max()))]
    kept: list[int] = []
    for lag in strong:
        if any(lag % k <= 1 or k - lag % k <= 1 for k in kept):
            continue  # a multiple of a shorter period already kept
        kept.append(int(lag))
    kept.sort(key=lambda lag_: -acf[lag_])
    return kept[:limit]


def _lag_matrix(
    values: np.ndarray,
    targets: np.ndarray,
    origin: pd.Timestamp,
    pattern: Pattern,
    timezone: str,
    observed_until: np.ndarray,
    drift: int,
) -> np.ndarray:
    """``values`` one to ``pattern.cycles`` periods before each target: shape ``(cycles, targets)``,
    ``-inf`` where unreadable.

    ``targets`` are minute positions relative to ``origin`` (the history's first minute);
    ``observed_until[i]`` is the exclusive end of what may be read for target ``i`` (``drift`` minutes
    of margin: the values are drift-widened).
    """
    cycles = pattern.cycles
    lagged = np.full((cycles, len(targets)), -np.inf)
    offsets_t = None
    if pattern.wall_clock and timezone not in ("UTC", "Etc/UTC"):
        times = origin + pd.to_timedelta(targets, unit="min")
        offsets_t = _utc_offsets(pd.DatetimeIndex(times), timezone)
    days_back = None
    if pattern.workdays:
        # local weekday (Monday 0) of each target in integer minutes: 1970-01-01 was a Thursday
        local = origin.value // 60_000_000_000 + targets + (0 if offsets_t is None else offsets_t)
        days_back = _same_kind_days(cycles)[(local // DAY_MINUTES + 3) % 7]
    n = len(values)
    if offsets_t is None and days_back is None and len(targets) and targets[-1] - targets[0] == len(targets) - 1:
        # contiguous targets at a fixed lag: each cycle is a slice (the backtest's common case)
        for k in range(1, cycles + 1):
            a = int(targets[0]) - k * pattern.period_minutes
            ok = (np.arange(a, a + len(targets)) + drift < observed_until)
            lo, hi = max(0, -a), max(0, min(len(targets), n - a))
            if lo < hi:
                row = lagged[k - 1, lo:hi]
                row[:] = values[a + lo: a + hi]
                row[~ok[lo:hi]] = -np.inf
        return lagged
    for k in range(1, cycles + 1):
        src = targets - (k * pattern.period_minutes if days_back is None else days_back[:, k - 1] * DAY_MINUTES)
        if offsets_t is not None:
            src_times = origin + pd.to_timedelta(src, unit="min")
            src = src + (offsets_t - _utc_offsets(pd.DatetimeIndex(src_times), timezone))
        ok = (src >= 0) & (src < n) & (src + drift < observed_until)
        lagged[k - 1] = np.where(ok, values.take(src, mode="clip"), -np.inf)
    return lagged


def _evidence(lagged: np.ndarray, breached: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The level at least ``EVIDENCE_CYCLES`` (2) of the lagged cycles reached (NaN where nothing is
    readable), and whether it is worth acting on: the backstop breached at that minute of the cycle
    in at least as many of them.

    With fewer readable cycles than ``EVIDENCE_CYCLES`` (only in the backtest, near the history's
    start) one cycle is taken as evidence.
    """
    cycles = lagged.shape[0]
    readable = np.isfinite(lagged).sum(axis=0)
    need = np.minimum(np.maximum(readable, 1), EVIDENCE_CYCLES)
    top = lagged.max(axis=0)
    below = np.where(lagged < top, lagged, -np.inf).max(axis=0)
    second = np.where((lagged == top).sum(axis=0) >= EVIDENCE_CYCLES, top, below)
    out = np.where(readable >= EVIDENCE_CYCLES, second, top) if cycles > 1 else top
    out[readable == 0] = np.nan
    return out, (breached > 0).sum(axis=0) >= need


def _acted(level: np.ndarray, act: np.ndarray) -> np.ndarray:
    """What the planner prepares for: the level where acting pays, 0 elsewhere."""
    return np.where(act & np.isfinite(level), level, 0.0)


def _instances(x: np.ndarray, cost: CostModel) -> np.ndarray:
    return np.ceil(x / cost.target_invocations_per_instance - 1e-9)


@dataclass
class _Backtest:
    """The backstop replayed over the whole history; the newest ``span`` minutes are scored."""

    targets: np.ndarray
    need: np.ndarray  # instances the demand needed each scored minute at saturation (fewer breach it)
    backstop: np.ndarray  # instances the backstop alone had each scored minute
    backstop_breaches: int
    breach: np.ndarray  # each minute of history: the backstop breached then (0/1)
    cost: CostModel
    active_from: int = 0  # the first scored minute with demand (position in the span)
    _widened: dict[int, np.ndarray] = field(default_factory=dict)

    def breached(self, drift: int) -> np.ndarray:
        """Each minute of history: the backstop breached within ±(drift + 1) min (0/1)."""
        if drift not in self._widened:
            self._widened[drift] = _rolling_max(self.breach, drift + 1)
        return self._widened[drift]

    def score(self, pred: np.ndarray) -> tuple[float, int, np.ndarray, np.ndarray]:
        """(net instance-minutes saved, breach minutes prevented, each scored minute's net, each scored
        minute: a backstop breach prevented).

        A minute's net is ``breach_minute_cost`` if acting prevented a backstop breach there, minus
        the instance-minutes paid above the backstop there."""
        pred = np.where(np.isnan(pred), 0.0, pred)
        prevented = self.breaching & (self.need <= _instances(pred, self.cost))
        # a raise is paid from the tick that sees the spike in its lookahead until the spike passes
        paid = np.maximum(self.backstop, _instances(_leading_max(pred, self.cost.lookahead_minutes), self.cost))
        net = prevented * self.cost.breach_minute_cost - (paid - self.backstop)
        return float(net.sum()), int(prevented.sum()), net, prevented

    @property
    def breaching(self) -> np.ndarray:
        """Each scored minute: the backstop alone breaches."""
        return self.need > self.backstop

    def preventable(self, period: int, a: int = 0, b: int | None = None) -> int:
        """The backstop's breach minutes in scored minutes ``[a, b)`` that a rhythm of ``period``
        minutes could have prevented. When the traffic starts inside the span (a young endpoint: the
        Lambda's 14-day window is zero-filled before its first invocation), those in its first
        :data:`EVIDENCE_CYCLES` cycles are not: there is no level two cycles reached to repeat, and
        the backstop breaches as traffic jumps from zero. Counted, they would judge a young
        endpoint's rhythm unconvincing where the same minutes without the zeros convince."""
        first = self.active_from + EVIDENCE_CYCLES * period if self.active_from > 0 else 0
        return int(self.breaching[max(a, first):b].sum())

    def convincing(self, net: float, prevented: int, breaches: int) -> bool:
        """Whether acting nets more than nothing and looks like a rhythm rather than a fit to noise: it
        prevents at least :data:`RHYTHM_COVERAGE` of the backstop's ``breaches`` (those it could have
        prevented: :meth:`preventable`), or the breach minutes it prevents (worth
        ``breach_minute_cost`` each) are worth at least ``min_return`` times the instance-minutes it
        spends for them (``prevented x cost - net``)."""
        value = prevented * self.cost.breach_minute_cost
        return net > 0 and prevented > 0 and (
            prevented >= RHYTHM_COVERAGE * breaches or value >= self.cost.min_return * (value - net))

    def convincing_in_both_halves(self, net: np.ndarray, prevented: np.ndarray, period: int) -> bool:
        """:meth:`convincing` in the older and in the newer half of the span's traffic (from its first
        minute with demand: zero-filled minutes before an endpoint's first invocation judge nothing),
        each half holding at least two ``period``, on the per-minute ``net`` and ``prevented`` of
        :meth:`score`: a rhythm convinces in both, a lucky fit to noise (one of many periods and
        drifts, paid for by a few bursts) seldom does."""
        start = self.active_from
        half = (len(net) - start) // 2
        if half < MIN_CYCLES * period:
            return False
        return all(self.convincing(float(net[a:b].sum()), int(prevented[a:b].sum()), self.preventable(period, a, b))
                   for a, b in ((start, start + half), (start + half, len(net))))


def _backtest(y: np.ndarray, span: int, cost: CostModel) -> _Backtest:
    n = len(y)
    need = np.ceil(y / (cost.target_invocations_per_instance * cost.saturation_ratio) - 1e-9)
    # target tracking scales out on 3 datapoints in a row above target: it sees sustained demand
    sustained = -_trailing_max(-y, cost.backstop_datapoints)
    seen = _trailing_max(sustained, cost.backstop_hold_minutes)
    lag = cost.backstop_reaction_minutes
    # before the history starts nothing is known: the backstop is taken to be at the baseline
    had = np.concatenate((np.zeros(min(lag, n)), seen[: max(0, n - lag)]))
    backstop = np.maximum(cost.baseline_instances, _instances(had, cost))
    breach = (need > backstop).astype(float)
    targets = np.arange(n - span, n)
    active = np.flatnonzero(y[targets] > 0)
    return _Backtest(targets, need[targets], backstop[targets], int(breach[targets].sum()), breach, cost,
                     int(active[0]) if len(active) else span)


@dataclass(frozen=True)
class _Selection:
    """What the cost-aware backtest chose: ``chosen`` None when nothing is worth acting on."""

    chosen: tuple[Pattern, ...] | None
    skill: dict[str, float]
    periods: tuple[int, ...]
    span: int
    reason: str = ""
    judged: bool = False  # the eligible candidates were backtested (see Forecast.judged)


_MEMO: OrderedDict[tuple, Any] = OrderedDict()
_MEMO_SIZE = 64


def _memo(key: tuple, compute: Callable[[], Any]) -> Any:
    """A small LRU memo for pure results keyed on their inputs (the data by digest)."""
    if key in _MEMO:
        _MEMO.move_to_end(key)
        return _MEMO[key]
    value = compute()
    _MEMO[key] = value
    if len(_MEMO) > _MEMO_SIZE:
        _MEMO.popitem(last=False)
    return value


def _selection(
    y: np.ndarray, origin: pd.Timestamp, span_minutes: int, active_minutes: int, cost: CostModel, drift: int,
    timezone: str,
) -> _Selection:
    """Candidate periods, eligibility and the cost-aware backtest of each on ``y`` (whole hours from
    ``origin``); memoised on the data.

    Eligibility: the history's calendar span ``span_minutes`` reaches the period's
    :attr:`Pattern.min_span_minutes` (idle minutes count), and traffic began (``active_minutes``
    before the end) no later than one period into that span: the zero-filled window before an
    endpoint's first invocation proves nothing, while a window that starts on an idle minute of an
    endpoint's life loses at most part of one cycle.
    """
    # keyed on the minutes from the first with traffic (all zeros before it): a young endpoint's window
    # is mostly the zeros the reader fills in, hashed for nothing at every tick
    first = int(np.argmax(y > 0)) if len(y) else 0
    data_key = (origin.value, len(y), first, hashlib.blake2b(y[first:].tobytes(), digest_size=16).digest())
    # discovered from the traffic only: a young endpoint's zero-filled minutes before it would swamp the
    # autocorrelation of its sub-hour rhythms (as the day-long swell would, step 1)
    found = _memo(("periods", *data_key), lambda: tuple(discover_periods(y[first:])))
    standard = {p.period_minutes for p in PATTERNS}
    discovered = [Pattern(_period_name(lag), lag, cycles=4, wall_clock=False, discovered=True)
                  for lag in found if all(abs(lag - s) > 1 for s in standard)]
    candidates = [*PATTERNS, *discovered]
    periods = tuple(p.period_minutes for p in candidates)
    eligible = tuple(p for p in candidates if span_minutes >= p.min_span_minutes
                     and active_minutes >= p.min_span_minutes - p.period_minutes)
    if not eligible:
        shortest = min(candidates, key=lambda p: p.min_span_minutes)
        return _Selection(None, {}, periods, 0, (
            f"too little history: {_duration(min(span_minutes, active_minutes))} of traffic, the shortest "
            f"candidate ({shortest.name}) needs "
            f"{_duration(shortest.min_span_minutes)} (six cycles, at most 24 h, at least two; traffic in all "
            "but the first)"))
    key = ("select", *data_key, eligible, cost, drift, timezone)
    return _memo(key, lambda: _backtest_patterns(y, first, origin, eligible, periods, cost, drift, timezone))


def _backtest_patterns(
    y: np.ndarray, first: int, origin: pd.Timestamp, eligible: tuple[Pattern, ...], periods: tuple[int, ...],
    cost: CostModel, drift: int, timezone: str,
) -> _Selection:
    n = len(y)
    shortest = min(p.period_minutes for p in eligible)
    if n <= shortest:
        return _Selection(None, {}, periods, 0, "too little history to backtest: less than one cycle of whole hours")
    longest = max(p.period_minutes for p in eligible)
    span = min(max(SKILL_MINUTES, longest), n - shortest)
    # a young endpoint (its window zero-filled before its first invocation, at ``first``) is scored from
    # one cycle into its traffic, as a history that starts with the traffic is (same minutes, same choice)
    if first > 0:
        span = max(1, min(span, n - first - shortest))
    bt = _backtest(y, span, cost)
    observed_until = bt.targets - cost.lookahead_minutes
    preds: dict[Pattern, np.ndarray] = {}
    skill: dict[str, float] = {"backstop_breach_minutes": float(bt.backstop_breaches)}
    scored: list[tuple[float, int, Pattern]] = []
    for d in sorted({*range(drift + 1), *(c for c in DRIFT_CANDIDATES if c > drift)}):
        ymax = _rolling_max(y, d)
        for p in eligible:
            if d > drift and d > p.period_minutes // MAX_DRIFT_FRACTION:
                continue  # a start that wanders over a quarter of the period is not this rhythm
            pd_ = replace(p, drift_minutes=d)
            preds[pd_] = _acted(*_evidence(
                _lag_matrix(ymax, bt.targets, origin, p, timezone, observed_until, d),
                _lag_matrix(bt.breached(d), bt.targets, origin, p, timezone, observed_until, d + 1)))
            net, prevented, per_minute, prevented_at = bt.score(preds[pd_])
            skill[p.name] = max(skill.get(p.name, -math.inf), round(net, 1))
            # a wider drift is a further hypothesis, and a sub-daily rhythm one of many (hourly and the
            # discovered periods, each at several drifts): each must convince in both halves of the span
            out_of_sample = d > drift or p.period_minutes < DAY_MINUTES
            if bt.convincing(net, prevented, bt.preventable(p.period_minutes)) and (
                    not out_of_sample or bt.convincing_in_both_halves(per_minute, prevented_at, p.period_minutes)):
                scored.append((net, prevented, pd_))
    # greedy combination: each further pattern (at any drift) must raise the combination's net, and
    # the combination must still be convincing
    chosen: list[Pattern] = []
    combined: np.ndarray | None = None
    best_net = 0.0
    for _net, _prev, p in sorted(scored, key=lambda s: (-s[0], s[2].drift_minutes or 0)):
        trial = preds[p] if combined is None else np.fmax(combined, preds[p])
        net, prevented, _, _ = bt.score(trial)
        shortest = min(q.period_minutes for q in (*chosen, p))
        if net > best_net and bt.convincing(net, prevented, bt.preventable(shortest)):
            chosen, combined, best_net = [*chosen, p], trial, net
    if not chosen:
        best = max(eligible, key=lambda p: skill[p.name])
        unconvincing = (
            f", but not like a rhythm: it prevented less than {RHYTHM_COVERAGE:.0%} of the backstop's breach "
            f"minutes at less than {cost.min_return:g}x what it spent, or not in both halves of the span "
            "(a fit to bursts at random times)") if skill[best.name] > 0 else ""
        return _Selection(None, skill, periods, span, (
            f"no pattern worth acting on: acting on the best ({best.name}) would have saved "
            f"{skill[best.name]:,.0f} instance-minutes net over the last {span / 1440:.1f} days (a breach minute = "
            f"{cost.breach_minute_cost:g} instance-minutes; backstop alone: {bt.backstop_breaches} breach minutes)"
            f"{unconvincing}"), judged=True)
    return _Selection(tuple(chosen), skill, periods, span, judged=True)


def forecast(
    history: pd.Series,
    start: datetime | pd.Timestamp,
    end: datetime | pd.Timestamp,
    *,
    drift_minutes: int = 1,
    timezone: str = "UTC",
    cost: CostModel | None = None,
) -> Forecast:
    """Forecast invocations per minute over ``[start, end)`` from a per-minute history.

    Args:
        history: per-minute UTC series of invocations (``prescaler.history`` shape), complete
            minutes only, at most 14 days; every minute in it is data (zero = idle). Its end may be
            before ``start`` (publication delay): the minutes in between are forecast too.
        start, end: the forecast range (whole UTC minutes; ``end`` exclusive).
        drift_minutes: the spike-start jitter (minutes either side) each past minute may be widened
            by; the backtest chooses per pattern from 0 to this, or a wider drift that pays (step 5).
        timezone: IANA name of the time zone whose wall clock daily and weekly jobs follow.
        cost: the asymmetric loss the backtest judges patterns by (default :class:`CostModel`).

    Returns:
        A ``Forecast``. When ``usable`` is False its values are the last observed minute repeated
        (information only: the planner will not raise on it).

    Raises:
        ValueError: ``end`` is not after ``start``, or ``history`` is not per-minute.
    """
    cost = cost or CostModel()
    lo, hi = to_utc(start).floor("min"), to_utc(end).floor("min")
    if hi <= lo:
        raise ValueError(f"forecast range is empty: {lo} .. {hi}")
    out_index = pd.date_range(lo, hi, freq="min", inclusive="left", name="minute")
    history = as_minute_series(history)
    y = history.to_numpy(dtype=float)
    n = len(y)

    def unusable(reason: str, skill: dict[str, float] | None = None, periods: tuple[int, ...] = (),
                 judged: bool = False) -> Forecast:
        level = float(y[-1]) if n and np.isfinite(y[-1]) and y[-1] >= 0 else 0.0
        values = pd.Series(np.full(len(out_index), level), index=out_index, name=SERIES_NAME)
        return Forecast(lo, hi, values, "none", False, level, lo, hi, n, reason, skill or {}, periods, judged=judged)

    if n and not np.isfinite(y).all():
        bad = int((~np.isfinite(y)).sum())
        return unusable(f"unreadable data: {bad} minute(s) of history are not finite numbers")
    if n and (y < 0).any():
        return unusable("unreadable data: negative invocation counts in the history")
    if n == 0 or not (y > 0).any():
        return unusable("no data: the history window holds no invocations")
    first = int(np.flatnonzero(y > 0)[0])
    if n - first > 1 and float(y[first:].min()) == float(y[first:].max()):
        # live traffic never repeats one count every minute: a stuck or filled metric is not evidence
        return unusable(f"flat history: every minute since traffic began holds {y[-1]:,.6g} invocations "
                        "(a stuck or filled metric?); there is nothing to judge a pattern on")

    # Patterns are chosen from whole hours of history (its newest whole hour back to an hour
    # boundary), so that the choice is the same for every tick of an hour and is computed once
    # (memoised on the data); the forecast values below use every minute.
    sel_end = max(0, n - (history.index[-1] + MINUTE).minute)
    sel_start = sel_end % 60
    active = n - first
    sel = _selection(y[sel_start:sel_end], history.index[0] + sel_start * MINUTE, n, active, cost, drift_minutes,
                     timezone)
    # (The backtest's span never counts the zero-filled minutes before a young endpoint's first
    # invocation: "over 0.2 days" is how much traffic judged the choice.)
    if sel.chosen is None:
        return unusable(sel.reason, sel.skill, sel.periods, sel.judged)
    chosen, skill, span, periods = sel.chosen, sel.skill, sel.span, sel.periods
    origin = history.index[0]
    bt = _backtest(y, 0, cost)
    targets = (lo - origin) // MINUTE + np.arange(len(out_index), dtype=np.int64)
    observed = np.full(len(targets), n)
    ymax: dict[int, np.ndarray] = {}
    evidence: dict[Pattern, tuple[np.ndarray, np.ndarray]] = {}
    for p in chosen:
        d = drift_minutes if p.drift_minutes is None else p.drift_minutes
        if d not in ymax:
            ymax[d] = _rolling_max(y, d)
        evidence[p] = _evidence(_lag_matrix(ymax[d], targets, origin, p, timezone, observed, d),
                                _lag_matrix(bt.breached(d), targets, origin, p, timezone, observed, d + 1))
    votes = {p: level for p, (level, _act) in evidence.items()}
    pred = np.fmax.reduce(list(votes.values()))
    pred = np.where(np.isnan(pred), float(y[-1]), pred)
    values = pd.Series(pred, index=out_index, name=SERIES_NAME)
    prepare = pd.Series(np.fmax.reduce([_acted(*e) for e in evidence.values()]), index=out_index, name=SERIES_NAME)
    peak, w_start, w_end = _peak_window(values)
    # Named after the shortest cycle that forecasts (nearly) this peak: the simplest explanation.
    by_period = sorted(chosen, key=lambda p: p.period_minutes)
    best = next((p for p in by_period if np.nanmax(votes[p], initial=-np.inf) >= 0.95 * peak), by_period[0])
    others = [f"{p.name} (±{p.drift_minutes} min)" for p in chosen if p is not best]
    reason = (
        f"{best.name} pattern ({best.cycles} cycles, drift ±{best.drift_minutes} min; backtest saves "
        f"{skill[best.name]:,.0f} instance-minutes net over {span / 1440:.1f} days"
        f"{'; also ' + ', '.join(others) if others else ''}): "
        f"peak {peak:,.0f} invocations/min expected {w_start:%H:%M}-{w_end:%H:%M} UTC"
    )
    return Forecast(lo, hi, values, best.name, True, peak, w_start, w_end, n, reason, skill, periods,
                    prepare=prepare, judged=True)


def _peak_window(values: pd.Series) -> tuple[float, pd.Timestamp, pd.Timestamp]:
    """The peak and the run of minutes around it within 90% of it (end exclusive)."""
    pred = values.to_numpy()
    peak_at = int(np.argmax(pred))
    peak = float(pred[peak_at])
    near = pred >= 0.9 * peak
    a = peak_at
    while a > 0 and near[a - 1]:
        a -= 1
    b = peak_at
    while b + 1 < len(pred) and near[b + 1]:
        b += 1
    return peak, values.index[a], values.index[b] + MINUTE


def with_events(fc: Forecast, events: Sequence[KnownEventLike], active_since: pd.Timestamp | None = None) -> Forecast:
    """``fc`` with declared events laid over it: each minute is the larger of the forecast and the
    expected peak of every event covering it.

    An event in the range makes the forecast usable. Over an unusable forecast the result is
    ``calendar_only`` (its values are the events' peaks, 0 outside them), and stays so while an
    event ended after ``active_since`` (default: the range start), so that the raise an event
    caused is relaxed after it like any forecast spike's (down to what observed demand needs).
    """
    index = fc.values.index
    since = fc.start if active_since is None else active_since
    over: np.ndarray = np.zeros(len(index))
    names: list[str] = []
    recent = False
    for ev in events:
        inside = (index >= ev.start) & (index < ev.end)
        if inside.any():
            over = np.where(inside, np.maximum(over, ev.peak_invocations_per_minute), over)
            names.append(ev.name)
        elif ev.end > since and ev.start < fc.end:
            recent = True
    if not names and (fc.usable or not recent):
        return fc
    base = fc.values.to_numpy() if fc.usable else np.zeros(len(index))
    prepared = fc.prepared.to_numpy() if fc.usable else np.zeros(len(index))
    values = pd.Series(np.maximum(base, over), index=index, name=SERIES_NAME)
    prepare = pd.Series(np.maximum(prepared, over), index=index, name=SERIES_NAME)
    peak, w_start, w_end = _peak_window(values)
    event_peak = float(over.max())
    pattern = fc.pattern if fc.usable and float(base.max()) >= event_peak else "calendar"
    declared = (f"known event {', '.join(names)}: {event_peak:,.0f} invocations/min declared" if names
                else "a known event has ended")
    reason = f"{declared}{'; ' + fc.reason if fc.usable else ' (no usable pattern: ' + fc.reason + ')'}"
    return replace(fc, values=values, pattern=pattern, usable=True, peak_invocations_per_minute=peak,
                   window_start=w_start, window_end=w_end, reason=reason, calendar_only=not fc.usable,
                   prepare=prepare)


class KnownEventLike(Protocol):
    """What :func:`with_events` reads of an event (``prescaler.events.KnownEvent``)."""

    @property
    def name(self) -> str: ...
    @property
    def start(self) -> pd.Timestamp: ...
    @property
    def end(self) -> pd.Timestamp: ...
    @property
    def peak_invocations_per_minute(self) -> float: ...
