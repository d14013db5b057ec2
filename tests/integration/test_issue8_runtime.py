"""Issue 8 at runtime, as AWS behaves and moto does not: permission errors of Application Auto Scaling,
the DryRun preflight, a raise written back by a stack update, lead time from MinCapacity-triggered
scale-outs, mixed-case endpoint names, and every alarm and dashboard widget of the template fed by a
metric some function really emits (exact dimension set). Given/When/Then."""

from __future__ import annotations

import importlib
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pytest
from awsworld import (
    ENDPOINT,
    RESOURCE_ID,
    TABLE,
    VARIANT,
    World,
    at_wall_clock,
    build_world,
    emf,
    hourly_spikes,
    load_handler,
    metric_values,
    put_gauge,
    put_invocations,
)
from botocore.stub import Stubber
from prescaler import fleet
from prescaler.aws.autoscaling import AutoScaling, PermissionDenied, ScalableTarget, lead_time_s
from template_values import dashboard, event, function_env, template

pytestmark = pytest.mark.integration

DIMENSION = "sagemaker:variant:DesiredInstanceCount"
PRESCALE_TIME = pd.Timestamp(event("prescale_scheduled.json")["time"])
RELAX_TIME = pd.Timestamp(event("relax_scheduled.json")["time"])
HANDLERS = {name: load_handler(name) for name in ("prescale", "relax", "gpu_metric")}

#: Application Auto Scaling validates the caller's permissions on the target service and CloudWatch on
#: every RegisterScalableTarget and answers a ValidationException "that lists the missing permissions"
#: (user guide, "Permissions validation for API calls on target resources"). AWS does not document the
#: exact wording; this one follows the issue's quote and names the actions the SageMaker check needs.
MISSING = ("User: arn:aws:sts::123456789012:assumed-role/prescaler-PrescaleFunctionRole/prescale is missing the "
           "following permissions: cloudwatch:PutMetricAlarm, cloudwatch:DescribeAlarms, cloudwatch:DeleteAlarms")


def _tick(t: pd.Timestamp, n: int = 0) -> dict:
    # a what-if at ``t``: the documented replay switch (a deployed schedule never sends it)
    return {"time": t.isoformat().replace("+00:00", "Z"), "id": f"tick-{n}", "detail-type": "Scheduled Event",
            "prescaler-replay": True}


def _seed(world: World, end: pd.Timestamp) -> None:
    put_invocations(world.cloudwatch, hourly_spikes(end.floor("min")))


class _Http:
    def __init__(self, status: int) -> None:
        self.status_code = status
        self.headers: dict = {}


#: the refusing hook's id (botocore unregisters a handler by it or by the handler itself)
REFUSE = "refuse-register"


