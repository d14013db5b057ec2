"""Every AWS error a tick can meet, decided: hold (transient; retry on the next tick) or fail (the
platform's ``Errors`` alarm pages someone). Never an unhandled ``ClientError`` / ``BotoCoreError``.

botocore's standard retry mode has already retried throttling, transient and 5xx errors and
connection failures (``prescaler.aws.clients.CONFIG``) by the time an exception reaches here, so:

=====================  ==========================================================  =========  ======
outcome                what                                                         metric     alarms
=====================  ==========================================================  =========  ======
``throttled``          throttling codes botocore retries (``Throttling``,           AwsThrottled  no
                       ``ThrottlingException``, ``TooManyRequestsException``, ...)
``unavailable``        5xx / transient codes (``InternalFailure``,                  AwsUnavailable no
                       ``ServiceUnavailable``, ...), connect/read timeouts,
                       ``EndpointConnectionError``
``deferred``           ``ConcurrentUpdateException`` (another change in progress)   Deferred   no
``permission_denied``  ``AccessDenied*``, ``UnauthorizedOperation``, expired or     PermissionDenied yes
                       missing credentials
``rejected``           anything else (``ValidationException`` that is not about     AwsRequestRejected yes
                       the endpoint's status, unknown codes, invalid parameters)
=====================  ==========================================================  =========  ======

A ``ValidationException`` about the endpoint's status (``Updating``...) is mapped to ``deferred``
by the adapter that makes the call (:mod:`prescaler.aws.autoscaling`, :mod:`prescaler.aws.sagemaker`);
a ``ValidationException`` naming missing permissions belongs with ``permission_denied``
(:data:`PERMISSION_MESSAGE` is the place to recognise it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)
from botocore.retries.standard import ThrottledRetryableChecker, TransientRetryableChecker

#: botocore's own lists (standard retry mode): what it retried before giving up.
THROTTLING_CODES = frozenset(getattr(ThrottledRetryableChecker, "_THROTTLED_ERROR_CODES", ()))
TRANSIENT_CODES = frozenset(getattr(TransientRetryableChecker, "_TRANSIENT_ERROR_CODES", ())) | {
    "InternalFailure", "InternalServerError", "InternalServiceError", "InternalServiceException",
    "ServiceUnavailableException", "InternalError",
}
DENIED_CODES = frozenset({
    "AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "UnauthorizedException",
    "UnrecognizedClientException", "InvalidClientTokenId", "ExpiredToken", "ExpiredTokenException",
    "InvalidSignatureException", "SignatureDoesNotMatch", "MissingAuthenticationToken",
})
DEFER_CODES = frozenset({"ConcurrentUpdateException"})
#: A ValidationException whose message says a permission is missing (e.g. the service-linked role).
PERMISSION_MESSAGE = re.compile(r"not authori[sz]ed|permission|access denied", re.IGNORECASE)
UNREACHABLE = (EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError, ConnectionClosedError)

METRICS = {
    "throttled": "AwsThrottled",
    "unavailable": "AwsUnavailable",
    "deferred": "Deferred",
    "permission_denied": "PermissionDenied",
    "rejected": "AwsRequestRejected",
}


@dataclass(frozen=True)
class AwsFault:
    """What an AWS error means for a tick.

    Attributes:
        outcome: ``throttled``, ``unavailable``, ``deferred``, ``permission_denied`` or ``rejected``.
        operation: the API operation (``GetMetricData``...), or ``"?"`` for a connection error.
        code: the error code (``ThrottlingException``...) or the botocore exception's class name.
        message: one line from AWS or botocore.
        alarm: True when the function must fail so the ``Errors`` alarm fires (nothing will fix it
            by itself); False for a hold that the next tick retries.
    """

    outcome: str
    operation: str
    code: str
    message: str
    alarm: bool

    @property
    def metric(self) -> str:
        return METRICS[self.outcome]

    def describe(self) -> str:
        return f"{self.operation} failed: {self.code}: {self.message}"


def http_status(exc: ClientError) -> int:
    """The HTTP status of the response behind ``exc`` (0 when unknown)."""
    meta: dict[str, Any] = dict(exc.response.get("ResponseMetadata") or {})
    return int(meta.get("HTTPStatusCode") or 0)


def classify(exc: ClientError | BotoCoreError) -> AwsFault:
    """Decide an AWS error (after botocore's retries). Never raises."""
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {}) or {}
        code = str(err.get("Code", "") or "Unknown")
        message = " ".join(str(err.get("Message", "") or "").split())[:300]
        status = http_status(exc)
        op = exc.operation_name or "?"
        if code in THROTTLING_CODES:
            return AwsFault("throttled", op, code, message, False)
        if code in DENIED_CODES or (code == "ValidationException" and PERMISSION_MESSAGE.search(message)):
            return AwsFault("permission_denied", op, code, message, True)
        if code in DEFER_CODES:
            return AwsFault("deferred", op, code, message, False)
        if code in TRANSIENT_CODES or status >= 500:
            return AwsFault("unavailable", op, code, message, False)
        return AwsFault("rejected", op, code, message, True)
    name = type(exc).__name__
    text = " ".join(str(exc).split())[:300]
    op = str(getattr(exc, "kwargs", {}).get("operation_name", "?")) if hasattr(exc, "kwargs") else "?"
    if isinstance(exc, UNREACHABLE):
        return AwsFault("unavailable", op, name, text, False)
    if isinstance(exc, NoCredentialsError):
        return AwsFault("permission_denied", op, name, text, True)
    return AwsFault("rejected", op, name, text, True)


class TickFailed(RuntimeError):
    """An AWS error that the next tick will not fix (permissions, a rejected request): the function
    fails on purpose so the platform's ``Errors`` alarm fires. The message is one line; ``outcome``
    is the decided outcome (``permission_denied``, ``rejected``)."""

    def __init__(self, message: str, outcome: str) -> None:
        super().__init__(message)
        self.outcome = outcome
