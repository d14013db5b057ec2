"""Demand for the endpoint twin: the built-in reference day and recorded traces.

A demand is a per-step array of requests per second (``Demand.rps``), ``step_s`` seconds apart,
starting at a whole UTC minute, plus how much of it is warm-up (simulated, not scored).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from prescaler.history import (
    MAX_INVOCATIONS_PER_MINUTE,
    HistoryError,
    ZoneName,
    _utc_index,
    check_time_text,
    from_requests,
    per_minute,
)

#: The reference endpoint (PROBLEM.md): ml.g5.xlarge, one instance saturates at ~50 requests/s.
STEP_S = 10
#: The most requests per second a demand may reach: ``MAX_INVOCATIONS_PER_MINUTE / 60`` (about 16.7
#: million/s). Larger (``--peak-rps 1e300``) is a typo and overflows instance counts in the twin.
MAX_RPS = MAX_INVOCATIONS_PER_MINUTE / 60.0


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


def _step_grid(days_evaluated: int, warmup_days: int, start: str) -> tuple[pd.Timestamp, np.ndarray]:
    """A scenario's first day (UTC midnight of ``start``) and the seconds since it of every
    :data:`STEP_S` step over warm-up plus scored days.

    Raises:
        ValueError: fewer than 1 scored day or a negative warm-up.
    """
    if days_evaluated < 1 or warmup_days < 0:
        raise ValueError("days must be >= 1 and warm-up days >= 0")
    steps = (days_evaluated + warmup_days) * 86400 // STEP_S
    return pd.Timestamp(start, tz="UTC").floor("D"), np.arange(steps) * STEP_S


def _with_noise(rps: np.ndarray, seed: int) -> np.ndarray:
    """Light seeded noise: 3% (normal) per step, never below 0 requests/s."""
    rng = np.random.default_rng(seed)
    return np.maximum(0.0, rps * (1 + rng.normal(0.0, 0.03, len(rps))))


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
    t0, sec = _step_grid(days_evaluated, warmup_days, start)
    hour_of_day = (sec % 86400) / 3600.0
    # Baseline 40 RPS with a trough at 5 RPS from 04:00 to 06:00 (30-minute cosine shoulders).
    base = np.full(len(sec), 40.0)
    down = (hour_of_day >= 3.5) & (hour_of_day < 4.0)
    base[down] = 5 + 35 * 0.5 * (1 + np.cos(np.pi * (hour_of_day[down] - 3.5) / 0.5))
    base[(hour_of_day >= 4.0) & (hour_of_day < 6.0)] = 5.0
    up = (hour_of_day >= 6.0) & (hour_of_day < 6.5)
    base[up] = 5 + 35 * 0.5 * (1 - np.cos(np.pi * (hour_of_day[up] - 6.0) / 0.5))
    # Hourly spike: 90 s ramp up, 8 min hold, 90 s ramp down, to 220 RPS in all.
    s = sec % 3600
    shape = np.clip(np.minimum(s / 90.0, (90 + 480 + 90 - s) / 90.0), 0.0, 1.0)
    rps = base + shape * (220.0 - base)
    rps = _with_noise(rps, seed)
    return Demand("reference", t0, rps, STEP_S, warmup_days * 86400 // STEP_S)


def llm_workday(days_evaluated: int = 3, warmup_days: int = 4, seed: int = 7,
                start: str = "2026-03-02") -> Demand:
    """An LLM served by an inference component that may scale to zero: no traffic at night but a
    nightly batch, a working day that starts at 08:00 UTC, and a lunchtime spike. Each day:

    - 02:00-02:20 a batch job at 60 requests/s (1-minute ramps), nothing else from 18:00 to 08:00;
    - 08:00 a 5-minute ramp to 40 requests/s, held until 17:30, then a 30-minute ramp down to 0;
    - 12:00 a 90-second ramp to 150 requests/s held 10 minutes (the lunchtime spike);
    - light seeded noise (3% per 10-second step).

    In the twin's units (``capacity_rps_per_instance`` per copy, 50 requests/s by default) the day
    needs 1 copy, the spike 4 copies (at the 40/s target), the batch 2.

    Args:
        days_evaluated: scored days (>= 1).
        warmup_days: days simulated first and not scored (the forecast needs a few days of history).
        seed: noise seed.
        start: first day (UTC date).
    """
    t0, sec = _step_grid(days_evaluated, warmup_days, start)
    sec = sec % 86400

    def plateau(level: float, begin_s: float, end_s: float, ramp_up_s: float, ramp_down_s: float) -> np.ndarray:
        up = np.clip((sec - begin_s) / ramp_up_s, 0.0, 1.0)
        down = np.clip((end_s + ramp_down_s - sec) / ramp_down_s, 0.0, 1.0)
        return level * np.minimum(up, down)

    day = plateau(40.0, 8 * 3600, 17.5 * 3600, 300, 1800)
    spike = plateau(110.0, 12 * 3600, 12 * 3600 + 90 + 600, 90, 90)
    batch = plateau(60.0, 2 * 3600, 2 * 3600 + 1200, 60, 60)
    rps = day + spike + batch
    rps = _with_noise(rps, seed)
    return Demand("llm-workday", t0, rps, STEP_S, warmup_days * 86400 // STEP_S)


#: The built-in scenarios ``prescaler simulate --scenario`` runs; ``component`` says the scenario is
#: an inference component (copies on shared instances, MinCapacity 0 allowed by default).
SCENARIOS = {"reference": reference, "llm-workday": llm_workday}
COMPONENT_SCENARIOS = frozenset({"llm-workday"})


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

    Strange data is refused, never guessed: a header row that looks like data (a timestamp and a
    number: no header?), booleans, values that are not numbers, a timestamp repeated with DIFFERENT
    values (the same value repeated is accepted: it is one datapoint exported twice), a span longer
    than ``history.MAX_SPAN`` (400 days) or more than ``history.MAX_INVOCATIONS_PER_MINUTE`` (1e9)
    invocations in a row. Errors name the file and line.

    Raises:
        HistoryError: missing file or column, no rows, unparseable timestamps, negative values, or
            any of the above.
    """
    try:
        frame = pd.read_csv(path, keep_default_na=False, na_values=[""])  # 'nan', 'NA' stay text: refused by name
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
    _refuse_data_header(path, frame)
    separator = next((name for mark, name in ((";", "semicolon"), ("\t", "tab")) if mark in str(frame.columns[0])), "")
    hint = f" ({separator}-separated? the file must use commas)" if separator else ""
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
        if raw.dtype.kind == "b" or (raw.dtype == object and raw.map(lambda v: isinstance(v, bool)).any()):
            row = int(np.flatnonzero(raw.map(lambda v: isinstance(v, bool | np.bool_)).to_numpy())[0])
            raise HistoryError(f"{path} line {row + 2}: {column!r} is a boolean ({raw.iloc[row]}), not a count")
        values = pd.to_numeric(raw, errors="coerce")
        numbers = values.to_numpy(dtype=float, na_value=np.nan)
        bad = values.isna().to_numpy() | (numbers < 0) | (numbers > MAX_INVOCATIONS_PER_MINUTE)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            cell = raw.iloc[row]
            number = numbers[row]
            what = ("is empty" if pd.isna(cell) else
                    "is not a number (NaN)" if str(cell).strip().lower() == "nan"
                    else f"is negative ({cell})" if number < 0
                    else f"is {cell}, more than the {MAX_INVOCATIONS_PER_MINUTE:g} invocations per row accepted"
                    if number > MAX_INVOCATIONS_PER_MINUTE else f"is not a number: {cell!s}")
            raise HistoryError(f"{path} line {row + 2}: {column!r} {what}")
        index = _utc_index(ts, dayfirst)
        _refuse_conflicting_duplicates(path, index, numbers)
        return per_minute(index, values, dayfirst=dayfirst)
    except ZoneName as exc:
        if exc.position is None:
            raise
        message = str(exc).replace(f"row {exc.position + 1}:", f"line {exc.position + 2}:", 1)
        raise ZoneName(f"{path} {message}", exc.position) from exc
    except HistoryError as exc:
        message = str(exc)
        raise type(exc)(message if str(path) in message else f"{path}: {message}") from exc


