"""Issue 9: safe under real-world timing and faults. Each case through the functions' own handlers
against moto (Given/When/Then): late publication, late duplicate events, killed ticks, operators'
freezes, a GPU datapoint older than two weeks. The AWS-error cases are in test_faults.py."""

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
)
from faultinjection import Killed
from prescaler import service
from prescaler.aws.autoscaling import AutoScaling
from prescaler.aws.ledger import Ledger
from prescaler.aws.sagemaker import SageMaker
from template_values import event

pytestmark = pytest.mark.integration

HANDLERS = {name: load_handler(name) for name in ("prescale", "relax", "gpu_metric")}
PRESCALE_TIME = pd.Timestamp(event("prescale_scheduled.json")["time"])  # 09:55
RELAX_TIME = pd.Timestamp(event("relax_scheduled.json")["time"])  # 10:20
MINUTE = pd.Timedelta(minutes=1)


def invoke(name: str, evt: dict, ctx: Any) -> dict:
    return HANDLERS[name].lambda_handler(evt, ctx)


def tick(name: str, at: pd.Timestamp, replay: bool = True) -> dict:
    """The function's sample event at ``at`` (a replayed time, or a live one without the switch)."""
    file = {"prescale": "prescale_scheduled.json", "relax": "relax_scheduled.json",
            "gpu_metric": "gpu_metric_scheduled.json"}[name]
    evt = dict(event(file), time=at.isoformat())
    if not replay:
        evt.pop(service.REPLAY_FIELD, None)
    return evt


def set_min_capacity(world: World, n: int, suspended: dict[str, bool] | None = None) -> None:
    kw: dict[str, Any] = {"SuspendedState": suspended} if suspended else {}
    world.autoscaling.register_scalable_target(ServiceNamespace="sagemaker", ResourceId=RESOURCE_ID,
                                               ScalableDimension="sagemaker:variant:DesiredInstanceCount",
                                               MinCapacity=n, **kw)


def desired_instances(world: World) -> int:
    return int(world.sagemaker.describe_endpoint(EndpointName=ENDPOINT)["ProductionVariants"][0]
               ["DesiredInstanceCount"])


