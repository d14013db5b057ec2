"""Plan: forecast + scalable-target state + settings -> a decision (raise, hold or relax).

The one place where capacity is decided. The prescale and relax Lambdas and the simulator's
``predictive`` policy all call :func:`decide` (or :func:`plan` with a forecast they made), so a
backtest measures the code that runs in production.

Invariants (pinned by ``tests/unit/test_plan.py``):
- MinCapacity stays within ``[baseline, min(prescale cap, MaxCapacity)]``; a MinCapacity above
  MaxCapacity is never proposed; MaxCapacity and SuspendedState are not part of a decision.
- ``raise`` only increases MinCapacity, ``relax`` only decreases it.
- An unusable forecast (missing, short, unreadable or patternless history) never raises and never
  relaxes; only the watchdog relaxes a raise held longer than ``max_hold_minutes``, and after it
  fires no forecast-driven raise is made for ``watchdog_cooloff_minutes``.
- Stale history (its newest minute older than ``now`` minus the publication delay and a minute of
  slack) never lowers anything.
- A MinCapacity the pre-scaler did not set (an operator's change) is never relaxed.
- Prompt scale-in never asks for fewer instances than MinCapacity, and only after demand has been
  low for ``scale_in_low_minutes`` complete minutes with no spike forecast in lead time + horizon
  (the forecast needs no more than the baseline).
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from prescaler.forecast import Forecast, finite_or_none, forecast
from prescaler.history import MINUTE, as_minute_series, to_utc

Action = Literal["raise", "hold", "relax"]


class PlannerSettings(BaseModel):
    """Knobs of the decision core (units in the names)."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    target_invocations_per_instance: float = Field(
        2400.0, gt=0, description="Target tracking target: invocations per instance per minute.")
    headroom: float = Field(0.0, ge=0, le=4, description="Extra capacity on the forecast peak (0.1 = 10%).")
    lead_time_s: int = Field(
        300, ge=0, le=3600,
        description="Seconds before a spike that capacity must be requested: 2-4 min to InService + a tick.")
    horizon_minutes: int = Field(
        1, ge=1, le=120, description="Minutes beyond the lead time the forecast looks ahead.")
    baseline_min_capacity: int = Field(2, ge=1, description="MinCapacity outside spikes (instances).")
    prescale_max_capacity: int = Field(8, ge=1, description="Highest MinCapacity the pre-scaler sets.")
    prompt_scale_in: bool = Field(True, description="Lower the desired instance count after a spike.")
    scale_in_low_minutes: int = Field(
        2, ge=1, le=60, description="Complete minutes of low demand before prompt scale-in.")
    max_hold_minutes: int = Field(
        120, ge=1, description="Watchdog: a raise older than this is relaxed whatever the forecast says.")
    watchdog_cooloff_minutes: int = Field(
        60, ge=0, description="After the watchdog fires, no forecast-driven raise for this long.")
    drift_minutes: int = Field(1, ge=0, le=15, description="Spike-start jitter the forecast covers (min).")
    timezone: str = Field("UTC", description="IANA time zone whose wall clock daily jobs follow.")

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA time zone {value!r} (e.g. UTC, Europe/Berlin, America/New_York)") from exc
        return value

    @model_validator(mode="after")
    def _cap_above_baseline(self) -> PlannerSettings:
        if self.prescale_max_capacity < self.baseline_min_capacity:
            raise ValueError(
                f"prescale_max_capacity ({self.prescale_max_capacity}) is below "
                f"baseline_min_capacity ({self.baseline_min_capacity})")
        return self

    @property
    def lookahead_minutes(self) -> int:
        """Minutes of forecast each tick needs: lead time (rounded up) + horizon."""
        return math.ceil(self.lead_time_s / 60) + self.horizon_minutes


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
    """

    min_capacity: int
    max_capacity: int
    current_instances: int
    owned_min_capacity: int | None = None
    owned_since: pd.Timestamp | None = None
    watchdog_at: pd.Timestamp | None = None


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
) -> Decision:
    """Decide MinCapacity (and possibly a prompt scale-in) for one tick.

    Args:
        fc: forecast covering ``[now, now + lead time + horizon)``.
        history: the per-minute UTC series of observed invocations (complete minutes) the forecast
            was made from; its tail is the observed demand for prompt scale-in.
        state: the scalable target now.
        settings: planner settings.
        now: the tick's reference time (UTC).

    Returns:
        A ``Decision``. Never raises for odd data: it holds and says why.
    """
    now = to_utc(now)
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
        held = (now - to_utc(state.owned_since)) / MINUTE
        numbers["held_minutes"] = round(held, 1)
        if held > settings.max_hold_minutes:
            return decision("relax", baseline, f"watchdog: MinCapacity {current} has been held "
                            f"{held:.0f} min (> {settings.max_hold_minutes}); back to baseline {baseline}",
                            watchdog=True)

    if not fc.usable:
        return decision("hold", current, f"hold: {fc.reason}")
    if not math.isfinite(fc.peak_invocations_per_minute) or fc.peak_invocations_per_minute < 0:
        return decision("hold", current, f"hold: unreadable forecast peak {fc.peak_invocations_per_minute!r}")

    required = min(cap, max(baseline, instances_for(fc.peak_invocations_per_minute, settings)))
    numbers["required_instances"] = required
    window = f"{fc.window_start:%H:%M}-{fc.window_end:%H:%M} UTC"

    capped = instances_for(fc.peak_invocations_per_minute, settings) > cap
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
            f"raise MinCapacity {current} -> {required}: {fc.pattern} pattern forecasts "
            f"{fc.peak_invocations_per_minute:,.0f} invocations/min in {window}; "
            f"{required} instances at {settings.target_invocations_per_instance:,.0f}/instance"
            f"{f' + {settings.headroom:.0%} headroom' if settings.headroom else ''}"
            f"{f' (capped at {cap})' if capped else ''}"
        ))

    new_min = current
    reason = f"hold MinCapacity {current}: forecast peak needs {required} in {window}"
    action: Action = "hold"
    if newest is None or (now.floor("min") - newest) / MINUTE > STALE_AFTER_MINUTES:
        return decision("hold", current, f"{reason}; history is stale (newest minute "
                        f"{newest.isoformat() if newest is not None else 'none'}): nothing is lowered")
    tail = history.to_numpy()[-settings.scale_in_low_minutes:]
    if not np.isfinite(tail).all() or (tail < 0).any():
        return decision("hold", current, f"{reason}; the newest minutes are unreadable: nothing is lowered")
    if current > baseline and required < current:
        if owned:
            new_min, action = required, "relax"
            reason = (f"relax MinCapacity {current} -> {required}: no spike forecast in the next "
                      f"{settings.lookahead_minutes} min (peak {fc.peak_invocations_per_minute:,.0f}/min "
                      f"needs {required})")
        else:
            reason = (f"hold MinCapacity {current}: not set by the pre-scaler (an operator's change?), "
                      f"left alone")
            numbers["not_owned"] = True
            return decision("hold", current, reason)

    desired = _prompt_scale_in(history, state, settings, new_min, required, numbers)
    if desired is not None:
        scale_in = (f"prompt scale-in {state.current_instances} -> {desired} instances: the last "
                    f"{settings.scale_in_low_minutes} min of demand need "
                    f"{numbers['observed_required_instances']} and no spike is forecast")
        reason = f"{reason}; {scale_in}" if action == "relax" else f"relax: {scale_in} (MinCapacity {new_min})"
        action = "relax"
    return decision(action, new_min, reason, desired)


def _prompt_scale_in(
    history: pd.Series,
    state: TargetState,
    settings: PlannerSettings,
    new_min: int,
    required: int,
    numbers: dict[str, float | int | str | None],
) -> int | None:
    """Desired instance count after a spike, or None. Target tracking needs 15 low datapoints before
    it scales in (AWS documents 15 datapoints below 90% of target); this does it once demand has
    been low for ``scale_in_low_minutes`` complete minutes and no spike is forecast."""
    if not settings.prompt_scale_in or len(history) < settings.scale_in_low_minutes:
        return None
    if required > settings.baseline_min_capacity:
        numbers["scale_in_blocked"] = "spike forecast"
        return None
    observed_peak = float(history.to_numpy()[-settings.scale_in_low_minutes:].max())
    observed_need = instances_for(observed_peak, settings)
    numbers["observed_peak_invocations_per_minute"] = round(observed_peak, 3)
    numbers["observed_required_instances"] = observed_need
    desired = max(new_min, observed_need, required)
    if desired < state.current_instances:
        return desired
    return None


def decide(
    history: pd.Series,
    state: TargetState,
    settings: PlannerSettings,
    now: datetime | pd.Timestamp,
) -> Decision:
    """Forecast ``[now, now + lead time + horizon)`` from ``history`` and :func:`plan` on it.

    Args:
        history: per-minute UTC series of observed invocations, complete minutes only, <= 14 days.
        state / settings / now: as for :func:`plan`.
    """
    start = to_utc(now).floor("min")
    fc = forecast(history, start, start + settings.lookahead_minutes * MINUTE,
                  drift_minutes=settings.drift_minutes, timezone=settings.timezone)
    return plan(fc, history, state, settings, now)
