"""Nasty inputs, as a real user (or a confused caller of the Python API) would give them.

House rules: bad input gets ONE line ``prescaler: error: ...`` on stderr and exit code 2, never a
stack trace; on missing or strange data the planner holds (never lowers capacity on a guess) and
says why; the planner invariants of ARCHITECTURE.md hold for any input.

Each test is one nasty input and the RIGHT behaviour. Inputs that currently behave wrongly are
``xfail(strict=True)`` with the bug in one line, so the suite stays green and a fix flips them.
"""

from __future__ import annotations

import functools
import json
import math
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prescaler.cli import main
from prescaler.forecast import Forecast
from prescaler.history import MINUTE, SERIES_NAME, HistoryError, complete_end, per_minute
from prescaler.history import to_utc as to_utc_
from prescaler.plan import PlannerSettings, TargetState, decide, plan
from pydantic import ValidationError

pytestmark = pytest.mark.unit

NOW = pd.Timestamp("2026-03-05 03:53:20", tz="UTC")


# --- helpers -------------------------------------------------------------------------------------


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, err: str, *words: str) -> None:
    assert code == 2, f"exit code {code}, stderr: {err!r}"
    assert err.startswith("prescaler: error: "), err
    assert err.count("\n") == 1, f"not one line: {err!r}"
    for word in words:
        assert word.lower() in err.lower(), f"{word!r} not named in {err!r}"


def write(tmp_path: Path, text: str | bytes, name: str = "t.csv") -> str:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return str(path)


def hourly_csv(tmp_path: Path, days: float = 3, name: str = "h.csv") -> str:
    """Per-minute history with a 10-minute spike at the top of every hour (the reference shape)."""
    idx = pd.date_range("2026-03-02", periods=int(days * 1440), freq="min")
    values = np.where(idx.minute < 10, 13200, 2400)
    rows = [f"{t:%Y-%m-%d %H:%M:%S},{v}" for t, v in zip(idx, values, strict=True)]
    return write(tmp_path, "timestamp,value\n" + "\n".join(rows) + "\n", name)


def small_csv(tmp_path: Path, hours: int = 2) -> str:
    idx = pd.date_range("2026-03-02", periods=hours * 60, freq="min")
    rows = [f"{t:%Y-%m-%d %H:%M:%S},{13200 if t.minute < 10 else 2400}" for t in idx]
    return write(tmp_path, "timestamp,value\n" + "\n".join(rows) + "\n", "small.csv")


def make_forecast(peak: float, *, usable: bool = True, minutes: int = 6) -> Forecast:
    lo = NOW.floor("min")
    hi = lo + minutes * MINUTE
    index = pd.date_range(lo, hi, freq="min", inclusive="left", name="minute")
    values = pd.Series(np.full(len(index), peak), index=index, name=SERIES_NAME)
    return Forecast(lo, hi, values, "hourly" if usable else "none", usable, peak, lo, hi, 3 * 1440,
                    "test forecast", {})


def recent(values: list[float], now: pd.Timestamp = NOW) -> pd.Series:
    """Observed history whose last minute is the newest complete minute at ``now``."""
    end = complete_end(now)
    index = pd.date_range(end=end - MINUTE, periods=len(values), freq="min", name="minute")
    return pd.Series(np.asarray(values, dtype=float), index=index, name=SERIES_NAME)


def spiky(start: str, end: str) -> pd.Series:
    """Per-minute UTC history over [start, end] with a 10-minute spike at the top of every hour."""
    idx = pd.date_range(start, end, freq="min", tz="UTC", name="minute")
    return pd.Series(np.where(idx.minute < 10, 13200.0, 2400.0), index=idx, name=SERIES_NAME)


OWNED_RAISE = TargetState(6, 8, 10, owned_min_capacity=6, owned_since=NOW - 10 * MINUTE)


# --- CLI: trace files ----------------------------------------------------------------------------


def test_header_only_csv_is_a_one_line_error(capsys, tmp_path: Path) -> None:
    code, _, err = cli(capsys, "backtest", "--trace", write(tmp_path, "timestamp,value\n"), "--json")
    assert_one_line_error(code, err, "no rows")


def test_zero_byte_csv_is_a_one_line_error(capsys, tmp_path: Path) -> None:
    code, _, err = cli(capsys, "backtest", "--trace", write(tmp_path, ""), "--json")
    assert_one_line_error(code, err)


def test_utf16_csv_is_a_one_line_error(capsys, tmp_path: Path) -> None:
    text = "timestamp,value\n2026-03-02 00:00:00,5\n".encode("utf-16")
    code, _, err = cli(capsys, "backtest", "--trace", write(tmp_path, text), "--json")
    assert_one_line_error(code, err)


def test_binary_file_is_a_one_line_error(capsys, tmp_path: Path) -> None:
    blob = bytes(range(256)) * 8
    code, _, err = cli(capsys, "backtest", "--trace", write(tmp_path, blob, "blob.csv"), "--json")
    assert_one_line_error(code, err)


def test_semicolon_separated_csv_is_a_one_line_error(capsys, tmp_path: Path) -> None:
    csv = write(tmp_path, "timestamp;value\n2026-03-02 00:00;5\n2026-03-02 00:01;6\n")
    code, _, err = cli(capsys, "backtest", "--trace", csv, "--json")
    assert_one_line_error(code, err, "column")


def test_bom_and_windows_line_endings_are_read(capsys, tmp_path: Path) -> None:
    csv = write(tmp_path, b"\xef\xbb\xbftimestamp,value\r\n2026-03-02 00:00:00,5\r\n2026-03-02 00:01:00,6\r\n")
    code, out, _ = cli(capsys, "backtest", "--trace", csv, "--json")
    assert code == 0
    assert json.loads(out)["demand"]["evaluated_start"] == "2026-03-02T00:00:00+00:00"


def test_only_a_timestamp_column_is_a_one_line_error(capsys, tmp_path: Path) -> None:
    csv = write(tmp_path, "timestamp\n2026-03-02 00:00\n2026-03-02 00:01\n")
    code, _, err = cli(capsys, "backtest", "--trace", csv, "--json")
    assert_one_line_error(code, err, "value column")


def test_timestamp_in_the_second_column_is_a_one_line_error(capsys, tmp_path: Path) -> None:
    csv = write(tmp_path, "value,timestamp\n5,2026-03-02 00:00\n6,2026-03-02 00:01\n")
    code, _, err = cli(capsys, "backtest", "--trace", csv, "--json")
    assert_one_line_error(code, err, "line 2")


@pytest.mark.parametrize("cell", ["nan", "", "abc"])
def test_non_numeric_cell_names_the_line(capsys, tmp_path: Path, cell: str) -> None:
    csv = write(tmp_path, f"timestamp,value\n2026-03-02 00:00,5\n2026-03-02 00:01,{cell}\n")
    code, _, err = cli(capsys, "backtest", "--trace", csv, "--json")
    assert_one_line_error(code, err, "line 3")


@pytest.mark.parametrize("cell", ["inf", "-1", "-inf"])
def test_infinite_or_negative_cell_is_a_one_line_error(capsys, tmp_path: Path, cell: str) -> None:
    csv = write(tmp_path, f"timestamp,value\n2026-03-02 00:00,5\n2026-03-02 00:01,{cell}\n")
    code, _, err = cli(capsys, "backtest", "--trace", csv, "--json")
    assert_one_line_error(code, err)


def test_unparseable_timestamp_is_a_one_line_error(capsys, tmp_path: Path) -> None:
    csv = write(tmp_path, "timestamp,value\nnot-a-time,5\n")
    code, _, err = cli(capsys, "backtest", "--trace", csv, "--json")
    assert_one_line_error(code, err, "timestamp")


def test_a_row_without_a_timestamp_is_a_one_line_error(capsys, tmp_path: Path) -> None:
    csv = write(tmp_path, "timestamp,value\n2026-03-02 00:00,5\n,7\n")
    code, _, err = cli(capsys, "backtest", "--trace", csv, "--json")
    assert_one_line_error(code, err, "timestamp")


