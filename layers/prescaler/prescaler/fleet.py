"""The fleet: one deployment pre-scales many endpoint variants and inference components, each with
its own settings.

A layer above the per-variant tick (:func:`prescaler.service.prescale` / :func:`~prescaler.service.relax`
run unchanged for each member):

1. **Membership** (``FLEET_MODE``): ``single`` (the classic one-variant stack, ``ENDPOINT_NAME``),
   ``list`` (``FLEET_ENDPOINTS = "endpoint-a, endpoint-b/VariantB, inference-component:llama-8b"``;
   a name without ``/variant`` uses ``VARIANT_NAME``; ``inference-component:<name>`` is an inference
   component: the colon cannot occur in an endpoint or variant name, so the entry never reads as
   one) or ``tag`` (every endpoint tagged ``prescaler:enabled = true``, the ``prescaler:variant`` tag
   naming its variant(s), comma-separated; and every inference component tagged
   ``prescaler:enabled = true``). An explicit list wins: when ``FLEET_ENDPOINTS`` is set, ``tag``
   mode uses it. Discovery (``ListEndpoints``, ``ListInferenceComponents`` + ``ListTags`` per
   resource, or in tag mode with ``FLEET_DISCOVERY=tagging-api`` the Tagging API's ``GetResources``,
   100 resources a call: :mod:`prescaler.aws.discovery`) is cached
   for ``FLEET_DISCOVERY_TTL_SECONDS`` (default 300 s) across warm invocations. A component member
   scales ``inference-component/<name>`` (its copy count) and reads ``Invocations`` by
   ``InferenceComponentName``, exactly as a single-mode tick with ``INFERENCE_COMPONENT_NAME`` does;
   its endpoint and variant are the ones hosting it (from ``ListInferenceComponents``).
2. **Settings per member**: the stack's variables are the defaults; the tags in :data:`TAG_SETTINGS`
   override them, validated by the same pydantic model (:class:`prescaler.settings.ScalerSettings`).
   A bad tag value makes that member ``invalid_settings`` (logged with the tag's name, counted with
   the endpoint's dimensions) and the others go on. A component's ``prescaler:baseline`` may be 0
   (scale to zero), a variant's may not (:class:`prescaler.settings.ScalerSettings`).
3. **One batched read**: the members' ``Invocations`` history, and the instance-metric heartbeat
   that says how far SageMaker has published, are read with :func:`prescaler.aws.cloudwatch.read_many`
   (500 queries per ``GetMetricData`` call, every page; variants and components in the same calls)
   and handed to each member's tick, which would otherwise make both reads itself. A component's
   heartbeat is its hosting variant's, as in a single-mode component tick.
4. **Isolation and a time budget**: an exception, throttling or a missing target gives that member
   its outcome (``error``, ``throttled``, ``target_missing``) and the tick goes on. Before each member
   the remaining time (Lambda context) must cover ``FLEET_RESERVE_SECONDS`` (to record) plus the
   slowest member so far; members not reached are reported, counted (``FleetNotReached``) and stored
   in the ledger table so the next tick takes them first.
5. **Departures**: on each discovery refresh, every ledger entry that owns a raised MinCapacity but
   is no longer a member (untagged, removed from the list, endpoint or component deleted;
   ``endpoint/...`` and ``inference-component/...`` entries alike) is released: its
   MinCapacity goes back to the floor it was raised from (or the stack's baseline) when the target
   still exists, and its ledger entry is closed (``last_action = release``).

Each member's EMF metrics are flushed as their own blob with ``EndpointName`` / ``VariantName``
dimensions (a component member: its hosting endpoint and variant plus ``InferenceComponentName``, as
a single-mode component tick emits them, so two components on one endpoint stay two metrics; the
dashboard searches both dimension sets); the fleet totals (``FleetMembers``, ``FleetNotReached``,
``FleetInvalidSettings``, ``FleetErrors``, ``FleetThrottled``, ``FleetReleased``) go out with the
function's default dimensions.
"""

from __future__ import annotations

import os
import re
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import pandas as pd
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from prescaler import service
from prescaler.aws import clients, discovery
from prescaler.aws.autoscaling import COMPONENT_PREFIX, component_resource_id, resource_id
from prescaler.aws.cloudwatch import Component, MetricHistory, MetricReadError, MetricSource, Variant, read_many
from prescaler.aws.errors import THROTTLING_CODES
from prescaler.aws.ledger import Intent, LedgerEntry
from prescaler.history import MAX_HISTORY, complete_end
from prescaler.observability import logger, mark_logged, metrics
from prescaler.settings import COMPONENT_NAME, SAGEMAKER_NAME, ScalerSettings, SettingsError, load

