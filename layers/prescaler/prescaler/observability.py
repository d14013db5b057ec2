"""The one place that builds the Powertools ``logger``, ``tracer`` and ``metrics``.

Service name and namespace come from ``POWERTOOLS_SERVICE_NAME`` / ``POWERTOOLS_METRICS_NAMESPACE``
(set in the template's Globals). Building these objects reads no AWS and makes no call.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger()
tracer = Tracer()
metrics = Metrics()
