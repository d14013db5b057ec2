"""prescaler.history: raw datapoints -> a per-minute UTC series of invocations.

Requirements pinned here (issue, "history"): any order, duplicates and gaps; any interval from
per-request rows to 30-minute counts; coarser data spread evenly over its interval; per-request rows
counted per minute; zero-filled; complete minutes only; unreadable data is an error, not demand.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prescaler.history import (
    INCOMPLETE_MINUTES,
    MINUTE,
    HistoryError,
    active_minutes,
    complete_end,
    from_requests,
    per_minute,
    to_utc,
    window,
)

pytestmark = pytest.mark.unit

TRACES = Path(__file__).resolve().parents[2] / "data" / "traces"
T0 = pd.Timestamp("2026-03-02 10:00", tz="UTC")


def _assert_per_minute_utc(series: pd.Series) -> None:
    """The shape every consumer reads: UTC, one entry per whole minute, floats, no NaN."""
    assert str(series.index.tz) == "UTC"
    assert series.index.freqstr == "min"
    assert (series.index == series.index.floor("min")).all()
    assert series.dtype == float
    assert np.isfinite(series.to_numpy()).all()


# --- order, duplicates, gaps -------------------------------------------------------------------


def test_shuffled_minutes_come_out_sorted_and_complete() -> None:
    # Given one datapoint per minute for 10 minutes, in shuffled order
    stamps = [T0 + i * MINUTE for i in range(10)]
    rng = np.random.default_rng(7)
    order = rng.permutation(10)
    # When they are read
    out = per_minute([stamps[i] for i in order], [float(i) for i in order])
    # Then the series is ascending, one value per minute, each on its own minute
    _assert_per_minute_utc(out)
    assert list(out.index) == stamps
    assert out.tolist() == [float(i) for i in range(10)]


def test_duplicate_timestamp_keeps_the_last_datapoint() -> None:
    # Given two overlapping CloudWatch pages that both return minute 1 (the second one newer)
    stamps = [T0, T0 + MINUTE, T0 + 2 * MINUTE, T0 + MINUTE]
    # When they are read
    out = per_minute(stamps, [10.0, 20.0, 30.0, 25.0])
    # Then minute 1 appears once, with the last value, not the sum
    assert out.tolist() == [10.0, 25.0, 30.0]


def test_gaps_are_zero_filled() -> None:
    # Given datapoints at minutes 0, 1 and 5 only (CloudWatch has no datapoint without traffic)
    out = per_minute([T0, T0 + MINUTE, T0 + 5 * MINUTE], [3.0, 4.0, 9.0], interval=MINUTE)
    # Then minutes 2..4 are there, at zero
    _assert_per_minute_utc(out)
    assert out.tolist() == [3.0, 4.0, 0.0, 0.0, 0.0, 9.0]


def test_no_traffic_for_40_of_the_last_60_minutes() -> None:
    # Given traffic in the first 20 minutes of an hour and nothing after (no datapoints at all)
    stamps = [T0 + i * MINUTE for i in range(20)]
    # When the hour is read with an explicit window
    out = per_minute(stamps, [100.0] * 20, interval=MINUTE, start=T0, end=T0 + 60 * MINUTE)
    # Then there are 60 values and the last 40 are zero
    assert len(out) == 60
    assert out.iloc[:20].tolist() == [100.0] * 20
    assert out.iloc[20:].tolist() == [0.0] * 40


def test_start_and_end_zero_fill_a_window_without_datapoints() -> None:
    # Given no datapoints at all but a window to cover
    out = per_minute([], [], start=T0, end=T0 + 5 * MINUTE)
    # Then the window is all zeros
    assert out.tolist() == [0.0] * 5
    # And with neither datapoints nor a window there is nothing to build
    with pytest.raises(HistoryError):
        per_minute([], [])


# --- intervals: coarse counts spread, per-request rows counted -----------------------------------


@pytest.mark.parametrize("interval_minutes", [5, 30])
def test_coarse_counts_are_spread_evenly(interval_minutes: int) -> None:
    # Given three consecutive counts over 5- or 30-minute intervals
    step = interval_minutes * MINUTE
    counts = [300.0, 600.0, 1500.0]
    stamps = [T0 + i * step for i in range(3)]
    # When read (the interval inferred from the timestamps)
    out = per_minute(stamps, counts)
    # Then each minute of an interval holds count / interval and the sum is preserved
    _assert_per_minute_utc(out)
    assert len(out) == 3 * interval_minutes
    for i, count in enumerate(counts):
        part = out.iloc[i * interval_minutes:(i + 1) * interval_minutes]
        np.testing.assert_allclose(part.to_numpy(), count / interval_minutes)
    assert out.sum() == pytest.approx(sum(counts))


def test_explicit_interval_spreads_a_lone_datapoint() -> None:
    # Given a single 30-minute count (no gap to infer the interval from)
    out = per_minute([T0], [900.0], interval=pd.Timedelta(minutes=30))
    # Then it covers 30 minutes at 30 each
    assert len(out) == 30
    np.testing.assert_allclose(out.to_numpy(), 30.0)


def test_coarse_count_off_the_minute_is_spread_from_its_minute() -> None:
    # Given 5-minute counts stamped at :04, :09, :14 (the NAB ELB export's alignment)
    stamps = [T0 + (4 + 5 * i) * MINUTE for i in range(3)]
    out = per_minute(stamps, [50.0, 100.0, 150.0])
    # Then the first minute is :04 and each block of 5 holds a fifth of its count
    assert out.index[0] == T0 + 4 * MINUTE
    assert out.tolist() == [10.0] * 5 + [20.0] * 5 + [30.0] * 5


def test_per_request_rows_are_counted_per_minute() -> None:
    # Given request arrival times: 3 in minute 0, none in minute 1, 2 in minute 2
    rows = [T0 + pd.Timedelta(seconds=s) for s in (0.5, 12.25, 59.9, 125, 170.001)]
    # When counted
    out = from_requests(rows)
    # Then each minute holds its number of requests, zero-filled between
    _assert_per_minute_utc(out)
    assert out.tolist() == [3.0, 0.0, 2.0]


def test_per_request_rows_with_the_same_timestamp_all_count() -> None:
    # Given four requests, three logged at the same second (logs at 1 s resolution)
    rows = ["2026-03-02 10:00:10", "2026-03-02 10:00:10", "2026-03-02 10:00:10", "2026-03-02 10:00:20"]
    # When counted
    out = from_requests(rows)
    # Then all four are invocations of that minute
    assert out.tolist() == [4.0]


def test_sub_minute_counts_are_summed_into_their_minute() -> None:
    # Given 10-second counts over two minutes
    stamps = [T0 + pd.Timedelta(seconds=10 * i) for i in range(12)]
    out = per_minute(stamps, [1.0] * 6 + [2.0] * 6)
    # Then each minute holds the sum of its six counts
    assert out.tolist() == [6.0, 12.0]


# --- time zones --------------------------------------------------------------------------------


def test_naive_timestamps_are_utc_and_aware_ones_are_converted() -> None:
    # Given the same instants written naive (UTC), in UTC, and in New York time (UTC-5 in winter)
    naive = ["2026-01-15 14:00", "2026-01-15 14:01"]
    aware = [pd.Timestamp("2026-01-15 09:00", tz="America/New_York"),
             pd.Timestamp("2026-01-15 09:01", tz="America/New_York")]
    # When read
    a = per_minute(naive, [1.0, 2.0])
    b = per_minute(aware, [1.0, 2.0])
    # Then both are the same UTC series at 14:00
    _assert_per_minute_utc(b)
    assert a.index[0] == pd.Timestamp("2026-01-15 14:00", tz="UTC")
    pd.testing.assert_series_equal(a, b)
    assert to_utc("2026-01-15 14:00") == to_utc(aware[0])


def test_to_utc_rejects_what_is_not_a_timestamp() -> None:
    for bad in ("not a time", None, float("nan")):
        with pytest.raises(HistoryError):
            to_utc(bad)


# --- complete minutes only ---------------------------------------------------------------------


def test_end_drops_the_minutes_at_or_after_it() -> None:
    # Given per-minute datapoints for 10 minutes
    stamps = [T0 + i * MINUTE for i in range(10)]
    # When read with an end in the middle of minute 7 (floored to 07:00)
    out = per_minute(stamps, [1.0] * 10, end=T0 + pd.Timedelta(minutes=7, seconds=30))
    # Then minutes 0..6 remain
    assert out.index[-1] == T0 + 6 * MINUTE
    assert len(out) == 7


def test_end_cuts_a_coarse_interval_reaching_past_it() -> None:
    # Given one 30-minute count and an end 10 minutes into it
    out = per_minute([T0], [300.0], interval=pd.Timedelta(minutes=30), end=T0 + 10 * MINUTE)
    # Then only the first 10 minutes (10 each) are kept
    assert out.tolist() == [10.0] * 10


def test_complete_end_drops_the_newest_two_minutes() -> None:
    # Given a tick at 10:15:40 (the minute 10:15 is in progress)
    now = pd.Timestamp("2026-03-02 10:15:40", tz="UTC")
    # Then the complete minutes end (exclusive) at 10:13: 10:13 and 10:14 are still being aggregated
    assert INCOMPLETE_MINUTES == 2
    assert complete_end(now) == pd.Timestamp("2026-03-02 10:13", tz="UTC")
    # And a naive tick is UTC, an aware one converted
    assert complete_end("2026-03-02 10:15:40") == complete_end(now)
    assert complete_end(now.tz_convert("Asia/Kolkata")) == complete_end(now)
    # And a history read up to it holds no minute from 10:13 on
    stamps = [T0 + i * MINUTE for i in range(16)]
    out = per_minute(stamps, [1.0] * 16, end=complete_end(now))
    assert out.index[-1] == pd.Timestamp("2026-03-02 10:12", tz="UTC")


# --- unreadable data is an error ---------------------------------------------------------------


@pytest.mark.parametrize("values", [[1.0, -1.0], [1.0, float("nan")], [1.0, math.inf], [1.0, None]])
def test_negative_or_non_finite_counts_are_rejected(values: list) -> None:
    with pytest.raises(HistoryError):
        per_minute([T0, T0 + MINUTE], values)


@pytest.mark.parametrize("stamps", [["2026-03-02 10:00", "yesterday-ish"], ["2026-03-02 10:00", None]])
def test_unparseable_timestamps_are_rejected(stamps: list) -> None:
    with pytest.raises(HistoryError):
        per_minute(stamps, [1.0, 2.0])
    with pytest.raises(HistoryError):
        from_requests(stamps)


def test_unparseable_counts_are_rejected() -> None:
    with pytest.raises(HistoryError):
        per_minute([T0, T0 + MINUTE], [1.0, "twelve"])


def test_lengths_that_differ_are_rejected() -> None:
    with pytest.raises(HistoryError):
        per_minute([T0, T0 + MINUTE], [1.0])


# --- helpers -----------------------------------------------------------------------------------


def test_window_zero_fills_to_its_full_length() -> None:
    # Given 5 minutes of history ending at 10:05
    hist = per_minute([T0 + i * MINUTE for i in range(5)], [7.0] * 5)
    # When a 10-minute window ending at 10:05 is cut
    out = window(hist, T0 + 5 * MINUTE, pd.Timedelta(minutes=10))
    # Then it has 10 minutes, the first 5 zero
    assert out.index[0] == T0 - 5 * MINUTE
    assert out.tolist() == [0.0] * 5 + [7.0] * 5


def test_active_minutes_counts_from_the_first_traffic() -> None:
    hist = per_minute([T0 + i * MINUTE for i in range(6)], [0.0, 0.0, 3.0, 0.0, 1.0, 0.0])
    assert active_minutes(hist) == 4
    assert active_minutes(hist * 0) == 0


# --- a real trace ------------------------------------------------------------------------------


def test_first_day_of_the_elb_trace_keeps_its_total() -> None:
    # Given the first day of a real 5-minute CloudWatch export (with its own gaps)
    raw = pd.read_csv(TRACES / "elb_request_count_8c0756.csv")
    day = raw[pd.to_datetime(raw["timestamp"]) < "2014-04-11"]
    assert len(day) > 250
    # When read
    out = per_minute(day["timestamp"], day["value"])
    # Then it is per-minute UTC, covers the day, and keeps every request
    _assert_per_minute_utc(out)
    assert len(out) == 24 * 60
    assert out.sum() == pytest.approx(day["value"].sum())
    assert out.iloc[:5].tolist() == pytest.approx([day["value"].iloc[0] / 5] * 5)


def test_per_request_trace_keeps_its_request_count() -> None:
    # Given one hour of per-request rows from a production inference service
    raw = pd.read_csv(TRACES / "AzureLLMInferenceTrace_code.csv", usecols=["TIMESTAMP"])
    # When counted per minute
    out = from_requests(raw["TIMESTAMP"])
    # Then every request is counted once
    _assert_per_minute_utc(out)
    assert out.sum() == len(raw)
    assert 55 <= len(out) <= 62


# --- properties --------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    offsets=st.lists(st.integers(0, 600), min_size=1, max_size=40),
    counts=st.data(),
    interval_minutes=st.sampled_from([1, 5, 30]),
)
def test_spreading_preserves_the_total_of_distinct_datapoints(offsets, counts, interval_minutes) -> None:
    # Given datapoints on a grid of the interval, in any order, with duplicates
    step = interval_minutes * MINUTE
    stamps = [T0 + o * step for o in offsets]
    values = counts.draw(st.lists(st.floats(0, 1e6, allow_nan=False), min_size=len(stamps),
                                  max_size=len(stamps)))
    # When read with the interval stated
    out = per_minute(stamps, values, interval=step)
    # Then the total is the sum over distinct timestamps (the last of each duplicate), never negative
    last: dict[pd.Timestamp, float] = {}
    for t, v in zip(stamps, values, strict=True):
        last[t] = v
    _assert_per_minute_utc(out)
    assert (out >= 0).all()
    assert out.sum() == pytest.approx(sum(last.values()), rel=1e-9, abs=1e-6)
    assert out.index[0] == min(last)
    assert out.index[-1] == max(last) + step - MINUTE
