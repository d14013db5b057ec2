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
    if suffix in ("Ref", "Condition"):  # the two short forms without "Fn::" (CloudFormation's long forms)
        return {suffix: value}
    return {f"Fn::{suffix}": value}


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


def statements(cfn: dict, function: str, fleet: bool = False, component: bool = False,
               tagging: bool = False) -> list[dict]:
    """The role's statements in single mode (``fleet``: FleetMode list/tag; ``component``: an
    InferenceComponentName): a statement under ``Fn::If [condition, statement, AWS::NoValue]`` exists
    when its condition holds (IsFleet; ScalesVariants: a fleet or no component; ScalesComponents: a
    fleet or a component; UsesTaggingApi: a fleet with ``tagging``, FleetDiscovery tagging-api)."""
    holds = {"IsFleet": fleet, "ScalesVariants": fleet or not component, "ScalesComponents": fleet or component,
             "UsesTaggingApi": fleet and tagging}
    role = cfn["Resources"][f"{function}Role"]["Properties"]
    out = []
    for s in (s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]):
        if "Fn::If" in s:
            condition, yes, no = s["Fn::If"]
            assert condition in holds and no == {"Ref": "AWS::NoValue"}, s
            if holds[condition]:
                out.append(yes)
        else:
            out.append(s)
    return out


