"""The fleet tick beyond one invocation: fan-out on SQS (issue 11 §2).

A fleet larger than ``FLEET_SHARD_SIZE`` members is not ticked by the scheduled invocation itself.
That invocation is the **dispatcher**: it discovers the fleet (cached, :func:`prescaler.fleet.discover`),
releases departed members, puts the members the last tick did not reach first, splits the ordered
members into shards of at most ``FLEET_SHARD_SIZE`` and sends one SQS message per shard to the
function's own shard queue (``SendMessageBatch``: up to 10 entries and 256 KiB per call; a ``Failed``
entry that is not the sender's fault is sent again, up to :data:`SEND_ATTEMPTS` times in all).

The same function is the **worker**: the queue's event source mapping (BatchSize 1, partial batch
responses, ``MaximumConcurrency``) invokes it with one shard, and it runs
:func:`prescaler.fleet.run_tick` over that shard's members only (the same per-member code, isolation,
time budget; no discovery, no ``ListEndpoints``). Its members not reached are appended to the
fleet's not-reached list, which the next dispatcher takes first.

Why SQS and the same function (rather than a Step Functions Distributed Map, or a worker function
of its own): a tick every minute is a burst of a few messages, which SQS + Lambda serve at
$0.40 per million requests with no state machine to run (a Distributed Map bills every state
transition of every child and adds an execution per minute to watch); the worker needs exactly the
scaler's role, settings and code, which its own function would have to copy.

A message (:class:`ShardMessage`, JSON) carries the function (``prescale`` or ``relax``), the scheduled
tick time, the event id, the shard's index and the members (endpoint, variant and their
``prescaler:*`` setting tags: the worker cannot ``ListTags`` them all). A worker refuses a message:

- whose tick time is more than :data:`prescaler.service.MAX_EVENT_SKEW` (2 min) from its clock, the
  rule of :func:`prescaler.service.event_skew` (a late shard never acts on an old decision);
- whose body is unreadable, or meant for the other function.

A refused or failed message is reported in ``batchItemFailures``: with the queue's redrive
``maxReceiveCount`` of 1 it moves to the dead-letter queue instead of running again (it would be
stale by then) and the dead-letter alarm pages. A duplicate delivery is harmless: the ledger's
conditional writes (claim, intent, confirm) let one tick act per target and state; the second finds
nothing left to do.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any, Literal

import pandas as pd
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict, Field, Json

from prescaler import fleet, service
from prescaler.history import to_utc
from prescaler.observability import logger, mark_logged, metrics

#: SendMessageBatch: at most 10 entries per call, and 262,144 bytes for all their bodies together
#: (Amazon SQS API reference, SendMessageBatch).
MAX_BATCH_ENTRIES = 10
MAX_BATCH_BYTES = 262_144
#: Attempts per entry that SQS reports in ``Failed`` without ``SenderFault`` (botocore's retries
#: already cover a throttled or failed call as a whole).
SEND_ATTEMPTS = 3


class ShardMember(BaseModel):
    """One member as a shard message carries it (an inference component with ``component`` set; its
    endpoint and variant are empty when a listed component does not exist)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    endpoint_name: str = Field(max_length=63)
    variant_name: str = Field(max_length=63)
    tags: dict[str, str] = Field(default_factory=dict)
    component: str | None = Field(None, min_length=1, max_length=63)

    @classmethod
    def of(cls, member: fleet.Member) -> ShardMember:
        """Only the tags that set a member's settings travel (:data:`prescaler.fleet.TAG_SETTINGS`)."""
        return cls(endpoint_name=member.endpoint_name, variant_name=member.variant_name,
                   tags={k: v for k, v in member.tags.items() if k in fleet.TAG_SETTINGS},
                   component=member.component)

    def member(self) -> fleet.Member:
        return fleet.Member(self.endpoint_name, self.variant_name, dict(self.tags), self.component)


