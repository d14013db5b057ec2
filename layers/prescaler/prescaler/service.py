"""One tick of each function: settings-derived inputs -> adapters -> the decision core -> adapters.

``functions/<name>/app.py`` call :func:`handle` with the raw event; everything between the event and
the small JSON result lives here:

- :func:`prescale`: read history and the scalable target, :func:`prescaler.plan.decide`, apply a
  ``raise`` only (a ``relax`` decision is logged and returned as ``hold``: relaxing is the
  relaxer's job).
- :func:`relax`: the same reads, apply a ``relax`` only (MinCapacity down, prompt scale-in via the
  desired instance count) including the core's watchdog.
- :func:`gpu_metric`: ``GPUUtilization`` / GPUs per instance, published in the project's namespace.

Shared rules: missing or unreadable data holds (and says so in a metric); stale data (the newest
datapoint older than expected) never lowers anything; an endpoint that is not ``InService`` defers;
an operator's suspension of scaling is respected; dry-run computes and publishes everything and
changes nothing; the ledger's conditional writes make duplicate or concurrent ticks harmless, and its
intents make a killed tick harmless; an event whose time is far from the wall clock (a late
duplicate) is refused unless it asks to be replayed; every AWS error has a decided outcome
(:mod:`prescaler.aws.errors`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import pandas as pd
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import parse
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from prescaler.aws import clients
from prescaler.aws.autoscaling import (
    Activity,
    ApplyResult,
    AutoScaling,
    PermissionDenied,
    ScalableTarget,
    failures_since,
    lead_time_s,
)
from prescaler.aws.cloudwatch import (
    ENDPOINT_INSTANCE_NAMESPACE,
    SAGEMAKER_NAMESPACE,
    Component,
    MetricHistory,
    MetricReadError,
    MetricSource,
    dimensions,
    latest_average,
    microseconds_to_ms,
    put_metric,
    read_many,
)
from prescaler.aws.errors import AwsFault, TickFailed, classify, http_status
from prescaler.aws.ledger import Intent, Ledger, LedgerEntry, Preflight
from prescaler.aws.sagemaker import Endpoint, EndpointMissing, InferenceComponent, SageMaker, gpus_per_instance
from prescaler.aws.sagemaker import Variant as SageMakerVariant
from prescaler.history import MAX_HISTORY, HistoryError, complete_end, to_utc
from prescaler.observability import logger, mark_logged, metrics, tracer
from prescaler.plan import RELEASED_SCALE_IN_MINUTES, STALE_AFTER_MINUTES, Decision, TargetState, decide
from prescaler.settings import FunctionSettings, ScalerSettings, SettingsError, load

#: A raise whose scaling activity failed is reported on the ticks within this window.
FAILURE_LOOKBACK = pd.Timedelta(minutes=15)
#: Name of the custom GPU metric (percent per GPU, 0-100) in the project's namespace.
GPU_METRIC_NAME = "GPUUtilizationPerGPU"
#: A DryRun tick proves at most this often that it could act (re-registers the current MinCapacity).
PREFLIGHT_EVERY = pd.Timedelta(hours=1)
#: Holds for a fault, not for a decision: each tick publishes ``FaultHold`` 1 (one of these) or 0, and
#: the template's stuck alarm fires after N consecutive minutes of 1.
#: (Unreadable metrics are a ``no_data`` hold with ``fault=True``; an empty answer is not a fault.)
FAULT_OUTCOMES = frozenset({"target_missing", "endpoint_missing", "permission_denied"})
#: An event whose ``time`` is further than this from the wall clock is refused (``stale_event``):
#: EventBridge redelivers a failed event for up to 24 hours, and an old tick must not act on its time.
MAX_EVENT_SKEW = pd.Timedelta(minutes=2)
#: The event field that replays a fixed time on purpose (``sam local invoke`` with events/, the e2e
#: tests, a what-if). No schedule of the deployed stack sends it.
REPLAY_FIELD = "prescaler-replay"
#: An unconfirmed ledger intent younger than this may belong to a tick still running (the functions'
#: Timeout is 60 s in template.yaml); an older one belongs to a killed tick and is reconciled.
INTENT_IN_FLIGHT = pd.Timedelta(seconds=90)
#: SageMaker publishes this instance metric every minute with or without traffic: while it is
#: current, a minute without an Invocations datapoint is zero demand, not a late publication.
HEARTBEAT_METRIC = (ENDPOINT_INSTANCE_NAMESPACE, "CPUUtilization")
#: How far back the heartbeat is looked for (minutes before the complete-minutes end).
HEARTBEAT_MINUTES = 15


def wall_clock() -> pd.Timestamp:
    """The current time (UTC); tests replace it."""
    return pd.Timestamp.now(tz="UTC")


class TickEvent(BaseModel):
    """What the functions read from an event: the EventBridge scheduled-event envelope, EventBridge
    Scheduler's ``{}`` or custom input, or ``sam local generate-event`` output. Only ``id`` (the
    correlation id) and ``time`` (the reference clock) matter; everything else is ignored."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    id: str | None = None
    time: datetime | None = None
    detail_type: str | None = Field(None, alias="detail-type")
    replay: bool = Field(False, alias=REPLAY_FIELD)


@dataclass(frozen=True)
class Tick:
    """One invocation's reference time (UTC) and event id."""

    now: pd.Timestamp
    event_id: str | None
    clock: str  # "event" or "wall"
    replay: bool = False  # the event asked to replay its time on purpose


SettingsT = TypeVar("SettingsT", bound=FunctionSettings)


#: The years an event's ``time`` may name: from the Unix epoch (CloudWatch holds nothing older; ``sam
#: local generate-event`` writes 1970) to the last whole year a nanosecond time series can hold, with
#: room for the history window before it and the forecast after it.
TICK_YEARS = (1970, pd.Timestamp.max.year - 1)


class InvalidEvent(ValueError):
    """An event whose ``time`` or ``id`` cannot be read: the tick changes nothing."""


