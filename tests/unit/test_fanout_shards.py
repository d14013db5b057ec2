"""The fan-out's pure parts and its SQS sender (prescaler/fanout.py), against botocore's Stubber with
SendMessageBatch's real request and response shapes (Amazon SQS API reference: at most 10 entries
and 262,144 bytes per call; ``Successful`` and ``Failed`` entries, ``SenderFault``)."""

from __future__ import annotations

import json

import boto3
import pandas as pd
import pytest
from botocore.stub import Stubber
from prescaler import fanout, fleet, service

pytestmark = pytest.mark.unit

TICK = service.Tick(pd.Timestamp("2026-03-15T09:55:00Z"), "evt-1", "event")
URL = "https://sqs.us-east-1.amazonaws.com/123456789012/prescale-shards"


def members(n: int, tags: dict[str, str] | None = None) -> list[fleet.Member]:
    return [fleet.Member(f"ep-{i:05d}", "AllTraffic", tags or {}) for i in range(n)]


def test_members_are_cut_in_order_into_shards_of_at_most_the_size() -> None:
    ms = members(25)
    shards = fanout.shard_messages("prescale", TICK, ms, 10)
    assert [len(s.members) for s in shards] == [10, 10, 5]
    assert [s.shard for s in shards] == [0, 1, 2] and {s.shards for s in shards} == {3}
    assert [m.endpoint_name for s in shards for m in s.members] == [m.endpoint_name for m in ms]
    assert {(s.function, s.tick().now, s.event_id) for s in shards} == {("prescale", TICK.now, "evt-1")}


def test_only_the_setting_tags_travel_and_a_message_reads_back_as_the_member() -> None:
    tags = {"prescaler:enabled": "true", "prescaler:headroom": "0.25", "team": "search"}
    (shard,) = fanout.shard_messages("relax", TICK, members(1, tags), 10)
    body = json.loads(shard.body())
    assert body["members"] == [{"endpoint_name": "ep-00000", "variant_name": "AllTraffic",
                                "tags": {"prescaler:headroom": "0.25"}}]
    again = fanout.ShardMessage.model_validate_json(shard.body())
    assert again.members[0].member() == fleet.Member("ep-00000", "AllTraffic", {"prescaler:headroom": "0.25"})
    assert again.tick() == service.Tick(TICK.now, "evt-1", "event", False)


def test_an_inference_component_member_travels_as_a_component() -> None:
    component = fleet.Member("llm-endpoint", "AllTraffic", {"prescaler:baseline": "0"}, "llm-7b")
    missing = fleet.Member("", "", {}, "no-such-component")  # listed, but ListInferenceComponents lacks it
    (shard,) = fanout.shard_messages("prescale", TICK, [component, missing], 10)
    again = fanout.ShardMessage.model_validate_json(shard.body())
    assert [m.member() for m in again.members] == [component, missing]
    assert [m.member().resource_id for m in again.members] == [
        "inference-component/llm-7b", "inference-component/no-such-component"]


def test_a_shard_too_large_for_one_message_is_cut_until_it_fits() -> None:
    # 7 setting tags of 250 characters each: ~1.8 KB a member, so 500 members do not fit 256 KiB
    long = {tag: "x" * 250 for tag in fleet.TAG_SETTINGS}
    shards = fanout.shard_messages("prescale", TICK, members(500, long), 500)
    assert len(shards) > 1
    assert all(len(s.body().encode()) <= fanout.MAX_BATCH_BYTES for s in shards)
    assert sum(len(s.members) for s in shards) == 500 and [s.shard for s in shards] == list(range(len(shards)))


def _stubbed() -> tuple[object, Stubber]:
    client = boto3.client("sqs", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    return client, Stubber(client)


def _ok(ids: list[str]) -> dict:
    return {"Successful": [{"Id": i, "MessageId": f"m-{i}", "MD5OfMessageBody": "0" * 32} for i in ids],
            "Failed": []}


def test_25_shards_take_3_calls_of_at_most_10_entries() -> None:
    client, stub = _stubbed()
    shards = fanout.shard_messages("prescale", TICK, members(25), 1)
    for chunk in (range(0, 10), range(10, 20), range(20, 25)):
        ids = [f"shard-{i}" for i in chunk]
        stub.add_response("send_message_batch", _ok(ids), {
            "QueueUrl": URL, "Entries": [{"Id": f"shard-{i}", "MessageBody": shards[i].body()} for i in chunk]})
    with stub:
        calls, unsent = fanout.send(client, URL, shards)
    stub.assert_no_pending_responses()
    assert (calls, unsent) == (3, {})


def test_a_failed_entry_is_sent_again_unless_it_is_the_senders_fault() -> None:
    client, stub = _stubbed()
    shards = fanout.shard_messages("prescale", TICK, members(3), 1)
    stub.add_response("send_message_batch", {
        "Successful": [{"Id": "shard-0", "MessageId": "m0", "MD5OfMessageBody": "0" * 32}],
        "Failed": [{"Id": "shard-1", "SenderFault": False, "Code": "InternalError", "Message": "try again"},
                   {"Id": "shard-2", "SenderFault": True, "Code": "InvalidMessageContents", "Message": "bad"}]})
    stub.add_response("send_message_batch", _ok(["shard-1"]),
                      {"QueueUrl": URL, "Entries": [{"Id": "shard-1", "MessageBody": shards[1].body()}]})
    with stub:
        calls, unsent = fanout.send(client, URL, shards)
    stub.assert_no_pending_responses()
    assert calls == 2 and list(unsent) == [2] and "InvalidMessageContents" in unsent[2]


def test_an_entry_failing_every_attempt_and_a_failed_call_are_reported_not_lost() -> None:
    client, stub = _stubbed()
    shards = fanout.shard_messages("prescale", TICK, members(1), 1)
    for _ in range(fanout.SEND_ATTEMPTS):
        stub.add_response("send_message_batch", {"Successful": [], "Failed": [
            {"Id": "shard-0", "SenderFault": False, "Code": "InternalError", "Message": "down"}]})
    with stub:
        calls, unsent = fanout.send(client, URL, shards)
    assert calls == fanout.SEND_ATTEMPTS and f"attempt {fanout.SEND_ATTEMPTS}" in unsent[0]
    client, stub = _stubbed()
    stub.add_client_error("send_message_batch", "AccessDenied", "not authorized to perform: sqs:SendMessage",
                          http_status_code=403)
    with stub:
        calls, unsent = fanout.send(client, URL, shards)
    assert calls == 1 and "AccessDenied" in unsent[0]


def test_an_sqs_event_is_told_from_a_scheduled_one() -> None:
    assert fanout.is_sqs_event({"Records": [{"eventSource": "aws:sqs", "body": "{}"}]})
    for other in ({}, {"time": "2026-03-15T09:55:00Z"}, {"Records": []}, {"Records": [{"eventSource": "aws:s3"}]},
                  [], "x"):
        assert not fanout.is_sqs_event(other)
