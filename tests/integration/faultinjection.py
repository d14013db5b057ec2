"""Fault injection at the HTTP layer: a botocore ``before-send`` hook answers one API call of a tick
with an error response in the service's real wire format (JSON 1.0/1.1 ``__type``; CloudWatch's
Smithy RPC v2 CBOR with the ``x-amzn-query-error`` header of its query-compatible codes), or raises
the connection error botocore would, or kills the invocation. botocore's own retry handler runs on
it (standard mode, ``prescaler.aws.clients.CONFIG``); only its backoff sleep is patched to 0.

:func:`run_matrix` drives every AWS call of each function through every fault and records what the
tick did (scripts/faults.py writes it to docs/faults.md; tests/integration/test_faults.py checks it).
"""

from __future__ import annotations

import json
import struct
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import pytest
import template_values as tv
from awsworld import (
    ENDPOINT,
    RESOURCE_ID,
    TABLE,
    World,
    build_world,
    hourly_spikes,
    http_response,
    load_handler,
    put_gauge,
    put_heartbeat,
    put_invocations,
)
from botocore.exceptions import EndpointConnectionError, ReadTimeoutError
from moto import mock_aws
from prescaler import service
from prescaler.aws import clients
from template_values import event


class Killed(BaseException):
    """The invocation dies here (Lambda timeout, OOM): nothing after it runs, no ``except Exception``
    sees it."""


# --------------------------------------------------------------------------------------------------
# wire formats


def _cbor_text(text: str) -> bytes:
    raw = text.encode()
    n = len(raw)
    if n < 24:
        return bytes([0x60 | n]) + raw
    if n < 256:
        return bytes([0x78, n]) + raw
    return bytes([0x79]) + struct.pack(">H", n) + raw


def cbor_map(items: dict[str, str]) -> bytes:
    """A CBOR map of text to text (RFC 8949 major types 3 and 5), enough for an error body."""
    assert len(items) < 24
    return bytes([0xA0 | len(items)]) + b"".join(_cbor_text(k) + _cbor_text(v) for k, v in items.items())


def error_response(client: Any, request: Any, status: int, code: str, message: str) -> Any:
    """The HTTP error response ``client``'s service sends for ``code``, in the protocol the client
    speaks (botocore picks one of the service's protocols: CloudWatch is JSON 1.0 with query-compatible
    codes in ``x-amzn-query-error``, or Smithy RPC v2 CBOR)."""
    model = client.meta.service_model
    protocol = getattr(model, "resolved_protocol", model.protocol)
    headers: dict[str, str] = {}
    type_ = code
    if "awsQueryCompatible" in model.metadata:
        type_ = f"com.amazonaws.{model.endpoint_prefix}#{code}"
        headers["x-amzn-query-error"] = f"{code};{'Receiver' if status >= 500 else 'Sender'}"
    if protocol == "smithy-rpc-v2-cbor":
        body = cbor_map({"__type": type_, "message": message})
        headers.update({"smithy-protocol": "rpc-v2-cbor", "Content-Type": "application/cbor"})
    elif protocol == "json":
        body = json.dumps({"__type": type_, "message": message}).encode()
        headers["Content-Type"] = f"application/x-amz-json-{model.metadata.get('jsonVersion', '1.1')}"
    else:  # pragma: no cover - the four services are JSON (or CBOR)
        raise NotImplementedError(protocol)
    return http_response(request.url, status, body, headers, request)


# --------------------------------------------------------------------------------------------------
# faults


@dataclass(frozen=True)
class Fault:
    """One kind of fault. ``codes`` maps a service (boto3 name) to (HTTP status, error code); a
    service missing from it does not have this fault (n/a). ``times``: attempts that fail (None: all)."""

    name: str
    title: str
    kind: str  # "http", "unreachable", "killed"
    codes: dict[str, tuple[int, str]] = field(default_factory=dict)
    message: str = ""
    times: int | None = None
    operations: frozenset[str] | None = None  # only these operations (None: every one)

    def applies(self, service_name: str, operation: str) -> bool:
        if self.operations is not None and operation not in self.operations:
            return False
        return self.kind != "http" or service_name in self.codes


