"""Invocation history: raw datapoints in, a per-minute UTC series of invocations out.

Everything downstream (forecast, plan, simulator) reads one shape: a ``pandas.Series`` of floats,
indexed by a tz-aware UTC ``DatetimeIndex`` with one entry per whole minute (``freq="min"``), each
value the number of invocations in ``[minute, minute + 60 s)``. Minutes with no datapoint are zero
(CloudWatch publishes no datapoint for a minute with no traffic), and only complete minutes are kept.

The functions here are pure: no boto3, no clock. The CloudWatch adapter and the CLI both feed them.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable
from datetime import datetime

import numpy as np
import pandas as pd

MINUTE = pd.Timedelta(minutes=1)
SERIES_NAME = "invocations"
#: CloudWatch keeps 1-minute datapoints for 15 days (AWS CloudWatch "Metrics retention"); the
#: forecast reads at most 14 of them so a query never asks for data that is being expired.
MAX_HISTORY = pd.Timedelta(days=14)
#: The newest minutes of a CloudWatch metric are still being aggregated; PROBLEM.md: "the newest
#: one or two minutes are still incomplete". We drop two.
INCOMPLETE_MINUTES = 2
#: The longest span a trace or history may cover, first to last datapoint: a year and a month. A
#: 1900 row next to a 2026 one is a typo, not 126 years of zero traffic (it would allocate 66 million
#: minutes); the forecast reads 14 days and a backtest a few weeks.
MAX_SPAN = pd.Timedelta(days=400)
#: The most invocations one minute may count: 1e9 (about 16.7 million requests/s, far beyond any
#: SageMaker endpoint). Larger values (1e300) are a unit or export error and overflow downstream.
MAX_INVOCATIONS_PER_MINUTE = 1e9


class HistoryError(ValueError):
    """Raw datapoints that cannot be read as demand (negative, non-finite, unparseable times)."""


class ZoneName(HistoryError):
    """A time with a zone NAME (``CET``): pandas would drop it and read UTC. ``position``: the row."""

    def __init__(self, message: str, position: int | None = None) -> None:
        super().__init__(message)
        self.position = position


class ClockWord(ZoneName):
    """``now`` or ``today``: pandas reads the machine's LOCAL clock at parse time (a moving time, and
    hours off UTC on a machine that is not on UTC). ``position``: the row, as for a zone name."""


#: The words pandas turns into the parsing machine's local clock.
CLOCK_WORDS = frozenset({"now", "today"})


def _clock_word(value: object, position: int | None = None) -> None:
    if isinstance(value, str) and value.strip().lower() in CLOCK_WORDS:
        where = f"row {position + 1}: " if position is not None else ""
        raise ClockWord(f"{where}{value.strip()!r} is not read (pandas would take this machine's local clock): "
                        f"write the time in ISO 8601, e.g. {pd.Timestamp.now(tz='UTC'):%Y-%m-%dT%H:%M:%SZ}", position)


class AmbiguousDates(HistoryError):
    """Numeric dates such as ``01/11/2026`` that may be day- or month-first: never guessed."""


#: ``01/11/2026``, ``1.11.26``, ``01-11-2026 00:00``: day and month both numbers, year last.
AMBIGUOUS_DATE = re.compile(r"^\s*\d{1,2}[/.\-]\d{1,2}[/.\-]\d{2,4}(\D|$)")
#: A time ending in a zone NAME (``CET``, ``EST``, ``Europe/Paris``): pandas drops it and reads UTC.
ZONE_NAME = re.compile(r"\d\s*\(?([A-Za-z][A-Za-z_]{1,}(?:/[A-Za-z_+\-0-9]+)*)\)?\s*$")
#: Trailing words that are read correctly: names of UTC, AM/PM, month names (``2 January``).
_MONTHS = ("January February March April May June July August September October November December "
           "Jan Feb Mar Apr Jun Jul Aug Sep Sept Oct Nov Dec")
UTC_NAMES = frozenset({"UTC", "GMT", "Z", "AM", "PM"} | {m.upper() for m in _MONTHS.split()})


def check_time_text(text: str, dayfirst: bool = False) -> None:
    """Refuse a typed time that would be guessed: a zone name (``CET``: abbreviations are ambiguous,
    pandas ignores them and reads UTC) or a numeric day/month date without ``dayfirst``.

    Offsets (``+01:00``), ``Z`` and ``UTC`` are accepted.

    Raises:
        HistoryError: a zone name other than UTC, or ``now`` / ``today`` (:class:`ClockWord`).
        AmbiguousDates: ``01/02/2026`` and ``dayfirst`` is False.
    """
    _clock_word(text)
    zone = ZONE_NAME.search(text)
    if zone and zone.group(1).upper() not in UTC_NAMES:
        raise ZoneName(f"time zone name {zone.group(1)!r} in {text.strip()!r} is not read: write a UTC "
                           "offset instead (2026-01-01T00:00:00+01:00) or UTC (Z)")
    if AMBIGUOUS_DATE.match(text) and not dayfirst:
        raise AmbiguousDates(
            f"ambiguous date {text.strip()!r} (day or month first?): write ISO 8601 "
            f"(2026-11-01T00:00:00Z), or pass --dayfirst when the day comes first")


def to_utc(ts: datetime | str | pd.Timestamp, dayfirst: bool = False) -> pd.Timestamp:
    """A timestamp as a tz-aware UTC ``pd.Timestamp``; naive input is read as UTC.

    Text goes through :func:`check_time_text` (no zone names; numeric day/month dates only with
    ``dayfirst``, and then read day first).

    Raises:
        HistoryError: the value is not a timestamp, or would be guessed (see :func:`check_time_text`).
    """
    try:
        if isinstance(ts, str):
            check_time_text(ts, dayfirst)
            if AMBIGUOUS_DATE.match(ts):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    out = pd.Timestamp(pd.to_datetime(ts, dayfirst=True))
            else:
                out = pd.Timestamp(ts)
        else:
            out = pd.Timestamp(ts)
    except (ValueError, TypeError, OverflowError) as exc:
        if isinstance(exc, HistoryError):
            raise
        raise HistoryError(f"not a timestamp: {ts!r}") from exc
    if out is pd.NaT:
        raise HistoryError(f"not a timestamp: {ts!r}")
    utc = out.tz_localize("UTC") if out.tzinfo is None else out.tz_convert("UTC")
    lo, hi = pd.Timestamp.min.tz_localize("UTC"), pd.Timestamp.max.tz_localize("UTC")
    if not lo <= utc <= hi:  # a datetime object may hold any year
        raise HistoryError(f"{utc.isoformat()} is outside {lo:%Y-%m-%d} to {hi:%Y-%m-%d}, the times a "
                           "nanosecond time series can hold")
    return utc


def complete_end(now: datetime | pd.Timestamp, incomplete_minutes: int = INCOMPLETE_MINUTES) -> pd.Timestamp:
    """Exclusive end of the complete minutes at ``now``: ``floor(now, 1 min) - incomplete_minutes``."""
    return to_utc(now).floor("min") - incomplete_minutes * MINUTE


def empty(start: pd.Timestamp, end: pd.Timestamp) -> pd.Series:
    """A zero per-minute series covering ``[start, end)`` (both whole UTC minutes; empty if end <= start)."""
    if end <= start:
        index = pd.DatetimeIndex([], tz="UTC", name="minute")
    else:
        index = pd.date_range(start, end, freq="min", inclusive="left", name="minute")
    return pd.Series(np.zeros(len(index)), index=index, name=SERIES_NAME)


def as_minute_series(history: pd.Series, *, check_steps: bool = True) -> pd.Series:
    """Check (and normalise) a per-minute series for the forecast and the planner.

    A tz-naive index is read as UTC and any other zone converted to UTC; object-dtype numbers become
    floats. Nothing is filled or reordered: a series that is not one row per whole minute, ascending
    and without gaps, is refused (build it with :func:`per_minute`).

    Raises:
        ValueError: no DatetimeIndex, steps other than one minute (``check_steps``), or non-numbers.
    """
    index = history.index
    if not isinstance(index, pd.DatetimeIndex):
        raise ValueError("history must be a per-minute series with a DatetimeIndex "
                         "(see prescaler.history.per_minute)")
    changed = False
    if index.tz is None:
        index, changed = index.tz_localize("UTC"), True
    elif str(index.tz) not in ("UTC", "utc"):
        index, changed = index.tz_convert("UTC"), True
    if check_steps and len(index) > 1:
        steps = np.diff(index.asi8)
        if not (steps == MINUTE.value).all():
            raise ValueError("history must be a per-minute series: one row per minute, ascending, no gaps "
                             "(see prescaler.history.per_minute)")
    if len(index) and index[0] != index[0].floor("min"):
        raise ValueError("history must be a per-minute series on whole UTC minutes")
    if history.dtype.kind != "f":
        try:
            values = history.to_numpy(dtype=float)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"history values must be numbers: {exc}") from exc
        return pd.Series(values, index=index, name=SERIES_NAME)
    return pd.Series(history.to_numpy(), index=index, name=SERIES_NAME) if changed else history


def _first_line(exc: BaseException) -> str:
    """The first line of an error message, never cut mid-sentence: pandas ends its first line with
    "... at position 1. You might want to try:" and lists options below; that dangling sentence goes."""
    line = (str(exc).strip().splitlines() or [type(exc).__name__])[0].strip()
    if line.endswith(":"):
        head, sep, _ = line.rpartition(". ")
        line = head + "." if sep else line.rstrip(":")
    return line


def _no_clock_words(raw: object, index: pd.DatetimeIndex) -> pd.DatetimeIndex:
    """``index`` parsed from ``raw``, unless a row was ``now`` / ``today`` (:class:`ClockWord`). Only
    rows parsed within a day of the clock can be one, so a long trace is not scanned row by row."""
    near = np.flatnonzero(np.abs(index - pd.Timestamp.now(tz="UTC")) < pd.Timedelta(days=1))
    if len(near):
        values = raw.tolist() if hasattr(raw, "tolist") else list(raw)  # type: ignore[call-overload]
        for row in near:
            _clock_word(values[row], int(row))
    return index


def _parse_text_times(raw: object, dayfirst: bool = False) -> pd.DatetimeIndex:
    """ISO 8601 (any precision and offset), else one format pandas infers from the first row; numeric
    day/month dates only with ``dayfirst`` (never guessed: 01/11/2026 is 1 November or 11 January)."""
    error: Exception | None = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return _no_clock_words(raw, pd.DatetimeIndex(pd.to_datetime(raw, utc=True, format="ISO8601")))  # type: ignore[call-overload]
    except (ValueError, TypeError, OverflowError) as exc:
        if isinstance(exc, ClockWord):
            raise
        error = exc
    values = raw.tolist() if hasattr(raw, "tolist") else list(raw)  # type: ignore[call-overload]
    first = next((str(v) for v in values if isinstance(v, str) and v.strip()), "")
    for row, value in enumerate(values):  # zone names would be dropped (read as UTC): refused
        zone = ZONE_NAME.search(value) if isinstance(value, str) else None
        if zone and zone.group(1).upper() not in UTC_NAMES:
            raise ZoneName(f"row {row + 1}: time zone name {zone.group(1)!r} in {value.strip()!r} is not "
                           "read: write a UTC offset instead (2026-01-01T00:00:00+01:00) or Z", row)
    if AMBIGUOUS_DATE.match(first) and not dayfirst:
        raise AmbiguousDates(
            f"ambiguous dates such as {first.strip()!r} (day or month first?): write ISO 8601 timestamps "
            f"(2026-11-01T00:00:00Z), or pass --dayfirst when the day comes first")
    try:  # never "mixed": 03/02/2026 next to 2026-03-02 is a guess
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return _no_clock_words(raw, pd.DatetimeIndex(pd.to_datetime(raw, utc=True, format=None,  # type: ignore[call-overload]
                                                                        dayfirst=dayfirst)))
    except (ValueError, TypeError, OverflowError) as exc:
        if isinstance(exc, ClockWord):
            raise
        error = exc
    raise HistoryError(f"unparseable timestamps: {_first_line(error) if error else 'no rows'}")


def _utc_index(timestamps: Iterable, dayfirst: bool = False) -> pd.DatetimeIndex:
    """Timestamps as a UTC index. Numbers are Unix epoch seconds; text is ISO 8601 (any precision,
    any offset; naive = UTC) or, failing that, one other format that pandas infers from the first row
    (numeric day/month dates only with ``dayfirst``: :class:`AmbiguousDates` otherwise)."""
    if isinstance(timestamps, pd.DatetimeIndex):  # already times (CloudWatch pages): UTC, no parsing
        return timestamps.tz_convert("UTC") if timestamps.tz is not None else timestamps.tz_localize("UTC")
    raw = timestamps if hasattr(timestamps, "dtype") else list(timestamps)
    arr = np.asarray(raw) if not isinstance(raw, pd.Index | pd.Series) else raw
    kind = getattr(arr, "dtype", np.dtype(object)).kind
    if kind in "iuf" or (kind == "O" and len(arr) and all(
            isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool) for v in arr)):
        try:
            index = pd.DatetimeIndex(pd.to_datetime(np.asarray(arr, dtype=float), unit="s", utc=True))
        except (ValueError, TypeError, OverflowError) as exc:
            raise HistoryError(f"unparseable timestamps (numbers are read as Unix epoch seconds): "
                               f"{_first_line(exc)}") from exc
    else:
        index = _parse_text_times(raw, dayfirst)
    if index.hasnans:
        raise HistoryError("unparseable timestamps: some rows have no time")
    return index


def check_span(lo: pd.Timestamp, hi: pd.Timestamp, what: str = "datapoints",
               slack: pd.Timedelta | None = None) -> None:
    """Refuse a window longer than :data:`MAX_SPAN` (plus ``slack``: the last datapoint's own
    interval) before any per-minute array is allocated.

    Raises:
        HistoryError: ``hi - lo`` exceeds ``MAX_SPAN + slack`` (the message gives both ends).
    """
    if hi - lo > MAX_SPAN + (slack if slack is not None else pd.Timedelta(0)):
        raise HistoryError(f"the {what} span {lo.isoformat()} to {hi.isoformat()} ({(hi - lo).days:,} days), "
                           f"more than the {MAX_SPAN.days} days accepted: a mistyped year?")


def _infer_interval(index: pd.DatetimeIndex) -> pd.Timedelta:
    """The sampling interval: the median gap between distinct timestamps, at least one minute."""
    distinct = index.unique().sort_values()
    if len(distinct) < 2:
        return MINUTE
    gaps = np.diff(distinct.asi8)
    return max(MINUTE, pd.Timedelta(int(np.median(gaps)), unit="ns").round("min"))


def per_minute(
    timestamps: Iterable,
    values: Iterable[float],
    *,
    interval: pd.Timedelta | None = None,
    start: datetime | pd.Timestamp | None = None,
    end: datetime | pd.Timestamp | None = None,
    dayfirst: bool = False,
) -> pd.Series:
    """Counts per interval -> a per-minute UTC series of invocations.

    Args:
        timestamps: start of each datapoint's interval, in any order, duplicates allowed (the last
            one of a duplicated timestamp wins, as when two CloudWatch pages overlap). Naive times
            are UTC.
        values: invocations counted in each interval (a count, not a rate).
        interval: length of each datapoint's interval. Default: the median gap between distinct
            timestamps, at least one minute. A count over ``k`` minutes is spread evenly, ``1/k`` of
            it on each minute; sub-minute counts are summed into their minute.
        start: first minute of the result (floored to the minute). Default: the first datapoint.
        end: exclusive end (floored to the minute); minutes at or after it are dropped, as are the
            parts of coarse intervals reaching past it. Default: the end of the last interval.
        dayfirst: text dates such as ``01/11/2026`` are day-first (without it they are refused).

    Returns:
        Float series, one entry per minute in ``[start, end)``, zero where nothing was recorded.

    Raises:
        HistoryError: negative or non-finite values, unparseable timestamps, lengths that differ,
            more than ``MAX_INVOCATIONS_PER_MINUTE`` per minute, or datapoints (or one interval)
            spanning more than ``MAX_SPAN``.
    """
    index = _utc_index(timestamps, dayfirst)
    try:
        vals = np.asarray(list(values) if not hasattr(values, "dtype") else values, dtype=float)
    except (ValueError, TypeError) as exc:
        raise HistoryError(f"invocation counts must be numbers: {exc}") from exc
    if len(vals) != len(index):
        raise HistoryError(f"{len(index)} timestamps but {len(vals)} values")
    if not np.isfinite(vals).all():
        raise HistoryError("values must be finite numbers (found NaN or infinity)")
    if (vals < 0).any():
        raise HistoryError(f"invocation counts cannot be negative (found {vals.min():g})")
    if len(index):
        check_span(index.min(), index.max())
    step = interval if interval is not None else _infer_interval(index)
    if step <= pd.Timedelta(0):
        raise HistoryError(f"interval must be positive, got {step}")
    if step > MAX_SPAN:
        raise HistoryError(f"one datapoint's interval ({step}) is longer than the {MAX_SPAN.days} days accepted")
    per_row_max = MAX_INVOCATIONS_PER_MINUTE * max(1.0, step / MINUTE)
    if (vals > per_row_max).any():
        row = int(np.flatnonzero(vals > per_row_max)[0])
        raise HistoryError(f"row {row + 1}: {vals[row]:g} invocations is more than the "
                           f"{MAX_INVOCATIONS_PER_MINUTE:g} per minute accepted")
    raw = pd.Series(vals, index=index)
    raw = raw[~raw.index.duplicated(keep="last")].sort_index()
    floored = pd.DatetimeIndex(raw.index).floor("min")
    if step <= MINUTE:
        spread = raw.groupby(floored).sum()
    else:
        minutes = int(np.ceil(step / MINUTE))
        offsets = np.arange(minutes) * MINUTE.value
        starts = floored.asi8
        spread_index = (starts[:, None] + offsets[None, :]).ravel()
        spread_vals = np.repeat(raw.to_numpy() / minutes, minutes)
        spread = pd.Series(spread_vals, index=pd.DatetimeIndex(spread_index, tz="UTC"))
        spread = spread.groupby(level=0).sum()

    lo = to_utc(start).floor("min") if start is not None else (
        spread.index[0] if len(spread) else None)
    hi = to_utc(end).floor("min") if end is not None else (
        spread.index[-1] + MINUTE if len(spread) else None)
    if lo is None or hi is None:
        raise HistoryError("no datapoints and no start/end to build an empty window from")
    check_span(lo, hi, slack=max(step, MINUTE))
    out = empty(lo, max(lo, hi))
    inside = spread[(spread.index >= lo) & (spread.index < hi)]
    out.loc[inside.index] = inside.to_numpy()
    if not np.isfinite(out.to_numpy()).all():
        raise HistoryError("invocation counts overflow when summed per minute (values near 1e308?)")
    return out


def from_requests(
    timestamps: Iterable,
    *,
    start: datetime | pd.Timestamp | None = None,
    end: datetime | pd.Timestamp | None = None,
    dayfirst: bool = False,
) -> pd.Series:
    """One row per request (its arrival time) -> a per-minute UTC series of invocations.

    Every row counts, including rows that share a timestamp (logs at one-second resolution).

    Args:
        start / end: as for :func:`per_minute`; default the first request's minute and the minute
            after the last request.
        dayfirst: as for :func:`per_minute`.

    Raises:
        HistoryError: unparseable timestamps, or no rows and no start/end.
    """
    index = _utc_index(timestamps, dayfirst)
    if len(index):
        check_span(index.min(), index.max(), "requests")
    counts = pd.Series(1.0, index=index.floor("min")).groupby(level=0).sum()
    lo = to_utc(start).floor("min") if start is not None else (counts.index[0] if len(counts) else None)
    hi = to_utc(end).floor("min") if end is not None else (counts.index[-1] + MINUTE if len(counts) else None)
    if lo is None or hi is None:
        raise HistoryError("no requests and no start/end to build an empty window from")
    check_span(lo, hi, "requests", slack=MINUTE)
    out = empty(lo, max(lo, hi))
    inside = counts[(counts.index >= lo) & (counts.index < hi)]
    out.loc[inside.index] = inside.to_numpy()
    return out


def window(history: pd.Series, end: datetime | pd.Timestamp, length: pd.Timedelta = MAX_HISTORY) -> pd.Series:
    """The part of a per-minute series in ``[end - length, end)``, zero-filled to that full window."""
    hi = to_utc(end).floor("min")
    lo = hi - length
    return history.reindex(pd.date_range(lo, hi, freq="min", inclusive="left", name="minute"),
                           fill_value=0.0).rename(SERIES_NAME)


def active_minutes(history: pd.Series) -> int:
    """Minutes from the first non-zero minute to the end: how much usable history there is."""
    values = history.to_numpy()
    nonzero = np.flatnonzero(values > 0)
    return 0 if len(nonzero) == 0 else len(values) - int(nonzero[0])