ENABLED_TAG = "prescaler:enabled"
VARIANT_TAG = "prescaler:variant"
#: Tag -> the settings variable it overrides for that endpoint (values validated like the variable).
TAG_SETTINGS: dict[str, str] = {
    "prescaler:baseline": "BASELINE_MIN_CAPACITY",
    "prescaler:prescale-cap": "PRESCALE_MAX_CAPACITY",
    "prescaler:target-per-instance": "TARGET_INVOCATIONS_PER_INSTANCE",
    "prescaler:headroom": "HEADROOM",
    "prescaler:dry-run": "DRY_RUN",
    "prescaler:timezone": "SCHEDULE_TIMEZONE",
    "prescaler:prompt-scale-in": "PROMPT_SCALE_IN",
}
_NAME = re.compile(SAGEMAKER_NAME)
_COMPONENT_NAME = re.compile(COMPONENT_NAME)
#: FLEET_ENDPOINTS entry prefix for an inference component (``inference-component:<name>``).
COMPONENT_ENTRY = "inference-component:"

#: :func:`prescaler.service.prescale` or :func:`prescaler.service.relax`: (settings, tick, adapters) -> result.
Run = Callable[..., dict]
#: Members one invocation ticks before the tick fans out on SQS (``FLEET_SHARD_SIZE``). Measured with
#: ``tests/bench/fleet_tick.py --shards`` (README "Deploy for a fleet"): a cold shard of this size
#: fits the 60 s timeout less the reserve with a margin for a loaded machine and network latency.
DEFAULT_SHARD_SIZE = 100


class FleetSettings(BaseSettings):
    """The fleet's own variables (the per-member defaults are :class:`ScalerSettings`'s)."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True)

    fleet_mode: Literal["single", "list", "tag"] = Field("single", description="FLEET_MODE")
    fleet_endpoints: str = Field(
        "", description="FLEET_ENDPOINTS: 'a, b/VariantB, inference-component:c' (wins over tags)")
    variant_name: str = Field("AllTraffic", pattern=SAGEMAKER_NAME, description="VARIANT_NAME default")
    fleet_discovery: Literal["list-tags", "tagging-api"] = Field(
        "list-tags", description="FLEET_DISCOVERY: how tag mode reads tags: SageMaker ListTags per endpoint, or the "
                                 "Resource Groups Tagging API's GetResources, 100 tagged resources a call "
                                 "(prescaler.aws.discovery)")
    fleet_discovery_ttl_seconds: int = Field(300, ge=0, le=3600, description="FLEET_DISCOVERY_TTL_SECONDS")
    fleet_reserve_seconds: float = Field(10.0, ge=1, le=600, description="FLEET_RESERVE_SECONDS to record")
    ledger_table_name: str | None = Field(None, pattern=r"^[a-zA-Z0-9_.-]{3,255}$", description="LEDGER_TABLE_NAME")
    fleet_shard_size: int = Field(
        DEFAULT_SHARD_SIZE, ge=1, le=5000,
        description="FLEET_SHARD_SIZE: members one invocation ticks; a larger fleet fans out on SQS (prescaler.fanout)")
    fleet_shard_queue_url: str = Field(
        "", description="FLEET_SHARD_QUEUE_URL: the function's shard queue (empty: never fan out)")

    @model_validator(mode="after")
    def _consistent(self) -> FleetSettings:
        if self.fleet_mode == "list" and not self.listed():
            raise ValueError("FLEET_MODE=list needs FLEET_ENDPOINTS (comma-separated endpoint[/variant] or "
                             "inference-component:<name>)")
        self.listed()  # raises on a malformed entry
        return self

    def listed(self) -> list[Variant | Component]:
        """``FLEET_ENDPOINTS`` as (endpoint, variant) pairs and :class:`Component` s, in order,
        without duplicates.

        Raises:
            ValueError: an entry that is not ``endpoint``, ``endpoint/variant`` (SageMaker names) or
                ``inference-component:<name>`` (an InferenceComponentName).
        """
        out: list[Variant | Component] = []
        for raw in self.fleet_endpoints.replace("\n", ",").split(","):
            entry = raw.strip()
            if not entry:
                continue
            if entry.lower().startswith(COMPONENT_ENTRY):
                component = entry[len(COMPONENT_ENTRY):].strip()
                if not _COMPONENT_NAME.match(component):
                    raise ValueError(f"FLEET_ENDPOINTS entry {entry!r}: {component!r} is not an inference "
                                     f"component name")
                out.append(Component(component))
                continue
            name, _, variant = entry.partition("/")
            variant = variant or self.variant_name
            if not _NAME.match(name) or not _NAME.match(variant):
                raise ValueError(f"FLEET_ENDPOINTS entry {entry!r} is not endpoint or endpoint/variant")
            out.append((name, variant))
        return list(dict.fromkeys(out))


@dataclass(frozen=True)
class Member:
    """One endpoint variant, or one inference component, in the fleet, with its tags.

    A component member (``component`` set) carries the endpoint and variant hosting it
    (``ListInferenceComponents``; empty when a listed component does not exist) and its own tags.
    """

    endpoint_name: str
    variant_name: str
    tags: Mapping[str, str] = field(default_factory=dict)
    component: str | None = None

    @property
    def resource_id(self) -> str:
        """The scalable target's resource id: ``endpoint/<e>/variant/<v>`` or ``inference-component/<c>``."""
        if self.component:
            return component_resource_id(self.component)
        return resource_id(self.endpoint_name, self.variant_name)

    @property
    def label(self) -> str:
        """How logs and errors name the member: ``endpoint/variant`` or ``inference-component/<name>``."""
        return self.resource_id if self.component else f"{self.endpoint_name}/{self.variant_name}"


