"""SageMaker: the endpoint's status and instance counts, its instance type, and prompt scale-in.

Prompt scale-in uses ``UpdateEndpointWeightsAndCapacities`` with a desired instance count only
(no weight), never below the scalable target's MinCapacity and never while the endpoint is not
``InService`` (SageMaker rejects it then, and scaling cannot act while the endpoint is ``Updating``).

Inference components: ``DescribeInferenceComponent`` gives the component's status and its desired
and current copy counts (``RuntimeConfig``); prompt scale-in of a component is
``UpdateInferenceComponentRuntimeConfig`` with ``DesiredRuntimeConfig.CopyCount`` (SageMaker API
reference), under the same rules (never below MinCapacity, never while not ``InService``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from prescaler.aws.autoscaling import ApplyResult

IN_SERVICE = "InService"

#: GPUs per SageMaker instance type. Sources: AWS "Amazon SageMaker AI pricing" instance details and
#: Amazon EC2 "Accelerated computing instances" specifications (the ml. types mirror the EC2 ones).
GPU_COUNT: dict[str, int] = {
    **{f"ml.g4dn.{s}": 1 for s in ("xlarge", "2xlarge", "4xlarge", "8xlarge", "16xlarge")},
    "ml.g4dn.12xlarge": 4,
    **{
        f"ml.{fam}.{s}": 1
        for fam in ("g5", "g6", "g6e")
        for s in ("xlarge", "2xlarge", "4xlarge", "8xlarge", "16xlarge")
    },
    **{
        f"ml.{fam}.{s}": n
        for fam in ("g5", "g6", "g6e")
        for s, n in (("12xlarge", 4), ("24xlarge", 4), ("48xlarge", 8))
    },
    "ml.p2.xlarge": 1,
    "ml.p2.8xlarge": 8,
    "ml.p2.16xlarge": 16,
    "ml.p3.2xlarge": 1,
    "ml.p3.8xlarge": 4,
    "ml.p3.16xlarge": 8,
    "ml.p3dn.24xlarge": 8,
    "ml.p4d.24xlarge": 8,
    "ml.p4de.24xlarge": 8,
    "ml.p5.48xlarge": 8,
    "ml.p5e.48xlarge": 8,
    "ml.p5en.48xlarge": 8,
}


class EndpointMissing(LookupError):
    """The endpoint (or the variant) does not exist."""


class ComponentMissing(EndpointMissing):
    """The inference component does not exist."""


class UnknownInstanceType(LookupError):
    """The variant's instance type is not in :data:`GPU_COUNT`: an error, never a guess of 1 GPU."""


@dataclass(frozen=True)
class Variant:
    name: str
    current_instances: int
    desired_instances: int


@dataclass(frozen=True)
class Endpoint:
    name: str
    status: str
    config_name: str
    variants: dict[str, Variant] = field(default_factory=dict)

    @property
    def in_service(self) -> bool:
        return self.status == IN_SERVICE


@dataclass(frozen=True)
class InferenceComponent:
    """An inference component (DescribeInferenceComponent): copies, not instances."""

    name: str
    endpoint_name: str
    variant_name: str
    status: str
    desired_copies: int
    current_copies: int

    @property
    def in_service(self) -> bool:
        return self.status == IN_SERVICE


def gpus_per_instance(instance_type: str) -> int:
    """GPUs of one instance of ``instance_type``.

    Raises:
        UnknownInstanceType: the type is not a known GPU type.
    """
    try:
        return GPU_COUNT[instance_type]
    except KeyError:
        raise UnknownInstanceType(
            f"unknown GPU count for instance type {instance_type!r}; add it to "
            f"prescaler.aws.sagemaker.GPU_COUNT"
        ) from None


def _described(describe: Callable[[], dict[str, Any]], missing: EndpointMissing) -> dict[str, Any]:
    """``describe()``'s answer; ``missing`` raised when SageMaker says it could not find the resource
    (a ``ValidationException`` "Could not find ...", for endpoints and inference components alike)."""
    try:
        return describe()
    except ClientError as exc:
        if "Could not find" in exc.response.get("Error", {}).get("Message", ""):
            raise missing from None
        raise