def test_mixed_timestamp_formats_are_one_line(capsys, tmp_path: Path) -> None:
    csv = write(tmp_path, "timestamp,value\n2026-03-02 00:00,5\n03/02/2026 00:01,6\n")
    code, _, err = cli(capsys, "backtest", "--trace", csv, "--json")
    assert_one_line_error(code, err, "timestamp")


def test_iso8601_with_and_without_fractional_seconds_is_read(capsys, tmp_path: Path) -> None:
    csv = write(tmp_path, "timestamp\n2026-03-02T00:00:01.5Z\n2026-03-02T00:00:02Z\n2026-03-02T00:01:00.25Z\n")
    code, out, err = cli(capsys, "backtest", "--trace", csv, "--requests", "--json")
    assert code == 0, err
    assert json.loads(out)["demand"]["evaluated_minutes"] == 2


def test_per_minute_iso8601_mixed_precision() -> None:
    out = per_minute(["2026-03-02T00:00:00Z", "2026-03-02T00:01:00.250Z"], [1.0, 2.0])
    assert out.tolist() == [1.0, 2.0]


@pytest.mark.parametrize("command", ["backtest", "forecast"])
def test_a_directory_instead_of_a_file_is_a_one_line_error(capsys, tmp_path: Path, command: str) -> None:
    argv = (["backtest", "--trace", str(tmp_path), "--json"] if command == "backtest"
            else ["forecast", "--history", str(tmp_path), "--at", "2026-03-04T23:56:00Z"])
    code, _, err = cli(capsys, *argv)
    assert_one_line_error(code, err)


def test_epoch_seconds_are_read_as_seconds_or_refused(capsys, tmp_path: Path) -> None:
    # 2026-03-02T00:00:00Z and a minute later, as Unix epoch seconds
    csv = write(tmp_path, "timestamp,value\n1772409600,5\n1772409660,6\n")
    code, out, err = cli(capsys, "backtest", "--trace", csv, "--json")
    if code == 0:
        assert json.loads(out)["demand"]["evaluated_start"] == "2026-03-02T00:00:00+00:00"
    else:
        assert_one_line_error(code, err, "timestamp")


def test_time_zone_offsets_are_converted_to_utc(capsys, tmp_path: Path) -> None:
    csv = write(tmp_path, "timestamp,value\n2026-03-02T02:00:00+02:00,5\n2026-03-02T00:01:00Z,6\n")
    code, out, _ = cli(capsys, "backtest", "--trace", csv, "--json")
    assert code == 0
    assert json.loads(out)["demand"]["evaluated_start"] == "2026-03-02T00:00:00+00:00"


def test_unsorted_rows_and_identical_duplicates_are_accepted(capsys, tmp_path: Path) -> None:
    csv = write(tmp_path, "timestamp,value\n2026-03-02 00:02,5\n2026-03-02 00:00,7\n"
                          "2026-03-02 00:00,7\n2026-03-02 00:01,6\n")
    code, out, _ = cli(capsys, "backtest", "--trace", csv, "--json")
    assert code == 0
    assert json.loads(out)["demand"]["evaluated_minutes"] == 3


def test_huge_counts_are_refused_naming_the_line(capsys, tmp_path: Path) -> None:
    csv = write(tmp_path, "timestamp,value\n2026-03-02 00:00,5\n2026-03-02 00:01,1e300\n")
    code, _, err = cli(capsys, "backtest", "--trace", csv, "--json")
    assert_one_line_error(code, err, "line 3", "1e+300", "1e+09")


def test_a_date_beyond_2262_is_one_line_on_the_real_command_line(tmp_path: Path) -> None:
    csv = write(tmp_path, "timestamp,value\n2300-01-01 00:00,5\n2300-01-01 00:01,6\n")
    exe = Path(sys.executable).with_name("prescaler")
    proc = subprocess.run([str(exe), "backtest", "--trace", csv, "--json"], capture_output=True, text=True,
                          timeout=60, check=False)
    assert_one_line_error(proc.returncode, proc.stderr)


def test_a_single_row_trace_reports_its_end(capsys, tmp_path: Path) -> None:
    csv = write(tmp_path, "timestamp,value\n2026-03-02 00:00:00,5\n")
    code, out, _ = cli(capsys, "backtest", "--trace", csv, "--json")
    assert code == 0
    assert json.loads(out)["demand"]["evaluated_end"] == "2026-03-02T00:01:00+00:00"


# --- CLI: backtest options -----------------------------------------------------------------------


def test_peak_rps_nan_is_a_one_line_error(capsys, tmp_path: Path) -> None:
    code, _, err = cli(capsys, "backtest", "--trace", small_csv(tmp_path), "--peak-rps", "nan", "--json")
    assert_one_line_error(code, err, "--peak-rps")


def test_peak_rps_inf_is_a_one_line_error(capsys, tmp_path: Path) -> None:
    code, _, err = cli(capsys, "backtest", "--trace", small_csv(tmp_path), "--peak-rps", "inf", "--json")
    assert_one_line_error(code, err, "--peak-rps")


@pytest.mark.parametrize("value", ["0", "-1"])
def test_peak_rps_not_positive_is_a_one_line_error(capsys, tmp_path: Path, value: str) -> None:
    code, _, err = cli(capsys, "backtest", "--trace", small_csv(tmp_path), "--peak-rps", value, "--json")
    assert_one_line_error(code, err, "--peak-rps")


@pytest.mark.parametrize("value", ["0", "-1"])
def test_days_not_positive_is_a_one_line_error(capsys, tmp_path: Path, value: str) -> None:
    code, _, err = cli(capsys, "backtest", "--trace", small_csv(tmp_path), "--days", value, "--json")
    assert_one_line_error(code, err, "--days")


@pytest.mark.parametrize("option", ["--days", "--warmup-days"])
def test_nan_days_name_the_option(capsys, tmp_path: Path, option: str) -> None:
    code, _, err = cli(capsys, "backtest", "--trace", small_csv(tmp_path), option, "nan", "--json")
    assert_one_line_error(code, err, option)


def test_days_beyond_the_trace_means_the_whole_trace(capsys, tmp_path: Path) -> None:
    code, out, err = cli(capsys, "backtest", "--trace", small_csv(tmp_path), "--warmup-days", "0",
                         "--days", "1e9", "--json")
    assert code == 0, err
    assert json.loads(out)["demand"]["evaluated_minutes"] == 120


def test_warmup_longer_than_the_trace_still_scores_the_last_hour(capsys, tmp_path: Path) -> None:
    code, out, _ = cli(capsys, "backtest", "--trace", small_csv(tmp_path), "--warmup-days", "100", "--json")
    assert code == 0
    assert json.loads(out)["demand"]["evaluated_minutes"] == 60


def test_negative_warmup_is_a_one_line_error(capsys, tmp_path: Path) -> None:
    code, _, err = cli(capsys, "backtest", "--trace", small_csv(tmp_path), "--warmup-days", "-1", "--json")
    assert_one_line_error(code, err, "--warmup-days")


@pytest.mark.parametrize("value", ["0", "-1", "nan"])
def test_slo_not_positive_is_a_one_line_error(capsys, tmp_path: Path, value: str) -> None:
    code, _, err = cli(capsys, "backtest", "--trace", small_csv(tmp_path), "--slo-ms", value, "--json")
    assert_one_line_error(code, err, "--slo-ms")


def test_negative_seed_names_the_option(capsys) -> None:
    code, _, err = cli(capsys, "simulate", "--days", "1", "--warmup-days", "0", "--seed", "-1", "--json")
    assert_one_line_error(code, err, "seed")


