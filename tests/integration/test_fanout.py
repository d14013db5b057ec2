"""The fleet tick beyond one invocation (issue 11 §2, last bullet): the dispatcher sends the fleet in
shards to an SQS queue (moto), the same handler runs each shard from the event an SQS event source
mapping delivers (built from the messages moto's ReceiveMessage returns, in Lambda's SQS event
shape). Given/When/Then.

The 20-member fleet of test_fleet.py (mixed tags, one bad tag, one without a target, one
throttled, one inference component) with FLEET_SHARD_SIZE=10: two shards.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import pytest
from awsworld import REGION, TABLE, World, at_wall_clock, build_world
from prescaler import fanout, fleet
from prescaler.aws import clients
from template_values import event
from test_fleet import (  # noqa: F401  (fleet_env is a fixture)
    COMPONENT,
    FLEET,
    HANDLERS,
    PLAIN,
    PRESCALE_TIME,
    RELAX_TIME,
    build_fleet,
    fleet_env,
    ledger,
    min_capacity,
    rid,
)

pytestmark = pytest.mark.integration

SHARD_SIZE = 10
#: the fleet's 20 members' resource ids: the tagged endpoints and the inference component
MEMBERS = [rid(n) for n, tags in FLEET.items() if tags is not None] + [f"inference-component/{COMPONENT}"]
#: what the fleet's 20 members come to through a raise (test_fleet.py's single-invocation tick)
RAISE_OUTCOMES = {"applied": 16, "dry_run": 1, "invalid_settings": 1, "target_missing": 1, "throttled": 1}


def carried(message: dict) -> list[str]:
    """The resource ids of a shard message's members, in order."""
    return [fanout.ShardMember.model_validate(m).member().resource_id for m in json.loads(message["Body"])["members"]]


def make_queue() -> tuple[str, str, str]:
    """The shard queue as the template declares it (visibility 360 s, redrive to a DLQ after one
    receive): (queue URL, queue ARN, dead-letter queue URL)."""
    sqs = clients.client("sqs")
    dlq = sqs.create_queue(QueueName="shards-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    url = sqs.create_queue(QueueName="prescale-shards", Attributes={
        "VisibilityTimeout": "360",
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 1})})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn, dlq


def receive(url: str) -> list[dict]:
    """Every message on the queue (as the event source mapping's poller receives them)."""
    sqs = clients.client("sqs")
    out: list[dict] = []
    while True:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"],
                                  MessageAttributeNames=["All"]).get("Messages", [])
        if not got:
            return out
        out.extend(got)


def sqs_event(messages: list[dict], arn: str) -> dict:
    """Lambda's SQS event for a batch of received messages (Lambda developer guide, "Using Lambda
    with Amazon SQS": the example event)."""
    return {"Records": [{
        "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
        "attributes": {k: m["Attributes"][k] for k in ("ApproximateReceiveCount", "SentTimestamp", "SenderId",
                                                       "ApproximateFirstReceiveTimestamp")},
        "messageAttributes": {}, "md5OfBody": m["MD5OfBody"], "eventSource": "aws:sqs",
        "eventSourceARN": arn, "awsRegion": REGION} for m in messages]}


def outcomes(caplog: pytest.LogCaptureFixture, function: str = "prescale") -> dict[str, int]:
    """Each member's outcome, summed over the shard ticks' summary log lines."""
    total: dict[str, int] = {}
    for rec in caplog.records:
        if rec.getMessage().startswith(f"fleet {function} tick:") and hasattr(rec, "outcomes"):
            for k, v in rec.outcomes.items():
                total[k] = total.get(k, 0) + v
    return total


@pytest.fixture
def sharded(aws: None, fleet_env: dict, monkeypatch: pytest.MonkeyPatch) -> tuple[World, str, str, str]:  # noqa: F811
    world = build_world()
    clients.client("sagemaker").delete_endpoint(EndpointName="catalogue-tagger")  # the single-stack one
    build_fleet(world, RELAX_TIME)
    url, arn, dlq = make_queue()
    monkeypatch.setenv("FLEET_SHARD_SIZE", str(SHARD_SIZE))
    monkeypatch.setenv("FLEET_SHARD_QUEUE_URL", url)
    fleet.clear_cache()
    return world, url, arn, dlq


