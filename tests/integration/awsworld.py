"""Helpers and fixtures for adapter and handler tests against moto (and botocore Stubber where moto is lenient).

Resources are built from template.yaml's values (``template_values``): the scalable target's
MinCapacity/MaxCapacity, the ledger table's key and billing mode, the functions' environment.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import pytest
from botocore.awsrequest import AWSResponse, HTTPHeaders
from moto import mock_aws
from moto.core.botocore_stubber import BotocoreStubber

sys.path.insert(0, str(Path(__file__).parent))

import template_values as tv
from prescaler.aws import clients
from prescaler.observability import metrics

ENDPOINT = "catalogue-tagger"
VARIANT = str(tv.default("VariantName"))
RESOURCE_ID = f"endpoint/{ENDPOINT}/variant/{VARIANT}"
TABLE = "sagemaker-prescaler-ledger"
REGION = "us-east-1"
#: moto's GetMetricData is O(periods x datapoints): the handler tests read 2 days (HISTORY_DAYS) of
#: 25 hours of history instead of 14 days, which keeps a tick under a few seconds. The forecast
#: needs 24 hours and two cycles of a pattern.
HISTORY_DAYS = 2
HISTORY_HOURS = 25


@pytest.fixture(autouse=True)
def _aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials, a region, no tracing, a metrics namespace; no real AWS is ever reached."""
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION, "POWERTOOLS_TRACE_DISABLED": "1",
        "POWERTOOLS_METRICS_NAMESPACE": str(tv.default("MetricsNamespace")),
        "POWERTOOLS_SERVICE_NAME": "prescaler-test",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture(autouse=True)
def _reset_metrics() -> Iterator[None]:
    """Powertools keeps metrics and the cold-start flag in module state: reset between tests."""
    from aws_lambda_powertools.metrics.provider import cold_start

    metrics.clear_metrics()
    metrics.clear_default_dimensions()
    cold_start.is_cold_start = True
    yield
    metrics.clear_metrics()


@pytest.fixture
def lambda_context() -> Any:
    @dataclass
    class LambdaContext:
        function_name: str = "prescaler-test"
        function_version: str = "$LATEST"
        memory_limit_in_mb: int = 512
        invoked_function_arn: str = f"arn:aws:lambda:{REGION}:123456789012:function:prescaler-test"
        aws_request_id: str = "52fdfc07-2182-154f-163f-5f0f9a621d72"

        def get_remaining_time_in_millis(self) -> int:
            return 60_000

    return LambdaContext()


@pytest.fixture
def aws() -> Iterator[None]:
    """moto for every service; the cached client factory is cleared on both sides."""
    clients.client.cache_clear()
    with mock_aws():
        yield
    clients.client.cache_clear()


def put_invocations(cw: Any, series: pd.Series, endpoint: str = ENDPOINT, variant: str = VARIANT,
                    metric: str = "Invocations", namespace: str = "AWS/SageMaker",
                    dims: list[dict[str, str]] | None = None) -> None:
    """Write a per-minute series the way SageMaker does: one StatisticSet per minute with traffic
    (SampleCount = Sum = n, Minimum = Maximum = 1, so Sum and Average differ), nothing for idle minutes."""
    dims = dims or [{"Name": "EndpointName", "Value": endpoint}, {"Name": "VariantName", "Value": variant}]
    data = [{"MetricName": metric, "Dimensions": dims, "Timestamp": ts.to_pydatetime(),
             "StatisticValues": {"SampleCount": float(v), "Sum": float(v), "Minimum": 1.0, "Maximum": 1.0},
             "Unit": "None"} for ts, v in series.items() if v > 0]
    for i in range(0, len(data), 1000):
        cw.put_metric_data(Namespace=namespace, MetricData=data[i:i + 1000])


def put_gauge(cw: Any, namespace: str, metric: str, minute: pd.Timestamp, value: float,
              endpoint: str = ENDPOINT, variant: str = VARIANT) -> None:
    """One plain datapoint (GPUUtilization, ModelLatency) with both SageMaker dimensions."""
    cw.put_metric_data(Namespace=namespace, MetricData=[{
        "MetricName": metric, "Timestamp": minute.to_pydatetime(), "Value": float(value),
        "Dimensions": [{"Name": "EndpointName", "Value": endpoint}, {"Name": "VariantName", "Value": variant}]}])