@pytest.mark.parametrize(("argv", "word"), [
    (["simulate", "--days", "0"], "--days"),
    (["simulate", "--warmup-days", "-1"], "--warmup-days"),
    (["simulate", "--scenario", "mars"], "scenario"),
    (["backtest"], "--trace"),
])
def test_simulate_and_backtest_usage_errors(capsys, argv: list[str], word: str) -> None:
    code, _, err = cli(capsys, *argv)
    assert_one_line_error(code, err, word)


@pytest.mark.parametrize(("option", "value", "word"), [
    ("--lead-time-s", "-5", "--lead-time-s"),
    ("--horizon-minutes", "0", "horizon"),
    ("--headroom", "-1", "headroom"),
])
def test_invalid_planner_option_names_the_option(capsys, tmp_path: Path, option: str, value: str,
                                                 word: str) -> None:
    code, _, err = cli(capsys, "backtest", "--trace", small_csv(tmp_path), option, value, "--json")
    assert_one_line_error(code, err, word)


def test_unknown_timezone_in_backtest_is_a_one_line_error(capsys, tmp_path: Path) -> None:
    code, _, err = cli(capsys, "backtest", "--trace", small_csv(tmp_path), "--timezone", "Mars/Olympus", "--json")
    assert_one_line_error(code, err, "Mars/Olympus")


# --- CLI: forecast -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def history_csv(tmp_path_factory) -> str:
    return hourly_csv(tmp_path_factory.mktemp("hist"), days=3)


AT = "2026-03-04T23:56:00Z"


def test_forecast_naive_and_offset_at_mean_the_same_instant(capsys, history_csv: str) -> None:
    decisions = []
    for at in ("2026-03-04T23:56:00", "2026-03-05T01:56:00+02:00", AT):
        code, out, _ = cli(capsys, "forecast", "--history", history_csv, "--at", at, "--json")
        assert code == 0
        decisions.append(json.loads(out)["decision"])
    assert decisions[0] == decisions[1] == decisions[2]
    assert decisions[0]["action"] == "raise"


@pytest.mark.parametrize("at", ["garbage", "", "2026-13-45T99:00"])
def test_forecast_unparseable_at_is_a_one_line_error(capsys, history_csv: str, at: str) -> None:
    code, _, err = cli(capsys, "forecast", "--history", history_csv, "--at", at)
    assert_one_line_error(code, err, "timestamp")


@pytest.mark.parametrize("at", ["2020-01-01", "1700-01-01"])
def test_forecast_at_before_the_history_is_a_one_line_error(capsys, history_csv: str, at: str) -> None:
    code, _, err = cli(capsys, "forecast", "--history", history_csv, "--at", at)
    assert_one_line_error(code, err, "before the history")


def test_forecast_at_beyond_2262_is_a_one_line_error(capsys, history_csv: str) -> None:
    code, _, err = cli(capsys, "forecast", "--history", history_csv, "--at", "2300-01-01")
    assert_one_line_error(code, err)


def test_forecast_far_after_the_history_holds(capsys, history_csv: str) -> None:
    code, out, _ = cli(capsys, "forecast", "--history", history_csv, "--at", "2030-01-01", "--json")
    assert code == 0
    decision = json.loads(out)["decision"]
    assert decision["action"] == "hold" and decision["min_capacity"] == 2


@pytest.mark.parametrize("extra", [
    ["--max-capacity", "0"],
    ["--baseline-min", "9", "--max-capacity", "8"],
    ["--current-min", "0"],
    ["--current-min", "9"],
    ["--baseline-min", "-1"],
])
def test_forecast_capacity_options_out_of_range(capsys, history_csv: str, extra: list[str]) -> None:
    code, _, err = cli(capsys, "forecast", "--history", history_csv, "--at", AT, *extra)
    assert_one_line_error(code, err, "--max-capacity")


def test_forecast_unknown_timezone_is_a_one_line_error(capsys, history_csv: str) -> None:
    code, _, err = cli(capsys, "forecast", "--history", history_csv, "--at", AT, "--timezone", "Mars/Olympus")
    assert_one_line_error(code, err, "Mars/Olympus")


@pytest.mark.parametrize("value", ["0", "nan", "-5"])
def test_forecast_invalid_target_names_it(capsys, history_csv: str, value: str) -> None:
    code, _, err = cli(capsys, "forecast", "--history", history_csv, "--at", AT, "--target", value)
    assert_one_line_error(code, err, "target")


def test_forecast_infinite_target_is_a_one_line_error(capsys, history_csv: str) -> None:
    code, _, err = cli(capsys, "forecast", "--history", history_csv, "--at", AT, "--target", "inf")
    assert_one_line_error(code, err, "target")


def test_forecast_one_row_history_holds(capsys, tmp_path: Path) -> None:
    csv = write(tmp_path, "timestamp,value\n2026-03-02 00:00:00,5\n")
    code, out, _ = cli(capsys, "forecast", "--history", csv, "--at", AT, "--json")
    assert code == 0
    assert json.loads(out)["decision"]["action"] == "hold"


def test_forecast_unknown_column_is_a_one_line_error(capsys, history_csv: str) -> None:
    code, _, err = cli(capsys, "forecast", "--history", history_csv, "--at", AT, "--column", "nope")
    assert_one_line_error(code, err, "nope")


def test_forecast_missing_file_is_a_one_line_error(capsys, tmp_path: Path) -> None:
    code, _, err = cli(capsys, "forecast", "--history", str(tmp_path / "nope.csv"), "--at", AT)
    assert_one_line_error(code, err, "no such")


# --- history.per_minute --------------------------------------------------------------------------


def test_per_minute_never_returns_infinity() -> None:
    t = pd.Timestamp("2026-03-02", tz="UTC")
    try:
        out = per_minute([t, t + pd.Timedelta(seconds=10)], [1e308, 1e308])
    except HistoryError:
        return
    assert np.isfinite(out.to_numpy()).all()


def test_per_minute_empty_window_is_empty() -> None:
    t = pd.Timestamp("2026-03-02", tz="UTC")
    out = per_minute([t], [5.0], start=t, end=t)
    assert len(out) == 0


def test_per_minute_descending_input_is_sorted() -> None:
    idx = pd.date_range("2026-03-02", periods=5, freq="min", tz="UTC")[::-1]
    out = per_minute(idx, [5.0, 4.0, 3.0, 2.0, 1.0])
    assert out.index.is_monotonic_increasing
    assert out.tolist() == [1.0, 2.0, 3.0, 4.0, 5.0]


@pytest.mark.parametrize(("values", "word"), [
    ([1.0, float("nan")], "finite"),
    ([1.0, None], "finite"),
    ([1.0, -1.0], "negative"),
    (["a", "b"], "numbers"),
    ([1.0], "timestamps but"),
])
def test_per_minute_rejects_unreadable_values(values: list, word: str) -> None:
    idx = pd.date_range("2026-03-02", periods=2, freq="min", tz="UTC")
    with pytest.raises(HistoryError, match=word):
        per_minute(idx, values)


def test_per_minute_epoch_seconds() -> None:
    try:
        out = per_minute([1772409600, 1772409660], [1.0, 2.0])
    except HistoryError:
        return
    assert out.index[0] == pd.Timestamp("2026-03-02", tz="UTC")


def test_per_minute_mixed_offsets_are_utc() -> None:
    out = per_minute(["2026-03-02T02:00:00+02:00", "2026-03-02T00:01:00Z"], [1.0, 2.0])
    assert out.index[0] == pd.Timestamp("2026-03-02", tz="UTC")
    assert out.sum() == 3.0


def test_per_minute_empty_without_a_window_is_a_history_error() -> None:
    with pytest.raises(HistoryError):
        per_minute([], [])


# --- decide() with odd series --------------------------------------------------------------------


@pytest.fixture(scope="module")
def three_days() -> pd.Series:
    return spiky("2026-03-02 00:00", "2026-03-04 23:59")


AFTER = pd.Timestamp("2026-03-05 00:02", tz="UTC")  # history ends at the newest complete minute


def test_decide_reference_history_raises(three_days: pd.Series) -> None:
    d = decide(three_days, TargetState(2, 8, 2), PlannerSettings(), AFTER)
    assert (d.action, d.min_capacity) == ("raise", 6)