class ShardMessage(BaseModel):
    """The body of one shard message (JSON)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = 1
    function: Literal["prescale", "relax"]
    time: datetime = Field(description="the scheduled tick's reference time (ISO 8601 with offset)")
    event_id: str | None = None
    replay: bool = Field(False, description="the scheduled event asked to replay its time on purpose")
    shard: int = Field(ge=0)
    shards: int = Field(ge=1)
    members: list[ShardMember] = Field(min_length=1)

    def tick(self) -> service.Tick:
        return service.Tick(to_utc(self.time), self.event_id, "event", self.replay)

    def body(self) -> str:
        return self.model_dump_json(exclude_none=True)


class ShardRecord(SqsRecordModel):
    """An SQS record whose body is a :class:`ShardMessage` (Powertools parses and validates it)."""

    body: Json[ShardMessage]


# --------------------------------------------------------------------------------------------------
# the dispatcher


def shard_messages(function: str, tick: service.Tick, members: list[fleet.Member], size: int) -> list[ShardMessage]:
    """``members`` (already in tick order) cut into shards of at most ``size``; a shard whose body
    would exceed :data:`MAX_BATCH_BYTES` (long tags) is cut in two until it fits.

    Raises:
        ValueError: one member alone does not fit a message (cannot happen with SageMaker's name and
            tag limits: 63 + 63 characters and 7 tags of at most 256 characters).
    """
    chunks = [members[i:i + size] for i in range(0, len(members), size)]
    fitted: list[list[fleet.Member]] = []
    while chunks:
        chunk = chunks.pop(0)
        if len(_message(function, tick, chunk, 0, 1).body().encode()) <= MAX_BATCH_BYTES:
            fitted.append(chunk)
        elif len(chunk) == 1:
            raise ValueError(f"{chunk[0].resource_id}: its tags do not fit one SQS message")
        else:
            half = len(chunk) // 2
            chunks[:0] = [chunk[:half], chunk[half:]]
    return [_message(function, tick, chunk, i, len(fitted)) for i, chunk in enumerate(fitted)]


def _message(function: str, tick: service.Tick, chunk: list[fleet.Member], shard: int, shards: int) -> ShardMessage:
    return ShardMessage(function=function, time=tick.now.to_pydatetime(), event_id=tick.event_id,
                        replay=tick.replay, shard=shard, shards=shards, members=[ShardMember.of(m) for m in chunk])


def _batches(entries: list[dict]) -> Iterable[list[dict]]:
    """Entries packed in order into calls of at most 10 entries and 256 KiB of bodies."""
    batch: list[dict] = []
    size = 0
    for entry in entries:
        n = len(entry["MessageBody"].encode())
        if batch and (len(batch) == MAX_BATCH_ENTRIES or size + n > MAX_BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(entry)
        size += n
    if batch:
        yield batch


def send(client: Any, queue_url: str, messages: list[ShardMessage]) -> tuple[int, dict[int, str]]:
    """Send each message once to ``queue_url`` with ``SendMessageBatch``.

    An entry in the answer's ``Failed`` list is sent again unless ``SenderFault`` is true (a request
    that cannot succeed), up to :data:`SEND_ATTEMPTS` times; a call that fails as a whole (after
    botocore's retries) fails all its entries.

    Returns:
        (the number of ``SendMessageBatch`` calls, {shard index: why it was not sent}).
    """
    todo = [{"Id": f"shard-{m.shard}", "MessageBody": m.body()} for m in messages]
    unsent: dict[int, str] = {}
    calls = 0
    for attempt in range(1, SEND_ATTEMPTS + 1):
        retry: list[dict] = []
        for batch in _batches(todo):
            calls += 1
            try:
                answer = client.send_message_batch(QueueUrl=queue_url, Entries=batch)
            except (ClientError, BotoCoreError) as exc:
                for entry in batch:
                    unsent[_shard(entry)] = f"SendMessageBatch failed: {exc}"
                continue
            by_id = {e["Id"]: e for e in batch}
            for failed in answer.get("Failed", []):
                why = f"{failed.get('Code')}: {failed.get('Message', '')}".strip()
                if failed.get("SenderFault") or attempt == SEND_ATTEMPTS:
                    unsent[_shard(by_id[failed["Id"]])] = f"{why} (attempt {attempt})"
                else:
                    retry.append(by_id[failed["Id"]])
        if not retry:
            break
        logger.warning(f"{len(retry)} shard messages failed (not the sender's fault): sending them again",
                       extra={"attempt": attempt})
        todo = retry
    return calls, unsent


def _shard(entry: dict) -> int:
    return int(entry["Id"].removeprefix("shard-"))


class DispatchFailed(RuntimeError):
    """Some shards could not be sent: their members were not ticked (they go first next tick)."""


def dispatch(function: str, fs: fleet.FleetSettings, tick: service.Tick, ad: service.Adapters,
             sqs: Any, queue_url: str, members: list[fleet.Member], refreshed: bool,
             environ: Mapping[str, str]) -> dict:
    """Send the fleet's members as shards to ``queue_url`` (see the module's docstring).

    Args:
        members / refreshed: :func:`prescaler.fleet.discover`'s answer (the dispatcher's cache).
        environ: the stack's variables (each departed member's baseline).

    Returns:
        ``{"function", "fleet_mode", "now", "members", "dispatched": {"shards", "shard_size",
        "send_message_batch_calls", "unsent": {shard: why}}, "released": [...], "not_reached": [...]}``.

    Raises:
        DispatchFailed: after logging and counting, when some shards were not sent (the invocation
            fails so that the function's Errors alarm and the failure queue show it); their members
            are stored as not reached, to go first next tick.
    """
    assert ad.ledger is not None
    released, order = fleet.bookkeeping(function, ad, members, refreshed, environ, tick, take=True)
    ordered = sorted(members, key=lambda m: order.get(m.resource_id, len(order)))
    messages = shard_messages(function, tick, ordered, fs.fleet_shard_size)
    calls, unsent = send(sqs, queue_url, messages)
    not_sent = [x.member().resource_id for i in sorted(unsent) for x in messages[i].members]
    namespace = environ.get("METRICS_NAMESPACE", "SageMakerPrescaler")
    metrics.namespace = namespace
    for name, value in {"FleetMembers": len(members), "FleetShards": len(messages),
                        "FleetShardsUnsent": len(unsent),
                        "FleetReleased": sum(r["outcome"] == "released" for r in released)}.items():
        metrics.add_metric(name=name, unit="Count", value=value)
    summary = {
        "function": function, "fleet_mode": fs.fleet_mode, "now": tick.now.isoformat(), "members": len(members),
        "dispatched": {"shards": len(messages), "shard_size": fs.fleet_shard_size,
                       "send_message_batch_calls": calls, "unsent": unsent},
        "released": released, "not_reached": not_sent,
    }
    logger.info(f"fleet {function} tick: {len(members)} members sent as {len(messages) - len(unsent)} of "
                f"{len(messages)} shards of at most {fs.fleet_shard_size}", extra={"dispatched": summary["dispatched"]})
    if unsent:
        try:
            ad.ledger.add_pending(fleet.pending_key(function), not_sent, tick.now)
        except (ClientError, BotoCoreError) as exc:
            logger.warning(f"not-reached order not stored ({exc}): the next tick takes the usual order")
        logger.error(f"{len(unsent)} of {len(messages)} shards not sent ({len(not_sent)} members not ticked, "
                     f"first next tick): {unsent}", extra={"outcome": "dispatch_failed", "result": summary})
        raise mark_logged(DispatchFailed(f"{function}: {len(unsent)} of {len(messages)} shards not sent: {unsent}"))
    return summary


# --------------------------------------------------------------------------------------------------
# the worker


class ShardRefused(ValueError):
    """A shard message the worker does not run (stale, or for the other function)."""


def is_sqs_event(event: Any) -> bool:
    """True for an SQS event source mapping's event (``Records`` with ``eventSource`` ``aws:sqs``)."""
    records = event.get("Records") if isinstance(event, dict) else None
    return bool(records) and isinstance(records, list) and all(
        isinstance(r, dict) and r.get("eventSource") == "aws:sqs" for r in records)


def work(function: str, run: fleet.Run, fs: fleet.FleetSettings, event: dict, ad: service.Adapters,
         remaining_ms: Callable[[], int] | None = None,
         environ: Mapping[str, str] | None = None) -> tuple[dict, list[dict]]:
    """Run each shard record of an SQS event (Powertools' batch processor: partial batch response).

    Returns:
        (``{"batchItemFailures": [{"itemIdentifier": <messageId>}, ...]}``, the run shards' results):
        the failures are the records refused (stale, unreadable, the other function's) or failed;
        the handler returns the first alone, the shape Lambda reads.
    """
    done: list[dict] = []

    def one(record: ShardRecord) -> dict:
        message: ShardMessage = record.body
        tick = message.tick()
        if message.function != function:
            raise ShardRefused(f"a {message.function} shard on the {function} queue: refused")
        now = service.wall_clock()
        skew = service.event_skew(tick, now)
        if skew is not None:
            metrics.namespace = (environ or {}).get("METRICS_NAMESPACE") or metrics.namespace or "SageMakerPrescaler"
            metrics.add_metric(name="FleetShardStale", unit="Count", value=1)
            raise ShardRefused(f"shard {message.shard} of the {tick.now.isoformat()} tick is "
                               f"{skew / pd.Timedelta(minutes=1):.1f} min old at {now.isoformat()} (more than "
                               f"{service.MAX_EVENT_SKEW / pd.Timedelta(minutes=1):.0f} min): refused, nothing "
                               f"changed; a late shard must not act on an old decision")
        result = fleet.run_tick(function, run, fs, tick, ad, environ=environ, remaining_ms=remaining_ms,
                                members=[m.member() for m in message.members])
        result["shard"] = {"index": message.shard, "of": message.shards, "message_id": record.messageId}
        done.append(result)
        return result

    processor = BatchProcessor(event_type=EventType.SQS, model=ShardRecord, raise_on_entire_batch_failure=False)
    response = dict(process_partial_response(event=event, record_handler=one, processor=processor))
    for failed in processor.exceptions:
        _, exc, _ = failed
        logger.error(f"shard refused or failed: {exc}", extra={"outcome": "shard_failed"})
    for result in done:
        logger.info(f"fleet {function} shard {result['shard']['index'] + 1} of {result['shard']['of']}: "
                    f"{len(result['results'])} members, {result['outcomes']}", extra={"shard": result["shard"]})
    return response, done


