"""template.yaml as AWS SAM transforms it (aws-sam-translator, no AWS call), and samconfig.toml.

Pins: resources and their wiring, schedules, reserved concurrency, log groups, failure destinations,
least-privilege statements, the functions' environment names, alarms that never scale, Outputs for
every resource, parameter defaults, and parameter overrides that survive spaces.
"""

from __future__ import annotations

import copy
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS = {"PrescaleFunction": "prescale", "RelaxFunction": "relax", "GpuMetricFunction": "gpu_metric"}
ENV_NAMES = {"ENDPOINT_NAME", "VARIANT_NAME", "BASELINE_MIN_CAPACITY", "PRESCALE_MAX_CAPACITY",
             "TARGET_INVOCATIONS_PER_INSTANCE", "HEADROOM", "HORIZON_MINUTES", "DEFAULT_LEAD_TIME_SECONDS",
             "DRY_RUN", "PROMPT_SCALE_IN", "LEDGER_TABLE_NAME", "METRICS_NAMESPACE", "HISTORY_DAYS",
             "MAX_HOLD_MINUTES", "SCHEDULE_TIMEZONE", "BREACH_MINUTE_COST", "KNOWN_EVENTS"}


class _Cfn(yaml.SafeLoader):
    pass


def _tag(loader: _Cfn, suffix: str, node: yaml.Node) -> dict:
    value: Any = (loader.construct_scalar(node) if isinstance(node, yaml.ScalarNode)
                  else loader.construct_sequence(node, deep=True) if isinstance(node, yaml.SequenceNode)
                  else loader.construct_mapping(node, deep=True))  # type: ignore[arg-type]
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {"Ref": value} if suffix == "Ref" else {f"Fn::{suffix}": value}


_Cfn.add_multi_constructor("!", _tag)


@pytest.fixture(scope="module")
def source() -> dict:
    return yaml.load((ROOT / "template.yaml").read_text(), Loader=_Cfn)


@pytest.fixture(scope="module")
def cfn(source: dict) -> dict:
    """The template after the SAM transform (code URIs replaced by S3 placeholders, as sam validate does)."""
    from samtranslator.translator.transform import transform

    class NoManagedPolicies:
        def load(self) -> dict:
            return {}

    doc = copy.deepcopy(source)
    for res in doc["Resources"].values():
        for key in ("CodeUri", "ContentUri"):
            if key in res.get("Properties", {}):
                res["Properties"][key] = "s3://bucket/key"
    mp = pytest.MonkeyPatch()
    mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
    try:
        return transform(doc, {}, NoManagedPolicies())
    finally:
        mp.undo()


def statements(cfn: dict, function: str) -> list[dict]:
    role = cfn["Resources"][f"{function}Role"]["Properties"]
    return [s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]]


