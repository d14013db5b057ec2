"""Fleet discovery: which SageMaker endpoints and inference components exist, and their tags.

Two ways to read the tags (``FLEET_DISCOVERY``, template parameter ``FleetDiscovery``); both first
list what exists with ``ListEndpoints`` (up to 100 endpoints a page; IAM ``sagemaker:ListEndpoints``
on ``*``: the action has no resource type) and ``ListInferenceComponents`` (up to 100 a page; each
summary names the component, its ARN and the endpoint and variant hosting it; IAM
``sagemaker:ListInferenceComponents`` on ``*``, no resource type either):

- ``list-tags`` (default): one SageMaker ``ListTags`` per endpoint and per component (:func:`tags`;
  IAM ``sagemaker:ListTags`` on ``endpoint/*`` and ``inference-component/*``). Calls grow with the
  account's endpoints: N endpoints cost N/100 + N calls, which limits a cold dispatcher to about
  2,000-3,500 endpoints within the 60 s timeout (README "Where it switches, measured").
- ``tagging-api``: the Resource Groups Tagging API ``GetResources`` (:func:`tagged_resources`) with
  ``ResourceTypeFilters`` ``sagemaker`` (the service alone, a form the API reference documents for
  ``service[:resourceType]``; we found no AWS page listing the resource-type strings of an endpoint
  or an inference component, so the ARNs are narrowed to ``endpoint/`` and ``inference-component/``
  here rather than by a guessed filter that AWS could refuse) and a ``TagFilters`` entry for the key
  ``prescaler:enabled`` without values (any value; a filter's values are matched case-sensitively,
  so the value "true" is checked case-insensitively by :mod:`prescaler.fleet` itself). Each page
  carries up to 100 tagged resources with ALL their tags, so N endpoints cost about 3 x N/100 calls.
  The trade-off: the Tagging API is eventually consistent with the tags (a tag change shows after
  a delay; discovery is cached for minutes anyway, :mod:`prescaler.fleet`), it returns resources
  that were tagged and no longer exist (an ARN absent from ``ListEndpoints`` is skipped with a log
  line), and its IAM action ``tag:GetResources`` has no resource type: it is granted on ``*`` only
  (Service Authorization Reference, Resource Groups Tagging API), i.e. the function may read the
  tags of every resource in the account and region.

Sources: SageMaker API reference (ListEndpoints, ListInferenceComponents, ListTags); Resource Groups
Tagging API reference (GetResources: ``ResourceTagMappingList``, ``PaginationToken``,
``ResourcesPerPage`` at most 100).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class EndpointInfo:
    """One endpoint as ``ListEndpoints`` returns it."""

    name: str
    arn: str
    status: str


def _items(client: Any, operation: str, key: str, **request: Any) -> Iterator[dict[str, Any]]:
    """Every item under ``key`` of every page of ``operation`` (botocore's paginator)."""
    for page in client.get_paginator(operation).paginate(**request):
        yield from page.get(key, [])


def list_endpoints(client: Any) -> list[EndpointInfo]:
    """Every endpoint in the account and region (every ``ListEndpoints`` page)."""
    return [EndpointInfo(e["EndpointName"], e["EndpointArn"], e.get("EndpointStatus", ""))
            for e in _items(client, "list_endpoints", "Endpoints", PaginationConfig={"PageSize": 100})]


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
    return [ComponentInfo(c["InferenceComponentName"], c["InferenceComponentArn"], c["EndpointName"],
                          c["VariantName"], c.get("InferenceComponentStatus", ""))
            for c in _items(client, "list_inference_components", "InferenceComponents",
                            PaginationConfig={"PageSize": 100})]


def tags(client: Any, arn: str) -> dict[str, str]:
    """The endpoint's or inference component's tags (every ``ListTags`` page), key -> value."""
    return {t["Key"]: t.get("Value", "") for t in _items(client, "list_tags", "Tags", ResourceArn=arn)}


#: ``GetResources`` resource type filter: the service alone (``service[:resourceType]``).
TAGGED_TYPES = ("sagemaker",)
#: The ARN resource types (``arn:aws:sagemaker:region:account:<type>/<name>``) of the fleet's members.
MEMBER_ARN_TYPES = ("endpoint", "inference-component")


def tagged_resources(client: Any, key: str) -> dict[str, dict[str, str]]:
    """Every endpoint and inference component carrying the tag ``key`` (any value), with all its
    tags: ``{arn in lower case: {tag key: value}}``, from every ``GetResources`` page.

    ``client`` is a ``resourcegroupstaggingapi`` client. ARNs are lower-cased because SageMaker
    writes them in lower case and callers match them against ``ListEndpoints``'s. Raises botocore's
    ``ClientError`` / ``BotoCoreError`` (for example ``AccessDeniedException`` without
    ``tag:GetResources``) to the caller.
    """
    out: dict[str, dict[str, str]] = {}
    mappings = _items(client, "get_resources", "ResourceTagMappingList", ResourceTypeFilters=list(TAGGED_TYPES),
                      TagFilters=[{"Key": key}], ResourcesPerPage=100)
    for mapping in mappings:
        arn = mapping["ResourceARN"].lower()
        if arn.split(":", 5)[-1].split("/", 1)[0] not in MEMBER_ARN_TYPES:
            continue  # another SageMaker resource carrying the tag (a model, an endpoint config)
        out[arn] = {t["Key"]: t.get("Value", "") for t in mapping.get("Tags", [])}
    return out
