"""prescaler.aws.errors: every AWS error class has a decided outcome (the HTTP-level matrix is in
tests/integration/test_faults.py; these are the classes a moto run cannot produce)."""

from __future__ import annotations

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    ReadTimeoutError,
)
from prescaler.aws.errors import classify

pytestmark = pytest.mark.unit


def client_error(code: str, status: int, message: str = "m", op: str = "GetMetricData") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message},
                        "ResponseMetadata": {"HTTPStatusCode": status}}, op)


@pytest.mark.parametrize(("code", "status", "outcome", "alarm"), [
    ("Throttling", 400, "throttled", False),
    ("ThrottlingException", 400, "throttled", False),
    ("TooManyRequestsException", 429, "throttled", False),
    ("ProvisionedThroughputExceededException", 400, "throttled", False),
    ("InternalFailure", 500, "unavailable", False),
    ("ServiceUnavailable", 503, "unavailable", False),
    ("SomethingNew", 502, "unavailable", False),
    ("RequestTimeout", 408, "unavailable", False),
    ("ConcurrentUpdateException", 400, "deferred", False),
    ("AccessDeniedException", 400, "permission_denied", True),
    ("AccessDenied", 403, "permission_denied", True),
    ("ExpiredTokenException", 400, "permission_denied", True),
    ("ValidationException", 400, "rejected", True),
    ("InvalidParameterValue", 400, "rejected", True),
    ("SomethingNew", 400, "rejected", True),
])
def test_client_errors(code: str, status: int, outcome: str, alarm: bool) -> None:
    fault = classify(client_error(code, status))
    assert (fault.outcome, fault.alarm, fault.code, fault.operation) == (outcome, alarm, code, "GetMetricData")


def test_a_validation_exception_naming_a_permission_is_permission_denied() -> None:
    msg = ("User: arn:aws:sts::123456789012:assumed-role/x/y is not authorized to perform: "
           "iam:CreateServiceLinkedRole")
    assert classify(client_error("ValidationException", 400, msg, "RegisterScalableTarget")).outcome == \
        "permission_denied"


@pytest.mark.parametrize(("exc", "outcome", "alarm"), [
    (EndpointConnectionError(endpoint_url="https://monitoring.us-east-1.amazonaws.com"), "unavailable", False),
    (ConnectTimeoutError(endpoint_url="https://x"), "unavailable", False),
    (ReadTimeoutError(endpoint_url="https://x"), "unavailable", False),
    (NoCredentialsError(), "permission_denied", True),
    (NoRegionError(), "rejected", True),
])
def test_botocore_errors(exc: Exception, outcome: str, alarm: bool) -> None:
    fault = classify(exc)  # type: ignore[arg-type]
    assert (fault.outcome, fault.alarm) == (outcome, alarm)
    assert fault.describe().count("\n") == 0
