"""Pre-scaler: raise MinCapacity ahead of a forecast spike (never lowers it).

Thin handler: Powertools decorators, the settings validated from the environment, then one call
into :mod:`prescaler.service`, which returns a small JSON result.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from prescaler import fleet, service
from prescaler.observability import logger, metrics, tracer


@logger.inject_lambda_context(correlation_id_path=correlation_paths.EVENT_BRIDGE)
@metrics.log_metrics(capture_cold_start_metric=True)
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return fleet.handle("prescale", service.prescale, event, context)
