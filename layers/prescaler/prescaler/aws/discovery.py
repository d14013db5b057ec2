"""Fleet discovery: which SageMaker endpoints and inference components exist, and their tags.

Three SageMaker calls, all paginated: ``ListEndpoints`` (up to 100 endpoints a page; IAM
``sagemaker:ListEndpoints`` on ``*``: the action has no resource type), ``ListInferenceComponents``
(up to 100 a page; each summary names the component, its ARN and the endpoint and variant hosting
it; IAM ``sagemaker:ListInferenceComponents`` on ``*``, no resource type either) and ``ListTags``
on each endpoint's or component's ARN (IAM ``sagemaker:ListTags`` on ``endpoint/*`` and
``inference-component/*``; SageMaker API reference and Service Authorization Reference). The Resource Groups Tagging API
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


@dataclass(frozen=True)
class ComponentInfo:
    """One inference component as ``ListInferenceComponents`` returns it (InferenceComponentSummary)."""

    name: str
    arn: str
    endpoint_name: str
    variant_name: str
    status: str


def list_inference_components(client: Any) -> list[ComponentInfo]:
    """Every inference component in the account and region (every ``ListInferenceComponents`` page)."""
    out = []
    for page in client.get_paginator("list_inference_components").paginate(PaginationConfig={"PageSize": 100}):
        for c in page.get("InferenceComponents", []):
            out.append(ComponentInfo(c["InferenceComponentName"], c["InferenceComponentArn"], c["EndpointName"],
                                     c["VariantName"], c.get("InferenceComponentStatus", "")))
    return out


def tags(client: Any, arn: str) -> dict[str, str]:
    """The endpoint's or inference component's tags (every ``ListTags`` page), key -> value."""
    out: dict[str, str] = {}
    for page in client.get_paginator("list_tags").paginate(ResourceArn=arn):
        for t in page.get("Tags", []):
            out[t["Key"]] = t.get("Value", "")
    return out
