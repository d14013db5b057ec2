"""Smoke tests of the e2e machinery itself, independent of the project's template.

Given the stand-in Lambda image and a seeded moto container on the ``prescaler-e2e`` network,
when a throwaway SAM app (one function + one layer) is built and invoked with ``sam local invoke``,
then the handler runs on CPython 3.11 with the layer on its path, reaches moto by container name,
reads what the seed wrote and writes to the ledger, and that write is visible from the host.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from . import infra
from .seed import INVOCATIONS_NAMESPACE, client, invocations_profile, seed

pytestmark = pytest.mark.e2e

TEMPLATE = """\
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Description: throwaway app for the e2e infrastructure smoke test
Globals:
  Function:
    Runtime: python3.11
    Architectures: [x86_64]
    Timeout: 60
    MemorySize: 256
    Environment:
      Variables:
        # Declared so that `sam local invoke --env-vars` may set it (SAM only overrides declared
        # variables); empty means "unset" to boto3, i.e. real AWS when deployed.
        AWS_ENDPOINT_URL: ""
        LEDGER_TABLE: ""
        ENDPOINT_NAME: ""
Resources:
  SmokeLayer:
    Type: AWS::Serverless::LayerVersion
    Properties:
      ContentUri: layer/
      CompatibleRuntimes: [python3.11]
    Metadata:
      BuildMethod: python3.11
  Smoke:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: smoke/
      Handler: app.handler
      Layers: [!Ref SmokeLayer]
"""

HANDLER = """\
import os
import sys
from datetime import datetime, timedelta, timezone

import boto3
import smokelib  # from the layer, mounted at /opt/python


def handler(event, context):
    endpoint = os.environ["ENDPOINT_NAME"]
    aas = boto3.client("application-autoscaling")
    target = aas.describe_scalable_targets(
        ServiceNamespace="sagemaker", ResourceIds=[f"endpoint/{endpoint}/variant/AllTraffic"]
    )["ScalableTargets"][0]
    now = datetime.now(timezone.utc)
    stats = boto3.client("cloudwatch").get_metric_statistics(
        Namespace="AWS/SageMaker",
        MetricName="Invocations",
        Dimensions=[{"Name": "EndpointName", "Value": endpoint}, {"Name": "VariantName", "Value": "AllTraffic"}],
        StartTime=now - timedelta(hours=1, minutes=5),
        EndTime=now,
        Period=60,
        Statistics=["Sum", "Average"],
    )["Datapoints"]
    boto3.client("dynamodb").put_item(
        TableName=os.environ["LEDGER_TABLE"],
        Item={"scalable_target": {"S": target["ResourceId"]}, "note": {"S": smokelib.MARK}},
    )
    return {
        "python": "%d.%d" % sys.version_info[:2],
        "layer": smokelib.MARK,
        "endpoint_url": os.environ.get("AWS_ENDPOINT_URL"),
        "min_capacity": target["MinCapacity"],
        "max_capacity": target["MaxCapacity"],
        "max_sum": max(d["Sum"] for d in stats),
        "max_average": max(d["Average"] for d in stats),
        "event": event,
    }
"""


def _write_app(root: Path) -> Path:
    (root / "smoke").mkdir(parents=True)
    (root / "smoke" / "app.py").write_text(HANDLER)
    (root / "layer").mkdir()
    (root / "layer" / "smokelib.py").write_text('MARK = "from-the-layer"\n')
    (root / "layer" / "requirements.txt").write_text("")
    (root / "template.yaml").write_text(TEMPLATE)
    return root / "template.yaml"


@pytest.fixture(scope="module")
def smoke_app(e2e_images: infra.Images, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The throwaway app after ``sam build`` (once for the module); returns the built template."""
    root = tmp_path_factory.mktemp("smoke") / "app"
    template = _write_app(root)
    return infra.sam_build(template, root / ".aws-sam" / "build")