def test_decide_tz_naive_index_is_utc_or_a_clear_error(three_days: pd.Series) -> None:
    try:
        d = decide(three_days.tz_localize(None), TargetState(2, 8, 2), PlannerSettings(), AFTER)
    except ValueError:
        return
    assert (d.action, d.min_capacity) == ("raise", 6)


def test_decide_non_utc_index_is_converted(three_days: pd.Series) -> None:
    d = decide(three_days.tz_convert("Asia/Kolkata"), TargetState(2, 8, 2), PlannerSettings(), AFTER)
    assert (d.action, d.min_capacity) == ("raise", 6)


@pytest.mark.parametrize("mangle", [
    lambda s: s[::-1],
    lambda s: s.resample("5min").sum(),
    lambda s: pd.Series(s.to_numpy()),
])
def test_decide_not_per_minute_is_a_value_error(three_days: pd.Series, mangle) -> None:
    with pytest.raises(ValueError, match="per-minute"):
        decide(mangle(three_days), TargetState(2, 8, 2), PlannerSettings(), AFTER)


def test_decide_on_a_gappy_index_equals_the_zero_filled_one() -> None:
    full = spiky("2026-03-03 18:00", "2026-03-04 23:53")
    gap = (full.index >= "2026-03-04 20:30") & (full.index < "2026-03-04 21:00")
    gappy = full[~gap]
    now = pd.Timestamp("2026-03-04 23:56", tz="UTC")
    try:
        got = decide(gappy, TargetState(2, 8, 2), PlannerSettings(), now)
    except ValueError:
        return
    want = decide(full.where(~gap, 0.0), TargetState(2, 8, 2), PlannerSettings(), now)
    assert (got.action, got.min_capacity) == (want.action, want.min_capacity) == ("raise", 6)


def test_decide_on_string_values_holds_or_is_a_value_error(three_days: pd.Series) -> None:
    try:
        d = decide(three_days.astype(str), OWNED_RAISE, PlannerSettings(), AFTER)
    except ValueError:
        return
    assert d.action == "hold"


def test_decide_object_dtype_numbers_are_numbers(three_days: pd.Series) -> None:
    d = decide(three_days.astype(object), TargetState(2, 8, 2), PlannerSettings(), AFTER)
    assert (d.action, d.min_capacity) == ("raise", 6)


@pytest.mark.parametrize("mangle", [
    lambda s: s * np.nan,
    lambda s: s.where(s.index < s.index[-3]),
    lambda s: -s,
    lambda s: s.where(s.index != s.index[-1], np.inf),
])
def test_decide_on_unreadable_history_holds(three_days: pd.Series, mangle) -> None:
    state = TargetState(6, 8, 10, owned_min_capacity=6, owned_since=AFTER - 10 * MINUTE)
    d = decide(mangle(three_days), state, PlannerSettings(), AFTER)
    assert d.action == "hold" and d.min_capacity == 6 and d.desired_instances is None


# six hourly cycles prove an hourly spike (issue 10: short history)
@pytest.mark.parametrize(("minutes", "action"), [(359, "hold"), (360, "raise"), (1440, "raise"),
                                                 (14 * 1440 + 1, "raise"), (30 * 1440, "raise")])
def test_decide_history_length_edges(minutes: int, action: str) -> None:
    end = pd.Timestamp("2026-03-20 00:00", tz="UTC")
    h = spiky(str(end - minutes * MINUTE), str(end - MINUTE))
    d = decide(h, TargetState(2, 8, 2), PlannerSettings(), end + 2 * MINUTE)
    assert d.action == action


@pytest.mark.parametrize(("level", "why"), [(0.0, "no data"), (2400.0, "flat history")])
def test_decide_on_flat_history_never_lowers(level: float, why: str) -> None:
    # A flat series (no invocations, or one count repeated every minute: a stuck or filled metric) is
    # not a backtest's finding: the forecast is not judged, so even a raise of ours is held
    h = spiky("2026-03-02 00:00", "2026-03-04 23:59") * 0 + level
    state = TargetState(6, 8, 10, owned_min_capacity=6, owned_since=AFTER - 10 * MINUTE)
    d = decide(h, state, PlannerSettings(), AFTER)
    assert d.action == "hold" and d.min_capacity == 6 and d.desired_instances is None
    assert d.forecast is not None and not d.forecast.judged and d.reason.startswith(f"hold: {why}"), d.reason


def test_decide_single_spike_is_no_pattern() -> None:
    h = spiky("2026-03-02 00:00", "2026-03-04 23:59") * 0
    h.iloc[1440] = 1e6
    d = decide(h, TargetState(2, 8, 2), PlannerSettings(), AFTER)
    assert d.action == "hold"


def test_decide_empty_history_holds() -> None:
    empty = pd.Series([], dtype=float, index=pd.DatetimeIndex([], tz="UTC"))
    d = decide(empty, OWNED_RAISE, PlannerSettings(), NOW)
    assert d.action == "hold" and d.min_capacity == 6


def test_decide_with_history_after_now_never_lowers(three_days: pd.Series) -> None:
    now = three_days.index[1000]
    d = decide(three_days, OWNED_RAISE, PlannerSettings(), now)
    assert d.min_capacity >= 6 and d.desired_instances is None


# --- plan() edge values --------------------------------------------------------------------------


@pytest.mark.filterwarnings("error::RuntimeWarning")  # an overflow is capped, not warned about
@pytest.mark.parametrize(("peak", "s"), [
    (1e308, PlannerSettings(headroom=1)),
    (1e9, PlannerSettings(target_invocations_per_instance=1e-300)),
])
def test_plan_astronomic_need_raises_to_the_cap(peak: float, s: PlannerSettings) -> None:
    d = plan(make_forecast(peak), recent([100.0] * 5), TargetState(2, 8, 2), s, NOW)
    assert (d.action, d.min_capacity) == ("raise", 8)


def test_plan_negative_recent_demand_never_scales_in() -> None:
    d = plan(make_forecast(100.0), recent([-5e6] * 5), TargetState(2, 8, 10), PlannerSettings(), NOW)
    assert d.action == "hold" and d.desired_instances is None


def test_plan_history_without_timestamps_holds() -> None:
    d = plan(make_forecast(100.0), pd.Series([100.0] * 5), OWNED_RAISE, PlannerSettings(), NOW)
    assert d.action == "hold" and d.min_capacity == 6


@pytest.mark.parametrize(("peak", "s"), [
    (float("nan"), PlannerSettings()),
    # (validation refuses an infinite target; model_construct checks plan() on its own)
    (1e5, PlannerSettings.model_construct(target_invocations_per_instance=float("inf"))),
])
def test_plan_decision_is_strict_json(peak: float, s: PlannerSettings) -> None:
    d = plan(make_forecast(peak), recent([100.0] * 5), TargetState(2, 8, 2), s, NOW)
    assert d.action == "hold"
    json.dumps(d.to_dict(), allow_nan=False)


def test_plan_future_watchdog_time_does_not_block_raises_for_months() -> None:
    state = TargetState(2, 8, 2, watchdog_at=NOW + pd.Timedelta(days=300))
    d = plan(make_forecast(1e5), recent([100.0] * 5), state, PlannerSettings(), NOW)
    assert d.action == "raise"


def test_plan_min_capacity_above_max_capacity_is_left_alone() -> None:
    d = plan(make_forecast(1e5), recent([100.0] * 5), TargetState(10, 8, 10), PlannerSettings(), NOW)
    assert d.action == "hold" and d.min_capacity == 10


def test_plan_max_capacity_zero_sends_nothing_above_it() -> None:
    d = plan(make_forecast(1e5), recent([100.0] * 5), TargetState(0, 0, 0), PlannerSettings(), NOW)
    assert d.min_capacity == 0 and not d.changes_min_capacity


