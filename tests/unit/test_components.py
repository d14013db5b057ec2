"""Inference components in the pure core and the settings: scale to zero only when the operator allows
it, and back from zero before the traffic returns (issue 11 §3). Given/When/Then."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from prescaler.plan import PlannerSettings, TargetState, decide
from prescaler.settings import ScalerSettings, SettingsError, load

DAY = pd.Timestamp("2026-03-16T00:00:00Z")  # a Monday
TARGET = 100.0  # invocations per copy per minute
WORKDAY = 600.0  # invocations per minute from 08:00 to 18:00, nothing at night


def working_days(end: pd.Timestamp, days: int = 14, start_hour: float = 8.0, end_hour: float = 18.0) -> pd.Series:
    """Per-minute invocations over ``days`` before ``end`` (exclusive): WORKDAY in the working hours,
    zero otherwise (a component scaled to zero serves nothing at night)."""
    index = pd.date_range(end - pd.Timedelta(days=days), end, freq="min", inclusive="left", tz="UTC")
    hour = index.hour + index.minute / 60.0
    return pd.Series(np.where((hour >= start_hour) & (hour < end_hour), WORKDAY, 0.0), index=index)


def visible(history: pd.Series, now: pd.Timestamp) -> pd.Series:
    """What the Lambda reads at ``now``: complete minutes, the newest two withheld."""
    return history[history.index < now.floor("min") - pd.Timedelta(minutes=2)]


def settings(baseline: int, lead_time_s: int = 360) -> PlannerSettings:
    return PlannerSettings(target_invocations_per_instance=TARGET, baseline_min_capacity=baseline,
                           prescale_max_capacity=8, lead_time_s=lead_time_s, scale_to_zero=baseline == 0)


@pytest.mark.parametrize("lead_time_s", [240, 360, 600])
def test_a_component_at_zero_is_brought_back_before_the_daily_return(lead_time_s: int) -> None:
    # Given two weeks of working days (traffic from 08:00, none at night) and a component at zero copies
    history = working_days(DAY + pd.Timedelta(hours=12))
    s = settings(0, lead_time_s)
    first_raise = None
    # When the pre-scaler ticks every minute of the night's last hour
    for now in pd.date_range(DAY + pd.Timedelta(hours=7), DAY + pd.Timedelta(hours=8), freq="min"):
        d = decide(visible(history, now), TargetState(0, 8, 0), s, now)
        if d.action == "raise":
            first_raise = (now, d.min_capacity)
            break
    # Then MinCapacity leaves zero at least the lead time before 08:00, to what 08:00's demand needs
    assert first_raise is not None, "never raised from zero before 08:00"
    at, copies = first_raise
    assert at <= DAY + pd.Timedelta(hours=8) - pd.Timedelta(seconds=lead_time_s)
    assert copies == int(np.ceil(WORKDAY / TARGET))
    # ... and not hours early: an hour before, nothing is raised (the night costs nothing)
    early = DAY + pd.Timedelta(hours=6)
    assert decide(visible(history, early), TargetState(0, 8, 0), s, early).action == "hold"


def test_a_nightly_batch_return_is_served_too() -> None:
    # Given a nightly batch 02:00-03:00 and nothing else
    history = working_days(DAY + pd.Timedelta(hours=12), start_hour=2.0, end_hour=3.0)
    now = DAY + pd.Timedelta(hours=1, minutes=55)
    # When the pre-scaler ticks five minutes before the batch, the component at zero
    d = decide(visible(history, now), TargetState(0, 8, 0), settings(0, 300), now)
    # Then it brings copies back for the batch
    assert d.action == "raise" and d.min_capacity >= 1


@pytest.mark.parametrize(("baseline", "floor"), [(0, 0), (1, 1), (2, 2)])
def test_after_the_day_a_component_goes_to_zero_only_when_the_operator_allowed_it(baseline: int, floor: int) -> None:
    # Given the working day is over; the pre-scaler owns MinCapacity 6 and 6 copies run
    history = working_days(DAY + pd.Timedelta(hours=19))
    now = DAY + pd.Timedelta(hours=18, minutes=30)
    state = TargetState(6, 8, 6, owned_min_capacity=6, owned_since=DAY + pd.Timedelta(hours=17, minutes=30))
    # When the relaxer ticks
    d = decide(visible(history, now), state, settings(baseline), now)
    # Then MinCapacity goes down to the baseline, never below it, and so does the copy count
    assert d.action == "relax"
    assert d.min_capacity == floor
    assert d.desired_instances is not None and d.desired_instances >= floor
    assert d.desired_instances == floor  # no demand: prompt scale-in goes all the way to the floor


def test_scale_to_zero_needs_an_inference_component() -> None:
    base = {"ENDPOINT_NAME": "llm-endpoint", "LEDGER_TABLE_NAME": "ledger", "BASELINE_MIN_CAPACITY": "0"}
    # Given baseline 0 on a variant, Then the settings are refused naming the variables
    with pytest.raises(SettingsError, match="INFERENCE_COMPONENT_NAME"):
        load(ScalerSettings, base)
    # Given baseline 0 on a component, Then it is accepted and the scalable target is the component's
    s = load(ScalerSettings, {**base, "INFERENCE_COMPONENT_NAME": "llama-3-8b"})
    assert s.baseline_min_capacity == 0
    assert s.resource_id == "inference-component/llama-3-8b"
    assert s.planner().baseline_min_capacity == 0 and s.planner().scale_to_zero


def test_no_component_means_the_variant_as_before() -> None:
    s = load(ScalerSettings, {"ENDPOINT_NAME": "llm-endpoint", "LEDGER_TABLE_NAME": "ledger",
                              "INFERENCE_COMPONENT_NAME": ""})
    assert s.inference_component_name is None
    assert s.resource_id == "endpoint/llm-endpoint/variant/AllTraffic"


@pytest.mark.parametrize("name", ["-bad", "bad-", "has_underscore", "x" * 64])
def test_an_invalid_component_name_is_a_settings_error(name: str) -> None:
    with pytest.raises(SettingsError, match="INFERENCE_COMPONENT_NAME"):
        load(ScalerSettings, {"ENDPOINT_NAME": "e", "LEDGER_TABLE_NAME": "ledger", "INFERENCE_COMPONENT_NAME": name})


def test_the_permissions_of_a_component_deployment_name_the_component_and_not_the_variant_actions() -> None:
    from prescaler.aws.permissions import Deployment, for_function

    dep = Deployment("aws", "eu-west-1", "123456789012", "LLM-Endpoint", inference_component="Llama-3-8B")
    rows = {(r.action, r.resource, tuple(sorted(r.context.items()))) for r in for_function("relax", dep)}
    arn = "arn:aws:sagemaker:eu-west-1:123456789012:inference-component/llama-3-8b"
    # the tick, prompt scale-in, and what Application Auto Scaling validates on RegisterScalableTarget
    assert ("sagemaker:DescribeInferenceComponent", arn, ()) in rows
    assert ("sagemaker:UpdateInferenceComponentRuntimeConfig", arn, ()) in rows
    register = [r for r in rows if r[0] == "application-autoscaling:RegisterScalableTarget"]
    assert register == [("application-autoscaling:RegisterScalableTarget", "*", (
        ("application-autoscaling:scalable-dimension", "sagemaker:inference-component:DesiredCopyCount"),
        ("application-autoscaling:service-namespace", "sagemaker")))]
    assert not {a for a, *_ in rows} & {"sagemaker:UpdateEndpointWeightsAndCapacities",
                                         "sagemaker:DescribeEndpointConfig", "sagemaker:DescribeEndpoint"}
    # and a variant deployment keeps exactly the variant's rows
    variant = {r.action for r in for_function("relax", Deployment("aws", "eu-west-1", "1", "e"))}
    assert "sagemaker:DescribeInferenceComponent" not in variant
    assert "sagemaker:UpdateEndpointWeightsAndCapacities" in variant


def test_the_planner_takes_baseline_zero_only_with_scale_to_zero() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="scale_to_zero"):
        PlannerSettings(baseline_min_capacity=0)
    assert PlannerSettings(baseline_min_capacity=0, scale_to_zero=True).baseline_min_capacity == 0
