"""prescaler.forecast: per-minute invocations over the next minutes from up to 14 days of history.

Requirements pinned here (issue, "forecast"): sub-hour spikes seen at minute resolution in hourly,
daily and weekly cycles; a drifting spike start covered; one missing spike survived; a schedule that
moves followed after one cycle; daylight-saving shifts of local-time jobs (``timezone``); too little
history (< 24 h, or < 2 cycles of a pattern) -> no forecast-driven raise; explainable (the pattern,
the peak and its window).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from prescaler.forecast import CostModel, Forecast, discover_periods, forecast
from prescaler.history import MINUTE, SERIES_NAME, window
from prescaler.plan import PlannerSettings

pytestmark = pytest.mark.unit

DAY = 1440
WEEK = 7 * DAY
NY = "America/New_York"


def _end(history: pd.Series) -> pd.Timestamp:
    """Exclusive end of a per-minute history."""
    return history.index[-1] + MINUTE


def _at(fc: Forecast, t: pd.Timestamp) -> float:
    return float(fc.values.loc[t])


# --- minute resolution ---------------------------------------------------------------------------


def test_hourly_spike_peak_and_window_land_on_the_spike_minutes(synth) -> None:
    # Given 3 days of the reference traffic: baseline ~2,400/min, 10-minute spike to ~13,200/min
    # at minute 0 of every hour
    hist = synth.history(3 * DAY, synth.top_of_hour)
    end = _end(hist)
    # When the 30 minutes around the next top of the hour are forecast, without drift widening
    fc = forecast(hist, end + 45 * MINUTE, end + 75 * MINUTE, drift_minutes=0)
    # Then the forecast is usable, its peak is the spike level and its window is exactly the spike
    spike_start = end + 60 * MINUTE
    assert fc.usable
    assert fc.peak_invocations_per_minute == pytest.approx(synth.SPIKE, rel=0.1)
    assert fc.window_start == spike_start
    assert fc.window_end == spike_start + synth.SPIKE_MINUTES * MINUTE
    # And the minutes either side stay at the baseline
    assert fc.values.loc[: spike_start - MINUTE].max() < 1.2 * synth.BASELINE
    assert fc.values.loc[spike_start + synth.SPIKE_MINUTES * MINUTE:].max() < 1.2 * synth.BASELINE
    assert fc.values.loc[spike_start: spike_start + 9 * MINUTE].min() > 0.9 * synth.SPIKE


def test_a_schedule_that_keeps_its_minute_is_not_widened_by_the_default_drift(synth) -> None:
    # Given the same hourly traffic, every spike on the minute
    hist = synth.history(3 * DAY, synth.top_of_hour)
    end = _end(hist)
    # When forecast with the default drift allowance (1 minute)
    fc = forecast(hist, end + 45 * MINUTE, end + 75 * MINUTE)
    # Then the backtest learns no drift: widening would pay a minute early and late and prevent nothing
    assert "drift ±0 min" in fc.reason
    assert fc.window_start == end + 60 * MINUTE
    assert fc.window_end == end + 70 * MINUTE


def _wandering(index: pd.DatetimeIndex, origin: pd.Timestamp, shifts: list[int]) -> np.ndarray:
    """10-minute hourly spikes whose start moves by one of ``shifts`` minutes each hour (seeded)."""
    pos = ((index - origin) // MINUTE).to_numpy()
    hour = (pos + 30) // 60
    shift = np.random.default_rng(5).choice(shifts, size=10_000)[hour]
    rel = pos - 60 * hour
    return (rel >= shift) & (rel < shift + 10)


def test_the_drift_is_learned_a_minute_for_a_schedule_that_wanders_a_minute(synth) -> None:
    # Given 3 days of hourly spikes starting a minute early, on time or a minute late (no rhythm)
    hist = synth.history(3 * DAY - 30, lambda i: _wandering(i, synth.MONDAY, [-1, 0, 1]))
    top = _end(hist) + 30 * MINUTE
    # When forecast with a drift allowance of 5 minutes
    fc = forecast(hist, top - 15 * MINUTE, top + 20 * MINUTE, drift_minutes=5)
    # Then the backtest learns 1 minute, not 0 and not 5: the spike is covered from a minute early to
    # a minute late, and the window (the daily pattern's own ±1 minute at yesterday's start included)
    # is far narrower than five minutes either side
    assert "drift ±1 min" in fc.reason
    assert fc.values.loc[top - MINUTE: top + 10 * MINUTE].min() > 0.9 * synth.SPIKE
    assert top - 2 * MINUTE <= fc.window_start and fc.window_end <= top + 12 * MINUTE


def test_reason_and_fields_explain_the_pattern_and_the_peak(synth) -> None:
    # Given hourly traffic
    hist = synth.history(3 * DAY, synth.top_of_hour)
    end = _end(hist)
    # When forecast
    fc = forecast(hist, end + 50 * MINUTE, end + 57 * MINUTE + 60 * MINUTE)
    # Then the reason names the pattern, the peak and its window, and the numbers are reported
    assert fc.pattern in ("hourly", "daily", "weekly")
    assert fc.pattern in fc.reason
    assert f"{fc.peak_invocations_per_minute:,.0f}" in fc.reason
    assert f"{fc.window_start:%H:%M}-{fc.window_end:%H:%M}" in fc.reason
    assert fc.history_minutes == 3 * DAY
    # And the backtest says acting on it pays: the backstop breached, the pattern saves net instance-minutes
    assert fc.skill["backstop_breach_minutes"] > 0
    assert fc.skill[fc.pattern] > 0
    assert fc.peak_invocations_per_minute == pytest.approx(fc.values.max())


def test_a_young_endpoints_backtest_span_is_its_traffic_not_the_zero_filled_week(synth) -> None:
    # Given 3 days of hourly traffic read as a 14-day window (a new endpoint, a short trace: the
    # minutes before its first invocation are zero-filled), and the same traffic alone
    hist = synth.history(3 * DAY, synth.top_of_hour)
    end = _end(hist)
    padded = window(hist, end, pd.Timedelta(days=14))
    # When both are forecast
    lambda_view = forecast(padded, end + 50 * MINUTE, end + 57 * MINUTE + 60 * MINUTE)
    alone = forecast(hist, end + 50 * MINUTE, end + 57 * MINUTE + 60 * MINUTE)
    # Then the backtest scored the traffic's 3 days (less its first hour), not a week of zeros and
    # traffic, in both: the same span, the same backstop breaches judged, the same choice (the
    # savings differ a little: lags into the zeros read zero, where the traffic alone has nothing)
    assert lambda_view.usable and alone.usable
    assert "net over 3.0 days" in lambda_view.reason and "net over 3.0 days" in alone.reason
    assert "7.0 days" not in lambda_view.reason
    assert lambda_view.skill["backstop_breach_minutes"] == alone.skill["backstop_breach_minutes"]
    assert lambda_view.pattern == alone.pattern == "hourly"


# --- patterns found and named --------------------------------------------------------------------


@pytest.mark.parametrize("days", [2, 14])
def test_hourly_pattern_is_named_hourly(synth, days: int) -> None:
    # Given spikes at the top of every hour and nothing else
    hist = synth.history(days * DAY, synth.top_of_hour)
    end = _end(hist)
    # When the next spike is forecast
    fc = forecast(hist, end + 50 * MINUTE, end + 70 * MINUTE)
    # Then the hourly pattern is the one used and reported
    assert fc.usable
    assert fc.pattern == "hourly"


def _daily_at_nine(index: pd.DatetimeIndex) -> np.ndarray:
    return (index.hour == 9) & (index.minute < 10)


def test_daily_only_spike_is_found_and_named_daily(synth) -> None:
    # Given 4 days with a spike once a day at 09:00 UTC only
    hist = synth.history(4 * DAY, _daily_at_nine)
    end = _end(hist)  # midnight
    nine = end + 9 * 60 * MINUTE
    # When 08:30-09:30 of the next day is forecast
    fc = forecast(hist, nine - 30 * MINUTE, nine + 30 * MINUTE, drift_minutes=0)
    # Then the daily pattern puts the peak on 09:00-09:10
    assert fc.usable
    assert fc.pattern == "daily"
    assert (fc.window_start, fc.window_end) == (nine, nine + 10 * MINUTE)
    assert fc.peak_invocations_per_minute == pytest.approx(synth.SPIKE, rel=0.1)
    # And no spike is forecast at the other minutes of the hour
    assert fc.values.loc[: nine - MINUTE].max() < 1.2 * synth.BASELINE


def _monday_at_nine(index: pd.DatetimeIndex) -> np.ndarray:
    return (index.dayofweek == 0) & _daily_at_nine(index)


@pytest.mark.parametrize("noise", [0.0, 0.02])
def test_weekly_only_spike_is_found_and_named_weekly(synth, noise: float) -> None:
    # Given exactly 14 days of history ending Monday 08:50 with a spike on Mondays at 09:00 only
    start = synth.MONDAY + (8 * 60 + 50) * MINUTE
    hist = synth.history(2 * WEEK, _monday_at_nine, start=start, noise=noise)
    end = _end(hist)
    assert end.dayofweek == 0 and end.hour == 8
    # When the coming 40 minutes are forecast
    fc = forecast(hist, end, end + 40 * MINUTE, drift_minutes=0)
    # Then the weekly pattern puts the peak on Monday 09:00-09:10
    assert fc.usable
    assert fc.pattern == "weekly"
    assert (fc.window_start, fc.window_end) == (end + 10 * MINUTE, end + 20 * MINUTE)
    assert fc.peak_invocations_per_minute == pytest.approx(synth.SPIKE, rel=0.1)


def test_weekly_is_not_used_with_less_than_two_weeks(synth) -> None:
    # Given 13 days of the same Monday-only traffic (one weekly cycle)
    start = synth.MONDAY + (8 * 60 + 50) * MINUTE + DAY * MINUTE
    hist = synth.history(13 * DAY, _monday_at_nine, start=start)
    end = _end(hist)
    # When the Monday 09:00 slot is forecast
    fc = forecast(hist, end, end + 40 * MINUTE)
    # Then the weekly pattern is neither eligible nor used, so no spike is forecast
    assert "weekly" not in fc.skill
    assert fc.pattern != "weekly"
    assert fc.peak_invocations_per_minute < 1.2 * synth.BASELINE


def test_daily_is_not_used_with_less_than_two_days(synth) -> None:
    # Given 36 hours of daily-only traffic (one daily cycle)
    hist = synth.history(36 * 60, _daily_at_nine, start=synth.MONDAY + 12 * 60 * MINUTE)
    end = _end(hist)  # Tuesday 00:00 + 24 h = Wednesday 00:00
    nine = end + 9 * 60 * MINUTE
    # When 09:00 is forecast
    fc = forecast(hist, nine - 10 * MINUTE, nine + 20 * MINUTE)
    # Then daily is not eligible
    assert "daily" not in fc.skill
    assert fc.pattern != "daily"


# --- drift, missing spike, moved schedule --------------------------------------------------------

def test_spike_start_drifting_three_minutes_is_covered(synth) -> None:
    # Given 3 days of hourly spikes starting 3 minutes early, on time or 3 minutes late (seeded, no
    # rhythm: no period predicts the drift itself)
    hist = synth.history(3 * DAY - 30, lambda i: _wandering(i, synth.MONDAY, [-3, 0, 3]))
    top = _end(hist) + 30 * MINUTE
    # When forecast with a drift allowance of 3 minutes
    fc = forecast(hist, top - 15 * MINUTE, top + 20 * MINUTE, drift_minutes=3)
    # Then the backtest learns all 3 minutes, and the forecast is high from the earliest drifted
    # start (:57) to the latest drifted end (:12)
    assert fc.usable and "drift ±3 min" in fc.reason
    covered = fc.values.loc[top - 3 * MINUTE: top + 12 * MINUTE]
    assert covered.min() > 0.9 * synth.SPIKE
    assert fc.window_start <= top - 3 * MINUTE
    assert fc.window_end >= top + 13 * MINUTE


@pytest.mark.parametrize("missing", [1, 2, 3])
def test_one_missing_spike_is_survived(synth, missing: int) -> None:
    # Given hourly spikes where the spike `missing` hours back did not come
    n = 3 * DAY
    gone_from = n - missing * 60

    def mask(index: pd.DatetimeIndex) -> np.ndarray:
        pos = np.arange(len(index))
        return synth.top_of_hour(index) & ~((pos >= gone_from) & (pos < gone_from + 60))

    hist = synth.history(n, mask)
    end = _end(hist)
    top = end + 60 * MINUTE
    # When the next top of the hour is forecast
    fc = forecast(hist, top - 10 * MINUTE, top + 15 * MINUTE)
    # Then the next spike is still forecast in full
    assert fc.usable
    assert fc.values.loc[top: top + 9 * MINUTE].min() > 0.9 * synth.SPIKE


def _moved(index: pd.DatetimeIndex, moved_from: int) -> np.ndarray:
    pos = np.arange(len(index))
    old = (index.minute < 10) & (pos < moved_from)
    new = (index.minute >= 15) & (index.minute < 25) & (pos >= moved_from)
    return old | new


@pytest.mark.parametrize("days", [3, 14])
def test_a_spike_seen_once_is_not_repeated_at_full_height(synth, days: int) -> None:
    # Given hourly spikes at :00 for days, then one spike at :15 (a one-off, or a job that moved:
    # one sighting cannot tell the two apart)
    n = days * DAY
    hist = synth.history(n, lambda i: _moved(i, n - 60))
    end = _end(hist)
    # When the next hour is forecast
    fc = forecast(hist, end + 5 * MINUTE, end + 30 * MINUTE)
    # Then the :15 spike is not repeated without a second sighting (issue 10: one-off spikes)
    assert fc.values.loc[end + 15 * MINUTE: end + 24 * MINUTE].max() < 1.2 * synth.BASELINE


@pytest.mark.parametrize("days", [3, 14])
def test_moved_schedule_is_followed_after_two_cycles(synth, days: int) -> None:
    # Given hourly spikes at :00, then two at :15
    n = days * DAY
    hist = synth.history(n, lambda i: _moved(i, n - 120))
    end = _end(hist)
    # When the next hour is forecast
    fc = forecast(hist, end + 5 * MINUTE, end + 30 * MINUTE)
    # Then the spike is expected at :15-:24
    assert fc.values.loc[end + 15 * MINUTE: end + 24 * MINUTE].min() > 0.9 * synth.SPIKE


# --- daylight saving -----------------------------------------------------------------------------


def _nine_in_new_york(index: pd.DatetimeIndex) -> np.ndarray:
    local = index.tz_convert(NY)
    return (local.hour == 9) & (local.minute < 10)


@pytest.mark.parametrize(
    ("start", "new_utc_hour", "old_utc_hour"),
    [
        # 2026-03-08: EST (UTC-5) -> EDT (UTC-4); 09:00 local moves from 14:00 to 13:00 UTC
        (pd.Timestamp("2026-03-01 00:00", tz="UTC"), 13, 14),
        # 2026-11-01: EDT -> EST; 09:00 local moves from 13:00 to 14:00 UTC
        (pd.Timestamp("2026-10-25 00:00", tz="UTC"), 14, 13),
    ],
)
def test_local_time_daily_job_is_forecast_at_its_new_utc_hour_after_dst(
    synth, start: pd.Timestamp, new_utc_hour: int, old_utc_hour: int
) -> None:
    # Given a week of a daily job at 09:00 New York time, history ending at 12:00 UTC on the
    # day the clocks change
    hist = synth.history(7 * DAY + 12 * 60, _nine_in_new_york, start=start)
    end = _end(hist)
    new_slot = end.normalize() + new_utc_hour * 60 * MINUTE
    old_slot = end.normalize() + old_utc_hour * 60 * MINUTE
    assert new_slot.tz_convert(NY).hour == 9
    # When the next hours are forecast in New York wall-clock time
    fc = forecast(hist, end + 30 * MINUTE, end + 150 * MINUTE, timezone=NY, drift_minutes=0)
    # Then the spike is expected at 09:00 local, the new UTC hour, and not at the old one
    assert fc.usable
    assert fc.pattern == "daily"
    assert fc.window_start == new_slot
    assert fc.values.loc[new_slot: new_slot + 9 * MINUTE].min() > 0.9 * synth.SPIKE
    assert fc.values.loc[old_slot: old_slot + 9 * MINUTE].max() < 1.2 * synth.BASELINE
    # And a UTC forecaster would have kept the old UTC hour (the test can tell the two apart)
    utc = forecast(hist, end + 30 * MINUTE, end + 150 * MINUTE, timezone="UTC", drift_minutes=0)
    assert utc.window_start == old_slot


# --- too little or no information -> unusable ------------------------------------------------------


def test_less_than_six_hourly_cycles_is_unusable(synth) -> None:
    # Given 5 h 50 min of clean hourly spikes (five cycles and a bit)
    hist = synth.history(5 * 60 + 50, synth.top_of_hour)
    end = _end(hist)
    # When forecast
    fc = forecast(hist, end + 5 * MINUTE, end + 25 * MINUTE)
    # Then it is not usable and says why
    assert not fc.usable
    assert fc.pattern == "none"
    assert "too little history" in fc.reason


def test_six_hourly_cycles_prove_an_hourly_spike(synth) -> None:
    # Given exactly 6 hours of clean hourly spikes, ending at :50 (issue 10: short history)
    hist = synth.history(6 * 60, synth.top_of_hour, start=synth.MONDAY + 50 * MINUTE)
    end = _end(hist)
    # When the next top of the hour is forecast
    fc = forecast(hist, end, end + 25 * MINUTE, drift_minutes=0)
    # Then the hourly spike is forecast, after 6 hours rather than 24
    assert fc.usable
    assert fc.pattern == "hourly"
    assert (fc.window_start, fc.window_end) == (end + 10 * MINUTE, end + 20 * MINUTE)


def test_a_young_endpoints_cron_spikes_act_in_the_zero_filled_window_the_lambda_reads() -> None:
    # Given the Azure Functions sample's first 7 hours (hourly and half-hourly cron spikes from 07:59)
    # as the Lambda reads them at 14:55: a 14-day window, zero-filled before the first invocation
    from prescaler.sim import scenarios

    minutes = scenarios.load_trace("data/traces/azure_functions_2019_sample500_timer_8h_1min.csv")
    now = pd.Timestamp("1970-01-01 14:55", tz="UTC")
    seen = minutes[minutes.index < now]
    window = pd.date_range(now - pd.Timedelta(days=14), now - MINUTE, freq="min", name=seen.index.name)
    zero_filled = seen.reindex(window, fill_value=0.0)
    # (the target on the file's own scale that `backtest --peak-rps 220` amounts to: 2,400 x 348 / 13,200)
    cost = CostModel(target_invocations_per_instance=63.0)
    # When forecast from it and from the same minutes without the zeros (a history that starts with the
    # traffic, as the simulator read it before it read the Lambda's window)
    lambda_view = forecast(zero_filled, now, now + 36 * MINUTE, cost=cost)
    twin_view = forecast(seen, now, now + 36 * MINUTE, cost=cost)
    # Then both act on the hourly pattern for the 15:00 spike: the backstop's breaches as the traffic
    # starts (no cycle before them to repeat) do not make a young endpoint's rhythm look like noise
    for fc in (lambda_view, twin_view):
        assert fc.usable, fc.reason
        assert fc.pattern == "hourly"
        assert fc.window_start == pd.Timestamp("1970-01-01 15:00", tz="UTC")


def test_a_young_endpoints_rhythm_acts_as_soon_in_the_lambdas_window_as_in_its_traffic_alone() -> None:
    # Given the Azure Functions sample's first three hours and a quarter at `--peak-rps 120`'s scale
    # (target 116 a minute on the file's own scale: 2,400 x 348 / 7,200), where the backstop breaches
    # the :00 spikes and a 15-minute rhythm (:15, :30, :45 bursts) is the first provable one
    from prescaler.sim import scenarios

    minutes = scenarios.load_trace("data/traces/azure_functions_2019_sample500_timer_8h_1min.csv")
    now = pd.Timestamp("1970-01-01 11:11", tz="UTC")
    seen = minutes[minutes.index < now - 2 * MINUTE]
    zero_filled = window(seen, now - 2 * MINUTE, pd.Timedelta(days=14))
    cost = CostModel(target_invocations_per_instance=116.0)
    # When forecast from the Lambda's zero-filled window and from the traffic alone
    views = [forecast(h, now, now + 36 * MINUTE, cost=cost) for h in (zero_filled, seen)]
    # Then both act on the 15-minute rhythm for the 11:15 burst (the zero-filled week scored as well
    # judged the rhythm by its first cycles and held until 12:11)
    for fc in views:
        assert fc.usable and fc.pattern == "15-minute", fc.reason
        assert fc.window_start == pd.Timestamp("1970-01-01 11:15", tz="UTC")


def test_a_silent_window_is_data_and_one_sighting_is_not_repeated(synth) -> None:
    # Given a 14-day window whose first 13 days and 1 hour are silent (endpoint just created), then
    # hourly spikes and one extra spike at 12:30 yesterday
    hist = synth.history(2 * WEEK, synth.top_of_hour)
    hist.iloc[: 2 * WEEK - 23 * 60] = 0.0
    extra = (hist.index.hour == 12) & (hist.index.minute >= 30) & (hist.index.minute < 40)
    hist[extra & (hist.index >= hist.index[-1] - pd.Timedelta(hours=23))] = synth.SPIKE
    end = _end(hist)
    # When forecast
    fc = forecast(hist, end + 50 * MINUTE, end + 70 * MINUTE)
    # Then the calendar span counts (idle minutes are data) and the hourly spike is forecast
    assert fc.history_minutes == 2 * WEEK
    assert fc.usable
    assert fc.values.loc[end + 60 * MINUTE: end + 69 * MINUTE].min() > 0.9 * synth.SPIKE
    # And the daily slot of the one-off 12:30 spike is not forecast (one sighting, no evidence)
    at = end.normalize() + pd.Timedelta(hours=12, minutes=30)
    later = forecast(hist, at - 10 * MINUTE, at + 20 * MINUTE)
    assert later.values.loc[at + 2 * MINUTE: at + 8 * MINUTE].max() < 1.2 * synth.BASELINE


def test_all_zero_history_is_unusable_with_no_data(synth) -> None:
    hist = synth.history(3 * DAY) * 0.0
    end = _end(hist)
    fc = forecast(hist, end, end + 7 * MINUTE)
    assert not fc.usable
    assert "no data" in fc.reason
    assert fc.peak_invocations_per_minute == 0.0


def test_empty_history_is_unusable_with_no_data() -> None:
    empty = pd.Series([], index=pd.DatetimeIndex([], tz="UTC"), dtype=float, name=SERIES_NAME)
    start = pd.Timestamp("2026-03-02 10:00", tz="UTC")
    fc = forecast(empty, start, start + 7 * MINUTE)
    assert not fc.usable
    assert "no data" in fc.reason
    assert len(fc.values) == 7


@pytest.mark.parametrize("kind", ["gaussian", "lognormal"])
def test_patternless_noise_is_unusable(kind: str) -> None:
    # Given 3 days of noise around 2,400/min with no cycle in it
    rng = np.random.default_rng(11)
    n = 3 * DAY
    noise = rng.standard_normal(n) if kind == "gaussian" else rng.lognormal(0.0, 0.5, n) - 1.0
    values = 2400 * (1 + (0.1 if kind == "gaussian" else 1.0) * noise)
    index = pd.date_range("2026-03-02", periods=n, freq="min", tz="UTC", name="minute")
    hist = pd.Series(np.clip(values, 0, None), index=index, name=SERIES_NAME)
    # When forecast
    fc = forecast(hist, index[-1] + MINUTE, index[-1] + 31 * MINUTE)
    # Then there is no pattern worth acting on
    assert not fc.usable


def test_unusable_forecast_repeats_the_last_observed_minute(synth) -> None:
    hist = synth.history(5 * 60, synth.top_of_hour)
    end = _end(hist)
    fc = forecast(hist, end, end + 7 * MINUTE)
    assert not fc.usable
    assert fc.values.tolist() == [hist.iloc[-1]] * 7


def test_empty_range_is_rejected(synth) -> None:
    hist = synth.history(DAY)
    end = _end(hist)
    with pytest.raises(ValueError):
        forecast(hist, end, end)


# --- output shape --------------------------------------------------------------------------------


def test_to_dict_round_trips_through_json(synth) -> None:
    # Given a usable and an unusable forecast
    hist = synth.history(3 * DAY, synth.top_of_hour)
    end = _end(hist)
    for fc in (forecast(hist, end + 50 * MINUTE, end + 70 * MINUTE),
               forecast(hist.iloc[-600:], end, end + 7 * MINUTE)):
        # When serialised and read back
        d = fc.to_dict()
        back = json.loads(json.dumps(d))
        # Then nothing is lost and the numbers are the forecast's
        assert back == d
        assert back["pattern"] == fc.pattern
        assert back["usable"] is fc.usable
        assert back["peak_invocations_per_minute"] == pytest.approx(fc.peak_invocations_per_minute, abs=1e-3)
        assert pd.Timestamp(back["window_start"]) == fc.window_start
        assert pd.Timestamp(back["window_end"]) == fc.window_end
        assert pd.Timestamp(back["start"]) == fc.start
        assert back["reason"] == fc.reason


def test_values_cover_the_requested_range_per_minute(synth) -> None:
    hist = synth.history(3 * DAY, synth.top_of_hour)
    end = _end(hist)
    start = end + pd.Timedelta(minutes=3, seconds=20)  # floored to the minute
    fc = forecast(hist, start, start + 7 * MINUTE)
    assert fc.values.index[0] == end + 3 * MINUTE
    assert len(fc.values) == 7
    assert fc.values.index.freqstr == "min"
    assert str(fc.values.index.tz) == "UTC"


# --- property: never NaN, never negative ----------------------------------------------------------


@st.composite
def _histories(draw) -> pd.Series:
    """Arbitrary non-negative per-minute histories, long enough to reach every code path."""
    n = draw(st.sampled_from([0, 1, 5, 200, 1500, 3000, 3000, 3200, 3200, 3200]))
    elements = st.floats(0, 1e6, allow_nan=False, allow_infinity=False)
    fill = st.sampled_from([0.0, 1.0, 2400.0, 13200.0])
    values = draw(hnp.arrays(np.float64, n, elements=elements, fill=fill))
    if n and draw(st.integers(0, 3)):  # mostly with a periodic spike, so many draws find a pattern
        period = draw(st.sampled_from([60, 1440]))
        values = values + np.where(np.arange(n) % period < 10, draw(st.floats(1, 1e9)), 0.0)
    start = pd.Timestamp("2026-03-01", tz="UTC") + draw(st.integers(0, 20 * DAY)) * MINUTE
    index = pd.date_range(start, periods=n, freq="min", name="minute")
    return pd.Series(values, index=index, name=SERIES_NAME)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    hist=_histories(),
    offset=st.integers(-30, 180),
    width=st.integers(1, 90),
    drift=st.integers(0, 5),
    timezone=st.sampled_from(["UTC", NY, "Europe/London"]),
)
def test_forecast_is_never_nan_or_negative(hist, offset, width, drift, timezone) -> None:
    # Given any non-negative history and any forecast range near its end
    end = hist.index[-1] + MINUTE if len(hist) else pd.Timestamp("2026-03-01", tz="UTC")
    start = end + offset * MINUTE
    # When forecast
    fc = forecast(hist, start, start + width * MINUTE, drift_minutes=drift, timezone=timezone)
    values = fc.values.to_numpy()
    # Then every value and the peak are finite and non-negative, over exactly the range
    assert len(values) == width
    assert np.isfinite(values).all()
    assert (values >= 0).all()
    assert np.isfinite(fc.peak_invocations_per_minute)
    assert fc.peak_invocations_per_minute >= 0
    # And the peak is the largest forecast minute, inside its window, inside the range
    assert fc.peak_invocations_per_minute == pytest.approx(values.max())
    assert fc.start <= fc.window_start < fc.window_end <= fc.end
    if fc.usable:
        in_window = fc.values.loc[fc.window_start: fc.window_end - MINUTE]
        assert in_window.max() == pytest.approx(fc.peak_invocations_per_minute)
        assert (in_window >= 0.9 * fc.peak_invocations_per_minute - 1e-9).all()
    # And the JSON summary is valid JSON
    json.dumps(fc.to_dict(), allow_nan=False)


# --- issue 10 §3: any period, cost-aware, short history; issue 9 case 6: calendar span --------------


@pytest.mark.parametrize("period", [30, 120, 480])
def test_recurring_periods_are_discovered_from_the_demand(synth, period: int) -> None:
    # Given 4 days of 10-minute spikes every `period` minutes (not an hour, a day or a week)
    hist = synth.history(4 * DAY, lambda i: ((i - synth.MONDAY) // MINUTE) % period < 10)
    # When the autocorrelation is searched for periods
    found = discover_periods(hist.to_numpy())
    # Then the period itself comes first, not one of its multiples
    assert found[0] == period


def test_a_two_hour_period_is_discovered_and_forecast(synth) -> None:
    # Given 2 days of 10-minute spikes every 2 hours, at even hours only
    hist = synth.history(2 * DAY, lambda i: (i.hour % 2 == 0) & (i.minute < 10))
    end = _end(hist)  # midnight: the next spike is at 00:00, the one after at 02:00
    # When the next 3 hours are forecast
    fc = forecast(hist, end + 50 * MINUTE, end + 130 * MINUTE, drift_minutes=0)
    # Then the discovered 2-hour pattern forecasts the 02:00 spike and not a 01:00 one
    assert fc.usable
    assert fc.pattern == "2-hour"
    assert 120 in fc.periods
    two = end + 120 * MINUTE
    assert (fc.window_start, fc.window_end) == (two, two + 10 * MINUTE)
    assert fc.values.loc[end + 60 * MINUTE: end + 69 * MINUTE].max() < 1.2 * synth.BASELINE
    # And the hourly cycle alone would have been refused by the backtest (it forecasts 01:00 too)
    assert fc.skill["2-hour"] > fc.skill.get("hourly", -np.inf)


def _idle_dawn(hist: pd.Series) -> pd.Series:
    """Zero demand 05:00-09:00 UTC (the endpoint is idle then)."""
    hist[(hist.index.hour >= 5) & (hist.index.hour < 9)] = 0.0
    return hist


def test_case6_daily_spike_with_an_idle_dawn_and_a_missing_day_picks_daily(synth) -> None:
    # Given the 14-day window read at 08:55 (it starts on an idle minute) of a 09:00 UTC daily spike on
    # an endpoint idle 05:00-09:00, with yesterday's spike missing (a holiday)
    end = synth.MONDAY + 15 * DAY * MINUTE + (8 * 60 + 55) * MINUTE
    hist = _idle_dawn(synth.history(2 * WEEK, _daily_at_nine, start=end - 2 * WEEK * MINUTE))
    yesterday = hist.index.normalize() == (end - DAY * MINUTE).normalize()
    hist[yesterday & _daily_at_nine(hist.index)] = synth.BASELINE
    assert hist.iloc[0] == 0.0 and _end(hist) == end
    nine = end + 5 * MINUTE
    # When the next 30 minutes are forecast
    fc = forecast(hist, end, nine + 25 * MINUTE, drift_minutes=0)
    # Then the daily pattern is chosen: the calendar span counts, idle minutes are data
    assert fc.history_minutes == 2 * WEEK
    assert fc.usable, fc.reason
    assert fc.pattern == "daily"
    assert (fc.window_start, fc.window_end) == (nine, nine + 10 * MINUTE)
    assert fc.peak_invocations_per_minute == pytest.approx(synth.SPIKE, rel=0.1)


def test_case6_wednesday_only_spikes_over_15_days_pick_weekly(synth) -> None:
    # Given 15 days of Wednesday-only 09:00 spikes on an endpoint idle 05:00-09:00, of which the
    # forecaster reads the 14-day window ending Wednesday 08:55 (it starts on an idle minute)
    end = synth.MONDAY + 2 * DAY * MINUTE + 2 * WEEK * MINUTE + (8 * 60 + 55) * MINUTE
    assert end.dayofweek == 2
    wednesday = lambda i: (i.dayofweek == 2) & _daily_at_nine(i)  # noqa: E731
    traffic = _idle_dawn(synth.history(15 * DAY, wednesday, start=end - 15 * DAY * MINUTE))
    hist = window(traffic, end, pd.Timedelta(days=14))
    assert hist.iloc[0] == 0.0 and len(hist) == 2 * WEEK
    nine = end + 5 * MINUTE
    # When the next 30 minutes are forecast
    fc = forecast(hist, end, nine + 25 * MINUTE, drift_minutes=0)
    # Then the weekly pattern is considered and chosen
    assert "weekly" in fc.skill
    assert fc.usable, fc.reason
    assert fc.pattern == "weekly"
    assert (fc.window_start, fc.window_end) == (nine, nine + 10 * MINUTE)


def test_a_pattern_the_backstop_serves_is_not_acted_on(synth) -> None:
    # Given hourly bumps that the backstop's baseline serves without breaching (2 instances serve
    # 2 x 2,400 x 1.25 = 6,000/min at saturation)
    hist = synth.history(3 * DAY, synth.top_of_hour, baseline=1500.0, spike=5500.0)
    end = _end(hist)
    # When forecast
    fc = forecast(hist, end + 50 * MINUTE, end + 70 * MINUTE)
    # Then nothing is worth acting on: no breach to prevent, instance-minutes to spend
    assert not fc.usable
    assert fc.skill["backstop_breach_minutes"] == 0
    assert "no pattern worth acting on" in fc.reason


@pytest.mark.parametrize(("price", "acts"), [(0.5, False), (30.0, True)])
def test_acting_depends_on_the_price_of_a_breach_minute(synth, price: float, acts: bool) -> None:
    # Given hourly spikes that the backstop breaches at their start
    hist = synth.history(3 * DAY, synth.top_of_hour)
    end = _end(hist)
    # When a breach minute is worth `price` instance-minutes
    fc = forecast(hist, end + 50 * MINUTE, end + 70 * MINUTE, cost=CostModel(breach_minute_cost=price))
    # Then the hourly spike is acted on only when the breaches it prevents are worth the instances
    assert fc.usable is acts
    assert fc.skill["backstop_breach_minutes"] > 0


def test_the_azure_functions_cron_spikes_are_forecast_within_its_8_hours() -> None:
    # Given the real Azure Functions 2019 timer-trigger sample (8 h, 1-min, cron spikes at :00 and :30)
    from prescaler.sim import scenarios

    minutes = scenarios.load_trace("data/traces/azure_functions_2019_sample500_timer_8h_1min.csv")
    demand = scenarios.from_minutes(minutes, "azure functions", peak_rps=220, warmup_days=0)
    per_minute = demand.per_minute_invocations()
    settings = PlannerSettings()
    # When the pre-scaler's forecast is asked at :54 of each hour from what CloudWatch shows then
    acted = []
    for at in per_minute.index[per_minute.index.minute == 54]:
        history = per_minute[per_minute.index < at - 2 * MINUTE]
        fc = forecast(history, at, at + 36 * MINUTE, cost=settings.cost_model())
        top = at + 6 * MINUTE
        if fc.usable and fc.values.loc[top] >= 0.9 * per_minute.get(top, np.inf):
            acted.append(at)
    # Then the :00 spikes are forecast at full height before the trace ends (less than the 24 h
    # the old rule asked for), and never in the first six hours (six cycles to prove them)
    assert acted
    assert acted[0] - per_minute.index[0] >= pd.Timedelta(hours=6)


def test_the_memoised_choice_is_the_choice_made_afresh(synth) -> None:
    # Given hourly spikes, forecast once with nothing memoised
    from prescaler import forecast as module

    hist = synth.history(3 * DAY + 25, synth.top_of_hour)
    end = _end(hist)
    module._MEMO.clear()
    fresh = forecast(hist, end + 30 * MINUTE, end + 45 * MINUTE)
    # When the same forecast is asked again (memoised) and after the memo is emptied
    again = forecast(hist, end + 30 * MINUTE, end + 45 * MINUTE)
    module._MEMO.clear()
    cleared = forecast(hist, end + 30 * MINUTE, end + 45 * MINUTE)
    # Then all three agree
    for fc in (again, cleared):
        assert (fc.pattern, fc.usable, fc.skill, fc.reason) == (fresh.pattern, fresh.usable, fresh.skill, fresh.reason)
        pd.testing.assert_series_equal(fc.values, fresh.values)
    # And different data in the same whole hours is not served the old choice
    flat = hist.copy()
    flat[:] = synth.BASELINE
    assert not forecast(flat, end + 30 * MINUTE, end + 45 * MINUTE).usable


def test_a_new_endpoints_zero_filled_window_does_not_count_as_cycles(synth) -> None:
    # Given the reader's 14-day window of a new endpoint: zeros, then 4 h 50 min of hourly spikes
    hist = synth.history(2 * WEEK, synth.top_of_hour)
    hist.iloc[: 2 * WEEK - (4 * 60 + 50)] = 0.0
    end = _end(hist)
    # When forecast
    fc = forecast(hist, end, end + 25 * MINUTE)
    # Then the zeros before the first invocation prove nothing: too little history for the hourly
    # pattern (six cycles, traffic in all but the first)
    assert not fc.usable
    assert "too little history" in fc.reason
    # And once traffic has run five hours (the sixth cycle may be the window's idle start) it may act
    more = synth.history(2 * WEEK, synth.top_of_hour)
    more.iloc[: 2 * WEEK - (5 * 60 + 50)] = 0.0
    assert forecast(more, end, end + 25 * MINUTE).usable


# --- a burst whose start jitters: the drift is learned in the backtest ---------------------------

#: Start of the 09:00 burst each day (minutes from 09:00): up to 6 minutes early or late (seeded).
_DAILY_JITTER = np.random.default_rng(11).integers(-6, 7, size=64)


def _daily_jittered(index: pd.DatetimeIndex) -> np.ndarray:
    day = ((index - MONDAY_UTC) // pd.Timedelta(days=1)).to_numpy()
    rel = (index.hour * 60 + index.minute).to_numpy() - 9 * 60 - _DAILY_JITTER[day % len(_DAILY_JITTER)]
    return (rel >= 0) & (rel < 20)


MONDAY_UTC = pd.Timestamp("2026-03-02 00:00", tz="UTC")


def test_a_daily_burst_whose_start_jitters_six_minutes_is_covered_with_a_learned_drift(synth) -> None:
    # Given 8 days of a 20-minute burst at 09:00 whose start is up to 6 minutes early or late each day
    # (the caller's drift allowance is the default 1 minute)
    hist = synth.history(8 * DAY + 8 * 60 + 40, _daily_jittered)
    end = _end(hist)
    nine = end + 20 * MINUTE
    assert (nine.hour, nine.minute) == (9, 0)
    # When the coming hour is forecast
    fc = forecast(hist, end, end + 60 * MINUTE)
    # Then the daily pattern is used with the drift its backtest found pays (wider than 1 minute)
    assert fc.usable, fc.reason
    assert fc.pattern == "daily"
    assert "drift ±1 min" not in fc.reason
    # And the burst is prepared for at full height from the earliest start the last days saw (08:54)
    # to the latest (09:06): every minute it may begin (later on, the backstop has caught up)
    prepared = fc.prepared.loc[nine - 6 * MINUTE: nine + 6 * MINUTE]
    assert prepared.min() > 0.9 * synth.SPIKE


def test_a_one_off_burst_in_jittered_traffic_is_not_repeated(synth) -> None:
    # Given the same jittered daily burst, and once (yesterday at 15:00) a burst four times as high
    hist = synth.history(8 * DAY + 8 * 60 + 40, _daily_jittered)
    end = _end(hist)
    once = end - DAY * MINUTE + (6 * 60 + 20) * MINUTE
    hist.loc[once: once + 15 * MINUTE] = 4 * synth.SPIKE
    # When today's 15:00 is forecast
    fc = forecast(hist, once + DAY * MINUTE - 30 * MINUTE, once + DAY * MINUTE + 30 * MINUTE)
    # Then the one sighting is not repeated, whatever drift was learned
    assert fc.values.max() < synth.SPIKE


# --- judged: "no pattern" as a finding, not as a lack of data ------------------------------------


def _judged_case(kind: str, synth) -> pd.Series:
    hist = synth.history(3 * DAY, synth.top_of_hour)
    if kind == "empty":
        hist[:] = 0.0
    elif kind == "flat":
        hist[:] = synth.BASELINE
    elif kind == "flat after a zero-filled start":
        hist[:] = 0.0
        hist.iloc[-600:] = synth.BASELINE
    elif kind == "unreadable":
        hist.iloc[-5] = float("nan")
    elif kind == "short":
        hist = hist.iloc[-5 * 60:]
    elif kind == "patternless":
        hist[:] = synth.BASELINE
        hist.iloc[::97] = 13200.0  # bursts every 97 minutes: no cycle the backtest keeps
        hist.iloc[-DAY:] = synth.BASELINE + np.arange(DAY) % 7
    return hist


@pytest.mark.parametrize(("kind", "usable", "judged", "reason"), [
    ("empty", False, False, "no data"),
    ("flat", False, False, "flat history"),
    ("flat after a zero-filled start", False, False, "flat history"),
    ("unreadable", False, False, "unreadable data"),
    ("short", False, False, "too little history"),
    ("patternless", False, True, "no pattern worth acting on"),
    ("hourly", True, True, "hourly pattern"),
])
def test_a_forecast_says_whether_no_pattern_was_judged_or_the_data_was_lacking(
        kind: str, usable: bool, judged: bool, reason: str, synth) -> None:
    # Given missing, flat, unreadable, short, backtested-patternless or hourly history
    hist = _judged_case(kind, synth)
    end = _end(hist)
    # When forecast
    fc = forecast(hist, end, end + 15 * MINUTE)
    # Then only a backtest's finding is judged (the planner relaxes a raise whose pattern is gone on it)
    assert (fc.usable, fc.judged) == (usable, judged), fc.reason
    assert fc.reason.startswith(reason), fc.reason
    assert fc.to_dict()["judged"] is judged


@pytest.mark.parametrize("at", ["11:26", "12:26"])
def test_a_young_endpoints_zero_filled_window_discovers_the_periods_its_traffic_holds(at: str) -> None:
    # Given the Azure Functions sample (cron bursts every 15 and 30 minutes from 07:59) as the Lambda
    # reads it: 14 days, zero-filled before the first invocation
    from prescaler.sim import scenarios

    minutes = scenarios.load_trace("data/traces/azure_functions_2019_sample500_timer_8h_1min.csv")
    now = pd.Timestamp(f"1970-01-01 {at}", tz="UTC")
    seen = minutes[minutes.index < now - 2 * MINUTE]
    zero_filled = window(seen, now - 2 * MINUTE)
    # (the zeros swamp the autocorrelation of the whole window: no period stands out in it)
    assert discover_periods(zero_filled.to_numpy()) == []
    # When forecast from the window and from the traffic alone
    lambda_view = forecast(zero_filled, now, now + 36 * MINUTE)
    traffic = forecast(seen, now, now + 36 * MINUTE)
    # Then the window's candidates include the same discovered periods (15 minutes among them)
    assert lambda_view.periods == traffic.periods and 15 in lambda_view.periods