def actions(cfn: dict, function: str, fleet: bool = False, component: bool = False, tagging: bool = False) -> set[str]:
    out: set[str] = set()
    for s in statements(cfn, function, fleet, component, tagging):
        out.update([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    return out


def test_parameters_have_the_known_good_defaults(source: dict) -> None:
    p = {k: v.get("Default") for k, v in source["Parameters"].items()}
    assert (p["VariantName"], p["BaselineMinCapacity"], p["MaxCapacity"]) == ("AllTraffic", 2, 8)
    assert (p["TargetInvocationsPerInstance"], p["ScaleOutCooldown"], p["ScaleInCooldown"]) == (2400, 60, 300)
    assert (p["EnableGpuMetric"], p["PromptScaleIn"], p["DryRun"]) == ("false", "true", "true")
    assert (p["ScheduleExpression"], p["AlarmEmail"]) == ("rate(1 minute)", "")
    for name in ("EndpointName", "PrescaleMaxCapacity", "DefaultLeadTimeSeconds", "HorizonMinutes", "Headroom"):
        assert name in p


def test_scalable_target_and_base_target_tracking(cfn: dict) -> None:
    r = cfn["Resources"]
    target = r["ScalableTarget"]["Properties"]
    # the variant's instances, or with InferenceComponentName the component's copies (test_fleet_template)
    assert target["ResourceId"] == {"Fn::If": [
        "HasComponent", {"Fn::Sub": "inference-component/${InferenceComponentName}"},
        {"Fn::Sub": "endpoint/${EndpointName}/variant/${VariantName}"}]}
    assert target["ScalableDimension"] == {"Fn::If": ["HasComponent", "sagemaker:inference-component:DesiredCopyCount",
                                                      "sagemaker:variant:DesiredInstanceCount"]}
    policy = r["TargetTrackingPolicy"]["Properties"]["TargetTrackingScalingPolicyConfiguration"]
    # the backstop's metric is a parameter: the high-resolution concurrency metric by default, or
    # InvocationsPerInstance (AWS's predefined metric type names) with its own target
    assert policy["PredefinedMetricSpecification"]["PredefinedMetricType"] == {"Fn::If": ["HasComponent", {"Fn::If": [
        "ConcurrencyBackstop", "SageMakerInferenceComponentConcurrentRequestsPerCopyHighResolution",
        "SageMakerInferenceComponentInvocationsPerCopy"]}, {"Fn::If": [
        "ConcurrencyBackstop", "SageMakerVariantConcurrentRequestsPerModelHighResolution",
        "SageMakerVariantInvocationsPerInstance"]}]}
    assert policy["TargetValue"] == {"Fn::If": ["ConcurrencyBackstop", {"Ref": "TargetConcurrentRequestsPerModel"},
                                                {"Ref": "TargetInvocationsPerInstance"}]}
    assert (policy["ScaleOutCooldown"], policy["ScaleInCooldown"]) == ({"Ref": "ScaleOutCooldown"},
                                                                       {"Ref": "ScaleInCooldown"})
    params = cfn["Parameters"]
    # (issue 10: the high-resolution concurrency metric by default, AWS's fastest reactive option)
    assert params["BackstopMetric"]["Default"] == "ConcurrentRequestsPerModelHighResolution"
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
    assert props["ReservedConcurrentExecutions"] == {
        "Fn::If": ["HasReservedConcurrency", {"Ref": "ReservedConcurrency"}, {"Ref": "AWS::NoValue"}]}
    assert len(props["Layers"]) == 1 and props["Layers"][0]["Ref"].startswith("PrescalerLayer")
    log_group = props["LoggingConfig"]["LogGroup"]["Ref"]
    assert r[log_group]["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    schedule = r[f"{function}Tick"]
    assert schedule["Type"] == "AWS::Scheduler::Schedule"
    assert schedule["Properties"]["ScheduleExpression"] == {"Ref": "ScheduleExpression"}
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
        "cloudwatch:GetMetricData", "dynamodb:GetItem", "dynamodb:UpdateItem", "sqs:SendMessage",
        # validated on the caller of RegisterScalableTarget (see prescaler/aws/permissions.py)
        "cloudwatch:PutMetricAlarm", "cloudwatch:DescribeAlarms", "cloudwatch:DeleteAlarms"}
    assert actions(cfn, "RelaxFunction") == actions(cfn, "PrescaleFunction")
    # a fleet (FleetMode list or tag) adds discovery, the ledger's scan and not-reached order, and
    # its inference components' actions
    component_actions = {"sagemaker:DescribeInferenceComponent", "sagemaker:UpdateInferenceComponentRuntimeConfig"}
    for function in ("PrescaleFunction", "RelaxFunction"):
        assert actions(cfn, function, fleet=True) - actions(cfn, function) == {
            "sagemaker:ListEndpoints", "sagemaker:ListInferenceComponents", "sagemaker:ListTags", "dynamodb:Scan",
            "dynamodb:PutItem", *component_actions,
            # its fan-out: receiving shards from its queue (sqs:SendMessage is already the failure queue's)
            "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"}
        # FleetDiscovery tagging-api adds the Tagging API's GetResources, only to a fleet
        assert actions(cfn, function, fleet=True, tagging=True) - actions(cfn, function, fleet=True) == {
            "tag:GetResources"}
        assert actions(cfn, function, tagging=True) == actions(cfn, function)
        # a single-component stack swaps the endpoint's actions for the component's
        assert actions(cfn, function, component=True) == actions(cfn, function) - {
            "sagemaker:DescribeEndpoint", "sagemaker:DescribeEndpointConfig",
            "sagemaker:UpdateEndpointWeightsAndCapacities"} | component_actions
    assert actions(cfn, "GpuMetricFunction", fleet=True) == actions(cfn, "GpuMetricFunction")
    assert actions(cfn, "GpuMetricFunction") == {
        "sagemaker:DescribeEndpoint", "sagemaker:DescribeEndpointConfig", "cloudwatch:GetMetricData",
        "cloudwatch:PutMetricData", "sqs:SendMessage"}
    for function in FUNCTIONS:
        assert not any("*" in a for a in actions(cfn, function)), "no wildcard actions"


def test_put_metric_data_only_in_the_projects_namespace(cfn: dict) -> None:
    for function in FUNCTIONS:
        for s in statements(cfn, function, fleet=True) + statements(cfn, function):
            if "cloudwatch:PutMetricData" in s["Action"]:
                assert s["Condition"] == {"StringEquals": {"cloudwatch:namespace": {"Ref": "MetricsNamespace"}}}


def test_sagemaker_and_dynamodb_limited_to_the_endpoint_and_the_table(cfn: dict) -> None:
    # the endpoint's name lower-cased (SageMaker's ARNs are lower case): tests/unit/test_permissions.py
    endpoint = "arn:${AWS::Partition}:sagemaker:${AWS::Region}:${AWS::AccountId}:endpoint/${EndpointArnName}"
    component = ("arn:${AWS::Partition}:sagemaker:${AWS::Region}:${AWS::AccountId}:"
                 "inference-component/${ComponentArnName}")
    for function in FUNCTIONS:
        for s in statements(cfn, function) + statements(cfn, function, component=True):
            acts = [s["Action"]] if isinstance(s["Action"], str) else s["Action"]
            if {"sagemaker:DescribeEndpoint", "sagemaker:UpdateEndpointWeightsAndCapacities"} & set(acts):
                assert s["Resource"]["Fn::Sub"][0] == endpoint
            if {"sagemaker:DescribeInferenceComponent", "sagemaker:UpdateInferenceComponentRuntimeConfig"} & set(acts):
                assert s["Resource"]["Fn::Sub"][0] == component
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
        if "Fn::Sub" in value:
            continue  # URLs built from a resource (DashboardUrl)
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


def dashboard_json(src: dict, component: str = "", value: str = "x") -> dict:
    """The Dashboard's body with every parameter as ``value`` and its ``Fn::Sub`` variables resolved
    for a stack without (``component=""``) or with an inference component."""
    import json

    text, variables = src["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    chosen = {}
    for name, v in variables.items():
        condition, yes, no = v["Fn::If"]
        assert condition == "HasComponent", v
        picked = yes if component else no
        chosen[name] = picked["Fn::Sub"] if isinstance(picked, dict) else picked
    text = re.sub(r"\$\{(ComponentDims|InvocationsDims)\}", lambda m: chosen[m.group(1)], text)
    return json.loads(re.sub(r"\$\{[^}]+\}", value, text))


def test_dashboard_shows_forecast_against_actual(source: dict) -> None:
    widgets = dashboard_json(source)["widgets"]
    first = [m[1] for m in widgets[0]["properties"]["metrics"]]
    assert first == ["Invocations", "ForecastPeakInvocationsPerMinute"]


# --------------------------------------------------------------------------------------------------
# issue 8: works on a real AWS account


def test_issue8_first_deploy_changes_nothing_dry_run_on_and_target_adoptable(source: dict, cfn: dict) -> None:
    # DryRun is on unless asked, and reaches both scalers
    assert source["Parameters"]["DryRun"]["Default"] == "true"
    for function in ("PrescaleFunction", "RelaxFunction"):
        assert cfn["Resources"][function]["Properties"]["Environment"]["Variables"]["DRY_RUN"] == {"Ref": "DryRun"}
    # the stack owns the target by default, and with ManageScalableTarget=false creates no Application
    # Auto Scaling resource at all (CloudFormation refuses to create a target that exists)
    assert source["Parameters"]["ManageScalableTarget"]["Default"] == "true"
    assert cfn["Conditions"]["ManagesTarget"] == {"Fn::Equals": [{"Ref": "ManageScalableTarget"}, "true"]}
    aas = {k for k, v in cfn["Resources"].items() if v["Type"].startswith("AWS::ApplicationAutoScaling::")}
    assert aas == {"ScalableTarget", "TargetTrackingPolicy"}
    assert all(cfn["Resources"][k].get("Condition") == "ManagesTarget" for k in aas)
    for out in cfn["Outputs"].values():
        if json_refs(out["Value"]) & aas:
            assert out.get("Condition") == "ManagesTarget"


def json_refs(value: Any) -> set[str]:
    import json

    return set(re.findall(r'"Ref": "([A-Za-z0-9]+)"', json.dumps(value)))


def test_issue8_reserved_concurrency_is_a_parameter_default_none(source: dict, cfn: dict) -> None:
    p = source["Parameters"]["ReservedConcurrency"]
    assert p["Default"] == "" and re.fullmatch(p["AllowedPattern"], "") and re.fullmatch(p["AllowedPattern"], "1")
    assert cfn["Conditions"]["HasReservedConcurrency"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "ReservedConcurrency"}, ""]}]}