def put_heartbeat(cw: Any, start: pd.Timestamp, end: pd.Timestamp, cpu: float = 20.0) -> None:
    """CPUUtilization every minute in ``[start, end)``: what SageMaker's instances publish whether or
    not there is traffic (the sign that a minute without Invocations is idle, not late)."""
    minutes = pd.date_range(start.floor("min"), end.floor("min"), freq="min", inclusive="left")
    data = [{"MetricName": "CPUUtilization", "Timestamp": m.to_pydatetime(), "Value": cpu,
             "Dimensions": [{"Name": "EndpointName", "Value": ENDPOINT}, {"Name": "VariantName", "Value": VARIANT}]}
            for m in minutes]
    for i in range(0, len(data), 1000):
        cw.put_metric_data(Namespace="/aws/sagemaker/Endpoints", MetricData=data[i:i + 1000])


def hourly_spikes(end: pd.Timestamp, days: float = HISTORY_HOURS / 24, base: float = 2400, spike: float = 13200,
                  spike_minutes: int = 8) -> pd.Series:
    """Per-minute demand: ``base`` per minute with a ``spike`` at minutes 0..spike_minutes-1 of every hour."""
    index = pd.date_range(end - pd.Timedelta(days=days), end, freq="min", inclusive="left", tz="UTC")
    values = np.where(index.minute < spike_minutes, spike, base).astype(float)
    return pd.Series(values, index=index)


@dataclass
class World:
    """A moto account with the endpoint, its scalable target and the ledger table."""

    sagemaker: Any
    autoscaling: Any
    cloudwatch: Any
    dynamodb: Any
    activities: list[dict]
    #: the account's inference components (moto has none): see :class:`InferenceComponents`
    components: InferenceComponents

    def target(self) -> dict:
        return self.autoscaling.describe_scalable_targets(
            ServiceNamespace="sagemaker", ResourceIds=[RESOURCE_ID])["ScalableTargets"][0]

    def ledger_item(self) -> dict | None:
        return self.dynamodb.get_item(TableName=TABLE, Key={"scalable_target": {"S": RESOURCE_ID}}).get("Item")

    def set_instances(self, n: int) -> None:
        self.sagemaker.update_endpoint_weights_and_capacities(
            EndpointName=ENDPOINT, DesiredWeightsAndCapacities=[{"VariantName": VARIANT, "DesiredInstanceCount": n}])


def build_world(instance_type: str = "ml.g4dn.xlarge", endpoint: str = ENDPOINT) -> World:
    """Create the resources from the template's values (inside an active moto mock); ``endpoint`` is
    the endpoint's name as created (any case SageMaker accepts)."""
    t = tv.template()
    sm = clients.client("sagemaker")
    sm.create_model(ModelName="tagger", ExecutionRoleArn="arn:aws:iam::123456789012:role/sm",
                    PrimaryContainer={"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/tagger:1"})
    sm.create_endpoint_config(EndpointConfigName="tagger-config", ProductionVariants=[{
        "VariantName": VARIANT, "ModelName": "tagger", "InitialInstanceCount": int(tv.default("BaselineMinCapacity")),
        "InstanceType": instance_type}])
    sm.create_endpoint(EndpointName=endpoint, EndpointConfigName="tagger-config")

    st = t["Resources"]["ScalableTarget"]["Properties"]
    aas = clients.client("application-autoscaling")
    aas.register_scalable_target(
        # the template's variant branch (InferenceComponentName empty, its default)
        ServiceNamespace=st["ServiceNamespace"], ScalableDimension=st["ScalableDimension"]["Fn::If"][2],
        ResourceId=f"endpoint/{endpoint}/variant/{VARIANT}",
        MinCapacity=int(tv.default(st["MinCapacity"]["Ref"])), MaxCapacity=int(tv.default(st["MaxCapacity"]["Ref"])))

    table = t["Resources"]["LedgerTable"]["Properties"]
    ddb = clients.client("dynamodb")
    ddb.create_table(TableName=TABLE, AttributeDefinitions=table["AttributeDefinitions"],
                     KeySchema=table["KeySchema"], BillingMode=table["BillingMode"])

    # moto does not implement DescribeScalingActivities: answer it from a list the test controls, as
    # the HTTP response AWS sends (JSON 1.1, epoch-second times), so botocore parses it and its
    # retries and the fault-injection hooks (faultinjection.py) see a real HTTP exchange.
    activities: list[dict] = []

    def _activities(request: Any, **_: Any) -> AWSResponse:
        body = json.dumps({"ScalingActivities": [
            {k: (v.timestamp() if hasattr(v, "timestamp") else v) for k, v in a.items()} for a in activities]})
        return http_response(request.url, 200, body.encode(), {"Content-Type": "application/x-amz-json-1.1"}, request)

    aas.meta.events.register("before-send.application-auto-scaling.DescribeScalingActivities", _activities)
    return World(sm, aas, clients.client("cloudwatch"), ddb, activities, InferenceComponents(sm, aas))


