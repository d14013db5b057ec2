"""Application Auto Scaling: the scalable target, its MinCapacity, its scaling activities.

Two kinds of scalable target, told apart by the resource id (Application Auto Scaling API reference,
``ResourceId`` and ``ScalableDimension``):

- an endpoint variant, ``endpoint/<endpoint>/variant/<variant>``, dimension
  ``sagemaker:variant:DesiredInstanceCount`` (instances; MinCapacity at least 1);
- an inference component, ``inference-component/<name>``, dimension
  ``sagemaker:inference-component:DesiredCopyCount`` (copies; MinCapacity may be 0: scale to zero).

Rules (ARCHITECTURE.md, "Invariants"):

- Only ``MinCapacity`` is ever sent. ``MaxCapacity`` and ``SuspendedState`` are left out of every
  request, so Application Auto Scaling keeps them as they are (an operator's
  ``DynamicScalingInSuspended=true`` survives a raise and a relax).
- A MinCapacity above the target's MaxCapacity is never sent (:class:`ValueError` before the call).
- Errors become outcomes: ``ObjectNotFoundException`` -> ``target_missing``; a
  ``ValidationException`` about the endpoint's status (``Updating``, ``Creating``, ...) and
  ``ConcurrentUpdateException`` -> ``deferred`` (the next tick, a minute later, tries again; botocore's
  standard retry mode already retried throttling and 5xx). A ``ValidationException`` that names
  missing permissions (Application Auto Scaling checks the *caller's* permissions on the target service
  and on CloudWatch alarms on every ``RegisterScalableTarget``, updates included: user guide,
  "Permissions validation for API calls on target resources") -> :class:`PermissionDenied`, raised:
  it is never deferred, because the next tick would fail the same way. Anything else is raised.
- Lead time: every successful scale-out counts, whether its Cause reads "... changing the desired
  capacity from 2 to 6." (a policy's alarm) or "minimum capacity was set to 6" (a MinCapacity raise,
  ours included; the AWS docs' examples carry no "from" there).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import numpy as np
import pandas as pd
from botocore.exceptions import ClientError

from prescaler.aws.errors import TickFailed, classify
from prescaler.history import to_utc

SERVICE_NAMESPACE = "sagemaker"
SCALABLE_DIMENSION = "sagemaker:variant:DesiredInstanceCount"
#: An inference component's copy count (its MinCapacity may be 0).
COMPONENT_SCALABLE_DIMENSION = "sagemaker:inference-component:DesiredCopyCount"
COMPONENT_PREFIX = "inference-component/"

Outcome = Literal["applied", "deferred", "target_missing"]

#: "... changing the desired capacity from 2 to 6." (the Cause of an Application Auto Scaling activity)
_CHANGE = re.compile(r"from (\d+) to (\d+)")
#: "minimum capacity was set to 6" (Cause of the activity a MinCapacity raise starts: a scale-out)
_MIN_SET = re.compile(r"minimum capacity was set to (\d+)", re.IGNORECASE)
#: "Setting desired instance count to 6." (the Description of a SageMaker variant's activity)
_SETTING_TO = re.compile(r"setting desired [a-z ]*?to (\d+)", re.IGNORECASE)
#: an IAM action named in an error message, e.g. ``cloudwatch:PutMetricAlarm``
_IAM_ACTION = re.compile(r"\b([a-z0-9-]+:[A-Z][A-Za-z0-9]+)\b")


class PermissionDenied(TickFailed):
    """Application Auto Scaling refused a call for lack of IAM permissions (``ValidationException``
    naming missing permissions, or ``AccessDeniedException``). ``actions``: the IAM actions the
    message names (may be empty when AWS names none). Never retried: the role must change."""

    def __init__(self, operation: str, code: str, message: str) -> None:
        self.operation = operation
        self.code = code
        self.message = message
        self.actions = sorted(set(_IAM_ACTION.findall(message)))
        named = f" (missing: {', '.join(self.actions)})" if self.actions else ""
        super().__init__(f"permission_denied: {operation} refused with {code}{named}: {message}",
                         "permission_denied")


def permission_denied(exc: ClientError, operation: str) -> PermissionDenied | None:
    """The :class:`PermissionDenied` that ``exc`` means, or None when it is about something else
    (the one classification of :func:`prescaler.aws.errors.classify`)."""
    if classify(exc).outcome != "permission_denied":
        return None
    err = exc.response.get("Error", {})
    return PermissionDenied(operation, err.get("Code", ""), err.get("Message", ""))


def resource_id(endpoint_name: str, variant_name: str) -> str:
    """``endpoint/<name>/variant/<variant>``: the scalable target's resource id."""
    return f"endpoint/{endpoint_name}/variant/{variant_name}"