def parse_tick(event: Any, wall_clock: Callable[[], pd.Timestamp] | None = None) -> Tick:
    """The tick's reference time: the event's ``time`` when present, else the current time.

    Any non-object input (Scheduler custom input may be any JSON) counts as ``{}``.

    Raises:
        InvalidEvent: ``time`` is not an ISO 8601 time, or ``id`` is not a string (one line naming
            the field; handlers turn it into :func:`invalid_event`).
    """
    try:
        model = parse(event=event if isinstance(event, dict) else {}, model=TickEvent)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err.get("loc", ())) or "event"
        raise InvalidEvent(f"event field {field!r}: {err.get('msg', 'invalid')} "
                           f"(got {err.get('input')!r})") from exc
    if model.time is not None:
        try:
            at = to_utc(model.time)
        except HistoryError as exc:  # a year pydantic reads but no time series can hold
            raise InvalidEvent(f"event field 'time': {exc} (got {event.get('time')!r})") from exc
        if not TICK_YEARS[0] <= at.year <= TICK_YEARS[1]:
            raise InvalidEvent(f"event field 'time': year {at.year} is outside {TICK_YEARS[0]}-{TICK_YEARS[1]}, the "
                               f"years a tick may replay (got {event.get('time')!r})")
        return Tick(at, model.id, "event", model.replay)
    now = wall_clock() if wall_clock is not None else pd.Timestamp.now(tz="UTC")
    return Tick(to_utc(now), model.id, "wall", model.replay)


def event_skew(tick: Tick, now: pd.Timestamp) -> pd.Timedelta | None:
    """How far the event's time is from the wall clock ``now`` when that is more than
    :data:`MAX_EVENT_SKEW` and the event does not ask to be replayed; None when the tick may run."""
    if tick.clock != "event" or tick.replay:
        return None
    skew = to_utc(now) - tick.now
    return skew if abs(skew) > MAX_EVENT_SKEW else None


@dataclass
class Adapters:
    """The adapters one tick uses (tests pass their own; Lambdas use the cached clients)."""

    cloudwatch: Any
    autoscaling: AutoScaling
    sagemaker: SageMaker
    ledger: Ledger | None
    #: history already read for many variants in one batched ``GetMetricData`` call (the fleet tick,
    #: :mod:`prescaler.fleet`); a variant not in it is read on its own.
    histories: Mapping[MetricSource, MetricHistory] | None = None

    @classmethod
    def default(cls, ledger_table: str | None) -> Adapters:
        return cls(
            clients.client("cloudwatch"),
            AutoScaling(clients.client("application-autoscaling")),
            SageMaker(clients.client("sagemaker")),
            Ledger(clients.client("dynamodb"), ledger_table) if ledger_table else None,
        )


# --------------------------------------------------------------------------------------------------
# results and metrics


def _result(function: str, settings: FunctionSettings, tick: Tick, **fields: Any) -> dict:
    out: dict[str, Any] = {
        "function": function,
        "endpoint_name": settings.endpoint_name,
        "variant_name": settings.variant_name,
        "now": tick.now.isoformat(),
    }
    component = getattr(settings, "inference_component_name", None)
    if component:
        out["inference_component_name"] = component
    out.update(fields)
    return out


def _count(name: str, value: float = 1, unit: MetricUnit | str = MetricUnit.Count) -> None:
    metrics.add_metric(name=name, unit=unit, value=value)


def _metric_context(settings: FunctionSettings) -> None:
    """The tick's EMF dimensions: ``EndpointName`` + ``VariantName``, plus ``InferenceComponentName``
    when the tick scales an inference component (the template's alarms and dashboard query the
    same set: two components on one endpoint stay two metrics)."""
    metrics.namespace = settings.metrics_namespace
    metrics.add_dimension(name="EndpointName", value=settings.endpoint_name)
    metrics.add_dimension(name="VariantName", value=settings.variant_name)
    component = getattr(settings, "inference_component_name", None)
    if component:
        metrics.add_dimension(name="InferenceComponentName", value=component)


def _hold(
    function: str,
    settings: ScalerSettings,
    tick: Tick,
    outcome: str,
    reason: str,
    min_capacity: int | None = None,
    fault: bool = False,
    **extra: Any,
) -> dict:
    logger.warning(reason, extra={"outcome": outcome})
    _count("FaultHold", int(fault or outcome in FAULT_OUTCOMES))
    return _result(
        function,
        settings,
        tick,
        action="hold",
        outcome=outcome,
        old_min_capacity=min_capacity,
        new_min_capacity=min_capacity,
        reason=reason,
        forecast_peak_invocations_per_minute=None,
        dry_run=settings.dry_run,
        **extra,
    )


# --------------------------------------------------------------------------------------------------
# the scaler ticks (prescale / relax)


@dataclass
class Observation:
    target: ScalableTarget
    endpoint: Endpoint
    entry: LedgerEntry
    activities: list[Activity]
    lead_time_s: int
    lead_time_source: str
    decision: Decision
    warnings: list[str]
    #: DryRun only: ``can_apply`` (bool or None), ``can_apply_reason``, ``preflight_at``
    preflight: dict[str, Any] | None = None
    #: the MinCapacity the ledger owns when a stack update / REVERT_DRIFT wrote the baseline back
    reverted_from: int | None = None
    component: InferenceComponent | None = None  # set when the target is an inference component

    def desired_capacity(self, variant_name: str) -> int:
        """The desired count now: copies of the component, else instances of ``variant_name``."""
        if self.component is not None:
            return self.component.desired_copies
        return self.endpoint.variants[variant_name].desired_instances


