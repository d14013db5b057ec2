"""Plan: forecast + scalable-target state + settings -> a decision (raise, hold or relax).

The one place where capacity is decided. The prescale and relax Lambdas and the simulator's
``predictive`` policy all call :func:`decide` (or :func:`plan` with a forecast they made), so a
backtest measures the code that runs in production.

Invariants (pinned by ``tests/unit/test_plan.py``):
- MinCapacity stays within ``[baseline, min(prescale cap, MaxCapacity)]``; a MinCapacity above
  MaxCapacity is never proposed; MaxCapacity and SuspendedState are not part of a decision.
- ``raise`` only increases MinCapacity, ``relax`` only decreases it.
- An unusable forecast never raises. One that was not judged (missing, short, unreadable or flat
  history: ``Forecast.judged`` False) never relaxes either; only the watchdog relaxes a raise held
  longer than ``max_hold_minutes``, and after it fires no forecast-driven raise is made for
  ``watchdog_cooloff_minutes``.
- A judged forecast with no pattern worth acting on (backtested, the pattern that raised is gone)
  relaxes a raise the pre-scaler owns to what demand needs now (the last ``scale_in_low_minutes``
  minutes, never below the baseline), with fresh, readable newest minutes only, and makes no prompt
  scale-in: target tracking removes the instances after its own 15 low datapoints, as the backstop
  alone would.
- Stale history (its newest minute older than ``now`` minus the publication delay and a minute of
  slack) never lowers anything.
- A MinCapacity the pre-scaler did not set (an operator's change) is never relaxed.
- A relax never goes below what demand needs now: what the last ``scale_in_low_minutes`` complete
  minutes of demand needed or, only when those minutes needed exactly the instances a learned pattern
  expected there (the spike under way is the forecast's), what that forecast needs over the minute
  before now and the lead time + horizon (the forecast's fall, 3 minutes before CloudWatch shows it).
- Prompt scale-in never asks for fewer instances than MinCapacity, and only after demand has been
  low for ``scale_in_low_minutes`` complete minutes with no spike forecast in lead time + horizon
  (the forecast needs no more than the new MinCapacity); only while the pre-scaler owns a raise, and
  never more instances than that raise held in (what target tracking added is left to it).
- A raise is made once per spike, to the spike's peak (:func:`spike_peak`), not in steps.
- Declared events (``known_events``) are forecast windows: raised for a lead time ahead, relaxed
  after, with or without a usable pattern.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from prescaler.events import KnownEvent
from prescaler.forecast import CostModel, Forecast, finite_or_none, forecast, with_events
from prescaler.history import MAX_INVOCATIONS_PER_MINUTE, MINUTE, as_minute_series, to_utc

Action = Literal["raise", "hold", "relax"]

#: The most instances (or copies) the pre-scaler manages: the Lambda's PRESCALE_MAX_CAPACITY and
#: BASELINE_MIN_CAPACITY accept at most this (prescaler.settings).
MAX_CAPACITY = 1000
#: The longest lead time (seconds): a spike is raised for at most an hour ahead.
MAX_LEAD_TIME_S = 3600


class PlannerSettings(BaseModel):
    """Knobs of the decision core (units in the names)."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    target_invocations_per_instance: float = Field(
        2400.0, gt=0, le=MAX_INVOCATIONS_PER_MINUTE,
        description="Target tracking target: invocations per instance per minute (at most the most invocations "
                    "a minute of history may hold, history.MAX_INVOCATIONS_PER_MINUTE).")
    headroom: float = Field(0.0, ge=0, le=4, description="Extra capacity on the forecast peak (0.1 = 10%).")
    lead_time_s: int = Field(
        300, ge=0, le=MAX_LEAD_TIME_S,
        description=("Seconds from a raise to its instances in service (learned: the p90 of past scale-outs; "
                     "the default covers SageMaker's 2-4 min plus a minute's margin until one is measured)."))
    horizon_minutes: int = Field(
        1, ge=1, le=120, description=("Minutes beyond the lead time the forecast looks ahead; the first is the "
                                      "tick between two runs (1: a raise is in service just as its spike starts)."))
    baseline_min_capacity: int = Field(
        2, ge=0, le=MAX_CAPACITY,
        description="MinCapacity outside spikes (instances, or copies of an inference component; "
        "0 only with scale_to_zero).")
    scale_to_zero: bool = Field(
        False, description="The operator allows MinCapacity 0 (an inference component's scale to zero).")
    prescale_max_capacity: int = Field(
        8, ge=1, le=MAX_CAPACITY, description="Highest MinCapacity the pre-scaler sets (at most MAX_CAPACITY).")
    prompt_scale_in: bool = Field(True, description="Lower the desired instance count after a spike.")
    scale_in_low_minutes: int = Field(
        1, ge=1, le=60,
        description=("Complete minutes of low demand before prompt scale-in. One is enough: the scale-in is "
                     "also floored by the most the forecast expects over lead time + horizon + 30 min, so a "
                     "second minute would only re-confirm, at the raise's instances x one minute, a fall "
                     "CloudWatch already shows 3 minutes late."))
    max_hold_minutes: int = Field(
        120, ge=1, description="Watchdog: a raise older than this is relaxed whatever the forecast says.")
    watchdog_cooloff_minutes: int = Field(
        60, ge=0, description="After the watchdog fires, no forecast-driven raise for this long.")
    drift_minutes: int = Field(
        1, ge=0, le=15, description=("The most spike-start jitter the forecast covers (min); the forecaster's "
                                     "backtest picks 0 to this many, whichever saves most."))
    timezone: str = Field("UTC", description="IANA time zone whose wall clock daily jobs follow.")
    breach_minute_cost: float = Field(
        30.0, gt=0, le=100000,
        description=("Instance-minutes one SLO breach minute is worth (price of a breach minute / price of an "
                     "instance-minute): a pattern is acted on only when the breach minutes it prevents in the "
                     "backtest are worth more than the instance-minutes it spends early."))
    known_events: tuple[KnownEvent, ...] = Field(
        (), description="Declared windows with an expected peak, treated like forecast windows (prescaler.events).")

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA time zone {value!r} (e.g. UTC, Europe/Berlin, America/New_York)") from exc
        return value

    @model_validator(mode="after")
    def _zero_only_when_allowed(self) -> PlannerSettings:
        if self.baseline_min_capacity == 0 and not self.scale_to_zero:
            raise ValueError("baseline_min_capacity 0 needs scale_to_zero (an inference component the operator "
                             "lets scale to zero); an endpoint variant keeps at least 1 instance")
        return self

    @model_validator(mode="after")
    def _cap_above_baseline(self) -> PlannerSettings:
        if self.prescale_max_capacity < self.baseline_min_capacity:
            raise ValueError(
                f"prescale_max_capacity ({self.prescale_max_capacity}) is below "
                f"baseline_min_capacity ({self.baseline_min_capacity})")
        return self

    @property
    def lookahead_minutes(self) -> int:
        """Minutes of forecast each tick needs: lead time (rounded up) + horizon. A spike starting at
        minute S is first seen at tick ``S - lookahead + 1``; with horizon 1 that is
        ``S - ceil(lead time / 60)``, the last tick whose raise is in service by S."""
        return math.ceil(self.lead_time_s / 60) + self.horizon_minutes

    def cost_model(self) -> CostModel:
        """The forecaster's backtest loss in this endpoint's units (target, baseline, lead time)."""
        return CostModel(
            target_invocations_per_instance=self.target_invocations_per_instance / (1 + self.headroom),
            baseline_instances=self.baseline_min_capacity,
            breach_minute_cost=self.breach_minute_cost,
            lookahead_minutes=self.lookahead_minutes,
        )


