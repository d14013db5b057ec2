"""prescaler.events: the known-events calendar (issue 10 §3), its formats, errors and plumbing.

An event is a declared window with an expected peak; the planner treats it like a forecast window
(``tests/unit/test_plan.py`` pins the raise and the relax). Here: both formats read the same events,
every mistake is one line naming the event and the field, the Lambda setting ``KNOWN_EVENTS`` and the
CLI's ``--events`` reach the planner.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from prescaler import events
from prescaler.cli import main
from prescaler.forecast import Forecast, with_events
from prescaler.history import MINUTE, SERIES_NAME
from prescaler.settings import ScalerSettings, SettingsError, load

pytestmark = pytest.mark.unit

LAUNCH = {"name": "launch", "start": "2026-03-05T10:00:00Z", "end": "2026-03-05T10:30:00Z",
          "peak_invocations_per_minute": 12000}


def test_json_and_csv_read_the_same_events(tmp_path) -> None:
    # Given the same two events as JSON and as CSV (one without a zone: UTC)
    match = {"name": "match", "start": "2026-03-06 18:00", "end": "2026-03-06 20:00",
             "peak_invocations_per_minute": 9000}
    (tmp_path / "ev.json").write_text(json.dumps([match, LAUNCH]))
    (tmp_path / "ev.csv").write_text(
        "name,start,end,peak_invocations_per_minute\n"
        "launch,2026-03-05T10:00:00Z,2026-03-05T10:30:00Z,12000\n"
        "match,2026-03-06 18:00,2026-03-06 20:00,9000\n")
    # When loaded
    from_json, from_csv = events.load(tmp_path / "ev.json"), events.load(tmp_path / "ev.csv")
    # Then both give the same events, sorted by start, in UTC
    assert from_json == from_csv
    assert [e.name for e in from_json] == ["launch", "match"]
    assert from_json[1].start == pd.Timestamp("2026-03-06 18:00", tz="UTC")
    assert from_json[0].peak_invocations_per_minute == 12000.0


@pytest.mark.parametrize(
    ("record", "words"),
    [
        ({**LAUNCH, "end": "2026-03-05T09:00:00Z"}, "is not after start"),
        ({**LAUNCH, "start": "next tuesday"}, "not an ISO 8601 time"),
        ({**LAUNCH, "peak_invocations_per_minute": -1}, "peak_invocations_per_minute"),
        ({**LAUNCH, "peak_invocations_per_minute": "NaN"}, "peak_invocations_per_minute"),
        ({k: v for k, v in LAUNCH.items() if k != "end"}, "end"),
        ({**LAUNCH, "end": "2026-04-05T10:00:00Z"}, "longer than 14 days"),
        ({**LAUNCH, "extra": 1}, "extra"),
    ],
)
def test_a_bad_event_is_one_line_naming_it(record: dict, words: str) -> None:
    with pytest.raises(events.EventsError) as err:
        events.parse([LAUNCH, record])
    message = str(err.value)
    assert "#2" in message and words in message
    assert "\n" not in message


@pytest.mark.parametrize(("text", "words"), [("{not json", "not JSON"), ('{"a": 1}', "expected a list")])
def test_bad_json_is_refused(text: str, words: str) -> None:
    with pytest.raises(events.EventsError, match=words):
        events.from_json(text)


def test_csv_without_the_needed_columns_is_refused(tmp_path) -> None:
    (tmp_path / "ev.csv").write_text("when,peak\n2026-03-05,1\n")
    with pytest.raises(events.EventsError, match="lacks start, end, peak_invocations_per_minute"):
        events.load(tmp_path / "ev.csv")


def test_a_missing_file_is_named() -> None:
    with pytest.raises(events.EventsError) as err:
        events.load("nope.csv")
    assert "no such file 'nope.csv'" in str(err.value)


def _flat(level: float, usable: bool) -> Forecast:
    lo = pd.Timestamp("2026-03-05 09:55", tz="UTC")
    index = pd.date_range(lo, periods=20, freq="min", name="minute")
    values = pd.Series(level, index=index, name=SERIES_NAME)
    return Forecast(lo, lo + 20 * MINUTE, values, "hourly" if usable else "none", usable, level, lo,
                    lo + 20 * MINUTE, 1440, "test", {})


def test_an_event_lifts_the_forecast_only_inside_its_window() -> None:
    (launch,) = events.parse([LAUNCH])
    fc = with_events(_flat(3000.0, usable=True), [launch])
    before, inside = fc.values.loc[:"2026-03-05 09:59"], fc.values.loc["2026-03-05 10:00":]
    assert (before == 3000.0).all() and (inside == 12000.0).all()
    assert (fc.usable, fc.pattern, fc.calendar_only) == (True, "calendar", False)
    assert fc.window_start == launch.start
    # And over an unusable forecast the event alone is usable, marked calendar-only
    alone = with_events(_flat(3000.0, usable=False), [launch])
    assert alone.usable and alone.calendar_only
    assert alone.values.loc[:"2026-03-05 09:59"].max() == 0.0
    # And an event out of range changes nothing
    later = events.parse([{**LAUNCH, "start": "2026-03-07T10:00:00Z", "end": "2026-03-07T11:00:00Z"}])
    assert with_events(_flat(3000.0, usable=False), later).usable is False
    np.testing.assert_array_equal(with_events(_flat(3000.0, usable=True), later).values, 3000.0)


ENV = {"ENDPOINT_NAME": "ep", "LEDGER_TABLE_NAME": "ledger"}


def test_the_lambda_setting_reaches_the_planner() -> None:
    settings = load(ScalerSettings, {**ENV, "KNOWN_EVENTS": json.dumps([LAUNCH]), "BREACH_MINUTE_COST": "12"})
    planner = settings.planner()
    assert [e.name for e in planner.known_events] == ["launch"]
    assert planner.breach_minute_cost == 12.0
    assert load(ScalerSettings, ENV).planner().known_events == ()


@pytest.mark.parametrize("value", ["[{", json.dumps([{**LAUNCH, "end": "2026-03-05T09:00:00Z"}])])
def test_a_bad_lambda_setting_names_known_events(value: str) -> None:
    with pytest.raises(SettingsError, match="KNOWN_EVENTS"):
        load(ScalerSettings, {**ENV, "KNOWN_EVENTS": value})


def test_cli_forecast_raises_for_a_declared_event(tmp_path, capsys) -> None:
    # Given an hour of flat history and a launch declared 5 minutes after --at
    index = pd.date_range("2026-03-05 08:55", periods=60, freq="min", tz="UTC")
    pd.DataFrame({"timestamp": index.strftime("%Y-%m-%dT%H:%M:%SZ"), "invocations": 2000}).to_csv(
        tmp_path / "h.csv", index=False)
    (tmp_path / "ev.json").write_text(json.dumps([LAUNCH]))
    argv = ["forecast", "--history", str(tmp_path / "h.csv"), "--at", "2026-03-05T09:55:10Z", "--json"]
    # When asked with and without the calendar
    assert main([*argv, "--events", str(tmp_path / "ev.json")]) == 0
    with_calendar = json.loads(capsys.readouterr().out)
    assert main(argv) == 0
    without = json.loads(capsys.readouterr().out)
    # Then only the calendar raises, to what the declared peak needs
    assert (with_calendar["decision"]["action"], with_calendar["decision"]["min_capacity"]) == ("raise", 5)
    assert with_calendar["forecast"]["pattern"] == "calendar"
    assert without["decision"]["action"] == "hold"


def test_cli_bad_events_file_is_one_line_exit_2(tmp_path, capsys) -> None:
    (tmp_path / "ev.json").write_text("[{}]")
    code = main(["simulate", "--days", "1", "--events", str(tmp_path / "ev.json")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("prescaler: error: --events") and "known event #1" in err
    assert len(err.splitlines()) == 1