def _observe(function: str, settings: ScalerSettings, tick: Tick, ad: Adapters) -> Observation | dict:
    """Everything a scaler tick reads, and the core's decision; or an early ``hold`` result."""
    rid = settings.resource_id
    target = ad.autoscaling.describe(rid)
    if target is None:
        _count("TargetMissing")
        return _hold(
            function,
            settings,
            tick,
            "target_missing",
            f"no scalable target for {rid}: register one (the template does) before pre-scaling",
        )
    component = None
    try:
        if settings.inference_component_name:
            component = ad.sagemaker.inference_component(settings.inference_component_name)
            endpoint = _component_view(component)
        else:
            endpoint = ad.sagemaker.endpoint(settings.endpoint_name)
    except EndpointMissing as exc:
        _count("EndpointMissing")
        return _hold(function, settings, tick, "endpoint_missing", str(exc), target.min_capacity)
    variant = endpoint.variants.get(component.name if component else settings.variant_name)
    if variant is None:
        _count("EndpointMissing")
        return _hold(
            function,
            settings,
            tick,
            "endpoint_missing",
            f"variant {settings.variant_name!r} not on endpoint {endpoint.name!r}",
            target.min_capacity,
        )
    if not endpoint.in_service:
        _count("Deferred")
        return _hold(
            function,
            settings,
            tick,
            "deferred",
            f"endpoint {endpoint.name} is {endpoint.status}, not InService: deferred to the next tick",
            target.min_capacity,
        )

    assert ad.ledger is not None
    entry_or_hold = _reconcile(function, settings, tick, ad, target, ad.ledger.get(rid))
    if isinstance(entry_or_hold, dict):
        return entry_or_hold
    entry = entry_or_hold
    activities = ad.autoscaling.activities(rid)
    lead_s, lead_source = lead_time_s(activities, settings.default_lead_time_seconds)
    _count("LeadTimeSeconds", lead_s, MetricUnit.Seconds)

    end = complete_end(tick.now)
    try:
        history_length = min(MAX_HISTORY, pd.Timedelta(days=settings.history_days))
        source = metric_source(settings)
        history = (ad.histories or {}).get(source) or read_many(
            ad.cloudwatch, [source], end - history_length, end, published_until=_heartbeat(ad, settings, end)
        )[source]
    except MetricReadError as exc:
        _count("MetricReadError")
        return _hold(function, settings, tick, "no_data", f"hold: Invocations unreadable ({exc})",
                     target.min_capacity, fault=True)
    if history.empty:
        _count("NoData")
        return _hold(
            function,
            settings,
            tick,
            "no_data",
            f"hold: no Invocations datapoints for {_source_name(settings)} "
            f"in the last {settings.history_days} days; an empty answer is not zero demand, MinCapacity left at "
            f"{target.min_capacity}",
            target.min_capacity,
        )
    _count("ObservedInvocationsPerMinute", float(history.series.iloc[-1]))

    warnings = _scaling_failures(activities, entry, tick)
    stale = _stale_data(history.series, tick)
    _count("StaleData", int(stale is not None))
    if stale is not None:
        logger.warning(stale, extra={"outcome": "stale_data"})
        warnings.append(stale)
    if variant.current_instances < target.min_capacity:
        warnings.append(f"variant has {variant.current_instances} instances, below MinCapacity {target.min_capacity}")
    if entry.owned_min_capacity is not None and entry.owned_min_capacity != target.min_capacity:
        logger.info(
            "MinCapacity was changed outside the pre-scaler; left alone",
            extra={"min_capacity": target.min_capacity, "owned_min_capacity": entry.owned_min_capacity},
        )

    released = (
        entry.last_relax_from
        if entry.owned_min_capacity is None and entry.last_relax_at is not None
        and pd.Timedelta(0) <= tick.now - entry.last_relax_at <= pd.Timedelta(minutes=RELEASED_SCALE_IN_MINUTES)
        else None
    )
    state = TargetState(
        target.min_capacity,
        target.max_capacity,
        variant.desired_instances,
        entry.owned_min_capacity,
        entry.owned_since,
        entry.watchdog_at,
        released,
    )
    decision = decide(history.series, state, settings.planner(lead_s), tick.now)
    fc = decision.forecast
    if fc is not None:
        _count("ForecastPeakInvocationsPerMinute", float(fc.peak_invocations_per_minute))
        _count("ForecastUsable", int(fc.usable))
    return Observation(target, endpoint, entry, activities, lead_s, lead_source, decision, warnings,
                       component=component)


def _component_view(component: InferenceComponent) -> Endpoint:
    """An inference component seen the way ``_observe`` sees a variant: its status, and its copies as
    the one "variant" (current and desired copy counts)."""
    kind = f"inference component {component.name} (endpoint {component.endpoint_name})"
    return Endpoint(kind, component.status, "", {
        component.name: SageMakerVariant(component.name, component.current_copies, component.desired_copies)})


def metric_source(settings: ScalerSettings) -> MetricSource:
    """Whose ``Invocations`` a scaler tick reads: the inference component (dimension
    ``InferenceComponentName``) when one is configured, else the variant (both dimensions)."""
    if settings.inference_component_name:
        return Component(settings.inference_component_name)
    return (settings.endpoint_name, settings.variant_name)


def _source_name(settings: ScalerSettings) -> str:
    if settings.inference_component_name:
        return f"inference component {settings.inference_component_name}"
    return f"{settings.endpoint_name}/{settings.variant_name}"


def _heartbeat(ad: Adapters, settings: ScalerSettings, end: pd.Timestamp) -> pd.Timestamp | None:
    """Exclusive end of the minutes SageMaker has published for the variant: the minute after the
    newest :data:`HEARTBEAT_METRIC` datapoint in the last :data:`HEARTBEAT_MINUTES` before ``end``
    (None when there is none: then only Invocations' own datapoints say what was published)."""
    latest = latest_average(ad.cloudwatch, settings.endpoint_name, settings.variant_name, [HEARTBEAT_METRIC],
                            end, minutes=HEARTBEAT_MINUTES)[HEARTBEAT_METRIC[1]]
    return latest[0].floor("min") + pd.Timedelta(minutes=1) if latest is not None else None


def _stale_data(series: pd.Series, tick: Tick) -> str | None:
    """A warning when the history's newest minute is older than the planner accepts (CloudWatch's
    publication is late): the planner then lowers nothing. None when the history is current."""
    if not len(series):
        return None
    newest = series.index[-1]
    lag = (tick.now.floor("min") - newest) / pd.Timedelta(minutes=1)
    if lag <= STALE_AFTER_MINUTES:
        return None
    return (f"stale data: the newest Invocations minute is {newest:%Y-%m-%d %H:%M} UTC, {lag:.0f} min before "
            f"this tick (expected within {STALE_AFTER_MINUTES}); publication is late, which is not zero "
            f"demand: nothing is lowered or scaled in")


