"""Inference components through the adapters and the scaler ticks (issue 11 §3).

moto implements neither inference components in SageMaker (no DescribeInferenceComponent) nor the
``sagemaker:inference-component:DesiredCopyCount`` dimension in Application Auto Scaling (it answers
ValidationException), so those two clients are botocore Stubbers with the real request and response
shapes (SageMaker and Application Auto Scaling API references); CloudWatch and the DynamoDB ledger
are moto. Given/When/Then."""

from __future__ import annotations

from typing import Any

import boto3
import numpy as np
import pandas as pd
import pytest
from awsworld import TABLE, World, put_gauge, put_invocations
from botocore.stub import ANY, Stubber
from prescaler.aws import permissions
from prescaler.aws.autoscaling import (
    COMPONENT_SCALABLE_DIMENSION,
    AutoScaling,
    ScalableTarget,
    component_resource_id,
)
from prescaler.aws.cloudwatch import Component, read_many
from prescaler.aws.ledger import Ledger
from prescaler.aws.sagemaker import ComponentMissing, InferenceComponent, SageMaker
from prescaler.service import Adapters, Tick, prescale, relax
from prescaler.settings import ScalerSettings, load

pytestmark = pytest.mark.integration

COMPONENT = "llama-3-8b"
ENDPOINT = "llm-endpoint"
RID = component_resource_id(COMPONENT)
TARGET_KEYS = {"ServiceNamespace": "sagemaker", "ResourceId": RID, "ScalableDimension": COMPONENT_SCALABLE_DIMENSION}
DAY = pd.Timestamp("2026-03-18T00:00:00Z")
#: The daily pattern needs a few days of history (two days read as "no pattern"); moto's
#: GetMetricData is slow on long windows, so 4 days rather than 14.
COMPONENT_HISTORY_DAYS = 4
CREATED = pd.Timestamp("2026-03-01T00:00:00Z").to_pydatetime()


def aas_stub() -> tuple[Any, Stubber]:
    client = boto3.client("application-autoscaling", region_name="us-east-1")
    return client, Stubber(client)


def sm_stub() -> tuple[Any, Stubber]:
    client = boto3.client("sagemaker", region_name="us-east-1")
    return client, Stubber(client)


def component_answer(desired: int, current: int, status: str = "InService") -> dict:
    """DescribeInferenceComponent's response (SageMaker API reference), trimmed to required fields."""
    return {
        "InferenceComponentName": COMPONENT,
        "InferenceComponentArn": f"arn:aws:sagemaker:us-east-1:123456789012:inference-component/{COMPONENT}",
        "EndpointName": ENDPOINT,
        "EndpointArn": f"arn:aws:sagemaker:us-east-1:123456789012:endpoint/{ENDPOINT}",
        "VariantName": "AllTraffic",
        "RuntimeConfig": {"DesiredCopyCount": desired, "CurrentCopyCount": current},
        "CreationTime": CREATED,
        "LastModifiedTime": CREATED,
        "InferenceComponentStatus": status,
    }


def target_answer(min_capacity: int, max_capacity: int = 8) -> dict:
    return {"ScalableTargets": [{**TARGET_KEYS, "MinCapacity": min_capacity, "MaxCapacity": max_capacity,
                                 "RoleARN": "arn:aws:iam::123456789012:role/aws-service-role/x",
                                 "CreationTime": CREATED}]}


def working_days(end: pd.Timestamp, days: int = COMPONENT_HISTORY_DAYS + 1) -> pd.Series:
    """600 invocations per minute 08:00-18:00 UTC, none at night (the component is at zero then)."""
    index = pd.date_range(end - pd.Timedelta(days=days), end, freq="min", inclusive="left", tz="UTC")
    hour = index.hour + index.minute / 60.0
    return pd.Series(np.where((hour >= 8) & (hour < 18), 600.0, 0.0), index=index)


def component_settings(baseline: int) -> ScalerSettings:
    return load(ScalerSettings, {
        "ENDPOINT_NAME": ENDPOINT, "INFERENCE_COMPONENT_NAME": COMPONENT, "LEDGER_TABLE_NAME": TABLE,
        "BASELINE_MIN_CAPACITY": str(baseline), "PRESCALE_MAX_CAPACITY": "8",
        "TARGET_INVOCATIONS_PER_INSTANCE": "100", "DEFAULT_LEAD_TIME_SECONDS": "360", "DRY_RUN": "false",
        "HISTORY_DAYS": str(COMPONENT_HISTORY_DAYS), "MAX_HOLD_MINUTES": "720"})


