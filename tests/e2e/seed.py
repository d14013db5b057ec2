"""Seed a moto server with the AWS state the pre-scaler reads and writes.

One call, :func:`seed`, builds what a real account would hold for one SageMaker real-time endpoint:

* the SageMaker model, endpoint config (one ``AllTraffic`` variant on ``ml.g5.xlarge``) and endpoint;
* the Application Auto Scaling scalable target ``endpoint/<name>/variant/AllTraffic`` on
  ``sagemaker:variant:DesiredInstanceCount`` (MinCapacity 2, MaxCapacity 8) and its target-tracking
  policy on the predefined ``SageMakerVariantInvocationsPerInstance`` (target 2400 invocations per
  instance per minute, scale-out cooldown 60 s, scale-in cooldown 300 s);
* the decision ledger: a DynamoDB table, on-demand, keyed by scalable target;
* 3 days of per-minute history ending at ``now``: ``AWS/SageMaker`` ``Invocations`` and
  ``/aws/sagemaker/Endpoints`` ``GPUUtilization``, both with dimensions EndpointName + VariantName.

Invocations are written the way SageMaker writes them: one aggregated datum per minute whose
``StatisticValues`` count each request once (SampleCount = Sum = invocations, Minimum = Maximum = 1),
so the ``Sum`` statistic is the demand and ``Average`` is 1. A reader that asks for Average gets 1 per
minute, which is the mistake this shape is meant to catch.

The traffic shape (:func:`invocations_profile`) is a baseline of 2400 invocations/min with a spike to
13200/min at minutes 0-9 of every hour: the hourly batch that the pre-scaler must get ahead of.

Nothing here reads the environment or creates a client at import time: pass the moto endpoint URL
(``http://127.0.0.1:<port>`` from the host) to :func:`seed`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
from botocore.exceptions import ClientError

REGION = "us-east-1"
VARIANT = "AllTraffic"
INSTANCE_TYPE = "ml.g5.xlarge"
#: moto's CreateEndpointConfig validates InstanceType against an old enum without the g5 family
#: (moto 5.2: "Member must satisfy enum value set"); ml.g4dn.xlarge is the nearest it accepts, and it
#: too carries one GPU, so per-GPU arithmetic is unchanged. Used only when moto refuses the first.
MOTO_FALLBACK_INSTANCE_TYPE = "ml.g4dn.xlarge"
#: ml.g5.xlarge carries one NVIDIA A10G (AWS "Amazon EC2 G5 instances"); ml.g4dn.xlarge one T4.
GPUS_PER_INSTANCE = 1
SCALABLE_DIMENSION = "sagemaker:variant:DesiredInstanceCount"
PREDEFINED_METRIC = "SageMakerVariantInvocationsPerInstance"
POLICY_NAME = "invocations-per-instance"
INVOCATIONS_NAMESPACE = "AWS/SageMaker"
GPU_NAMESPACE = "/aws/sagemaker/Endpoints"
#: CloudWatch PutMetricData accepts at most 1000 MetricDatum items per call.
PUT_METRIC_DATA_MAX_ITEMS = 1000
#: Fake credentials: moto accepts any; never real ones.
FAKE_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


@dataclass(frozen=True)
class Traffic:
    """Per-minute demand: ``baseline_per_min`` invocations/min, ``spike_per_min`` at minutes
    ``spike_start_minute`` .. ``spike_start_minute + spike_minutes - 1`` of every hour."""

    baseline_per_min: int = 2400
    spike_per_min: int = 13200
    spike_start_minute: int = 0
    spike_minutes: int = 10

    def at(self, minute: datetime) -> int:
        """Invocations in the minute starting at ``minute`` (UTC)."""
        offset = (minute.minute - self.spike_start_minute) % 60
        return self.spike_per_min if offset < self.spike_minutes else self.baseline_per_min


@dataclass(frozen=True)
class Seeded:
    """What :func:`seed` created; names and ids as the AWS APIs spell them."""

    endpoint_name: str
    endpoint_config_name: str
    model_name: str
    variant_name: str
    resource_id: str
    scalable_dimension: str
    policy_name: str
    min_capacity: int
    max_capacity: int
    target_invocations_per_instance_per_minute: float
    ledger_table: str
    ledger_key: str
    instance_type: str
    history_start: datetime
    history_end: datetime
    minutes: int
    total_invocations: int
    extra: dict[str, Any] = field(default_factory=dict)


def resource_id(endpoint_name: str, variant_name: str = VARIANT) -> str:
    """The Application Auto Scaling ResourceId of a SageMaker endpoint variant."""
    return f"endpoint/{endpoint_name}/variant/{variant_name}"


def minutes_between(start: datetime, end: datetime) -> Iterator[datetime]:
    """Whole UTC minutes in ``[start, end)``, ``start`` floored to the minute."""
    t = start.astimezone(UTC).replace(second=0, microsecond=0)
    while t < end:
        yield t
        t += timedelta(minutes=1)


def invocations_profile(now: datetime, days: float = 3, traffic: Traffic = Traffic()) -> list[tuple[datetime, int]]:
    """``(minute, invocations)`` for every whole minute in ``[floor(now) - days, floor(now))``, UTC.

    The minute that contains ``now`` is not included: it has not finished.
    """
    end = now.astimezone(UTC).replace(second=0, microsecond=0)
    start = end - timedelta(days=days)
    return [(t, traffic.at(t)) for t in minutes_between(start, end)]


def gpu_utilization_percent(invocations: int, instances: int, traffic: Traffic = Traffic()) -> float:
    """A plausible GPUUtilization (percent of one instance's GPUs, summed over its GPUs as SageMaker
    reports it) for a minute's load: 40 % at the baseline per instance, capped at 100 % per GPU."""
    per_instance = invocations / max(instances, 1)
    per_gpu = min(100.0, 40.0 * per_instance / traffic.baseline_per_min)
    return per_gpu * GPUS_PER_INSTANCE