class _Raw:
    """The ``raw`` of an AWSResponse: botocore reads the body through ``stream()``."""

    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.body


def _moto_unless_answered() -> None:
    """botocore calls *every* ``before-send`` handler and uses the first response; moto's would still
    run the request (changing its state, or raising for an action it lacks) after a test's hook
    answered it. A request a test answered (``answered_by_test``) is left alone by moto."""
    moto_call = BotocoreStubber.__call__
    if getattr(moto_call, "answered_by_test", False):
        return

    def call(self: BotocoreStubber, event_name: str, request: Any, **kwargs: Any) -> Any:
        if getattr(request, "answered_by_test", False):
            return None
        return moto_call(self, event_name, request, **kwargs)

    call.answered_by_test = True  # type: ignore[attr-defined]
    BotocoreStubber.__call__ = call  # type: ignore[method-assign]


_moto_unless_answered()


def http_response(url: str, status: int, body: bytes, headers: dict[str, str], request: Any = None) -> AWSResponse:
    """An HTTP response as a ``before-send`` hook returns it instead of sending ``request`` (which is
    marked answered, so moto does not run it as well)."""
    if request is not None:
        request.answered_by_test = True
    return AWSResponse(url, status, HTTPHeaders({"x-amzn-RequestId": "4c6c3d5e-test", **headers}), _Raw(body))


@pytest.fixture
def world(aws: None) -> World:
    return build_world()


@pytest.fixture
def scaler_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The prescale/relax environment from the template's defaults, DryRun as the template says."""
    env = tv.function_env("PrescaleFunction", ENDPOINT_NAME=ENDPOINT, LEDGER_TABLE_NAME=TABLE, AWS_ENDPOINT_URL="",
                          HISTORY_DAYS=str(HISTORY_DAYS))
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def at_wall_clock(monkeypatch: pytest.MonkeyPatch, when: pd.Timestamp) -> None:
    """The functions' wall clock reads ``when`` (the event-age check, Scheduler's ``{}`` and the 14-day
    PutMetricData limit are against it): a what-if at that time."""
    from prescaler import service

    monkeypatch.setattr(service, "wall_clock", lambda: when)


def load_handler(name: str) -> ModuleType:
    """functions/<name>/app.py as a module of its own (the three are all called ``app``)."""
    path = tv.ROOT / "functions" / name / "app.py"
    spec = importlib.util.spec_from_file_location(f"handler_{name}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def emf(capsys: pytest.CaptureFixture[str]) -> list[dict]:
    """The EMF blobs Powertools printed (one JSON object per line with an ``_aws`` key)."""
    out = []
    for line in capsys.readouterr().out.splitlines():
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict) and "_aws" in obj:
            out.append(obj)
    return out


def metric_values(blobs: list[dict]) -> dict[str, Any]:
    """Metric name -> value across the EMF blobs."""
    out: dict[str, Any] = {}
    for blob in blobs:
        for directive in blob["_aws"]["CloudWatchMetrics"]:
            for m in directive["Metrics"]:
                out[m["Name"]] = blob[m["Name"]]
    return out


