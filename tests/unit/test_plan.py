"""prescaler.plan: forecast + scalable-target state + settings -> raise / hold / relax.

The invariants of ARCHITECTURE.md that belong to the core are pinned as hypothesis properties over
random ``TargetState`` / ``PlannerSettings`` / forecast peaks (``Forecast`` built directly); the
example tests below them pin the formula, the clamps, the reasons, the watchdog, prompt scale-in and
``decide()`` end to end on the reference hourly traffic.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from prescaler.forecast import Forecast
from prescaler.history import MINUTE, SERIES_NAME, complete_end
from prescaler.plan import Decision, PlannerSettings, TargetState, decide, instances_for, plan

pytestmark = pytest.mark.unit

NOW = pd.Timestamp("2026-03-05 03:53:20", tz="UTC")
DEFAULTS = PlannerSettings()


# --- builders ------------------------------------------------------------------------------------


def make_forecast(
    peak: float,
    *,
    usable: bool = True,
    now: pd.Timestamp = NOW,
    minutes: int = DEFAULTS.lookahead_minutes,
    pattern: str = "hourly",
    judged: bool | None = None,
) -> Forecast:
    """A ``Forecast`` over ``[now, now + minutes)`` whose last minute is the peak. An unusable one is
    "too little history" (not judged) unless ``judged``: then "no pattern worth acting on"."""
    judged = usable if judged is None else judged
    lo = now.floor("min")
    hi = lo + minutes * MINUTE
    index = pd.date_range(lo, hi, freq="min", inclusive="left", name="minute")
    values = pd.Series(np.full(len(index), min(peak, 1.0)), index=index, name=SERIES_NAME)
    values.iloc[-1] = peak
    reason = "test forecast" if usable else (
        "no pattern worth acting on: test" if judged else "too little history: test")
    return Forecast(lo, hi, values, pattern if usable else "none", usable, peak, hi - MINUTE, hi,
                    3 * 1440, reason, {}, judged=judged)


def recent(values: list[float], now: pd.Timestamp = NOW) -> pd.Series:
    """Observed per-minute history whose last minute is the newest complete minute at ``now``."""
    end = complete_end(now)
    index = pd.date_range(end=end - MINUTE, periods=len(values), freq="min", name="minute")
    return pd.Series(np.asarray(values, dtype=float), index=index, name=SERIES_NAME)


LOW = recent([2000.0] * 10)  # an hour's baseline: 1 instance's worth at 2,400/instance
IDLE = recent([0.0] * 10)  # no demand: needs no instance whatever the target


# --- strategies ----------------------------------------------------------------------------------


@st.composite
def planner_settings(draw) -> PlannerSettings:
    baseline = draw(st.integers(1, 10))
    return PlannerSettings(
        target_invocations_per_instance=draw(st.floats(50, 10_000)),
        headroom=draw(st.floats(0, 4)),
        lead_time_s=draw(st.integers(0, 3600)),
        horizon_minutes=draw(st.integers(1, 120)),
        baseline_min_capacity=baseline,
        prescale_max_capacity=baseline + draw(st.integers(0, 12)),
        prompt_scale_in=draw(st.booleans()),
        scale_in_low_minutes=draw(st.integers(1, 10)),
        max_hold_minutes=draw(st.integers(1, 300)),
    )


@st.composite
def target_states(draw) -> TargetState:
    max_capacity = draw(st.integers(1, 25))
    min_capacity = draw(st.integers(1, max_capacity))
    owned = draw(st.one_of(st.none(), st.just(min_capacity), st.integers(1, 25)))
    since = draw(st.one_of(st.none(), st.integers(0, 600).map(lambda m: NOW - m * MINUTE)))
    return TargetState(min_capacity, max_capacity, draw(st.integers(0, 30)), owned, since)


peaks = st.floats(0, 1e6, allow_nan=False, allow_infinity=False)
histories = st.lists(st.floats(0, 1e6, allow_nan=False, allow_infinity=False), max_size=15).map(recent)

PROPERTY = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
case = given(planner_settings(), target_states(), peaks, st.booleans(), histories)


def _bounds(state: TargetState, s: PlannerSettings) -> tuple[int, int]:
    """[baseline, min(prescale cap, MaxCapacity)]; the baseline itself clamped when MaxCapacity is lower."""
    cap = min(s.prescale_max_capacity, state.max_capacity)
    return min(s.baseline_min_capacity, cap), cap


def _watchdog_due(state: TargetState, s: PlannerSettings, hist: pd.Series) -> bool:
    low, _ = _bounds(state, s)
    if not (state.owned_min_capacity == state.min_capacity and state.min_capacity > low
            and state.owned_since is not None):
        return False
    # held since the raise, or since the end of the newest minute whose demand needed it
    needed = [t for t, v in hist.items() if t >= state.owned_since.floor("min")
              and instances_for(float(v), s) >= state.min_capacity]
    since = max([state.owned_since, *(t + MINUTE for t in needed)])
    return (NOW - since) / MINUTE > s.max_hold_minutes


# --- invariants (properties) ---------------------------------------------------------------------


@PROPERTY
@case
def test_min_capacity_sent_stays_within_baseline_and_cap(s, state, peak, usable, hist) -> None:
    # When any decision changes MinCapacity
    d = plan(make_forecast(peak, usable=usable), hist, state, s, NOW)
    # Then the new value lies in [baseline, min(prescale cap, MaxCapacity)], never above MaxCapacity
    low, high = _bounds(state, s)
    if d.changes_min_capacity:
        assert low <= d.min_capacity <= high
        assert d.min_capacity <= state.max_capacity
    else:
        assert d.min_capacity == state.min_capacity
    assert d.previous_min_capacity == state.min_capacity


@PROPERTY
@case
def test_raise_only_increases_relax_only_decreases_hold_changes_nothing(s, state, peak, usable, hist) -> None:
    d = plan(make_forecast(peak, usable=usable), hist, state, s, NOW)
    if d.action == "raise":
        assert d.min_capacity > state.min_capacity
        assert d.desired_instances is None
    elif d.action == "relax":
        assert d.min_capacity <= state.min_capacity
        # a relax lowers MinCapacity, or the desired instance count, or both
        assert d.min_capacity < state.min_capacity or (
            d.desired_instances is not None and d.desired_instances < state.current_instances)
    else:
        assert d.action == "hold"
        assert d.min_capacity == state.min_capacity
        assert d.desired_instances is None


@PROPERTY
@case
def test_unusable_forecast_never_lowers_capacity(s, state, peak, usable, hist) -> None:
    # Given missing, short or patternless history (an unusable forecast)
    d = plan(make_forecast(peak, usable=False), hist, state, s, NOW)
    # Then the tick holds, unless the watchdog's max hold has passed (its documented exception)
    if _watchdog_due(state, s, hist):
        assert d.action == "relax"
        assert d.reason.startswith("watchdog")
    else:
        assert d.action == "hold"
        assert d.min_capacity == state.min_capacity
        assert d.desired_instances is None


@PROPERTY
@case
def test_a_judged_patternless_forecast_relaxes_only_an_owned_raise_to_what_demand_needs(
        s, state, peak, usable, hist) -> None:
    # Given a forecast that was backtested and found no pattern worth acting on
    d = plan(make_forecast(peak, usable=False, judged=True), hist, state, s, NOW)
    low, _ = _bounds(state, s)
    owned = state.owned_min_capacity == state.min_capacity and state.min_capacity > low
    # Then it never raises and never asks for a prompt scale-in
    assert d.action in ("hold", "relax") and d.desired_instances is None
    if _watchdog_due(state, s, hist):
        assert d.reason.startswith("watchdog")
    elif owned and len(hist):
        # And an owned raise goes to what the last minutes of demand need, never below the baseline
        need = instances_for(float(hist.to_numpy()[-s.scale_in_low_minutes:].max()), s)
        assert d.min_capacity == max(low, min(state.min_capacity, need))
        assert d.action == ("relax" if d.min_capacity < state.min_capacity else "hold")
    else:
        # And anything else (not ours, at the baseline, no history) is held
        assert (d.action, d.min_capacity) == ("hold", state.min_capacity)


@PROPERTY
@case
def test_an_operators_min_capacity_is_never_relaxed(s, state, peak, usable, hist) -> None:
    # Given a MinCapacity the pre-scaler does not own (no ledger record, or a different value)
    if state.owned_min_capacity == state.min_capacity:
        state = TargetState(state.min_capacity, state.max_capacity, state.current_instances,
                            None, state.owned_since)
    d = plan(make_forecast(peak, usable=usable), hist, state, s, NOW)
    # Then it is never lowered
    assert d.min_capacity >= state.min_capacity


@PROPERTY
@given(planner_settings(), target_states(), st.integers(1, 600))
def test_watchdog_relaxes_a_raise_held_longer_than_max_hold(s, state, extra) -> None:
    # Given an owned raise above the baseline, made longer ago than the max hold
    low, high = _bounds(state, s)
    if high <= low:
        return
    current = min(max(state.min_capacity, low + 1), high)
    since = NOW - (s.max_hold_minutes + extra / 10) * MINUTE
    state = TargetState(current, state.max_capacity, state.current_instances, current, since)
    # When a tick forecasts a spike that needs even more, demand never having needed the raise
    d = plan(make_forecast(1e9), IDLE, state, s, NOW)
    # Then the watchdog relaxes it to the baseline anyway
    assert d.action == "relax"
    assert d.min_capacity == low
    assert d.reason.startswith("watchdog")


@PROPERTY
@case
def test_prompt_scale_in_is_never_below_min_capacity_and_only_after_low_demand(
        s, state, peak, usable, hist) -> None:
    d = plan(make_forecast(peak, usable=usable), hist, state, s, NOW)
    if d.desired_instances is None:
        return
    # Then prompt scale-in is on, the forecast is usable, and the count goes down
    assert s.prompt_scale_in
    assert usable
    assert d.action == "relax"
    assert d.desired_instances < state.current_instances
    # and never below the MinCapacity the decision leaves in place
    assert d.desired_instances >= d.min_capacity
    # and demand over the last scale_in_low_minutes fits in what remains
    tail = hist.iloc[-s.scale_in_low_minutes:]
    assert len(tail) == s.scale_in_low_minutes
    assert instances_for(float(tail.max()), s) <= d.desired_instances
    # and what remains covers the forecast peak (up to the cap)
    _, high = _bounds(state, s)
    assert d.desired_instances >= min(high, instances_for(peak, s))


@PROPERTY
@given(planner_settings(), st.integers(1, 25), st.integers(0, 30), st.floats(0, 5e4), st.booleans(),
       st.lists(st.floats(0, 5e4), min_size=1, max_size=15).map(recent),
       st.lists(st.floats(0, 5e4), min_size=1, max_size=14), st.booleans())
def test_a_relax_below_the_observed_demand_only_follows_a_forecast_that_expected_it(
        s, min_capacity, instances, peak, usable, hist, expected, follow) -> None:
    # Given a raise of ours and what a pattern forecast for the newest minutes of history up to now:
    # any values, or (follow) exactly the observed ones for the minutes CloudWatch shows
    state = TargetState(min_capacity, 25, instances, min_capacity, NOW - 10 * MINUTE)
    tail = hist.iloc[-s.scale_in_low_minutes:]
    if follow:
        expected = [*tail.tolist(), *expected]
    first = tail.index[0] if len(tail) else NOW.floor("min")
    index = pd.date_range(first, periods=len(expected), freq="min", name="minute")
    expected_recent = pd.Series(expected, index=index, name=SERIES_NAME)
    fc = make_forecast(peak, usable=usable)
    d = plan(fc, hist, state, s, NOW, expected_recent)
    if d.action != "relax" or not len(tail):
        return
    observed = instances_for(float(tail.max()), s)
    lowest = min(d.min_capacity, d.desired_instances if d.desired_instances is not None else d.min_capacity)
    if lowest >= min(observed, state.min_capacity, state.current_instances) or _watchdog_due(state, s, hist):
        return
    # When a relax or a prompt scale-in goes below what the observed minutes needed, then the forecast
    # is a usable pattern that expected exactly that need there, and what remains covers the forecast
    # over the minute before now and the lookahead
    event("relaxed below the observed demand")
    assert usable and d.numbers.get("forecast_followed") is True
    assert instances_for(float(expected_recent.iloc[: len(tail)].max()), s) == observed
    ahead = max(float(expected_recent.iloc[-1]), float(fc.values.iloc[: s.lookahead_minutes].max()))
    assert lowest >= min(instances_for(ahead, s), _bounds(state, s)[1])


@PROPERTY
@case
def test_same_inputs_same_decision(s, state, peak, usable, hist) -> None:
    fc = make_forecast(peak, usable=usable)
    first = plan(fc, hist, state, s, NOW)
    again = plan(fc, hist.copy(), state, s, NOW)
    assert again.to_dict() == first.to_dict()


def _apply(d: Decision, state: TargetState, s: PlannerSettings) -> TargetState:
    """The scalable target after a decision was carried out and recorded in the ledger."""
    low, _ = _bounds(state, s)
    instances = d.desired_instances if d.desired_instances is not None else state.current_instances
    instances = max(instances, d.min_capacity)  # RegisterScalableTarget moves capacity into range
    if d.action == "raise":
        return TargetState(d.min_capacity, state.max_capacity, instances, d.min_capacity, NOW)
    if d.changes_min_capacity:  # a relax: the ledger keeps owning what is still above baseline
        owned = d.min_capacity if d.min_capacity > low else None
        return TargetState(d.min_capacity, state.max_capacity, instances, owned,
                           state.owned_since if owned else None)
    return TargetState(state.min_capacity, state.max_capacity, instances, state.owned_min_capacity,
                       state.owned_since)


@PROPERTY
@case
def test_a_duplicate_tick_changes_no_min_capacity_twice(s, state, peak, usable, hist) -> None:
    # Given a tick's decision, carried out
    fc = make_forecast(peak, usable=usable)
    first = plan(fc, hist, state, s, NOW)
    if first.reason.startswith("watchdog"):
        return  # pinned separately below (known issue)
    after = _apply(first, state, s)
    # When the same EventBridge event is delivered again
    again = plan(fc, hist, after, s, NOW)
    # Then MinCapacity does not move again
    assert again.min_capacity == after.min_capacity
    assert not again.changes_min_capacity
    # and a prompt scale-in already carried out is not asked for again
    if first.action != "raise":
        assert again.desired_instances is None


# --- the formula and the clamps ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("peak", "headroom", "target", "expected"),
    [
        (13200.0, 0.0, 2400.0, 6),   # 5.5 -> 6
        (13200.0, 0.1, 2400.0, 7),   # 6.05 -> 7
        (12000.0, 0.0, 2400.0, 5),   # exactly 5, no ceil creep
        (6000.0, 0.2, 2400.0, 3),    # 6000 x 1.2 = 7200.000000000001 in floats: still exactly 3
        (2400.0, 0.0, 2400.0, 1),
        (1.0, 0.0, 2400.0, 1),
        (0.0, 0.5, 2400.0, 0),
        (5000.0, 1.0, 1000.0, 10),
    ],
)
def test_required_instances_formula(peak: float, headroom: float, target: float, expected: int) -> None:
    s = PlannerSettings(headroom=headroom, target_invocations_per_instance=target)
    assert instances_for(peak, s) == expected
    assert instances_for(peak, s) == math.ceil(round(peak * (1 + headroom) / target, 9))


def test_raise_to_the_required_instances_with_headroom() -> None:
    # Given the baseline MinCapacity 2 and a forecast spike of 13,200/min, 10% headroom
    s = PlannerSettings(headroom=0.1)
    d = plan(make_forecast(13200.0), LOW, TargetState(2, 8, 2), s, NOW)
    # Then MinCapacity is raised to ceil(13,200 x 1.1 / 2,400) = 7
    assert (d.action, d.min_capacity, d.previous_min_capacity) == ("raise", 7, 2)
    assert d.numbers["required_instances"] == 7
    assert d.changes_min_capacity


def test_raise_reason_mentions_the_numbers() -> None:
    s = PlannerSettings(headroom=0.1)
    fc = make_forecast(13200.0)
    d = plan(fc, LOW, TargetState(2, 8, 2), s, NOW)
    for text in ("2 -> 7", "13,200", "2,400", "10%", "hourly",
                 f"{fc.window_start:%H:%M}-{fc.window_end:%H:%M}"):
        assert text in d.reason
    assert d.numbers["forecast_peak_invocations_per_minute"] == 13200.0
    assert d.numbers["target_invocations_per_instance"] == 2400.0
    assert d.numbers["headroom"] == 0.1
    json.dumps(d.to_dict())


def test_raise_is_clamped_to_the_prescale_cap() -> None:
    # Given a spike that needs 12 instances and a prescale cap of 8 (MaxCapacity 10)
    d = plan(make_forecast(12 * 2400.0), LOW, TargetState(2, 10, 2), PlannerSettings(), NOW)
    # Then MinCapacity goes to the cap and the reason says so
    assert (d.action, d.min_capacity) == ("raise", 8)
    assert "capped" in d.reason
    assert d.numbers["capped"] is True


def test_raise_is_clamped_to_max_capacity_below_the_cap() -> None:
    # Given MaxCapacity 5, below the prescale cap 8
    d = plan(make_forecast(12 * 2400.0), LOW, TargetState(2, 5, 2), PlannerSettings(), NOW)
    # Then no MinCapacity above MaxCapacity is proposed
    assert (d.action, d.min_capacity) == ("raise", 5)
    assert d.numbers["cap"] == 5


def test_min_capacity_already_at_the_cap_holds() -> None:
    d = plan(make_forecast(12 * 2400.0), LOW, TargetState(8, 8, 8, 8, NOW), PlannerSettings(), NOW)
    assert d.action == "hold"
    assert d.min_capacity == 8


def test_small_forecast_keeps_the_baseline() -> None:
    # Given a usable forecast well under one instance's worth at the baseline MinCapacity
    d = plan(make_forecast(1000.0), LOW, TargetState(2, 8, 2), PlannerSettings(), NOW)
    assert d.action == "hold"
    assert d.numbers["required_instances"] == 2


def test_unusable_forecast_holds_and_says_why() -> None:
    d = plan(make_forecast(13200.0, usable=False), LOW, TargetState(2, 8, 2), PlannerSettings(), NOW)
    assert d.action == "hold"
    assert d.min_capacity == 2
    assert "too little history" in d.reason


# --- relax: only what the pre-scaler owns --------------------------------------------------------


def test_an_owned_raise_whose_pattern_is_gone_is_relaxed_to_what_demand_needs() -> None:
    # Given MinCapacity 6 of ours and 10 instances, and the next hour's backtest found no pattern
    state = TargetState(6, 8, 10, owned_min_capacity=6, owned_since=NOW - 20 * MINUTE)
    fc = make_forecast(13200.0, usable=False, judged=True)
    d = plan(fc, LOW, state, PlannerSettings(), NOW)
    # Then MinCapacity goes back to the baseline (the last minute needs 1), and says why
    assert (d.action, d.min_capacity) == ("relax", 2)
    assert d.reason.startswith("relax MinCapacity 6 -> 2: no pattern worth acting on any more")
    assert "the last 1 min of demand need 1" in d.reason and d.numbers["pattern_gone"] is True
    # And no prompt scale-in: target tracking removes the 10 instances itself, as the backstop alone would
    assert d.desired_instances is None
    # And while the last minutes still need 4, MinCapacity goes only to 4; needing 6 or more, it holds
    assert (plan(fc, recent([9000.0] * 3), state, PlannerSettings(), NOW).min_capacity) == 4
    d = plan(fc, recent([13000.0] * 3), state, PlannerSettings(), NOW)
    assert (d.action, d.min_capacity) == ("hold", 6) and "relaxed as demand falls" in d.reason


@pytest.mark.parametrize(("history", "state", "why"), [
    (recent([50.0] * 10, now=NOW - 60 * MINUTE), TargetState(6, 8, 6, 6, NOW - 20 * MINUTE), "stale"),
    (recent([50.0, float("nan")]), TargetState(6, 8, 6, 6, NOW - 20 * MINUTE), "unreadable"),
    (LOW, TargetState(6, 8, 6), "hold: no pattern worth acting on"),  # an operator's, not ours
    (LOW, TargetState(6, 8, 6, 7, NOW - 20 * MINUTE), "hold: no pattern worth acting on"),
])
def test_a_gone_pattern_never_lowers_on_stale_unreadable_or_anothers_capacity(
        history: pd.Series, state: TargetState, why: str) -> None:
    d = plan(make_forecast(13200.0, usable=False, judged=True), history, state, PlannerSettings(), NOW)
    assert (d.action, d.min_capacity, d.desired_instances) == ("hold", 6, None)
    assert why in d.reason, d.reason


def test_a_declared_event_still_applies_when_the_pattern_is_gone() -> None:
    # Given no pattern worth acting on any more, an owned raise to 6, and a declared launch that needs 7
    # starting within the lookahead
    from prescaler.events import KnownEvent
    from prescaler.forecast import with_events

    launch = KnownEvent(name="launch", start=NOW.floor("min") + 3 * MINUTE,
                        end=NOW.floor("min") + 30 * MINUTE, peak_invocations_per_minute=16000.0)
    fc = with_events(make_forecast(13200.0, usable=False, judged=True), [launch])
    state = TargetState(6, 8, 6, owned_min_capacity=6, owned_since=NOW - 20 * MINUTE)
    d = plan(fc, LOW, state, PlannerSettings(), NOW)
    # Then the event is raised for, not relaxed away
    assert (d.action, d.min_capacity) == ("raise", 7) and "launch" in d.reason


def test_a_forecast_not_judged_never_relaxes_an_owned_raise() -> None:
    # Given the same owned raise, but history too short to judge (or missing, unreadable, flat)
    state = TargetState(6, 8, 10, owned_min_capacity=6, owned_since=NOW - 20 * MINUTE)
    d = plan(make_forecast(13200.0, usable=False), LOW, state, PlannerSettings(), NOW)
    # Then it holds (only the watchdog relaxes it)
    assert (d.action, d.min_capacity) == ("hold", 6) and "too little history" in d.reason


def test_relax_an_owned_raise_once_no_spike_is_forecast() -> None:
    # Given MinCapacity 6 set by the pre-scaler 20 minutes ago, and no spike ahead
    state = TargetState(6, 8, 6, owned_min_capacity=6, owned_since=NOW - 20 * MINUTE)
    d = plan(make_forecast(2400.0), LOW, state, PlannerSettings(), NOW)
    # Then it goes back to the baseline
    assert (d.action, d.min_capacity) == ("relax", 2)
    assert "6 -> 2" in d.reason


def test_relax_follows_observed_demand_down_while_the_spike_is_under_way() -> None:
    # Given our raise to 6, no spike in the forecast, but the last minutes still needing 6, then 4
    state = TargetState(6, 8, 6, owned_min_capacity=6, owned_since=NOW - 20 * MINUTE)
    d = plan(make_forecast(2400.0), recent([13000.0] * 3), state, PlannerSettings(), NOW)
    # Then nothing is lowered while the spike runs
    assert (d.action, d.min_capacity) == ("hold", 6)
    # And as it falls, MinCapacity follows it down to what the last minutes needed
    d = plan(make_forecast(2400.0), recent([13000.0, 9000.0, 9000.0]), state, PlannerSettings(), NOW)
    assert (d.action, d.min_capacity) == ("relax", 4)


def test_relax_partially_to_what_the_forecast_still_needs() -> None:
    state = TargetState(7, 8, 7, owned_min_capacity=7, owned_since=NOW - 20 * MINUTE)
    d = plan(make_forecast(4 * 2400.0), LOW, state, PlannerSettings(), NOW)
    assert (d.action, d.min_capacity) == ("relax", 4)


def test_an_operators_min_capacity_is_left_alone_and_logged() -> None:
    # Given MinCapacity 6 with no ownership record (an operator set it)
    state = TargetState(6, 8, 6)
    d = plan(make_forecast(2400.0), LOW, state, PlannerSettings(), NOW)
    # Then it is held and the decision says it is not ours
    assert (d.action, d.min_capacity, d.desired_instances) == ("hold", 6, None)
    assert d.numbers["not_owned"] is True
    assert "not set by the pre-scaler" in d.reason


def test_an_operator_change_after_our_raise_is_left_alone() -> None:
    # Given we raised to 6 but an operator has since set 5
    state = TargetState(5, 8, 6, owned_min_capacity=6, owned_since=NOW - 20 * MINUTE)
    d = plan(make_forecast(2400.0), LOW, state, PlannerSettings(), NOW)
    assert (d.action, d.min_capacity) == ("hold", 5)


# --- watchdog ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("held", "fires"), [(119, False), (120, False), (121, True)])
def test_watchdog_fires_only_after_max_hold(held: int, fires: bool) -> None:
    # Given an owned raise to 6 held `held` minutes, and the spike still forecast
    state = TargetState(6, 8, 6, owned_min_capacity=6, owned_since=NOW - held * MINUTE)
    d = plan(make_forecast(13200.0), LOW, state, PlannerSettings(max_hold_minutes=120), NOW)
    # Then it is relaxed to the baseline only once max hold has passed
    if fires:
        assert (d.action, d.min_capacity) == ("relax", 2)
        assert "watchdog" in d.reason and "121" in d.reason
    else:
        assert (d.action, d.min_capacity) == ("hold", 6)


def test_watchdog_counts_a_raise_from_when_demand_last_needed_it() -> None:
    # Given MinCapacity 6 owned for 200 min: an hourly spike raised for every hour, relaxed between
    # spikes only to the 4 instances demand needs there (so the adapters' owned_since never moved),
    # and the last spike needed the 6 (13,200 invocations/min) 50 minutes ago
    s = PlannerSettings(max_hold_minutes=120)
    hist = recent([13200.0] * 10 + [9000.0] * 50)
    state = TargetState(6, 8, 6, owned_min_capacity=6, owned_since=NOW - 200 * MINUTE)
    # When the next spike is forecast
    d = plan(make_forecast(13200.0), hist, state, s, NOW)
    # Then the watchdog does not relax it (nor start its cool-off) before a spike demand confirms
    assert not d.watchdog_fired
    assert d.action == "hold" and d.min_capacity == 6
    # While a raise demand never reached is relaxed after the max hold, as before
    stuck = plan(make_forecast(13200.0), recent([9000.0] * 60), state, s, NOW)
    assert stuck.watchdog_fired and (stuck.action, stuck.min_capacity) == ("relax", 2)
    assert "without demand needing it" in stuck.reason
    # And one demand last needed longer ago than the max hold is relaxed too
    old = recent([13200.0] * 10 + [9000.0] * 125)
    assert plan(make_forecast(13200.0), old, state, s, NOW).watchdog_fired


def test_watchdog_leaves_an_operators_min_capacity_alone() -> None:
    state = TargetState(6, 8, 6, owned_min_capacity=None, owned_since=NOW - 999 * MINUTE)
    d = plan(make_forecast(13200.0), LOW, state, PlannerSettings(), NOW)
    assert d.min_capacity == 6


def test_watchdog_relax_is_not_undone_by_the_next_tick() -> None:
    # Given the watchdog relaxed a raise held too long, the spike still (wrongly) forecast
    s = PlannerSettings(max_hold_minutes=120)
    state = TargetState(6, 8, 6, owned_min_capacity=6, owned_since=NOW - 200 * MINUTE)
    first = plan(make_forecast(13200.0), LOW, state, s, NOW)
    assert first.reason.startswith("watchdog")
    # (the adapter records the watchdog's firing in the ledger and hands it back)
    after = TargetState(first.min_capacity, 8, 6, watchdog_at=NOW)
    # When the tick runs again (a duplicate delivery or the next minute)
    again = plan(make_forecast(13200.0), LOW, after, s, NOW)
    # Then the watchdog's relax stands
    assert again.action != "raise"


# --- prompt scale-in -----------------------------------------------------------------------------


OURS = {"owned_min_capacity": 7, "owned_since": NOW - 20 * MINUTE}


def test_prompt_scale_in_after_the_spike_to_the_observed_need() -> None:
    # Given our raise to 7 with 7 instances, demand down to 3 instances' worth for the last 2
    # minutes, and no spike forecast (the peak needs 2)
    state = TargetState(7, 8, 7, **OURS)
    hist = recent([13000.0] * 5 + [7000.0, 7100.0])
    d = plan(make_forecast(4000.0), hist, state, PlannerSettings(scale_in_low_minutes=2), NOW)
    # Then MinCapacity and the desired count go down to what the observed demand needs
    assert d.action == "relax"
    assert d.min_capacity == 3
    assert d.desired_instances == 3
    assert "prompt scale-in 7 -> 3" in d.reason


def test_prompt_scale_in_by_default_needs_one_low_minute_after_the_spike() -> None:
    # Given our raise to 6 with 6 instances, the spike (6 instances' worth) until the minute before
    # the newest complete one, that newest minute back at the baseline, and no spike forecast
    state = TargetState(6, 8, 6, owned_min_capacity=6, owned_since=NOW - 20 * MINUTE)
    hist = recent([13000.0] * 5 + [2000.0])
    d = plan(make_forecast(2000.0), hist, state, PlannerSettings(), NOW)
    # Then the default settings scale in at once (issue 10: each confirmation minute costs the
    # raise's 4 extra instances a minute, and CloudWatch already shows the fall 3 minutes late)
    assert (d.action, d.min_capacity, d.desired_instances) == ("relax", 2, 2)
    # while the forecast still floors it: a burst it expects later in its range keeps its instances
    d = plan(make_forecast(7000.0, minutes=DEFAULTS.lookahead_minutes + 20), hist, state, PlannerSettings(), NOW)
    assert d.desired_instances is None or d.desired_instances >= 3


def test_prompt_scale_in_never_below_min_capacity() -> None:
    # Given almost no demand, our raise to 7 relaxed to the baseline 2
    state = TargetState(7, 8, 7, **OURS)
    d = plan(make_forecast(100.0), recent([50.0] * 5), state, PlannerSettings(), NOW)
    assert (d.min_capacity, d.desired_instances) == (2, 2)


def test_prompt_scale_in_only_takes_away_what_our_raise_held() -> None:
    # Given our raise to 4, and target tracking that went on to 7 instances on its own
    state = TargetState(4, 8, 7, owned_min_capacity=4, owned_since=NOW - 20 * MINUTE)
    d = plan(make_forecast(100.0), recent([50.0] * 5), state, PlannerSettings(), NOW)
    # Then only our 2 extra instances go: target tracking keeps the 3 it added
    assert (d.action, d.min_capacity, d.desired_instances) == ("relax", 2, 5)


def test_no_prompt_scale_in_of_capacity_target_tracking_added_alone() -> None:
    # Given no raise of ours, MinCapacity at the baseline, and 7 instances target tracking added
    # for a burst that is over (issue 10: never worse than the backstop)
    d = plan(make_forecast(100.0), recent([50.0] * 5), TargetState(2, 8, 7), PlannerSettings(), NOW)
    # Then target tracking's capacity is left to target tracking
    assert (d.action, d.desired_instances) == ("hold", None)


def test_prompt_scale_in_finishes_what_our_just_released_raise_held_in() -> None:
    # Given our relax lowered MinCapacity 6 -> 2 a minute ago but died before its prompt scale-in:
    # 6 instances, nothing owned, the raise's MinCapacity 6 recorded as just released
    state = TargetState(2, 8, 6, released_min_capacity=6)
    d = plan(make_forecast(100.0), recent([50.0] * 5), state, PlannerSettings(), NOW)
    # Then the next tick scales in the 4 instances our raise held in
    assert (d.action, d.min_capacity, d.desired_instances) == ("relax", 2, 2)
    # And a raise to 4 released leaves what target tracking added beyond it alone (6 - (4 - 2) = 4)
    d = plan(make_forecast(100.0), recent([50.0] * 5), TargetState(2, 8, 6, released_min_capacity=4),
             PlannerSettings(), NOW)
    assert d.desired_instances == 4


def test_no_prompt_scale_in_while_demand_was_high_in_the_low_window() -> None:
    # Given 6 instances and the spike (6 instances' worth) still in one of the last 3 minutes
    hist = recent([13000.0, 2000.0, 2000.0])
    s = PlannerSettings(scale_in_low_minutes=3)
    d = plan(make_forecast(2400.0), hist, TargetState(6, 8, 6, owned_min_capacity=6, owned_since=NOW), s, NOW)
    # Then the count stays
    assert (d.min_capacity, d.desired_instances) == (6, None)
    # And with 7 instances (our 7) it only goes down to the 6 the spike minute needed
    d = plan(make_forecast(2400.0), hist, TargetState(7, 8, 7, **OURS), s, NOW)
    assert (d.min_capacity, d.desired_instances) == (6, 6)


def test_no_prompt_scale_in_without_enough_minutes_of_history() -> None:
    d = plan(make_forecast(100.0), recent([50.0]), TargetState(7, 8, 7, **OURS),
             PlannerSettings(scale_in_low_minutes=3), NOW)
    assert d.desired_instances is None


def test_no_prompt_scale_in_when_turned_off() -> None:
    d = plan(make_forecast(100.0), recent([50.0] * 5), TargetState(7, 8, 7, **OURS),
             PlannerSettings(prompt_scale_in=False), NOW)
    assert (d.action, d.min_capacity, d.desired_instances) == ("relax", 2, None)


def test_no_prompt_scale_in_on_an_unusable_forecast() -> None:
    d = plan(make_forecast(100.0, usable=False), recent([50.0] * 5), TargetState(7, 8, 7, **OURS),
             PlannerSettings(), NOW)
    assert (d.action, d.desired_instances) == ("hold", None)


def test_no_prompt_scale_in_while_a_spike_is_forecast() -> None:
    # Given MinCapacity already raised to 6 for a spike due in the lookahead, 8 instances running,
    # and the last minutes at the baseline
    state = TargetState(6, 8, 8, owned_min_capacity=6, owned_since=NOW - 3 * MINUTE)
    d = plan(make_forecast(13200.0), recent([2000.0] * 5), state, PlannerSettings(), NOW)
    # Then no instances are removed right before the spike
    assert d.desired_instances is None


def test_no_prompt_scale_in_on_stale_history() -> None:
    # Given the history stops an hour before now (the newest minutes could not be read)
    stale = recent([50.0] * 10, now=NOW - 60 * MINUTE)
    d = plan(make_forecast(100.0), stale, TargetState(7, 8, 7, **OURS), PlannerSettings(), NOW)
    # Then nothing is lowered on it
    assert d.desired_instances is None


# --- odd data ------------------------------------------------------------------------------------


def test_nan_forecast_peak_holds() -> None:
    d = plan(make_forecast(float("nan")), LOW, TargetState(2, 8, 2), PlannerSettings(), NOW)
    assert d.action == "hold"


def test_nan_in_history_holds(synth) -> None:
    hist = synth.history(3 * 1440, synth.top_of_hour)
    hist.iloc[-5:] = np.nan
    now = hist.index[-1] + 3 * MINUTE
    d = decide(hist, TargetState(6, 8, 6, 6, now - 30 * MINUTE), PlannerSettings(), now)
    assert d.action == "hold"
    assert d.min_capacity == 6


def test_decision_to_dict_is_json() -> None:
    d = plan(make_forecast(13200.0), LOW, TargetState(2, 8, 2), PlannerSettings(), NOW)
    back = json.loads(json.dumps(d.to_dict()))
    assert back["action"] == "raise"
    assert back["min_capacity"] == 6
    assert back["previous_min_capacity"] == 2
    assert back["numbers"]["required_instances"] == 6


def test_settings_reject_a_cap_below_the_baseline() -> None:
    with pytest.raises(ValueError):
        PlannerSettings(baseline_min_capacity=4, prescale_max_capacity=3)


# --- decide() end to end -------------------------------------------------------------------------


def test_decide_raises_before_the_spike_and_relaxes_after_it(synth) -> None:
    # Given 3 days of the reference hourly traffic and a variant at MinCapacity 2 / MaxCapacity 8
    full = synth.history(3 * 1440 + 5 * 60, synth.top_of_hour)
    s = PlannerSettings()  # lead time 300 s, horizon 2 min, target 2,400/instance
    state = TargetState(2, 8, 2)
    top = pd.Timestamp("2026-03-05 04:00", tz="UTC")
    log: list[tuple[pd.Timestamp, Decision]] = []
    # When the pre-scaler ticks every minute from 03:40 to 04:25, each tick seeing the complete
    # minutes only and the scalable target as the previous ticks left it
    for minute in range(-20, 26):
        now = top + minute * MINUTE + pd.Timedelta(seconds=5)
        hist = full[full.index < complete_end(now)]
        d = decide(hist, state, s, now)
        log.append((now, d))
        state = _apply(d, state, s)
    raises = [(t, d) for t, d in log if d.action == "raise"]
    relaxes = [(t, d) for t, d in log if d.action == "relax" and d.changes_min_capacity]
    # Then MinCapacity is raised once, to ceil(13,200 / 2,400) = 6, at least the lead time before
    # the spike and not much earlier (lead time + horizon + drift)
    assert len(raises) == 1
    raised_at, raised = raises[0]
    assert raised.min_capacity == 6
    lead = (top - raised_at) / MINUTE
    assert s.lead_time_s / 60 <= lead <= s.lookahead_minutes + s.drift_minutes
    # And it holds through the spike
    during = [d for t, d in log if top <= t < top + 10 * MINUTE]
    assert all(d.min_capacity == 6 for d in during)
    # And it is relaxed to the baseline once, after the spike
    assert len(relaxes) == 1
    relaxed_at, relaxed = relaxes[0]
    assert relaxed.min_capacity == 2
    assert top + 10 * MINUTE <= relaxed_at <= top + 15 * MINUTE
    # And the instances are promptly scaled in after demand has been low, never below MinCapacity
    scale_ins = [(t, d) for t, d in log if d.desired_instances is not None]
    assert scale_ins
    assert all(d.desired_instances >= d.min_capacity for _, d in scale_ins)
    assert scale_ins[0][0] >= relaxed_at
    assert state.min_capacity == 2 and state.current_instances == 2


# --- issue 10: raise once to what the spike needs; known events ---------------------------------------


def _ramp(index: pd.DatetimeIndex) -> np.ndarray:
    """Minute :00 ramps to 5,000/min (3 instances), :01-:10 hold 13,200/min (6 instances)."""
    return np.where(index.minute == 0, 5000.0, np.where((index.minute >= 1) & (index.minute <= 10), 13200.0, 2400.0))


def _tick_through(full: pd.Series, s: PlannerSettings, top: pd.Timestamp, minutes: range,
                  state: TargetState) -> list[tuple[pd.Timestamp, Decision]]:
    log = []
    for minute in minutes:
        now = top + minute * MINUTE + pd.Timedelta(seconds=5)
        d = decide(full[full.index < complete_end(now)], state, s, now)
        log.append((now, d))
        after = _apply(d, state, s)
        if d.action == "raise":  # the ledger records when this raise was made
            after = TargetState(after.min_capacity, after.max_capacity, after.current_instances,
                                after.owned_min_capacity, now)
        state = after
    return log


def test_a_ramping_spike_is_raised_for_once_to_its_peak() -> None:
    # Given 3 days of hourly spikes that ramp through 3 instances' worth to 6 instances' worth
    index = pd.date_range("2026-03-02", periods=3 * 1440 + 5 * 60, freq="min", tz="UTC", name="minute")
    full = pd.Series(_ramp(index), index=index, name=SERIES_NAME)
    s = PlannerSettings(drift_minutes=0)
    top = pd.Timestamp("2026-03-05 04:00", tz="UTC")
    # When the pre-scaler ticks every minute from 03:40 to 04:05
    log = _tick_through(full, s, top, range(-20, 6), TargetState(2, 8, 2))
    raises = [(t, d) for t, d in log if d.action == "raise"]
    # Then MinCapacity is raised once, straight to 6 (2 -> 3 then 3 -> 6 loses the second step on an
    # endpoint that is Updating after the first)
    assert [(d.previous_min_capacity, d.min_capacity) for _, d in raises] == [(2, 6)]
    # And a lead time ahead of the ramp's first minute
    assert (top - raises[0][0].floor("min")) / MINUTE >= s.lead_time_s / 60


def test_a_spike_beyond_the_lookahead_is_not_pulled_in_by_a_flat_forecast() -> None:
    # Given a forecast flat at 3 instances' worth over the lookahead and a spike later
    fc = make_forecast(5000.0, minutes=DEFAULTS.lookahead_minutes + 20)
    fc.values.iloc[:] = 5000.0
    fc.values.iloc[DEFAULTS.lookahead_minutes + 10] = 13200.0
    d = plan(fc, LOW, TargetState(2, 8, 2), DEFAULTS, NOW)
    # Then the raise is to what the lookahead needs; the later spike waits for its own lead time
    assert (d.action, d.min_capacity) == ("raise", 3)


def test_a_known_event_is_raised_for_without_a_pattern_and_relaxed_after() -> None:
    # Given one hour of flat history (no pattern can be proven) and a declared launch at 10:00-10:30
    from prescaler.events import KnownEvent

    start = pd.Timestamp("2026-03-05 09:00", tz="UTC")
    index = pd.date_range(start, periods=180, freq="min", name="minute")
    full = pd.Series(2000.0, index=index, name=SERIES_NAME)
    launch = KnownEvent(name="launch", start="2026-03-05T10:00:00Z", end="2026-03-05T10:30:00Z",
                        peak_invocations_per_minute=12000)
    s = PlannerSettings(known_events=(launch,))
    top = pd.Timestamp("2026-03-05 10:00", tz="UTC")
    # When the pre-scaler ticks from 09:50 to 10:45
    log = _tick_through(full, s, top, range(-10, 46), TargetState(2, 8, 2))
    raises = [(t, d) for t, d in log if d.action == "raise"]
    relaxes = [(t, d) for t, d in log if d.action == "relax" and d.changes_min_capacity]
    # Then MinCapacity is raised once, a lead time ahead, to what the declared peak needs
    assert [(d.min_capacity, d.forecast.pattern) for _, d in raises] == [(5, "calendar")]
    assert (top - raises[0][0].floor("min")) / MINUTE >= s.lead_time_s / 60
    assert "launch" in raises[0][1].reason
    # And held through the window, then relaxed to the baseline after it
    assert all(d.min_capacity == 5 for t, d in log if top <= t < top + 30 * MINUTE)
    assert [(d.min_capacity) for _, d in relaxes] == [2]
    assert relaxes[0][0] >= top + 30 * MINUTE
    # And without the calendar nothing is raised on the same history
    plain = _tick_through(full, DEFAULTS, top, range(-10, 46), TargetState(2, 8, 2))
    assert all(d.action == "hold" for _, d in plain)


def test_no_prompt_scale_in_when_the_forecast_expects_a_burst_later_in_its_range() -> None:
    # Given our raise to 7, demand low now, nothing worth a raise in the lookahead, but the forecast
    # expecting a burst of 6 instances' worth 10 minutes after it (bursts that recur after the spike)
    fc = make_forecast(100.0, minutes=DEFAULTS.lookahead_minutes + 20)
    fc.values.iloc[:] = 100.0
    fc.values.iloc[DEFAULTS.lookahead_minutes + 10] = 13200.0
    d = plan(fc, recent([50.0] * 5), TargetState(7, 8, 7, **OURS), DEFAULTS, NOW)
    # Then MinCapacity is relaxed, and the instances only down to what the burst needs
    assert (d.action, d.min_capacity, d.desired_instances) == ("relax", 2, 6)
    assert d.numbers["expected_required_instances"] == 6


# --- issue 10 §3 targets: relax as the forecast's fall is due, when the spike is the forecast's ------


def _after_the_spike(full: pd.Series, s: PlannerSettings, top: pd.Timestamp) -> list[tuple[pd.Timestamp, Decision]]:
    """Ticks from top + 8 to top + 16 with MinCapacity 6 (ours, raised at top - 5) and 6 instances."""
    state = TargetState(6, 8, 6, 6, top - 5 * MINUTE)
    return _tick_through(full, s, top, range(8, 17), state)


def test_a_relax_follows_the_forecasts_fall_when_the_spike_under_way_is_the_forecasts(synth) -> None:
    # Given 3 days of hourly 10-minute spikes (:00-:09) and a raise of ours to 6 for the 04:00 one
    full = synth.history(3 * 1440 + 5 * 60, synth.top_of_hour)
    top = pd.Timestamp("2026-03-05 04:00", tz="UTC")
    log = _after_the_spike(full, PlannerSettings(), top)
    relaxes = [(t.floor("min"), d) for t, d in log if d.action == "relax"]
    # Then nothing is lowered while the minute before the tick is a spike minute (04:10 holds: a
    # minute's count is its average, 04:09's end still needs 6) ...
    assert all(d.min_capacity == 6 for t, d in log if t < top + 11 * MINUTE)
    # ... and at 04:11, when CloudWatch shows 04:08 (6 instances' worth, as the hourly pattern
    # expected) and the pattern's spike is over, MinCapacity and the instances go back to the
    # baseline: 2 minutes before 04:10's low minute is visible (at 04:13)
    at, first = relaxes[0]
    assert at == top + 11 * MINUTE
    assert (first.min_capacity, first.desired_instances) == (2, 2)
    assert first.numbers["forecast_followed"] is True
    assert first.numbers["observed_required_instances"] == 6
    assert "as the hourly pattern expected" in first.reason


def test_a_spike_larger_than_forecast_is_relaxed_only_as_the_observed_demand_falls(synth) -> None:
    # Given the same history, but today's 04:00 spike needs 8 instances where the pattern expects 6
    full = synth.history(3 * 1440 + 5 * 60, synth.top_of_hour).copy()
    top = pd.Timestamp("2026-03-05 04:00", tz="UTC")
    full.loc[top: top + 9 * MINUTE] = 18000.0
    log = _after_the_spike(full, PlannerSettings(), top)
    relaxes = [(t.floor("min"), d) for t, d in log if d.action == "relax"]
    # Then the forecast's fall is not trusted: nothing is lowered until CloudWatch shows a low
    # minute (04:10, visible at 04:13)
    assert relaxes and relaxes[0][0] == top + 13 * MINUTE
    assert all("forecast_followed" not in d.numbers for _, d in log)


def test_a_relax_on_a_declared_event_alone_waits_for_the_observed_demand() -> None:
    # Given a raise for a declared event and no learned pattern (flat history)
    from prescaler.events import KnownEvent

    index = pd.date_range("2026-03-05 08:00", periods=150, freq="min", tz="UTC", name="minute")
    top = pd.Timestamp("2026-03-05 10:00", tz="UTC")
    full = pd.Series(np.where((index >= top) & (index < top + 10 * MINUTE), 13200.0, 2400.0), index=index,
                     name=SERIES_NAME)
    launch = KnownEvent(name="launch", start=top, end=top + 10 * MINUTE, peak_invocations_per_minute=13200.0)
    s = PlannerSettings(known_events=(launch,))
    log = _after_the_spike(full, s, top)
    relaxes = [(t.floor("min"), d) for t, d in log if d.action == "relax"]
    # Then the relax waits for a low minute in CloudWatch (10:10, visible at 10:13)
    assert relaxes and relaxes[0][0] == top + 13 * MINUTE


# --- a raise whose pattern the next hour's backtest drops ----------------------------------------


def _coin_flip_spikes(seed: int, p: float, hours: int) -> pd.Series:
    """2,400/min with 5% noise, and in each hour, with probability ``p``, a 10-minute spike of 13,200/min
    at :00: a rhythm the backtest keeps in some hours and drops in others."""
    rng = np.random.default_rng(seed)
    minutes = hours * 60
    base = 2400 * (1 + 0.05 * rng.standard_normal(minutes))
    m = np.arange(minutes)
    on = rng.random(hours + 1) < p
    values = np.where((m % 60 < 10) & on[m // 60], 13200.0, base).clip(0)
    index = pd.date_range("2026-03-02", periods=minutes, freq="min", tz="UTC", name="minute")
    return pd.Series(values, index=index, name=SERIES_NAME)


def test_decide_relaxes_a_raise_when_the_next_hours_backtest_drops_its_pattern() -> None:
    # Given spikes at :00 in a coin flip's share of hours since 00:00, where the hourly pattern
    # raised MinCapacity for the 09:00 spike and the 09:02 tick's backtest (the 08:00 hour now
    # counted) finds no pattern worth acting on any more
    full = _coin_flip_spikes(1, 0.5, 36)
    top = pd.Timestamp("2026-03-02 09:00", tz="UTC")
    log = _tick_through(full, PlannerSettings(), top, range(-6, 15), TargetState(2, 8, 2))
    raises = [(t.floor("min"), d) for t, d in log if d.action == "raise"]
    assert raises and raises[0][1].min_capacity == 6 and raises[0][1].forecast.pattern == "hourly"
    gone = [(t.floor("min"), d) for t, d in log if d.numbers.get("pattern_gone")]
    assert gone, [d.reason for _, d in log]
    when, d = gone[0]
    assert d.forecast is not None and d.forecast.judged and not d.forecast.usable
    assert "no pattern worth acting on" in d.forecast.reason
    # Then that tick relaxes the raise to what the last minute of demand needed (not held until the
    # watchdog, as before), and removes no instance itself (target tracking's scale-in does)
    need = instances_for(float(full[full.index < complete_end(when)].iloc[-1]), PlannerSettings())
    assert (d.action, d.previous_min_capacity, d.min_capacity) == ("relax", 6, max(2, need))
    assert d.desired_instances is None
    assert d.reason.startswith("relax MinCapacity 6 -> 2: no pattern worth acting on any more")
    # And nothing after it raises again on the dropped pattern
    assert all(d.action != "raise" for t, d in log if t > when)
