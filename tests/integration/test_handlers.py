"""Each handler with each event in events/ against moto, plus the field reports (issue 5) that land
in the handlers' orchestration. Given/When/Then."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest
from awsworld import (
    ENDPOINT,
    RESOURCE_ID,
    World,
    at_wall_clock,
    build_world,
    emf,
    hourly_spikes,
    load_handler,
    metric_values,
    put_gauge,
    put_heartbeat,
    put_invocations,
    scale_activity,
)
from template_values import EVENT_FILES, event

pytestmark = pytest.mark.integration

HANDLERS = {name: load_handler(name) for name in ("prescale", "relax", "gpu_metric")}
#: 09:55 UTC, five minutes before the 10:00 spike (events/prescale_scheduled.json's time)
PRESCALE_TIME = pd.Timestamp(event("prescale_scheduled.json")["time"])
RELAX_TIME = pd.Timestamp(event("relax_scheduled.json")["time"])


def seed_history(world: World, end: pd.Timestamp, **kw: Any) -> pd.Series:
    history = hourly_spikes(end.floor("min"), **kw)
    put_invocations(world.cloudwatch, history)
    return history


def invoke(name: str, evt: Any, ctx: Any) -> dict:
    return HANDLERS[name].lambda_handler(evt, ctx)


# --------------------------------------------------------------------------------------------------
# every handler x every sample event


#: What each scaler does on each sample event (DryRun on, as in events/env.json; MinCapacity at
#: the baseline 2, history of hourly 8-minute spikes of 13,200/min over 2,400/min up to the tick):
#: 09:55 and 10:05 see the 10:00 spike in lead time + horizon (6 instances), 10:20 does not.
#: Scheduler's {} runs on the wall clock, set here to 09:55.
EXPECTED = {
    ("prescale", "prescale_scheduled.json"): ("raise", "dry_run", 6),
    ("prescale", "gpu_metric_scheduled.json"): ("raise", "dry_run", 6),
    ("prescale", "relax_scheduled.json"): ("hold", "hold", 2),
    ("prescale", "scheduler_empty.json"): ("raise", "dry_run", 6),
    ("relax", "prescale_scheduled.json"): ("hold", "hold", 6),
    ("relax", "gpu_metric_scheduled.json"): ("hold", "hold", 6),
    ("relax", "relax_scheduled.json"): ("hold", "hold", 2),
    ("relax", "scheduler_empty.json"): ("hold", "hold", 6),
}


@pytest.mark.parametrize("event_file", EVENT_FILES)
@pytest.mark.parametrize("function", ["prescale", "relax"])
def test_scaler_handlers_accept_every_sample_event(function: str, event_file: str, world: World,
                                                   scaler_env: dict, lambda_context: Any,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    # Given hourly spikes up to the event's time (or, for Scheduler's {}, a wall clock at 09:55), dry
    # run as events/env.json sets it for `sam local invoke`
    monkeypatch.setenv("DRY_RUN", "true")
    evt = event(event_file)
    ref = pd.Timestamp(evt["time"]) if "time" in evt else PRESCALE_TIME
    at_wall_clock(monkeypatch, ref)
    seed_history(world, ref)
    # When the handler runs on the sample event
    result = invoke(function, evt, lambda_context)
    # Then it decides what the forecast says, changes nothing (dry run), and says which clock it used
    action, outcome, wanted = EXPECTED[(function, event_file)]
    assert (result["function"], result["action"], result["outcome"]) == (function, action, outcome), result
    assert result["old_min_capacity"] == result["new_min_capacity"] == world.target()["MinCapacity"] == 2
    assert result.get("proposed_min_capacity", 2) == (wanted if action == "raise" else 2)
    assert result["forecast_pattern"] == "hourly" and result["forecast_usable"] is True
    peak = 13200 if wanted == 6 else 2400
    assert result["forecast_peak_invocations_per_minute"] == pytest.approx(peak)
    assert result["clock"] == ("event" if "time" in evt else "wall")
    assert pd.Timestamp(result["now"]) == ref


@pytest.mark.parametrize("event_file", EVENT_FILES)
def test_gpu_metric_handler_accepts_every_sample_event(event_file: str, aws: None, monkeypatch: pytest.MonkeyPatch,
                                                       lambda_context: Any) -> None:
    # Given a 1-GPU endpoint that reported GPUUtilization 64 in the last complete minute
    world = build_world("ml.g4dn.xlarge")
    evt = event(event_file)
    ref = pd.Timestamp(evt["time"]) if "time" in evt else pd.Timestamp.now(tz="UTC")
    minute = ref.floor("min") - pd.Timedelta(minutes=2)
    put_gauge(world.cloudwatch, "/aws/sagemaker/Endpoints", "GPUUtilization", minute, 64.0)
    monkeypatch.setenv("ENDPOINT_NAME", ENDPOINT)
    at_wall_clock(monkeypatch, ref)  # a what-if at the event's own time: CloudWatch accepts the point
    # When the GPU metric handler runs
    result = invoke("gpu_metric", evt, lambda_context)
    # Then it publishes 64% per GPU
    assert result["outcome"] == "applied"
    assert result["gpu_utilization_per_gpu"] == pytest.approx(64.0)


# --------------------------------------------------------------------------------------------------
# the vertical slice: raise, duplicate, relax, dry run


def test_prescale_raises_min_capacity_ahead_of_the_spike_and_records_it(
        world: World, scaler_env: dict, lambda_context: Any, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    # Given hourly spikes of 13,200/min (6 instances at 2,400) and DryRun off
    monkeypatch.setenv("DRY_RUN", "false")
    seed_history(world, PRESCALE_TIME)
    # When the pre-scaler ticks five minutes before the hour
    result = invoke("prescale", event("prescale_scheduled.json"), lambda_context)
    # Then MinCapacity is raised 2 -> 6, MaxCapacity untouched, and the ledger owns 6 with the why
    assert (result["action"], result["outcome"]) == ("raise", "applied")
    assert (result["old_min_capacity"], result["new_min_capacity"]) == (2, 6)
    assert result["forecast_peak_invocations_per_minute"] == pytest.approx(13200)
    assert (world.target()["MinCapacity"], world.target()["MaxCapacity"]) == (6, 8)
    item = world.ledger_item()
    assert item is not None and item["owned_min_capacity"] == {"N": "6"}
    assert item["last_raise"]["M"]["event_id"] == {"S": event("prescale_scheduled.json")["id"]}
    # and the decision is published as EMF metrics (forecast against actual, desired MinCapacity, action)
    values = metric_values(emf(capsys))
    assert values["ForecastPeakInvocationsPerMinute"] == [13200.0]
    assert values["DesiredMinCapacity"] == [6.0] and values["ActionRaise"] == [1.0]
    assert "ObservedInvocationsPerMinute" in values and values["ColdStart"] == [1.0]


def test_duplicate_delivery_of_the_same_tick_changes_nothing_twice(
        world: World, scaler_env: dict, lambda_context: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a tick that raised MinCapacity to 6
    monkeypatch.setenv("DRY_RUN", "false")
    seed_history(world, PRESCALE_TIME)
    first = invoke("prescale", event("prescale_scheduled.json"), lambda_context)
    version = world.ledger_item()["version"]  # type: ignore[index]
    # When EventBridge delivers the same event again
    second = invoke("prescale", event("prescale_scheduled.json"), lambda_context)
    # Then the second tick holds: nothing is registered or recorded twice
    assert first["action"] == "raise" and second["action"] == "hold"
    assert world.target()["MinCapacity"] == 6
    assert world.ledger_item()["version"] == version  # type: ignore[index]


def test_dry_run_from_events_env_json_computes_and_publishes_but_changes_nothing(
        world: World, scaler_env: dict, lambda_context: Any, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    # Given the env-vars file sam local invoke uses (DryRun on)
    for key, value in event("env.json")["Parameters"].items():
        if key != "AWS_ENDPOINT_URL":
            monkeypatch.setenv(key, value)
    assert event("env.json")["Parameters"]["DRY_RUN"] == "true"
    seed_history(world, PRESCALE_TIME)
    # When the pre-scaler ticks before a spike
    result = invoke("prescale", event("prescale_scheduled.json"), lambda_context)
    # Then it says what it would do, publishes it, and changes nothing (the ledger holds only the
    # hourly preflight's verdict: no raise, no ownership)
    assert (result["outcome"], result["proposed_min_capacity"], result["new_min_capacity"]) == ("dry_run", 6, 2)
    assert world.target()["MinCapacity"] == 2
    item = world.ledger_item()
    assert item is not None and not {"version", "owned_min_capacity", "last_raise"} & set(item)
    assert result["can_apply"] is True
    assert metric_values(emf(capsys))["DesiredMinCapacity"] == [6.0]


def test_prescale_never_lowers_a_relax_decision_is_returned_as_hold(
        world: World, scaler_env: dict, lambda_context: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a raise to 6 that the pre-scaler owns, and a tick after the spike
    monkeypatch.setenv("DRY_RUN", "false")
    seed_history(world, RELAX_TIME)
    invoke("prescale", event("prescale_scheduled.json"), lambda_context)
    assert world.target()["MinCapacity"] == 6
    # When the pre-scaler ticks at a time the core would relax
    result = invoke("prescale", event("relax_scheduled.json"), lambda_context)
    # Then it holds: relaxing is the relaxer's job
    assert result["action"] == "hold" and world.target()["MinCapacity"] == 6


def test_relaxer_leaves_an_operators_min_capacity_alone(
        world: World, scaler_env: dict, lambda_context: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given an operator set MinCapacity 5 by hand (the ledger owns nothing)
    monkeypatch.setenv("DRY_RUN", "false")
    seed_history(world, RELAX_TIME)
    world.autoscaling.register_scalable_target(ServiceNamespace="sagemaker", ResourceId=RESOURCE_ID,
                                               ScalableDimension="sagemaker:variant:DesiredInstanceCount",
                                               MinCapacity=5)
    # When the relaxer ticks after the spike
    result = invoke("relax", event("relax_scheduled.json"), lambda_context)
    # Then MinCapacity stays 5
    assert result["new_min_capacity"] == 5 and world.target()["MinCapacity"] == 5
    assert "not set by the pre-scaler" in result["reason"]


def test_a_raise_over_an_operators_min_capacity_relaxes_back_to_it_not_below(
        world: World, scaler_env: dict, lambda_context: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given an operator's MinCapacity 5 and a spike that needs 6
    monkeypatch.setenv("DRY_RUN", "false")
    monkeypatch.setenv("PROMPT_SCALE_IN", "false")
    seed_history(world, RELAX_TIME)
    world.autoscaling.register_scalable_target(ServiceNamespace="sagemaker", ResourceId=RESOURCE_ID,
                                               ScalableDimension="sagemaker:variant:DesiredInstanceCount",
                                               MinCapacity=5)
    raised = invoke("prescale", event("prescale_scheduled.json"), lambda_context)
    assert (raised["old_min_capacity"], raised["new_min_capacity"]) == (5, 6)
    # When the relaxer ticks after the spike
    relaxed = invoke("relax", event("relax_scheduled.json"), lambda_context)
    # Then MinCapacity goes back to the operator's 5, not to the baseline 2, and ownership ends
    assert (relaxed["action"], relaxed["new_min_capacity"]) == ("relax", 5)
    assert world.target()["MinCapacity"] == 5
    item = world.ledger_item()
    assert item is not None and "owned_min_capacity" not in item and "floor_min_capacity" not in item
    # and the next relaxer tick leaves it alone
    again = invoke("relax", event("relax_scheduled.json"), lambda_context)
    assert again["action"] == "hold" and world.target()["MinCapacity"] == 5


# --------------------------------------------------------------------------------------------------
# issue 5 field reports that land in the handlers


def test_issue5_1_empty_window_while_in_service_holds_and_says_no_data(
        world: World, scaler_env: dict, lambda_context: Any, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    # Given a raise the pre-scaler owns and a completely empty 14-day window (endpoint InService)
    monkeypatch.setenv("DRY_RUN", "false")
    monkeypatch.setenv("HISTORY_DAYS", "14")
    world.autoscaling.register_scalable_target(ServiceNamespace="sagemaker", ResourceId=RESOURCE_ID,
                                               ScalableDimension="sagemaker:variant:DesiredInstanceCount",
                                               MinCapacity=6)
    # When the relaxer and the pre-scaler tick
    relax = invoke("relax", event("relax_scheduled.json"), lambda_context)
    prescale = invoke("prescale", event("prescale_scheduled.json"), lambda_context)
    # Then both hold with "no data", MinCapacity is never lowered, and a NoData metric says so
    for result in (relax, prescale):
        assert (result["action"], result["outcome"]) == ("hold", "no_data")
    assert world.target()["MinCapacity"] == 6
    assert metric_values(emf(capsys))["NoData"] == [1.0]


def test_issue5_2_history_published_with_one_dimension_is_no_data_not_zero_demand(
        world: World, scaler_env: dict, lambda_context: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given Invocations that match only EndpointName (not what SageMaker publishes) and MinCapacity 6
    monkeypatch.setenv("DRY_RUN", "false")
    put_invocations(world.cloudwatch, hourly_spikes(RELAX_TIME.floor("min")),
                    dims=[{"Name": "EndpointName", "Value": ENDPOINT}])
    world.autoscaling.register_scalable_target(ServiceNamespace="sagemaker", ResourceId=RESOURCE_ID,
                                               ScalableDimension="sagemaker:variant:DesiredInstanceCount",
                                               MinCapacity=6)
    # When the relaxer ticks
    result = invoke("relax", event("relax_scheduled.json"), lambda_context)
    # Then the empty answer holds; it is not read as zero demand
    assert result["outcome"] == "no_data" and world.target()["MinCapacity"] == 6


def test_issue5_5_demand_is_read_from_invocations_not_invocations_per_instance(
        world: World, scaler_env: dict, lambda_context: Any, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    # Given Invocations steady at 600/min while instances went 1 -> 3 (InvocationsPerInstance 600 -> 200)
    monkeypatch.setenv("TARGET_INVOCATIONS_PER_INSTANCE", "200")
    monkeypatch.setenv("BASELINE_MIN_CAPACITY", "1")
    end = PRESCALE_TIME.floor("min")
    steady = hourly_spikes(end, base=600, spike=600)
    put_invocations(world.cloudwatch, steady)
    per_instance = steady / 3
    per_instance.iloc[: len(per_instance) // 2] = 600
    put_invocations(world.cloudwatch, per_instance, metric="InvocationsPerInstance")
    # When the pre-scaler ticks (dry run)
    result = invoke("prescale", event("prescale_scheduled.json"), lambda_context)
    # Then demand is 600/min and the required capacity is 3 at 200 per instance
    assert metric_values(emf(capsys))["ObservedInvocationsPerMinute"] == [600.0]
    assert result["forecast_peak_invocations_per_minute"] == pytest.approx(600)
    from prescaler.plan import PlannerSettings, instances_for
    assert instances_for(600, PlannerSettings(target_invocations_per_instance=200, baseline_min_capacity=1)) == 3


def test_issue5_8_a_raise_whose_scaling_activity_failed_is_reported_not_claimed(
        world: World, scaler_env: dict, lambda_context: Any, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    # Given a raise to 6 that succeeded as an API call ...
    monkeypatch.setenv("DRY_RUN", "false")
    seed_history(world, PRESCALE_TIME + pd.Timedelta(minutes=10))
    invoke("prescale", event("prescale_scheduled.json"), lambda_context)
    capsys.readouterr()
    # ... and ten minutes later the variant still has 2 instances and the activity failed
    message = ("Failed to set desired instance count to 6. Reason: Unable to provision requested ML compute "
               "capacity due to InsufficientInstanceCapacity error.")
    world.activities.append(scale_activity("a-1", "Failed", PRESCALE_TIME + pd.Timedelta(seconds=5),
                                           PRESCALE_TIME + pd.Timedelta(minutes=9), 2, 6, message))
    later = dict(event("prescale_scheduled.json"), time=(PRESCALE_TIME + pd.Timedelta(minutes=10)).isoformat())
    # When the next tick runs
    result = invoke("prescale", later, lambda_context)
    # Then it reports the failure (metric + warning naming the message) instead of claiming success
    assert any("InsufficientInstanceCapacity" in w for w in result["warnings"])
    assert any("below MinCapacity 6" in w for w in result["warnings"])
    assert metric_values(emf(capsys))["ScalingActivityFailed"] == [1.0]


@pytest.mark.parametrize("prompt", ["false", "true"])
def test_issue5_9_relax_while_traffic_stopped_says_scale_in_pending_not_scaled_down(
        prompt: str, world: World, scaler_env: dict, lambda_context: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a raise to 6 the pre-scaler owns, 6 instances running, and traffic that has stopped
    # (the instances kept publishing CPUUtilization: the missing Invocations are idle minutes)
    monkeypatch.setenv("DRY_RUN", "false")
    monkeypatch.setenv("PROMPT_SCALE_IN", prompt)
    seed_history(world, PRESCALE_TIME)
    put_heartbeat(world.cloudwatch, PRESCALE_TIME, RELAX_TIME)
    invoke("prescale", event("prescale_scheduled.json"), lambda_context)
    world.set_instances(6)
    # When the relaxer ticks after the spike
    result = invoke("relax", event("relax_scheduled.json"), lambda_context)
    # Then MinCapacity is lowered 6 -> 2 and scale-in is pending, not done
    assert (result["action"], result["old_min_capacity"], result["new_min_capacity"]) == ("relax", 6, 2)
    assert result["scale_in"] == "pending" and "scaled down" not in result["reason"]
    assert "MinCapacity lowered 6 -> 2" in result["reason"]
    assert world.target()["MinCapacity"] == 2 and "owned_min_capacity" not in world.ledger_item()  # type: ignore[operator]
    if prompt == "false":
        assert "target tracking will remove" in result["reason"]
    else:
        assert result["prompt_scale_in"] == "applied"
        variant = world.sagemaker.describe_endpoint(EndpointName=ENDPOINT)["ProductionVariants"][0]
        assert variant["DesiredInstanceCount"] >= 2


def test_issue5_10_scheduler_empty_input_uses_the_current_time(
        world: World, scaler_env: dict, lambda_context: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given history up to now, dry run, and EventBridge Scheduler's {} (no time, no id)
    monkeypatch.setenv("DRY_RUN", "true")
    now = pd.Timestamp.now(tz="UTC")
    seed_history(world, now)
    # When the pre-scaler runs on {}
    result = invoke("prescale", event("scheduler_empty.json"), lambda_context)
    # Then it uses the current time and runs to a decision
    assert result["clock"] == "wall"
    assert abs(pd.Timestamp(result["now"]) - now) < pd.Timedelta(minutes=1)
    assert result["outcome"] in ("hold", "dry_run")


def test_watchdog_relaxes_a_raise_held_too_long(
        world: World, scaler_env: dict, lambda_context: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a raise to 6 owned since 09:55 and a maximum hold of 5 minutes
    monkeypatch.setenv("DRY_RUN", "false")
    monkeypatch.setenv("MAX_HOLD_MINUTES", "5")
    seed_history(world, PRESCALE_TIME)
    invoke("prescale", event("prescale_scheduled.json"), lambda_context)
    # When the relaxer ticks at 10:01, inside the spike (10:00-10:07) but 6 minutes after the raise
    evt = dict(event("relax_scheduled.json"), time=(PRESCALE_TIME + pd.Timedelta(minutes=6)).isoformat())
    result = invoke("relax", evt, lambda_context)
    # Then the watchdog puts MinCapacity back to the baseline
    assert result["action"] == "relax" and "watchdog" in result["reason"]
    assert world.target()["MinCapacity"] == 2
    # And a pre-scaler tick a minute later (the rest of the spike is still forecast) does not undo it:
    # the ledger recorded the watchdog, and its cool-off blocks forecast-driven raises
    again = dict(event("prescale_scheduled.json"), time=(PRESCALE_TIME + pd.Timedelta(minutes=7)).isoformat())
    after = invoke("prescale", again, lambda_context)
    assert after["action"] == "hold" and "watchdog" in after["reason"], after
    assert world.target()["MinCapacity"] == 2


@pytest.mark.parametrize(("var", "value", "expected"), [
    ("ENDPOINT_NAME", None, "ENDPOINT_NAME: missing"),
    ("HEADROOM", "lots", "HEADROOM='lots'"),
    ("LEDGER_TABLE_NAME", None, "LEDGER_TABLE_NAME: missing"),
])
def test_invalid_settings_are_a_clear_error_naming_the_variable(
        var: str, value: str | None, expected: str, world: World, scaler_env: dict, lambda_context: Any,
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    # Given a missing or invalid environment variable
    if value is None:
        monkeypatch.delenv(var)
    else:
        monkeypatch.setenv(var, value)
    # When the handler runs
    from prescaler.settings import SettingsError

    with pytest.raises(SettingsError) as raised:
        invoke("prescale", event("prescale_scheduled.json"), lambda_context)
    # Then the invocation FAILS (Lambda's Errors metric and alarm see it: issue 8 section 3) with an
    # error naming the variable, logged as one line without a stack trace
    assert expected in str(raised.value) and raised.value.__cause__ is None
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert [expected in r.getMessage() for r in errors] == [True] and errors[0].exc_info is None


def test_endpoint_not_in_service_defers_without_raising(
        world: World, scaler_env: dict, lambda_context: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given an endpoint that is Updating (moto: patch the describe answer through botocore's hook)
    monkeypatch.setenv("DRY_RUN", "false")
    seed_history(world, PRESCALE_TIME)

    def updating(http_response: Any = None, parsed: dict | None = None, **_: Any) -> None:
        if parsed is not None and "EndpointStatus" in parsed:
            parsed["EndpointStatus"] = "Updating"

    world.sagemaker.meta.events.register("after-call.sagemaker.DescribeEndpoint", updating)
    # When the pre-scaler ticks before a spike
    result = invoke("prescale", event("prescale_scheduled.json"), lambda_context)
    # Then it defers cleanly and changes nothing
    assert (result["action"], result["outcome"]) == ("hold", "deferred")
    assert world.target()["MinCapacity"] == 2


def test_no_scalable_target_reports_target_missing(aws: None, scaler_env: dict, lambda_context: Any) -> None:
    # Given the endpoint and table but no scalable target
    world = build_world()
    world.autoscaling.deregister_scalable_target(ServiceNamespace="sagemaker", ResourceId=RESOURCE_ID,
                                                 ScalableDimension="sagemaker:variant:DesiredInstanceCount")
    # When the pre-scaler ticks
    result = invoke("prescale", event("prescale_scheduled.json"), lambda_context)
    # Then it says so
    assert result["outcome"] == "target_missing"


def test_issue5_6_gpu_utilisation_is_divided_by_the_instance_gpus_and_latency_read_in_ms(
        aws: None, monkeypatch: pytest.MonkeyPatch, lambda_context: Any) -> None:
    # Given a 4-GPU instance reporting GPUUtilization 320 and ModelLatency 250000 microseconds
    world = build_world("ml.g4dn.12xlarge")
    now = pd.Timestamp(event("gpu_metric_scheduled.json")["time"])
    minute = now - pd.Timedelta(minutes=2)
    put_gauge(world.cloudwatch, "/aws/sagemaker/Endpoints", "GPUUtilization", minute, 320.0)
    put_gauge(world.cloudwatch, "AWS/SageMaker", "ModelLatency", minute, 250000.0)
    monkeypatch.setenv("ENDPOINT_NAME", ENDPOINT)
    at_wall_clock(monkeypatch, now)
    # When the GPU metric function ticks
    result = invoke("gpu_metric", event("gpu_metric_scheduled.json"), lambda_context)
    # Then it publishes 80 (Percent) per GPU in the project's namespace and reads latency as 250 ms
    assert result["gpu_utilization_per_gpu"] == pytest.approx(80.0) and result["model_latency_ms"] == 250.0
    stats = world.cloudwatch.get_metric_statistics(
        Namespace="SageMakerPrescaler", MetricName="GPUUtilizationPerGPU", StartTime=minute.to_pydatetime(),
        EndTime=(minute + pd.Timedelta(minutes=1)).to_pydatetime(), Period=60, Statistics=["Maximum"],
        Dimensions=[{"Name": "EndpointName", "Value": ENDPOINT}, {"Name": "VariantName", "Value": "AllTraffic"}])
    assert [(p["Maximum"], p["Unit"]) for p in stats["Datapoints"]] == [(80.0, "Percent")]


def test_issue5_6_unknown_instance_type_is_an_error_not_a_guess(
        aws: None, monkeypatch: pytest.MonkeyPatch, lambda_context: Any) -> None:
    # Given an endpoint on an instance type with no known GPU count
    build_world("ml.m5.xlarge")
    monkeypatch.setenv("ENDPOINT_NAME", ENDPOINT)
    # When the GPU metric function ticks, Then it fails loudly (error alarm, on-failure destination)
    from prescaler.aws.sagemaker import UnknownInstanceType
    with pytest.raises(UnknownInstanceType, match=r"ml\.m5\.xlarge"):
        invoke("gpu_metric", event("gpu_metric_scheduled.json"), lambda_context)


#: `sam local generate-event cloudwatch scheduled-event` output (SAM CLI 1.170), verbatim.
GENERATED = {"id": "cdc73f9d-aea9-11e3-9d5a-835b769c0d9c", "detail-type": "Scheduled Event", "source": "aws.events",
             "account": "123456789012", "time": "1970-01-01T00:00:00Z", "region": "us-east-1",
             "resources": ["arn:aws:events:us-east-1:123456789012:rule/ExampleRule"], "detail": {}}


@pytest.mark.parametrize("function", ["prescale", "relax"])
def test_sam_generate_event_output_is_refused_as_stale_and_replayed_holds_on_its_empty_1970_window(
        function: str, world: World, scaler_env: dict, lambda_context: Any) -> None:
    # Given the generated scheduled event (time 1970: no history there)
    # When the handler runs on it as delivered
    refused = invoke(function, GENERATED, lambda_context)
    # Then a time 56 years from the clock is refused: a late delivery must not act
    assert (refused["action"], refused["outcome"]) == ("hold", "stale_event")
    assert '"prescaler-replay": true' in refused["reason"]
    # When it asks to be replayed, Then it runs on the event's time and holds for lack of data
    result = invoke(function, dict(GENERATED, **{"prescaler-replay": True}), lambda_context)
    assert (result["action"], result["outcome"]) == ("hold", "no_data")
    assert result["now"].startswith("1970-01-01")


def _requirement_closure(requirements: list[str]) -> set[str]:
    """Normalised names of the requirements and, transitively, of what they require (extras
    included), from the installed distributions' metadata."""
    from importlib import metadata

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    seen: set[str] = set()
    todo = [(Requirement(r), frozenset(Requirement(r).extras)) for r in requirements]
    while todo:
        req, extras = todo.pop()
        name = canonicalize_name(req.name)
        if name in seen:
            continue
        seen.add(name)
        for dep in metadata.requires(req.name) or []:
            child = Requirement(dep)
            envs = [{"extra": e} for e in extras] or [{"extra": ""}]
            if child.marker is None or any(child.marker.evaluate(env) for env in envs):
                todo.append((child, frozenset(child.extras)))
    return seen


