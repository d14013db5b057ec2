"""Relaxer: lower a MinCapacity the pre-scaler set once the spike is over (and the watchdog).

Thin handler: Powertools decorators, the settings validated from the environment, then one call
into :mod:`prescaler.service`, which returns a small JSON result.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from prescaler import fleet, service, uninstall
from prescaler.observability import logger, metrics, tracer


@logger.inject_lambda_context(correlation_id_path=correlation_paths.EVENT_BRIDGE)
@metrics.log_metrics(capture_cold_start_metric=True)
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if uninstall.is_stack_event(event):  # the stack's RestoreBaselineOnDelete custom resource
        return uninstall.on_stack_event(event)
    return fleet.handle("relax", service.relax, event, context)
