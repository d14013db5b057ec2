"""SageMaker adapter (GPU count, prompt scale-in guards) and the ledger's conditional writes."""

from __future__ import annotations

from typing import Any

import boto3
import pandas as pd
import pytest
from awsworld import ENDPOINT, RESOURCE_ID, TABLE, VARIANT, World
from botocore.stub import Stubber
from prescaler.aws.ledger import Intent, Ledger
from prescaler.aws.sagemaker import Endpoint, SageMaker, UnknownInstanceType, Variant, gpus_per_instance

pytestmark = pytest.mark.integration

NOW = pd.Timestamp("2024-05-15T09:55:00Z")


def endpoint(status: str = "InService") -> Endpoint:
    return Endpoint(ENDPOINT, status, "tagger-config", {VARIANT: Variant(VARIANT, 6, 6)})


@pytest.mark.parametrize(("instance_type", "gpus"), [
    ("ml.g5.xlarge", 1), ("ml.g5.12xlarge", 4), ("ml.g4dn.12xlarge", 4), ("ml.p4d.24xlarge", 8)])
def test_gpu_count_per_instance_type(instance_type: str, gpus: int) -> None:
    assert gpus_per_instance(instance_type) == gpus


def test_unknown_instance_type_is_an_error_not_one_gpu() -> None:
    with pytest.raises(UnknownInstanceType):
        gpus_per_instance("ml.m5.xlarge")


def test_prompt_scale_in_sends_the_desired_count_only() -> None:
    client: Any = boto3.client("sagemaker", region_name="us-east-1")
    stub = Stubber(client)
    arn = f"arn:aws:sagemaker:us-east-1:123456789012:endpoint/{ENDPOINT}"
    stub.add_response("update_endpoint_weights_and_capacities", {"EndpointArn": arn}, {
        "EndpointName": ENDPOINT, "DesiredWeightsAndCapacities": [{"VariantName": VARIANT,
                                                                   "DesiredInstanceCount": 2}]})
    with stub:
        assert SageMaker(client).set_desired_instances(endpoint(), VARIANT, 2, 2).outcome == "applied"


def test_prompt_scale_in_never_below_min_capacity_and_never_while_updating() -> None:
    client: Any = boto3.client("sagemaker", region_name="us-east-1")
    stub = Stubber(client)  # no responses queued: any call would fail the test
    with stub:
        with pytest.raises(ValueError, match="below MinCapacity"):
            SageMaker(client).set_desired_instances(endpoint(), VARIANT, 1, 2)
        assert SageMaker(client).set_desired_instances(endpoint("Updating"), VARIANT, 2, 2).outcome == "deferred"


def test_validation_exception_while_updating_defers() -> None:
    # Given the endpoint started updating between describe and update (the real API's answer)
    client: Any = boto3.client("sagemaker", region_name="us-east-1")
    stub = Stubber(client)
    stub.add_client_error("update_endpoint_weights_and_capacities", "ValidationException",
                          "Cannot update in-progress endpoint", 400)
    with stub:
        assert SageMaker(client).set_desired_instances(endpoint(), VARIANT, 2, 2).outcome == "deferred"


def test_concurrent_ticks_only_one_write_wins(world: World) -> None:
    # Given two ticks that read the same (empty) ledger entry
    ledger = Ledger(world.dynamodb, TABLE)
    a, b = ledger.get(RESOURCE_ID), ledger.get(RESOURCE_ID)
    # When both try to record a raise
    first = ledger.record(a, "raise", owned_min_capacity=6, owned_since=NOW, now=NOW, details={"reason": "a"})
    second = ledger.record(b, "raise", owned_min_capacity=6, owned_since=NOW, now=NOW, details={"reason": "b"})
    # Then only the first one is written
    assert (first, second) == (True, False)
    entry = ledger.get(RESOURCE_ID)
    assert (entry.version, entry.owned_min_capacity, entry.owned_since) == (1, 6, NOW)


def test_an_intent_leaves_ownership_alone_until_confirmed_and_discard_drops_it(world: World) -> None:
    ledger = Ledger(world.dynamodb, TABLE)
    ledger.record(ledger.get(RESOURCE_ID), "raise", owned_min_capacity=6, owned_since=NOW, now=NOW, details={})
    owned = ledger.get(RESOURCE_ID)
    later = NOW + pd.Timedelta(minutes=25)
    # When a relax to baseline is claimed as an intent (the API call not yet answered)
    relax = Intent("relax", 6, 2, later, None, None, None, None, {"reason": "spike over", "min_capacity": 2})
    claimed = ledger.intend(owned, relax, later)
    assert claimed is not None and ledger.intend(owned, relax, later) is None  # a second claim loses
    # Then ownership is unchanged and the intent reads back as written
    entry = ledger.get(RESOURCE_ID)
    assert (entry.owned_min_capacity, entry.owned_since, entry.version) == (6, NOW, owned.version + 1)
    assert entry.intent == relax
    # When the change was refused, discarding the intent leaves ownership as it was
    assert ledger.discard(entry, later, "deferred")
    entry = ledger.get(RESOURCE_ID)
    assert entry.intent is None and (entry.owned_min_capacity, entry.owned_since) == (6, NOW)
    # When it was made, confirming writes the intended ownership (none: back at baseline)
    claimed = ledger.intend(entry, relax, later)
    assert claimed is not None and ledger.confirm(claimed, later)
    entry = ledger.get(RESOURCE_ID)
    assert (entry.intent, entry.owned_min_capacity, entry.last_action) == (None, None, "relax")
    item = world.dynamodb.get_item(TableName=TABLE, Key={"scalable_target": {"S": RESOURCE_ID}})["Item"]
    assert item["last_relax"]["M"]["reason"] == {"S": "spike over"}