def member_settings(member: Member, environ: Mapping[str, str]) -> ScalerSettings:
    """The member's settings: ``environ`` (the stack's variables) overridden by its tags.

    Raises:
        SettingsError: naming the tag (``tag prescaler:headroom='lots': ...``) or the variable.
    """
    env = {k.upper(): v for k, v in environ.items()}
    env["ENDPOINT_NAME"] = member.endpoint_name
    env["VARIANT_NAME"] = member.variant_name
    # a component member scales its copies; a variant member never inherits the stack's component
    env["INFERENCE_COMPONENT_NAME"] = member.component or ""
    from_tags = {}
    for tag, var in TAG_SETTINGS.items():
        if tag in member.tags:
            env[var] = member.tags[tag].strip()
            from_tags[var] = tag
    try:
        return load(ScalerSettings, env)
    except SettingsError as exc:
        msg = str(exc)
        for var, tag in from_tags.items():
            if f"{var}=" in msg:  # a field's error: VAR='value'
                msg = msg.replace(f"{var}=", f"tag {tag}=")
            else:  # a rule across fields names the variable only
                msg = msg.replace(var, f"{var} (tag {tag}={env[var]!r})")
        raise SettingsError(f"{member.label}: {msg}") from None


# --------------------------------------------------------------------------------------------------
# discovery (cached across warm invocations)

_CACHE: dict[tuple[str, str, str, str], tuple[float, list[Member]]] = {}


def clear_cache() -> None:
    """Forget the cached membership and histories (tests; the next tick discovers and reads again)."""
    _CACHE.clear()
    _HISTORY.clear()


def _enabled(tags: Mapping[str, str]) -> bool:
    return tags.get(ENABLED_TAG, "").strip().lower() == "true"


def _tag_variants(tags: Mapping[str, str], default: str) -> list[str]:
    named = [v.strip() for v in tags.get(VARIANT_TAG, "").split(",") if v.strip()]
    return named or [default]


def _safe_tags(client: Any, kind: str, name: str, arn: str) -> dict[str, str] | None:
    try:
        return discovery.tags(client, arn)
    except ClientError as exc:  # deleted between the List call and ListTags, or not readable
        logger.warning(
            f"tags of {kind} {name} unreadable ({exc.response.get('Error', {}).get('Code')}): skipped",
            extra={"resource_name": name},
        )
        return None