@dataclass(frozen=True)
class TargetState:
    """What Application Auto Scaling and SageMaker say about the variant now.

    Attributes:
        min_capacity / max_capacity: the scalable target's range (instances).
        current_instances: the variant's desired instance count.
        owned_min_capacity: the MinCapacity the pre-scaler last set and still owns (from the ledger),
            or None when it owns nothing.
        owned_since: when that raise was made (UTC), for the watchdog (None: the watchdog cannot
            time it, so the adapter must always record it with a raise).
        watchdog_at: when the watchdog last relaxed a raise (UTC, from the ledger), or None.
        released_min_capacity: the MinCapacity of a raise of ours that our own relax lowered within
            the last :data:`RELEASED_SCALE_IN_MINUTES` (from the ledger), or None. Its instances may
            still run (a relax killed before its prompt scale-in, or one whose scale-in was deferred):
            prompt scale-in may still remove them, and only them.
    """

    min_capacity: int
    max_capacity: int
    current_instances: int
    owned_min_capacity: int | None = None
    owned_since: pd.Timestamp | None = None
    watchdog_at: pd.Timestamp | None = None
    released_min_capacity: int | None = None


#: How long after our own relax the instances its raise held in still count as ours for prompt
#: scale-in: target tracking's own scale-in needs 15 one-minute datapoints below 90% of target (AWS).
RELEASED_SCALE_IN_MINUTES = 15


