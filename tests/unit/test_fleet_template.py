"""The template's fleet mode (issue 11): the FleetMode / FleetEndpoints parameters reach both
scalers, and the dashboard's fleet widgets and drill-down query only metrics the code emits."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from test_template import cfn, dashboard_json, source  # noqa: F401  (fixtures: the template before/after the SAM transform)

pytestmark = pytest.mark.unit

PACKAGE = Path(__file__).resolve().parents[2] / "layers" / "prescaler" / "prescaler"


def emitted_metric_names() -> set[str]:
    """Every EMF metric name the package's code adds (``_count("X")``, ``add_metric(name="X")``, the
    fleet totals, and ``Action{Raise,Hold,Relax}``)."""
    names: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text()
        names |= set(re.findall(r'_count\(\s*"(\w+)"', text))
        names |= set(re.findall(r'add_metric\(\s*name="(\w+)"', text))
        names |= set(re.findall(r'"(Fleet\w+)":', text))
        names |= set(re.findall(r'else "(\w+)", unit=', text))  # add_metric(name="A" if ... else "B", unit=...)
    names |= {"ActionRaise", "ActionHold", "ActionRelax"}
    return names


def dashboard(src: dict) -> dict:
    return dashboard_json(src, value="Ns")


def test_fleet_mode_is_a_parameter_reaching_both_scalers(source: dict, cfn: dict) -> None:  # noqa: F811
    p = source["Parameters"]["FleetMode"]
    assert (p["Default"], p["AllowedValues"]) == ("single", ["single", "list", "tag"])
    assert source["Parameters"]["FleetEndpoints"]["Default"] == ""
    assert cfn["Conditions"]["IsFleet"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "FleetMode"}, "single"]}]}
    for function in ("PrescaleFunction", "RelaxFunction"):
        env = cfn["Resources"][function]["Properties"]["Environment"]["Variables"]
        assert (env["FLEET_MODE"], env["FLEET_ENDPOINTS"]) == ({"Ref": "FleetMode"}, {"Ref": "FleetEndpoints"})


def test_the_dashboard_shows_the_fleet_from_metrics_the_code_emits(source: dict) -> None:  # noqa: F811
    board = dashboard(source)
    expressions = [m[0]["expression"] for w in board["widgets"] for m in w["properties"]["metrics"]
                   if isinstance(m[0], dict)]
    searched = {n for e in expressions for n in re.findall(r'"(\w+)"', e)}
    # top endpoints by raises, holds, failures, and forecast vs actual, across every endpoint
    assert {"ActionRaise", "ActionHold", "EndpointError", "Throttled", "InvalidSettings",
            "ForecastPeakInvocationsPerMinute", "ObservedInvocationsPerMinute"} <= searched
    variants = "SORT(SEARCH('{Ns,EndpointName,VariantName} "
    components = "SORT(SEARCH('{Ns,EndpointName,VariantName,InferenceComponentName} "
    assert all(e.startswith((variants, components)) for e in expressions)
    # every ranking covers both kinds of member: the component twin of each variant SEARCH
    # (a component member's metrics carry InferenceComponentName too: fleet._dims)
    assert sorted(e.replace(variants, components) for e in expressions if e.startswith(variants)) == sorted(
        e for e in expressions if e.startswith(components))
    totals = {m[1] for w in board["widgets"] for m in w["properties"]["metrics"]
              if isinstance(m[0], str) and m[1].startswith("Fleet")}
    assert totals == {"FleetMembers", "FleetNotReached", "FleetInvalidSettings", "FleetErrors", "FleetThrottled",
                      "FleetReleased", "FleetShards", "FleetShardsUnsent", "FleetShardStale"}
    emitted = emitted_metric_names()
    assert searched <= emitted, searched - emitted
    assert totals <= emitted, totals - emitted
    # drill-down: one dashboard variable replaces EndpointName in every per-endpoint widget
    (variable,) = board["variables"]
    assert (variable["type"], variable["property"], variable["inputType"]) == ("property", "EndpointName", "select")
    assert variable["populateFrom"] == "EndpointName" and "MetricName=\"Invocations\"" in variable["search"]


def test_a_bad_tag_in_the_fleet_is_alarmed(cfn: dict) -> None:  # noqa: F811
    alarm = cfn["Resources"]["FleetInvalidSettingsAlarm"]
    assert alarm["Condition"] == "IsFleet"
    p = alarm["Properties"]
    assert (p["MetricName"], p["Threshold"], p["ComparisonOperator"]) == (
        "FleetInvalidSettings", 1, "GreaterThanOrEqualToThreshold")
    assert "Dimensions" not in p  # the fleet totals carry no dimension (fleet.run_tick)
    assert p["AlarmActions"] == [{"Ref": "AlertTopic"}]
    assert "FleetInvalidSettings" in emitted_metric_names()


def test_a_single_component_stack_targets_the_components_copies_as_the_functions_do(
        source: dict, cfn: dict) -> None:  # noqa: F811
    # Given the InferenceComponentName parameter (empty by default: the variant)
    from prescaler.aws.autoscaling import scalable_dimension
    from prescaler.settings import ScalerSettings, load
    from test_permissions import COMPONENT, DEPLOY, _refs, conditions, resolve

    assert source["Parameters"]["InferenceComponentName"]["Default"] == ""
    for function in ("PrescaleFunction", "RelaxFunction"):
        env = cfn["Resources"][function]["Properties"]["Environment"]["Variables"]
        assert env["INFERENCE_COMPONENT_NAME"] == {"Ref": "InferenceComponentName"}
    for deploy, kind in ((COMPONENT, "component"), (DEPLOY, "variant")):
        # When CloudFormation resolves the managed target and its policy for that deployment
        refs = _refs(source, deploy)
        conds = conditions(source, refs)
        target = resolve(source["Resources"]["ScalableTarget"]["Properties"], refs, conds)
        policy = source["Resources"]["TargetTrackingPolicy"]["Properties"]["TargetTrackingScalingPolicyConfiguration"]
        metric = resolve(policy["PredefinedMetricSpecification"], refs, conds)
        # Then the target is the one the functions' settings scale (same resource id and dimension)
        settings = load(ScalerSettings, {"ENDPOINT_NAME": refs["EndpointName"], "LEDGER_TABLE_NAME": "ledger",
                                         "INFERENCE_COMPONENT_NAME": refs["InferenceComponentName"]})
        assert target["ResourceId"] == settings.resource_id
        assert target["ScalableDimension"] == scalable_dimension(settings.resource_id)
        # and the backstop tracks the per-copy metric for a component (AWS's predefined metric types)
        expected = {"component": "SageMakerInferenceComponentConcurrentRequestsPerCopyHighResolution",
                    "variant": "SageMakerVariantConcurrentRequestsPerModelHighResolution"}[kind]
        assert metric["PredefinedMetricType"] == expected


def test_baseline_zero_is_refused_by_a_rule_unless_the_stack_scales_a_component(source: dict) -> None:  # noqa: F811
    p = source["Parameters"]["BaselineMinCapacity"]
    assert p["MinValue"] == 0
    rule = source["Rules"]["ScaleToZeroOnlyForAComponent"]
    assert rule["RuleCondition"] == {"Fn::Equals": [{"Ref": "InferenceComponentName"}, ""]}
    (assertion,) = rule["Assertions"]
    assert assertion["Assert"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "BaselineMinCapacity"}, "0"]}]}


# --------------------------------------------------------------------------------------------------
# fan-out on SQS beyond FleetShardSize (prescaler/fanout.py)

SCALERS = {"PrescaleFunction": "PrescaleShard", "RelaxFunction": "RelaxShard"}


def test_each_scaler_consumes_its_own_shard_queue_one_shard_at_a_time_with_partial_batch_responses(
        cfn: dict, source: dict) -> None:  # noqa: F811
    timeout = source["Globals"]["Function"]["Timeout"]
    for function, prefix in SCALERS.items():
        queue = cfn["Resources"][f"{prefix}Queue"]
        assert queue["Condition"] == "IsFleet"
        q = queue["Properties"]
        # Lambda developer guide: the visibility timeout at least 6 x the function's timeout
        assert q["VisibilityTimeout"] >= 6 * timeout
        assert q["MessageRetentionPeriod"] > q["VisibilityTimeout"]  # refused messages reach the DLQ
        assert q["SqsManagedSseEnabled"] is True
        assert q["RedrivePolicy"] == {"deadLetterTargetArn": {"Fn::GetAtt": ["ShardDeadLetterQueue", "Arn"]},
                                      "maxReceiveCount": 1}
        mapping = cfn["Resources"][f"{prefix}Mapping"]
        assert (mapping["Type"], mapping["Condition"]) == ("AWS::Lambda::EventSourceMapping", "IsFleet")
        m = mapping["Properties"]
        assert m["FunctionName"] == {"Ref": function}
        assert m["EventSourceArn"] == {"Fn::GetAtt": [f"{prefix}Queue", "Arn"]}
        assert m["BatchSize"] == 1 and m["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        assert m["ScalingConfig"] == {"MaximumConcurrency": {"Ref": "FleetWorkerConcurrency"}}
        env = cfn["Resources"][function]["Properties"]["Environment"]["Variables"]
        assert env["FLEET_SHARD_SIZE"] == {"Ref": "FleetShardSize"}
        assert env["FLEET_SHARD_QUEUE_URL"] == {"Fn::If": ["IsFleet", {"Ref": f"{prefix}Queue"}, ""]}


def test_the_shard_parameters_default_to_the_measured_size_and_a_valid_maximum_concurrency(source: dict) -> None:  # noqa: F811
    from prescaler import fleet

    size = source["Parameters"]["FleetShardSize"]
    assert size["Default"] == fleet.DEFAULT_SHARD_SIZE == fleet.FleetSettings().fleet_shard_size
    concurrency = source["Parameters"]["FleetWorkerConcurrency"]
    # ScalingConfig.MaximumConcurrency: 2 to 1,000 (Lambda API reference)
    assert (concurrency["MinValue"], concurrency["MaxValue"]) == (2, 1000)
    assert 2 <= concurrency["Default"] <= 1000


def test_a_shard_that_did_not_run_is_alarmed(cfn: dict) -> None:  # noqa: F811
    dlq = cfn["Resources"]["ShardDeadLetterQueue"]
    assert dlq["Condition"] == "IsFleet" and dlq["Properties"]["MessageRetentionPeriod"] == 1209600
    alarm = cfn["Resources"]["ShardDeadLetterAlarm"]
    assert alarm["Condition"] == "IsFleet"
    p = alarm["Properties"]
    assert (p["Namespace"], p["MetricName"], p["Threshold"], p["ComparisonOperator"]) == (
        "AWS/SQS", "ApproximateNumberOfMessagesVisible", 1, "GreaterThanOrEqualToThreshold")
    assert p["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["ShardDeadLetterQueue", "QueueName"]}}]
    assert p["AlarmActions"] == [{"Ref": "AlertTopic"}]