def test_layer_ships_what_the_handlers_import() -> None:
    # Given the layer's requirements (what `sam build` installs into the layer) and every module
    # name their distributions (and what those require, extras included) provide
    import json
    import subprocess
    import sys
    from importlib import metadata

    from template_values import ROOT

    lines = (ROOT / "layers" / "prescaler" / "requirements.txt").read_text().splitlines()
    requirements = [line.split("#")[0].strip() for line in lines if line.split("#")[0].strip()]
    shipped = _requirement_closure(requirements)
    from packaging.utils import canonicalize_name

    provided = sorted(top for top, dists in metadata.packages_distributions().items()
                      if any(canonicalize_name(d) in shipped for d in dists))
    # When each handler module is imported in a fresh interpreter where nothing else is importable
    # (only the standard library, the prescaler package and those modules: the layer as Lambda sees it)
    script = (
        "import importlib.abc, importlib.util, json, sys\n"
        f"allowed = set({provided!r}) | set(sys.stdlib_module_names) | {{'prescaler'}} | set(sys.modules)\n"
        "import importlib.machinery\n"
        "class OnlyTheLayer(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in allowed or path is not None:\n"
        "            return None\n"
        "        spec = importlib.machinery.PathFinder.find_spec(name)\n"
        "        if spec is not None and 'site-packages' not in str(spec.origin):\n"
        "            return None  # the interpreter's own (e.g. _sysconfigdata_*)\n"
        "        raise ModuleNotFoundError(f'No module named {name!r} (not in the layer)', name=name)\n"
        "sys.meta_path.insert(0, OnlyTheLayer())\n"
        f"root = {str(ROOT)!r}\n"
        "for name in ('prescale', 'relax', 'gpu_metric'):\n"
        "    spec = importlib.util.spec_from_file_location('app_' + name, f'{root}/functions/{name}/app.py')\n"
        "    spec.loader.exec_module(importlib.util.module_from_spec(spec))\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    env = {"POWERTOOLS_TRACE_DISABLED": "0", "AWS_DEFAULT_REGION": "us-east-1", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    # Then they import (a module the layer lacks fails here: Powertools' Tracer needs aws-xray-sdk,
    # the [tracer] extra), and they did load the libraries the layer is for
    assert out.returncode == 0, out.stderr[-2000:]
    loaded = set(json.loads(out.stdout))
    assert {"aws_xray_sdk", "aws_lambda_powertools", "pandas", "numpy", "pydantic", "pydantic_settings",
            "boto3", "botocore"} <= loaded, loaded
    assert "numpy>=1.26,<2.3" in requirements  # AL2 glibc 2.26: numpy >= 2.3 has manylinux_2_28 wheels only


@pytest.mark.parametrize("function", ["prescale", "relax", "gpu_metric"])
@pytest.mark.parametrize("bad", [{"time": "yesterday-ish"}, {"time": "2026-03-02T09:55:00Z", "id": 7},
                                 {"time": "0001-01-01T00:00:00Z", "prescaler-replay": True},
                                 {"time": "9999-12-31T23:59:59Z", "prescaler-replay": True}],
                         ids=["unreadable-time", "non-string-id", "year-1-replayed", "year-9999-replayed"])
def test_a_bad_event_is_a_clean_error_and_changes_nothing(
        function: str, bad: dict, world: World, scaler_env: dict, lambda_context: Any,
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    # Given a live (not dry-run) pre-scaler, history with spikes, and the target at its baseline
    monkeypatch.setenv("DRY_RUN", "false")
    seed_history(world, PRESCALE_TIME)
    before = world.target()["MinCapacity"]
    # When the function gets an event it cannot read
    from prescaler.service import InvalidEvent

    with pytest.raises(InvalidEvent) as raised:
        invoke(function, bad, lambda_context)
    # Then the invocation fails (Errors alarm, failure queue) with an error naming the field, logged as
    # one line without a stack trace, and nothing changes
    assert ("'time'" in str(raised.value)) or ("'id'" in str(raised.value))
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and errors[0].exc_info is None
    assert world.target()["MinCapacity"] == before


@pytest.mark.parametrize(("function", "event_file"), [("prescale", "prescale_scheduled.json"),
                                                      ("relax", "relax_scheduled.json")])
def test_one_tick_requests_the_metrics_the_readmes_cost_table_bills(
        function: str, event_file: str, world: World, scaler_env: dict, lambda_context: Any) -> None:
    # Given 14 days of hourly spikes (one GetMetricData page) and the instances' heartbeat
    seed_history(world, PRESCALE_TIME)
    put_heartbeat(world.cloudwatch, PRESCALE_TIME - pd.Timedelta(minutes=30), PRESCALE_TIME)
    queries: list[str] = []
    world.cloudwatch.meta.events.register(
        "before-parameter-build.cloudwatch.GetMetricData",
        lambda params, **_: queries.extend(q["MetricStat"]["Metric"]["MetricName"]
                                           for q in params["MetricDataQueries"]))
    # When one scaler ticks
    invoke(function, event(event_file), lambda_context)
    # Then it requests two metrics, billed per metric requested ("Cost per month": 2 functions x 2
    # metrics x 43,800 ticks): the variant's Invocations and its instances' CPUUtilization heartbeat
    assert sorted(queries) == ["CPUUtilization", "Invocations"]


def test_a_raise_whose_pattern_is_gone_is_relaxed_and_logged(
        world: World, scaler_env: dict, lambda_context: Any, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    # Given a raise to 6 for the 10:00 spike, owned by the pre-scaler, and 6 instances running
    monkeypatch.setenv("DRY_RUN", "false")
    seed_history(world, PRESCALE_TIME)
    put_heartbeat(world.cloudwatch, PRESCALE_TIME, RELAX_TIME)
    assert invoke("prescale", event("prescale_scheduled.json"), lambda_context)["action"] == "raise"
    world.set_instances(6)
    capsys.readouterr()
    # And, at the relaxer's tick, a backtest that finds no pattern worth acting on any more (here: the
    # operator made a breach minute worth 0.01 instance-minutes, so no raise pays)
    monkeypatch.setenv("BREACH_MINUTE_COST", "0.01")
    evt = dict(event("relax_scheduled.json"), time=(PRESCALE_TIME + pd.Timedelta(minutes=18)).isoformat())
    # When the relaxer ticks after the spike
    result = invoke("relax", evt, lambda_context)
    # Then MinCapacity goes back to the baseline and the reason says the pattern is gone
    assert (result["action"], result["old_min_capacity"], result["new_min_capacity"]) == ("relax", 6, 2), result
    assert result["reason"].startswith("relax MinCapacity 6 -> 2: no pattern worth acting on any more")
    assert result["forecast_usable"] is False and world.target()["MinCapacity"] == 2
    # And no prompt scale-in: target tracking removes the instances after its own alarm
    assert result["desired_instances"] is None and result["prompt_scale_in"] is None
    assert result["scale_in"] == "pending" and "target tracking will remove" in result["reason"]
    # And the log line carries the decision, and the metrics count a relax on an unusable forecast
    values = metric_values(emf(capsys))
    assert (values["ActionRelax"], values["ForecastUsable"], values["MinCapacity"]) == ([1.0], [0.0], [2.0])
    assert "PromptScaleIn" not in values