#: Minutes the history's newest minute may lag ``now`` before it is stale: the 2 incomplete minutes
#: CloudWatch withholds, the minute in progress, and one of slack.
STALE_AFTER_MINUTES = 4


@dataclass(frozen=True)
class Decision:
    """What to do, why, and the numbers behind it.

    ``min_capacity`` is the MinCapacity after the decision (unchanged on ``hold``);
    ``desired_instances`` is a prompt scale-in target for the variant, or None.
    """

    action: Action
    min_capacity: int
    previous_min_capacity: int
    reason: str
    desired_instances: int | None = None
    forecast: Forecast | None = None
    numbers: dict[str, float | int | str | None] = field(default_factory=dict)
    watchdog_fired: bool = False  # the ledger records it: no forecast-driven raise during the cool-off

    @property
    def changes_min_capacity(self) -> bool:
        return self.min_capacity != self.previous_min_capacity

    def to_dict(self) -> dict:
        """JSON-ready form (the CLI's and the handlers' ``decision`` object)."""
        return {
            "action": self.action,
            "min_capacity": self.min_capacity,
            "previous_min_capacity": self.previous_min_capacity,
            "desired_instances": self.desired_instances,
            "reason": self.reason,
            "watchdog_fired": self.watchdog_fired,
            "numbers": {k: finite_or_none(v) if isinstance(v, float) else v for k, v in self.numbers.items()},
        }


#: Minutes beyond lead time + horizon that :func:`decide` forecasts: a spike that starts in the
#: lookahead is raised for once, to its own peak, even when the peak comes later than the lookahead.
SPIKE_EXTENT_MINUTES = 30


def spike_peak(fc: Forecast, settings: PlannerSettings) -> tuple[float, pd.Timestamp, pd.Timestamp]:
    """Peak (invocations per minute) and window of what the next lead time + horizon must prepare for.

    The largest forecast minute in the lookahead; when the forecast is rising at the lookahead's end
    (a spike that has started and not peaked: its last minute needs more instances than its first),
    the run continues while the forecast stays at least at that level (or the forecast ends), and
    the whole run's peak counts: raise once, to what the spike needs, rather than 2 -> 3 then 3 -> 6
    a minute later (the endpoint is ``Updating`` after the first change and refuses the second).
    """
    values = fc.prepared.to_numpy(dtype=float)
    if len(values) == 0:
        return 0.0, fc.start, fc.end
    head = min(settings.lookahead_minutes, len(values))
    per = settings.target_invocations_per_instance / (1 + settings.headroom)
    # what each minute needs above the baseline: minutes the baseline serves are not a spike under way
    with np.errstate(over="ignore"):  # an astronomic need is infinite, then capped at MaxCapacity
        need = np.maximum(np.ceil(np.round(values / per, 9)), settings.baseline_min_capacity)
    stop = head
    if need[head - 1] > need[:head].min():
        while stop < len(values) and need[stop] >= need[head - 1]:
            stop += 1
    part = values[:stop]
    at = int(np.argmax(part))
    peak = float(part[at])
    a, b = at, at
    while a > 0 and part[a - 1] >= 0.9 * peak:
        a -= 1
    while b + 1 < len(part) and part[b + 1] >= 0.9 * peak:
        b += 1
    index = fc.prepared.index
    return peak, index[a], index[b] + MINUTE


def _at_tick(settings: PlannerSettings, now: pd.Timestamp) -> PlannerSettings:
    """``settings`` for a tick that runs ``now``: a tick seconds after the minute is that much later
    to raise (its raise is in service lead time after ``now``, not after the minute), so the lead
    time counts those seconds (no more than the 3600 s a lead time may be)."""
    late_s = math.ceil(round((now - now.floor("min")).total_seconds(), 6))
    if late_s <= 0 or settings.lead_time_s >= 3600:
        return settings
    return settings.model_copy(update={"lead_time_s": min(3600, settings.lead_time_s + late_s)})