def _refuse_register(world: World, code: str, message: str) -> list[dict]:
    """Make the handler's RegisterScalableTarget answer ``code``/``message`` (the real error shape)."""
    calls: list[dict] = []

    def refuse(params: dict, **_: Any) -> tuple[_Http, dict]:
        calls.append(params)
        return _Http(400), {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": 400}}

    world.autoscaling.meta.events.register("before-call.application-autoscaling.RegisterScalableTarget", refuse,
                                           unique_id=REFUSE)
    return calls


def _count_register(world: World) -> list[dict]:
    calls: list[dict] = []

    def count(params: dict, **_: Any) -> None:
        calls.append(dict(params))  # the API parameters as the caller sent them

    world.autoscaling.meta.events.register("provide-client-params.application-autoscaling.RegisterScalableTarget",
                                           count)
    return calls


# --------------------------------------------------------------------------------------------------
# section 1: permission_denied is its own outcome, raised, never deferred


def test_issue8_validation_exception_naming_missing_permissions_is_permission_denied_not_deferred() -> None:
    # Given Application Auto Scaling refusing the call for missing permissions (real error shape)
    import boto3

    aas = boto3.client("application-autoscaling", region_name="us-east-1")
    target = ScalableTarget(RESOURCE_ID, 2, 8)
    with Stubber(aas) as stub:
        stub.add_client_error("register_scalable_target", service_error_code="ValidationException",
                              service_message=MISSING, http_status_code=400)
        # When MinCapacity is registered, Then it is PermissionDenied naming the actions (not "deferred")
        with pytest.raises(PermissionDenied) as raised:
            AutoScaling(aas).set_min_capacity(target, 6)
    assert raised.value.actions == ["cloudwatch:DeleteAlarms", "cloudwatch:DescribeAlarms",
                                    "cloudwatch:PutMetricAlarm"]
    assert str(raised.value).startswith("permission_denied: RegisterScalableTarget refused with ValidationException")
    # while a ValidationException about the endpoint's status is still deferred to the next tick
    with Stubber(aas) as stub:
        stub.add_client_error("register_scalable_target", service_error_code="ValidationException",
                              service_message="Endpoint catalogue-tagger is in Updating status", http_status_code=400)
        assert AutoScaling(aas).set_min_capacity(target, 6).outcome == "deferred"


def test_issue8_a_raise_refused_for_permissions_fails_the_invocation_and_keeps_nothing(
        world: World, scaler_env: dict, lambda_context: Any, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    # Given a live pre-scaler before a spike whose role lacks the CloudWatch permissions
    monkeypatch.setenv("DRY_RUN", "false")
    _seed(world, PRESCALE_TIME)
    calls = _refuse_register(world, "ValidationException", MISSING)
    # When it ticks, Then the invocation fails (Errors alarm, failure queue) with permission_denied
    with pytest.raises(PermissionDenied, match="cloudwatch:PutMetricAlarm"):
        HANDLERS["prescale"].lambda_handler(event("prescale_scheduled.json"), lambda_context)
    assert len(calls) == 1  # tried once, not retried as "deferred"
    # and nothing is claimed: MinCapacity and the ledger's ownership are as before
    assert world.target()["MinCapacity"] == 2
    item = world.ledger_item()
    assert item is not None and "owned_min_capacity" not in item
    # and it says so in one line and two metrics (the stuck alarm counts it as a fault hold)
    values = metric_values(emf(capsys))
    assert values["PermissionDenied"] == [1.0] or values["PermissionDenied"] == 1.0
    assert values["FaultHold"] in (1.0, [1.0])
    lines = [r.getMessage() for r in caplog.records
             if r.levelname == "ERROR" and r.name != "aws_lambda_powertools.tracing.tracer"]
    assert len(lines) == 1 and "permission_denied" in lines[0]


# --------------------------------------------------------------------------------------------------
# section 1: DryRun preflight, at most once an hour


def test_issue8_dry_run_proves_hourly_that_it_could_act(
        world: World, scaler_env: dict, lambda_context: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a pre-scaler in DryRun with history
    monkeypatch.setenv("DRY_RUN", "true")
    _seed(world, PRESCALE_TIME)
    calls = _count_register(world)
    prescale = HANDLERS["prescale"].lambda_handler
    # When it ticks three times: now, a minute later, an hour and a minute later
    first = prescale(_tick(PRESCALE_TIME, 1), lambda_context)
    second = prescale(_tick(PRESCALE_TIME + pd.Timedelta(minutes=1), 2), lambda_context)
    assert len(calls) == 1
    third = prescale(_tick(PRESCALE_TIME + pd.Timedelta(minutes=61), 3), lambda_context)
    # Then it re-registered the CURRENT MinCapacity once per hour (a no-op for capacity) ...
    assert len(calls) == 2
    assert all(c["MinCapacity"] == 2 and "MaxCapacity" not in c for c in calls)
    # ... and reports can_apply on every tick, with the reason and the time of the proof
    for result in (first, second, third):
        assert result["can_apply"] is True and "accepted" in result["can_apply_reason"]
        assert result["outcome"] in ("dry_run", "hold")
    assert pd.Timestamp(second["preflight_at"]) == PRESCALE_TIME
    assert pd.Timestamp(third["preflight_at"]) == PRESCALE_TIME + pd.Timedelta(minutes=61)
    # and nothing changed
    assert world.target()["MinCapacity"] == 2 and "version" not in (world.ledger_item() or {})


def test_issue8_dry_run_reports_a_permission_gap_before_the_first_spike(
        world: World, scaler_env: dict, lambda_context: Any, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    # Given a pre-scaler in DryRun whose role lacks the CloudWatch permissions
    monkeypatch.setenv("DRY_RUN", "true")
    _seed(world, PRESCALE_TIME)
    _refuse_register(world, "ValidationException", MISSING)
    # When it ticks
    result = HANDLERS["prescale"].lambda_handler(event("prescale_scheduled.json"), lambda_context)
    # Then it still decides (dry run), and says it could not apply, and why (CanApply 0 for the alarm)
    assert result["outcome"] == "dry_run" and result["can_apply"] is False
    assert "cloudwatch:PutMetricAlarm" in result["can_apply_reason"]
    assert metric_values(emf(capsys))["CanApply"] in (0.0, [0.0])
    item = world.ledger_item()
    assert item is not None and item["preflight_prescale_can_apply"] == {"BOOL": False}


def test_issue8_a_preflight_does_not_block_the_first_real_raise(
        world: World, scaler_env: dict, lambda_context: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a ledger item holding only a DryRun preflight
    monkeypatch.setenv("DRY_RUN", "true")
    _seed(world, PRESCALE_TIME)
    HANDLERS["prescale"].lambda_handler(_tick(PRESCALE_TIME - pd.Timedelta(minutes=1)), lambda_context)
    # When DryRun is switched off and the pre-scaler ticks before the spike
    monkeypatch.setenv("DRY_RUN", "false")
    result = HANDLERS["prescale"].lambda_handler(event("prescale_scheduled.json"), lambda_context)
    # Then it raises (the first raise is not mistaken for a duplicate)
    assert (result["action"], result["outcome"], world.target()["MinCapacity"]) == ("raise", "applied", 6)


# --------------------------------------------------------------------------------------------------
# section 2: a stack update writes the baseline back during a raise


def test_issue8_a_raise_written_back_by_a_stack_update_is_reapplied_within_one_tick(
        world: World, scaler_env: dict, lambda_context: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a raise to 6 held for the 10:00 spike
    monkeypatch.setenv("DRY_RUN", "false")
    _seed(world, PRESCALE_TIME)
    prescale = HANDLERS["prescale"].lambda_handler
    assert prescale(_tick(PRESCALE_TIME, 1), lambda_context)["outcome"] == "applied"
    since = world.ledger_item()["owned_since"]  # type: ignore[index]
    # When a stack update (or a REVERT_DRIFT change set) writes the template's MinCapacity back
    world.autoscaling.register_scalable_target(
        ServiceNamespace="sagemaker", ResourceId=RESOURCE_ID, ScalableDimension=DIMENSION, MinCapacity=2, MaxCapacity=8)
    # Then the next tick re-applies the raise, says why, and keeps the raise's start for the watchdog
    result = prescale(_tick(PRESCALE_TIME + pd.Timedelta(minutes=1), 2), lambda_context)
    assert (result["action"], result["outcome"]) == ("raise", "reapplied"), result
    assert "written back" in result["reason"]
    assert world.target()["MinCapacity"] == 6
    assert world.ledger_item()["owned_since"] == since  # type: ignore[index]


def test_issue8_a_reverted_raise_no_spike_needs_any_more_is_released_not_reapplied(
        world: World, scaler_env: dict, lambda_context: Any, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    # Given a raise to 6 for the 10:00 spike, written back to 2 by a stack update after the spike
    monkeypatch.setenv("DRY_RUN", "false")
    _seed(world, PRESCALE_TIME)
    prescale = HANDLERS["prescale"].lambda_handler
    prescale(_tick(PRESCALE_TIME, 1), lambda_context)
    world.autoscaling.register_scalable_target(
        ServiceNamespace="sagemaker", ResourceId=RESOURCE_ID, ScalableDimension=DIMENSION, MinCapacity=2)
    capsys.readouterr()
    # When the pre-scaler ticks at 10:20, with no spike ahead
    result = prescale(_tick(RELAX_TIME, 2), lambda_context)
    # Then it does not raise again, and the ledger stops claiming the raise (no revert reported forever)
    assert result["action"] == "hold" and world.target()["MinCapacity"] == 2
    item = world.ledger_item()
    assert item is not None and "owned_min_capacity" not in item
    assert metric_values(emf(capsys)).get("MinCapacityReverted") in (1.0, [1.0])
    prescale(_tick(RELAX_TIME + pd.Timedelta(minutes=1), 3), lambda_context)
    assert "MinCapacityReverted" not in metric_values(emf(capsys))


def test_issue8_an_operators_other_value_is_not_mistaken_for_a_stack_update(
        world: World, scaler_env: dict, lambda_context: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a raise to 6, then an operator setting MinCapacity 7 by hand
    monkeypatch.setenv("DRY_RUN", "false")
    _seed(world, PRESCALE_TIME)
    HANDLERS["prescale"].lambda_handler(_tick(PRESCALE_TIME, 1), lambda_context)
    world.autoscaling.register_scalable_target(
        ServiceNamespace="sagemaker", ResourceId=RESOURCE_ID, ScalableDimension=DIMENSION, MinCapacity=7)
    # When the pre-scaler ticks, Then it leaves the operator's value alone
    result = HANDLERS["prescale"].lambda_handler(_tick(PRESCALE_TIME + pd.Timedelta(minutes=1), 2), lambda_context)
    assert result["outcome"] != "reapplied" and world.target()["MinCapacity"] == 7


# --------------------------------------------------------------------------------------------------
# section 4: lead time from every successful scale-out, MinCapacity-triggered ones included


def _activity(cause: str, description: str, start: datetime, seconds: float, status: str = "Successful") -> dict:
    # the shape and texts of AWS's examples (Application Auto Scaling user guide, "Scaling activities";
    # SageMaker developer guide's failed MinCapacity example: Cause "minimum capacity was set to 110")
    return {"ActivityId": f"a-{seconds}", "ServiceNamespace": "sagemaker", "ResourceId": RESOURCE_ID,
            "ScalableDimension": "sagemaker:variant:DesiredInstanceCount", "Description": description,
            "Cause": cause, "StartTime": start, "EndTime": start + pd.Timedelta(seconds=seconds).to_pytimedelta(),
            "StatusCode": status, "StatusMessage": "Successfully set desired instance count to 6. Change successfully "
                                                   "fulfilled by sagemaker."}


def test_issue8_lead_time_is_learned_from_minimum_capacity_scale_outs() -> None:
    import boto3

    aas = boto3.client("application-autoscaling", region_name="us-east-1")
    start = datetime(2026, 3, 2, 9, 55, tzinfo=UTC)
    with Stubber(aas) as stub:
        stub.add_response("describe_scaling_activities", {"ScalingActivities": [
            # a MinCapacity raise (ours): no "from X to Y" in AWS's text
            _activity("minimum capacity was set to 6", "Setting desired instance count to 6.", start, 420),
            # a scale-in after a lowered maximum: not a scale-out
            _activity("maximum capacity was set to 2", "Setting desired instance count to 2.", start, 30),
        ]})
        activities = AutoScaling(aas).activities(RESOURCE_ID)
    assert [a.scale_out for a in activities] == [True, False]
    assert activities[0].to_capacity == 6
    # Then the lead time is that raise's duration, not the default
    assert lead_time_s(activities, 300) == (420, "p90 of 1 scale-outs")


# --------------------------------------------------------------------------------------------------
# section 3: mixed-case endpoint names


def test_issue8_a_mixed_case_endpoint_reads_its_metrics_under_its_own_spelling(
        aws: None, monkeypatch: pytest.MonkeyPatch, lambda_context: Any) -> None:
    # Given an endpoint created as "Catalogue-Tagger", its target and metrics under that spelling
    name = "Catalogue-Tagger"
    world = build_world(endpoint=name)
    put_invocations(world.cloudwatch, hourly_spikes(PRESCALE_TIME.floor("min")), endpoint=name)
    for key, value in function_env("PrescaleFunction", ENDPOINT_NAME=name, LEDGER_TABLE_NAME=TABLE,
                                   AWS_ENDPOINT_URL="", HISTORY_DAYS="2", DRY_RUN="false").items():
        monkeypatch.setenv(key, value)
    # When the pre-scaler ticks before the spike
    result = HANDLERS["prescale"].lambda_handler(event("prescale_scheduled.json"), lambda_context)
    # Then it reads the history (not no_data) and raises the target of that name
    assert (result["action"], result["outcome"]) == ("raise", "applied"), result
    target = world.autoscaling.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"][0]
    assert (target["ResourceId"], target["MinCapacity"]) == (f"endpoint/{name}/variant/{VARIANT}", 6)


# --------------------------------------------------------------------------------------------------
# section 4: every alarm and widget queries a metric some function emits (exact dimension set)

Metric = tuple[str, str, frozenset[tuple[str, str]]]


def _emitted_emf(blobs: list[dict]) -> set[Metric]:
    out = set()
    for blob in blobs:
        for directive in blob["_aws"]["CloudWatchMetrics"]:
            for dim_set in directive["Dimensions"]:
                dims = frozenset((d, str(blob[d])) for d in dim_set)
                for m in directive["Metrics"]:
                    out.add((directive["Namespace"], m["Name"], dims))
    return out


def _params(component: str = "") -> dict[str, str]:
    return {"EndpointName": ENDPOINT, "VariantName": VARIANT, "MetricsNamespace": "SageMakerPrescaler",
            "AWS::Region": "us-east-1", "InferenceComponentName": component}


def _resolve(value: Any, params: dict[str, str]) -> str:
    if isinstance(value, dict) and "Ref" in value:
        return params[value["Ref"]]
    return str(value)


def _dimensions(props: dict, component: str) -> list[dict]:
    """An alarm's Dimensions for a stack with (or without) an inference component: an entry under
    ``Fn::If [HasComponent, dimension, AWS::NoValue]`` exists only with one."""
    out = []
    for d in props.get("Dimensions", []):
        if "Fn::If" in d:
            condition, yes, no = d["Fn::If"]
            assert condition == "HasComponent" and no == {"Ref": "AWS::NoValue"}, d
            if not component:
                continue
            d = yes
        out.append(d)
    return out


def _queried(component: str = "") -> dict[str, Metric]:
    """Every (namespace, metric, dimensions) an alarm or dashboard widget of template.yaml queries,
    for a stack without (or, ``component``, with) InferenceComponentName."""
    params = _params(component)
    out: dict[str, Metric] = {}
    for logical_id, res in template()["Resources"].items():
        if res["Type"] == "AWS::CloudWatch::Alarm":
            p = res["Properties"]
            dimensions = _dimensions(p, component)
            if any(isinstance(d["Value"], dict) and d["Value"].get("Ref") not in params for d in dimensions):
                continue  # AWS's metrics of this stack's resources (Lambda Errors, SQS): AWS emits them
            dims = frozenset((d["Name"], _resolve(d["Value"], params)) for d in dimensions)
            out[logical_id] = (_resolve(p["Namespace"], params), p["MetricName"], dims)
    for w, widget in enumerate(dashboard(params)["widgets"]):
        for row in widget["properties"]["metrics"]:
            fields = [f for f in row if not isinstance(f, dict)]
            if not fields:
                continue  # a SEARCH expression (the fleet's widgets): tests/unit/test_fleet_template.py
            ns, name, rest = fields[0], fields[1], fields[2:]
            out[f"widget{w}:{name}"] = (ns, name, frozenset(zip(rest[::2], rest[1::2], strict=True)))
    return out


@pytest.fixture
def lambda_like_observability(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Build Powertools' objects the way Lambda does: AFTER the template's environment is set
    (POWERTOOLS_SERVICE_NAME included), and hand them to the service and freshly loaded handlers."""
    from prescaler import fanout, fleet, observability, service

    def build(function_logical_id: str) -> dict[str, Any]:
        env = function_env(function_logical_id, ENDPOINT_NAME=ENDPOINT, LEDGER_TABLE_NAME=TABLE, AWS_ENDPOINT_URL="",
                           HISTORY_DAYS="2")
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        fresh = importlib.reload(observability)
        for attr in ("logger", "metrics", "tracer"):
            monkeypatch.setattr(service, attr, getattr(fresh, attr))
        for attr in ("logger", "metrics"):
            monkeypatch.setattr(fleet, attr, getattr(fresh, attr))
            monkeypatch.setattr(fanout, attr, getattr(fresh, attr))
        return {name: load_handler(name) for name in ("prescale", "relax", "gpu_metric")}

    yield build
    importlib.reload(observability)


def test_issue8_every_alarm_and_widget_queries_a_metric_a_function_emits(
        aws: None, monkeypatch: pytest.MonkeyPatch, lambda_context: Any, capsys: pytest.CaptureFixture[str],
        lambda_like_observability: Any) -> None:
    world = build_world("ml.g4dn.xlarge")
    # history up to the relax tick: history that stopped at the prescale tick is stale by then (issue 9)
    _seed(world, RELAX_TIME)
    blobs: list[dict] = []

    def run(logical_id: str, name: str, evt: dict, **env: str) -> Any:
        handlers = lambda_like_observability(logical_id)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        try:
            return handlers[name].lambda_handler(evt, lambda_context)
        except PermissionDenied:
            return None
        finally:
            blobs.extend(emf(capsys))

    # the ticks an operator's first weeks see: DryRun, a raise, a stack-update revert, a relax, a
    # refused raise, an endpoint that is updating, an empty history, a missing target, the GPU metric
    run("PrescaleFunction", "prescale", _tick(PRESCALE_TIME, 1), DRY_RUN="true")
    run("PrescaleFunction", "prescale", _tick(PRESCALE_TIME, 2), DRY_RUN="false")
    world.autoscaling.register_scalable_target(ServiceNamespace="sagemaker", ResourceId=RESOURCE_ID,
                                               ScalableDimension=DIMENSION, MinCapacity=2)
    run("PrescaleFunction", "prescale", _tick(PRESCALE_TIME + pd.Timedelta(minutes=1), 3), DRY_RUN="false")
    run("RelaxFunction", "relax", _tick(RELAX_TIME, 4), DRY_RUN="false")
    put_invocations(world.cloudwatch, hourly_spikes(PRESCALE_TIME + pd.Timedelta(hours=1), days=1 / 24))
    refuse = _refuse_register(world, "ValidationException", MISSING)
    run("PrescaleFunction", "prescale", _tick(PRESCALE_TIME + pd.Timedelta(hours=1), 5), DRY_RUN="false")
    assert refuse, "the refused raise was attempted"
    world.autoscaling.meta.events.unregister("before-call.application-autoscaling.RegisterScalableTarget",
                                             unique_id=REFUSE)

    def updating(parsed: dict | None = None, **_: Any) -> None:
        if parsed is not None and "EndpointStatus" in parsed:
            parsed["EndpointStatus"] = "Updating"

    world.sagemaker.meta.events.register("after-call.sagemaker.DescribeEndpoint", updating)
    run("PrescaleFunction", "prescale", _tick(PRESCALE_TIME, 6), DRY_RUN="false")
    world.sagemaker.meta.events.unregister("after-call.sagemaker.DescribeEndpoint", updating)
    run("PrescaleFunction", "prescale", _tick(PRESCALE_TIME + pd.Timedelta(days=20), 7), DRY_RUN="false")
    minute = PRESCALE_TIME.floor("min") - pd.Timedelta(minutes=2)
    put_gauge(world.cloudwatch, "/aws/sagemaker/Endpoints", "GPUUtilization", minute, 50.0)
    at_wall_clock(monkeypatch, PRESCALE_TIME)  # PutMetricData refuses points older than 14 days (issue 9)
    run("GpuMetricFunction", "gpu_metric", _tick(PRESCALE_TIME, 8))
    world.autoscaling.deregister_scalable_target(ServiceNamespace="sagemaker", ResourceId=RESOURCE_ID,
                                                 ScalableDimension="sagemaker:variant:DesiredInstanceCount")
    run("PrescaleFunction", "prescale", _tick(PRESCALE_TIME, 9), DRY_RUN="false")
    # the same endpoint as a one-member fleet: the fleet tick's totals (issue 11)
    fleet.clear_cache()
    run("PrescaleFunction", "prescale", _tick(PRESCALE_TIME, 10), DRY_RUN="false", FLEET_MODE="list",
        FLEET_ENDPOINTS=ENDPOINT)
    # the same fleet of two over FLEET_SHARD_SIZE=1, fanned out on SQS: the dispatcher's totals, and a
    # shard that reaches its worker too late (refused as stale)
    from test_fanout import make_queue, receive, sqs_event

    url, arn, _ = make_queue()
    fleet.clear_cache()
    scheduled = {k: v for k, v in _tick(PRESCALE_TIME, 11).items() if k != "prescaler-replay"}
    fanned = {"DRY_RUN": "false", "FLEET_MODE": "list", "FLEET_ENDPOINTS": f"{ENDPOINT}, {ENDPOINT}/Blue",
              "FLEET_SHARD_SIZE": "1", "FLEET_SHARD_QUEUE_URL": url}
    assert run("PrescaleFunction", "prescale", scheduled, **fanned)["dispatched"]["shards"] == 2
    at_wall_clock(monkeypatch, PRESCALE_TIME + pd.Timedelta(minutes=5))
    assert run("PrescaleFunction", "prescale", sqs_event(receive(url)[:1], arn), **fanned)["batchItemFailures"]

    # a single-component stack (InferenceComponentName) on the same endpoint: a DryRun tick and a raise
    world.components.add("tagger-copies", ENDPOINT, copies=1, min_capacity=1)
    put_invocations(world.cloudwatch, hourly_spikes(RELAX_TIME.floor("min")),
                    dims=[{"Name": "InferenceComponentName", "Value": "tagger-copies"}])
    before = len(blobs)
    run("PrescaleFunction", "prescale", _tick(PRESCALE_TIME, 11), DRY_RUN="true", FLEET_MODE="single",
        INFERENCE_COMPONENT_NAME="tagger-copies", BASELINE_MIN_CAPACITY="1")
    raised = run("PrescaleFunction", "prescale", _tick(PRESCALE_TIME, 12), DRY_RUN="false", FLEET_MODE="single",
                 INFERENCE_COMPONENT_NAME="tagger-copies", BASELINE_MIN_CAPACITY="1")
    assert (raised["outcome"], raised["inference_component_name"]) == ("applied", "tagger-copies"), raised
    component_emitted = _emitted_emf(blobs[before:])
    emitted = _emitted_emf(blobs[:before])
    # metrics published with PutMetricData (GPUUtilizationPerGPU), as CloudWatch lists them
    for m in world.cloudwatch.list_metrics(Namespace="SageMakerPrescaler")["Metrics"]:
        dims = frozenset((d["Name"], d["Value"]) for d in m["Dimensions"])
        emitted.add(("SageMakerPrescaler", m["MetricName"], dims))
    queried = _queried()
    assert len(queried) >= 15  # the dashboard's rows and the alarms were found
    missing = {k: q for k, q in queried.items() if not q[0].startswith("AWS/") and q not in emitted}
    assert missing == {}, f"queried but never emitted with that exact dimension set: {missing}"
    # AWS's own metrics are queried with the dimensions SageMaker publishes them with
    for k, q in queried.items():
        if q[0] in ("AWS/SageMaker", "/aws/sagemaker/Endpoints"):
            assert {d for d, _ in q[2]} == {"EndpointName", "VariantName"}, k

    # With InferenceComponentName: every alarm and per-stack widget of our namespace queries the
    # dimension set the component's ticks emit (the GPU metric stays the variant's), each metric one
    # the functions emit, and the component's Invocations by InferenceComponentName only
    component_dims = {dims for _, _, dims in component_emitted}
    assert component_dims == {frozenset({("EndpointName", ENDPOINT), ("VariantName", VARIANT),
                                         ("InferenceComponentName", "tagger-copies")})}
    names = {name for _, name, _ in emitted | component_emitted}
    for k, (ns, name, dims) in _queried("tagger-copies").items():
        if ns == "SageMakerPrescaler" and name != "GPUUtilizationPerGPU" and dims:  # (the fleet totals: none)
            assert dims in component_dims and name in names, k
        if (ns, name) == ("AWS/SageMaker", "Invocations"):
            assert dims == {("InferenceComponentName", "tagger-copies")}, k


# --------------------------------------------------------------------------------------------------
# section 6: FaultHold feeds the stuck alarm: 1 for a fault, 0 for a healthy tick or an empty history


def _fault_hold(capsys: pytest.CaptureFixture[str]) -> list[float]:
    values = metric_values(emf(capsys)).get("FaultHold")
    return values if isinstance(values, list) else [values]


def test_issue8_fault_holds_are_counted_for_the_stuck_alarm(
        world: World, scaler_env: dict, lambda_context: Any, capsys: pytest.CaptureFixture[str]) -> None:
    prescale = HANDLERS["prescale"].lambda_handler
    # a healthy tick: 0
    _seed(world, PRESCALE_TIME)
    prescale(_tick(PRESCALE_TIME, 1), lambda_context)
    assert _fault_hold(capsys) == [0.0]
    # an empty history (a quiet endpoint, not a fault): 0
    result = prescale(_tick(PRESCALE_TIME + pd.Timedelta(days=20), 2), lambda_context)
    assert result["outcome"] == "no_data" and _fault_hold(capsys) == [0.0]

    # metrics unreadable (CloudWatch answers an error for the query): 1
    def unreadable(parsed: dict | None = None, **_: Any) -> None:
        for r in (parsed or {}).get("MetricDataResults", []):
            r["StatusCode"] = "InternalError"
            r["Messages"] = [{"Code": "InternalError", "Value": "Internal error"}]

    world.cloudwatch.meta.events.register("after-call.cloudwatch.GetMetricData", unreadable)
    result = prescale(_tick(PRESCALE_TIME, 3), lambda_context)
    world.cloudwatch.meta.events.unregister("after-call.cloudwatch.GetMetricData", unreadable)
    assert result["outcome"] == "no_data" and _fault_hold(capsys) == [1.0]
    # the scalable target missing: 1
    world.autoscaling.deregister_scalable_target(ServiceNamespace="sagemaker", ResourceId=RESOURCE_ID,
                                                 ScalableDimension=DIMENSION)
    result = prescale(_tick(PRESCALE_TIME, 4), lambda_context)
    assert result["outcome"] == "target_missing" and _fault_hold(capsys) == [1.0]
