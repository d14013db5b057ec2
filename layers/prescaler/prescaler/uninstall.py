"""Uninstall while a raise is held: the stack's custom resource ``RestoreBaselineOnDelete``.

``sam delete`` removes the functions with everything else, so a MinCapacity the pre-scaler raised
would stay raised with nothing left to lower it. The template's custom resource
(``Custom::RestoreBaselineOnDelete``, service token: the relaxer) is deleted before the ledger table,
the relaxer and (in own mode) the scalable target, and on ``Delete`` restores what the pre-scaler
changed:

- MinCapacity back to where the raise started (the operator's floor recorded in the ledger, else
  ``BASELINE_MIN_CAPACITY``), only when the ledger says the pre-scaler still owns the current value
  (an operator's value is left alone);
- in own mode (``ManageScalableTarget=true``) the stack deletes the target and its policy right after,
  so no scale-in would follow: the variant's desired instance count (an inference component's copy
  count, with ``INFERENCE_COMPONENT_NAME``) is lowered to that MinCapacity too.

``Create`` and ``Update`` change nothing. Whatever happens, CloudFormation gets its answer (a PUT of
the JSON response to the pre-signed ``ResponseURL``, as the CloudFormation user guide's "Custom
resource response objects" describes): ``SUCCESS`` even when the restore failed (the reason says so),
because a failed delete would keep the whole stack, and its schedules, alive.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from typing import Any

import pandas as pd

from prescaler.observability import logger
from prescaler.settings import ScalerSettings, load

Send = Callable[[dict, dict[str, Any]], None]


def is_stack_event(event: Any) -> bool:
    """True for a CloudFormation custom-resource request (it has no ``time``: never run it as a tick)."""
    return isinstance(event, dict) and {"RequestType", "ResponseURL", "StackId", "RequestId"} <= set(event)


def send_response(event: dict, response: dict[str, Any]) -> None:
    """PUT ``response`` to the request's pre-signed S3 ``ResponseURL`` (empty content type, as
    CloudFormation expects). Raises ``urllib.error.URLError`` when it cannot be delivered."""
    body = json.dumps(response).encode()
    request = urllib.request.Request(
        event["ResponseURL"], data=body, method="PUT", headers={"Content-Type": "", "Content-Length": str(len(body))}
    )
    with urllib.request.urlopen(request, timeout=20) as answer:
        answer.read()


def restore_baseline(settings: ScalerSettings, adapters: Any, owns_target: bool, now: pd.Timestamp) -> dict[str, Any]:
    """Undo a raise the ledger says the pre-scaler still holds (see the module docstring).

    Returns:
        ``{"restored": bool, "min_capacity": int | None, "desired_instances": int | None, "reason": str}``.
    """
    rid = settings.resource_id
    target = adapters.autoscaling.describe(rid)
    if target is None:
        return {"restored": False, "min_capacity": None, "desired_instances": None,
                "reason": f"no scalable target {rid}: nothing to restore"}
    entry = adapters.ledger.get(rid)
    if entry.owned_min_capacity is None or entry.owned_min_capacity != target.min_capacity:
        return {"restored": False, "min_capacity": target.min_capacity, "desired_instances": None,
                "reason": f"no raise held by the pre-scaler: MinCapacity {target.min_capacity} left as it is"}
    baseline = min(settings.baseline_min_capacity, target.max_capacity)
    restore_to = entry.floor_min_capacity or baseline
    applied = adapters.autoscaling.set_min_capacity(target, restore_to)
    if applied.outcome != "applied":
        return {"restored": False, "min_capacity": target.min_capacity, "desired_instances": None,
                "reason": f"MinCapacity {target.min_capacity} not restored: {applied.outcome} {applied.message}"}
    adapters.ledger.record(entry, "relax", owned_min_capacity=None, owned_since=None, now=now,
                           details={"min_capacity": restore_to, "previous_min_capacity": target.min_capacity,
                                    "at": now.isoformat(), "reason": "stack deleted: baseline restored"})
    reason = f"stack deleted: MinCapacity {target.min_capacity} -> {restore_to}"
    desired = None
    if owns_target and settings.inference_component_name:  # a component: its copy count, not the variant's
        component = adapters.sagemaker.inference_component(settings.inference_component_name)
        if component.desired_copies > restore_to:
            result = adapters.sagemaker.set_desired_copies(component, restore_to, restore_to)
            desired = restore_to if result.outcome == "applied" else None
            reason += (f"; desired copies {component.desired_copies} -> {restore_to} (the stack deletes the "
                       f"target and its policy: no scale-in would follow)" if desired is not None
                       else f"; desired copies left at {component.desired_copies} ({result.outcome})")
    elif owns_target:
        endpoint = adapters.sagemaker.endpoint(settings.endpoint_name)
        variant = endpoint.variants.get(settings.variant_name)
        if variant is not None and variant.desired_instances > restore_to:
            result = adapters.sagemaker.set_desired_instances(endpoint, settings.variant_name, restore_to, restore_to)
            desired = restore_to if result.outcome == "applied" else None
            reason += (f"; desired instances {variant.desired_instances} -> {restore_to} (the stack deletes the "
                       f"target and its policy: no scale-in would follow)" if desired is not None
                       else f"; desired instances left at {variant.desired_instances} ({result.outcome})")
    return {"restored": True, "min_capacity": restore_to, "desired_instances": desired, "reason": reason}


def on_stack_event(event: dict, adapters: Any = None, send: Callable[[dict, dict[str, Any]], None] = send_response,
                   now: pd.Timestamp | None = None) -> dict[str, Any]:
    """Answer one custom-resource request (``Create`` / ``Update``: nothing to do; ``Delete``:
    :func:`restore_baseline`). Always answers CloudFormation; returns what it sent."""
    request = event.get("RequestType")
    props = event.get("ResourceProperties") or {}
    data: dict[str, Any] = {}
    reason = f"{request}: nothing to do"
    if request == "Delete":
        try:
            settings = load(ScalerSettings)
            if adapters is None:
                from prescaler.service import Adapters

                adapters = Adapters.default(settings.ledger_table_name)
            data = restore_baseline(settings, adapters, str(props.get("ManageScalableTarget")) == "true",
                                    now if now is not None else pd.Timestamp.now(tz="UTC"))
            reason = data["reason"]
        except Exception as exc:  # the stack must still be deletable: report, never block
            logger.exception("baseline not restored on stack delete")
            reason = f"baseline NOT restored ({type(exc).__name__}: {exc}); check MinCapacity by hand"
            data = {"restored": False}
    response = {
        "Status": "SUCCESS",
        "Reason": reason[:3000],
        "PhysicalResourceId": event.get("PhysicalResourceId") or f"restore-baseline-{event.get('LogicalResourceId')}",
        "StackId": event["StackId"],
        "RequestId": event["RequestId"],
        "LogicalResourceId": event.get("LogicalResourceId"),
        "NoEcho": False,
        "Data": {k: str(v) for k, v in data.items()},
    }
    logger.info(reason, extra={"request_type": request, "restore": data})
    send(event, response)
    return response
