"""The decision ledger: one DynamoDB item per scalable target, written with conditional writes.

It records what the pre-scaler set, when and why, so the relaxer only lowers a MinCapacity the
pre-scaler set (an operator's change is left alone) and the watchdog knows how long a raise is held.

Item shape (table partition key ``scalable_target``, type S)::

    {
      "scalable_target": "endpoint/<name>/variant/<variant>",   # partition key
      "version": 7,                         # N, +1 on every write (optimistic concurrency)
      "owned_min_capacity": 6,              # N, the MinCapacity the pre-scaler set and still owns;
                                            #    absent when it owns nothing (at baseline)
      "owned_since": "2024-05-01T09:56:00+00:00",  # S, UTC, when that raise began (watchdog)
      "floor_min_capacity": 5,              # N, an operator's MinCapacity (above baseline) that the
                                            #    raise went over: a relax never goes below it; absent
                                            #    when the raise started from the baseline
      "watchdog_at": "2024-05-01T11:57:00+00:00",  # S, UTC, when the watchdog last relaxed a raise:
                                            #    no forecast-driven raise during its cool-off
      "last_action": "raise",               # S, raise | relax
      "updated_at": "2024-05-01T09:56:00+00:00",   # S, UTC, the tick's reference time
      "last_raise": {"min_capacity": 6, "previous_min_capacity": 2, "at": "...", "reason": "...",
                     "forecast_peak_invocations_per_minute": "13200.0", "pattern": "hourly",
                     "window_start": "...", "window_end": "...", "event_id": "..."},
      "last_relax": {... same keys ..., "desired_instances": 2},
      "preflight_prescale_at": "2024-05-01T09:00:00+00:00",  # S, UTC, the last DryRun preflight of
                                            #    that function (at most one an hour; also _relax_)
      "preflight_prescale_can_apply": true, # BOOL, its verdict (absent while one is in flight)
      "preflight_prescale_reason": "...",   # S, why
      "intent": {"action": "relax", "from_min": 6, "to_min": 2, "at": "...",   # M, present only
                 "owned_min_capacity": ..., "owned_since": ..., "floor_min_capacity": ...,
                 "watchdog_at": ..., "details": {...}}   # between the claim and its confirmation
    }

The preflight attributes are written without touching ``version`` (:meth:`Ledger.claim_preflight`
conditions on the time of the last preflight instead), so a preflight never makes a raise look like
a duplicate; a first raise is conditioned on ``attribute_not_exists(version)``.

A change is written in two steps around the Application Auto Scaling call: :meth:`Ledger.intend`
records the intent (ownership unchanged) before the call, :meth:`Ledger.confirm` writes the new
ownership and removes the intent after it. A tick killed in between (timeout, OOM) leaves the intent;
the next tick compares it with the target's actual MinCapacity and confirms it (the call was made)
or discards it (it was not), so ownership always matches what the pre-scaler really did.

Every write is conditioned on the version it read (``attribute_not_exists`` for a new item): two
ticks that read the same state cannot both act, and a duplicate delivery after the first has acted
reads the new state and finds nothing left to do.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd
from botocore.exceptions import ClientError

from prescaler.history import to_utc

PARTITION_KEY = "scalable_target"


@dataclass(frozen=True)
class Intent:
    """A MinCapacity change claimed but not (yet) confirmed: what the ledger will say once it is."""

    action: str  # raise | relax
    from_min: int
    to_min: int
    at: pd.Timestamp  # the claiming tick's reference time (UTC)
    owned_min_capacity: int | None = None
    owned_since: pd.Timestamp | None = None
    floor_min_capacity: int | None = None
    watchdog_at: pd.Timestamp | None = None
    details: dict[str, object] = field(default_factory=dict)

    def to_item(self) -> dict:
        return _record_map({
            "action": self.action, "from_min": self.from_min, "to_min": self.to_min,
            "at": to_utc(self.at).isoformat(), "owned_min_capacity": self.owned_min_capacity,
            "owned_since": to_utc(self.owned_since).isoformat() if self.owned_since is not None else None,
            "floor_min_capacity": self.floor_min_capacity,
            "watchdog_at": to_utc(self.watchdog_at).isoformat() if self.watchdog_at is not None else None,
            "details": self.details,
        })

    @classmethod
    def from_item(cls, item: dict) -> Intent:
        m = {k: _plain(v) for k, v in item.get("M", {}).items()}
        def ts(key: str) -> pd.Timestamp | None:
            return to_utc(str(m[key])) if m.get(key) else None
        def num(key: str) -> int | None:
            return int(m[key]) if m.get(key) is not None else None  # type: ignore[call-overload]
        details = m.get("details")
        return cls(str(m["action"]), int(m["from_min"]), int(m["to_min"]),  # type: ignore[call-overload]
                   to_utc(str(m["at"])), num("owned_min_capacity"), ts("owned_since"),
                   num("floor_min_capacity"), ts("watchdog_at"), details if isinstance(details, dict) else {})


@dataclass(frozen=True)
class LedgerEntry:
    """What the ledger says about one scalable target (``version`` 0: no item yet)."""

    scalable_target: str
    version: int = 0
    owned_min_capacity: int | None = None
    owned_since: pd.Timestamp | None = None
    floor_min_capacity: int | None = None
    last_action: str | None = None
    watchdog_at: pd.Timestamp | None = None
    preflight: dict[str, Preflight] | None = None
    intent: Intent | None = None
    #: the MinCapacity the last relax of ours lowered from, and when (from ``last_relax``)
    last_relax_from: int | None = None
    last_relax_at: pd.Timestamp | None = None


@dataclass(frozen=True)
class Preflight:
    """The last DryRun preflight of one function: when, and whether it could apply (None: in flight)."""

    at: pd.Timestamp
    can_apply: bool | None
    reason: str


def _s(value: object) -> dict:
    return {"S": str(value)}


def _record_map(record: dict[str, object]) -> dict:
    out = {}
    for k, v in record.items():
        if v is None:
            continue
        if isinstance(v, dict):
            out[k] = _record_map(v)
        else:
            out[k] = {"N": str(v)} if isinstance(v, int | float) and not isinstance(v, bool) else _s(v)
    return {"M": out}


def _plain(value: dict) -> object:
    """A DynamoDB attribute value written by :func:`_record_map` back to a Python value."""
    if "M" in value:
        return {k: _plain(v) for k, v in value["M"].items()}
    if "N" in value:
        n = float(value["N"])
        return int(n) if n.is_integer() else n
    return value.get("S")


class Ledger:
    """Adapter over a boto3 ``dynamodb`` client and the ledger table."""

    def __init__(self, client: Any, table_name: str) -> None:
        self.client = client
        self.table = table_name

    def get(self, scalable_target: str) -> LedgerEntry:
        """The entry for ``scalable_target`` (strongly consistent read); version 0 when absent."""
        item = self.client.get_item(
            TableName=self.table, Key={PARTITION_KEY: _s(scalable_target)}, ConsistentRead=True
        ).get("Item")
        if not item:
            return LedgerEntry(scalable_target)
        owned = item.get("owned_min_capacity", {}).get("N")
        since = item.get("owned_since", {}).get("S")
        floor = item.get("floor_min_capacity", {}).get("N")
        watchdog = item.get("watchdog_at", {}).get("S")
        last_relax = item.get("last_relax", {}).get("M", {})
        relax_from = last_relax.get("previous_min_capacity", {}).get("N")
        relax_at = last_relax.get("at", {}).get("S")
        preflight = {}
        for function in ("prescale", "relax"):
            at = item.get(f"preflight_{function}_at", {}).get("S")
            if at:
                preflight[function] = Preflight(
                    to_utc(at),
                    item.get(f"preflight_{function}_can_apply", {}).get("BOOL"),
                    item.get(f"preflight_{function}_reason", {}).get("S", ""),
                )
        return LedgerEntry(
            scalable_target,
            version=int(item.get("version", {}).get("N", "0")),
            owned_min_capacity=int(owned) if owned is not None else None,
            owned_since=to_utc(since) if since else None,
            floor_min_capacity=int(floor) if floor is not None else None,
            last_action=item.get("last_action", {}).get("S"),
            watchdog_at=to_utc(watchdog) if watchdog else None,
            preflight=preflight,
            intent=Intent.from_item(item["intent"]) if "intent" in item else None,
            last_relax_from=int(relax_from) if relax_from is not None else None,
            last_relax_at=to_utc(relax_at) if relax_at else None,
        )

    def owned(self) -> list[LedgerEntry]:
        """Every entry that owns a raised MinCapacity (a paginated, strongly consistent ``Scan``
        filtered on ``owned_min_capacity``): what the fleet checks against its members so that an
        endpoint that left the fleet is not left raised."""
        keys: list[str] = []
        pages = self.client.get_paginator("scan").paginate(
            TableName=self.table, FilterExpression="attribute_exists(owned_min_capacity)",
            ProjectionExpression=PARTITION_KEY, ConsistentRead=True,
        )
        for page in pages:
            keys.extend(item[PARTITION_KEY]["S"] for item in page.get("Items", []))
        return [self.get(key) for key in keys]  # each read as get() reads it (few: the raised ones)

    def pending(self, key: str) -> list[str]:
        """The list stored under ``key`` (the fleet's endpoints not reached by the last tick, to be
        taken first by the next); empty when absent. ``key`` must not be a resource id."""
        got = self.client.get_item(TableName=self.table, Key={PARTITION_KEY: _s(key)}, ConsistentRead=True)
        return [v["S"] for v in got.get("Item", {}).get("pending", {}).get("L", [])]

    def set_pending(self, key: str, ids: list[str], now: pd.Timestamp) -> None:
        """Store ``ids`` under ``key`` (last writer wins: the order is a hint, never a claim)."""
        self.client.put_item(
            TableName=self.table,
            Item={
                PARTITION_KEY: _s(key),
                "pending": {"L": [_s(i) for i in ids]},
                "updated_at": _s(to_utc(now).isoformat()),
            },
        )

    def add_pending(self, key: str, ids: list[str], now: pd.Timestamp) -> None:
        """Append ``ids`` to the list under ``key`` in one ``UpdateItem`` (``list_append``): the
        shards of a fanned-out tick, running at once, each add theirs and none is lost."""
        if not ids:
            return
        self.client.update_item(
            TableName=self.table,
            Key={PARTITION_KEY: _s(key)},
            UpdateExpression="SET pending = list_append(if_not_exists(pending, :empty), :ids), updated_at = :now",
            ExpressionAttributeValues={":empty": {"L": []}, ":ids": {"L": [_s(i) for i in ids]},
                                       ":now": _s(to_utc(now).isoformat())},
        )

    def take_pending(self, key: str) -> list[str]:
        """The list under ``key``, read and removed in one conditional ``UpdateItem`` (``REMOVE``,
        ``ReturnValues=ALL_OLD``): what shards appended after it goes to the next tick, not lost."""
        try:
            got = self.client.update_item(
                TableName=self.table,
                Key={PARTITION_KEY: _s(key)},
                UpdateExpression="REMOVE pending",
                ConditionExpression="attribute_exists(pending)",
                ReturnValues="ALL_OLD",
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return []
            raise
        return [v["S"] for v in got.get("Attributes", {}).get("pending", {}).get("L", [])]

    def record(
        self,
        entry: LedgerEntry,
        action: str,
        *,
        owned_min_capacity: int | None,
        owned_since: pd.Timestamp | None,
        now: pd.Timestamp,
        details: dict[str, object],
        floor_min_capacity: int | None = None,
        watchdog_at: pd.Timestamp | None = None,
    ) -> bool:
        """Record a raise or relax on top of ``entry`` (conditional on its version).

        Args:
            entry: what was read before deciding.
            action: ``raise`` or ``relax``.
            owned_min_capacity / owned_since: the ownership after the change (None: owns nothing).
            floor_min_capacity: an operator's MinCapacity the owned raise went over (kept only while
                something is owned).
            now: the tick's reference time (UTC).
            details: what, when, why, forecast (stored under ``last_<action>``).
            watchdog_at: set when this relax is the watchdog's (kept until the next one).

        Returns:
            True when written; False when another tick wrote first (nothing was written).
        """
        names = {"#v": "version", "#rec": f"last_{action}"}
        values: dict[str, Any] = {
            ":next": {"N": str(entry.version + 1)},
            ":action": _s(action),
            ":now": _s(to_utc(now).isoformat()),
            ":rec": _record_map(details),
        }
        sets = ["#v = :next", "last_action = :action", "updated_at = :now", "#rec = :rec"]
        removes: list[str] = ["intent"]  # a confirmed write settles any intent
        if watchdog_at is not None:
            sets.append("watchdog_at = :watchdog")
            values[":watchdog"] = _s(to_utc(watchdog_at).isoformat())
        if owned_min_capacity is None or floor_min_capacity is None:
            removes.append("floor_min_capacity")
        else:
            sets.append("floor_min_capacity = :floor")
            values[":floor"] = {"N": str(int(floor_min_capacity))}
        if owned_min_capacity is None:
            removes += ["owned_min_capacity", "owned_since"]
        else:
            sets += ["owned_min_capacity = :owned", "owned_since = :since"]
            values[":owned"] = {"N": str(int(owned_min_capacity))}
            values[":since"] = _s(to_utc(owned_since if owned_since is not None else now).isoformat())
        expr = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        return self._update(entry, expr, names, values)

    def _update(self, entry: LedgerEntry, expr: str, names: dict[str, str], values: dict[str, Any]) -> bool:
        """One conditional UpdateItem on top of ``entry``'s version; False when another tick wrote first."""
        if entry.version == 0:
            condition = "attribute_not_exists(#v)"  # no raise/relax yet (a preflight may have written)
        else:
            condition = "#v = :seen"
            values[":seen"] = {"N": str(entry.version)}
        try:
            self.client.update_item(
                TableName=self.table,
                Key={PARTITION_KEY: _s(entry.scalable_target)},
                UpdateExpression=expr,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def claim_preflight(self, scalable_target: str, function: str, now: pd.Timestamp,
                        every: pd.Timedelta) -> bool:
        """Claim this hour's DryRun preflight for ``function`` (conditional: no preflight in the last
        ``every``). Returns False when one was made (or claimed by a concurrent tick) within it."""
        at = f"preflight_{function}_at"
        try:
            self.client.update_item(
                TableName=self.table,
                Key={PARTITION_KEY: _s(scalable_target)},
                UpdateExpression="SET #at = :now REMOVE #ok, #why",
                ConditionExpression="attribute_not_exists(#at) OR #at <= :due",
                ExpressionAttributeNames={"#at": at, "#ok": f"preflight_{function}_can_apply",
                                          "#why": f"preflight_{function}_reason"},
                ExpressionAttributeValues={":now": _s(to_utc(now).isoformat()),
                                           ":due": _s(to_utc(now - every).isoformat())},
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def record_preflight(self, scalable_target: str, function: str, can_apply: bool | None, reason: str) -> None:
        """Store the verdict of the preflight claimed by :meth:`claim_preflight`."""
        names = {"#ok": f"preflight_{function}_can_apply", "#why": f"preflight_{function}_reason"}
        values: dict[str, Any] = {":why": _s(reason)}
        if can_apply is None:
            expr = "SET #why = :why REMOVE #ok"
        else:
            expr = "SET #ok = :ok, #why = :why"
            values[":ok"] = {"BOOL": can_apply}
        self.client.update_item(TableName=self.table, Key={PARTITION_KEY: _s(scalable_target)},
                                UpdateExpression=expr, ExpressionAttributeNames=names,
                                ExpressionAttributeValues=values)

    def intend(self, entry: LedgerEntry, intent: Intent, now: pd.Timestamp) -> LedgerEntry | None:
        """Claim a change before making it: record ``intent`` on top of ``entry`` (conditional on its
        version), ownership unchanged. Returns the entry as written, or None when another tick wrote
        first (nothing was written)."""
        names = {"#v": "version"}
        values: dict[str, Any] = {":next": {"N": str(entry.version + 1)}, ":intent": intent.to_item(),
                                  ":now": _s(to_utc(now).isoformat())}
        if not self._update(entry, "SET #v = :next, intent = :intent, updated_at = :now", names, values):
            return None
        return replace(entry, version=entry.version + 1, intent=intent)

    def confirm(self, entry: LedgerEntry, now: pd.Timestamp) -> bool:
        """The claimed change was made: write the ownership ``entry.intent`` describes and remove the
        intent (conditional on ``entry``'s version). False when another tick wrote first."""
        intent = entry.intent
        if intent is None:
            raise ValueError("no intent to confirm")
        return self.record(entry, intent.action, owned_min_capacity=intent.owned_min_capacity,
                           owned_since=intent.owned_since, now=now, details=intent.details,
                           floor_min_capacity=intent.floor_min_capacity, watchdog_at=intent.watchdog_at)

    def discard(self, entry: LedgerEntry, now: pd.Timestamp, reason: str) -> bool:
        """The claimed change was not made: remove the intent, ownership as it was (conditional on
        ``entry``'s version). False when another tick wrote first."""
        names = {"#v": "version"}
        values: dict[str, Any] = {":next": {"N": str(entry.version + 1)}, ":now": _s(to_utc(now).isoformat()),
                                  ":why": _record_map({"at": to_utc(now).isoformat(), "reason": reason})}
        return self._update(entry, "SET #v = :next, updated_at = :now, last_discarded = :why REMOVE intent",
                            names, values)
