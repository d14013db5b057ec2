"""``prescaler backtest --fleet``: every endpoint of a folder of traces, a table per endpoint and in
total, progress shown, a bad trace skipped with its reason (issue 11 §4)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from prescaler import cli

pytestmark = pytest.mark.unit

TRACES = Path(__file__).resolve().parents[2] / "data" / "traces"


def _slice(src: str, dst: Path, rows: int) -> None:
    pd.read_csv(TRACES / src, nrows=rows).to_csv(dst, index=False)


@pytest.fixture
def fleet_folder(tmp_path: Path) -> Path:
    _slice("nasa_http_jul1995_1min.csv", tmp_path / "nasa.csv", 3 * 1440)
    _slice("worldcup98_http_1min.csv", tmp_path / "worldcup.csv", 3 * 1440)
    (tmp_path / "broken.csv").write_text("timestamp,invocations\nyesterday,12\n")
    (tmp_path / "notes.txt").write_text("not a trace")
    return tmp_path


def test_backtest_fleet_replays_every_trace_of_a_folder_per_endpoint_and_in_total(
        fleet_folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["backtest", "--fleet", str(fleet_folder), "--warmup-days", "2", "--json", "--peak-rps", "100"])
    out, err = capsys.readouterr()
    assert code == 0
    report = json.loads(out)
    assert sorted(report["endpoints"]) == ["nasa", "worldcup"]
    assert list(report["skipped"]) == ["broken"] and "skipped broken" in err
    # progress: one line per endpoint on stderr when it is not a terminal
    assert [line for line in err.splitlines() if line.startswith("replaying")] == [
        "replaying 1/3: broken", "replaying 2/3: nasa", "replaying 3/3: worldcup"]
    # the pre-scaler against the target tracking it runs on (default backstop: concurrency), not another
    assert report["policies"] == ["concurrency-target-tracking", "predictive"]
    for policy in report["policies"]:
        per = [report["endpoints"][e][policy] for e in ("nasa", "worldcup")]
        total = report["total"][policy]
        assert total["breach_minutes"] == sum(p["breach_minutes"] for p in per)
        assert total["instance_hours"] == pytest.approx(sum(p["instance_hours"] for p in per), abs=0.01)
        assert all(p["instance_hours"] > 0 for p in per)


def test_backtest_fleet_prints_a_table_with_a_total_row(fleet_folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (fleet_folder / "broken.csv").unlink()
    assert cli.main(["backtest", "--fleet", str(fleet_folder), "--warmup-days", "2"]) == 0
    out = capsys.readouterr().out
    assert "nasa" in out and "worldcup" in out and "total (2 endpoints)" in out
    assert "concurrency-target-tracking" in out and "invocations-target-tracking" not in out
    # instance-hours as `backtest --trace` prints them: one decimal, not %g's three
    total_row = next(line for line in out.splitlines() if "total (2 endpoints)" in line)
    cells = [c.strip() for c in total_row.split("\u2502")[2:-1]]
    assert len(cells) == 4 and all(c.split(".")[-1].isdigit() and len(c.split(".")[-1]) == 1
                                   for c in (cells[1], cells[3])), cells


def test_backtest_fleet_says_which_endpoint_had_its_warm_up_shortened(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    # Given a 3-day trace and a 12-hour one, replayed with the default 2-day warm-up
    _slice("nasa_http_jul1995_1min.csv", tmp_path / "nasa.csv", 3 * 1440)
    _slice("nasa_http_jul1995_1min.csv", tmp_path / "short.csv", 720)
    code = cli.main(["backtest", "--fleet", str(tmp_path), "--json", "--peak-rps", "100"])
    out, err = capsys.readouterr()
    report = json.loads(out)
    # Then the short one is named, as `backtest --trace` would name it, and the long one is not:
    # its 11 scored hours are not read as a 2-day warm-up's
    assert code == 0 and sorted(report["endpoints"]) == ["nasa", "short"]
    assert report["notes"] == {"short": "the trace is 0.50 days long: warm-up shortened from 2 to 0.46 days "
                                        "(at least the last hour is scored)"}
    assert "note: short: the trace is 0.50 days long" in err and "note: nasa" not in err


def test_backtest_fleet_compares_with_the_backstop_it_was_given(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    # Given one endpoint's trace and --backstop invocations
    _slice("nasa_http_jul1995_1min.csv", tmp_path / "nasa.csv", 3 * 1440)
    code = cli.main(["backtest", "--fleet", str(tmp_path), "--backstop", "invocations", "--json",
                     "--peak-rps", "100"])
    report = json.loads(capsys.readouterr().out)
    # Then predictive is compared with invocations target tracking, the one it ran on
    assert code == 0
    assert report["policies"] == ["invocations-target-tracking", "predictive"]
    assert set(report["endpoints"]["nasa"]) == {"invocations-target-tracking", "predictive"}


@pytest.mark.parametrize(("args", "message"), [
    (["--fleet", "/nonexistent-folder"], "not a folder"),
    (["--fleet", "{empty}"], "no *.csv"),
    (["--fleet", "{empty}", "--trace", "x.csv"], "not with --trace"),
])
def test_backtest_fleet_user_mistakes_are_one_line(args: list[str], message: str, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    args = [a.replace("{empty}", str(tmp_path)) for a in args]
    assert cli.main(["backtest", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_backtest_fleet_from_cloudwatch_reads_a_listed_component_by_its_own_dimension(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Given FLEET_ENDPOINTS naming one endpoint and one inference component (SageMaker and CloudWatch
    # as botocore Stubbers with the real request and response shapes)
    import argparse
    from datetime import UTC, datetime

    import boto3
    from botocore.stub import ANY, Stubber
    from prescaler import fleet
    from prescaler.aws import clients

    fleet.clear_cache()
    monkeypatch.setenv("FLEET_ENDPOINTS", "ranker, inference-component:llama")
    created = datetime(2024, 5, 15, tzinfo=UTC)
    sm = boto3.client("sagemaker", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    cw = boto3.client("cloudwatch", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    arn = "arn:aws:sagemaker:us-east-1:123456789012:{}"
    sm_stub, cw_stub = Stubber(sm), Stubber(cw)
    sm_stub.add_response("list_endpoints", {"Endpoints": [{
        "EndpointName": "ranker", "EndpointArn": arn.format("endpoint/ranker"), "CreationTime": created,
        "LastModifiedTime": created, "EndpointStatus": "InService"}]}, {"MaxResults": 100})
    sm_stub.add_response("list_inference_components", {"InferenceComponents": [{
        "InferenceComponentName": "llama", "InferenceComponentArn": arn.format("inference-component/llama"),
        "EndpointName": "llm", "EndpointArn": arn.format("endpoint/llm"), "VariantName": "AllTraffic",
        "CreationTime": created, "LastModifiedTime": created}]}, {"MaxResults": 100})
    sm_stub.add_response("list_tags", {"Tags": []}, {"ResourceArn": arn.format("endpoint/ranker")})
    sm_stub.add_response("list_tags", {"Tags": []}, {"ResourceArn": arn.format("inference-component/llama")})
    seen: list[dict] = []
    cw.meta.events.register("before-parameter-build.cloudwatch.GetMetricData",
                            lambda params, **_: seen.extend(params["MetricDataQueries"]))
    minute = (pd.Timestamp.now(tz="UTC").floor("min") - pd.Timedelta(hours=1)).to_pydatetime()
    cw_stub.add_response("get_metric_data", {"MetricDataResults": [
        {"Id": "q0", "StatusCode": "Complete", "Timestamps": [minute], "Values": [5.0]},
        {"Id": "q1", "StatusCode": "Complete", "Timestamps": [minute], "Values": [7.0]}]},
        {"MetricDataQueries": ANY, "StartTime": ANY, "EndTime": ANY, "ScanBy": "TimestampAscending"})

    class Session:
        def client(self, service: str) -> object:
            return {"sagemaker": sm, "cloudwatch": cw}[service]

    monkeypatch.setattr(clients, "session", Session)
    # When the fleet's histories are read
    with sm_stub, cw_stub:
        sources = cli._fleet_histories(argparse.Namespace(days=1))
    # Then the component is read by InferenceComponentName only (not its host endpoint's variant)
    assert [label for label, _ in sources] == ["ranker/AllTraffic", "inference-component/llama"]
    assert [q["MetricStat"]["Metric"]["Dimensions"] for q in seen] == [
        [{"Name": "EndpointName", "Value": "ranker"}, {"Name": "VariantName", "Value": "AllTraffic"}],
        [{"Name": "InferenceComponentName", "Value": "llama"}]]
    assert sources[1][1]().sum() == 7.0