def discover(client: Any, fs: FleetSettings, clock: Callable[[], float] = time.monotonic,
             tagging: Any = None) -> tuple[list[Member], bool]:
    """The fleet's members, from the cache when younger than the TTL.

    ``client`` is a SageMaker client; ``tagging`` a ``resourcegroupstaggingapi`` client, used in tag
    mode when ``FLEET_DISCOVERY=tagging-api`` (None: :func:`prescaler.aws.clients.client`'s). An
    explicit list always reads its members' tags with ``ListTags`` (it names them; no search).

    Returns:
        (members, refreshed): ``refreshed`` is True when SageMaker was asked this time and answered
        in full. When ``ListInferenceComponents`` fails, the components of the last discovery stay
        members, ``refreshed`` is False (no departures on a partial view) and nothing is cached, so
        the next tick asks again. When ``GetResources`` fails (tagging-api), the last discovery's
        members stay (none on a cold start), ``refreshed`` is False and nothing is cached.
    """
    key = (fs.fleet_mode, fs.fleet_endpoints, fs.variant_name, fs.fleet_discovery)
    cached = _CACHE.get(key)
    if cached is not None and clock() - cached[0] < fs.fleet_discovery_ttl_seconds:
        return cached[1], False
    endpoints = {e.name: e for e in discovery.list_endpoints(client)}
    members: list[Member] = []
    listed = fs.listed()
    # components are listed only when some may be members (tag mode, or a component in the list)
    known = {m.component: m for m in (cached[1] if cached else []) if m.component}
    components: dict[str, discovery.ComponentInfo] = {}
    components_listed = True
    if not listed or any(isinstance(e, Component) for e in listed):
        try:
            components = {c.name: c for c in discovery.list_inference_components(client)}
        except (ClientError, BotoCoreError) as exc:
            # never a guess: the last known component members stay, nothing departs, asked again next tick
            components_listed = False
            logger.warning(f"ListInferenceComponents failed ({exc}): the fleet keeps its {len(known)} known "
                           f"inference components this tick; departures wait for a complete discovery")
    if listed:  # an explicit list wins over tags; tags still give each member its settings
        tag_cache: dict[str, dict[str, str]] = {}
        for entry in listed:
            if isinstance(entry, Component):
                c = components.get(entry.name)
                if not components_listed:
                    if entry.name in known:
                        members.append(known[entry.name])
                elif c is None:  # not found: the member's outcome says so (run_tick)
                    members.append(Member("", fs.variant_name, {}, entry.name))
                else:
                    members.append(Member(c.endpoint_name, c.variant_name,
                                          _safe_tags(client, "inference component", c.name, c.arn) or {}, c.name))
                continue
            name, variant = entry
            info = endpoints.get(name)
            if info is not None and name not in tag_cache:
                tag_cache[name] = _safe_tags(client, "endpoint", info.name, info.arn) or {}
            members.append(Member(name, variant, tag_cache.get(name, {})))
    else:
        tagged: dict[str, dict[str, str]] = {}
        if fs.fleet_discovery == "tagging-api":
            try:
                tagged = discovery.tagged_resources(tagging or clients.client("resourcegroupstaggingapi"), ENABLED_TAG)
            except (ClientError, BotoCoreError) as exc:  # never a guess: nothing joins, nothing departs
                kept = cached[1] if cached else []
                logger.warning(f"GetResources failed ({exc}): the fleet keeps its {len(kept)} known members this "
                               f"tick; departures wait for a complete discovery")
                return kept, False

        def read(kind: str, name: str, arn: str) -> dict[str, str] | None:
            if fs.fleet_discovery == "tagging-api":
                return tagged.pop(arn.lower(), None)
            return _safe_tags(client, kind, name, arn)

        for info in endpoints.values():
            tags = read("endpoint", info.name, info.arn)
            if tags is not None and _enabled(tags):
                members.extend(Member(info.name, v, tags) for v in _tag_variants(tags, fs.variant_name))
        for c in components.values():
            tags = read("inference component", c.name, c.arn)
            if tags is not None and _enabled(tags):
                members.append(Member(c.endpoint_name, c.variant_name, tags, c.name))
        for arn in sorted(tagged):  # the Tagging API still lists a resource deleted since (eventually consistent)
            if components_listed or ":endpoint/" in arn:
                logger.info(f"{arn} is tagged {ENABLED_TAG} but SageMaker does not list it (deleted): skipped",
                            extra={"resource_arn": arn})
        if not components_listed:
            members.extend(known.values())
    if not components_listed:
        return members, False
    previous = {m.resource_id for m in cached[1]} if cached else set()
    for gone in sorted(previous - {m.resource_id for m in members}):
        logger.info(f"{gone} left the fleet (untagged, unlisted or deleted): dropped", extra={"resource_id": gone})
    _CACHE[key] = (clock(), members)
    logger.info(f"fleet discovered: {len(members)} members", extra={"fleet_mode": fs.fleet_mode})
    return members, True


# --------------------------------------------------------------------------------------------------
# the tick


def _dims(member: Member, namespace: str) -> None:
    """The member's EMF dimensions: its (hosting) endpoint and variant, plus ``InferenceComponentName``
    for a component (the dashboard's fleet widgets search both dimension sets)."""
    metrics.namespace = namespace
    metrics.add_dimension(name="EndpointName", value=member.endpoint_name or "(not found)")
    metrics.add_dimension(name="VariantName", value=member.variant_name)
    if member.component:
        metrics.add_dimension(name="InferenceComponentName", value=member.component)