def _refuse_data_header(path: str | Path, frame: pd.DataFrame) -> None:
    """A header row that parses as a timestamp and a number is the first datapoint: no header."""
    cols = [str(c) for c in frame.columns]
    if len(cols) < 2:
        return
    try:
        float(cols[1])
        check_time_text(cols[0], dayfirst=True)
        pd.Timestamp(cols[0])
    except (ValueError, TypeError):
        return
    raise HistoryError(f"{path} line 1: {cols[0]},{cols[1]} is data, not a header: add a header row "
                       "(timestamp,invocations)")


def _refuse_conflicting_duplicates(path: str | Path, index: pd.DatetimeIndex, values: np.ndarray) -> None:
    """The same timestamp twice with different values: which one is right cannot be known."""
    dup = index.duplicated(keep=False)
    if not dup.any():
        return
    frame = pd.DataFrame({"t": index[dup], "v": values[dup], "line": np.flatnonzero(dup) + 2})
    spread = frame.groupby("t")["v"].agg(["min", "max"])
    conflicting = spread.index[spread["min"] != spread["max"]]
    if len(conflicting):
        first = frame[frame["t"] == conflicting[0]]
        lines = ", ".join(str(n) for n in first["line"].tolist()[:5])
        raise HistoryError(f"{path} lines {lines}: {conflicting[0].isoformat()} is given {len(first)} times "
                           f"with different values ({', '.join(f'{v:g}' for v in first['v'].tolist()[:5])}): "
                           "keep one (identical repeats are accepted)")


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
        HistoryError: an empty or all-zero series when scaling was asked for, or ``peak_rps`` not
            finite, not positive or above :data:`MAX_RPS`.
    """
    if len(invocations) == 0:
        raise HistoryError("the trace holds no minutes")
    if peak_rps is not None and not (np.isfinite(peak_rps) and 0 < peak_rps <= MAX_RPS):
        raise HistoryError(f"--peak-rps must be > 0 and at most {MAX_RPS:,.0f} requests/s, got {peak_rps:g}")
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


def warmup_note(demand: Demand, warmup_days: float) -> str | None:
    """Why fewer days are scored than asked, or ``None`` when the warm-up is the ``warmup_days`` asked.

    :func:`from_minutes` clamps the warm-up so that at least the last hour is scored, and a trace of
    an hour or less gets none; ``backtest --trace`` and ``--fleet`` print this note so that a short
    trace's numbers are not read as a full replay's.
    """
    if demand.minutes <= 60:
        return (f"the replayed trace is only {demand.minutes} minute(s) long: warm-up shortened to none, "
                "every minute scored, and no forecast can act on it (the pre-scaler needs hours to days of history)")
    warm_days = demand.warmup_steps / demand.steps_per_minute / 1440
    if warm_days + 1e-9 < warmup_days:
        return (f"the trace is {demand.minutes / 1440:.2f} days long: warm-up shortened from "
                f"{warmup_days:g} to {warm_days:.2f} days (at least the last hour is scored)")
    return None