_ALL = ("cloudwatch", "application-autoscaling", "sagemaker", "dynamodb")
THROTTLE = {s: (400, "Throttling" if s == "cloudwatch" else "ThrottlingException") for s in _ALL}
FAULTS: list[Fault] = [
    Fault("throttled_once", "throttled once", "http", THROTTLE, "Rate exceeded", times=1),
    Fault("throttled", "throttled persistently", "http", THROTTLE, "Rate exceeded"),
    Fault("5xx", "5xx (500)", "http", {"cloudwatch": (500, "InternalServiceError"),
                                       "application-autoscaling": (500, "InternalServiceException"),
                                       "sagemaker": (500, "InternalFailure"),
                                       "dynamodb": (500, "InternalServerError")}, "We encountered an internal error."),
    Fault("unreachable", "connection / read timeout", "unreachable"),
    Fault("access_denied", "AccessDenied", "http",
          {s: (403, "AccessDenied") if s == "cloudwatch" else (400, "AccessDeniedException") for s in _ALL},
          "User: arn:aws:sts::123456789012:assumed-role/prescaler/fn is not authorized to perform this action"),
    Fault("validation", "ValidationException", "http",
          {s: (400, "InvalidParameterValue" if s == "cloudwatch" else "ValidationException") for s in _ALL},
          "1 validation error detected: Value at 'x' failed to satisfy constraint"),
    Fault("concurrent_update", "ConcurrentUpdateException", "http",
          {"application-autoscaling": (400, "ConcurrentUpdateException")},
          "You already have a pending update to an Auto Scaling resource."),
    Fault("endpoint_updating", "endpoint Updating", "http",
          {"application-autoscaling": (400, "ValidationException"), "sagemaker": (400, "ValidationException")},
          'Cannot update in-progress endpoint "arn:aws:sagemaker:us-east-1:123456789012:endpoint/catalogue-tagger".',
          operations=frozenset({"RegisterScalableTarget", "UpdateEndpointWeightsAndCapacities"})),
    Fault("killed", "killed here (next tick)", "killed"),
]
FAULTS_BY_NAME = {f.name: f for f in FAULTS}


@dataclass
class Injector:
    """Fails the ``occurrence``-th call (1-based) of ``operation`` with ``fault``; counts calls and
    the HTTP attempts of the failed call."""

    operation: str
    occurrence: int
    fault: Fault
    calls: Counter = field(default_factory=Counter)
    attempts: int = 0
    current: tuple[str, int] | None = None
    seen: list[tuple[str, str]] = field(default_factory=list)  # (service, operation) per call, in order

    def attach(self) -> Callable[[], None]:
        """Register the hooks on the cached clients; returns the function that removes them."""
        registered = []
        for name in _ALL:
            client = clients.client(name)
            hook = self._before_call(name)
            client.meta.events.register_first("before-call", hook)
            registered.append((client, "before-call", hook))
            # on the operation's own event, in front of awsworld's DescribeScalingActivities answer
            # and of moto (botocore calls the most specific handlers first, the first answer wins)
            if self.operation in client.meta.service_model.operation_names:
                sid = client.meta.service_model.service_id.hyphenize()
                send = self._before_send(client, name)
                client.meta.events.register_first(f"before-send.{sid}.{self.operation}", send)
                registered.append((client, f"before-send.{sid}.{self.operation}", send))

        def detach() -> None:
            for client, event_name, handler in registered:
                client.meta.events.unregister(event_name, handler)
        return detach

    def _before_call(self, name: str) -> Callable[..., None]:
        def hook(model: Any, **_: Any) -> None:
            self.calls[model.name] += 1
            self.current = (model.name, self.calls[model.name])
            self.seen.append((name, model.name))
        return hook

    def _before_send(self, client: Any, name: str) -> Callable[..., Any]:
        def hook(request: Any, **_: Any) -> Any:
            if self.current != (self.operation, self.occurrence) or not self.fault.applies(name, self.operation):
                return None
            self.attempts += 1
            if self.fault.times is not None and self.attempts > self.fault.times:
                return None
            if self.fault.kind == "killed":
                raise Killed(f"killed at {self.operation}#{self.occurrence}")
            if self.fault.kind == "unreachable":
                request.answered_by_test = True
                if self.attempts % 2:
                    raise ReadTimeoutError(endpoint_url=request.url)
                raise EndpointConnectionError(endpoint_url=request.url)
            status, code = self.fault.codes[name]
            return error_response(client, request, status, code, self.fault.message)
        return hook