def instances_for(invocations_per_minute: float, settings: PlannerSettings) -> int:
    """Instances needed: ``ceil(invocations per minute x (1 + headroom) / target per instance)``."""
    need = invocations_per_minute * (1 + settings.headroom) / settings.target_invocations_per_instance
    if not math.isfinite(need):
        return sys.maxsize if need > 0 else 0  # astronomically large: the caller clamps to the cap
    return max(0, math.ceil(round(need, 9)))


def plan(
    fc: Forecast,
    history: pd.Series,
    state: TargetState,
    settings: PlannerSettings,
    now: datetime | pd.Timestamp,
    expected_recent: pd.Series | None = None,
) -> Decision:
    """Decide MinCapacity (and possibly a prompt scale-in) for one tick.

    Args:
        fc: forecast covering ``[now, now + lead time + horizon)``.
        history: the per-minute UTC series of observed invocations (complete minutes) the forecast
            was made from; its tail is the observed demand for prompt scale-in.
        state: the scalable target now.
        settings: planner settings.
        now: the tick's reference time (UTC).
        expected_recent: what the same pattern forecast (invocations per minute) for the newest
            ``scale_in_low_minutes`` minutes of ``history`` and the minutes after them up to ``now``
            (those CloudWatch does not show yet), or None. When the newest observed minutes needed
            exactly the instances it expected (the spike under way is the forecast's), a relax and a
            prompt scale-in follow the forecast's fall instead of waiting for CloudWatch to show it
            (3 minutes late); otherwise the observed minutes floor them.

    Returns:
        A ``Decision``. Never raises for odd data: it holds and says why.
    """
    now = to_utc(now)
    settings = _at_tick(settings, now)
    cap = min(settings.prescale_max_capacity, state.max_capacity)
    baseline = min(settings.baseline_min_capacity, cap)
    current = state.min_capacity
    owned = state.owned_min_capacity is not None and state.owned_min_capacity == current
    numbers: dict[str, float | int | str | None] = {
        "forecast_peak_invocations_per_minute": finite_or_none(fc.peak_invocations_per_minute),
        "pattern": fc.pattern,
        "baseline_min_capacity": baseline,
        "cap": cap,
        "current_min_capacity": current,
        "current_instances": state.current_instances,
        "max_capacity": state.max_capacity,
        "target_invocations_per_instance": settings.target_invocations_per_instance,
        "headroom": settings.headroom,
        "lead_time_s": settings.lead_time_s,
        "horizon_minutes": settings.horizon_minutes,
    }

    def decision(action: Action, new_min: int, reason: str, desired: int | None = None,
                 watchdog: bool = False) -> Decision:
        return Decision(action, new_min, current, reason, desired, fc, numbers, watchdog)

    # Data that cannot be trusted changes nothing (not even the watchdog's relax: `now` is in doubt).
    try:
        history = as_minute_series(history, check_steps=False)
    except ValueError as exc:
        return decision("hold", current, f"hold: unreadable history: {exc}")
    newest = history.index[-1] if len(history) else None
    numbers["history_newest_minute"] = newest.isoformat() if newest is not None else None
    if newest is not None and newest >= now.floor("min"):
        return decision("hold", current, f"hold: the history runs past now ({newest:%Y-%m-%d %H:%M} UTC >= "
                        f"{now:%Y-%m-%d %H:%M} UTC): a clock is wrong, nothing is changed")

    # The watchdog: a raise held too long is relaxed whatever the forecast says.
    if owned and current > baseline and state.owned_since is not None:
        held, needed_at = _held_minutes(history, to_utc(state.owned_since), current, settings, now)
        numbers["held_minutes"] = round(held, 1)
        if held > settings.max_hold_minutes:
            return decision("relax", baseline, f"watchdog: MinCapacity {current} has been held "
                            f"{held:.0f} min (> {settings.max_hold_minutes}) "
                            f"{'since demand last needed it' if needed_at else 'without demand needing it'}; "
                            f"back to baseline {baseline}", watchdog=True)

    if not fc.usable:
        if fc.judged and owned and current > baseline:
            return _relax_pattern_gone(fc, history, newest, current, baseline, settings, now, decision, numbers)
        return decision("hold", current, f"hold: {fc.reason}")
    if not math.isfinite(fc.peak_invocations_per_minute) or fc.peak_invocations_per_minute < 0:
        return decision("hold", current, f"hold: unreadable forecast peak {fc.peak_invocations_per_minute!r}")

    peak, w_start, w_end = spike_peak(fc, settings)
    numbers["spike_peak_invocations_per_minute"] = finite_or_none(peak)
    if not math.isfinite(peak) or peak < 0:
        return decision("hold", current, f"hold: unreadable forecast peak {peak!r}")
    required = min(cap, max(baseline, instances_for(peak, settings)))
    numbers["required_instances"] = required
    window = f"{w_start:%H:%M}-{w_end:%H:%M} UTC"

    capped = instances_for(peak, settings) > cap
    numbers["capped"] = capped  # a JSON boolean
    watchdog_at = to_utc(state.watchdog_at) if state.watchdog_at is not None else None
    if watchdog_at is not None and watchdog_at > now:
        watchdog_at = None  # a time in the future is a clock error, not a reason to block raises
    cooling = watchdog_at is not None and (now - watchdog_at) / MINUTE < settings.watchdog_cooloff_minutes
    if required > current and cooling:
        return decision("hold", current, (
            f"hold MinCapacity {current}: the watchdog relaxed a raise at {watchdog_at:%H:%M} UTC; "
            f"no forecast-driven raise for {settings.watchdog_cooloff_minutes} min (forecast needs {required})"))
    if required > current:
        return decision("raise", required, (
            f"raise MinCapacity {current} -> {required}: "
            f"{fc.reason.split(':')[0] if fc.pattern == 'calendar' else fc.pattern + ' pattern'} forecasts "
            f"{peak:,.0f} invocations/min in {window}; "
            f"{required} instances at {settings.target_invocations_per_instance:,.0f}/instance"
            f"{f' + {settings.headroom:.0%} headroom' if settings.headroom else ''}"
            f"{f' (capped at {cap})' if capped else ''}"
        ))

    new_min = current
    reason = f"hold MinCapacity {current}: forecast peak needs {required} in {window}"
    action: Action = "hold"
    tail, unfit = _newest_demand(history, newest, settings, now)
    if unfit:
        return decision("hold", current, f"{reason}; {unfit}: nothing is lowered")
    observed_need = instances_for(float(tail.max()), settings)
    demand_need, demand_says = _demand_need(tail, observed_need, expected_recent, fc, settings, numbers)
    if current > baseline and required < current:
        # never below what demand needs now: what the last minutes of it needed (the spike may still be
        # under way), or, when they were the forecast's spike, what the forecast needs from now on
        floor = max(required, min(current, demand_need))
        if owned and floor >= current:
            numbers["observed_required_instances"] = observed_need
            return decision("hold", current, (
                f"hold MinCapacity {current}: no spike forecast, but {demand_says}: relaxed as demand falls"))
        if owned:
            new_min, action = floor, "relax"
            reason = (f"relax MinCapacity {current} -> {floor}: no spike worth preparing for in the next "
                      f"{settings.lookahead_minutes} min (it would need {required}; {demand_says})")
        else:
            reason = (f"hold MinCapacity {current}: not set by the pre-scaler (an operator's change?), "
                      f"left alone")
            numbers["not_owned"] = True
            return decision("hold", current, reason)

    expected = float(fc.values.max()) if len(fc.values) else math.inf
    desired = _prompt_scale_in(history, state, settings, new_min, required, instances_for(expected, settings),
                               demand_need, numbers) if owned or state.released_min_capacity is not None else None
    if desired is not None:
        scale_in = (f"prompt scale-in {state.current_instances} -> {desired} instances: {demand_says} and no spike "
                    "is forecast")
        reason = f"{reason}; {scale_in}" if action == "relax" else f"relax: {scale_in} (MinCapacity {new_min})"
        action = "relax"
    return decision(action, new_min, reason, desired)


