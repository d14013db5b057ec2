"""Recurring bursts on real backgrounds (scripts/field_cases.py's kinds): the forecaster prepares for the
burst a few minutes before it starts, and not on the days it does not come.

Each case is the field-case generator's trace (NASA's real per-minute background plus the burst); the
forecast is asked a few minutes before a burst the history has seen a week of, as the prescale Lambda
would. The full replays (breach minutes against the best reactive peer) are in docs/field-cases.md."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from _scripts import script_module as _script_module
from prescaler.forecast import CostModel, forecast

pytestmark = pytest.mark.unit

LEAD = 6  # minutes: lead time + horizon of the default settings
TARGET_SHARE = 2400 / 220  # target (invocations/instance/min) per req/s of the trace's p99.9 minute at --peak-rps 220


def _ask(trace: pd.Series, at: pd.Timestamp) -> tuple[float, float, str]:
    """(prepared peak over the next LEAD + 10 minutes in instances, the burst's need in instances, reason)."""
    target = TARGET_SHARE * float(np.quantile(trace.to_numpy() / 60, 0.999))
    history = trace[(trace.index < at) & (trace.index >= at - pd.Timedelta(days=14))]
    cost = CostModel(target_invocations_per_instance=target)
    fc = forecast(history, at, at + pd.Timedelta(minutes=LEAD + 10), cost=cost)
    came = trace[(trace.index >= at) & (trace.index < at + pd.Timedelta(minutes=LEAD + 10))]
    prepared = float(fc.prepared.max()) if fc.usable else 0.0
    return prepared / target, float(came.max()) / target, fc.reason


@pytest.fixture(scope="module")
def fc_script():
    return _script_module("field_cases")


@pytest.mark.parametrize(("period", "day", "minute"), [
    ("1h", 9, 13 * 60), ("2h", 9, 12 * 60 + 30), ("30min", 9, 13 * 60 + 30), ("8h", 9, 17 * 60),
    ("daily", 10, 14 * 60), ("twice-daily", 10, 17 * 60)])
def test_a_recurring_burst_on_a_real_background_is_prepared_for(fc_script, period: str, day: int,
                                                                 minute: int) -> None:
    case = fc_script.Case("nasa", period, jitter=0, cv=0.0)
    trace = fc_script.generate(case)
    at = trace.index[0] + pd.Timedelta(days=day, minutes=minute - LEAD + 1)
    prepared, need, reason = _ask(trace, at)
    assert need > 2.5, "the case's burst needs more than the baseline"
    # the raise covers at least 80% of the burst (the evidence is the level two recent cycles reached)
    assert prepared >= 0.8 * need, reason


def test_a_weekday_only_burst_is_prepared_for_on_weekdays_and_not_on_the_weekend(fc_script) -> None:
    case = fc_script.Case("nasa", "weekdays", jitter=0, cv=0.0)  # 09:00, 120 min, Monday-Friday
    trace = fc_script.generate(case)
    first = trace.index[0]  # a Sunday
    assert first.dayofweek == 6

    def at(day: int) -> pd.Timestamp:
        return first + pd.Timedelta(days=day, minutes=9 * 60 - LEAD + 1)

    # the Monday and the Tuesday of the second week: the bursts are prepared for
    for day in (8, 9):
        prepared, need, reason = _ask(trace, at(day))
        assert need > 3 and prepared >= 0.8 * need, (day, reason)
    # the second Saturday and Sunday: nothing comes, nothing is raised for
    for day in (13, 14):
        prepared, need, reason = _ask(trace, at(day))
        assert need < 3 and prepared < 3, (day, prepared, reason)


def test_the_same_kind_of_day_is_counted_back_across_the_weekend() -> None:
    from prescaler.forecast import _same_kind_days

    days = _same_kind_days(4)
    assert days[0].tolist() == [3, 4, 5, 6]  # Monday: Friday, Thursday, Wednesday, Tuesday
    assert days[4].tolist() == [1, 2, 3, 4]  # Friday: Thursday .. Monday
    assert days[5].tolist() == [6, 7, 13, 14]  # Saturday: Sunday, Saturday, a week earlier
    assert days[6].tolist() == [1, 7, 8, 14]  # Sunday: Saturday, Sunday, ...
