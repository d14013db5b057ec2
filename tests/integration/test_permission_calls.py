"""Every AWS call each function really makes has a row in ``prescaler/aws/permissions.py``.

Each handler runs against moto through the paths that call the most (a raise, a relax with prompt
scale-in, a GPU metric publish); botocore's ``before-parameter-build`` event records every
operation on every client. A call the table does not list fails here, and so does a table row for
a call no path makes (the table would grant more than the code needs)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
from awsworld import (
    ENDPOINT,
    World,
    at_wall_clock,
    build_world,
    hourly_spikes,
    load_handler,
    put_gauge,
    put_invocations,
)
from prescaler.aws import clients, permissions
from template_values import event

pytestmark = pytest.mark.integration

SERVICES = ("sagemaker", "application-autoscaling", "cloudwatch", "dynamodb")


class Recorder:
    def __init__(self) -> None:
        self.calls: set[str] = set()
        self.watched: set[str] = set()

    def __call__(self, model: Any, **_: Any) -> None:
        self.calls.add(f"{model.service_model.service_name}:{model.name}")

    def attach(self, services: tuple[str, ...] = SERVICES) -> None:
        for service in services:
            clients.client(service).meta.events.register("before-parameter-build", self)
            self.watched.add(service)

    def check_no_other_client(self) -> None:
        assert clients.client.cache_info().currsize == len(self.watched), "a client the recorder does not watch"


@pytest.fixture
def recorder(world: World) -> Iterator[Recorder]:
    rec = Recorder()
    rec.attach()
    yield rec
    rec.check_no_other_client()


def _tick(name: str, file: str, ctx: Any) -> dict:
    return load_handler(name).lambda_handler(event(file), ctx)


def test_prescale_and_relax_make_only_the_calls_in_the_table(
        world: World, recorder: Recorder, scaler_env: dict, lambda_context: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRY_RUN", "false")
    monkeypatch.setenv("PROMPT_SCALE_IN", "true")
    # history up to the relax tick: history that stopped at 09:55 would be stale at 10:20 (issue 9)
    put_invocations(world.cloudwatch, hourly_spikes(pd.Timestamp(event("relax_scheduled.json")["time"])))
    recorder.calls.clear()  # the test's own setup calls
    assert _tick("prescale", "prescale_scheduled.json", lambda_context)["outcome"] == "applied"
    prescale_calls = set(recorder.calls)
    world.set_instances(6)
    recorder.calls.clear()
    relaxed = _tick("relax", "relax_scheduled.json", lambda_context)
    assert relaxed["action"] == "relax" and relaxed["prompt_scale_in"] == "applied"
    assert prescale_calls == permissions.api_calls("prescale")
    assert recorder.calls == permissions.api_calls("relax")


def test_a_fleet_tick_makes_only_the_calls_in_the_fleet_table(
        world: World, recorder: Recorder, scaler_env: dict, lambda_context: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from prescaler import fleet

    # Given the same endpoint and an inference component on it as a two-member fleet (list mode)
    monkeypatch.setenv("DRY_RUN", "false")
    monkeypatch.setenv("FLEET_MODE", "list")
    monkeypatch.setenv("FLEET_ENDPOINTS", f"{ENDPOINT}, inference-component:tagger-copies")
    monkeypatch.setenv("FLEET_RESERVE_SECONDS", "1")
    fleet.clear_cache()
    relax_time = pd.Timestamp(event("relax_scheduled.json")["time"])
    put_invocations(world.cloudwatch, hourly_spikes(relax_time))
    world.components.add("tagger-copies", ENDPOINT, copies=1, min_capacity=1)
    put_invocations(world.cloudwatch, hourly_spikes(relax_time),
                    dims=[{"Name": "InferenceComponentName", "Value": "tagger-copies"}])
    recorder.calls.clear()
    made: set[str] = set()
    for name, file in (("prescale", "prescale_scheduled.json"), ("relax", "relax_scheduled.json")):
        fleet.clear_cache()
        result = _tick(name, file, lambda_context)
        assert result["members"] == 2 and result["outcomes"] == {"applied": 2}, result
        # Then every call is in the table's fleet rows, and the fleet's own calls were made
        assert recorder.calls <= permissions.api_calls(name, fleet=True), recorder.calls
        assert {"sagemaker:ListEndpoints", "sagemaker:ListInferenceComponents", "sagemaker:ListTags",
                "dynamodb:Scan", "sagemaker:DescribeInferenceComponent"} <= recorder.calls
        made |= recorder.calls
        recorder.calls.clear()
    # and the relax's prompt scale-in of the component's copies is one of them
    assert "sagemaker:UpdateInferenceComponentRuntimeConfig" in made


def test_a_fanned_out_fleet_tick_makes_only_the_calls_in_the_fleet_table(
        world: World, recorder: Recorder, scaler_env: dict, lambda_context: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from prescaler import fleet
    from test_fanout import make_queue, receive, sqs_event

    # Given a two-member fleet over FLEET_SHARD_SIZE=1: the dispatcher sends two shards
    url, arn, _ = make_queue()
    monkeypatch.setenv("DRY_RUN", "false")
    monkeypatch.setenv("FLEET_MODE", "list")
    monkeypatch.setenv("FLEET_ENDPOINTS", f"{ENDPOINT}, {ENDPOINT}/Blue")
    monkeypatch.setenv("FLEET_SHARD_SIZE", "1")
    monkeypatch.setenv("FLEET_SHARD_QUEUE_URL", url)
    put_invocations(world.cloudwatch, hourly_spikes(pd.Timestamp(event("relax_scheduled.json")["time"])))
    for name, file in (("prescale", "prescale_scheduled.json"), ("relax", "relax_scheduled.json")):
        fleet.clear_cache()
        recorder.calls.clear()
        recorder.attach(("sqs",))  # the fan-out's own client
        # When the scheduled tick dispatches and the same function runs each shard
        dispatched = _tick(name, file, lambda_context)
        assert dispatched["dispatched"]["shards"] == 2
        messages = receive(url)
        recorder.calls.discard("sqs:ReceiveMessage")  # the test's poller, as the event source mapping
        for m in messages:
            assert load_handler(name).lambda_handler(sqs_event([m], arn), lambda_context) == {"batchItemFailures": []}
        # Then every call is in the table's fleet rows (SendMessageBatch among them)
        assert "sqs:SendMessageBatch" in recorder.calls
        assert recorder.calls <= permissions.api_calls(name, fleet=True), recorder.calls


def test_gpu_metric_makes_only_the_calls_in_the_table(aws: None, lambda_context: Any,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    world = build_world("ml.g4dn.12xlarge")
    rec = Recorder()
    rec.attach()
    minute = pd.Timestamp(event("gpu_metric_scheduled.json")["time"]) - pd.Timedelta(minutes=2)
    put_gauge(world.cloudwatch, "/aws/sagemaker/Endpoints", "GPUUtilization", minute, 320.0)
    rec.calls.clear()
    monkeypatch.setenv("ENDPOINT_NAME", ENDPOINT)
    at_wall_clock(monkeypatch, minute)  # PutMetricData refuses points older than 14 days (issue 9)
    assert _tick("gpu_metric", "gpu_metric_scheduled.json", lambda_context)["outcome"] == "applied"
    assert rec.calls == permissions.api_calls("gpu_metric")
    rec.check_no_other_client()
