"""Application Auto Scaling adapter: MinCapacity only, error mapping, scaling activities, lead time."""

from __future__ import annotations

from typing import Any

import boto3
import pandas as pd
import pytest
from awsworld import RESOURCE_ID, World, scale_activity
from botocore.stub import Stubber
from prescaler.aws.autoscaling import (
    SCALABLE_DIMENSION,
    AutoScaling,
    ScalableTarget,
    failures_since,
    lead_time_s,
)

pytestmark = pytest.mark.integration

T0 = pd.Timestamp("2024-05-15T09:00:00Z")
TARGET = ScalableTarget(RESOURCE_ID, 2, 8)
ONLY_MIN = {"ServiceNamespace": "sagemaker", "ResourceId": RESOURCE_ID, "ScalableDimension": SCALABLE_DIMENSION}


def stubbed() -> tuple[AutoScaling, Stubber]:
    client: Any = boto3.client("application-autoscaling", region_name="us-east-1")
    return AutoScaling(client), Stubber(client)


def test_issue5_7_an_operators_frozen_scale_in_survives_a_raise_and_a_relax(world: World) -> None:
    # Given an operator suspended dynamic scale-in on the scalable target
    world.autoscaling.register_scalable_target(**ONLY_MIN, SuspendedState={"DynamicScalingInSuspended": True})
    adapter = AutoScaling(world.autoscaling)
    # When the pre-scaler raises and the relaxer relaxes
    target = adapter.describe(RESOURCE_ID)
    assert target is not None
    assert adapter.set_min_capacity(target, 6).outcome == "applied"
    assert adapter.set_min_capacity(target, 2).outcome == "applied"
    # Then scale-in is still suspended and MaxCapacity unchanged
    after = world.target()
    assert after["SuspendedState"]["DynamicScalingInSuspended"] is True
    assert (after["MinCapacity"], after["MaxCapacity"]) == (2, 8)


def test_issue5_7_requests_carry_min_capacity_only() -> None:
    # Given the real API (Stubber checks the exact parameters)
    adapter, stub = stubbed()
    stub.add_response("register_scalable_target", {}, {**ONLY_MIN, "MinCapacity": 6})
    # When MinCapacity is raised, Then neither MaxCapacity nor SuspendedState is sent
    with stub:
        assert adapter.set_min_capacity(TARGET, 6).outcome == "applied"
    stub.assert_no_pending_responses()


def test_min_capacity_above_max_capacity_is_never_sent() -> None:
    adapter, stub = stubbed()
    with stub, pytest.raises(ValueError, match="MaxCapacity 8"):
        adapter.set_min_capacity(TARGET, 9)


@pytest.mark.parametrize(("code", "message", "outcome"), [
    ("ConcurrentUpdateException", "Concurrent update on the scalable target", "deferred"),
    ("ValidationException", "Endpoint catalogue-tagger is in Updating status; scaling cannot act", "deferred"),
    ("ObjectNotFoundException", "No scalable target registered", "target_missing"),
])
def test_errors_map_to_outcomes(code: str, message: str, outcome: str) -> None:
    # Given the API answers with an error code
    adapter, stub = stubbed()
    stub.add_client_error("register_scalable_target", code, message, 400)
    # When MinCapacity is set, Then the error is an outcome, not an exception
    with stub:
        result = adapter.set_min_capacity(TARGET, 6)
    assert result.outcome == outcome


def test_other_validation_errors_are_raised() -> None:
    adapter, stub = stubbed()
    stub.add_client_error("register_scalable_target", "ValidationException", "MinCapacity must be >= 0", 400)
    with stub, pytest.raises(Exception, match="MinCapacity must be"):
        adapter.set_min_capacity(TARGET, 6)


def test_lead_time_is_a_high_percentile_of_successful_scale_outs() -> None:
    # Given scale-outs that took 150-240 s, a scale-in and a failure (both ignored)
    adapter, stub = stubbed()
    acts = [scale_activity(f"a{i}", "Successful", T0, T0 + pd.Timedelta(seconds=s), 2, 6)
            for i, s in enumerate([150, 180, 200, 240])]
    acts.append(scale_activity("in", "Successful", T0, T0 + pd.Timedelta(seconds=900), 6, 2))
    acts.append(scale_activity("f", "Failed", T0, T0 + pd.Timedelta(seconds=999), 2, 6, "no capacity"))
    stub.add_response("describe_scaling_activities", {"ScalingActivities": acts},
                      {**ONLY_MIN, "MaxResults": 50})
    with stub:
        activities = adapter.activities(RESOURCE_ID)
    # When the lead time is measured
    seconds, source = lead_time_s(activities, 300)
    # Then it is p90 of the scale-outs (228 s); the planner's horizon minute is the tick
    assert (seconds, source) == (228, "p90 of 4 scale-outs")
    assert lead_time_s([], 300) == (300, "default")
    assert [a.activity_id for a in failures_since(activities, T0)] == ["f"]