def test_seed_writes_invocations_as_sagemaker_does(moto: infra.Moto) -> None:
    # Given a seeded endpoint
    now = datetime.now(UTC)
    seeded = seed(moto.url, now=now)
    # When the last 70 minutes are read per minute
    cw = client("cloudwatch", moto.url)
    points = cw.get_metric_statistics(
        Namespace=INVOCATIONS_NAMESPACE,
        MetricName="Invocations",
        Dimensions=[
            {"Name": "EndpointName", "Value": seeded.endpoint_name},
            {"Name": "VariantName", "Value": seeded.variant_name},
        ],
        StartTime=seeded.history_end - timedelta(minutes=70),
        EndTime=seeded.history_end,
        Period=60,
        Statistics=["Sum", "Average", "SampleCount"],
    )["Datapoints"]
    # Then Sum is the demand (baseline and an hourly spike) and Average is 1, as SageMaker writes it
    sums = {p["Timestamp"].astimezone(UTC): p["Sum"] for p in points}
    assert len(sums) == 70
    assert set(sums.values()) == {2400.0, 13200.0}
    assert all(p["Average"] == 1.0 and p["SampleCount"] == p["Sum"] for p in points)
    assert all((v == 13200.0) == (t.minute < 10) for t, v in sums.items())
    assert seeded.minutes == 3 * 24 * 60
    assert seeded.total_invocations == sum(n for _, n in invocations_profile(now))


def test_sam_local_invoke_in_stand_in_image_reaches_moto(
    moto: infra.Moto, e2e_images: infra.Images, smoke_app: Path, sam_work_dir: Path
) -> None:
    # Given a seeded moto and a throwaway SAM app, built
    seeded = seed(moto.url)
    built = smoke_app
    event = sam_work_dir / "event.json"
    event.write_text(json.dumps({"source": "e2e-smoke"}))

    # When its function is invoked in the stand-in image on the e2e network
    result = infra.sam_local_invoke(
        built,
        "Smoke",
        image=e2e_images.lambda_python311,
        event=event,
        env_vars={
            "Parameters": {
                "AWS_ENDPOINT_URL": moto.url_in_network,
                "LEDGER_TABLE": seeded.ledger_table,
                "ENDPOINT_NAME": seeded.endpoint_name,
            }
        },
        work_dir=sam_work_dir,
    )

    # Then it ran on 3.11 with its layer, read the seeded target and history through moto by name ...
    assert result.returncode == 0, result.stderr
    assert not result.function_error, result.response
    response = result.response
    assert response["python"] == "3.11"
    assert response["layer"] == "from-the-layer"
    assert response["endpoint_url"] == "http://moto:5000"
    assert (response["min_capacity"], response["max_capacity"]) == (2, 8)
    assert response["max_sum"] == 13200.0 and response["max_average"] == 1.0
    assert response["event"] == {"source": "e2e-smoke"}
    # ... and what it wrote is in moto, seen from the host
    item = client("dynamodb", moto.url).get_item(
        TableName=seeded.ledger_table, Key={"scalable_target": {"S": seeded.resource_id}}
    )["Item"]
    assert item["note"] == {"S": "from-the-layer"}


def test_handler_error_is_reported_not_swallowed(
    moto: infra.Moto, e2e_images: infra.Images, smoke_app: Path, sam_work_dir: Path
) -> None:
    # Given the same app, built, and an empty moto (no scalable target)
    built = smoke_app
    # When it is invoked against an empty moto
    result = infra.sam_local_invoke(
        built,
        "Smoke",
        image=e2e_images.lambda_python311,
        env_vars={"Parameters": {"AWS_ENDPOINT_URL": moto.url_in_network, "ENDPOINT_NAME": "missing"}},
        work_dir=sam_work_dir,
    )
    # Then the handler's exception comes back as Lambda's error document
    assert result.function_error, result.response
    assert result.response["errorType"] in {"IndexError", "KeyError", "ClientError"}, result.response


def test_moto_answers_describe_scaling_activities(moto: infra.Moto) -> None:
    # Given a seeded scalable target (moto itself lacks DescribeScalingActivities: images/moto_server.py)
    seeded = seed(moto.url)
    # When its scaling activities are read
    activities = client("application-autoscaling", moto.url).describe_scaling_activities(
        ServiceNamespace="sagemaker",
        ResourceId=seeded.resource_id,
        ScalableDimension=seeded.scalable_dimension,
        MaxResults=50,
    )
    # Then the answer is the real shape with no activity (moto never scales anything)
    assert activities["ScalingActivities"] == []