@contextmanager
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """botocore's retries without their sleeps (the attempt count is botocore's own)."""
    from botocore.retries.standard import ExponentialBackoff

    monkeypatch.setattr(ExponentialBackoff, "delay_amount", lambda self, context: 0)
    yield


# --------------------------------------------------------------------------------------------------
# scenarios: the world each function ticks in, with what a fault-free tick does


PRESCALE_TIME = pd.Timestamp(event("prescale_scheduled.json")["time"])
RELAX_TIME = pd.Timestamp(event("relax_scheduled.json")["time"])
GPU_TIME = pd.Timestamp(event("gpu_metric_scheduled.json")["time"])
#: the next tick after a killed one: later than service.INTENT_IN_FLIGHT
NEXT_TICK = pd.Timedelta(minutes=2)


@dataclass
class Scenario:
    """A function's world: ``seed`` once (CloudWatch history), ``reset`` before each tick (the target,
    the ledger, the instance count)."""

    function: str
    time: pd.Timestamp
    seed: Callable[[World], None]
    reset: Callable[[World], None]
    env: dict[str, str]
    event_file: str


def _seed_scalers(world: World) -> None:
    put_invocations(world.cloudwatch, hourly_spikes(RELAX_TIME.floor("min")))
    put_heartbeat(world.cloudwatch, PRESCALE_TIME - pd.Timedelta(minutes=15), RELAX_TIME + pd.Timedelta(minutes=5))


def _set(world: World, min_capacity: int, instances: int, ledger: dict | None) -> None:
    world.autoscaling.register_scalable_target(ServiceNamespace="sagemaker", ResourceId=RESOURCE_ID,
                                               ScalableDimension="sagemaker:variant:DesiredInstanceCount",
                                               MinCapacity=min_capacity)
    world.dynamodb.delete_item(TableName=TABLE, Key={"scalable_target": {"S": RESOURCE_ID}})
    if ledger is not None:
        world.dynamodb.put_item(TableName=TABLE, Item=ledger)
    world.set_instances(instances)


def _reset_prescale(world: World) -> None:
    """MinCapacity at the baseline 2, nothing owned; at 09:55 the 10:00 spike (13,200/min) needs 6."""
    _set(world, 2, 2, None)


def _reset_relax(world: World) -> None:
    """A raise to 6 the pre-scaler owns since 09:55, 6 instances; at 10:20 the spike is over."""
    _set(world, 6, 6, {"scalable_target": {"S": RESOURCE_ID}, "version": {"N": "1"},
                       "owned_min_capacity": {"N": "6"}, "owned_since": {"S": PRESCALE_TIME.isoformat()},
                       "last_action": {"S": "raise"}})


def _seed_gpu(world: World) -> None:
    minute = GPU_TIME.floor("min") - pd.Timedelta(minutes=2)
    put_gauge(world.cloudwatch, "/aws/sagemaker/Endpoints", "GPUUtilization", minute, 64.0)
    put_gauge(world.cloudwatch, "AWS/SageMaker", "ModelLatency", minute, 250000.0)


SCENARIOS = {
    "prescale": Scenario("prescale", PRESCALE_TIME, _seed_scalers, _reset_prescale, {}, "prescale_scheduled.json"),
    "relax": Scenario("relax", RELAX_TIME, _seed_scalers, _reset_relax, {"PROMPT_SCALE_IN": "true"},
                      "relax_scheduled.json"),
    "gpu_metric": Scenario("gpu_metric", GPU_TIME, _seed_gpu, lambda world: None, {}, "gpu_metric_scheduled.json"),
}
HANDLERS = {name: load_handler(name) for name in SCENARIOS}


@dataclass(frozen=True)
class Cell:
    """What one tick did under one fault."""

    outcome: str  # the result's outcome; "<outcome>: fails (Errors alarm)"; "killed -> <next tick's>"
    min_before: int
    min_after: int
    desired_before: int
    desired_after: int
    attempts: int  # HTTP attempts the faulted call made (botocore's retries)
    ledger_consistent: bool  # owned_min_capacity is MinCapacity, nothing owned, or an intent to settle

    def text(self) -> str:
        return f"{self.outcome} ({self.min_before}->{self.min_after})"


