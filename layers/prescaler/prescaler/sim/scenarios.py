"""Demand for the endpoint twin: the built-in reference day and recorded traces.

A demand is a per-step array of requests per second (``Demand.rps``), ``step_s`` seconds apart,
starting at a whole UTC minute, plus how much of it is warm-up (simulated, not scored).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from prescaler.history import HistoryError, from_requests, per_minute

#: The reference endpoint (PROBLEM.md): ml.g5.xlarge, one instance saturates at ~50 requests/s.
STEP_S = 10


@dataclass(frozen=True)
class Demand:
    """Requests per second at ``step_s`` resolution.

    Attributes:
        name: label for reports.
        start: first step's time (a whole UTC minute).
        rps: requests per second in each step, shape ``(steps,)``, non-negative.
        step_s: seconds per step (divides 60).
        warmup_steps: leading steps that are simulated but not scored.
    """

    name: str
    start: pd.Timestamp
    rps: np.ndarray
    step_s: int = STEP_S
    warmup_steps: int = 0

    @property
    def steps_per_minute(self) -> int:
        return 60 // self.step_s

    @property
    def minutes(self) -> int:
        return len(self.rps) // self.steps_per_minute

    def per_minute_invocations(self) -> pd.Series:
        """The demand as a per-minute UTC series of invocations (what CloudWatch would record)."""
        k = self.steps_per_minute
        counts = (self.rps[: self.minutes * k] * self.step_s).reshape(-1, k).sum(axis=1)
        index = pd.date_range(self.start, periods=self.minutes, freq="min", name="minute")
        return pd.Series(counts, index=index, name="invocations")


def reference(days_evaluated: int = 3, warmup_days: int = 2, seed: int = 7,
              start: str = "2026-03-02") -> Demand:
    """PROBLEM.md's day, repeated: baseline 40 RPS, a 04:00-06:00 trough at 5 RPS, and at the top of
    every hour a 90-second ramp to 220 RPS that holds 8 minutes and falls back in 90 seconds, with
    light seeded noise (3% per 10-second step).

    Args:
        days_evaluated: scored days (>= 1).
        warmup_days: days of history simulated first and not scored.
        seed: noise seed.
        start: first day (UTC date).
    """
    if days_evaluated < 1 or warmup_days < 0:
        raise ValueError("days must be >= 1 and warm-up days >= 0")
    days = days_evaluated + warmup_days
    t0 = pd.Timestamp(start, tz="UTC").floor("D")
    steps = days * 86400 // STEP_S
    sec = np.arange(steps) * STEP_S
    hour_of_day = (sec % 86400) / 3600.0
    # Baseline 40 RPS with a trough at 5 RPS from 04:00 to 06:00 (30-minute cosine shoulders).
    base = np.full(steps, 40.0)
    down = (hour_of_day >= 3.5) & (hour_of_day < 4.0)
    base[down] = 5 + 35 * 0.5 * (1 + np.cos(np.pi * (hour_of_day[down] - 3.5) / 0.5))
    base[(hour_of_day >= 4.0) & (hour_of_day < 6.0)] = 5.0
    up = (hour_of_day >= 6.0) & (hour_of_day < 6.5)
    base[up] = 5 + 35 * 0.5 * (1 - np.cos(np.pi * (hour_of_day[up] - 6.0) / 0.5))
    # Hourly spike: 90 s ramp up, 8 min hold, 90 s ramp down, to 220 RPS in all.
    s = sec % 3600
    shape = np.clip(np.minimum(s / 90.0, (90 + 480 + 90 - s) / 90.0), 0.0, 1.0)
    rps = base + shape * (220.0 - base)
    rng = np.random.default_rng(seed)
    rps = np.maximum(0.0, rps * (1 + rng.normal(0.0, 0.03, steps)))
    return Demand("reference", t0, rps, STEP_S, warmup_days * 86400 // STEP_S)


def load_trace(path: str | Path, column: str | None = None, requests: bool = False, *, dayfirst: bool = False,
               what: str = "trace file") -> pd.Series:
    """Read a recorded trace CSV as a per-minute UTC series of invocations.

    Args:
        path: CSV with a header; the first column is the timestamp (naive = UTC).
        column: the value column (a count per row's interval). Default: the second column.
        requests: one row per request (count rows per minute); ``column`` is then ignored.
        dayfirst: numeric dates (``01/11/2026``) are day-first; without it they are refused as
            ambiguous (ISO 8601 is always accepted).
        what: what the file is called in error messages ("trace file", "history file (--history)").

    Raises:
        HistoryError: missing file or column, no rows, unparseable timestamps, negative values.
    """
    try:
        frame = pd.read_csv(path)
    except FileNotFoundError as exc:
        raise HistoryError(f"no such {what}: {path}") from exc
    except IsADirectoryError as exc:
        raise HistoryError(f"{path} is a directory, not a CSV file") from exc
    except OSError as exc:
        raise HistoryError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise HistoryError(f"cannot read {path} as CSV: {exc}") from exc
    if frame.empty or len(frame.columns) < 1:
        raise HistoryError(f"{path} has no rows")
    ts = frame.iloc[:, 0]
    hint = " (semicolon-separated? the file must use commas)" if ";" in str(frame.columns[0]) else ""
    try:
        if requests:
            return from_requests(ts, dayfirst=dayfirst)
        if column is None:
            if len(frame.columns) < 2:
                raise HistoryError(f"{path} has no value column (columns: {', '.join(frame.columns)}){hint}")
            column = str(frame.columns[1])
        if column not in frame.columns:
            raise HistoryError(f"no column {column!r} in {path} (columns: {', '.join(map(str, frame.columns))}){hint}")
        raw = frame[column]
        values = pd.to_numeric(raw, errors="coerce")
        bad = values.isna().to_numpy() | (values.to_numpy(dtype=float, na_value=np.nan) < 0)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            cell = raw.iloc[row]
            what = ("is empty" if pd.isna(cell) else
                    f"is negative ({cell})" if not np.isnan(values.iloc[row]) else f"is not a number: {cell!s}")
            raise HistoryError(f"{path} line {row + 2}: {column!r} {what}")
        return per_minute(ts, values, dayfirst=dayfirst)
    except HistoryError as exc:
        message = str(exc)
        raise type(exc)(message if str(path) in message else f"{path}: {message}") from exc


def sub_minute_rows(path: str | Path) -> bool:
    """Whether most rows of a trace CSV are less than a minute apart (a per-request log read as
    counts?). Cheap: looks at the first 1,000 rows only."""
    try:
        head = pd.read_csv(path, nrows=1000, usecols=[0]).iloc[:, 0]
        times = pd.to_datetime(head, utc=True, format="ISO8601").sort_values()
    except (ValueError, TypeError, OSError, pd.errors.ParserError, pd.errors.EmptyDataError):
        return False
    gaps = np.diff(times.to_numpy().astype("datetime64[ns]").astype(np.int64))
    return len(gaps) > 10 and float(np.median(gaps)) < 60e9


def from_minutes(invocations: pd.Series, name: str, peak_rps: float | None = None,
                 warmup_days: float = 0.0) -> Demand:
    """A per-minute series of invocations as twin demand (each minute's rate held for its steps).

    Args:
        invocations: per-minute UTC series of invocations.
        peak_rps: scale so that the 99.9th-percentile minute equals this many requests/s.
        warmup_days: leading days simulated but not scored (clamped to leave at least an hour).

    Raises:
        HistoryError: an empty or all-zero series when scaling was asked for.
    """
    if len(invocations) == 0:
        raise HistoryError("the trace holds no minutes")
    rate = invocations.to_numpy(dtype=float) / 60.0
    if peak_rps is not None:
        p999 = float(np.quantile(rate, 0.999))
        if p999 <= 0:
            raise HistoryError("cannot scale a trace whose 99.9th-percentile minute is zero")
        rate = rate * (peak_rps / p999)
    k = 60 // STEP_S
    rps = np.repeat(rate, k)
    warm_minutes = int(min(warmup_days * 1440, max(0, len(invocations) - 60)))
    start = invocations.index[0]
    if start != start.floor("min"):
        raise HistoryError("trace minutes must be whole UTC minutes")
    return Demand(name, start, rps, STEP_S, warm_minutes * k)