def _reconcile(
    function: str, settings: ScalerSettings, tick: Tick, ad: Adapters, target: ScalableTarget, entry: LedgerEntry
) -> LedgerEntry | dict:
    """Settle an unconfirmed intent left in the ledger: a tick still running (hold), or a killed tick
    whose change was made (the target's MinCapacity is the intended one: confirm the ownership it
    claimed) or not made (discard it). Returns the settled entry, or a ``hold`` result."""
    intent = entry.intent
    if intent is None:
        return entry
    assert ad.ledger is not None
    age = tick.now - intent.at
    if abs(age) < INTENT_IN_FLIGHT:
        _count("DuplicateTick")
        return _hold(function, settings, tick, "duplicate",
                     f"another tick is changing MinCapacity {intent.from_min} -> {intent.to_min} "
                     f"(claimed at {intent.at.isoformat()}): nothing done twice", target.min_capacity)
    if target.min_capacity == intent.to_min:
        done = ad.ledger.confirm(entry, tick.now)
        what = (f"a killed {intent.action} tick ({intent.at.isoformat()}) had set MinCapacity "
                f"{intent.from_min} -> {intent.to_min}: ledger confirmed")
    else:
        how = ("was never made" if target.min_capacity == intent.from_min
               else f"was overtaken (MinCapacity is {target.min_capacity}, an operator's change?)")
        done = ad.ledger.discard(entry, tick.now, f"intent {intent.from_min} -> {intent.to_min} {how}")
        what = (f"a killed {intent.action} tick's change {intent.from_min} -> {intent.to_min} "
                f"({intent.at.isoformat()}) {how}: intent discarded")
    if not done:
        _count("DuplicateTick")
        return _hold(function, settings, tick, "duplicate", "another tick settled the ledger first; nothing done twice",
                     target.min_capacity)
    _count("IntentReconciled")
    logger.warning(what, extra={"intent": intent.action, "from_min": intent.from_min, "to_min": intent.to_min})
    return ad.ledger.get(entry.scalable_target)


def _scaling_failures(activities: list[Activity], entry: LedgerEntry, tick: Tick) -> list[str]:
    """Failed scaling activities since our raise (or in the last 15 minutes): metric + warning."""
    since = tick.now - FAILURE_LOOKBACK
    if entry.owned_since is not None:
        since = min(since, entry.owned_since)
    failed = failures_since(activities, since)
    out = []
    for a in failed:
        msg = f"scaling activity {a.activity_id} failed ({a.description}): {a.status_message}"
        logger.warning(msg, extra={"activity_id": a.activity_id, "status_message": a.status_message})
        out.append(msg)
    _count("ScalingActivityFailed", len(failed))
    return out


def _decision_result(
    function: str,
    settings: ScalerSettings,
    tick: Tick,
    obs: Observation,
    *,
    action: str,
    outcome: str,
    new_min: int,
    reason: str,
    **extra: Any,
) -> dict:
    fc = obs.decision.forecast
    _count("FaultHold", int(outcome in FAULT_OUTCOMES))
    _count("DesiredMinCapacity", obs.decision.min_capacity)
    _count("MinCapacity", new_min)
    for name in ("raise", "hold", "relax"):
        _count(f"Action{name.capitalize()}", int(action == name))
    result = _result(
        function,
        settings,
        tick,
        action=action,
        outcome=outcome,
        old_min_capacity=obs.target.min_capacity,
        new_min_capacity=new_min,
        reason=reason,
        forecast_peak_invocations_per_minute=round(float(fc.peak_invocations_per_minute), 3) if fc else None,
        forecast_pattern=fc.pattern if fc else None,
        forecast_usable=fc.usable if fc else None,
        lead_time_s=obs.lead_time_s,
        lead_time_source=obs.lead_time_source,
        dry_run=settings.dry_run,
        clock=tick.clock,
        **extra,
    )
    if obs.warnings:
        result["warnings"] = obs.warnings
    if obs.preflight is not None:
        result.update(obs.preflight)
    logger.info(
        reason,
        extra={
            "decision": obs.decision.to_dict(),
            "forecast": fc.to_dict() if fc else None,
            "outcome": outcome,
        },
    )
    return result


def _observe_own(
    function: str, mine: str, whose: str, settings: ScalerSettings, tick: Tick, ad: Adapters
) -> Observation | dict:
    """Observe and decide for one scaler tick; a ``hold`` result unless the core decided this
    function's own action (the pre-scaler only raises, the relaxer only lowers)."""
    _metric_context(settings)
    obs = _observe(function, settings, tick, ad)
    if isinstance(obs, dict):
        return obs
    if settings.dry_run:
        obs.preflight = _preflight(function, settings, tick, ad, obs)
    if mine == "raise":
        obs.reverted_from = _reverted(settings, obs)
        if obs.reverted_from is not None:
            _count("MinCapacityReverted")
            logger.warning(
                "MinCapacity is back at the baseline while the ledger holds a raise: a stack update or "
                "REVERT_DRIFT wrote the template's value back",
                extra={"min_capacity": obs.target.min_capacity, "owned_min_capacity": obs.reverted_from},
            )
            if obs.decision.action != "raise" and not settings.dry_run:
                _release(ad, obs, tick)
    if obs.decision.action == mine:
        suspended = suspended_for(mine, obs.target)
        if not suspended:
            return obs
        _count("Suspended")
        return _decision_result(function, settings, tick, obs, action="hold", outcome="suspended",
                                new_min=obs.target.min_capacity,
                                reason=f"hold: {' and '.join(suspended)} on the scalable target (an operator's "
                                       f"freeze), so no {mine} of ours; wanted: {obs.decision.reason}")
    d = obs.decision
    reason = d.reason if d.action == "hold" else f"hold ({whose}): {d.reason}"
    return _decision_result(function, settings, tick, obs, action="hold", outcome="hold",
                            new_min=obs.target.min_capacity, reason=reason)