def raised_to_6(world: World, ctx: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The pre-scaler's raise 2 -> 6 at 09:55 (owned in the ledger) and 6 instances serving."""
    monkeypatch.setenv("DRY_RUN", "false")
    raised = invoke("prescale", tick("prescale", PRESCALE_TIME), ctx)
    assert (raised["outcome"], world.target()["MinCapacity"]) == ("applied", 6), raised
    world.set_instances(6)


# --------------------------------------------------------------------------------------------------
# case 1: late publication is not zero demand


def surge_until(world: World, last_minute: pd.Timestamp) -> None:
    """Hourly spikes of 13,200/min (8 min) over 2,400/min, and this hour a surge of 14,400/min (6
    instances at 2,400) from 10:00 that the pattern did not forecast; datapoints up to ``last_minute``."""
    history = hourly_spikes(last_minute.floor("min") + MINUTE)
    history[history.index >= pd.Timestamp("2024-05-15T10:00Z")] = 14_400
    put_invocations(world.cloudwatch, history)


@pytest.mark.parametrize("prompt", ["true", "false"])
def test_case1_datapoints_stopping_7_minutes_before_the_relax_tick_lower_nothing(
        prompt: str, world: World, scaler_env: dict, lambda_context: Any, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    # Given 6 instances serving 14,400 invocations/min after a raise to 6, and CloudWatch's
    # datapoints (Invocations and the instances' own metrics) stopping 7 minutes before the 10:20 tick
    monkeypatch.setenv("PROMPT_SCALE_IN", prompt)
    last = RELAX_TIME - 7 * MINUTE
    surge_until(world, last)
    put_heartbeat(world.cloudwatch, RELAX_TIME - 60 * MINUTE, last + MINUTE)
    raised_to_6(world, lambda_context, monkeypatch)
    capsys.readouterr()
    # When the relaxer ticks
    result = invoke("relax", tick("relax", RELAX_TIME), lambda_context)
    # Then nothing is lowered or scaled in: MinCapacity 6, 6 instances; a StaleData metric and a warning say why
    assert (result["action"], result["new_min_capacity"]) == ("hold", 6), result
    assert world.target()["MinCapacity"] == 6 and desired_instances(world) == 6
    assert "history is stale" in result["reason"]
    assert any(w.startswith("stale data: the newest Invocations minute is 2024-05-15 10:13 UTC, 7 min before")
               for w in result["warnings"]), result
    assert metric_values(emf(capsys))["StaleData"] == [1.0]


def test_case1_idle_minutes_while_the_instances_keep_publishing_are_zero_demand(
        world: World, scaler_env: dict, lambda_context: Any, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    # Given the same surge, but the instances kept publishing CPUUtilization up to the tick: the
    # last 7 minutes had no invocations (traffic gone), not a late publication
    last = RELAX_TIME - 7 * MINUTE
    surge_until(world, last)
    put_heartbeat(world.cloudwatch, RELAX_TIME - 60 * MINUTE, RELAX_TIME)
    raised_to_6(world, lambda_context, monkeypatch)
    capsys.readouterr()
    # When the relaxer ticks
    result = invoke("relax", tick("relax", RELAX_TIME), lambda_context)
    # Then the idle minutes are zeros: MinCapacity goes back to 2 and no StaleData is counted
    assert (result["action"], result["new_min_capacity"]) == ("relax", 2), result
    assert world.target()["MinCapacity"] == 2
    assert metric_values(emf(capsys))["StaleData"] == [0.0]


# --------------------------------------------------------------------------------------------------
# case 2: a late duplicate event


def test_case2_a_prescale_event_from_0955_delivered_at_1025_is_refused(
        world: World, scaler_env: dict, lambda_context: Any, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    # Given the spike is over and relaxed (MinCapacity 2), history up to 10:25, DryRun off
    monkeypatch.setenv("DRY_RUN", "false")
    put_invocations(world.cloudwatch, hourly_spikes(pd.Timestamp("2024-05-15T10:25Z")))
    evt = tick("prescale", PRESCALE_TIME, replay=False)  # the 09:55 scheduled event, as EventBridge sent it
    # When EventBridge redelivers it at 10:25
    at_wall_clock(monkeypatch, pd.Timestamp("2024-05-15T10:25:07Z"))
    late = invoke("prescale", evt, lambda_context)
    # Then it is refused: nothing read, nothing changed, a StaleEvent metric and a reason
    assert (late["action"], late["outcome"]) == ("hold", "stale_event"), late
    assert world.target()["MinCapacity"] == 2 and world.ledger_item() is None
    assert "30.1 min behind the clock" in late["reason"]
    assert metric_values(emf(capsys))["StaleEvent"] == [1.0]
    # And delivered on time (09:55:20) the same event raises 2 -> 6: the rule refuses lateness only
    at_wall_clock(monkeypatch, PRESCALE_TIME + pd.Timedelta(seconds=20))
    on_time = invoke("prescale", evt, lambda_context)
    assert (on_time["outcome"], world.target()["MinCapacity"]) == ("applied", 6), on_time


@pytest.mark.parametrize("offset_s", [-180, 150])
def test_case2_an_event_more_than_two_minutes_off_is_refused_by_every_function(
        offset_s: int, world: World, scaler_env: dict, lambda_context: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a wall clock 2.5 minutes after (or 3 minutes before) the events' time
    at_wall_clock(monkeypatch, PRESCALE_TIME + pd.Timedelta(seconds=offset_s))
    for function in ("prescale", "relax", "gpu_metric"):
        # When a function gets the event without the replay switch
        result = invoke(function, tick(function, PRESCALE_TIME, replay=False), lambda_context)
        # Then it is refused
        assert result["outcome"] == "stale_event", result


def test_case2_the_replay_switch_is_documented_where_the_sample_events_are() -> None:
    from template_values import ROOT

    readme = (ROOT / "events" / "README.md").read_text()
    assert f'"{service.REPLAY_FIELD}": true' in readme and "stale_event" in readme
    for name in ("prescale_scheduled.json", "relax_scheduled.json", "gpu_metric_scheduled.json"):
        assert event(name)[service.REPLAY_FIELD] is True
    assert service.REPLAY_FIELD not in event("scheduler_empty.json")


# --------------------------------------------------------------------------------------------------
# case 3: a tick killed between the ledger write and the API call


def _kill(monkeypatch: pytest.MonkeyPatch, cls: type, method: str) -> None:
    def killed(*_: Any, **__: Any) -> None:
        raise Killed(f"{cls.__name__}.{method}")

    monkeypatch.setattr(cls, method, killed)


def test_case3_a_relax_killed_before_register_scalable_target_is_retried_not_orphaned(
        world: World, scaler_env: dict, lambda_context: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a raise to 6 the pre-scaler owns, and the spike over at 10:20
    put_invocations(world.cloudwatch, hourly_spikes(RELAX_TIME + 10 * MINUTE))
    monkeypatch.setenv("PROMPT_SCALE_IN", "false")
    raised_to_6(world, lambda_context, monkeypatch)
    # When the relax tick dies after writing the ledger, before RegisterScalableTarget
    with monkeypatch.context() as m:
        _kill(m, AutoScaling, "set_min_capacity")
        with pytest.raises(Killed):
            invoke("relax", tick("relax", RELAX_TIME), lambda_context)
    assert world.target()["MinCapacity"] == 6
    # Then a tick while the killed one could still be running does nothing twice
    soon = invoke("relax", tick("relax", RELAX_TIME + MINUTE), lambda_context)
    assert (soon["outcome"], world.target()["MinCapacity"]) == ("duplicate", 6), soon
    # and the next one finds the intent never carried out, discards it, and relaxes 6 -> 2 itself
    later = invoke("relax", tick("relax", RELAX_TIME + 2 * MINUTE), lambda_context)
    assert (later["action"], later["old_min_capacity"], later["new_min_capacity"]) == ("relax", 6, 2), later
    assert world.target()["MinCapacity"] == 2
    item = world.ledger_item()
    assert item is not None and "intent" not in item and "owned_min_capacity" not in item


def test_case3_a_raise_killed_after_register_scalable_target_is_still_relaxed_by_the_watchdog(
        world: World, scaler_env: dict, lambda_context: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a 10-minute maximum hold and a raise tick that dies after RegisterScalableTarget (6 is
    # set) but before its confirmation reaches the ledger
    monkeypatch.setenv("DRY_RUN", "false")
    monkeypatch.setenv("MAX_HOLD_MINUTES", "10")
    put_invocations(world.cloudwatch, hourly_spikes(RELAX_TIME))
    with monkeypatch.context() as m:
        _kill(m, Ledger, "confirm")
        with pytest.raises(Killed):
            invoke("prescale", tick("prescale", PRESCALE_TIME), lambda_context)
    assert world.target()["MinCapacity"] == 6 and "owned_min_capacity" not in world.ledger_item()  # type: ignore[operator]
    # When the relaxer ticks 24 minutes after the raise, 11 after demand last needed its 6 (the
    # watchdog counts a raise held from then: 10:08, the spike being 10:00-10:07)
    result = invoke("relax", tick("relax", PRESCALE_TIME + 24 * MINUTE), lambda_context)
    # Then the intent is confirmed (6 is the pre-scaler's, since 09:55) and the watchdog lowers it
    assert result["action"] == "relax" and "watchdog" in result["reason"], result
    assert world.target()["MinCapacity"] == 2


def test_case3_a_relax_killed_before_its_prompt_scale_in_finishes_on_the_next_tick(
        world: World, scaler_env: dict, lambda_context: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a raise to 6, 6 instances, the spike over, prompt scale-in on
    put_invocations(world.cloudwatch, hourly_spikes(RELAX_TIME + 10 * MINUTE))
    put_heartbeat(world.cloudwatch, RELAX_TIME - 30 * MINUTE, RELAX_TIME + 10 * MINUTE)
    raised_to_6(world, lambda_context, monkeypatch)
    # When the relax tick dies after lowering MinCapacity, before UpdateEndpointWeightsAndCapacities
    with monkeypatch.context() as m:
        _kill(m, SageMaker, "set_desired_instances")
        with pytest.raises(Killed):
            invoke("relax", tick("relax", RELAX_TIME), lambda_context)
    assert (world.target()["MinCapacity"], desired_instances(world)) == (2, 6)
    # Then the next tick asks for the 2 instances demand needs
    result = invoke("relax", tick("relax", RELAX_TIME + MINUTE), lambda_context)
    assert result["prompt_scale_in"] == "applied", result
    assert desired_instances(world) == 2


# --------------------------------------------------------------------------------------------------
# case 4: operators' freezes (SuspendedState)


def test_case4_scale_in_suspended_no_relax_and_no_prompt_scale_in(
        world: World, scaler_env: dict, lambda_context: Any, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    # Given a raise to 6, 6 instances, the spike over, and an operator's DynamicScalingInSuspended
    put_invocations(world.cloudwatch, hourly_spikes(RELAX_TIME + 10 * MINUTE))
    raised_to_6(world, lambda_context, monkeypatch)
    set_min_capacity(world, 6, {"DynamicScalingInSuspended": True})
    capsys.readouterr()
    # When the relaxer ticks
    result = invoke("relax", tick("relax", RELAX_TIME), lambda_context)
    # Then nothing is lowered or scaled in, and the result says why
    assert (result["action"], result["outcome"]) == ("hold", "suspended"), result
    assert "DynamicScalingInSuspended=true" in result["reason"]
    assert world.target()["MinCapacity"] == 6 and desired_instances(world) == 6
    assert metric_values(emf(capsys))["Suspended"] == [1.0]
    # And the operator's flag is still there
    assert world.target()["SuspendedState"]["DynamicScalingInSuspended"] is True


@pytest.mark.parametrize(("flag", "raises"), [("DynamicScalingOutSuspended", False),
                                              ("ScheduledScalingSuspended", False),
                                              ("DynamicScalingInSuspended", True)])
def test_case4_scale_out_or_scheduled_scaling_suspended_no_raise(
        flag: str, raises: bool, world: World, scaler_env: dict, lambda_context: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the 10:00 spike forecast at 09:55 and an operator's suspension
    monkeypatch.setenv("DRY_RUN", "false")
    put_invocations(world.cloudwatch, hourly_spikes(PRESCALE_TIME))
    set_min_capacity(world, 2, {flag: True})
    # When the pre-scaler ticks
    result = invoke("prescale", tick("prescale", PRESCALE_TIME), lambda_context)
    # Then it raises only when scale-out is allowed (scale-in suspension does not stop a raise)
    if raises:
        assert (result["outcome"], world.target()["MinCapacity"]) == ("applied", 6), result
    else:
        assert (result["outcome"], world.target()["MinCapacity"]) == ("suspended", 2), result
        assert f"{flag}=true" in result["reason"] and "raise MinCapacity 2 -> 6" in result["reason"]


def test_case4_scheduled_scaling_suspended_also_stops_a_relax(
        world: World, scaler_env: dict, lambda_context: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    put_invocations(world.cloudwatch, hourly_spikes(RELAX_TIME + 10 * MINUTE))
    raised_to_6(world, lambda_context, monkeypatch)
    set_min_capacity(world, 6, {"ScheduledScalingSuspended": True})
    result = invoke("relax", tick("relax", RELAX_TIME), lambda_context)
    assert (result["outcome"], world.target()["MinCapacity"]) == ("suspended", 6), result


# --------------------------------------------------------------------------------------------------
# case 7: a GPU datapoint older than two weeks


def test_case7_a_gpu_datapoint_older_than_14_days_is_dropped_with_a_warning(
        aws: None, monkeypatch: pytest.MonkeyPatch, lambda_context: Any, capsys: pytest.CaptureFixture[str]) -> None:
    # Given a GPUUtilization datapoint at 10:03 on 2024-05-15, replayed on 2024-05-30 (15 days later)
    world = build_world("ml.g4dn.xlarge")
    when = pd.Timestamp(event("gpu_metric_scheduled.json")["time"])
    put_gauge(world.cloudwatch, "/aws/sagemaker/Endpoints", "GPUUtilization", when - 2 * MINUTE, 64.0)
    monkeypatch.setenv("ENDPOINT_NAME", ENDPOINT)
    at_wall_clock(monkeypatch, when + pd.Timedelta(days=15))
    # When the GPU metric function ticks on the replayed event
    result = invoke("gpu_metric", event("gpu_metric_scheduled.json"), lambda_context)
    # Then the point is not sent (PutMetricData would reject the call), and the result says so
    assert (result["action"], result["outcome"]) == ("hold", "stale_data"), result
    assert "older than 14 days" in result["reason"]
    assert metric_values(emf(capsys))["StaleData"] == [1.0]
    published = world.cloudwatch.list_metrics(Namespace="SageMakerPrescaler")["Metrics"]
    assert published == []
    # And 13 days later it is sent
    at_wall_clock(monkeypatch, when + pd.Timedelta(days=13))
    again = invoke("gpu_metric", event("gpu_metric_scheduled.json"), lambda_context)
    assert again["outcome"] == "applied", again


# --------------------------------------------------------------------------------------------------
# case 5: throttling and service errors past botocore's retries (the full matrix: test_faults.py)


@pytest.mark.parametrize("operation", ["GetMetricData", "DescribeScalableTargets"])
def test_case5_throttled_past_botocores_retries_holds_with_a_reason_and_a_metric(
        operation: str, world: World, scaler_env: dict, lambda_context: Any, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from faultinjection import FAULTS_BY_NAME, Injector, no_backoff

    # Given a raise to 6 the pre-scaler owns, the spike over, and CloudWatch / Application Auto
    # Scaling throttling every attempt
    put_invocations(world.cloudwatch, hourly_spikes(RELAX_TIME + 10 * MINUTE))
    raised_to_6(world, lambda_context, monkeypatch)
    injector = Injector(operation, 1, FAULTS_BY_NAME["throttled"])
    injector.attach()
    capsys.readouterr()
    # When the relaxer ticks
    with no_backoff(monkeypatch):
        result = invoke("relax", tick("relax", RELAX_TIME), lambda_context)
    # Then botocore tried 3 times, the tick holds and says which call, and nothing is lowered
    assert injector.attempts == 3
    assert (result["action"], result["outcome"], result["aws_operation"]) == ("hold", "throttled", operation)
    assert "Throttling" in result["reason"] and world.target()["MinCapacity"] == 6
    assert metric_values(emf(capsys))["AwsThrottled"] == [1.0]
