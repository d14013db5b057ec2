"""The CloudWatch history reader: moto for what moto models (StatisticValues, dimensions, gaps),
botocore Stubber for what it does not (pages, ordering, period alignment, InternalError)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import boto3
import pandas as pd
import pytest
from awsworld import ENDPOINT, VARIANT, put_invocations
from botocore.stub import ANY, Stubber
from prescaler.aws import clients
from prescaler.aws.cloudwatch import (
    MetricReadError,
    NoMetricData,
    microseconds_to_ms,
    put_metric,
    read_invocations,
    read_many,
)
from prescaler.history import MAX_HISTORY

pytestmark = pytest.mark.integration

T0 = pd.Timestamp("2024-05-15T09:00:00Z")
DIMS = [{"Name": "EndpointName", "Value": ENDPOINT}, {"Name": "VariantName", "Value": VARIANT}]


def stubbed() -> tuple[Any, Stubber]:
    client = boto3.client("cloudwatch", region_name="us-east-1")
    return client, Stubber(client)


def query(qid: str = "q0", dims: list | None = None, period: int = 60, metric: str = "Invocations") -> dict:
    return {"Id": qid, "MetricStat": {"Metric": {"Namespace": "AWS/SageMaker", "MetricName": metric,
                                                 "Dimensions": dims or DIMS}, "Period": period, "Stat": "Sum"},
            "ReturnData": True}


def page(qid: str, minutes: list[int], values: list[float], token: str | None = None,
         status: str = "Complete") -> dict:
    out: dict[str, Any] = {"MetricDataResults": [{
        "Id": qid, "Label": "Invocations", "StatusCode": "PartialData" if token else status,
        "Timestamps": [(T0 + pd.Timedelta(minutes=m)).to_pydatetime() for m in minutes], "Values": values}],
        "Messages": []}
    if token:
        out["NextToken"] = token
    return out


# --------------------------------------------------------------------------------------------------
# moto: the metric as SageMaker writes it


def test_issue5_1_forty_idle_minutes_are_forty_zeros(aws: None) -> None:
    # Given traffic for the first 20 of 60 minutes, no datapoints for the last 40
    cw = clients.client("cloudwatch")
    put_invocations(cw, pd.Series(600.0, index=pd.date_range(T0, periods=20, freq="min")))
    # When the reader asks for the hour
    series = read_invocations(cw, ENDPOINT, VARIANT, T0, T0 + pd.Timedelta(minutes=60))
    # Then it gets 60 per-minute values, the last 40 zero
    assert len(series) == 60 and series.index.freq == "min"
    assert (series.iloc[:20] == 600).all() and (series.iloc[20:] == 0).all()


def test_issue5_4_invocations_are_read_with_sum_not_average(aws: None) -> None:
    # Given minutes written as SageMaker does: SampleCount 600, Sum 600, Minimum 1, Maximum 1
    cw = clients.client("cloudwatch")
    put_invocations(cw, pd.Series(600.0, index=pd.date_range(T0, periods=5, freq="min")))
    # When read
    series = read_invocations(cw, ENDPOINT, VARIANT, T0, T0 + pd.Timedelta(minutes=5))
    # Then demand is 600 per minute (Average would say 1)
    assert series.tolist() == [600.0] * 5


def test_issue5_2_one_dimension_publishes_nothing_and_empty_is_no_data(aws: None) -> None:
    # Given datapoints published with only EndpointName
    cw = clients.client("cloudwatch")
    put_invocations(cw, pd.Series(600.0, index=pd.date_range(T0, periods=5, freq="min")),
                    dims=[{"Name": "EndpointName", "Value": ENDPOINT}])
    # When the reader asks (always with both dimensions)
    # Then an empty answer is an error for the CLI and "empty" for the service, never zero demand
    with pytest.raises(NoMetricData, match=r"VariantName=AllTraffic"):
        read_invocations(cw, ENDPOINT, VARIANT, T0, T0 + pd.Timedelta(minutes=5))
    history = read_many(cw, [(ENDPOINT, VARIANT)], T0, T0 + pd.Timedelta(minutes=5))[(ENDPOINT, VARIANT)]
    assert history.empty and history.datapoints == 0


def test_many_variants_in_one_call(aws: None) -> None:
    # Given two variants with different demand
    cw = clients.client("cloudwatch")
    index = pd.date_range(T0, periods=3, freq="min")
    put_invocations(cw, pd.Series(100.0, index=index))
    put_invocations(cw, pd.Series(7.0, index=index), variant="Canary")
    # When read together
    out = read_many(cw, [(ENDPOINT, VARIANT), (ENDPOINT, "Canary")], T0, T0 + pd.Timedelta(minutes=3))
    # Then each gets its own series
    assert out[(ENDPOINT, VARIANT)].series.tolist() == [100.0] * 3
    assert out[(ENDPOINT, "Canary")].series.tolist() == [7.0] * 3


# --------------------------------------------------------------------------------------------------
# Stubber: what the real API does and moto does not


def test_every_page_ascending_deduplicated_with_both_dimensions_in_one_request() -> None:
    # Given a real-shaped answer in two pages that overlap on minute 2, for two variants
    client, stub = stubbed()
    start, end = T0, T0 + pd.Timedelta(minutes=5)
    expected = {"MetricDataQueries": [query("q0"), query("q1", dims=[DIMS[0], {"Name": "VariantName",
                                                                                "Value": "Canary"}])],
                "StartTime": start.to_pydatetime(), "EndTime": end.to_pydatetime(),
                "ScanBy": "TimestampAscending"}
    first = page("q0", [0, 1, 2], [10.0, 11.0, 12.0], token="t1")
    first["MetricDataResults"].append({"Id": "q1", "StatusCode": "Complete", "Timestamps": [], "Values": []})
    stub.add_response("get_metric_data", first, expected)
    stub.add_response("get_metric_data", page("q0", [2, 4], [12.0, 14.0]), {**expected, "NextToken": "t1"})
    # When read
    with stub:
        out = read_many(client, [(ENDPOINT, VARIANT), (ENDPOINT, "Canary")], start, end)
    # Then every page is used, minute 2 counts once, minute 3 is zero, and the order is ascending
    stub.assert_no_pending_responses()
    assert out[(ENDPOINT, VARIANT)].series.tolist() == [10.0, 11.0, 12.0, 0.0, 14.0]
    assert out[(ENDPOINT, "Canary")].empty


def test_issue5_3_times_are_aligned_to_the_period_so_close_runs_ask_for_the_same_buckets() -> None:
    # Given two runs 40 seconds apart around 10:07:42, reading 5-minute data
    client, stub = stubbed()
    aligned = {"MetricDataQueries": [query(period=300)],
               "StartTime": datetime.fromisoformat("2024-05-15T09:05:00+00:00"),
               "EndTime": datetime.fromisoformat("2024-05-15T10:05:00+00:00"), "ScanBy": "TimestampAscending"}
    stub.add_response("get_metric_data", page("q0", [5], [3000.0]), aligned)
    stub.add_response("get_metric_data", page("q0", [5], [3000.0]), aligned)
    # When each asks for the last hour ending "now"
    with stub:
        for now in ("2024-05-15T10:07:42Z", "2024-05-15T10:08:22Z"):
            end = pd.Timestamp(now)
            series = read_invocations(client, ENDPOINT, VARIANT, end - pd.Timedelta(hours=1), end, period_s=300)
    # Then both requests carry identical, period-aligned StartTime/EndTime (the Stubber checks them)
    stub.assert_no_pending_responses()
    # and a 5-minute count is spread over its minutes
    assert series.loc["2024-05-15T09:05"].item() == 600.0


def test_window_never_reaches_past_retention() -> None:
    # Given a request for 30 days
    client, stub = stubbed()
    end = T0
    stub.add_response("get_metric_data", page("q0", [-1], [5.0]),
                      {"MetricDataQueries": ANY, "StartTime": (end - MAX_HISTORY).to_pydatetime(),
                       "EndTime": end.to_pydatetime(), "ScanBy": "TimestampAscending"})
    # When read, Then it asks for 14 days at most
    with stub:
        series = read_invocations(client, ENDPOINT, VARIANT, end - pd.Timedelta(days=30), end)
    assert len(series) == 14 * 1440


def test_internal_error_is_unreadable_not_zero() -> None:
    # Given CloudWatch answers InternalError for the query
    client, stub = stubbed()
    stub.add_response("get_metric_data", page("q0", [], [], status="InternalError"))
    # When read, Then the reader raises (the service holds on it)
    with stub, pytest.raises(MetricReadError, match="InternalError"):
        read_invocations(client, ENDPOINT, VARIANT, T0, T0 + pd.Timedelta(minutes=5))


def test_issue5_6_model_latency_microseconds_read_as_milliseconds() -> None:
    assert microseconds_to_ms(250000) == 250.0


def test_issue9_1_minutes_after_the_newest_datapoint_are_not_zero_filled_unless_published(aws: None) -> None:
    # Given traffic for the first 20 of 60 minutes, then no datapoint
    cw = clients.client("cloudwatch")
    put_invocations(cw, pd.Series(600.0, index=pd.date_range(T0, periods=20, freq="min")))
    end = T0 + pd.Timedelta(minutes=60)
    # When the functions' reader asks for the hour knowing nothing else
    history = read_many(cw, [(ENDPOINT, VARIANT)], T0, end)[(ENDPOINT, VARIANT)]
    # Then the series ends after the newest datapoint (09:19): a late publication is not zero demand
    assert len(history.series) == 20 and history.newest == T0 + pd.Timedelta(minutes=19)
    # When SageMaker is known to have published up to 09:50 (its instances' metrics)
    history = read_many(cw, [(ENDPOINT, VARIANT)], T0, end,
                        published_until=T0 + pd.Timedelta(minutes=50))[(ENDPOINT, VARIANT)]
    # Then the idle minutes up to there are zeros, and not beyond
    assert len(history.series) == 50 and history.series.iloc[20:].eq(0).all()


def test_issue9_7_put_metric_drops_points_older_than_14_days_and_sends_the_rest() -> None:
    # Given three GPU datapoints, one 15 days old, and PutMetricData that would reject the whole call for it
    client, stub = stubbed()
    now = pd.Timestamp("2026-11-30T05:00Z")
    old, fresh, ahead = now - pd.Timedelta(days=15), now - pd.Timedelta(minutes=2), now + pd.Timedelta(hours=3)
    dims = DIMS
    stub.add_response("put_metric_data", {}, {"Namespace": "SageMakerPrescaler", "MetricData": [
        {"MetricName": "GPUUtilizationPerGPU", "Dimensions": dims, "Timestamp": fresh.to_pydatetime(),
         "Value": 64.0, "Unit": "Percent"}]})
    # When they are published
    with stub:
        dropped = put_metric(client, "SageMakerPrescaler", "GPUUtilizationPerGPU",
                             [(old, 50.0), (fresh, 64.0), (ahead, 70.0)], "Percent", dims, now)
        stub.assert_no_pending_responses()
    # Then only the fresh one is sent, and the two others are named
    assert len(dropped) == 2
    assert "older than 14 days" in dropped[0] and "2 hours ahead" in dropped[1]