def component_resource_id(component_name: str) -> str:
    """``inference-component/<name>``: an inference component's scalable target resource id."""
    return f"{COMPONENT_PREFIX}{component_name}"


def scalable_dimension(rid: str) -> str:
    """The scalable dimension of a resource id: a component's copy count or a variant's instances."""
    return COMPONENT_SCALABLE_DIMENSION if rid.startswith(COMPONENT_PREFIX) else SCALABLE_DIMENSION


def lowest_min_capacity(rid: str) -> int:
    """The lowest MinCapacity Application Auto Scaling accepts for ``rid``: 0 for an inference
    component (scale to zero), 1 for an endpoint variant."""
    return 0 if rid.startswith(COMPONENT_PREFIX) else 1


@dataclass(frozen=True)
class ScalableTarget:
    """A scalable target (capacities in instances for a variant, in copies for a component)."""

    resource_id: str
    min_capacity: int
    max_capacity: int
    suspended_state: dict[str, bool] = field(default_factory=dict)


@dataclass(frozen=True)
class ApplyResult:
    """What happened to a change request: ``applied``, ``deferred`` or ``target_missing``."""

    outcome: Outcome
    message: str = ""


@dataclass(frozen=True)
class Activity:
    """One scaling activity (times UTC; capacities parsed from its Cause, None when absent)."""

    activity_id: str
    status: str
    start: pd.Timestamp
    end: pd.Timestamp | None
    from_capacity: int | None
    to_capacity: int | None
    description: str
    status_message: str

    cause: str = ""

    @property
    def scale_out(self) -> bool:
        """True for an activity that adds capacity: "from X to Y" with Y > X, or a MinCapacity raise
        ("minimum capacity was set to N": it only starts an activity when capacity is below N)."""
        if self.from_capacity is not None and self.to_capacity is not None:
            return self.to_capacity > self.from_capacity
        return bool(_MIN_SET.search(self.cause))


def _deferrable(exc: ClientError) -> bool:
    code = exc.response.get("Error", {}).get("Code", "")
    msg = exc.response.get("Error", {}).get("Message", "")
    if code == "ConcurrentUpdateException":
        return True
    return code == "ValidationException" and bool(
        re.search(r"status|Updating|Creating|InService|in[- ]progress", msg, re.IGNORECASE)
    )