def actions(cfn: dict, function: str) -> set[str]:
    out: set[str] = set()
    for s in statements(cfn, function):
        out.update([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    return out


def test_parameters_have_the_known_good_defaults(source: dict) -> None:
    p = {k: v.get("Default") for k, v in source["Parameters"].items()}
    assert (p["VariantName"], p["BaselineMinCapacity"], p["MaxCapacity"]) == ("AllTraffic", 2, 8)
    assert (p["TargetInvocationsPerInstance"], p["ScaleOutCooldown"], p["ScaleInCooldown"]) == (2400, 60, 300)
    assert (p["EnableGpuMetric"], p["PromptScaleIn"], p["DryRun"]) == ("false", "true", "false")
    assert (p["ScheduleExpression"], p["AlarmEmail"]) == ("rate(1 minute)", "")
    for name in ("EndpointName", "PrescaleMaxCapacity", "DefaultLeadTimeSeconds", "HorizonMinutes", "Headroom"):
        assert name in p


def test_scalable_target_and_base_target_tracking(cfn: dict) -> None:
    r = cfn["Resources"]
    target = r["ScalableTarget"]["Properties"]
    assert target["ResourceId"] == {"Fn::Sub": "endpoint/${EndpointName}/variant/${VariantName}"}
    assert target["ScalableDimension"] == "sagemaker:variant:DesiredInstanceCount"
    policy = r["TargetTrackingPolicy"]["Properties"]["TargetTrackingScalingPolicyConfiguration"]
    # the backstop's metric is a parameter: InvocationsPerInstance by default, or the high-resolution
    # concurrency metric (AWS's predefined metric type names) with its own target
    assert policy["PredefinedMetricSpecification"]["PredefinedMetricType"] == {"Fn::If": [
        "ConcurrencyBackstop", "SageMakerVariantConcurrentRequestsPerModelHighResolution",
        "SageMakerVariantInvocationsPerInstance"]}
    assert policy["TargetValue"] == {"Fn::If": ["ConcurrencyBackstop", {"Ref": "TargetConcurrentRequestsPerModel"},
                                                {"Ref": "TargetInvocationsPerInstance"}]}
    assert (policy["ScaleOutCooldown"], policy["ScaleInCooldown"]) == ({"Ref": "ScaleOutCooldown"},
                                                                       {"Ref": "ScaleInCooldown"})
    params = cfn["Parameters"]
    assert params["BackstopMetric"]["Default"] == "InvocationsPerInstance"
    assert set(params["BackstopMetric"]["AllowedValues"]) == {"InvocationsPerInstance",
                                                             "ConcurrentRequestsPerModelHighResolution"}
    assert cfn["Conditions"]["ConcurrencyBackstop"] == {
        "Fn::Equals": [{"Ref": "BackstopMetric"}, "ConcurrentRequestsPerModelHighResolution"]}
    # the default target is the twin's: the same saturation as the invocations target
    from prescaler.sim.twin import EndpointModel

    assert params["TargetConcurrentRequestsPerModel"]["Default"] == pytest.approx(EndpointModel().concurrency_target)


@pytest.mark.parametrize("function", FUNCTIONS)
def test_each_function_is_scheduled_single_and_has_logs_and_a_failure_destination(cfn: dict, function: str) -> None:
    r = cfn["Resources"]
    props = r[function]["Properties"]
    assert (props["Runtime"], props["Handler"]) == ("python3.11", "app.lambda_handler")
    assert props["ReservedConcurrentExecutions"] == 1
    assert len(props["Layers"]) == 1 and props["Layers"][0]["Ref"].startswith("PrescalerLayer")
    log_group = props["LoggingConfig"]["LogGroup"]["Ref"]
    assert r[log_group]["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    rule = r[f"{function}Tick"]["Properties"]
    assert rule["ScheduleExpression"] == {"Ref": "ScheduleExpression"}
    invoke = r[f"{function}EventInvokeConfig"]["Properties"]
    assert invoke["DestinationConfig"]["OnFailure"]["Destination"] == {"Fn::GetAtt": ["FailureQueue", "Arn"]}
    assert invoke["MaximumRetryAttempts"] == 0
    assert r[f"{function}ErrorsAlarm".replace("Function", "")]["Properties"]["AlarmActions"] == [
        {"Ref": "AlertTopic"}]
    env = props["Environment"]["Variables"]
    assert env["AWS_ENDPOINT_URL"] == ""  # declared so `sam local invoke --env-vars` can override it
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == env["METRICS_NAMESPACE"] == {"Ref": "MetricsNamespace"}


def test_gpu_metric_function_exists_only_when_enabled(cfn: dict) -> None:
    for logical_id, res in cfn["Resources"].items():
        if logical_id.startswith("GpuMetric"):
            assert res.get("Condition") == "GpuMetricEnabled", logical_id
    assert cfn["Conditions"]["GpuMetricEnabled"] == {"Fn::Equals": [{"Ref": "EnableGpuMetric"}, "true"]}


@pytest.mark.parametrize("function", ["PrescaleFunction", "RelaxFunction"])
def test_scalers_get_exactly_the_documented_environment(cfn: dict, function: str) -> None:
    env = cfn["Resources"][function]["Properties"]["Environment"]["Variables"]
    assert set(env) >= ENV_NAMES
    assert env["LEDGER_TABLE_NAME"] == {"Ref": "LedgerTable"}


def test_ledger_table_is_on_demand_keyed_by_scalable_target(cfn: dict) -> None:
    t = cfn["Resources"]["LedgerTable"]["Properties"]
    assert t["BillingMode"] == "PAY_PER_REQUEST"
    assert t["KeySchema"] == [{"AttributeName": "scalable_target", "KeyType": "HASH"}]


def test_least_privilege_only_the_actions_each_function_calls(cfn: dict) -> None:
    assert actions(cfn, "PrescaleFunction") == {
        "application-autoscaling:DescribeScalableTargets", "application-autoscaling:DescribeScalingActivities",
        "application-autoscaling:RegisterScalableTarget", "sagemaker:DescribeEndpoint",
        "sagemaker:DescribeEndpointConfig", "sagemaker:UpdateEndpointWeightsAndCapacities",
        "cloudwatch:GetMetricData", "dynamodb:GetItem", "dynamodb:UpdateItem", "sqs:SendMessage"}
    assert actions(cfn, "RelaxFunction") == actions(cfn, "PrescaleFunction")
    assert actions(cfn, "GpuMetricFunction") == {
        "sagemaker:DescribeEndpoint", "sagemaker:DescribeEndpointConfig", "cloudwatch:GetMetricData",
        "cloudwatch:PutMetricData", "sqs:SendMessage"}
    for function in FUNCTIONS:
        assert not any("*" in a for a in actions(cfn, function)), "no wildcard actions"


def test_put_metric_data_only_in_the_projects_namespace(cfn: dict) -> None:
    for function in FUNCTIONS:
        for s in statements(cfn, function):
            if "cloudwatch:PutMetricData" in s["Action"]:
                assert s["Condition"] == {"StringEquals": {"cloudwatch:namespace": {"Ref": "MetricsNamespace"}}}


def test_sagemaker_and_dynamodb_limited_to_the_endpoint_and_the_table(cfn: dict) -> None:
    endpoint = {"Fn::Sub": "arn:${AWS::Partition}:sagemaker:${AWS::Region}:${AWS::AccountId}:endpoint/${EndpointName}"}
    for function in FUNCTIONS:
        for s in statements(cfn, function):
            acts = [s["Action"]] if isinstance(s["Action"], str) else s["Action"]
            if {"sagemaker:DescribeEndpoint", "sagemaker:UpdateEndpointWeightsAndCapacities"} & set(acts):
                assert s["Resource"] == endpoint
            if any(a.startswith("dynamodb:") for a in acts):
                assert s["Resource"] == {"Fn::GetAtt": ["LedgerTable", "Arn"]}
            if s["Resource"] == "*":
                assert all(a.startswith(("application-autoscaling:Describe", "cloudwatch:"))
                           or a == "application-autoscaling:RegisterScalableTarget" for a in acts), acts


def test_model_latency_alarm_notifies_people_and_never_scales(cfn: dict) -> None:
    alarm = cfn["Resources"]["ModelLatencyAlarm"]["Properties"]
    assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/SageMaker", "ModelLatency")
    assert alarm["AlarmActions"] == [{"Ref": "AlertTopic"}]
    sub = cfn["Resources"]["AlertEmailSubscription"]
    assert sub["Condition"] == "HasAlarmEmail" and sub["Properties"]["Protocol"] == "email"


def test_every_resource_has_an_output(source: dict) -> None:
    referenced = set()
    for out in source["Outputs"].values():
        value = out["Value"]
        referenced.add(value["Ref"] if "Ref" in value else value["Fn::GetAtt"][0])
    assert set(source["Resources"]) <= referenced


def test_layer_builds_with_python311(source: dict) -> None:
    layer = source["Resources"]["PrescalerLayer"]
    assert layer["Metadata"]["BuildMethod"] == "python3.11"
    assert layer["Properties"]["ContentUri"] == "layers/prescaler"
    for logical_id, name in FUNCTIONS.items():
        assert source["Resources"][logical_id]["Properties"]["CodeUri"] == f"functions/{name}/"
        assert (ROOT / "functions" / name / "app.py").exists()


# --------------------------------------------------------------------------------------------------
# samconfig.toml


def overrides(env: str) -> dict[str, str]:
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    raw = config[env]["deploy"]["parameters"]["parameter_overrides"]
    return dict(pair.split("=", 1) for pair in shlex.split(raw))


def test_samconfig_has_default_dev_prod_and_validate_lint() -> None:
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    assert {"default", "dev", "prod"} <= set(config)
    assert config["default"]["validate"]["parameters"]["lint"] is True


def test_issue5_10_a_cron_override_with_spaces_reaches_the_template_intact(source: dict) -> None:
    value = overrides("dev")["ScheduleExpression"]
    assert value == "cron(0/5 * * * ? *)"
    pattern = source["Parameters"]["ScheduleExpression"]["AllowedPattern"]
    assert re.fullmatch(pattern, value)
    for env in ("default", "dev", "prod"):
        assert set(overrides(env)) <= set(source["Parameters"])


def test_issue5_10_sam_cli_parses_the_override_the_same_way() -> None:
    pytest.importorskip("samcli")
    from samcli.cli.types import CfnParameterOverridesType

    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    raw = config["dev"]["deploy"]["parameters"]["parameter_overrides"]
    parsed = CfnParameterOverridesType().convert(raw, None, None)
    assert parsed["ScheduleExpression"] == "cron(0/5 * * * ? *)" and parsed == overrides("dev")


def test_cfn_lint_passes() -> None:
    pytest.importorskip("cfnlint")
    from cfnlint.api import lint_file

    matches = lint_file(ROOT / "template.yaml")
    assert [str(m) for m in matches] == []


def test_dashboard_shows_forecast_against_actual(source: dict) -> None:
    import json

    body = source["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    widgets = json.loads(re.sub(r"\$\{[^}]+\}", "x", body))["widgets"]
    first = [m[1] for m in widgets[0]["properties"]["metrics"]]
    assert first == ["Invocations", "ForecastPeakInvocationsPerMinute"]