class SageMaker:
    """Adapter over a boto3 ``sagemaker`` client."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def endpoint(self, name: str) -> Endpoint:
        """DescribeEndpoint.

        Raises:
            EndpointMissing: no such endpoint.
        """
        d = _described(lambda: self.client.describe_endpoint(EndpointName=name),
                       EndpointMissing(f"endpoint {name!r} not found"))
        variants = {
            v["VariantName"]: Variant(
                v["VariantName"],
                int(v.get("CurrentInstanceCount", 0)),
                int(v.get("DesiredInstanceCount", v.get("CurrentInstanceCount", 0))),
            )
            for v in d.get("ProductionVariants", [])
        }
        return Endpoint(d["EndpointName"], d["EndpointStatus"], d.get("EndpointConfigName", ""), variants)

    def inference_component(self, name: str) -> InferenceComponent:
        """DescribeInferenceComponent.

        Raises:
            ComponentMissing: no such inference component (SageMaker answers ``ValidationException``
                "Could not find inference component ...").
        """
        d = _described(lambda: self.client.describe_inference_component(InferenceComponentName=name),
                       ComponentMissing(f"inference component {name!r} not found"))
        runtime = d.get("RuntimeConfig") or {}
        current = int(runtime.get("CurrentCopyCount", 0))
        return InferenceComponent(
            d["InferenceComponentName"],
            d.get("EndpointName", ""),
            d.get("VariantName", ""),
            d.get("InferenceComponentStatus", ""),
            int(runtime.get("DesiredCopyCount", current)),
            current,
        )

    def set_desired_copies(self, component: InferenceComponent, desired: int, min_capacity: int) -> ApplyResult:
        """Prompt scale-in of an inference component: its copy count, nothing else.

        Returns ``deferred`` when the component is not ``InService`` (checked before the call) or
        SageMaker answers ``ValidationException`` (e.g. an update in progress).

        Raises:
            ValueError: ``desired`` is below ``min_capacity`` (never sent).
        """
        return _scale_in(
            "copy count", "inference component", component.status, component.in_service, desired, min_capacity,
            lambda: self.client.update_inference_component_runtime_config(
                InferenceComponentName=component.name, DesiredRuntimeConfig={"CopyCount": int(desired)}),
        )

    def instance_type(self, endpoint: Endpoint, variant_name: str) -> str:
        """The variant's instance type from its endpoint config (DescribeEndpointConfig).

        Raises:
            EndpointMissing: the variant is not in the config.
            UnknownInstanceType: the variant has no instance type (serverless inference).
        """
        cfg = self.client.describe_endpoint_config(EndpointConfigName=endpoint.config_name)
        for v in cfg.get("ProductionVariants", []):
            if v["VariantName"] == variant_name:
                if not v.get("InstanceType"):
                    raise UnknownInstanceType(f"variant {variant_name!r} has no instance type (serverless?)")
                return str(v["InstanceType"])
        raise EndpointMissing(f"variant {variant_name!r} not in endpoint config {endpoint.config_name!r}")

    def set_desired_instances(
        self, endpoint: Endpoint, variant_name: str, desired: int, min_capacity: int
    ) -> ApplyResult:
        """Prompt scale-in: the variant's desired instance count, nothing else.

        Returns ``deferred`` when the endpoint is not ``InService`` (checked before the call, and
        SageMaker's ``ValidationException`` about the status is mapped the same way).

        Raises:
            ValueError: ``desired`` is below ``min_capacity`` (never sent).
        """
        return _scale_in(
            "instance count", "endpoint", endpoint.status, endpoint.in_service, desired, min_capacity,
            lambda: self.client.update_endpoint_weights_and_capacities(
                EndpointName=endpoint.name,
                DesiredWeightsAndCapacities=[{"VariantName": variant_name, "DesiredInstanceCount": int(desired)}]),
        )


def _scale_in(count: str, subject: str, status: str, in_service: bool, desired: int, min_capacity: int,
              call: Callable[[], object]) -> ApplyResult:
    """One prompt scale-in request (``call``), the same rules for a variant and a component: never
    below ``min_capacity`` (ValueError, nothing sent), ``deferred`` when ``subject`` is not
    ``InService`` or SageMaker answers ``ValidationException`` (e.g. an update in progress)."""
    if desired < min_capacity:
        raise ValueError(f"desired {count} {desired} is below MinCapacity {min_capacity}")
    if not in_service:
        return ApplyResult("deferred", f"{subject} is {status}, not {IN_SERVICE}")
    try:
        call()
    except ClientError as exc:
        err = exc.response.get("Error", {})
        if err.get("Code") == "ValidationException":
            return ApplyResult("deferred", f"ValidationException: {err.get('Message', '')}")
        raise
    return ApplyResult("applied")