def test_a_fleet_over_the_shard_size_is_dispatched_in_shards_and_every_member_gets_its_outcome(
        sharded: tuple, lambda_context: Any, caplog: pytest.LogCaptureFixture) -> None:
    world, url, arn, _ = sharded
    # When the scheduled pre-scaler tick runs over 20 members with FLEET_SHARD_SIZE=10
    dispatched = HANDLERS["prescale"].lambda_handler(event("prescale_scheduled.json"), lambda_context)
    # Then it ticks none of them itself: it sends two shards of 10, in one SendMessageBatch call
    assert dispatched["members"] == 20
    assert dispatched["dispatched"] == {"shards": 2, "shard_size": SHARD_SIZE, "send_message_batch_calls": 1,
                                        "unsent": {}}
    assert all(min_capacity(world, n) == 2 for n in PLAIN)
    messages = receive(url)
    bodies = [json.loads(m["Body"]) for m in messages]
    ids = [i for m in sorted(messages, key=lambda m: json.loads(m["Body"])["shard"]) for i in carried(m)]
    assert sorted(b["shard"] for b in bodies) == [0, 1] and {b["shards"] for b in bodies} == {2}
    assert {b["function"] for b in bodies} == {"prescale"}
    assert {pd.Timestamp(b["time"]) for b in bodies} == {PRESCALE_TIME}
    assert sorted(ids) == sorted(MEMBERS) and len(ids) == 20  # each member in exactly one shard
    bad = next(m for b in bodies for m in b["members"] if m["endpoint_name"] == "fleet-bad-tag")
    assert bad["tags"] == {"prescaler:headroom": "lots"}  # the setting tags travel (workers do not ListTags)
    assert outcomes(caplog) == {}  # the dispatcher ticked no member

    # When the event source mapping delivers each shard (BatchSize 1) to the same function
    listed = world.sagemaker.meta.events  # workers must not discover: count ListEndpoints from here on
    calls: list[str] = []
    listed.register("before-call.sagemaker.ListEndpoints", lambda **_: calls.append("ListEndpoints"))
    listed.register("before-call.sagemaker.ListTags", lambda **_: calls.append("ListTags"))
    for m in messages:
        assert HANDLERS["prescale"].lambda_handler(sqs_event([m], arn), lambda_context) == {"batchItemFailures": []}
    # Then every member reached its outcome, exactly as one invocation would have given it
    assert outcomes(caplog) == RAISE_OUTCOMES
    for name in PLAIN:
        assert min_capacity(world, name) == 6
    assert (min_capacity(world, "fleet-baseline-1"), min_capacity(world, "fleet-headroom"),
            min_capacity(world, "fleet-big-target")) == (4, 7, 3)
    assert min_capacity(world, "fleet-dry-run") == 2 and min_capacity(world, "fleet-bad-tag") == 2
    assert min_capacity(world, "fleet-throttled") == 2
    assert world.components.components[COMPONENT].min_capacity == 6  # the component: 13,200 / 2,200 per copy
    assert calls == []


def test_a_duplicate_delivery_of_a_shard_changes_nothing_more(sharded: tuple, lambda_context: Any) -> None:
    world, url, arn, _ = sharded
    HANDLERS["prescale"].lambda_handler(event("prescale_scheduled.json"), lambda_context)
    first = receive(url)[0]
    names = [m["endpoint_name"] for m in json.loads(first["Body"])["members"] if m["endpoint_name"] in PLAIN]
    registers: list[str] = []
    world.autoscaling.meta.events.register("before-call.application-autoscaling.RegisterScalableTarget",
                                           lambda **_: registers.append("x"))
    # When SQS delivers the same shard twice (at-least-once delivery)
    assert HANDLERS["prescale"].lambda_handler(sqs_event([first], arn), lambda_context) == {"batchItemFailures": []}
    after_first = {n: (min_capacity(world, n), ledger(world, n)["version"]) for n in names}
    raised = len(registers)
    assert names and raised >= len(names)
    assert HANDLERS["prescale"].lambda_handler(sqs_event([first], arn), lambda_context) == {"batchItemFailures": []}
    # Then the second finds nothing left to do: no scaling call, MinCapacity and the ledger unchanged
    assert len(registers) == raised
    assert {n: (min_capacity(world, n), ledger(world, n)["version"]) for n in names} == after_first
    assert all(v[0] == 6 for v in after_first.values())