def scale_activity(activity_id: str, status: str, start: pd.Timestamp, end: pd.Timestamp | None,
                   frm: int | None, to: int, message: str = "") -> dict:
    """A DescribeScalingActivities entry in the real response shape: a MinCapacity raise reads
    "minimum capacity was set to N" (AWS's examples; no "from"), a policy's scale-out "... changing the
    desired capacity from X to Y." (``frm`` given: the policy's text; ``frm=None``: the MinCapacity one)."""
    cause = (f"minimum capacity was set to {to}" if frm is None else
             f"monitor alarm TargetTracking-{RESOURCE_ID}-AlarmHigh in state ALARM triggered policy "
             f"invocations-per-instance changing the desired capacity from {frm} to {to}.")
    a = {
        "ActivityId": activity_id, "ServiceNamespace": "sagemaker", "ResourceId": RESOURCE_ID,
        "ScalableDimension": "sagemaker:variant:DesiredInstanceCount",
        "Description": f"Setting desired instance count to {to}.",
        "Cause": cause,
        "StartTime": start.to_pydatetime(), "StatusCode": status,
    }
    if end is not None:
        a["EndTime"] = end.to_pydatetime()
    if message:
        a["StatusMessage"] = message
    return a


# --------------------------------------------------------------------------------------------------
# inference components: moto 5.x has none (no ListInferenceComponents / DescribeInferenceComponent /
# UpdateInferenceComponentRuntimeConfig, and Application Auto Scaling refuses the
# sagemaker:inference-component:DesiredCopyCount dimension). ``InferenceComponents`` answers exactly
# those calls, and ListTags on an inference component's ARN, as ``before-send`` hooks in the real
# wire format (JSON 1.1, epoch-second times, errors as ``__type`` + ``message``; SageMaker and
# Application Auto Scaling API references), so botocore parses them and its retries run; every other
# call (endpoints, variants' targets, CloudWatch, DynamoDB) goes to moto. Like AWS, it refuses a
# MinCapacity above MaxCapacity (moto would accept it) and a malformed request.

COMPONENT_DIMENSION = "sagemaker:inference-component:DesiredCopyCount"
ACCOUNT = "123456789012"
_EPOCH = pd.Timestamp("2026-03-01T00:00:00Z").timestamp()


@dataclass
class FakeComponent:
    """One inference component and (``min_capacity`` not None) its scalable target."""

    name: str
    endpoint: str
    variant: str
    copies: int
    tags: dict[str, str]
    min_capacity: int | None = None
    max_capacity: int = 8
    status: str = "InService"

    @property
    def arn(self) -> str:
        return f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:inference-component/{self.name.lower()}"