def _flush() -> None:
    """One EMF blob for the member just done (its dimensions), then a clean slate for the next."""
    if metrics.metric_set:
        metrics.flush_metrics()
    else:
        metrics.clear_metrics()


def _member_result(function: str, member: Member, tick: service.Tick, outcome: str, reason: str) -> dict:
    out = {
        "function": function,
        "endpoint_name": member.endpoint_name,
        "variant_name": member.variant_name,
        "now": tick.now.isoformat(),
        "action": "hold" if outcome != "invalid_settings" else "error",
        "outcome": outcome,
        "reason": reason,
    }
    if member.component:
        out["inference_component_name"] = member.component
    return out


def _isolated(function: str, run: Run, member: Member, settings: ScalerSettings, tick: service.Tick,
              ad: service.Adapters) -> dict:
    """One member's tick; whatever it raises becomes that member's outcome."""
    try:
        return run(settings, tick, ad)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        outcome = "throttled" if code in THROTTLING_CODES else "error"
        reason = f"hold: {exc.operation_name} answered {code} after botocore's retries; the other endpoints go on"
    except Exception as exc:  # isolation: one endpoint's failure is its own outcome, never the fleet's
        logger.exception(f"{member.resource_id}: {type(exc).__name__}")
        outcome, reason = "error", f"hold: {type(exc).__name__}: {exc}; the other endpoints go on"
    _dims(member, settings.metrics_namespace)
    metrics.add_metric(name="Throttled" if outcome == "throttled" else "EndpointError", unit="Count", value=1)
    logger.error(reason, extra={"outcome": outcome, "resource_id": member.resource_id})
    return _member_result(function, member, tick, outcome, reason)


#: Minutes re-read on every warm tick before the newest cached minute: CloudWatch publishes late.
LATE_DATA = pd.Timedelta(minutes=15)
#: (endpoint, variant) -> the history the last tick of this warm process read (up to its edge).
_HISTORY: dict[MetricSource, MetricHistory] = {}


def _merge(cached: MetricHistory, recent: MetricHistory, since: pd.Timestamp, lo: pd.Timestamp, hi: pd.Timestamp,
           published_until: pd.Timestamp | None) -> MetricHistory:
    """The history a full read of ``[lo, hi)`` would give, from the cached part before ``since`` and
    a fresh read of ``[since, hi)``: zero-filled only up to the published edge (the newest datapoint's
    minute + 1, or ``published_until`` when later), as :func:`read_many` does. ``datapoints`` counts
    the fresh read plus the cached minutes with traffic (it only has to say empty or not)."""
    old = cached.series[(cached.series.index >= lo) & (cached.series.index < since)]
    newest = max((t for t in (cached.newest, recent.newest) if t is not None), default=None)
    edge = hi
    if newest is not None:
        published = newest.floor("min") + pd.Timedelta(minutes=1)
        if published_until is not None:
            published = max(published, published_until)
        edge = min(hi, max(lo + pd.Timedelta(minutes=1), published))
    index = pd.date_range(lo, edge, freq="min", inclusive="left", name=cached.series.index.name)
    series = pd.concat([old, recent.series]).reindex(index, fill_value=0.0)
    series.name = cached.series.name
    return MetricHistory(series, recent.datapoints + int((old > 0).sum()), newest)