def _reverted(settings: ScalerSettings, obs: Observation) -> int | None:
    """The ledger's raised MinCapacity when the target was written back to where the raise started
    (the baseline, or the operator's floor the raise went over) with no change of ours recorded:
    what a stack update or a ``REVERT_DRIFT`` change set does to a held raise. Any other value is an
    operator's change and is left alone. None when nothing was reverted."""
    owned = obs.entry.owned_min_capacity
    if owned is None or owned <= obs.target.min_capacity:
        return None
    baseline = min(settings.baseline_min_capacity, obs.target.max_capacity)
    if obs.target.min_capacity not in (baseline, obs.entry.floor_min_capacity):
        return None
    return owned


def _release(ad: Adapters, obs: Observation, tick: Tick) -> None:
    """A reverted raise the forecast no longer needs: the ledger stops claiming it (conditional
    write; nothing is registered), so the relaxer and the next raise start from what is set."""
    assert ad.ledger is not None
    reason = (f"MinCapacity written back to {obs.target.min_capacity} while {obs.reverted_from} was held, and no "
              f"spike needs the raise any more: ownership released")
    ad.ledger.record(obs.entry, "relax", owned_min_capacity=None, owned_since=None, now=tick.now,
                     details={"min_capacity": obs.target.min_capacity, "previous_min_capacity": obs.reverted_from,
                              "at": tick.now.isoformat(), "reason": reason, "event_id": tick.event_id})
    logger.info(reason)


def _preflight(function: str, settings: ScalerSettings, tick: Tick, ad: Adapters, obs: Observation) -> dict[str, Any]:
    """DryRun: prove that this function could act. At most once per :data:`PREFLIGHT_EVERY` (claimed in
    the ledger, so concurrent ticks make one call) it re-registers the target with its *current*
    MinCapacity, a no-op for capacity that Application Auto Scaling still checks in full (the
    caller's permissions on the endpoint and on CloudWatch alarms). Every tick reports the last
    verdict: ``can_apply`` True/False (None: not known yet or deferred) with its reason, and publishes
    ``CanApply`` 1/0."""
    assert ad.ledger is not None
    last = (obs.entry.preflight or {}).get(function)
    if (last is None or tick.now - last.at >= PREFLIGHT_EVERY) and ad.ledger.claim_preflight(
        settings.resource_id, function, tick.now, PREFLIGHT_EVERY
    ):
        current = obs.target.min_capacity
        can_apply: bool | None
        try:
            applied = ad.autoscaling.set_min_capacity(obs.target, current)
        except PermissionDenied as exc:
            can_apply, reason = False, str(exc)
            _count("PermissionDenied")
            logger.error(f"DryRun preflight: {exc}", extra={"outcome": "permission_denied",
                                                            "missing_actions": exc.actions})
        except ValueError as exc:
            can_apply, reason = None, f"preflight not possible: {exc}"
        else:
            if applied.outcome == "applied":
                can_apply, reason = True, f"RegisterScalableTarget with the current MinCapacity {current} accepted"
            elif applied.outcome == "deferred":
                can_apply, reason = None, f"preflight deferred: {applied.message}"
            else:
                can_apply, reason = False, f"preflight: {applied.outcome}: {applied.message}"
        ad.ledger.record_preflight(settings.resource_id, function, can_apply, reason)
        last = Preflight(tick.now, can_apply, reason)
    if last is not None and last.can_apply is not None:
        _count("CanApply", int(last.can_apply))
    return {
        "can_apply": last.can_apply if last is not None else None,
        "can_apply_reason": last.reason if last is not None else "preflight claimed by a concurrent tick",
        "preflight_at": last.at.isoformat() if last is not None else None,
    }


#: Which SuspendedState flags stop which action of ours. ``DynamicScalingInSuspended`` (no capacity
#: removed by policies): no relax, no prompt scale-in. ``DynamicScalingOutSuspended``: no raise.
#: ``ScheduledScalingSuspended`` (AWS: "don't add or remove capacity by initiating scheduled
#: actions"): the pre-scaler is a forecast-driven schedule of MinCapacity, so neither.
SUSPENDS = {
    "raise": ("DynamicScalingOutSuspended", "ScheduledScalingSuspended"),
    "relax": ("DynamicScalingInSuspended", "ScheduledScalingSuspended"),
}


def suspended_for(action: str, target: ScalableTarget) -> list[str]:
    """The target's SuspendedState flags (``Flag=true``) that forbid ``action``; empty when none does."""
    return [f"{flag}=true" for flag in SUSPENDS.get(action, ()) if target.suspended_state.get(flag)]


def _unapplied(
    function: str, settings: ScalerSettings, tick: Tick, obs: Observation, applied: ApplyResult | str
) -> dict | None:
    """The ``hold`` result when a MinCapacity change was not made (another tick claimed it first, or
    Application Auto Scaling deferred or refused it); None when it was applied."""
    if applied == "duplicate":
        reason, outcome = "another tick changed the ledger first; nothing done twice", "duplicate"
    elif isinstance(applied, ApplyResult) and applied.outcome != "applied":
        reason, outcome = f"{obs.decision.reason}; not applied: {applied.message}", applied.outcome
    else:
        return None
    return _decision_result(function, settings, tick, obs, action="hold", outcome=outcome,
                            new_min=obs.target.min_capacity, reason=reason)


def _details(obs: Observation, tick: Tick, new_min: int, reason: str, **more: object) -> dict[str, object]:
    fc = obs.decision.forecast
    return {
        "min_capacity": new_min,
        "previous_min_capacity": obs.target.min_capacity,
        "at": tick.now.isoformat(),
        "reason": reason,
        "event_id": tick.event_id,
        "forecast_peak_invocations_per_minute": round(float(fc.peak_invocations_per_minute), 3) if fc else None,
        "pattern": fc.pattern if fc else None,
        "window_start": fc.window_start.isoformat() if fc else None,
        "window_end": fc.window_end.isoformat() if fc else None,
        **more,
    }