class AutoScaling:
    """Adapter over a boto3 ``application-autoscaling`` client."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def describe(self, rid: str) -> ScalableTarget | None:
        """The scalable target for ``rid``, or None when there is none."""
        resp = self.client.describe_scalable_targets(
            ServiceNamespace=SERVICE_NAMESPACE, ResourceIds=[rid], ScalableDimension=scalable_dimension(rid)
        )
        for t in resp.get("ScalableTargets", []):
            if t["ResourceId"] == rid:
                return ScalableTarget(
                    rid, int(t["MinCapacity"]), int(t["MaxCapacity"]), dict(t.get("SuspendedState") or {})
                )
        return None

    def set_min_capacity(self, target: ScalableTarget, min_capacity: int) -> ApplyResult:
        """Register ``MinCapacity`` only (never MaxCapacity, never SuspendedState).

        Raises:
            ValueError: ``min_capacity`` is below the lowest the target accepts (1 for a variant, 0
                for an inference component) or above the target's MaxCapacity.
            PermissionDenied: the caller lacks a permission Application Auto Scaling checks.
            ClientError: an error that is neither retryable later nor a missing target.
        """
        lowest = lowest_min_capacity(target.resource_id)
        if not lowest <= min_capacity <= target.max_capacity:
            raise ValueError(
                f"MinCapacity {min_capacity} outside [{lowest}, MaxCapacity {target.max_capacity}]"
            )
        try:
            self.client.register_scalable_target(
                ServiceNamespace=SERVICE_NAMESPACE,
                ResourceId=target.resource_id,
                ScalableDimension=scalable_dimension(target.resource_id),
                MinCapacity=int(min_capacity),
            )
        except ClientError as exc:
            err = exc.response.get("Error", {})
            if err.get("Code") == "ObjectNotFoundException":
                return ApplyResult("target_missing", err.get("Message", ""))
            denied = permission_denied(exc, "RegisterScalableTarget")
            if denied is not None:
                raise denied from None
            if _deferrable(exc):
                return ApplyResult("deferred", f"{err.get('Code')}: {err.get('Message', '')}")
            raise
        return ApplyResult("applied")

    def activities(self, rid: str, max_results: int = 50) -> list[Activity]:
        """The newest scaling activities of ``rid`` (one page, newest first, as AWS returns them)."""
        resp = self.client.describe_scaling_activities(
            ServiceNamespace=SERVICE_NAMESPACE,
            ResourceId=rid,
            ScalableDimension=scalable_dimension(rid),
            MaxResults=max_results,
        )
        out = []
        for a in resp.get("ScalingActivities", []):
            cause, description = a.get("Cause", ""), a.get("Description", "")
            m = _CHANGE.search(cause) or _CHANGE.search(description)
            to = m.group(2) if m else next((x.group(1) for x in (_SETTING_TO.search(description),
                                                                  _MIN_SET.search(cause)) if x), None)
            out.append(
                Activity(
                    activity_id=a.get("ActivityId", ""),
                    status=a.get("StatusCode", ""),
                    start=to_utc(a["StartTime"]),
                    end=to_utc(a["EndTime"]) if a.get("EndTime") else None,
                    from_capacity=int(m.group(1)) if m else None,
                    to_capacity=int(to) if to is not None else None,
                    description=description,
                    status_message=a.get("StatusMessage", ""),
                    cause=cause,
                )
            )
        return out


def lead_time_s(
    activities: list[Activity], default_s: int, *, percentile: float = 90, max_s: int = 3600
) -> tuple[int, str]:
    """Lead time (seconds) from successful scale-outs: the ``percentile`` of their start-to-end
    durations (rounded up); ``default_s`` when there is none. Returns (seconds, source).

    No tick is added here: the planner prepares each tick for ``ceil(lead time / 60) + horizon``
    minutes, and the horizon's first minute is the tick (a spike at minute S is raised at
    ``S - ceil(lead time / 60)``, the last tick whose raise is in service by S). A tick added here
    as well raised every spike one minute earlier than it needs, at the raise's instances x a minute.
    """
    durations = [
        (a.end - a.start).total_seconds()
        for a in activities
        if a.status == "Successful" and a.scale_out and a.end is not None and a.end >= a.start
    ]
    if not durations:
        return default_s, "default"
    p = float(np.percentile(durations, percentile))
    return min(max_s, math.ceil(p)), f"p{percentile:g} of {len(durations)} scale-outs"


def failures_since(activities: list[Activity], since: datetime | pd.Timestamp | None) -> list[Activity]:
    """Failed activities that started at or after ``since`` (all failures when None), newest first."""
    lo = to_utc(since) if since is not None else None
    return [a for a in activities if a.status == "Failed" and (lo is None or a.start >= lo)]