def _state(world: World) -> tuple[int, int, bool]:
    target = world.target()
    variant = world.sagemaker.describe_endpoint(EndpointName=ENDPOINT)["ProductionVariants"][0]
    item = world.ledger_item() or {}
    owned = item.get("owned_min_capacity", {}).get("N")
    consistent = owned is None or int(owned) == int(target["MinCapacity"]) or "intent" in item
    return int(target["MinCapacity"]), int(variant.get("DesiredInstanceCount", 0)), consistent


class Bench:
    """One function's world under moto (active), ticked again and again with one fault at a time."""

    def __init__(self, function: str, monkeypatch: pytest.MonkeyPatch, ctx: Any) -> None:
        self.s = SCENARIOS[function]
        self.monkeypatch = monkeypatch
        self.ctx = ctx
        env = tv.function_env("PrescaleFunction", ENDPOINT_NAME=ENDPOINT, LEDGER_TABLE_NAME=TABLE,
                              AWS_ENDPOINT_URL="", HISTORY_DAYS="2", DRY_RUN="false", **self.s.env)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        clients.client.cache_clear()
        self.world = build_world()
        self.s.seed(self.world)

    def calls(self) -> list[tuple[str, str, int]]:
        """(service, operation, occurrence) of every AWS call a fault-free tick makes, in order."""
        injector = Injector("", 0, FAULTS[0])
        self.tick(injector)
        seen: Counter = Counter()
        out = []
        for service_name, op in injector.seen:
            seen[op] += 1
            out.append((service_name, op, seen[op]))
        return out

    def _event(self, at: pd.Timestamp) -> dict:
        return dict(event(self.s.event_file), time=at.isoformat())

    def tick(self, injector: Injector) -> Cell:
        """Reset the world, tick once with ``injector``; a killed tick is followed by the next tick
        :data:`NEXT_TICK` later with no fault, and the cell shows both."""
        self.s.reset(self.world)
        before, desired_before, _ = _state(self.world)
        self.monkeypatch.setattr(service, "wall_clock", lambda: self.s.time)
        handler = HANDLERS[self.s.function]
        detach = injector.attach()
        try:
            try:
                outcome = str(handler.lambda_handler(self._event(self.s.time), self.ctx).get("outcome"))
            except Killed:
                injector.operation = ""  # the next tick runs without a fault
                later = self.s.time + NEXT_TICK
                self.monkeypatch.setattr(service, "wall_clock", lambda: later)
                outcome = "killed -> " + str(handler.lambda_handler(self._event(later), self.ctx).get("outcome"))
        except service.TickFailed as exc:
            outcome = f"{exc.outcome}: fails (Errors alarm)"
        except Exception as exc:
            outcome = f"UNHANDLED {type(exc).__name__}: {exc}"
        finally:
            detach()
        after, desired, consistent = _state(self.world)
        return Cell(outcome, before, after, desired_before, desired, injector.attempts, consistent)


def run_matrix(monkeypatch: pytest.MonkeyPatch, ctx: Any, functions: tuple[str, ...] = tuple(SCENARIOS),
               faults: list[Fault] = FAULTS) -> dict[str, Any]:
    """Every call of each function x every fault that applies to it, one moto account per function.

    Returns ``{"baseline": {function: Cell}, "cells": {(function, service, op, n, fault): Cell}}``.
    """
    baseline: dict[str, Cell] = {}
    cells: dict[tuple[str, str, str, int, str], Cell] = {}
    with no_backoff(monkeypatch):
        for function in functions:
            with mock_aws():
                _run_function(function, monkeypatch, ctx, faults, baseline, cells)
    clients.client.cache_clear()
    return {"baseline": baseline, "cells": cells}


def _run_function(function: str, monkeypatch: pytest.MonkeyPatch, ctx: Any, faults: list[Fault],
                  baseline: dict[str, Cell], cells: dict[tuple[str, str, str, int, str], Cell]) -> None:
    bench = Bench(function, monkeypatch, ctx)
    calls = bench.calls()
    baseline[function] = bench.tick(Injector("", 0, FAULTS[0]))
    for service_name, op, n in calls:
        for fault in faults:
            if fault.applies(service_name, op):
                cells[(function, service_name, op, n, fault.name)] = bench.tick(Injector(op, n, fault))


# --------------------------------------------------------------------------------------------------
# docs/faults.md