def _newest_demand(
    history: pd.Series, newest: pd.Timestamp | None, settings: PlannerSettings, now: pd.Timestamp,
) -> tuple[np.ndarray, str]:
    """The newest ``scale_in_low_minutes`` complete minutes of demand (invocations per minute) that a
    relax may be floored on, and ``""``; or why nothing may be lowered on them: the history is stale
    (its newest minute more than :data:`STALE_AFTER_MINUTES` before ``now``, or none) or those minutes
    are unreadable (not finite, or negative)."""
    if newest is None or (now.floor("min") - newest) / MINUTE > STALE_AFTER_MINUTES:
        return np.empty(0), f"history is stale (newest minute {newest.isoformat() if newest is not None else 'none'})"
    tail = history.to_numpy()[-settings.scale_in_low_minutes:]
    if len(tail) == 0 or not np.isfinite(tail).all() or (tail < 0).any():
        return tail, "the newest minutes are unreadable"
    return tail, ""


def _relax_pattern_gone(
    fc: Forecast,
    history: pd.Series,
    newest: pd.Timestamp | None,
    current: int,
    baseline: int,
    settings: PlannerSettings,
    now: pd.Timestamp,
    decision: Callable[[Action, int, str], Decision],
    numbers: dict[str, float | int | str | None],
) -> Decision:
    """A raise the pre-scaler owns, on a forecast that was judged (backtested on enough readable
    history) and found no pattern worth acting on: the pattern that raised it is gone, so MinCapacity
    returns to what demand needs now, as after a forecast spike: never below what the last
    ``scale_in_low_minutes`` complete minutes needed, never below the baseline. Stale or unreadable
    newest minutes hold.

    No prompt scale-in: with no pattern there is no forecast saying the demand is over, so the
    instances are left to target tracking's own scale-in (15 low datapoints), exactly what the
    backstop alone would keep."""
    numbers["pattern_gone"] = True
    gone = f"no pattern worth acting on any more ({fc.reason.removeprefix('no pattern worth acting on: ')})"
    tail, unfit = _newest_demand(history, newest, settings, now)
    if unfit:
        return decision("hold", current, f"hold MinCapacity {current}: {gone}; but {unfit}: nothing is lowered")
    need = instances_for(float(tail.max()), settings)
    numbers["observed_required_instances"] = need
    floor = max(baseline, min(current, need))
    says = f"the last {len(tail)} min of demand need {need}"
    if floor >= current:
        return decision("hold", current, f"hold MinCapacity {current}: {gone}; but {says}: relaxed as demand falls")
    return decision("relax", floor, f"relax MinCapacity {current} -> {floor}: {gone}; {says}; target tracking "
                    "removes the instances above it after its own scale-in alarm")