def test_two_deliveries_of_a_shard_at_once_raise_each_target_once(
        sharded: tuple, lambda_context: Any, caplog: pytest.LogCaptureFixture) -> None:
    world, url, arn, _ = sharded
    HANDLERS["prescale"].lambda_handler(event("prescale_scheduled.json"), lambda_context)
    message = receive(url)[0]
    names = [m["endpoint_name"] for m in json.loads(message["Body"])["members"] if m["endpoint_name"] in PLAIN]
    contested = names[len(names) // 2]
    registers: list[str] = []
    world.autoscaling.meta.events.register(
        "before-parameter-build.application-autoscaling.RegisterScalableTarget",
        lambda params, **_: registers.append(params["ResourceId"]))
    state = {"second": False}

    def second_delivery(params: dict, **_: Any) -> None:
        """When the first worker is about to claim the contested target (it has read the ledger and
        decided to raise), the second delivery of the same shard runs from start to end."""
        if state["second"] or params["Key"]["scalable_target"]["S"] != rid(contested):
            return
        state["second"] = True
        assert HANDLERS["prescale"].lambda_handler(sqs_event([message], arn), lambda_context) == {
            "batchItemFailures": []}

    world.dynamodb.meta.events.register("before-parameter-build.dynamodb.UpdateItem", second_delivery)
    # When SQS delivers the same shard to two workers at once
    assert HANDLERS["prescale"].lambda_handler(sqs_event([message], arn), lambda_context) == {"batchItemFailures": []}
    # Then the ledger's claim let one of them act on each target: one RegisterScalableTarget each
    assert state["second"]
    assert sorted(registers) == sorted(rid(n) for n in names)
    assert all(min_capacity(world, n) == 6 for n in names)
    # and the worker that lost the claim on the contested target says so
    assert outcomes(caplog).get("duplicate") == 1


def test_a_stale_shard_is_refused_and_reported_a_timely_one_runs(
        sharded: tuple, lambda_context: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    world, url, arn, _ = sharded
    # Given a tick scheduled (not replayed) at 09:55, dispatched on time
    scheduled = {k: v for k, v in event("prescale_scheduled.json").items() if k != "prescaler-replay"}
    at_wall_clock(monkeypatch, PRESCALE_TIME)
    HANDLERS["prescale"].lambda_handler(scheduled, lambda_context)
    stale, timely = sorted(receive(url), key=lambda m: json.loads(m["Body"])["shard"])
    # When one shard reaches a worker 2.5 minutes after its tick (more than the 2-minute rule)
    at_wall_clock(monkeypatch, PRESCALE_TIME + pd.Timedelta(minutes=2, seconds=30))
    refused = HANDLERS["prescale"].lambda_handler(sqs_event([stale], arn), lambda_context)
    # Then it is reported as failed (to the DLQ, never retried) and nothing of it changed
    assert refused == {"batchItemFailures": [{"itemIdentifier": stale["MessageId"]}]}
    for m in json.loads(stale["Body"])["members"]:
        if m["endpoint_name"] in PLAIN:
            assert min_capacity(world, m["endpoint_name"]) == 2
    # When the other reaches a worker within 2 minutes
    at_wall_clock(monkeypatch, PRESCALE_TIME + pd.Timedelta(minutes=1, seconds=50))
    assert HANDLERS["prescale"].lambda_handler(sqs_event([timely], arn), lambda_context) == {"batchItemFailures": []}
    ran = [m["endpoint_name"] for m in json.loads(timely["Body"])["members"] if m["endpoint_name"] in PLAIN]
    assert ran and all(min_capacity(world, n) == 6 for n in ran)


def test_one_failing_shard_of_a_batch_is_reported_the_other_runs(
        sharded: tuple, lambda_context: Any) -> None:
    world, url, arn, _ = sharded
    HANDLERS["prescale"].lambda_handler(event("prescale_scheduled.json"), lambda_context)
    good, other = receive(url)
    # Given a batch of two records: one shard, and one whose body is not a shard (truncated), and a
    # relax shard delivered to the pre-scaler
    broken = {**other, "Body": other["Body"][:40]}
    relax_body = json.loads(other["Body"]) | {"function": "relax"}
    misrouted = {**other, "MessageId": "misrouted-1", "Body": json.dumps(relax_body)}
    response = HANDLERS["prescale"].lambda_handler(sqs_event([good, broken, misrouted], arn), lambda_context)
    # Then the two bad ones are the batch's failures, and the good shard ran
    assert response == {"batchItemFailures": [{"itemIdentifier": other["MessageId"]},
                                              {"itemIdentifier": "misrouted-1"}]}
    ran = [m["endpoint_name"] for m in json.loads(good["Body"])["members"] if m["endpoint_name"] in PLAIN]
    assert ran and all(min_capacity(world, n) == 6 for n in ran)
    untouched = [m["endpoint_name"] for m in relax_body["members"] if m["endpoint_name"] in PLAIN]
    assert untouched and all(min_capacity(world, n) == 2 for n in untouched)


def test_members_the_shards_did_not_reach_go_first_in_the_next_dispatch(
        sharded: tuple, lambda_context: Any) -> None:
    world, url, arn, _ = sharded
    HANDLERS["prescale"].lambda_handler(event("prescale_scheduled.json"), lambda_context)
    first, second = sorted(receive(url), key=lambda m: json.loads(m["Body"])["shard"])
    calls = {"n": 0}

    class Ctx(type(lambda_context)):  # type: ignore[misc]
        def get_remaining_time_in_millis(self) -> int:
            calls["n"] += 1
            return 60_000 if calls["n"] <= 3 else 9_000

    def late(message: dict) -> list[str]:
        """The shard's members after the first three (a bad tag is its own outcome, never "not reached")."""
        return [i for i in carried(message) if i != rid("fleet-bad-tag")][3:]

    # When each shard's worker runs out of time after three members (both at once, on SQS)
    for message in (second, first):
        calls["n"] = 0
        HANDLERS["prescale"].lambda_handler(sqs_event([message], arn), Ctx())
    # Then the others of both shards are stored as not reached (neither shard's list lost)
    item = world.dynamodb.get_item(TableName=TABLE, Key={"scalable_target": {"S": fleet.pending_key("prescale")}})
    assert [v["S"] for v in item["Item"]["pending"]["L"]] == late(second) + late(first)
    # When the next tick dispatches, they lead the first shard, and the list is taken (cleared)
    fleet.clear_cache()
    HANDLERS["prescale"].lambda_handler(event("prescale_scheduled.json"), lambda_context)
    expected = late(second) + late(first)
    ordered = [i for m in sorted(receive(url), key=lambda m: json.loads(m["Body"])["shard"]) for i in carried(m)]
    assert len(expected) > SHARD_SIZE and ordered[:len(expected)] == expected
    item = world.dynamodb.get_item(TableName=TABLE, Key={"scalable_target": {"S": fleet.pending_key("prescale")}})
    assert "pending" not in item["Item"]


def test_a_shard_sqs_would_not_take_is_retried_then_reported_and_its_members_go_first(
        sharded: tuple, lambda_context: Any, caplog: pytest.LogCaptureFixture) -> None:
    world, *_ = sharded
    sqs = clients.client("sqs")
    answers: list[str] = []

    def flaky(params: dict, **_: Any) -> Any:
        """shard-0 fails twice with an internal error (retried), shard-1 with a sender fault (not)."""
        body = json.loads(params["body"])
        failed, ok = [], []
        for entry in body["Entries"]:
            if entry["Id"] == "shard-1" or (entry["Id"] == "shard-0" and answers.count("shard-0") < 2):
                answers.append(entry["Id"])
                failed.append({"Id": entry["Id"], "SenderFault": entry["Id"] == "shard-1",
                               "Code": "InvalidParameterValue" if entry["Id"] == "shard-1" else "InternalError",
                               "Message": "refused"})
            else:
                ok.append({"Id": entry["Id"], "MessageId": "m-" + entry["Id"], "MD5OfMessageBody": "x"})
        return _Ok(), {"Successful": ok, "Failed": failed, "ResponseMetadata": {"HTTPStatusCode": 200}}

    sqs.meta.events.register("before-call.sqs.SendMessageBatch", flaky)
    # When the dispatcher sends
    with pytest.raises(fanout.DispatchFailed, match="1 of 2 shards not sent"):
        HANDLERS["prescale"].lambda_handler(event("prescale_scheduled.json"), lambda_context)
    # Then shard-0 was sent on its third attempt, shard-1 (a sender fault) not retried, and reported
    assert answers == ["shard-0", "shard-1", "shard-0"]
    assert "1 of 2 shards not sent" in caplog.text
    # and shard-1's members are stored to go first next tick
    item = world.dynamodb.get_item(TableName=TABLE, Key={"scalable_target": {"S": fleet.pending_key("prescale")}})
    assert len(item["Item"]["pending"]["L"]) == SHARD_SIZE


class _Ok:
    status_code = 200
    headers: dict = {}  # noqa: RUF012