def observe_calls(aas: Stubber, sm: Stubber, min_capacity: int, copies: int) -> None:
    """What every scaler tick reads, in order, with the component's resource id and dimension."""
    aas.add_response("describe_scalable_targets", target_answer(min_capacity),
                     {"ServiceNamespace": "sagemaker", "ResourceIds": [RID],
                      "ScalableDimension": COMPONENT_SCALABLE_DIMENSION})
    sm.add_response("describe_inference_component", component_answer(copies, copies),
                    {"InferenceComponentName": COMPONENT})
    aas.add_response("describe_scaling_activities", {"ScalingActivities": []},
                     {**TARGET_KEYS, "MaxResults": ANY})


@pytest.mark.parametrize("baseline", [0, 1])
def test_a_component_is_raised_from_zero_before_08_and_relaxed_to_its_floor_after_the_day(
        world: World, baseline: int) -> None:
    # Given a component whose invocations (dimension InferenceComponentName) stop every night
    put_invocations(world.cloudwatch, working_days(DAY + pd.Timedelta(hours=19)),
                    dims=[{"Name": "InferenceComponentName", "Value": COMPONENT}])
    settings = component_settings(baseline)
    aas_client, aas = aas_stub()
    sm_client, sm = sm_stub()
    ad = Adapters(world.cloudwatch, AutoScaling(aas_client), SageMaker(sm_client), Ledger(world.dynamodb, TABLE))
    calls: set[str] = set()

    def record(model: Any, **_: Any) -> None:
        calls.add(f"{model.service_model.service_name}:{model.name}")

    for client in (aas_client, sm_client, world.cloudwatch, world.dynamodb):
        client.meta.events.register("before-parameter-build", record)

    # When the pre-scaler ticks at 07:54 with the component at its floor
    observe_calls(aas, sm, baseline, baseline)
    aas.add_response("register_scalable_target", {}, {**TARGET_KEYS, "MinCapacity": 6})
    with aas, sm:
        raised = prescale(settings, Tick(DAY + pd.Timedelta(hours=7, minutes=54), "e1", "event"), ad)
    # Then it raises the copy count's MinCapacity for 08:00 (600/min at 100 per copy) and records it
    assert (raised["action"], raised["outcome"], raised["new_min_capacity"]) == ("raise", "applied", 6)
    assert raised["inference_component_name"] == COMPONENT
    item = world.dynamodb.get_item(TableName=TABLE, Key={"scalable_target": {"S": RID}})["Item"]
    assert item["owned_min_capacity"]["N"] == "6"
    aas.assert_no_pending_responses()
    # ... making exactly the calls the permissions table lists for a component
    assert calls == permissions.api_calls("prescale", "component")
    calls.clear()

    # When the relaxer ticks at 18:30, the day over, 6 copies running on the endpoint's instances (whose
    # CPUUtilization says SageMaker is publishing: the quiet minutes are zero demand, not late data)
    for minutes_before in range(3, 10):
        put_gauge(world.cloudwatch, "/aws/sagemaker/Endpoints", "CPUUtilization",
                  DAY + pd.Timedelta(hours=18, minutes=30 - minutes_before), 3.0, endpoint=ENDPOINT)
    calls.clear()  # the test's own setup call
    observe_calls(aas, sm, 6, 6)
    aas.add_response("register_scalable_target", {}, {**TARGET_KEYS, "MinCapacity": baseline})
    sm.add_response("update_inference_component_runtime_config",
                    {"InferenceComponentArn": component_answer(0, 0)["InferenceComponentArn"]},
                    {"InferenceComponentName": COMPONENT, "DesiredRuntimeConfig": {"CopyCount": baseline}})
    with aas, sm:
        relaxed = relax(settings, Tick(DAY + pd.Timedelta(hours=18, minutes=30), "e2", "event"), ad)
    # Then MinCapacity and the copy count go to the baseline: zero only when the operator allowed it
    assert (relaxed["action"], relaxed["outcome"], relaxed["new_min_capacity"]) == ("relax", "applied", baseline)
    assert relaxed["prompt_scale_in"] == "applied"
    aas.assert_no_pending_responses()
    sm.assert_no_pending_responses()
    assert calls == permissions.api_calls("relax", "component")


def test_a_missing_component_holds_and_says_so(world: World) -> None:
    aas_client, aas = aas_stub()
    sm_client, sm = sm_stub()
    ad = Adapters(world.cloudwatch, AutoScaling(aas_client), SageMaker(sm_client), Ledger(world.dynamodb, TABLE))
    aas.add_response("describe_scalable_targets", target_answer(1))
    sm.add_client_error("describe_inference_component", "ValidationException",
                        f"Could not find inference component \"{COMPONENT}\".", 400)
    with aas, sm:
        result = prescale(component_settings(1), Tick(DAY + pd.Timedelta(hours=7), None, "event"), ad)
    assert (result["action"], result["outcome"]) == ("hold", "endpoint_missing")
    assert COMPONENT in result["reason"]