def _change_min(
    ad: Adapters,
    obs: Observation,
    tick: Tick,
    action: str,
    new_min: int,
    owned: int | None,
    owned_since: pd.Timestamp | None,
    details: dict[str, object],
    floor: int | None = None,
    watchdog_at: pd.Timestamp | None = None,
) -> ApplyResult | str:
    """Claim the change in the ledger as an intent (conditional write), register MinCapacity, then
    confirm the intent; discard it when the change was refused. A tick killed between the steps
    leaves the intent for the next tick to reconcile (:func:`_reconcile`). Returns the ApplyResult,
    or ``"duplicate"``."""
    ledger = ad.ledger
    assert ledger is not None
    intent = Intent(action, obs.target.min_capacity, new_min, tick.now, owned, owned_since, floor, watchdog_at,
                    details)
    claimed = ledger.intend(obs.entry, intent, tick.now)
    if claimed is None:
        _count("DuplicateTick")
        return "duplicate"
    try:
        applied = ad.autoscaling.set_min_capacity(obs.target, new_min)
    except PermissionDenied as exc:
        # AWS answered: refused for permissions. Never "deferred": the next tick would fail the same
        # way. One clear line, a metric, and the error raised so that the function's Errors alarm fires
        # (and the tick goes to the failure queue).
        _settle(ledger.discard, claimed, tick, f"RegisterScalableTarget refused: {exc}")
        _count("PermissionDenied")
        _count("FaultHold", 1)
        logger.error(str(exc), extra={"outcome": "permission_denied", "missing_actions": exc.actions})
        raise
    except ClientError as exc:
        # AWS answered: the change was refused, not made. (A timeout or connection error leaves the
        # outcome unknown: the intent stays and the next tick compares it with the target.)
        status = http_status(exc)
        if 0 < status < 500:
            _settle(ledger.discard, claimed, tick, f"RegisterScalableTarget failed: {classify(exc).describe()}")
        raise
    except ValueError as exc:  # refused before the call (MinCapacity outside [1, MaxCapacity])
        _settle(ledger.discard, claimed, tick, f"not sent: {exc}")
        raise
    if applied.outcome != "applied":
        _settle(ledger.discard, claimed, tick, f"not applied: {applied.message}")
        _count("Deferred" if applied.outcome == "deferred" else "TargetMissing")
        return applied
    _settle(lambda entry, now, _why: ledger.confirm(entry, now), claimed, tick, "")
    return applied


def _settle(write: Callable[..., bool], claimed: LedgerEntry, tick: Tick, why: str) -> None:
    """Confirm or discard an intent; a failure to write it is logged and left to the next tick's
    reconciliation (the MinCapacity call itself has been answered)."""
    try:
        ok = write(claimed, tick.now, why)
    except (ClientError, BotoCoreError) as exc:
        fault = classify(exc)
        _count(fault.metric)
        logger.warning(f"ledger not settled ({fault.describe()}); the next tick reconciles the intent",
                       extra={"outcome": fault.outcome})
        return
    if not ok:
        logger.warning("ledger changed under an unsettled intent; the next tick reconciles it")


@tracer.capture_method
def prescale(settings: ScalerSettings, tick: Tick, adapters: Adapters | None = None) -> dict:
    """One pre-scaler tick: raise MinCapacity ahead of a forecast spike (never lowers it).

    Returns:
        A small JSON-ready dict: ``action`` (raise / hold), ``outcome`` (applied, reapplied, dry_run,
        hold, deferred, duplicate, no_data, target_missing, endpoint_missing), ``old_min_capacity``,
        ``new_min_capacity``, ``reason``, ``forecast_peak_invocations_per_minute``, ``lead_time_s``;
        in DryRun also ``can_apply`` / ``can_apply_reason`` / ``preflight_at`` (:func:`_preflight`).

    Raises:
        PermissionDenied: Application Auto Scaling refused the raise for missing permissions
            (outcome ``permission_denied``: logged, counted, then raised so the Errors alarm fires).
    """
    ad = adapters or Adapters.default(settings.ledger_table_name)
    obs = _observe_own("prescale", "raise", "relaxing is the relaxer's job", settings, tick, ad)
    if isinstance(obs, dict):
        return obs
    d = obs.decision
    if settings.dry_run:
        return _decision_result(
            "prescale",
            settings,
            tick,
            obs,
            action="raise",
            outcome="dry_run",
            new_min=obs.target.min_capacity,
            reason=f"dry run, nothing changed: {d.reason}",
            proposed_min_capacity=d.min_capacity,
        )
    # a raise written back to the baseline by a stack update is re-applied as the same raise: the
    # watchdog keeps counting from when it began, and relax still returns to the operator's floor
    reapply = obs.reverted_from is not None
    already_owned = obs.entry.owned_min_capacity == obs.target.min_capacity or reapply
    owned_since = obs.entry.owned_since if already_owned else None
    baseline = min(settings.baseline_min_capacity, obs.target.max_capacity)
    # an operator's MinCapacity above the baseline that this raise goes over: relax returns to it
    floor = (
        obs.entry.floor_min_capacity
        if already_owned
        else (obs.target.min_capacity if obs.target.min_capacity > baseline else None)
    )
    applied = _change_min(
        ad,
        obs,
        tick,
        "raise",
        d.min_capacity,
        d.min_capacity,
        owned_since or tick.now,
        _details(obs, tick, d.min_capacity, d.reason, floor_min_capacity=floor),
        floor,
    )
    unapplied = _unapplied("prescale", settings, tick, obs, applied)
    if unapplied is not None:
        return unapplied
    reason = d.reason
    if reapply:
        reason = (f"re-applied: MinCapacity was written back to {obs.target.min_capacity} (stack update or "
                  f"REVERT_DRIFT) while the ledger held {obs.reverted_from}; {d.reason}")
    return _decision_result(
        "prescale",
        settings,
        tick,
        obs,
        action="raise",
        outcome="reapplied" if reapply else "applied",
        new_min=d.min_capacity,
        reason=reason,
    )