def _chunks(items: Sequence[dict[str, Any]], size: int) -> Iterator[Sequence[dict[str, Any]]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def client(service: str, endpoint_url: str, region: str = REGION) -> Any:
    """A boto3 client on the moto server at ``endpoint_url`` with fake credentials."""
    session = boto3.session.Session(
        aws_access_key_id=FAKE_CREDENTIALS["aws_access_key_id"],
        aws_secret_access_key=FAKE_CREDENTIALS["aws_secret_access_key"],
        region_name=region,
    )
    return session.client(service, endpoint_url=endpoint_url)  # type: ignore[call-overload]


def put_history(
    cloudwatch: Any,
    endpoint_name: str,
    profile: Sequence[tuple[datetime, int]],
    instances: int,
    variant_name: str = VARIANT,
) -> None:
    """Write ``Invocations`` and ``GPUUtilization`` for each ``(minute, invocations)`` of ``profile``.

    Invocations: StatisticValues with SampleCount = Sum = invocations, Minimum = Maximum = 1, unit
    None, as SageMaker publishes it. GPUUtilization: one sample per instance (SampleCount =
    ``instances``), all equal, unit Percent.
    """
    dims = [
        {"Name": "EndpointName", "Value": endpoint_name},
        {"Name": "VariantName", "Value": variant_name},
    ]
    invocations = [
        {
            "MetricName": "Invocations",
            "Dimensions": dims,
            "Timestamp": t,
            "StatisticValues": {"SampleCount": n, "Sum": n, "Minimum": 1.0, "Maximum": 1.0},
            "Unit": "None",
        }
        for t, n in profile
        if n > 0  # CloudWatch has no datapoint for a minute without traffic
    ]
    gpu = []
    for t, n in profile:
        u = gpu_utilization_percent(n, instances)
        gpu.append(
            {
                "MetricName": "GPUUtilization",
                "Dimensions": dims,
                "Timestamp": t,
                "StatisticValues": {"SampleCount": instances, "Sum": u * instances, "Minimum": u, "Maximum": u},
                "Unit": "Percent",
            }
        )
    for namespace, data in ((INVOCATIONS_NAMESPACE, invocations), (GPU_NAMESPACE, gpu)):
        for chunk in _chunks(data, PUT_METRIC_DATA_MAX_ITEMS):
            cloudwatch.put_metric_data(Namespace=namespace, MetricData=list(chunk))


def seed(
    endpoint_url: str,
    *,
    endpoint_name: str = "prescaler-e2e-endpoint",
    ledger_table: str = "prescaler-e2e-ledger",
    ledger_key: str = "scalable_target",
    now: datetime | None = None,
    days: float = 3,
    traffic: Traffic = Traffic(),
    instance_type: str = INSTANCE_TYPE,
    min_capacity: int = 2,
    max_capacity: int = 8,
    target_invocations_per_instance_per_minute: float = 2400.0,
    scale_out_cooldown_s: int = 60,
    scale_in_cooldown_s: int = 300,
    region: str = REGION,
) -> Seeded:
    """Create one endpoint's SageMaker, Application Auto Scaling, DynamoDB and CloudWatch state.

    Args:
        endpoint_url: the moto server, e.g. ``http://127.0.0.1:5055``.
        ledger_key: the ledger table's partition key (string); the ledger adapter decides its name.
        now: end of the history (exclusive, floored to the minute); defaults to the current UTC time.
        days: length of the history.
        instance_type: the variant's instance type; if moto refuses it (it knows no g5),
            :data:`MOTO_FALLBACK_INSTANCE_TYPE`, and ``Seeded.instance_type`` says which.

    Returns:
        :class:`Seeded`, with the names and the history bounds.

    Raises:
        botocore.exceptions.ClientError: moto refused a call (e.g. the endpoint exists already:
        reset the server first, ``POST /moto-api/reset``).
    """
    now = now or datetime.now(UTC)
    sm = client("sagemaker", endpoint_url, region)
    model_name = f"{endpoint_name}-model"
    config_name = f"{endpoint_name}-config"
    sm.create_model(
        ModelName=model_name,
        ExecutionRoleArn="arn:aws:iam::123456789012:role/prescaler-e2e-sagemaker",
        PrimaryContainer={"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/model:latest"},
    )

    def create_config(instance_type: str) -> None:
        sm.create_endpoint_config(
            EndpointConfigName=config_name,
            ProductionVariants=[
                {
                    "VariantName": VARIANT,
                    "ModelName": model_name,
                    "InitialInstanceCount": min_capacity,
                    "InstanceType": instance_type,
                    "InitialVariantWeight": 1.0,
                }
            ],
        )

    try:
        create_config(instance_type)
    except ClientError as err:
        if "instanceType" not in str(err) or instance_type == MOTO_FALLBACK_INSTANCE_TYPE:
            raise
        instance_type = MOTO_FALLBACK_INSTANCE_TYPE
        create_config(instance_type)
    sm.create_endpoint(EndpointName=endpoint_name, EndpointConfigName=config_name)
    status = sm.describe_endpoint(EndpointName=endpoint_name)["EndpointStatus"]
    if status != "InService":  # moto marks it InService at once; make the assumption loud if that changes
        raise RuntimeError(f"moto endpoint {endpoint_name} is {status}, not InService")

    rid = resource_id(endpoint_name)
    aas = client("application-autoscaling", endpoint_url, region)
    aas.register_scalable_target(
        ServiceNamespace="sagemaker",
        ResourceId=rid,
        ScalableDimension=SCALABLE_DIMENSION,
        MinCapacity=min_capacity,
        MaxCapacity=max_capacity,
    )
    aas.put_scaling_policy(
        PolicyName=POLICY_NAME,
        ServiceNamespace="sagemaker",
        ResourceId=rid,
        ScalableDimension=SCALABLE_DIMENSION,
        PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration={
            "TargetValue": target_invocations_per_instance_per_minute,
            "PredefinedMetricSpecification": {"PredefinedMetricType": PREDEFINED_METRIC},
            "ScaleOutCooldown": scale_out_cooldown_s,
            "ScaleInCooldown": scale_in_cooldown_s,
        },
    )

    ddb = client("dynamodb", endpoint_url, region)
    ddb.create_table(
        TableName=ledger_table,
        AttributeDefinitions=[{"AttributeName": ledger_key, "AttributeType": "S"}],
        KeySchema=[{"AttributeName": ledger_key, "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )

    profile = invocations_profile(now, days, traffic)
    put_history(client("cloudwatch", endpoint_url, region), endpoint_name, profile, min_capacity)

    return Seeded(
        endpoint_name=endpoint_name,
        endpoint_config_name=config_name,
        model_name=model_name,
        variant_name=VARIANT,
        resource_id=rid,
        scalable_dimension=SCALABLE_DIMENSION,
        policy_name=POLICY_NAME,
        min_capacity=min_capacity,
        max_capacity=max_capacity,
        target_invocations_per_instance_per_minute=target_invocations_per_instance_per_minute,
        ledger_table=ledger_table,
        ledger_key=ledger_key,
        instance_type=instance_type,
        history_start=profile[0][0],
        history_end=profile[-1][0] + timedelta(minutes=1),
        minutes=len(profile),
        total_invocations=sum(n for _, n in profile),
    )


def reset(endpoint_url: str) -> None:
    """Forget all state in the moto server (``POST /moto-api/reset``)."""
    import urllib.request

    req = urllib.request.Request(f"{endpoint_url}/moto-api/reset", method="POST", data=b"")
    with urllib.request.urlopen(req, timeout=10) as resp:
        resp.read()


if __name__ == "__main__":  # python tests/e2e/seed.py http://127.0.0.1:PORT
    import sys

    print(seed(sys.argv[1]))