def _histories(
    ad: service.Adapters, settings: list[ScalerSettings], tick: service.Tick
) -> dict[MetricSource, MetricHistory]:
    """Every member's history in as few GetMetricData calls as the API allows (500 queries each);
    on failure each member reads its own (its own outcome, never the whole fleet's).

    A warm process keeps each member's history between ticks and reads only the minutes since its
    newest cached minute, less :data:`LATE_DATA` (late publication is re-read): a minute's tick over
    500 endpoints then reads ~20 minutes each instead of 14 days (10 million datapoints). A member
    seen for the first time (cold start, new member, a cache older than the window) reads it all.
    """
    if not settings:
        return {}
    end = complete_end(tick.now)
    length = min(MAX_HISTORY, pd.Timedelta(days=max(s.history_days for s in settings)))
    lo = (end - length).floor("min")
    pairs = [service.metric_source(s) for s in settings]
    # the heartbeat is the (hosting) variant's instance metric, for a component as in single mode
    hosts: dict[MetricSource, Variant] = {service.metric_source(s): (s.endpoint_name, s.variant_name) for s in settings}
    since = {p: c.series.index[-1] + pd.Timedelta(minutes=1) - LATE_DATA
             for p in pairs if (c := _HISTORY.get(p)) is not None and len(c.series) and c.series.index[0] <= lo}
    warm = [p for p in pairs if p in since and lo < since[p] <= end]
    cold = [p for p in pairs if p not in warm]
    try:
        # the heartbeat each single tick reads on its own (service._heartbeat), batched the same way
        namespace, metric = service.HEARTBEAT_METRIC
        beats = read_many(ad.cloudwatch, dict.fromkeys(hosts.values()),
                          end - pd.Timedelta(minutes=service.HEARTBEAT_MINUTES), end,
                          metric=metric, namespace=namespace, stat="Average")
        edges = {v: h.newest.floor("min") + pd.Timedelta(minutes=1) if h.newest is not None else None
                 for v, h in beats.items()}
        published = {p: edges[hosts[p]] for p in pairs}
        out = read_many(ad.cloudwatch, cold, lo, end, published_until=published) if cold else {}
        if warm:
            start = min(since[p] for p in warm)
            recent = read_many(ad.cloudwatch, warm, start, end, published_until=published)
            for p in warm:
                out[p] = _merge(_HISTORY.pop(p), recent[p], start, lo, end, published.get(p))
    except (ClientError, BotoCoreError, MetricReadError) as exc:
        logger.warning(f"batched history read failed ({exc}); each endpoint reads its own")
        return {}
    _HISTORY.clear()
    _HISTORY.update(out)
    return out


def release(ad: service.Adapters, entry: LedgerEntry, baseline: int, tick: service.Tick) -> dict:
    """Close the ledger entry of a target that left the fleet; a MinCapacity the pre-scaler still
    owns goes back to the floor it was raised from (or ``baseline``, capped at MaxCapacity).

    Same protocol as a relax: the change is claimed as an intent, made, then confirmed (ownership
    removed, ``last_action = release``) or discarded. An entry with an unsettled intent is left to
    the next refresh.
    """
    ledger = ad.ledger
    assert ledger is not None
    rid = entry.scalable_target
    target = ad.autoscaling.describe(rid)
    old = target.min_capacity if target is not None else None
    out: dict[str, Any] = {"resource_id": rid, "outcome": "released", "old_min_capacity": old, "new_min_capacity": old}
    if entry.intent is not None:
        return {**out, "outcome": "hold", "reason": "an unsettled intent: reconciled by its own tick first"}
    back = old
    if target is not None and entry.owned_min_capacity == target.min_capacity:
        back = min(target.min_capacity, max(entry.floor_min_capacity or 0, min(baseline, target.max_capacity)))
    details: dict[str, object] = {"at": tick.now.isoformat(), "reason": "left the fleet", "min_capacity": back,
                                  "previous_min_capacity": old}
    intent = Intent("release", old or 0, back or 0, tick.now, details=details)
    claimed = ledger.intend(entry, intent, tick.now)
    if claimed is None:
        return {**out, "outcome": "duplicate"}
    if target is not None and back is not None and back < target.min_capacity:
        applied = ad.autoscaling.set_min_capacity(target, back)
        if applied.outcome != "applied":
            ledger.discard(claimed, tick.now, f"release not applied: {applied.message}")
            return {**out, "outcome": applied.outcome, "reason": applied.message}
        out["new_min_capacity"] = back
    ledger.confirm(claimed, tick.now)
    logger.info(f"{rid} left the fleet: ledger entry closed, MinCapacity {old} -> {out['new_min_capacity']}",
                extra=out)
    return out


def _release_departed(ad: service.Adapters, members: list[Member], environ: Mapping[str, str],
                      tick: service.Tick) -> list[dict]:
    assert ad.ledger is not None
    current = {m.resource_id for m in members}
    out = []
    for entry in ad.ledger.owned():
        rid = entry.scalable_target
        parts = rid.split("/")
        if rid in current:
            continue
        if rid.startswith(COMPONENT_PREFIX):
            # only the stack's baseline for a component is read: the (gone) hosting endpoint does not matter
            name = rid[len(COMPONENT_PREFIX):]
            gone = Member(name, environ.get("VARIANT_NAME") or "AllTraffic", {}, name)
        elif len(parts) == 4 and parts[0] == "endpoint":
            gone = Member(parts[1], parts[3])
        else:
            continue
        try:
            baseline = member_settings(gone, environ).baseline_min_capacity
            out.append(release(ad, entry, baseline, tick))
        except (ClientError, BotoCoreError, SettingsError, ValueError) as exc:
            logger.error(f"release of {entry.scalable_target} failed: {exc}; tried again next refresh")
            out.append({"resource_id": entry.scalable_target, "outcome": "error", "reason": str(exc)})
    return out