def test_a_component_that_is_updating_defers(world: World) -> None:
    aas_client, aas = aas_stub()
    sm_client, sm = sm_stub()
    ad = Adapters(world.cloudwatch, AutoScaling(aas_client), SageMaker(sm_client), Ledger(world.dynamodb, TABLE))
    aas.add_response("describe_scalable_targets", target_answer(1))
    sm.add_response("describe_inference_component", component_answer(2, 1, status="Updating"))
    with aas, sm:
        result = prescale(component_settings(1), Tick(DAY + pd.Timedelta(hours=7), None, "event"), ad)
    assert (result["action"], result["outcome"]) == ("hold", "deferred")


# --------------------------------------------------------------------------------------------------
# the adapters on their own


def test_min_capacity_zero_is_sent_for_a_component_and_never_for_a_variant() -> None:
    client, stub = aas_stub()
    adapter = AutoScaling(client)
    stub.add_response("register_scalable_target", {}, {**TARGET_KEYS, "MinCapacity": 0})
    with stub:
        assert adapter.set_min_capacity(ScalableTarget(RID, 2, 8), 0).outcome == "applied"
        with pytest.raises(ValueError, match=r"outside \[1, MaxCapacity 8\]"):
            adapter.set_min_capacity(ScalableTarget("endpoint/e/variant/AllTraffic", 2, 8), 0)
        with pytest.raises(ValueError, match=r"outside \[0, MaxCapacity 8\]"):
            adapter.set_min_capacity(ScalableTarget(RID, 2, 8), 9)
    stub.assert_no_pending_responses()


def test_component_history_is_read_with_the_inference_component_dimension_only() -> None:
    client = boto3.client("cloudwatch", region_name="us-east-1")
    stub = Stubber(client)
    end = pd.Timestamp("2026-03-18T08:00:00Z")
    start = end - pd.Timedelta(hours=1)
    query = {"Id": "q0", "ReturnData": True, "MetricStat": {
        "Metric": {"Namespace": "AWS/SageMaker", "MetricName": "Invocations",
                   "Dimensions": [{"Name": "InferenceComponentName", "Value": COMPONENT}]},
        "Period": 60, "Stat": "Sum"}}
    stub.add_response("get_metric_data", {"MetricDataResults": [{
        "Id": "q0", "StatusCode": "Complete", "Timestamps": [(end - pd.Timedelta(minutes=5)).to_pydatetime()],
        "Values": [42.0]}]}, {"MetricDataQueries": [query], "StartTime": start.to_pydatetime(),
                              "EndTime": end.to_pydatetime(), "ScanBy": "TimestampAscending"})
    with stub:
        out = read_many(client, [Component(COMPONENT)], start, end)[Component(COMPONENT)]
    assert out.datapoints == 1 and out.series.sum() == 42.0


def test_describe_inference_component_reads_copies_and_status() -> None:
    client, stub = sm_stub()
    stub.add_response("describe_inference_component", component_answer(3, 2, "Updating"),
                      {"InferenceComponentName": COMPONENT})
    stub.add_client_error("describe_inference_component", "ValidationException",
                          f"Could not find inference component \"{COMPONENT}\".", 400)
    with stub:
        c = SageMaker(client).inference_component(COMPONENT)
        with pytest.raises(ComponentMissing):
            SageMaker(client).inference_component(COMPONENT)
    assert (c.desired_copies, c.current_copies, c.in_service, c.endpoint_name) == (3, 2, False, ENDPOINT)


def test_prompt_scale_in_of_copies_never_below_min_capacity_and_defers_when_refused() -> None:
    client, stub = sm_stub()
    sm = SageMaker(client)
    live = InferenceComponent(COMPONENT, ENDPOINT, "AllTraffic", "InService", 6, 6)
    stub.add_client_error("update_inference_component_runtime_config", "ValidationException",
                          "Inference component is in Updating state", 400)
    with stub:
        with pytest.raises(ValueError, match="below MinCapacity 1"):
            sm.set_desired_copies(live, 0, 1)
        assert sm.set_desired_copies(live, 1, 1).outcome == "deferred"
        updating = InferenceComponent(COMPONENT, ENDPOINT, "AllTraffic", "Updating", 6, 4)
        assert sm.set_desired_copies(updating, 1, 1).outcome == "deferred"  # not even sent
    stub.assert_no_pending_responses()