@tracer.capture_method
def relax(settings: ScalerSettings, tick: Tick, adapters: Adapters | None = None) -> dict:
    """One relaxer tick: lower a MinCapacity the pre-scaler set (forecast or watchdog), and with
    prompt scale-in lower the variant's desired instance count (never below MinCapacity).

    Returns:
        As :func:`prescale`, plus ``desired_instances`` and ``scale_in`` (``pending`` after a
        lowered MinCapacity or a prompt scale-in request: instances leave later, not now).
    """
    ad = adapters or Adapters.default(settings.ledger_table_name)
    obs = _observe_own("relax", "relax", "raising is the pre-scaler's job", settings, tick, ad)
    if isinstance(obs, dict):
        return obs
    d = obs.decision
    instances = obs.desired_capacity(settings.variant_name)
    if settings.dry_run:
        return _decision_result(
            "relax",
            settings,
            tick,
            obs,
            action="relax",
            outcome="dry_run",
            new_min=obs.target.min_capacity,
            reason=f"dry run, nothing changed: {d.reason}",
            proposed_min_capacity=d.min_capacity,
            desired_instances=d.desired_instances,
        )
    new_min = obs.target.min_capacity
    notes = []
    # never below an operator's MinCapacity that the raise went over (recorded in the ledger)
    floor = obs.entry.floor_min_capacity or 0
    target_min = max(d.min_capacity, floor)
    if floor > d.min_capacity:
        notes.append(f"MinCapacity kept at or above {floor}, the operator's value before the raise")
    if target_min < obs.target.min_capacity:
        baseline = min(settings.baseline_min_capacity, obs.target.max_capacity)
        owned = target_min if target_min > max(baseline, floor) else None
        applied = _change_min(
            ad,
            obs,
            tick,
            "relax",
            target_min,
            owned,
            obs.entry.owned_since if owned else None,
            _details(obs, tick, target_min, d.reason, desired_instances=d.desired_instances),
            obs.entry.floor_min_capacity if owned else None,
            tick.now if d.watchdog_fired else None,
        )
        unapplied = _unapplied("relax", settings, tick, obs, applied)
        if unapplied is not None:
            return unapplied
        new_min = target_min
        notes.append(f"MinCapacity lowered {obs.target.min_capacity} -> {new_min}")
    desired_outcome = None
    if d.desired_instances is not None and d.desired_instances < instances:
        desired = max(d.desired_instances, new_min)
        try:
            if obs.component is not None:
                res = ad.sagemaker.set_desired_copies(obs.component, desired, new_min)
            else:
                res = ad.sagemaker.set_desired_instances(obs.endpoint, settings.variant_name, desired, new_min)
        except (ClientError, BotoCoreError) as exc:  # MinCapacity may already be lowered: say what happened
            fault = classify(exc)
            _count(fault.metric)
            logger.warning(f"prompt scale-in not requested: {fault.describe()}", extra={"outcome": fault.outcome})
            res = ApplyResult("deferred", fault.describe())
        desired_outcome = res.outcome
        if res.outcome == "applied":
            _count("PromptScaleIn")
            notes.append(f"prompt scale-in requested: desired instances {instances} -> {desired}")
        else:
            notes.append(f"prompt scale-in {res.outcome}: {res.message}")
    changed = new_min != obs.target.min_capacity or desired_outcome == "applied"
    pending = changed and instances > new_min
    if pending and desired_outcome != "applied":
        notes.append(
            f"scale-in pending: {instances} instances, target tracking will remove the "
            f"ones above MinCapacity {new_min} after its scale-in alarm"
        )
    elif pending:
        notes.append("scale-in pending: SageMaker removes the instances while the endpoint updates")
    return _decision_result(
        "relax",
        settings,
        tick,
        obs,
        action="relax" if changed else "hold",
        outcome="applied" if changed else "hold",
        new_min=new_min,
        reason=f"{d.reason}. " + "; ".join(notes),
        desired_instances=d.desired_instances,
        prompt_scale_in=desired_outcome,
        scale_in="pending" if pending else "none",
        current_instances=instances,
    )


# --------------------------------------------------------------------------------------------------
# GPU metric


@tracer.capture_method
def gpu_metric(settings: FunctionSettings, tick: Tick, adapters: Adapters | None = None) -> dict:
    """Publish ``GPUUtilizationPerGPU`` (percent, 0-100): SageMaker's ``GPUUtilization`` (summed over
    the instance's GPUs) divided by the instance type's GPU count; also reads ``ModelLatency``
    (microseconds) and reports it in milliseconds.

    Raises:
        UnknownInstanceType: the instance type's GPU count is not known (never guessed).
        EndpointMissing: no such endpoint or variant.
    """
    ad = adapters or Adapters.default(None)
    _metric_context(settings)
    endpoint = ad.sagemaker.endpoint(settings.endpoint_name)
    instance_type = ad.sagemaker.instance_type(endpoint, settings.variant_name)
    gpus = gpus_per_instance(instance_type)
    end = complete_end(tick.now, incomplete_minutes=1)
    latest = latest_average(
        ad.cloudwatch,
        settings.endpoint_name,
        settings.variant_name,
        [(ENDPOINT_INSTANCE_NAMESPACE, "GPUUtilization"), (SAGEMAKER_NAMESPACE, "ModelLatency")],
        end,
    )
    result = _result(
        "gpu_metric",
        settings,
        tick,
        action="publish",
        instance_type=instance_type,
        gpus_per_instance=gpus,
        metric_name=GPU_METRIC_NAME,
        namespace=settings.metrics_namespace,
    )
    gpu = latest["GPUUtilization"]
    if gpu is None:
        _count("NoData")
        result.update(
            action="hold",
            outcome="no_data",
            gpu_utilization_per_gpu=None,
            reason="no GPUUtilization datapoint in the last 5 minutes; nothing published",
        )
        logger.warning(result["reason"])
    else:
        ts, summed = gpu
        per_gpu = summed / gpus
        dropped = put_metric(
            ad.cloudwatch,
            settings.metrics_namespace,
            GPU_METRIC_NAME,
            [(ts, per_gpu)],
            "Percent",
            dimensions(settings.endpoint_name, settings.variant_name),
            wall_clock(),
        )
        for why in dropped:
            logger.warning(why, extra={"outcome": "stale_data"})
        _count("StaleData", len(dropped))
        _count("GpuUtilizationPerGpu", per_gpu, MetricUnit.Percent)
        result.update(
            outcome="stale_data" if dropped else "applied",
            action="hold" if dropped else "publish",
            gpu_utilization_per_gpu=round(per_gpu, 3),
            gpu_utilization_summed=summed,
            timestamp=ts.isoformat(),
            reason=f"GPUUtilization {summed:g}% over {gpus} GPU(s) of {instance_type} = {per_gpu:.1f}% per GPU"
            + (f"; not published: {'; '.join(dropped)}" if dropped else ""),
        )
    latency = latest["ModelLatency"]
    result["model_latency_ms"] = round(microseconds_to_ms(latency[1]), 3) if latency else None
    logger.info(result["reason"], extra={"result": result})
    return result


