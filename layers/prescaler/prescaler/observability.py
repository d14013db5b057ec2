"""The one place that builds the Powertools ``logger``, ``tracer`` and ``metrics``.

Service name and namespace come from ``POWERTOOLS_SERVICE_NAME`` / ``POWERTOOLS_METRICS_NAMESPACE``
(set in the template). Building these objects reads no AWS and makes no call.

Metrics carry exactly the dimensions the handlers add (``EndpointName`` + ``VariantName``): Powertools
adds a ``service`` dimension to every EMF metric whenever it knows a service name, and a metric with
``{EndpointName, VariantName, service}`` is a different metric from the one the template's alarms and
dashboard query (CloudWatch matches the exact dimension set). ``service=""`` turns that off for
metrics only; the logger still names the service in every line.
"""

from __future__ import annotations

import logging

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger()
tracer = Tracer()
metrics = Metrics(service="")


def mark_logged(exc: BaseException) -> BaseException:
    """Mark a user mistake that was already logged as one clear line: Powertools' tracer does not log
    it again with a stack trace when it leaves the handler (Lambda still reports the failure)."""
    exc.already_logged = True  # type: ignore[attr-defined]
    return exc


class _AlreadyLogged(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not getattr(exc, "already_logged", False)


logging.getLogger("aws_lambda_powertools.tracing.tracer").addFilter(_AlreadyLogged())