def pending_key(function: str) -> str:
    """The ledger item holding the members the last ``function`` tick did not reach."""
    return f"fleet#{function}#not-reached"


def bookkeeping(function: str, ad: service.Adapters, members: list[Member], refreshed: bool,
                environ: Mapping[str, str], tick: service.Tick, *,
                take: bool = False) -> tuple[list[dict], dict[str, int]]:
    """The fleet's own bookkeeping before a tick: departed members released (on a discovery refresh),
    and the members the last tick did not reach, in their order (``take``: read and cleared at once,
    for a dispatcher whose shards append to it). A ledger failure costs the order or a release,
    never the tick.

    Returns:
        (the releases, {resource id: its place in the not-reached order}).
    """
    assert ad.ledger is not None
    released: list[dict] = []
    first: dict[str, int] = {}
    try:
        released = _release_departed(ad, members, environ, tick) if refreshed else []
        key = pending_key(function)
        order = ad.ledger.take_pending(key) if take else ad.ledger.pending(key)
        first = {rid: i for i, rid in reversed(list(enumerate(order)))}
    except (ClientError, BotoCoreError) as exc:
        logger.warning(f"fleet ledger unreadable ({exc}): departures and the not-reached order wait a tick")
    return released, first


def run_tick(
    function: str,
    run: Run,
    fs: FleetSettings,
    tick: service.Tick,
    ad: service.Adapters,
    *,
    environ: Mapping[str, str] | None = None,
    remaining_ms: Callable[[], int] | None = None,
    members: list[Member] | None = None,
    discovered: tuple[list[Member], bool] | None = None,
) -> dict:
    """One fleet tick of ``run`` (:func:`prescaler.service.prescale` or ``relax``) over every member.

    Args:
        environ: the stack's variables (default ``os.environ``): each member's defaults.
        remaining_ms: the Lambda context's ``get_remaining_time_in_millis`` (None: no budget).
        members: one shard's members, in order (:mod:`prescaler.fanout`'s worker): no discovery, no
            releases (the dispatcher's), and the members not reached are appended to the fleet's
            not-reached list; ``FleetMembers`` is the dispatcher's to count. None: the whole fleet.
        discovered: :func:`discover`'s answer when the caller already asked (None: ask).

    Returns:
        ``{"function", "fleet_mode", "now", "members", "outcomes": {outcome: count},
        "not_reached": [resource ids], "released": [...], "results": [one per member]}``.
    """
    assert ad.ledger is not None
    env = os.environ if environ is None else environ
    shard = members is not None
    released: list[dict] = []
    first: dict[str, int] = {}
    if members is None:
        members, refreshed = discovered or discover(ad.sagemaker.client, fs)
        released, first = bookkeeping(function, ad, members, refreshed, env, tick)
    ordered = sorted(members, key=lambda m: first.get(m.resource_id, len(first)))

    results: list[dict] = []
    valid: list[tuple[Member, ScalerSettings]] = []
    namespace = env.get("METRICS_NAMESPACE", "SageMakerPrescaler")
    for m in ordered:
        if m.component and not m.endpoint_name:  # a listed component ListInferenceComponents does not know
            _dims(m, namespace)
            metrics.add_metric(name="EndpointMissing", unit="Count", value=1)
            _flush()
            reason = f"hold: inference component {m.component} not found (ListInferenceComponents)"
            logger.warning(reason, extra={"outcome": "endpoint_missing", "resource_id": m.resource_id})
            results.append(_member_result(function, m, tick, "endpoint_missing", reason))
            continue
        try:
            valid.append((m, member_settings(m, env)))
        except SettingsError as exc:
            _dims(m, namespace)
            metrics.add_metric(name="InvalidSettings", unit="Count", value=1)
            _flush()
            logger.error(str(exc), extra={"outcome": "invalid_settings", "resource_id": m.resource_id})
            results.append(_member_result(function, m, tick, "invalid_settings", str(exc)))
    with_history = replace(ad, histories=_histories(ad, [s for _, s in valid], tick))

    reserve_ms = fs.fleet_reserve_seconds * 1000
    slowest_ms = 0.0
    not_reached: list[Member] = []
    for m, settings in valid:
        if remaining_ms is not None and remaining_ms() - reserve_ms < slowest_ms:
            not_reached.append(m)
            continue
        started = time.perf_counter()
        results.append(_isolated(function, run, m, settings, tick, with_history))
        _flush()
        slowest_ms = max(slowest_ms, (time.perf_counter() - started) * 1000)

    if not_reached or first:
        try:
            if shard:
                ad.ledger.add_pending(pending_key(function), [m.resource_id for m in not_reached], tick.now)
            else:
                ad.ledger.set_pending(pending_key(function), [m.resource_id for m in not_reached], tick.now)
        except (ClientError, BotoCoreError) as exc:
            logger.warning(f"not-reached order not stored ({exc}): the next tick takes the usual order")
    for m in not_reached:
        logger.warning(f"{m.resource_id} not reached within the time budget: taken first next tick",
                       extra={"outcome": "not_reached"})
    outcomes = Counter(r["outcome"] for r in results)
    outcomes.update({"not_reached": len(not_reached)} if not_reached else {})
    totals = {
        **({} if shard else {"FleetMembers": len(members)}),
        "FleetNotReached": len(not_reached),
        "FleetInvalidSettings": outcomes["invalid_settings"],
        "FleetErrors": outcomes["error"],
        "FleetThrottled": outcomes["throttled"],
        "FleetReleased": sum(r["outcome"] == "released" for r in released),
    }
    metrics.namespace = env.get("METRICS_NAMESPACE", "SageMakerPrescaler")
    for name, value in totals.items():
        metrics.add_metric(name=name, unit="Count", value=value)
    summary = {
        "function": function,
        "fleet_mode": fs.fleet_mode,
        "now": tick.now.isoformat(),
        "members": len(members),
        "outcomes": dict(outcomes),
        "not_reached": [m.resource_id for m in not_reached],
        "released": released,
        "results": results,
    }
    logger.info(f"fleet {function} tick: {len(members)} members, {dict(outcomes)}",
                extra={"totals": totals, "outcomes": dict(outcomes)})
    return summary