def _held_minutes(
    history: pd.Series, owned_since: pd.Timestamp, current: int, settings: PlannerSettings, now: pd.Timestamp,
) -> tuple[float, bool]:
    """Minutes the watchdog counts a raise to ``current`` as held, and whether observed demand
    needed it meanwhile: from ``owned_since``, or from the end of the newest minute of ``history``
    since then whose invocations needed ``current`` instances or more (``instances_for``), if later.

    The adapters keep ``owned_since`` for as long as the pre-scaler owns a MinCapacity above the
    baseline, and a relax floored at what demand needs (an endpoint whose demand between spikes is
    above the baseline) keeps owning. A recurring spike raised for every hour is then one long
    "raise": counted from ``owned_since`` the watchdog would relax it (and block raises for its
    cool-off) just before a spike demand keeps confirming. A stuck raise, one demand never reaches,
    is still relaxed ``max_hold_minutes`` after it was made."""
    since = history[history.index >= owned_since.floor("min")].to_numpy(dtype=float)
    per_instance = settings.target_invocations_per_instance / (1 + settings.headroom)
    # instances_for(x) >= current  <=>  x > (current - 1) x per instance (ceil, rounded as it does)
    reached = np.flatnonzero(np.round(since / per_instance, 9) > current - 1)
    start = owned_since
    if len(reached):
        start = max(owned_since, history.index[len(history) - len(since) + int(reached[-1])] + MINUTE)
    return (now - start) / MINUTE, bool(len(reached))


