"""``prescaler doctor`` against moto (endpoint, scalable target, policies, metrics) and botocore's
Stubber where moto cannot answer: ``sts:GetCallerIdentity`` for an assumed role, ``iam:GetRole`` and
``iam:SimulatePrincipalPolicy`` (moto does not implement it), in AWS's response shapes."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import boto3
import pandas as pd
import pytest
from awsworld import ENDPOINT, RESOURCE_ID, VARIANT, World, hourly_spikes, put_invocations
from botocore.stub import Stubber
from prescaler import doctor
from prescaler.aws import clients, permissions
from prescaler.cli import main

pytestmark = pytest.mark.integration

ACCOUNT = "123456789012"
REGION = "us-east-1"
CALLER = f"arn:aws:sts::{ACCOUNT}:assumed-role/Deployer/alice"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/ops/Deployer"


def _now() -> pd.Timestamp:
    return pd.Timestamp.now(tz="UTC")


def _history(world: World, days: float = 3.0, endpoint: str = ENDPOINT, lag_minutes: int = 2) -> None:
    end = _now().floor("min") - pd.Timedelta(minutes=lag_minutes)
    put_invocations(world.cloudwatch, hourly_spikes(end, days=days), endpoint=endpoint)


def _table_requests(endpoint: str = ENDPOINT) -> list[dict[str, Any]]:
    """The SimulatePrincipalPolicy requests the doctor must make: one per distinct table row."""
    deployment = permissions.Deployment("aws", REGION, ACCOUNT, endpoint, VARIANT)
    rows = {}
    for function in permissions.FUNCTIONS:
        for r in permissions.for_function(function, deployment):
            if r.granted_by == "inline" and not r.call.startswith("lambda:"):
                rows[(r.action, r.resource, tuple(sorted(r.context.items())))] = r
    out = []
    for action, resource, context in sorted(rows):
        req: dict[str, Any] = {"PolicySourceArn": ROLE, "ActionNames": [action]}
        if resource != "*":
            req["ResourceArns"] = [resource]
        if context:
            req["ContextEntries"] = [{"ContextKeyName": k, "ContextKeyValues": [v], "ContextKeyType": "string"}
                                     for k, v in context]
        out.append(req)
    return out


def _result(req: dict[str, Any], decision: str) -> dict[str, Any]:
    resource = req.get("ResourceArns", ["*"])[0]
    result: dict[str, Any] = {"EvalActionName": req["ActionNames"][0], "EvalResourceName": resource,
                              "EvalDecision": decision, "MatchedStatements": [], "MissingContextValues": []}
    if decision == "allowed":
        result["MatchedStatements"] = [{"SourcePolicyId": "deployer-policy", "SourcePolicyType": "IAM Policy",
                                        "StartPosition": {"Line": 1, "Column": 1},
                                        "EndPosition": {"Line": 9, "Column": 2}}]
    return result


class Stubs:
    """sts + iam clients with Stubbers; the other services come from moto."""

    def __init__(self) -> None:
        self.sts = boto3.client("sts", region_name=REGION)
        self.iam = boto3.client("iam", region_name=REGION)
        self.sts_stub, self.iam_stub = Stubber(self.sts), Stubber(self.iam)
        self.sts_stub.add_response("get_caller_identity", {
            "UserId": "AROAEXAMPLEID:alice", "Account": ACCOUNT, "Arn": CALLER})
        self.iam_stub.add_response("get_role", {"Role": {
            "Path": "/ops/", "RoleName": "Deployer", "RoleId": "AROAEXAMPLEID1234567", "Arn": ROLE,
            "CreateDate": pd.Timestamp("2025-01-01", tz="UTC").to_pydatetime()}}, {"RoleName": "Deployer"})

    def simulate(self, deny: frozenset[str] = frozenset(), endpoint: str = ENDPOINT) -> None:
        for req in _table_requests(endpoint):
            decision = "implicitDeny" if req["ActionNames"][0] in deny else "allowed"
            self.iam_stub.add_response("simulate_principal_policy", {
                "EvaluationResults": [_result(req, decision)], "IsTruncated": False}, req)

    def factory(self, service: str) -> Any:
        return {"sts": self.sts, "iam": self.iam}.get(service) or clients.client(service)

    def __enter__(self) -> Stubs:
        self.sts_stub.activate()
        self.iam_stub.activate()
        return self

    def __exit__(self, *exc: object) -> None:
        self.sts_stub.deactivate()
        self.iam_stub.deactivate()


@pytest.fixture
def stubs(aws: None) -> Iterator[Stubs]:
    with Stubs() as s:
        yield s
    s.iam_stub.assert_no_pending_responses()


def verdicts(report: doctor.Report) -> dict[str, str]:
    return {c.name: c.verdict for c in report.checks}


def detail(report: doctor.Report, name: str) -> str:
    return next(c.detail for c in report.checks if c.name == name)


def test_an_adopted_endpoint_with_history_and_permissions_is_ready(world: World, stubs: Stubs) -> None:
    # Given an InService endpoint with a scalable target, 2 days of traffic and an allowed caller
    _history(world)
    stubs.simulate()
    # When the doctor runs
    report = doctor.diagnose(ENDPOINT, VARIANT, stubs.factory, REGION)
    # Then every line is ok, and it says to adopt the existing target
    assert verdicts(report) == {
        "endpoint": "ok", "variant": "ok", "instance type": "ok", "scalable target": "ok",
        "scaling policies": "warn", "Invocations metric": "ok", "Invocations history": "ok",
        "newest minute": "ok", "caller's permissions": "ok"}
    assert report.ready and report.manage_scalable_target is False
    assert "ManageScalableTarget=false" in detail(report, "scalable target")
    assert "ml.g4dn.xlarge: 1 GPU" in detail(report, "instance type")
    # three days of minutes fill 72 hourly bins, or 73 when they do not start on the hour
    history = detail(report, "Invocations history")
    assert re.match(r"3\.0 days with traffic in the last 14 \(7[23] active hours", history), history
    assert ROLE in detail(report, "caller's permissions")  # the role with its path, not the session


def test_no_scalable_target_means_manage_it(world: World, stubs: Stubs) -> None:
    world.autoscaling.deregister_scalable_target(
        ServiceNamespace="sagemaker", ResourceId=RESOURCE_ID,
        ScalableDimension="sagemaker:variant:DesiredInstanceCount")
    _history(world)
    stubs.simulate()
    report = doctor.diagnose(ENDPOINT, VARIANT, stubs.factory, REGION)
    assert report.manage_scalable_target is True and verdicts(report)["scaling policies"] == "ok"
    assert "ManageScalableTarget=true" in detail(report, "scalable target")


def test_an_invocations_target_tracking_policy_is_recognised(world: World, stubs: Stubs) -> None:
    world.autoscaling.put_scaling_policy(
        PolicyName="invocations", ServiceNamespace="sagemaker", ResourceId=RESOURCE_ID,
        ScalableDimension="sagemaker:variant:DesiredInstanceCount", PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration={"TargetValue": 2400.0, "PredefinedMetricSpecification": {
            "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"}})
    _history(world)
    stubs.simulate()
    report = doctor.diagnose(ENDPOINT, VARIANT, stubs.factory, REGION)
    assert verdicts(report)["scaling policies"] == "ok"
    assert "invocations (SageMakerVariantInvocationsPerInstance)" in detail(report, "scaling policies")


def test_a_missing_permission_fails_and_names_the_action(world: World, stubs: Stubs) -> None:
    _history(world)
    stubs.simulate(deny=frozenset({"cloudwatch:DeleteAlarms"}))
    report = doctor.diagnose(ENDPOINT, VARIANT, stubs.factory, REGION)
    assert verdicts(report)["caller's permissions"] == "fail" and not report.ready
    assert "cloudwatch:DeleteAlarms on arn:aws:cloudwatch:us-east-1:123456789012:alarm:* (implicitDeny)" in detail(
        report, "caller's permissions")


def test_a_caller_who_may_not_simulate_is_not_checked(world: World, stubs: Stubs) -> None:
    _history(world)
    stubs.iam_stub.add_client_error("simulate_principal_policy", "AccessDenied", "not authorized to perform: "
                                    "iam:SimulatePrincipalPolicy", 403)
    report = doctor.diagnose(ENDPOINT, VARIANT, stubs.factory, REGION)
    assert verdicts(report)["caller's permissions"] == "not checked" and report.ready
    assert "may not call iam:SimulatePrincipalPolicy" in detail(report, "caller's permissions")


def test_metrics_under_another_case_fail_and_name_the_case_found(world: World, stubs: Stubs) -> None:
    # Given Invocations published for "CATALOGUE-TAGGER" but not for the endpoint's own name
    _history(world, endpoint=ENDPOINT.upper())
    stubs.simulate()
    report = doctor.diagnose(ENDPOINT, VARIANT, stubs.factory, REGION)
    assert verdicts(report)["Invocations metric"] == "fail" and not report.ready
    assert "found EndpointName=CATALOGUE-TAGGER, VariantName=AllTraffic" in detail(report, "Invocations metric")
    assert verdicts(report)["Invocations history"] == "not checked"


def test_short_history_and_a_late_newest_minute_warn(world: World, stubs: Stubs) -> None:
    _history(world, days=0.5, lag_minutes=20)
    stubs.simulate()
    report = doctor.diagnose(ENDPOINT, VARIANT, stubs.factory, REGION)
    # half a day proves an hourly rhythm (6 cycles) but not a daily one (2 days)
    assert verdicts(report)["Invocations history"] == "warn"
    assert "can prove: hourly;" in detail(report, "Invocations history")
    assert "daily 48 h" in detail(report, "Invocations history")
    assert verdicts(report)["newest minute"] == "warn" and "late" in detail(report, "newest minute")
    assert report.ready  # warnings do not fail the run


def test_an_endpoint_idle_for_hours_is_ready_with_a_warning(world: World, stubs: Stubs) -> None:
    # Given three days of traffic that stopped five hours ago (a quiet night)
    _history(world, lag_minutes=300)
    stubs.simulate()
    report = doctor.diagnose(ENDPOINT, VARIANT, stubs.factory, REGION)
    assert verdicts(report)["Invocations history"] == "ok"
    assert verdicts(report)["newest minute"] == "warn" and "no Invocations in the last 3 hours" in detail(
        report, "newest minute")
    assert report.ready


def test_an_endpoint_that_is_missing_fails(aws: None, stubs: Stubs) -> None:
    stubs.simulate(endpoint="no-such-endpoint")
    report = doctor.diagnose("no-such-endpoint", VARIANT, stubs.factory, REGION)
    v = verdicts(report)
    assert v["endpoint"] == "fail" and v["variant"] == "not checked" and not report.ready


def test_cli_json_exit_0_when_ready(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    # moto's caller (sts::user/moto) cannot be simulated: permissions "not checked", still ready
    _history(world)
    code = main(["doctor", "--endpoint", ENDPOINT, "--json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 0 and data["ready"] is True and data["manage_scalable_target"] is False
    assert {c["name"]: c["verdict"] for c in data["checks"]}["caller's permissions"] == "not checked"


def test_cli_exit_1_with_a_table_when_a_check_fails(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["doctor", "--endpoint", ENDPOINT, "--variant", "Canary"])
    out = capsys.readouterr().out
    assert code == 1 and "no variant 'Canary'" in out and "not ready" in out


def test_cli_without_credentials_is_one_line_exit_2(monkeypatch: pytest.MonkeyPatch, tmp_path: Any,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    code = main(["doctor", "--endpoint", ENDPOINT])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "no AWS credentials" in err


def test_cli_without_a_region_is_one_line_exit_2(monkeypatch: pytest.MonkeyPatch, tmp_path: Any,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    for var in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    code = main(["doctor", "--endpoint", ENDPOINT])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "no AWS region" in err


@pytest.mark.parametrize(("caller", "expected"), [
    (f"arn:aws:iam::{ACCOUNT}:user/ops/bob", f"arn:aws:iam::{ACCOUNT}:user/ops/bob"),
    (f"arn:aws:iam::{ACCOUNT}:root", None),
    (f"arn:aws:sts::{ACCOUNT}:federated-user/carol", None),
])
def test_principal_arn_for_users_root_and_federated(caller: str, expected: str | None) -> None:
    assert doctor.principal_arn(caller, iam=None) == expected


def test_an_assumed_role_without_get_role_is_simulated_without_its_path() -> None:
    iam = boto3.client("iam", region_name=REGION)
    with Stubber(iam) as stub:
        stub.add_client_error("get_role", "AccessDenied", "not authorized", 403)
        assert doctor.principal_arn(CALLER, iam) == f"arn:aws:iam::{ACCOUNT}:role/Deployer"


def test_cli_with_rejected_credentials_is_one_line_exit_2(monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    sts = boto3.client("sts", region_name=REGION)
    stub = Stubber(sts)
    stub.add_client_error("get_caller_identity", "ExpiredToken", "The security token included in the request is "
                          "expired", 403)

    class Session:
        region_name = REGION

        def client(self, service: str, **_: Any) -> Any:
            assert service == "sts", "no other call before the caller is known"
            return sts

    monkeypatch.setattr(clients, "session", lambda: Session())
    with stub:
        code = main(["doctor", "--endpoint", ENDPOINT])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "ExpiredToken" in err


# --- an unusable AWS setup: one line naming the cause, exit 2 (never a traceback, never exit 1) ----------


def _no_aws_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def _unreachable(client: Any, error: type[Exception]) -> Any:
    """``client`` whose every request fails as if the network dropped it (nothing is sent)."""
    def refuse(request: Any, **_: Any) -> None:
        raise error(endpoint_url=request.url)
    client.meta.events.register_first("before-send", refuse)
    return client


def test_cli_with_aws_endpoint_url_unreachable_is_one_line_exit_2(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    # a real connection to a closed local port: botocore raises EndpointConnectionError after its retries
    _no_aws_files(monkeypatch, tmp_path)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    code = main(["doctor", "--endpoint", ENDPOINT])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert "cannot reach AWS at http://127.0.0.1:9" in err and "AWS_ENDPOINT_URL" in err


@pytest.mark.parametrize(("region", "hint"), [
    ("xx-nowhere-1", "region 'xx-nowhere-1' is not one botocore knows"),
    (REGION, "check the network"),
])
def test_cli_when_sts_cannot_be_reached_names_the_url_and_the_likely_cause(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], region: str, hint: str) -> None:
    from botocore.exceptions import EndpointConnectionError

    monkeypatch.setenv("AWS_REGION", region)
    monkeypatch.setenv("AWS_DEFAULT_REGION", region)

    class Session:
        region_name = region

        def client(self, service: str, **_: Any) -> Any:
            return _unreachable(boto3.client(service, region_name=region), EndpointConnectionError)

    monkeypatch.setattr(clients, "session", lambda: Session())
    code = main(["doctor", "--endpoint", ENDPOINT])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert f"https://sts.{region}.amazonaws.com" in err and hint in err


def test_cli_when_the_network_drops_after_the_caller_is_known_is_one_line_exit_2(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from botocore.exceptions import ConnectTimeoutError

    sts = boto3.client("sts", region_name=REGION)
    stub = Stubber(sts)
    stub.add_response("get_caller_identity", {"UserId": "AROAEXAMPLEID:alice", "Account": ACCOUNT, "Arn": CALLER})

    class Session:
        region_name = REGION

        def client(self, service: str, **_: Any) -> Any:
            return sts if service == "sts" else _unreachable(boto3.client(service, region_name=REGION),
                                                             ConnectTimeoutError)

    monkeypatch.setattr(clients, "session", lambda: Session())
    with stub:
        code = main(["doctor", "--endpoint", ENDPOINT])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert "cannot reach AWS at https://api.sagemaker.us-east-1.amazonaws.com" in err and "ConnectTimeoutError" in err


@pytest.mark.parametrize(("env", "words"), [
    ({"AWS_PROFILE": "nope"}, ["profile 'nope' not found"]),
    ({"AWS_REGION": "us east 1", "AWS_DEFAULT_REGION": "us east 1"}, ["'us east 1' is not a region name"]),
    ({"AWS_SECRET_ACCESS_KEY": None, "AWS_SESSION_TOKEN": None}, ["unusable AWS credentials", "AWS_SECRET_ACCESS_KEY"]),
])
@pytest.mark.parametrize("argv", [["doctor", "--endpoint", ENDPOINT], ["backtest", "--endpoint", ENDPOINT]])
def test_cli_with_a_broken_aws_setup_is_one_line_exit_2(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Any, capsys: pytest.CaptureFixture[str],
        env: dict[str, str | None], words: list[str], argv: list[str]) -> None:
    _no_aws_files(monkeypatch, tmp_path)
    for key, value in env.items():
        if value is None:
            monkeypatch.delenv(key, raising=False)
        else:
            monkeypatch.setenv(key, value)
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    for word in words:
        assert word in err, err
