"""Issue 9 case 8: day-first dates are refused unless ``--dayfirst`` says so; parse errors are whole
sentences; the semicolon hint survives ``--column``; ``forecast --history typo`` names the history
file; the forecast JSON's ``capped`` is a boolean; ``forecast --owned`` previews a relax."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from prescaler.cli import main
from prescaler.history import AmbiguousDates, per_minute

pytestmark = pytest.mark.unit


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def write_csv(path: Path, times: list[str], values: list[float], sep: str = ",") -> Path:
    rows = "".join(f"{t}{sep}{v:g}\n" for t, v in zip(times, values, strict=True))
    path.write_text(f"timestamp{sep}invocations\n" + rows)
    return path


def hourly(days: float, spike: float, base: float = 600, end: str = "2026-11-03T09:55Z",
           spike_minutes: int = 10) -> tuple[list[str], list[float]]:
    index = pd.date_range(pd.Timestamp(end) - pd.Timedelta(days=days), pd.Timestamp(end), freq="min",
                          inclusive="left")
    values = np.where(index.minute < spike_minutes, spike, base)
    return [t.isoformat() for t in index], [float(v) for v in values]


# --------------------------------------------------------------------------------------------------
# day-first dates


def day_first_trace(tmp_path: Path) -> Path:
    """Three days from 1 November 2026 written day first (01/11/2026 00:00), one row a minute."""
    index = pd.date_range("2026-11-01", periods=3 * 1440, freq="min")
    values = np.where(index.minute < 10, 9000.0, 600.0)
    return write_csv(tmp_path / "dayfirst.csv", [f"{t:%d/%m/%Y %H:%M}" for t in index], list(values))


def test_day_first_dates_are_refused_in_one_line_naming_the_accepted_formats(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # Given a trace written 01/11/2026 00:00 (day first)
    trace = day_first_trace(tmp_path)
    # When it is backtested without saying how to read it
    code, out, err = run(capsys, "backtest", "--trace", str(trace), "--json")
    # Then it is refused with one line naming ISO 8601 and --dayfirst; nothing is scored
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "'01/11/2026 00:00'" in err
    assert "ISO 8601" in err and "--dayfirst" in err


def test_with_dayfirst_the_dates_are_read_as_november(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    trace = day_first_trace(tmp_path)
    code, out, err = run(capsys, "forecast", "--history", str(trace), "--dayfirst", "--at", "2026-11-03T23:55Z",
                         "--json")
    assert code == 0, err
    history = json.loads(out)["history"]
    assert history["data_ends"] == "2026-11-04T00:00:00+00:00"  # 3 November's last minute, not 11 March's


def test_the_core_never_guesses_the_order_of_day_and_month() -> None:
    with pytest.raises(AmbiguousDates):
        per_minute(["03/02/2026 10:00", "03/02/2026 10:01"], [1, 2])
    assert per_minute(["03/02/2026 10:00"], [1], dayfirst=True).index[0] == pd.Timestamp("2026-02-03T10:00Z")
    # ISO 8601 and month names are not ambiguous
    assert per_minute(["2026-02-03T10:00Z"], [1]).index[0] == pd.Timestamp("2026-02-03T10:00Z")
    assert per_minute(["3 Feb 2026 10:00"], [1]).index[0] == pd.Timestamp("2026-02-03T10:00Z")


def test_a_parse_error_is_never_cut_mid_sentence(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # Given a timestamp that is not one
    trace = write_csv(tmp_path / "bad.csv", ["2026-11-01T00:00Z", "bogus"], [5, 7])
    # When it is read
    code, _, err = run(capsys, "backtest", "--trace", str(trace))
    # Then the one line ends a sentence (pandas' "You might want to try:" list is not half-quoted)
    assert code == 2
    line = err.strip()
    assert line.endswith("at position 1.") and "You might want to try" not in line, line


# --------------------------------------------------------------------------------------------------
# other CLI lines


def test_column_on_a_semicolon_file_keeps_the_semicolon_hint(capsys: pytest.CaptureFixture[str],
                                                              tmp_path: Path) -> None:
    trace = write_csv(tmp_path / "semi.csv", ["2026-11-01T00:00Z"], [5], sep=";")
    code, _, err = run(capsys, "backtest", "--trace", str(trace), "--column", "invocations")
    assert code == 2
    assert "no column 'invocations'" in err and "semicolon-separated?" in err


def test_forecast_history_typo_names_the_history_file(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "forecast", "--history", "typo.csv", "--at", "2026-11-01T00:00Z")
    assert code == 2
    assert "no such history file (--history): typo.csv" in err and "trace" not in err


def test_forecast_json_capped_is_a_boolean(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # Given hourly spikes of 30,000/min (13 instances at 2,400) and a cap of 8
    times, values = hourly(2, 30_000)
    history = write_csv(tmp_path / "h.csv", times, values)
    code, out, err = run(capsys, "forecast", "--history", str(history), "--at", "2026-11-03T09:55Z", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["decision"]["action"] == "raise" and data["decision"]["min_capacity"] == 8
    assert data["decision"]["numbers"]["capped"] is True
    # and a spike under the cap is a JSON false
    times, values = hourly(2, 9_000)
    write_csv(tmp_path / "h.csv", times, values)
    code, out, _ = run(capsys, "forecast", "--history", str(history), "--at", "2026-11-03T09:55Z", "--json")
    assert json.loads(out)["decision"]["numbers"]["capped"] is False


def test_forecast_owned_previews_a_relax(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # Given the 10:00 spike is over at 10:20 and MinCapacity is 6
    times, values = hourly(2, 13_200, base=2_400, end="2026-11-03T10:20Z")
    history = write_csv(tmp_path / "h.csv", times, values)
    args = ["forecast", "--history", str(history), "--at", "2026-11-03T10:20Z", "--current-min", "6", "--json"]
    # When the 6 is an operator's, the pre-scaler leaves it alone
    code, out, err = run(capsys, *args)
    assert code == 0, err
    assert json.loads(out)["decision"]["action"] == "hold"
    # When it is the pre-scaler's own raise (--owned), the preview is the relax 6 -> 2
    code, out, err = run(capsys, *args, "--owned")
    assert code == 0, err
    decision = json.loads(out)["decision"]
    assert (decision["action"], decision["min_capacity"]) == ("relax", 2), decision
    # and --owned-since beyond the maximum hold shows the watchdog, for a MinCapacity demand never
    # needed since (7: the spikes needed 6)
    seven = [a if a != "6" else "7" for a in args]
    code, out, _ = run(capsys, *seven, "--owned", "--owned-since", "2026-11-03T07:00Z")
    assert "watchdog" in json.loads(out)["decision"]["reason"]


def test_forecast_owned_needs_a_raise_above_the_baseline(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    times, values = hourly(2, 13_200)
    history = write_csv(tmp_path / "h.csv", times, values)
    code, _, err = run(capsys, "forecast", "--history", str(history), "--at", "2026-11-03T09:55Z", "--owned")
    assert code == 2 and "--owned" in err


AZURE_FUNCTIONS = str(Path(__file__).resolve().parents[2] / "data" / "traces"
                      / "azure_functions_2019_sample500_timer_8h_1min.csv")


def test_the_readmes_azure_functions_forecast_example_prints_what_the_readme_says(
        capsys: pytest.CaptureFixture[str]) -> None:
    # Given the README's command: the raw Azure Functions sample at 14:55, target 63 on its own scale
    code = main(["forecast", "--history", AZURE_FUNCTIONS, "--at", "1970-01-01T14:55:00", "--target", "63"])
    out = capsys.readouterr().out
    # Then it prints the raise for the hourly spike at 15:00-15:01, as the README says
    assert code == 0
    assert out.splitlines()[0] == "RAISE MinCapacity 2 -> 6"
    assert "hourly pattern" in out and "15:00-15:01 UTC" in out


def test_a_hold_on_a_young_endpoint_names_the_span_of_its_traffic_not_the_zero_filled_week(
        capsys: pytest.CaptureFixture[str]) -> None:
    # Given the same sample at 13:26, five and a half hours into its traffic (read as the Lambda reads
    # it: 14 days, zero-filled), on an endpoint whose target (1,000 a minute) the baseline always
    # serves: no pattern is worth acting on
    code = main(["forecast", "--history", AZURE_FUNCTIONS, "--at", "1970-01-01T13:26:00", "--target", "1000",
                 "--json"])
    reason = json.loads(capsys.readouterr().out)["forecast"]["reason"]
    # Then the hold's reason names the span the backtest scored, the traffic's (0.2 days: its whole
    # hours after the shortest candidate's first cycle), not the 7 days of a zero-filled window
    assert code == 0 and reason.startswith("no pattern worth acting on")
    assert "over the last 0.2 days" in reason and "7.0 days" not in reason, reason