def _prompt_scale_in(
    history: pd.Series,
    state: TargetState,
    settings: PlannerSettings,
    new_min: int,
    required: int,
    expected_need: int,
    demand_need: int,
    numbers: dict[str, float | int | str | None],
) -> int | None:
    """Desired instance count after a raise of ours, or None. Target tracking needs 15 low datapoints
    before it scales in (AWS documents 15 datapoints below 90% of target); this does it once demand
    has been low for ``scale_in_low_minutes`` complete minutes (or, when those minutes were the
    forecast's spike, the forecast says it is over: ``demand_need``) and no spike is forecast.

    Called only while the pre-scaler owns a raise (or just released one: ``released_min_capacity``),
    and never removes more instances than that raise held in (``its MinCapacity - new MinCapacity``):
    the capacity target tracking added on its own is left to target tracking (never worse than the
    backstop alone). Nor below ``expected_need``, what the most the forecast expects over its whole
    range needs (not only what is worth a raise): the instances a recurring burst after the spike
    needs are kept."""
    if not settings.prompt_scale_in or len(history) < settings.scale_in_low_minutes:
        return None
    if required > new_min:
        numbers["scale_in_blocked"] = "spike forecast"
        return None
    observed_peak = float(history.to_numpy()[-settings.scale_in_low_minutes:].max())
    observed_need = instances_for(observed_peak, settings)
    numbers["observed_peak_invocations_per_minute"] = round(observed_peak, 3)
    numbers["observed_required_instances"] = observed_need
    ours = max(0, max(state.min_capacity, state.released_min_capacity or 0) - new_min)
    desired = max(new_min, demand_need, required, state.current_instances - ours, expected_need)
    numbers["expected_required_instances"] = expected_need
    numbers["scale_in_floor_instances"] = state.current_instances - ours
    if desired < state.current_instances:
        return desired
    return None


def _demand_need(
    tail: np.ndarray,
    observed_need: int,
    expected_recent: pd.Series | None,
    fc: Forecast,
    settings: PlannerSettings,
    numbers: dict[str, float | int | str | None],
) -> tuple[int, str]:
    """Instances demand needs now, for a relax and a prompt scale-in, and the reason in words.

    The newest complete minutes CloudWatch shows (``tail``) are 3 minutes old. When a learned
    pattern (not a declared event alone) expected them (the head of ``expected_recent``) and they
    needed exactly the instances it expected, the demand under way is the forecast's, and what it
    needs now is what the forecast needs over the minute before now (a minute's count is its
    average: the first seconds of now continue the end of that minute, the top of a ramp down) and
    the next lead time + horizon. Otherwise (no such forecast, a spike larger, smaller, earlier or
    later than expected) it is what those observed minutes needed.
    """
    says = f"the last {len(tail)} min of demand need {observed_need}"
    if (expected_recent is None or not fc.usable or fc.calendar_only or len(tail) == 0
            or len(expected_recent) < len(tail)):
        return observed_need, says
    expected = expected_recent.to_numpy(dtype=float)
    if not np.isfinite(expected).all() or (expected < 0).any():
        return observed_need, says
    expected_need = instances_for(float(expected[: len(tail)].max()), settings)
    numbers["expected_recent_required_instances"] = expected_need
    if expected_need != observed_need:
        return observed_need, says
    ahead = np.concatenate((expected[-1:], fc.values.to_numpy(dtype=float)[: settings.lookahead_minutes]))
    now_need = instances_for(float(ahead.max()), settings)
    if now_need >= observed_need:
        return observed_need, says
    numbers["forecast_followed"] = True
    return now_need, (f"{says}, as the {fc.pattern} pattern expected, and it needs {now_need} over the next "
                      f"{settings.lookahead_minutes} min")


def decide(
    history: pd.Series,
    state: TargetState,
    settings: PlannerSettings,
    now: datetime | pd.Timestamp,
) -> Decision:
    """Forecast ``[now, now + lead time + horizon + SPIKE_EXTENT_MINUTES)`` from ``history``, lay the
    declared events (``settings.known_events``) over it, and :func:`plan` on it.

    Args:
        history: per-minute UTC series of observed invocations, complete minutes only, <= 14 days.
        state / settings / now: as for :func:`plan`.
    """
    start = to_utc(now).floor("min")
    fc = forecast(history, start, start + (settings.lookahead_minutes + SPIKE_EXTENT_MINUTES) * MINUTE,
                  drift_minutes=settings.drift_minutes, timezone=settings.timezone, cost=settings.cost_model())
    fc = with_events(fc, settings.known_events, active_since=start - settings.max_hold_minutes * MINUTE)
    expected_recent = None
    holding = state.owned_min_capacity is not None or state.released_min_capacity is not None
    if holding and fc.usable and not fc.calendar_only and len(history):
        after = to_utc(history.index[-1]).floor("min") + MINUTE
        if after <= start:
            expected_recent = forecast(
                history, after - min(settings.scale_in_low_minutes, len(history)) * MINUTE, start,
                drift_minutes=settings.drift_minutes, timezone=settings.timezone, cost=settings.cost_model()).values
    return plan(fc, history, state, settings, now, expected_recent)