class InferenceComponents:
    """The account's inference components, served to the SageMaker and Application Auto Scaling
    clients of ``world`` (see the note above). ``calls`` records each answered operation."""

    def __init__(self, sagemaker: Any, autoscaling: Any) -> None:
        self.components: dict[str, FakeComponent] = {}
        self.calls: list[str] = []
        self.copy_updates: list[tuple[str, int]] = []
        for op in ("ListInferenceComponents", "DescribeInferenceComponent", "UpdateInferenceComponentRuntimeConfig",
                   "ListTags"):
            sagemaker.meta.events.register(f"before-send.sagemaker.{op}", self._sagemaker)
        for op in ("DescribeScalableTargets", "RegisterScalableTarget"):
            autoscaling.meta.events.register(f"before-send.application-auto-scaling.{op}", self._autoscaling)

    def add(self, name: str, endpoint: str, variant: str = VARIANT, copies: int = 1, tags: dict[str, str] | None = None,
            min_capacity: int | None = None, max_capacity: int = 8) -> FakeComponent:
        c = FakeComponent(name, endpoint, variant, copies, dict(tags or {}), min_capacity, max_capacity)
        self.components[name] = c
        return c

    @staticmethod
    def _answer(request: Any, body: dict, status: int = 200) -> AWSResponse:
        return http_response(request.url, status, json.dumps(body).encode(),
                             {"Content-Type": "application/x-amz-json-1.1"}, request)

    def _error(self, request: Any, code: str, message: str) -> AWSResponse:
        return self._answer(request, {"__type": code, "message": message}, 400)

    @staticmethod
    def _operation(request: Any) -> tuple[str, dict]:
        target = request.headers.get("X-Amz-Target", b"")
        target = target.decode() if isinstance(target, bytes) else target
        return target.rsplit(".", 1)[-1], json.loads(request.body or b"{}")

    def _sagemaker(self, request: Any, **_: Any) -> AWSResponse | None:
        op, params = self._operation(request)
        if op == "ListTags":
            arn = params.get("ResourceArn", "")
            if ":inference-component/" not in arn:
                return None  # an endpoint's tags: moto's
            c = next((c for c in self.components.values() if c.arn == arn), None)
            if c is None:
                return self._error(request, "ValidationException", f"Could not find resource {arn}.")
            self.calls.append(op)
            return self._answer(request, {"Tags": [{"Key": k, "Value": v} for k, v in c.tags.items()]})
        self.calls.append(op)
        if op == "ListInferenceComponents":
            items = sorted(self.components.values(), key=lambda c: c.name)
            start = int(params.get("NextToken") or 0)
            size = int(params.get("MaxResults") or 10)
            page = items[start:start + size]
            out: dict[str, Any] = {"InferenceComponents": [{
                "InferenceComponentName": c.name, "InferenceComponentArn": c.arn, "EndpointName": c.endpoint,
                "EndpointArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/{c.endpoint.lower()}",
                "VariantName": c.variant, "InferenceComponentStatus": c.status, "CreationTime": _EPOCH,
                "LastModifiedTime": _EPOCH} for c in page]}
            if start + size < len(items):
                out["NextToken"] = str(start + size)
            return self._answer(request, out)
        c = self.components.get(params.get("InferenceComponentName", ""))
        if c is None:
            name = params.get("InferenceComponentName")
            return self._error(request, "ValidationException", f'Could not find inference component "{name}".')
        if op == "DescribeInferenceComponent":
            return self._answer(request, {
                "InferenceComponentName": c.name, "InferenceComponentArn": c.arn, "EndpointName": c.endpoint,
                "EndpointArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/{c.endpoint.lower()}",
                "VariantName": c.variant, "InferenceComponentStatus": c.status,
                "RuntimeConfig": {"DesiredCopyCount": c.copies, "CurrentCopyCount": c.copies},
                "CreationTime": _EPOCH, "LastModifiedTime": _EPOCH})
        copies = int(params["DesiredRuntimeConfig"]["CopyCount"])  # UpdateInferenceComponentRuntimeConfig
        c.copies = copies
        self.copy_updates.append((c.name, copies))
        return self._answer(request, {"InferenceComponentArn": c.arn})

    def _autoscaling(self, request: Any, **_: Any) -> AWSResponse | None:
        op, params = self._operation(request)
        if params.get("ScalableDimension") != COMPONENT_DIMENSION:
            return None  # a variant's target: moto's
        self.calls.append(op)
        prefix = "inference-component/"
        if op == "DescribeScalableTargets":
            found = [c for c in self.components.values()
                     if c.min_capacity is not None and f"{prefix}{c.name}" in params.get("ResourceIds", [])]
            return self._answer(request, {"ScalableTargets": [{
                "ServiceNamespace": "sagemaker", "ResourceId": f"{prefix}{c.name}", "ScalableDimension":
                COMPONENT_DIMENSION, "MinCapacity": c.min_capacity, "MaxCapacity": c.max_capacity,
                "RoleARN": f"arn:aws:iam::{ACCOUNT}:role/aws-service-role/sagemaker.application-autoscaling."
                           f"amazonaws.com/AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint",
                "CreationTime": _EPOCH, "SuspendedState": {"DynamicScalingInSuspended": False,
                                                          "DynamicScalingOutSuspended": False,
                                                          "ScheduledScalingSuspended": False}} for c in found]})
        rid = params.get("ResourceId", "")  # RegisterScalableTarget
        c = self.components.get(rid[len(prefix):]) if rid.startswith(prefix) else None
        if c is None or c.min_capacity is None:
            return self._error(request, "ValidationException", f"Unsupported resource {rid}: no such target.")
        new_min = int(params.get("MinCapacity", c.min_capacity))
        new_max = int(params.get("MaxCapacity", c.max_capacity))
        if not 0 <= new_min <= new_max:
            return self._error(request, "ValidationException",
                               f"Minimum capacity {new_min} cannot be greater than maximum capacity {new_max}.")
        c.min_capacity, c.max_capacity = new_min, new_max
        c.copies = max(c.copies, new_min)  # Application Auto Scaling raises the copies to the new minimum
        return self._answer(request, {})
