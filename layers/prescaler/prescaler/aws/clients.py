"""The one boto3 client factory: lazy, cached per process (warm Lambda starts reuse the clients).

Retries are botocore's own (``standard`` mode: throttling, transient and 5xx errors with
exponential backoff and jitter; 3 attempts). ``AWS_ENDPOINT_URL`` (empty = unset) is honoured by
botocore itself, which is how the e2e tests point the functions at a moto server.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import boto3
from botocore.config import Config

#: connect/read timeouts well inside the functions' 60 s timeout.
CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 3},
    connect_timeout=5,
    read_timeout=15,
    user_agent_extra="sagemaker-prescaler",
)


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