def test_plan_owned_raise_above_a_lowered_max_capacity_relaxes_into_range() -> None:
    state = TargetState(10, 4, 10, owned_min_capacity=10, owned_since=NOW)
    d = plan(make_forecast(1e5), recent([100.0] * 5), state, PlannerSettings(), NOW)
    assert (d.action, d.min_capacity) == ("relax", 4)


def test_planner_settings_reject_an_unknown_timezone() -> None:
    with pytest.raises(ValidationError):
        PlannerSettings(timezone="Mars/Olympus")


def test_planner_settings_reject_an_infinite_target() -> None:
    with pytest.raises(ValidationError):
        PlannerSettings(target_invocations_per_instance=float("inf"))


@pytest.mark.parametrize("field", [
    {"target_invocations_per_instance": float("nan")},
    {"headroom": float("nan")},
    {"lead_time_s": -5},
    {"baseline_min_capacity": 0},
    {"baseline_min_capacity": 9, "prescale_max_capacity": 8},
])
def test_planner_settings_reject_nonsense(field: dict) -> None:
    with pytest.raises(ValidationError):
        PlannerSettings(**field)


# --- plan() invariants for any input (hypothesis) ------------------------------------------------

wild = st.one_of(st.floats(-1e12, 1e12), st.sampled_from([math.nan, math.inf, -math.inf]))


@st.composite
def planner_settings(draw) -> PlannerSettings:
    baseline = draw(st.integers(1, 10))
    return PlannerSettings(
        target_invocations_per_instance=draw(st.floats(1e-3, 1e9)),
        headroom=draw(st.floats(0, 4)),
        lead_time_s=draw(st.integers(0, 3600)),
        horizon_minutes=draw(st.integers(1, 120)),
        baseline_min_capacity=baseline,
        prescale_max_capacity=baseline + draw(st.integers(0, 12)),
        prompt_scale_in=draw(st.booleans()),
        scale_in_low_minutes=draw(st.integers(1, 60)),
        max_hold_minutes=draw(st.integers(1, 500)),
        watchdog_cooloff_minutes=draw(st.integers(0, 200)),
    )


@st.composite
def wild_states(draw) -> TargetState:
    """Any state AAS could report, operator mistakes included: MinCapacity 0, above MaxCapacity, ..."""
    mn, mx = draw(st.integers(0, 30)), draw(st.integers(0, 30))
    owned = draw(st.one_of(st.none(), st.just(mn), st.integers(0, 30)))
    since = draw(st.one_of(st.none(), st.integers(-600, 100_000).map(lambda m: NOW - m * MINUTE)))
    wd = draw(st.one_of(st.none(), st.integers(0, 100_000).map(lambda m: NOW - m * MINUTE)))
    return TargetState(mn, mx, draw(st.integers(0, 40)), owned, since, wd)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(planner_settings(), wild_states(), wild, st.booleans(), st.lists(wild, max_size=20), st.integers(0, 20))
def test_plan_invariants_hold_for_wild_inputs(s, state, peak, usable, hist, lag) -> None:
    """Any forecast peak (NaN, inf, negative, huge), any history tail, any AAS state: no exception,
    the invariants hold, and nothing is lowered on unreadable data (except by the watchdog)."""
    history = recent(hist, NOW - lag * MINUTE)  # lag > 4 minutes: stale
    d = plan(make_forecast(peak, usable=usable, minutes=s.lookahead_minutes), history, state, s, NOW)
    cap = min(s.prescale_max_capacity, state.max_capacity)
    base = min(s.baseline_min_capacity, cap)
    assert d.previous_min_capacity == state.min_capacity
    if d.action == "hold":
        assert d.min_capacity == state.min_capacity and d.desired_instances is None
    elif d.action == "raise":
        assert d.min_capacity > state.min_capacity and d.desired_instances is None
    else:
        assert d.min_capacity <= state.min_capacity
    if d.changes_min_capacity:
        assert base <= d.min_capacity <= cap
    if d.desired_instances is not None:
        assert d.min_capacity <= d.desired_instances < state.current_instances
    if d.action == "relax" and not d.watchdog_fired:
        assert usable and math.isfinite(peak) and peak >= 0
        tail = np.asarray(hist[-s.scale_in_low_minutes:], dtype=float)
        assert np.isfinite(tail).all() and len(tail) > 0
        if d.changes_min_capacity:
            assert state.owned_min_capacity == state.min_capacity


# --- the newcomer's reproducers (/tmp/nc_repro): refused with one line, never guessed ------------------


def test_a_span_of_126_years_is_refused_before_allocating(capsys, tmp_path: Path) -> None:
    csv = write(tmp_path, "timestamp,value\n1900-01-01T00:00:00,5\n2026-01-01T00:00:00,5\n")
    code, _, err = cli(capsys, "backtest", "--trace", csv)
    assert_one_line_error(code, err, "t.csv", "1900-01-01", "400 days")
    code, _, err = cli(capsys, "forecast", "--history", csv, "--at", "2026-01-01T00:05:00")
    assert_one_line_error(code, err, "400 days")


def test_a_span_of_400_days_is_accepted_and_401_refused() -> None:
    lo = pd.Timestamp("2025-01-01", tz="UTC")
    assert len(per_minute([lo, lo + pd.Timedelta(days=400)], [1, 1], interval=MINUTE)) == 400 * 1440 + 1
    with pytest.raises(HistoryError, match="400 days"):
        per_minute([lo, lo + pd.Timedelta(days=401)], [1, 1], interval=MINUTE)


def test_an_interval_of_ten_years_is_refused_and_hourly_counts_are_limited_per_minute() -> None:
    with pytest.raises(HistoryError, match="interval"):
        per_minute(["2026-01-01"], [5], interval=pd.Timedelta(days=3650))
    hourly = per_minute(["2026-01-01T00:00", "2026-01-01T01:00"], [2e9, 1])  # 2e9/hour = 3.3e7/minute
    assert hourly.max() == pytest.approx(2e9 / 60)
    with pytest.raises(HistoryError, match="per minute"):
        per_minute(["2026-01-01T00:00", "2026-01-01T00:01"], [2e9, 1])


def test_a_requests_log_spanning_years_is_refused() -> None:
    from prescaler.history import from_requests

    with pytest.raises(HistoryError, match="400 days"):
        from_requests(["2016-01-01T00:00:00", "2026-01-01T00:00:00"])


def test_peak_rps_1e300_is_one_line_naming_the_option(capsys, tmp_path: Path) -> None:
    code, _, err = cli(capsys, "backtest", "--trace", small_csv(tmp_path), "--peak-rps", "1e300")
    assert_one_line_error(code, err, "--peak-rps", "1e+300")


def test_from_minutes_and_the_twin_refuse_overflowing_demand() -> None:
    from prescaler.sim import scenarios, twin

    minutes = per_minute(pd.date_range("2026-03-02", periods=120, freq="min"), np.full(120, 600.0))
    with pytest.raises(HistoryError, match="peak-rps"):
        scenarios.from_minutes(minutes, "t", peak_rps=1e300)
    huge = scenarios.Demand("huge", minutes.index[0], np.full(120 * 6, 1e300))
    with pytest.raises(ValueError, match="requests/s"):
        twin.run(huge, policies=("oracle",))


