"""Issue 8 section 6: `sam delete` while a raise is held restores the baseline (the template's
RestoreBaselineOnDelete custom resource, answered by the relaxer). Given/When/Then, against moto; the
answer to CloudFormation goes to a real HTTP server on 127.0.0.1 standing in for the pre-signed S3 URL."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pandas as pd
import pytest
from awsworld import RESOURCE_ID, World, hourly_spikes, load_handler, put_invocations
from template_values import event, template

pytestmark = pytest.mark.integration

PRESCALE_TIME = pd.Timestamp(event("prescale_scheduled.json")["time"])
RELAX = load_handler("relax")
PRESCALE = load_handler("prescale")


@pytest.fixture
def cloudformation() -> Iterator[tuple[str, list[dict]]]:
    """A stand-in for the pre-signed S3 ResponseURL: records every PUT body."""
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            length = int(self.headers["Content-Length"])
            received.append({"content_type": self.headers.get("Content-Type"),
                             "body": json.loads(self.rfile.read(length))})
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/cfn-response?X-Amz-Signature=abc", received
    server.shutdown()


def stack_event(request: str, url: str, manage: str = "true") -> dict:
    """A custom-resource request in CloudFormation's shape, with the template's own properties."""
    props = template()["Resources"]["RestoreBaselineOnDelete"]["Properties"]
    assert props["ServiceToken"] == {"Fn::GetAtt": ["RelaxFunction", "Arn"]}
    out = {
        "RequestType": request, "ResponseURL": url,
        "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/sagemaker-prescaler/1",
        "RequestId": "5d478078-13e9-baf0-464a-7ef285ecc786", "LogicalResourceId": "RestoreBaselineOnDelete",
        "ResourceType": "Custom::RestoreBaselineOnDelete", "ServiceToken": "arn:aws:lambda:...:relax",
        "ResourceProperties": {"ServiceToken": "arn:aws:lambda:...:relax", "ManageScalableTarget": manage,
                               "LedgerTableName": "sagemaker-prescaler-ledger"},
    }
    if request != "Create":
        out["PhysicalResourceId"] = "restore-baseline-RestoreBaselineOnDelete"
    return out


def _raise_held(world: World, lambda_context: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRY_RUN", "false")
    put_invocations(world.cloudwatch, hourly_spikes(PRESCALE_TIME.floor("min")))
    PRESCALE.lambda_handler(event("prescale_scheduled.json"), lambda_context)
    assert world.target()["MinCapacity"] == 6
    world.set_instances(6)


@pytest.mark.parametrize("manage", ["true", "false"], ids=["own", "adopt"])
def test_issue8_sam_delete_while_a_raise_is_held_restores_the_baseline(
        manage: str, world: World, scaler_env: dict, lambda_context: Any, monkeypatch: pytest.MonkeyPatch,
        cloudformation: tuple[str, list[dict]]) -> None:
    url, received = cloudformation
    # Given a raise to 6 held by the pre-scaler, 6 instances running
    _raise_held(world, lambda_context, monkeypatch)
    # When the stack is deleted (CloudFormation deletes the custom resource first)
    RELAX.lambda_handler(stack_event("Delete", url, manage), lambda_context)
    # Then MinCapacity is back at the baseline and CloudFormation was told so
    assert world.target()["MinCapacity"] == 2
    assert len(received) == 1 and received[0]["content_type"] == ""
    body = received[0]["body"]
    assert body["Status"] == "SUCCESS" and "MinCapacity 6 -> 2" in body["Reason"]
    assert body["PhysicalResourceId"] == "restore-baseline-RestoreBaselineOnDelete"
    assert (body["RequestId"], body["LogicalResourceId"]) == ("5d478078-13e9-baf0-464a-7ef285ecc786",
                                                              "RestoreBaselineOnDelete")
    # and in own mode (the stack deletes the target and its policy next) the instances come down too;
    # in adopt mode the remaining target tracking scales in
    desired = world.sagemaker.describe_endpoint(EndpointName="catalogue-tagger")["ProductionVariants"][0]
    assert desired["DesiredInstanceCount"] == (2 if manage == "true" else 6)
    item = world.ledger_item()
    assert item is not None and "owned_min_capacity" not in item


def test_issue8_delete_leaves_an_operators_min_capacity_alone(
        world: World, scaler_env: dict, lambda_context: Any, cloudformation: tuple[str, list[dict]]) -> None:
    url, received = cloudformation
    # Given an operator's MinCapacity 5 (no raise in the ledger)
    world.autoscaling.register_scalable_target(ServiceNamespace="sagemaker", ResourceId=RESOURCE_ID,
                                               ScalableDimension="sagemaker:variant:DesiredInstanceCount",
                                               MinCapacity=5)
    # When the stack is deleted, Then nothing changes and CloudFormation gets SUCCESS
    RELAX.lambda_handler(stack_event("Delete", url), lambda_context)
    assert world.target()["MinCapacity"] == 5
    assert received[0]["body"]["Status"] == "SUCCESS" and "left as it is" in received[0]["body"]["Reason"]


@pytest.mark.parametrize("request_type", ["Create", "Update"])
def test_issue8_create_and_update_change_nothing_and_are_not_run_as_ticks(
        request_type: str, world: World, scaler_env: dict, lambda_context: Any, monkeypatch: pytest.MonkeyPatch,
        cloudformation: tuple[str, list[dict]]) -> None:
    url, received = cloudformation
    _raise_held(world, lambda_context, monkeypatch)
    result = RELAX.lambda_handler(stack_event(request_type, url), lambda_context)
    assert result["Status"] == "SUCCESS" and received[0]["body"]["Status"] == "SUCCESS"
    assert world.target()["MinCapacity"] == 6  # no relax tick ran on the stack's request


def test_issue8_a_delete_that_cannot_restore_still_answers_so_the_stack_can_go(
        world: World, scaler_env: dict, lambda_context: Any, monkeypatch: pytest.MonkeyPatch,
        cloudformation: tuple[str, list[dict]]) -> None:
    url, received = cloudformation
    # Given settings the relaxer cannot read (the table name is gone)
    monkeypatch.delenv("LEDGER_TABLE_NAME")
    RELAX.lambda_handler(stack_event("Delete", url), lambda_context)
    # Then CloudFormation still hears SUCCESS, with a reason that says nothing was restored
    assert received[0]["body"]["Status"] == "SUCCESS"
    assert "NOT restored" in received[0]["body"]["Reason"] and "LEDGER_TABLE_NAME" in received[0]["body"]["Reason"]


def test_issue8_the_custom_resource_is_deleted_before_what_it_needs() -> None:
    props = template()["Resources"]["RestoreBaselineOnDelete"]["Properties"]
    # references order the deletion: the custom resource goes first, the relaxer, ledger and target after
    assert props["LedgerTableName"] == {"Ref": "LedgerTable"}
    assert props["ScalableTarget"] == {"Fn::If": ["ManagesTarget", {"Ref": "ScalableTarget"}, {"Ref": "AWS::NoValue"}]}
    assert props["ManageScalableTarget"] == {"Ref": "ManageScalableTarget"}


def test_sam_delete_of_a_component_stack_restores_its_copies_baseline_and_lowers_its_copies(
        world: World, scaler_env: dict, lambda_context: Any, monkeypatch: pytest.MonkeyPatch,
        cloudformation: tuple[str, list[dict]]) -> None:
    url, received = cloudformation
    # Given a single-component stack (InferenceComponentName) holding a raise of its copies to 6
    monkeypatch.setenv("DRY_RUN", "false")
    monkeypatch.setenv("INFERENCE_COMPONENT_NAME", "tagger-copies")
    monkeypatch.setenv("BASELINE_MIN_CAPACITY", "1")
    copies = world.components.add("tagger-copies", "catalogue-tagger", copies=1, min_capacity=1)
    put_invocations(world.cloudwatch, hourly_spikes(PRESCALE_TIME.floor("min")),
                    dims=[{"Name": "InferenceComponentName", "Value": "tagger-copies"}])
    PRESCALE.lambda_handler(event("prescale_scheduled.json"), lambda_context)
    assert (copies.min_capacity, copies.copies) == (6, 6)
    # When the stack (which owns the target) is deleted
    RELAX.lambda_handler(stack_event("Delete", url, "true"), lambda_context)
    # Then the copies' MinCapacity is back at 1 and the copy count lowered with it (the stack deletes
    # the target and its policy next: no scale-in would follow); the variant is untouched
    assert (copies.min_capacity, copies.copies) == (1, 1)
    assert world.components.copy_updates == [("tagger-copies", 1)]
    body = received[0]["body"]
    assert body["Status"] == "SUCCESS" and "desired copies 6 -> 1" in body["Reason"], body
    assert world.target()["MinCapacity"] == 2
