"""Fleet discovery: which SageMaker endpoints exist, and their tags.

Two SageMaker calls, both paginated: ``ListEndpoints`` (up to 100 endpoints a page; IAM
``sagemaker:ListEndpoints`` on ``*``: the action has no resource type) and ``ListTags`` on each
endpoint's ARN (IAM ``sagemaker:ListTags`` on ``endpoint/*``). The Resource Groups Tagging API
(``tag:GetResources``) would fetch the tags of 100 endpoints per call, but it is eventually
consistent with the tags and its only IAM resource is ``*``; since discovery is cached for minutes
(:mod:`prescaler.fleet`), one ``ListTags`` per endpoint and refresh costs little and keeps the IAM
grant on the endpoints themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class EndpointInfo:
    """One endpoint as ``ListEndpoints`` returns it."""

    name: str
    arn: str
    status: str


def list_endpoints(client: Any) -> list[EndpointInfo]:
    """Every endpoint in the account and region (every ``ListEndpoints`` page)."""
    out = []
    for page in client.get_paginator("list_endpoints").paginate(PaginationConfig={"PageSize": 100}):
        for e in page.get("Endpoints", []):
            out.append(EndpointInfo(e["EndpointName"], e["EndpointArn"], e.get("EndpointStatus", "")))
    return out


def tags(client: Any, arn: str) -> dict[str, str]:
    """The endpoint's tags (every ``ListTags`` page), key -> value."""
    out: dict[str, str] = {}
    for page in client.get_paginator("list_tags").paginate(ResourceArn=arn):
        for t in page.get("Tags", []):
            out[t["Key"]] = t.get("Value", "")
    return out