def test_huge_values_are_refused_in_forecast_without_overflow_warnings(capsys, tmp_path: Path) -> None:
    csv = write(tmp_path, "timestamp,value\n2026-01-01T00:00:00,1e300\n2026-01-01T00:01:00,1e300\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        code, _, err = cli(capsys, "forecast", "--history", csv, "--at", "2026-01-01T00:05:00")
    assert_one_line_error(code, err, "line 2", "1e+300")


@pytest.mark.parametrize("first,second", [("600", "6000"), ("6000", "600")])
def test_conflicting_duplicate_minutes_are_refused_naming_the_lines(capsys, tmp_path: Path, first: str,
                                                                    second: str) -> None:
    csv = write(tmp_path, f"timestamp,value\n2026-01-01T00:00:00,{first}\n2026-01-01T00:00:00,{second}\n"
                          "2026-01-01T00:01:00,5\n")
    code, _, err = cli(capsys, "backtest", "--trace", csv)
    assert_one_line_error(code, err, "lines 2, 3", "different values", "identical repeats are accepted")


def test_a_time_zone_name_in_a_trace_is_refused_naming_the_line(capsys, tmp_path: Path) -> None:
    csv = write(tmp_path, "timestamp,value\n2026-01-01 00:00:00+01:00,5\n2026-01-01 00:01:00 CET,5\n")
    code, _, err = cli(capsys, "backtest", "--trace", csv)
    assert_one_line_error(code, err, "t.csv line 3", "'CET'", "offset")


@pytest.mark.parametrize("stamp", ["2026-01-01T00:00:00+01:00", "2026-01-01T00:00:00Z", "2026-01-01 00:00:00 UTC",
                                   "2026-01-01 03:00 PM"])
def test_offsets_z_and_utc_stay_accepted(stamp: str) -> None:
    from prescaler.history import to_utc

    assert to_utc(stamp).tzinfo is not None


def test_a_time_zone_name_in_at_is_refused(capsys, tmp_path: Path) -> None:
    code, _, err = cli(capsys, "forecast", "--history", small_csv(tmp_path), "--at", "2026-03-02 01:30 CET")
    assert_one_line_error(code, err, "--at", "'CET'")


def test_ambiguous_at_and_start_are_refused_and_dayfirst_is_honoured(capsys, tmp_path: Path) -> None:
    csv = small_csv(tmp_path)
    code, _, err = cli(capsys, "forecast", "--history", csv, "--at", "03/02/2026 01:30")
    assert_one_line_error(code, err, "--at", "ambiguous", "--dayfirst")
    code, out, _ = cli(capsys, "forecast", "--history", csv, "--at", "02/03/2026 01:30", "--dayfirst", "--json")
    assert code == 0 and json.loads(out)["at"] == "2026-03-02T01:30:00+00:00"
    code, _, err = cli(capsys, "backtest", "--trace", csv, "--start", "02/03/2026")
    assert_one_line_error(code, err, "--start", "ambiguous")
    code, out, _ = cli(capsys, "backtest", "--trace", csv, "--start", "02/03/2026 00:30", "--dayfirst",
                       "--warmup-days", "0", "--json")
    assert code == 0 and json.loads(out)["demand"]["evaluated_start"] == "2026-03-02T00:30:00+00:00"


def test_ambiguous_event_dates_are_refused_unless_dayfirst(capsys, tmp_path: Path) -> None:
    csv = small_csv(tmp_path)
    ev = write(tmp_path, "name,start,end,peak_invocations_per_minute\na,02/03/2026 01:30,02/03/2026 01:45,50000\n",
               "ev.csv")
    code, _, err = cli(capsys, "forecast", "--history", csv, "--at", "2026-03-02T01:30:00", "--events", ev)
    assert_one_line_error(code, err, "--events", "ambiguous", "--dayfirst")
    code, out, _ = cli(capsys, "forecast", "--history", csv, "--at", "2026-03-02T01:30:00", "--events", ev,
                       "--dayfirst", "--json")
    assert code == 0
    assert json.loads(out)["decision"]["action"] == "raise"  # 2 March, not 3 February


def test_boolean_values_in_a_trace_are_refused(capsys, tmp_path: Path) -> None:
    csv = write(tmp_path, "timestamp,value\n2026-01-01T00:00:00,True\n2026-01-01T00:01:00,True\n")
    code, _, err = cli(capsys, "backtest", "--trace", csv)
    assert_one_line_error(code, err, "line 2", "boolean")


@pytest.mark.parametrize("peak", [True, "true"])
def test_a_boolean_event_peak_is_refused(peak: object) -> None:
    from prescaler import events

    record = {"name": "a", "start": "2026-01-03T12:00:00", "end": "2026-01-03T13:00:00",
              "peak_invocations_per_minute": peak}
    with pytest.raises(events.EventsError, match="boolean"):
        events.parse([record])


def test_owned_since_after_at_is_refused(capsys, tmp_path: Path) -> None:
    code, _, err = cli(capsys, "forecast", "--history", small_csv(tmp_path), "--at", "2026-03-02T01:30:00",
                       "--current-min", "4", "--owned", "--owned-since", "2030-01-01")
    assert_one_line_error(code, err, "--owned-since", "future")


def test_a_csv_without_header_is_refused(capsys, tmp_path: Path) -> None:
    csv = write(tmp_path, "2026-01-01T00:00:00,100\n2026-01-01T00:01:00,100\n2026-01-01T00:02:00,100\n")
    code, _, err = cli(capsys, "backtest", "--trace", csv)
    assert_one_line_error(code, err, "line 1", "not a header")


def test_a_nan_cell_is_called_not_a_number(capsys, tmp_path: Path) -> None:
    csv = write(tmp_path, "timestamp,value\n2026-01-01T00:00:00,5\n2026-01-01T00:01:00,nan\n"
                          "2026-01-01T00:02:00,\n")
    code, _, err = cli(capsys, "backtest", "--trace", csv)
    assert_one_line_error(code, err, "line 3", "not a number")
    assert "empty" not in err


def test_a_plot_file_that_is_not_an_image_is_refused_before_simulating(capsys, tmp_path: Path,
                                                                       monkeypatch) -> None:
    from prescaler.sim import twin

    def must_not_run(*_a: object, **_k: object) -> None:
        raise AssertionError("simulated before checking --plot")

    monkeypatch.setattr(twin, "run", must_not_run)
    code, _, err = cli(capsys, "backtest", "--trace", small_csv(tmp_path), "--plot", str(tmp_path / "out.txt"))
    assert_one_line_error(code, err, "--plot", "out.txt", ".png")


def test_forecast_capacity_range_error_echoes_the_values(capsys, tmp_path: Path) -> None:
    code, _, err = cli(capsys, "forecast", "--history", small_csv(tmp_path), "--at", "2026-03-02T01:30:00",
                       "--baseline-min", "9", "--max-capacity", "8")
    assert_one_line_error(code, err, "--baseline-min 9", "--max-capacity 8")


def test_a_nan_event_peak_is_called_not_finite() -> None:
    from prescaler import events

    with pytest.raises(events.EventsError, match="finite") as err:
        events.from_csv("name,start,end,peak_invocations_per_minute\na,2026-01-03T12:00,2026-01-03T13:00,nan\n")
    assert "required" not in str(err.value)


# --- numeric model options have an upper bound with a reason, checked before anything runs ---------------


@pytest.fixture
def nothing_runs(monkeypatch) -> None:
    """The simulation must not start (an absurd value ran for ages, overflowed, or ran out of memory)."""
    from prescaler.sim import scenarios, twin

    def must_not_run(*_a: object, **_k: object) -> None:
        raise AssertionError("simulated an absurd model instead of refusing it")

    def must_not_build(make: object) -> object:
        @functools.wraps(make)  # type: ignore[arg-type]  # the scenario's own defaults (its warm-up days)
        def fake(*_a: object, **_k: object) -> None:
            raise AssertionError("built an absurd scenario instead of refusing it")
        return fake

    monkeypatch.setattr(twin, "run", must_not_run)
    for name, make in list(scenarios.SCENARIOS.items()):
        monkeypatch.setitem(scenarios.SCENARIOS, name, must_not_build(make))


@pytest.mark.parametrize(("argv", "words"), [
    (["--capacity-rps", "1e300"], ["--capacity-rps", "at most 16,666,666.67", "requests/s a demand may reach"]),
    (["--capacity-rps", "1e-300"], ["--capacity-rps", ">= 0.01667", "60 s"]),  # was an OverflowError traceback
    (["--service-time-ms", "1e300"], ["--service-time-ms", "at most 60,000", "answer within 60 s"]),
    (["--slo-ms", "1e300"], ["--slo-ms", "at most 60,000", "fails, it does not breach"]),
    (["--provisioning-s", "0", "1e300"], ["--provisioning-s", "at most 3,600", "lead time"]),
    (["--max-capacity", "100000000"], ["--max-capacity", "at most 1000", "PRESCALE_MAX_CAPACITY"]),
    (["--target", "1e300"], ["--target", "at most 1,000,000,000", "minute"]),
    (["--concurrency-target", "1e300"], ["--concurrency-target", "at most 3,000", "little's law"]),
    (["--cpu-at-saturation", "1e300"], ["--cpu-at-saturation", "at most 19,200", "vcpus"]),
    (["--scenario", "llm-workday", "--copies-per-instance", "1000000000"], ["--copies-per-instance", "at most 1000"]),
    (["--scenario", "llm-workday", "--max-instances", "100000000"], ["--max-instances", "at most 1000"]),
    (["--scenario", "llm-workday", "--copy-startup-s", "0", "1e300"], ["--copy-startup-s", "at most 3,600"]),
    (["--days", "100000"], ["--days 100000", "--warmup-days 2", "400 days"]),
    (["--warmup-days", "100000"], ["--days 3", "--warmup-days 100000", "400 days"]),  # was killed: out of memory
    (["--days", "399"], ["--days 399", "--warmup-days 2", "400 days"]),
    (["--scenario", "llm-workday", "--days", "397"], ["--warmup-days 4", "400 days"]),
])
def test_absurd_model_values_are_refused_with_a_reason(capsys, nothing_runs: None, argv: list[str],
                                                       words: list[str]) -> None:
    code, _, err = cli(capsys, "simulate", *argv)
    assert_one_line_error(code, err, *words)


@pytest.mark.parametrize(("argv", "words"), [
    (["--max-capacity", "5000"], ["--max-capacity 5000", "less than or equal to 1000", "the lambda's limit"]),
    (["--baseline-min", "2000", "--max-capacity", "3000"], ["--baseline-min 2000", "1000"]),
    (["--target", "1e12"], ["--target", "less than or equal to 1000000000", "a minute of a trace"]),
])
def test_forecast_refuses_absurd_capacities_and_targets_with_a_reason(capsys, tmp_path: Path, argv: list[str],
                                                                      words: list[str]) -> None:
    code, _, err = cli(capsys, "forecast", "--history", small_csv(tmp_path), "--at", "2026-03-02T01:30:00", *argv)
    assert_one_line_error(code, err, *words)


def test_the_largest_accepted_values_still_run(capsys, tmp_path: Path) -> None:
    # the bounds are limits, not defaults moved: the edge values are accepted (a 2-hour trace runs fast)
    code, out, err = cli(capsys, "backtest", "--trace", small_csv(tmp_path), "--json", "--max-capacity", "1000",
                         "--provisioning-s", "3600", "3600", "--slo-ms", "60000", "--capacity-rps", str(1 / 60),
                         "--target", "1e9", "--cpu-at-saturation", "19200")
    assert code == 0, err
    assert json.loads(out)["model"]["max_capacity"] == 1000


def test_the_twin_refuses_an_instance_slower_than_the_invocation_timeout() -> None:
    from prescaler.sim import twin

    with pytest.raises(ValueError, match="capacity_rps_per_instance"):
        twin.EndpointModel(capacity_rps_per_instance=1e-300)
    with pytest.raises(ValueError, match="3600"):
        twin.EndpointModel(provisioning_s=(0.0, 1e300))


def test_planner_settings_bound_capacity_and_target() -> None:
    for field in ({"prescale_max_capacity": 1001}, {"baseline_min_capacity": 1001, "prescale_max_capacity": 1000},
                  {"target_invocations_per_instance": 1.000001e9}):
        with pytest.raises(ValidationError):
            PlannerSettings(**field)
    PlannerSettings(prescale_max_capacity=1000, baseline_min_capacity=1000, target_invocations_per_instance=1e9)


def test_the_lambda_refuses_a_target_the_planner_would_refuse_at_load_time() -> None:
    # before, the settings loaded and every tick failed later, in ScalerSettings.planner()
    from prescaler import settings

    env = {"ENDPOINT_NAME": "e", "LEDGER_TABLE_NAME": "ledger", "TARGET_INVOCATIONS_PER_INSTANCE": "1e12"}
    with pytest.raises(settings.SettingsError, match="TARGET_INVOCATIONS_PER_INSTANCE"):
        settings.load(settings.ScalerSettings, env)
    env["TARGET_INVOCATIONS_PER_INSTANCE"] = "1e9"
    assert settings.load(settings.ScalerSettings, env).planner().target_invocations_per_instance == 1e9


# --- --events outside the simulated window: refused when none overlaps, else named -----------------------


def events_csv(tmp_path: Path, *rows: str) -> str:
    return write(tmp_path, "name,start,end,peak_invocations_per_minute\n" + "\n".join(rows) + "\n", "ev.csv")


def test_events_that_all_miss_the_simulated_window_are_refused(capsys, tmp_path: Path, monkeypatch) -> None:
    from prescaler.sim import twin

    def must_not_run(*_a: object, **_k: object) -> None:
        raise AssertionError("simulated with a calendar that changes nothing")

    monkeypatch.setattr(twin, "run", must_not_run)
    ev = events_csv(tmp_path, "launch,2025-03-02T09:00,2025-03-02T10:00,12000")  # a year early: a typo
    code, _, err = cli(capsys, "simulate", "--days", "1", "--events", ev)
    assert_one_line_error(code, err, "--events", "none of its 1 event", "'launch' (2025-03-02 09:00",
                          "2026-03-02 00:00 to 2026-03-05 00:00 UTC")


def test_events_partly_outside_the_trace_are_named_and_the_others_used(capsys, tmp_path: Path) -> None:
    # the 2-hour trace spans 2026-03-02 00:00-02:00; its first hour is the warm-up, the second is scored
    ev = events_csv(tmp_path, "old,2025-03-02T00:30,2025-03-02T01:00,12000",
                    "warm,2026-03-02T00:20,2026-03-02T00:40,30000",
                    "sale,2026-03-02T01:20,2026-03-02T01:40,30000",
                    "future,2027-01-01T00:00,2027-01-01T01:00,12000")
    code, out, err = cli(capsys, "backtest", "--trace", small_csv(tmp_path), "--json", "--events", ev)
    assert code == 0, err
    notes = [line for line in err.splitlines() if line.startswith("note: --events")]
    assert len(notes) == 2, err
    assert "2 of 4 events lie outside" in notes[0] and "'old'" in notes[0] and "'future'" in notes[0]
    assert "'sale'" not in notes[0] and "'warm'" not in notes[0]
    assert "warm-up only" in notes[1] and "'warm'" in notes[1] and "'sale'" not in notes[1]
    # the calendar still reaches the planner whole (the file is not edited, only reported on)
    assert [e["name"] for e in json.loads(out)["settings"]["known_events"]] == ["old", "warm", "sale", "future"]


def test_an_event_just_after_the_window_is_inside_its_lead_time(capsys, tmp_path: Path) -> None:
    # starts 3 minutes after the trace's last minute: the 300 s lead time raises for it inside the window
    ev = events_csv(tmp_path, "next,2026-03-02T02:03,2026-03-02T02:30,30000")
    code, _, err = cli(capsys, "backtest", "--trace", small_csv(tmp_path), "--json", "--events", ev)
    assert code == 0 and "note: --events" not in err, err


def test_events_overlapping_is_a_half_open_window() -> None:
    from prescaler import events

    known = events.from_csv("name,start,end,peak_invocations_per_minute\n"
                            "a,2026-01-01T00:00,2026-01-01T01:00,5\nb,2026-01-01T01:00,2026-01-01T02:00,5\n")
    hour = pd.Timestamp("2026-01-01T01:00", tz="UTC")
    assert [e.name for e in events.overlapping(known, hour, hour + pd.Timedelta(hours=1))] == ["b"]
    assert [e.name for e in events.overlapping(known, hour - MINUTE, hour + MINUTE)] == ["a", "b"]
    assert events.overlapping(known, hour + pd.Timedelta(hours=1), hour + pd.Timedelta(hours=2)) == ()


# --- found in the hunt ------------------------------------------------------------------------------------


def test_an_all_zero_trace_is_refused_like_an_endpoint_without_traffic(capsys, tmp_path: Path) -> None:
    idx = pd.date_range("2026-03-02", periods=180, freq="min")
    csv = write(tmp_path, "timestamp,errors,invocations\n" + "".join(f"{t:%Y-%m-%dT%H:%M},0,{100 + t.minute}\n"
                                                                      for t in idx))
    code, _, err = cli(capsys, "backtest", "--trace", csv, "--json")  # the second column: all zero
    assert_one_line_error(code, err, "has no traffic", "the second column", "--column")
    code, out, err = cli(capsys, "backtest", "--trace", csv, "--json", "--column", "invocations")
    assert code == 0 and json.loads(out)["demand"]["evaluated_minutes"] > 0, err


def test_a_trace_of_two_minutes_says_nothing_can_be_forecast(capsys, tmp_path: Path) -> None:
    csv = write(tmp_path, "timestamp,value\n2026-03-02T00:00,5\n2026-03-02T00:01,7\n")
    code, out, err = cli(capsys, "backtest", "--trace", csv, "--json")
    assert code == 0, err
    assert "only 2 minute(s) long" in err and "at least the last hour" not in err
    assert json.loads(out)["demand"]["evaluated_minutes"] == 2


def test_a_tab_separated_csv_is_called_tab_separated(capsys, tmp_path: Path) -> None:
    csv = write(tmp_path, "timestamp\tvalue\n2026-03-02 00:00\t5\n2026-03-02 00:01\t6\n")
    code, _, err = cli(capsys, "backtest", "--trace", csv, "--json")
    assert_one_line_error(code, err, "tab-separated", "commas")


@pytest.mark.parametrize(("time", "ok"), [
    ("0001-01-01T00:00:00Z", False),  # pydantic reads it, pandas' nanoseconds cannot: OutOfBoundsDatetime before
    ("9999-12-31T23:59:59Z", False),
    ("1969-12-31T23:59:00Z", False),
    ("1970-01-01T00:00:00Z", True),  # sam local generate-event's time: replayed, it holds on an empty window
    ("2261-12-31T23:59:00Z", True),
    ("2262-01-01T00:00:00Z", False),
])
def test_a_tick_time_outside_the_years_a_series_can_hold_is_an_invalid_event(time: str, ok: bool) -> None:
    from prescaler import service

    if ok:
        assert service.parse_tick({"time": time, "prescaler-replay": True}).now == pd.Timestamp(time)
    else:
        with pytest.raises(service.InvalidEvent, match="event field 'time'"):
            service.parse_tick({"time": time, "prescaler-replay": True})


def test_to_utc_refuses_a_datetime_object_beyond_nanoseconds() -> None:
    from datetime import UTC, datetime

    with pytest.raises(HistoryError, match="outside 1677-09-21 to 2262-04-11"):
        to_utc_(datetime(1, 1, 1, tzinfo=UTC))
    assert to_utc_(datetime(2026, 3, 2)) == pd.Timestamp("2026-03-02", tz="UTC")


@pytest.mark.parametrize(("name", "text"), [("ev.csv", "name,start,end,peak_invocations_per_minute\n"),
                                            ("ev.json", "[]")])
def test_an_events_file_without_events_is_noted(capsys, tmp_path: Path, name: str, text: str) -> None:
    ev = write(tmp_path, text, name)
    code, out, err = cli(capsys, "forecast", "--history", small_csv(tmp_path), "--at", "2026-03-02T01:30:00",
                         "--json", "--events", ev)
    assert code == 0 and json.loads(out)["decision"]
    assert f"note: --events {ev} holds no events" in err


@pytest.mark.parametrize("var", ["HEADROOM", "TARGET_INVOCATIONS_PER_INSTANCE", "BREACH_MINUTE_COST"])
@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_a_lambda_setting_of_nan_or_infinity_is_called_not_finite(var: str, value: str) -> None:
    # before: NaN was reported as "should be less than or equal to 4" (a bound it does not exceed)
    from prescaler import settings

    with pytest.raises(settings.SettingsError, match=f"{var}='{value}': Input should be a finite number"):
        settings.load(settings.ScalerSettings, {"ENDPOINT_NAME": "e", "LEDGER_TABLE_NAME": "ledger", var: value})


@pytest.mark.parametrize("argv", [["doctor", "--endpoint", "ünï cödé"],
                                  ["doctor", "--endpoint", "ok", "--variant", "a/b"],
                                  ["backtest", "--endpoint", "my_endpoint"], ["backtest", "--endpoint=-x"]])
def test_a_name_sagemaker_cannot_hold_is_refused_before_any_aws_call(capsys, monkeypatch, argv: list[str]) -> None:
    from prescaler.aws import clients

    def no_aws() -> None:
        raise AssertionError("called AWS with a name SageMaker refuses")

    monkeypatch.setattr(clients, "session", no_aws)
    code, _, err = cli(capsys, *argv)
    assert_one_line_error(code, err, "is not a SageMaker name", argv[-1].removeprefix("--endpoint="))


@pytest.mark.parametrize(("where", "words"), [("t.csv/out.png", ["is a file, not a folder"]),
                                              ("/proc/no/out.png", ["cannot write there"])])
def test_a_plot_path_that_cannot_be_written_is_refused_before_simulating(capsys, tmp_path: Path, monkeypatch,
                                                                         where: str, words: list[str]) -> None:
    # before: a traceback from savefig's mkdir after the whole simulation had run
    from prescaler.sim import twin

    def must_not_run(*_a: object, **_k: object) -> None:
        raise AssertionError("simulated before checking --plot")

    monkeypatch.setattr(twin, "run", must_not_run)
    trace = small_csv(tmp_path)
    write(tmp_path, "a file, not a folder", "t.csv")
    plot = where if where.startswith("/") else str(tmp_path / where)
    code, _, err = cli(capsys, "backtest", "--trace", trace, "--plot", plot)
    assert_one_line_error(code, err, "--plot", *words)


def test_a_writable_plot_path_leaves_no_empty_file_when_the_run_fails(capsys, tmp_path: Path) -> None:
    plot = tmp_path / "new" / "out.png"
    code, _, err = cli(capsys, "backtest", "--trace", small_csv(tmp_path), "--plot", str(plot), "--slo-ms", "1")
    assert code == 2 and not plot.exists(), err


def test_now_and_today_are_refused_wherever_a_time_is_read(capsys, tmp_path: Path) -> None:
    # pandas reads them from the LOCAL clock (TZ=Asia/Tokyo: 9 hours off UTC), and moving: never guessed
    trace = small_csv(tmp_path)
    code, _, err = cli(capsys, "forecast", "--history", trace, "--at", "now")
    assert_one_line_error(code, err, "--at", "'now' is not read", "ISO 8601")
    code, _, err = cli(capsys, "backtest", "--trace", trace, "--start", "Today")
    assert_one_line_error(code, err, "--start", "'Today' is not read")
    rows = write(tmp_path, "timestamp,value\n2026-03-02T00:00,5\nnow,6\n", "now.csv")
    code, _, err = cli(capsys, "backtest", "--trace", rows, "--json")
    assert_one_line_error(code, err, "now.csv line 3", "'now' is not read")
    ev = write(tmp_path, '[{"start": "today", "end": "2026-03-02T01:00", "peak_invocations_per_minute": 5}]',
               "ev.json")
    code, _, err = cli(capsys, "backtest", "--trace", trace, "--events", ev)
    assert_one_line_error(code, err, "known event #1 (start)", "'today' is not read")