# --------------------------------------------------------------------------------------------------
# user mistakes


def handle(function: str, settings_model: type[SettingsT], run: Callable[[SettingsT, Tick], dict],
           event: Any) -> dict:
    """What every handler does: settings validated from the environment, the tick read from the
    event, one call to ``run``.

    User mistakes (a missing or invalid setting, an unreadable event) are logged as ONE clear line
    naming the variable or field, counted (``InvalidSettings`` / ``InvalidEvent``), and then raised,
    so the platform sees them: the invocation fails, Lambda's ``Errors`` metric and the function's
    Errors alarm fire, the event goes to the failure queue. A normal return here would be silent in
    production. Nothing is changed on the endpoint.

    Raises:
        SettingsError: a missing or invalid environment variable (:func:`invalid_settings`).
        InvalidEvent: an event whose ``time`` or ``id`` cannot be read (:func:`invalid_event`).
    """
    try:
        settings = load(settings_model)
    except SettingsError as exc:
        invalid_settings(function, exc)
        raise mark_logged(exc) from None
    now = wall_clock()
    try:
        tick = parse_tick(event, lambda: now)
    except InvalidEvent as exc:
        invalid_event(function, exc)
        raise mark_logged(exc) from None
    skew = event_skew(tick, now)
    if skew is not None:
        return stale_event(function, settings, tick, now, skew)
    try:
        return run(settings, tick)
    except (ClientError, BotoCoreError) as exc:
        return aws_fault(function, settings, tick, classify(exc))


def aws_fault(function: str, settings: FunctionSettings, tick: Tick, fault: AwsFault) -> dict:
    """An AWS error that escaped botocore's retries, decided (:mod:`prescaler.aws.errors`): a
    ``hold`` result naming the call and the code, plus a metric; for a fault that needs a person
    (``fault.alarm``) the result is logged and :class:`TickFailed` raised.

    The tick changes nothing after the failed call; a MinCapacity change whose outcome is unknown
    stays an intent in the ledger for the next tick to reconcile.
    """
    _metric_context(settings)
    _count(fault.metric)
    reason = f"hold: {fault.describe()}; nothing changed after it"
    result = _result(function, settings, tick, action="error" if fault.alarm else "hold", outcome=fault.outcome,
                     reason=reason, aws_operation=fault.operation, aws_error_code=fault.code, clock=tick.clock)
    if fault.alarm:
        logger.error(reason, extra={"outcome": fault.outcome, "result": result})
        raise mark_logged(TickFailed(f"{function}: {fault.outcome}: {fault.describe()}", fault.outcome))
    logger.warning(reason, extra={"outcome": fault.outcome})
    return result


def stale_event(function: str, settings: FunctionSettings, tick: Tick, now: pd.Timestamp,
                skew: pd.Timedelta) -> dict:
    """A tick whose event time is more than :data:`MAX_EVENT_SKEW` from the wall clock: refused,
    nothing read or changed; counted (``StaleEvent``) and logged. Returned as ``{"action": "hold",
    "outcome": "stale_event", ...}``. Replaying a time on purpose: ``"prescaler-replay": true``."""
    _metric_context(settings)
    _count("StaleEvent")
    minutes = skew / pd.Timedelta(minutes=1)
    reason = (f"refused: the event's time {tick.now.isoformat()} is {abs(minutes):.1f} min "
              f"{'behind' if minutes > 0 else 'ahead of'} the clock ({now.isoformat()}); a late or duplicate "
              f"delivery must not act on its old time. Nothing changed. To replay a time on purpose, add "
              f'"{REPLAY_FIELD}": true to the event')
    logger.warning(reason, extra={"outcome": "stale_event", "event_id": tick.event_id})
    return _result(function, settings, tick, action="hold", outcome="stale_event", reason=reason,
                   event_time=tick.now.isoformat(), wall_clock=now.isoformat(), clock=tick.clock)


def invalid_event(function: str, exc: InvalidEvent) -> dict:
    """An event that cannot be read: logged without a stack trace, counted, nothing changed;
    returns the error record ``{"action": "error", "outcome": "invalid_event", "error": "<names the
    field>"}`` (:func:`handle` then raises)."""
    if not metrics.namespace:
        metrics.namespace = "SageMakerPrescaler"
    _count("InvalidEvent")
    logger.error(str(exc), extra={"outcome": "invalid_event", "function": function})
    return {"function": function, "action": "error", "outcome": "invalid_event", "error": str(exc)}


def invalid_settings(function: str, exc: SettingsError) -> dict:
    """A missing or invalid setting: logged without a stack trace, counted; returns the error record
    ``{"action": "error", "outcome": "invalid_settings", "error": "<names the variable>"}``
    (:func:`handle` then raises)."""
    if not metrics.namespace:
        metrics.namespace = "SageMakerPrescaler"
    _count("InvalidSettings")
    logger.error(str(exc), extra={"outcome": "invalid_settings", "function": function})
    return {"function": function, "action": "error", "outcome": "invalid_settings", "error": str(exc)}
