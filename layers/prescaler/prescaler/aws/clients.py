"""The one boto3 client factory: lazy, cached per process (warm Lambda starts reuse the clients).

Retries are botocore's own (``standard`` mode: throttling, transient and 5xx errors and connection
failures, with exponential backoff and jitter). ``total_max_attempts`` counts the first request:
3 means at most 3 requests per call (botocore's ``max_attempts`` key counts *retries*, so
``max_attempts: 3`` would mean 4 requests). ``AWS_ENDPOINT_URL`` (empty = unset) is honoured by
botocore itself, which is how the e2e tests point the functions at a moto server.

One call's worst case is ``ATTEMPTS x (CONNECT_TIMEOUT_S + READ_TIMEOUT_S)`` plus botocore's
backoff between attempts (:func:`worst_case_call_s`); it must fit the functions' ``Timeout``
(template.yaml) with room to record the outcome (``tests/integration/test_faults.py`` checks it).
"""

from __future__ import annotations

import functools
import os
from typing import Any

import boto3
from botocore.config import Config

#: Requests per call, the first one included.
ATTEMPTS = 3
CONNECT_TIMEOUT_S = 2
READ_TIMEOUT_S = 8

CONFIG = Config(
    retries={"mode": "standard", "total_max_attempts": ATTEMPTS},
    connect_timeout=CONNECT_TIMEOUT_S,
    read_timeout=READ_TIMEOUT_S,
    user_agent_extra="sagemaker-prescaler",
)


def worst_case_call_s(attempts: int = ATTEMPTS) -> float:
    """Seconds one API call can take at worst: every attempt times out connecting and reading, and
    botocore's standard backoff waits its longest between attempts (``min(2**i, 20)`` seconds for
    throttling, plus at most 5 s when the service sends ``x-amz-retry-after``)."""
    from botocore.retries.standard import ExponentialBackoff

    max_backoff = int(getattr(ExponentialBackoff, "_MAX_BACKOFF", 20))
    retry_after_extra = int(getattr(ExponentialBackoff, "_RETRY_AFTER_MAX_ADDITIONAL", 5))
    backoff = sum(min(2**i, max_backoff) + retry_after_extra for i in range(attempts - 1))
    return attempts * (CONNECT_TIMEOUT_S + READ_TIMEOUT_S) + backoff


def session() -> Any:
    """A boto3 Session. Region: botocore's own chain (``AWS_DEFAULT_REGION``, the profile's
    ``region``), else ``AWS_REGION``, which every other AWS SDK and the Lambda runtime set but
    botocore alone ignores (``AWS_REGION=eu-west-1 prescaler ...`` would otherwise be told, in a
    loop, to set AWS_REGION)."""
    found: Any = boto3.session.Session()
    if found.region_name is None and os.environ.get("AWS_REGION"):
        found = boto3.session.Session(region_name=os.environ["AWS_REGION"])
    return found


@functools.cache
def client(service: str) -> Any:
    """A boto3 client for ``service`` ("cloudwatch", "application-autoscaling", "sagemaker",
    "dynamodb"), created on first use and cached. Region and credentials come from the environment.
    Tests call ``client.cache_clear()`` between moto mocks."""
    return session().client(service, config=CONFIG)