@pytest.mark.parametrize("name", ["Catalogue-Tagger", "catalogue-tagger", "A", "x" * 63, "a--b"])
def test_issue8_endpoint_names_sagemaker_accepts_are_accepted_case_kept(source: dict, name: str) -> None:
    from prescaler.settings import SAGEMAKER_NAME, FunctionSettings, load

    pattern = source["Parameters"]["EndpointName"]["AllowedPattern"]
    assert pattern == SAGEMAKER_NAME  # the template and the runtime accept the same names
    assert re.fullmatch(pattern, name)
    settings = load(FunctionSettings, {"ENDPOINT_NAME": name})
    assert settings.endpoint_name == name  # never lower-cased: CloudWatch's EndpointName keeps the case
    assert settings.resource_id == f"endpoint/{name}/variant/AllTraffic"


@pytest.mark.parametrize("name", ["-leading", "trailing-", "under_score", "x" * 64, "", "<your-endpoint-name>"])
def test_issue8_endpoint_names_sagemaker_rejects_are_rejected(source: dict, name: str) -> None:
    assert not re.fullmatch(source["Parameters"]["EndpointName"]["AllowedPattern"], name)


def test_issue8_failure_queue_has_an_alarm(cfn: dict) -> None:
    alarms = [r["Properties"] for r in cfn["Resources"].values() if r["Type"] == "AWS::CloudWatch::Alarm"
              and r["Properties"].get("Namespace") == "AWS/SQS"
              and r.get("Condition") != "IsFleet"]  # the fleet's shard dead-letter alarm: test_fleet_template
    assert len(alarms) == 1
    alarm = alarms[0]
    assert alarm["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["FailureQueue", "QueueName"]}}]
    assert alarm["MetricName"] == "ApproximateNumberOfMessagesVisible" and alarm["Threshold"] == 1
    assert alarm["AlarmActions"] == [{"Ref": "AlertTopic"}]


@pytest.mark.parametrize("function", FUNCTIONS)
def test_issue8_ticks_come_from_eventbridge_scheduler_on_time_or_not_at_all(cfn: dict, function: str) -> None:
    from prescaler.service import parse_tick

    schedule = cfn["Resources"][f"{function}Tick"]
    assert schedule["Type"] == "AWS::Scheduler::Schedule"
    props = schedule["Properties"]
    assert props["FlexibleTimeWindow"] == {"Mode": "OFF"}
    assert props["ScheduleExpressionTimezone"] == {"Ref": "ScheduleTimezone"}
    assert "Name" not in props  # CloudFormation names it: two stacks in one account do not collide
    target = props["Target"]
    assert 60 <= target["RetryPolicy"]["MaximumEventAgeInSeconds"] <= 180
    assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": ["FailureQueue", "Arn"]}}
    # the scheduled time and execution id reach the function as the event's time and id
    sent = (target["Input"].replace("<aws.scheduler.scheduled-time>", "2026-03-02T09:55:00Z")
            .replace("<aws.scheduler.execution-id>", "d1a2b3c4-0000-4000-8000-000000000001"))
    import json

    tick = parse_tick(json.loads(sent))
    assert (tick.clock, tick.now.isoformat(), tick.event_id) == (
        "event", "2026-03-02T09:55:00+00:00", "d1a2b3c4-0000-4000-8000-000000000001")


def test_issue8_the_time_zone_reaches_the_schedule_and_the_forecast(cfn: dict) -> None:
    for function in ("PrescaleFunction", "RelaxFunction"):
        env = cfn["Resources"][function]["Properties"]["Environment"]["Variables"]
        assert env["SCHEDULE_TIMEZONE"] == {"Ref": "ScheduleTimezone"}
        assert cfn["Resources"][f"{function}Tick"]["Properties"]["ScheduleExpressionTimezone"] == {
            "Ref": "ScheduleTimezone"}


def test_issue8_a_stuck_pre_scaler_pages_after_n_minutes_of_fault_holds(source: dict, cfn: dict) -> None:
    alarm = cfn["Resources"]["StuckAlarm"]["Properties"]
    assert (alarm["Namespace"], alarm["MetricName"]) == ({"Ref": "MetricsNamespace"}, "FaultHold")
    assert (alarm["Statistic"], alarm["Period"], alarm["Threshold"]) == ("Minimum", 60, 1)
    assert alarm["EvaluationPeriods"] == alarm["DatapointsToAlarm"] == {"Ref": "StuckAlarmMinutes"}
    p = source["Parameters"]["StuckAlarmMinutes"]
    assert p["MinValue"] >= 1 and p["MaxValue"] * 60 <= 86400  # CloudWatch: periods x 60 s <= one day
    assert alarm["AlarmActions"] == [{"Ref": "AlertTopic"}]


#: words that name a unit or a choice in a parameter's Description
UNITS = ("instances", "seconds", "minutes", "days", "microseconds", "count", "fraction", "per minute",
         "percent", '"true"', "iana", "name", "expression", "e-mail", "namespace")


@pytest.mark.parametrize("name", sorted(yaml.load((ROOT / "template.yaml").read_text(), Loader=_Cfn)["Parameters"]))
def test_issue8_every_parameter_says_its_unit_and_how_to_choose(source: dict, name: str) -> None:
    description = " ".join(str(source["Parameters"][name].get("Description", "")).split()).lower()
    assert len(description) >= 40, f"{name}: {description!r}"
    assert any(u in description for u in UNITS), f"{name}: no unit in {description!r}"


def test_issue8_target_invocations_description_says_how_to_measure_it(source: dict) -> None:
    description = " ".join(source["Parameters"]["TargetInvocationsPerInstance"]["Description"].split()).lower()
    assert "load-test" in description and "0.5" in description and "per minute" in description


@pytest.mark.parametrize("env", ["default", "dev", "prod"])
def test_issue8_samconfig_prefills_no_real_looking_endpoint_name(source: dict, env: str) -> None:
    # guided deploy pre-fills these: pressing Enter must fail CloudFormation's validation, not adopt
    # an endpoint that happens to have that name
    name = overrides(env)["EndpointName"]
    assert not re.fullmatch(source["Parameters"]["EndpointName"]["AllowedPattern"], name), name


def test_issue8_outputs_include_the_dashboard_url(source: dict) -> None:
    url = source["Outputs"]["DashboardUrl"]["Value"]["Fn::Sub"]
    assert url.startswith("https://${AWS::Region}.console.aws.amazon.com/cloudwatch/")
    assert url.endswith("#dashboards:name=${Dashboard}")


def test_issue8_every_checkov_suppression_gives_a_one_line_reason(source: dict) -> None:
    skips = [(logical_id, skip) for logical_id, res in source["Resources"].items()
             for skip in res.get("Metadata", {}).get("checkov", {}).get("skip", [])]
    assert skips, "checkov findings are suppressed in the template, with reasons"
    for logical_id, skip in skips:
        assert re.fullmatch(r"CKV2?_AWS_\d+", skip["id"]), (logical_id, skip)
        comment = skip.get("comment", "")
        assert 20 <= len(comment) <= 160 and "\n" not in comment, (logical_id, skip)


def test_issue8_checkov_runs_in_make_lint_and_ci() -> None:
    makefile = (ROOT / "Makefile").read_text()
    lint = makefile.split("\nlint:", 1)[1].split("\n\n", 1)[0]
    assert "$(CHECKOV) --file template.yaml --framework cloudformation" in lint
    assert re.search(r"^make lint$", (ROOT / ".ci" / "run").read_text(), re.MULTILINE)


def test_issue8_checkov_finds_nothing_unexplained() -> None:
    import subprocess

    checkov = ROOT / ".venv" / "checkov" / "bin" / "checkov"
    if not checkov.exists():
        pytest.skip("checkov not installed (make lint installs it)")
    run = subprocess.run([str(checkov), "--file", str(ROOT / "template.yaml"), "--framework", "cloudformation",
                          "--compact", "--quiet", "--skip-download", "--output", "json"],
                         capture_output=True, text=True, timeout=600)
    import json

    report = json.loads(run.stdout)
    assert report["summary"]["failed"] == 0, run.stdout[-3000:]
    assert report["summary"]["skipped"] >= 1