CALL_NOTES = {
    ("prescale", "GetMetricData", 1): "CPUUtilization heartbeat",
    ("prescale", "GetMetricData", 2): "Invocations history",
    ("prescale", "UpdateItem", 1): "ledger intent",
    ("prescale", "UpdateItem", 2): "ledger confirm",
    ("gpu_metric", "GetMetricData", 1): "GPUUtilization, ModelLatency",
}
for (_fn, _op, _n), _note in list(CALL_NOTES.items()):
    if _fn == "prescale":
        CALL_NOTES[("relax", _op, _n)] = _note
SCENARIO_TEXT = {
    "prescale": "09:55, MinCapacity 2 (baseline), the 10:00 spike needs 6: a fault-free tick raises 2 -> 6",
    "relax": "10:20, MinCapacity 6 owned since 09:55, 6 instances, demand back to 2,400/min: a fault-free tick "
             "lowers MinCapacity 6 -> 2 and asks for 2 instances (prompt scale-in)",
    "gpu_metric": "10:05, a 1-GPU instance at 64%: a fault-free tick publishes 64% per GPU",
}


def render(matrix: dict[str, Any]) -> str:
    """The matrix as markdown (docs/faults.md)."""
    lines = [
        "# Fault matrix: every AWS call of every function x every fault",
        "",
        "Generated by `make faults` (`scripts/faults.py`, harness `tests/integration/faultinjection.py`); "
        "`tests/integration/test_faults.py` fails when this file is out of date. Do not edit by hand.",
        "",
        "Each cell is one tick against moto with one call answered by a fault at the HTTP layer "
        "(botocore's standard retries run; backoff sleeps patched to 0): the tick's `outcome` and "
        "MinCapacity before -> after. `throttled once` fails the first attempt only; the others fail "
        "every attempt. `killed` raises out of the invocation at that call (timeout, OOM) and shows the "
        f"next tick's outcome, {int(NEXT_TICK / pd.Timedelta(minutes=1))} minutes later. "
        "`fails (Errors alarm)`: the function fails on purpose (`TickFailed`), so the functions' Errors "
        "alarm pages someone; every other outcome is a result the next tick retries from. "
        "Outcomes are decided in `prescaler/aws/errors.py`; `n/a`: the service has no such error for that call.",
        "",
    ]
    cells: dict = matrix["cells"]
    for function, base in matrix["baseline"].items():
        lines += [f"## {function}", "", f"Scenario: {SCENARIO_TEXT[function]} (fault-free: `{base.text()}`).", ""]
        header = "| call | " + " | ".join(f.title for f in FAULTS) + " |"
        lines += [header, "|" + "---|" * (len(FAULTS) + 1)]
        rows = dict.fromkeys((svc, op, n) for (fn, svc, op, n, _) in cells if fn == function)
        for svc, op, n in rows:
            note = CALL_NOTES.get((function, op, n))
            name = f"{svc} {op}" + (f" ({note})" if note else "")
            row = []
            for fault in FAULTS:
                cell = cells.get((function, svc, op, n, fault.name))
                row.append(cell.text() if cell is not None else "n/a")
            lines.append(f"| {name} | " + " | ".join(row) + " |")
        lines.append("")
    return "\n".join(lines)


class LambdaContext:
    """The context object the handlers' Powertools decorators read."""

    function_name = "prescaler-faults"
    function_version = "$LATEST"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:prescaler-faults"
    aws_request_id = "faults"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


def generate() -> dict[str, Any]:
    """The whole matrix in-process: fake credentials and region, no endpoint URL, EMF and logs quiet."""
    import contextlib
    import io

    from prescaler.observability import logger, metrics

    monkeypatch = pytest.MonkeyPatch()
    try:
        for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                           "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": "us-east-1",
                           "AWS_REGION": "us-east-1", "POWERTOOLS_TRACE_DISABLED": "1",
                           "POWERTOOLS_METRICS_NAMESPACE": "SageMakerPrescaler"}.items():
            monkeypatch.setenv(key, value)
        monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
        monkeypatch.delenv("AWS_PROFILE", raising=False)
        level = logger.log_level
        logger.setLevel("CRITICAL")
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # EMF blobs
                return run_matrix(monkeypatch, LambdaContext())
        finally:
            logger.setLevel(level)
            metrics.clear_metrics()
            metrics.clear_default_dimensions()
    finally:
        monkeypatch.undo()
