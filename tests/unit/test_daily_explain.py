"""scripts/daily_explain.py: the daily profile reads only what the Lambda would see, and the floor
built on it raises MinCapacity ahead of a level the previous days reached."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from _scripts import ROOT
from _scripts import script_module as _script_module
from prescaler.sim import scenarios, twin

pytestmark = pytest.mark.unit


@pytest.fixture
def daily(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))  # it imports sweep_explain, its neighbour
    return _script_module("daily_explain")


def test_the_profile_is_the_level_two_of_the_previous_four_days_reached(daily) -> None:
    # Given four days, each with one minute at 12:00 of a different height
    y = np.zeros(5 * 1440)
    for day, height in enumerate((100.0, 400.0, 300.0, 200.0)):
        y[day * 1440 + 720] = height
    # Then 12:05 on day 5 (within ±10 min) sees the second highest of the four: 300
    assert daily.profile_level(y, 4 * 1440 + 725, 10, 4 * 1440 + 725) == 300.0
    # ... and outside the window nothing
    assert daily.profile_level(y, 4 * 1440 + 745, 10, 4 * 1440 + 745) == 0.0


def test_the_profile_reads_nothing_at_or_after_visible(daily) -> None:
    # Given six days of noise and a minute on day 6 whose day-5 window reaches past what is visible
    rng = np.random.default_rng(3)
    y = rng.uniform(0, 1000, 6 * 1440)
    i, visible = 5 * 1440 + 5, 4 * 1440 + 10  # day 5's window is [4*1440-5, 4*1440+15]
    before = daily.profile_level(y, i, 10, visible)
    assert before is not None  # days 2-4 are readable
    changed = y.copy()
    changed[visible:] = 1e6
    # Then the day whose window is not all visible is left out, and later minutes change nothing
    assert daily.profile_level(changed, i, 10, visible) == before
    # (visible, day 5's 1e6 would count: the level two days reached becomes the highest of days 2-4)
    highest = max(float(y[i - k * 1440 - 10: i - k * 1440 + 11].max()) for k in (2, 3, 4))
    assert daily.profile_level(changed, i, 10, len(y)) == highest
    # With fewer than two readable days there is no profile
    assert daily.profile_level(y, 1440 + 5, 10, 1440) is None


def test_the_floor_raises_ahead_of_a_level_the_previous_days_reached(daily) -> None:
    # Given three days of 2,000 invocations a minute with 12:00-12:30 at 9,000 (four instances' worth)
    minutes = 3 * 1440
    values = np.full(minutes, 2000.0)
    for day in range(3):
        values[day * 1440 + 720: day * 1440 + 750] = 9000.0
    index = pd.date_range("2026-01-05", periods=minutes, freq="min", tz="UTC", name="minute")
    demand = scenarios.from_minutes(pd.Series(values, index=index), "daily")
    model = twin.EndpointModel()
    r = twin._simulate("daily-floor", demand, model, 7, model.backstop, daily.floor_hook(model, 10))
    at = pd.Timestamp("2026-01-07 11:55", tz="UTC")
    # Then on day 3 MinCapacity is 4 before the rise (day 1 and 2 reached it); on day 1 it stayed at 2
    assert r.min_capacity[at] == 4
    assert r.min_capacity[pd.Timestamp("2026-01-05 11:55", tz="UTC")] == model.min_capacity
    # ... and is back to the baseline once the profile falls
    assert r.min_capacity[pd.Timestamp("2026-01-07 14:00", tz="UTC")] == model.min_capacity