def handle(function: str, run: Run, event: Any, context: Any = None) -> dict:
    """The handlers' entry point: ``FLEET_MODE=single`` (default) is exactly :func:`service.handle`;
    ``list`` / ``tag`` run :func:`run_tick` with the Lambda context's remaining time as the budget,
    or, for a fleet of more than ``FLEET_SHARD_SIZE`` members with a shard queue, send it to the
    queue in shards (:func:`prescaler.fanout.dispatch`). An SQS event is one shard to run
    (:func:`prescaler.fanout.work`; returns ``{"batchItemFailures": [...]}``).

    Raises:
        SettingsError, InvalidEvent: as :func:`service.handle` (logged once, counted, the invocation
            fails). A member's bad tag is that member's ``invalid_settings`` outcome, never raised.
    """
    try:
        fs = load(FleetSettings)
    except SettingsError as exc:
        service.invalid_settings(function, exc)
        raise mark_logged(exc) from None
    if fs.fleet_mode == "single":
        return service.handle(function, ScalerSettings, run, event)
    if not fs.ledger_table_name:
        missing = SettingsError("invalid settings: LEDGER_TABLE_NAME: missing (the fleet keeps its state there)")
        service.invalid_settings(function, missing)
        raise mark_logged(missing)
    from prescaler import fanout  # it builds on this module

    remaining = getattr(context, "get_remaining_time_in_millis", None)
    ad = service.Adapters.default(fs.ledger_table_name)
    if fanout.is_sqs_event(event):
        response, _ = fanout.work(function, run, fs, event, ad, remaining_ms=remaining, environ=os.environ)
        return response
    try:
        parsed = service.parse_tick(event)
    except service.InvalidEvent as exc:
        service.invalid_event(function, exc)
        raise mark_logged(exc) from None
    members, refreshed = discover(ad.sagemaker.client, fs)
    if len(members) > fs.fleet_shard_size:
        if fs.fleet_shard_queue_url:
            return fanout.dispatch(function, fs, parsed, ad, clients.client("sqs"), fs.fleet_shard_queue_url,
                                   members, refreshed, os.environ)
        logger.warning(f"{len(members)} members, more than FLEET_SHARD_SIZE={fs.fleet_shard_size}, and no "
                       "FLEET_SHARD_QUEUE_URL: one invocation ticks them within its time budget")
    return run_tick(function, run, fs, parsed, ad, remaining_ms=remaining, discovered=(members, refreshed))
