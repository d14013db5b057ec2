"""The `prescaler` command line: JSON shapes, human output, and one-line errors with exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from prescaler.cli import main

pytestmark = pytest.mark.unit

POLICY_KEYS = {"breach_minutes", "slo_violating_requests", "peak_queue", "instance_hours"}
ELB = "data/traces/elb_request_count_8c0756.csv"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_simulate_json_has_the_stable_shape(capsys, tmp_path: Path) -> None:
    # When a one-day reference simulation is asked for as JSON with a plot
    png = tmp_path / "ref.png"
    code, out, _ = run(capsys, "simulate", "--days", "1", "--warmup-days", "1", "--json", "--plot", str(png))
    # Then it succeeds with every policy's four scores, and writes a PNG
    assert code == 0
    data = json.loads(out)
    assert set(data["policies"]) == {"cpu-target-tracking", "invocations-target-tracking",
                                     "concurrency-target-tracking", "scheduled-prewarm",
                                     "aws-predictive-scaling", "predictive", "oracle"}
    for scores in data["policies"].values():
        assert set(scores) == POLICY_KEYS
        assert isinstance(scores["breach_minutes"], int)
    assert data["demand"]["evaluated_minutes"] == 1440
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # and the Updating lock shows: target tracking's scale-outs refused during an update are counted,
    # the pre-scaler's deferred ticks too, and the oracle (instant provisioning) is never refused
    updating = data["updating"]
    assert updating["invocations-target-tracking"]["changes_refused"] > 0
    assert updating["predictive"]["ticks_deferred"] > 0
    assert updating["oracle"] == {"changes_refused": 0, "ticks_deferred": 0}


def test_simulate_table_shows_the_json_numbers_for_every_policy(capsys) -> None:
    # Given the same simulation asked for as a table and as JSON
    code, out, _ = run(capsys, "simulate", "--days", "1", "--warmup-days", "0")
    assert code == 0
    code_json, out_json, _ = run(capsys, "simulate", "--days", "1", "--warmup-days", "0", "--json")
    assert code_json == 0
    data = json.loads(out_json)
    # Then each policy's row carries its own breach minutes and instance-hours, in the JSON's order
    rows = [line for line in out.splitlines() if line.startswith("│")]
    assert [row.split("│")[1].strip() for row in rows] == list(data["policies"])
    for row, (name, scores) in zip(rows, data["policies"].items(), strict=True):
        cells = [c.strip() for c in row.split("│")[1:-1]]
        assert int(cells[1].replace(",", "")) == scores["breach_minutes"], name
        assert float(cells[4].replace(",", "")) == pytest.approx(scores["instance_hours"], abs=0.05), name
    # and the reactive policies' breaches show (the table is not all zeros)
    assert data["policies"]["invocations-target-tracking"]["breach_minutes"] > 0
    # and the endpoint model is printed above the table
    assert out.index("endpoint model: 50 req/s per instance") < out.index("policy")


def test_backtest_takes_the_endpoint_model_as_options(capsys) -> None:
    common = ["backtest", "--trace", ELB, "--peak-rps", "220", "--warmup-days", "1", "--days", "1", "--json"]
    # When the user's endpoint has a different target and a MaxCapacity of 4
    code, out, _ = run(capsys, *common, "--target", "3000", "--max-capacity", "4", "--capacity-rps", "45",
                       "--provisioning-s", "200", "400")
    assert code == 0
    small = json.loads(out)
    _, out, _ = run(capsys, *common)
    reference = json.loads(out)
    # Then the JSON says which model was scored ...
    assert small["model"]["max_capacity"] == 4 and small["model"]["target_invocations_per_instance"] == 3000
    assert small["model"]["provisioning_s"] == [200, 400] and small["model"]["capacity_rps_per_instance"] == 45
    assert reference["model"]["max_capacity"] == 8 and reference["model"]["target_concurrency_per_instance"] == 1.4
    # ... and the model is the one simulated: 4 instances cannot serve the peak even for the oracle
    # (24 h at most 4 instances), where 8 can
    assert small["policies"]["oracle"]["instance_hours"] <= 4 * 24
    assert small["policies"]["oracle"]["breach_minutes"] > 0 == reference["policies"]["oracle"]["breach_minutes"]


def test_policies_replays_only_the_named_policies_with_the_same_scores(capsys) -> None:
    common = ["backtest", "--trace", "data/traces/AzureLLMInferenceTrace_code.csv", "--requests", "--peak-rps", "220",
              "--json"]
    # Given the full run of all seven policies
    _, out, _ = run(capsys, *common)
    full = json.loads(out)
    # When only predictive and its backstop are asked for (named out of the twin's order)
    code, out, _ = run(capsys, *common, "--policies", "predictive,concurrency-target-tracking")
    assert code == 0
    some = json.loads(out)
    # Then only those two are simulated, in the twin's order, with the very scores of the full run
    assert list(some["policies"]) == ["concurrency-target-tracking", "predictive"]
    assert some["policies"] == {n: full["policies"][n] for n in some["policies"]}
    # and without the oracle there is no ratio to it (rather than a wrong one)
    assert "instance_hours_vs_oracle" not in some


@pytest.mark.parametrize("value", ["predictive,nonsense", "", "predictive,"])
def test_an_unknown_policy_is_one_line_and_exit_2(capsys, value: str) -> None:
    code, out, err = run(capsys, "backtest", "--trace", ELB, "--policies", value)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "--policies: unknown policy" in err and "choose from" in err


def test_policies_with_a_fleet_is_refused_not_ignored(capsys, tmp_path: Path) -> None:
    code, out, err = run(capsys, "backtest", "--fleet", str(tmp_path), "--policies", "predictive")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "--policies does not apply to --fleet" in err


def test_a_target_above_what_an_instance_serves_gets_one_note(capsys) -> None:
    common = ["backtest", "--trace", "data/traces/AzureLLMInferenceTrace_code.csv", "--requests", "--json"]
    # Given a slower model (30 req/s per instance) and the default target (2400/min = 40 req/s)
    code, out, err = run(capsys, *common, "--capacity-rps", "30")
    # Then it still runs, with one note naming the problem and a target that fits
    assert code == 0 and json.loads(out)["model"]["capacity_rps_per_instance"] == 30
    assert err.count("note: --target 2400") == 1 and "e.g. 1440" in err
    # And a target under the saturation gets no note
    code, out, err = run(capsys, *common, "--capacity-rps", "30", "--target", "1440")
    assert code == 0 and "--target" not in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--min-capacity", "5", "--max-capacity", "4"], "need 1 <= --min-capacity <= --max-capacity"),
        (["--service-time-ms", "600"], "must be above the service time"),
        (["--provisioning-s", "300", "100"], "LOW <= HIGH"),
        (["--capacity-rps", "0"], "--capacity-rps must be a finite number >= 0.01667"),
        (["--scheduling-buffer-s", "7200"], "0-3600"),
        (["--target", "nan"], "--target must be a finite number"),
    ],
    ids=["min-above-max", "slo-below-service", "provisioning-order", "zero-capacity", "buffer", "nan-target"],
)
def test_a_bad_endpoint_model_option_is_one_line_and_exit_2(capsys, argv: list[str], message: str) -> None:
    code, out, err = run(capsys, "backtest", "--trace", ELB, *argv)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and message in err


def test_backtest_a_slice_of_a_real_trace(capsys) -> None:
    code, out, _ = run(capsys, "backtest", "--trace", ELB, "--peak-rps", "220", "--warmup-days", "1",
                       "--days", "1", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["demand"]["evaluated_minutes"] == 1440
    # scaled: the evaluated peak is near 220 req/s
    assert 150 <= data["demand"]["peak_rps"] <= 300


def test_backtest_per_request_rows(capsys) -> None:
    code, out, _ = run(capsys, "backtest", "--trace", "data/traces/AzureLLMInferenceTrace_code.csv",
                       "--requests", "--peak-rps", "220", "--json")
    assert code == 0
    data = json.loads(out)
    # one hour of requests, 58 minutes scored
    assert data["demand"]["evaluated_minutes"] == 58
    # the burst is real: its own backstop breaches
    backstop = data["policies"]["concurrency-target-tracking"]
    assert backstop["breach_minutes"] > 0
    # with too little history to forecast, the pre-scaler does nothing but its backstop: the same
    # scores, not merely "no worse" (nothing raised on a guess, nothing taken away)
    assert data["policies"]["predictive"] == backstop


def test_forecast_json_shape_and_a_raise_before_the_spike(capsys, tmp_path: Path) -> None:
    # Given three days of per-minute history with a spike at minute 0 of every hour
    rows = ["timestamp,value"]
    import pandas as pd
    for t in pd.date_range("2026-03-02", periods=3 * 1440, freq="min"):
        rows.append(f"{t:%Y-%m-%d %H:%M:%S},{13200 if t.minute < 10 else 2400}")
    csv = tmp_path / "history.csv"
    csv.write_text("\n".join(rows) + "\n")
    # When asked what it would decide at 23:56 on the last day (history ends before that)
    code, out, _ = run(capsys, "forecast", "--history", str(csv), "--at", "2026-03-04T23:56:00Z", "--json")
    # Then the decision is a raise to 6 ahead of the midnight spike, with the forecast behind it
    assert code == 0
    data = json.loads(out)
    assert data["decision"]["action"] == "raise"
    assert data["decision"]["min_capacity"] == 6
    assert isinstance(data["decision"]["reason"], str) and data["decision"]["reason"]
    assert data["forecast"]["peak_invocations_per_minute"] == pytest.approx(13200)
    # (the window may open a minute early: the forecast covers +-1 minute of drift)
    assert data["forecast"]["window_start"][:16] in ("2026-03-04T23:59", "2026-03-05T00:00")
    assert data["forecast"]["window_end"]


@pytest.mark.parametrize(
    ("content", "argv", "message"),
    [
        ("timestamp,value\n2026-03-02 00:00:00,5\n", ["--column", "nope"], "no column 'nope'"),
        ("", [], "cannot read"),
        ("timestamp,value\nyesterday-ish,5\n", [], "unparseable timestamps"),
        ("timestamp,value\n2026-03-02 00:00:00,-5\n", [], "negative"),
        ("timestamp,value\n2026-03-02 00:00:00,lots\n", [], "not a number"),
    ],
    ids=["unknown-column", "empty-file", "bad-timestamps", "negative", "non-numeric"],
)
def test_bad_input_is_one_line_and_exit_2(capsys, tmp_path: Path, content: str, argv: list[str],
                                          message: str) -> None:
    csv = tmp_path / "bad.csv"
    csv.write_text(content)
    code, out, err = run(capsys, "backtest", "--trace", str(csv), *argv)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("prescaler: error:")
    assert message in err


def test_missing_file_is_exit_2(capsys) -> None:
    code, _, err = run(capsys, "backtest", "--trace", "no/such.csv")
    assert code == 2 and "no such trace file" in err


def test_forecast_at_before_history_is_exit_2(capsys) -> None:
    code, _, err = run(capsys, "forecast", "--history", ELB, "--at", "2001-01-01T00:00:00")
    assert code == 2 and "before the history starts" in err


def test_a_per_request_log_read_as_counts_gets_a_note(capsys) -> None:
    # Given the per-request Azure log, but the user forgot --requests
    code, out, err = run(capsys, "backtest", "--trace", "data/traces/AzureLLMInferenceTrace_code.csv",
                         "--peak-rps", "220", "--json")
    # Then it still runs (a column of counts is legal) but says what was probably meant
    assert code == 0 and json.loads(out)["policies"]
    assert "pass --requests" in err
    # and says the 2-day warm-up did not fit a 1-hour trace
    assert "warm-up shortened" in err


def test_a_bad_cell_names_the_file_and_the_line(capsys, tmp_path: Path) -> None:
    csv = tmp_path / "t.csv"
    csv.write_text("timestamp,value\n2026-03-02 00:00:00,5\n2026-03-02 00:01:00,\n")
    code, _, err = run(capsys, "backtest", "--trace", str(csv))
    assert code == 2 and f"{csv} line 3: 'value' is empty" in err


def test_backtest_endpoint_without_a_region_is_a_one_line_usage_error(capsys, monkeypatch, tmp_path: Path) -> None:
    # Given no AWS region anywhere
    for var in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    # When the user asks to backtest their endpoint
    code, _, err = run(capsys, "backtest", "--endpoint", "catalogue-tagger")
    # Then one line tells them what to set, exit 2
    assert code == 2 and err.count("\n") == 1 and "AWS_REGION" in err


def test_backtest_start_replays_a_slice_of_a_long_trace(capsys) -> None:
    # When the ELB trace is replayed from 2014-04-15 with one day of warm-up and one scored day
    code, out, _ = run(capsys, "backtest", "--trace", ELB, "--start", "2014-04-15", "--warmup-days", "1",
                       "--days", "1", "--json")
    assert code == 0
    demand = json.loads(out)["demand"]
    # Then scoring starts a day after --start and lasts a day
    assert demand["evaluated_start"] == "2014-04-16T00:00:00+00:00"
    assert demand["evaluated_minutes"] == 1440
    # and a start after the trace's end is one line, exit 2
    code, _, err = run(capsys, "backtest", "--trace", ELB, "--start", "2020-01-01")
    assert code == 2 and "after the trace ends" in err and err.count("\n") == 1


def test_aws_region_alone_is_accepted(capsys, monkeypatch, tmp_path: Path) -> None:
    # Given only AWS_REGION (botocore itself reads AWS_DEFAULT_REGION or a profile, not AWS_REGION)
    moto = pytest.importorskip("moto")
    for var in ("AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(var, "testing")
    # When the user backtests their endpoint (moto: no datapoints)
    with moto.mock_aws():
        code, _, err = run(capsys, "backtest", "--endpoint", "catalogue-tagger")
    # Then the region was taken: the answer is about the data, not about the region
    assert "no AWS region" not in err and "Invocations datapoints" in err and code != 0
