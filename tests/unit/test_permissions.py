"""Each function's role, as SAM deploys it, against the table in ``prescaler/aws/permissions.py``.

The SAM transform runs on template.yaml (``test_template``'s fixture), each function's role policies
are taken from the transformed template, their intrinsics are resolved with realistic values (a
mixed-case endpoint name, a generated table name, another region than us-east-1), and an IAM policy
evaluator decides each request: moto's ``moto.iam.access_control.IAMPolicy`` (what moto's server
enforces IAM with; case-sensitive resource ARNs with ``*`` wildcards, ``StringEquals`` conditions).
Its two known gaps are closed here rather than relied on: every request carries every condition key
(moto lets a missing key pass), and each statement is evaluated on its own (moto reports an unmet
Allow condition as a deny of the whole policy); a condition operator moto does not evaluate fails
the test. The roles have no Deny statements (asserted), so "allowed" = some statement permits.

Pinned: every row is allowed on its resource (inline and AWS managed policies), and on a probe space
of actions x resources x contexts the inline policies allow exactly what the table's rows cover
(least privilege: an extra action, a broader resource or a missing condition fails). Every function
in the template must have table rows.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re
from typing import Any

import pytest
from moto.iam.access_control import IAMPolicy, PermissionResult
from moto.iam.aws_managed_policies import aws_managed_policies_data
from prescaler.aws import permissions as perms
from prescaler.aws.permissions import Deployment, Permission
from test_template import cfn, source  # noqa: F401  (fixtures: the template before/after the SAM transform)

pytestmark = pytest.mark.unit

DEPLOY = Deployment(
    partition="aws",
    region="eu-west-1",
    account="123456789012",
    endpoint_name="Catalogue-Tagger",
    variant_name="AllTraffic",
    namespace="SageMakerPrescaler",
    ledger_table="prescaler-LedgerTable-1Q2W3E4R5T6Y",
    failure_queue="prescaler-FailureQueue-7U8I9O0P",
    stack="prescaler",
    shard_queues={"prescale": "prescaler-PrescaleShardQueue-A1S2D3", "relax": "prescaler-RelaxShardQueue-F4G5H6"},
)
#: The same stack in FleetMode tag: its roles act on every endpoint and inference component and add
#: the fleet's rows.
FLEET = dataclasses.replace(DEPLOY, fleet=True)
#: A single-component stack (InferenceComponentName, mixed case): the component's rows, no variant's.
COMPONENT = dataclasses.replace(DEPLOY, inference_component="Llama-3-8B")
#: The fleet with FleetDiscovery tagging-api: tag:GetResources on "*" as well.
TAGGING = dataclasses.replace(FLEET, fleet_discovery="tagging-api")
DEPLOYS = [DEPLOY, FLEET, COMPONENT, TAGGING]
DEPLOY_IDS = ["single", "fleet", "component", "tagging-api"]
FUNCTION_OF = {logical_id: name for name, logical_id in perms.LOGICAL_IDS.items()}
LAMBDA_TYPES = {"AWS::Serverless::Function", "AWS::Lambda::Function"}
EVALUATED_OPERATORS = {"StringEquals"}

#: Actions no function may have, whatever the table says (probed alongside the table's own).
FORBIDDEN = (
    "sagemaker:DeleteEndpoint", "sagemaker:UpdateEndpoint", "sagemaker:InvokeEndpoint",
    "sagemaker:CreateEndpointConfig", "application-autoscaling:DeregisterScalableTarget",
    "application-autoscaling:PutScalingPolicy", "application-autoscaling:DeleteScalingPolicy",
    "dynamodb:PutItem", "dynamodb:DeleteItem", "dynamodb:Scan", "dynamodb:DeleteTable",
    "cloudwatch:SetAlarmState", "cloudwatch:PutMetricData", "sqs:ReceiveMessage", "sqs:DeleteMessage",
    "iam:PassRole", "logs:DeleteLogGroup",
)


# --------------------------------------------------------------------------------------------------
# intrinsics, resolved as CloudFormation would for DEPLOY


def _refs(src: dict, deploy: Deployment = DEPLOY) -> dict[str, str]:
    values = {name: str(p.get("Default", "")) for name, p in src["Parameters"].items()}
    values.update({
        "FleetMode": "tag" if deploy.fleet else "single",
        "FleetDiscovery": deploy.fleet_discovery,
        "EndpointName": DEPLOY.endpoint_name, "VariantName": DEPLOY.variant_name,
        "InferenceComponentName": deploy.inference_component,
        "MetricsNamespace": DEPLOY.namespace,
        "AWS::Partition": DEPLOY.partition, "AWS::Region": DEPLOY.region, "AWS::AccountId": DEPLOY.account,
        "AWS::StackName": DEPLOY.stack, "AWS::URLSuffix": "amazonaws.com",
        "LedgerTable": DEPLOY.ledger_table,
        "FailureQueue": f"https://sqs.{DEPLOY.region}.amazonaws.com/{DEPLOY.account}/{DEPLOY.failure_queue}",
    })
    return values


def _get_att(resource: str, attribute: str) -> str:
    known = {
        ("LedgerTable", "Arn"): perms.TABLE_ARN,
        ("FailureQueue", "Arn"): perms.QUEUE_ARN,
        ("PrescaleShardQueue", "Arn"): perms.SHARD_QUEUE_ARN,
        ("RelaxShardQueue", "Arn"): perms.SHARD_QUEUE_ARN,
    }
    if (resource, attribute) not in known:
        raise AssertionError(f"the test cannot resolve Fn::GetAtt {resource}.{attribute}: add it")
    function = "relax" if resource.startswith("Relax") else "prescale"  # each scaler's own shard queue
    return known[(resource, attribute)].format(**DEPLOY.values(function))


NO_VALUE = object()


def conditions(src: dict, refs: dict[str, str]) -> dict[str, bool]:
    """The template's Conditions, evaluated like CloudFormation for these parameter values."""
    out: dict[str, bool] = {}

    def value(node: Any) -> Any:
        if isinstance(node, dict) and len(node) == 1:
            (key, arg), = node.items()
            if key == "Fn::Equals":
                return str(value(arg[0])) == str(value(arg[1]))
            if key == "Fn::Not":
                return not value(arg[0])
            if key == "Fn::And":
                return all(value(a) for a in arg)
            if key == "Fn::Or":
                return any(value(a) for a in arg)
            if key == "Condition":
                return evaluate(arg)
            if key == "Ref":
                return refs[arg]
        return node

    def evaluate(name: str) -> bool:
        if name not in out:
            out[name] = bool(value(src["Conditions"][name]))
        return out[name]

    for name in src.get("Conditions", {}):
        evaluate(name)
    return out


def resolve(node: Any, refs: dict[str, str], conds: dict[str, bool] | None = None) -> Any:
    """Evaluate Ref, Fn::GetAtt, Fn::Sub, Fn::Join, Fn::Split, Fn::Select and Fn::If (with
    ``AWS::NoValue``) like CloudFormation."""
    if isinstance(node, list):
        return [v for v in (resolve(n, refs, conds) for n in node) if v is not NO_VALUE]
    if not isinstance(node, dict):
        return node
    if len(node) == 1:
        (key, arg), = node.items()
        if key == "Ref" and arg == "AWS::NoValue":
            return NO_VALUE
        if key == "Fn::If":
            if conds is None or arg[0] not in conds:
                raise AssertionError(f"the test cannot resolve condition {arg[0]}: add it")
            return resolve(arg[1] if conds[arg[0]] else arg[2], refs, conds)
        if key == "Ref":
            if arg not in refs:
                raise AssertionError(f"the test cannot resolve Ref {arg}: add it")
            return refs[arg]
        if key == "Fn::GetAtt":
            return _get_att(*arg)
        if key == "Fn::Sub":
            text, extra = (arg, {}) if isinstance(arg, str) else (arg[0], resolve(arg[1], refs, conds))
            scope = {**refs, **extra}
            return re.sub(r"\$\{([^}!]+)\}", lambda m: str(scope[m.group(1)]), text)
        if key == "Fn::Join":
            return resolve(arg[0], refs, conds).join(resolve(arg[1], refs, conds))
        if key == "Fn::Split":
            return resolve(arg[1], refs, conds).split(resolve(arg[0], refs, conds))
        if key == "Fn::Select":
            return resolve(arg[1], refs, conds)[int(resolve(arg[0], refs, conds))]
        if key.startswith("Fn::"):
            raise AssertionError(f"the test cannot resolve {key}: add it")
    out = {k: resolve(v, refs, conds) for k, v in node.items()}
    return {k: v for k, v in out.items() if v is not NO_VALUE}


def deployed(template: dict, src: dict, logical_id: str, deploy: Deployment = DEPLOY) -> tuple[list[dict], list[dict]]:
    """(inline policy documents, AWS managed policy documents) of a function's role, resolved."""
    role = template["Resources"][f"{logical_id}Role"]["Properties"]
    refs = _refs(src, deploy)
    inline = [resolve(p["PolicyDocument"], refs, conditions(src, refs)) for p in role["Policies"]]
    managed_data = json.loads(aws_managed_policies_data)
    managed = []
    for arn in role.get("ManagedPolicyArns", []):
        name = str(arn).rsplit("/", 1)[-1]
        assert name in perms.MANAGED_POLICIES, f"{logical_id}: unexpected managed policy {arn}"
        managed.append(managed_data[name]["Document"])
    return inline, managed


# --------------------------------------------------------------------------------------------------
# evaluation


def _statements(docs: list[dict]) -> list[dict]:
    out: list[dict] = []
    for doc in docs:
        st = doc["Statement"]
        out.extend(st if isinstance(st, list) else [st])
    return out


def allowed(docs: list[dict], action: str, resource: str, context: dict[str, str]) -> bool:
    """Does some statement of ``docs`` allow the request? (No Deny statement exists: asserted.)"""
    for statement in _statements(docs):
        assert statement["Effect"] == "Allow", statement
        for operator in statement.get("Condition", {}):
            assert operator in EVALUATED_OPERATORS, f"the evaluator does not evaluate {operator}: {statement}"
        policy = IAMPolicy(json.dumps({"Version": "2012-10-17", "Statement": [statement]}))
        decision = policy.is_action_permitted(action, resource, incoming_condition_values=context)
        if decision == PermissionResult.PERMITTED:
            return True
    return False


def concrete(resource: str) -> str:
    """A real-looking ARN matched by a row's resource pattern (``*`` filled in)."""
    return resource.replace("*", "Zz9-example") if resource != "*" else (
        f"arn:aws:sagemaker:{DEPLOY.region}:{DEPLOY.account}:endpoint/any-endpoint")


def contexts(rows: list[Permission]) -> list[dict[str, str]]:
    """Every condition key any row uses, once with each row's values (the variant's and the
    component's scalable dimension), and each key wrong in turn."""
    right: dict[str, str] = {}
    for row in rows:
        right.update(row.context)
    out = [right]
    for row in rows:
        if row.context and {**right, **row.context} not in out:
            out.append({**right, **row.context})
    for key in right:
        out.append({**right, key: "other"})
    return out


def probe_resources(rows: list[Permission]) -> set[str]:
    d = DEPLOY
    out = {"*"} | {r.resource for r in rows} | {concrete(r.resource) for r in rows}
    out |= {
        f"arn:aws:sagemaker:{d.region}:{d.account}:endpoint/{d.endpoint_name}",  # SageMaker never writes this
        f"arn:aws:sagemaker:{d.region}:{d.account}:endpoint/other-endpoint",
        f"arn:aws:sagemaker:us-east-1:{d.account}:endpoint/{d.endpoint_arn_name}",
        f"arn:aws:sagemaker:{d.region}:210987654321:endpoint/{d.endpoint_arn_name}",
        f"arn:aws:dynamodb:{d.region}:{d.account}:table/other-table",
        f"arn:aws:sqs:{d.region}:{d.account}:other-queue",
        f"arn:aws:cloudwatch:{d.region}:210987654321:alarm:other",
        f"arn:aws:sagemaker:{d.region}:{d.account}:inference-component/Llama-3-8B",  # SageMaker never writes this
        f"arn:aws:sagemaker:{d.region}:{d.account}:inference-component/llama-3-8b",
        f"arn:aws:sagemaker:{d.region}:{d.account}:inference-component/other-component",
    }
    return out


def mismatches(function: str, inline: list[dict], deploy: Deployment = DEPLOY) -> list[str]:
    """Requests where the inline policies and the table's inline rows disagree."""
    everything = [r.render(DEPLOY) for r in perms.PERMISSIONS] + [r.render(deploy) for r in perms.PERMISSIONS]
    rows = [r for r in perms.for_function(function, deploy) if r.granted_by == "inline"]
    actions = {r.action for r in everything} | set(FORBIDDEN)
    out = []
    for action in sorted(actions):
        for resource in sorted(probe_resources(everything)):
            for context in contexts(everything):
                expected = any(r.covers(action, resource, context) for r in rows)
                if allowed(inline, action, resource, context) != expected:
                    out.append(f"{'allowed' if not expected else 'denied'} but the table says "
                               f"{'no' if not expected else 'yes'}: {action} on {resource} with {context}")
    return out


# --------------------------------------------------------------------------------------------------
# tests


def test_every_function_in_the_template_has_table_rows(source: dict) -> None:  # noqa: F811
    functions = [lid for lid, res in source["Resources"].items() if res["Type"] in LAMBDA_TYPES]
    assert functions, "no function found in template.yaml"
    for logical_id in functions:
        assert logical_id in FUNCTION_OF, f"{logical_id} has no entry in prescaler/aws/permissions.py"
        assert perms.for_function(FUNCTION_OF[logical_id])
    assert set(perms.LOGICAL_IDS.values()) <= set(functions)


@pytest.mark.parametrize("deploy", DEPLOYS, ids=DEPLOY_IDS)
@pytest.mark.parametrize("logical_id", sorted(FUNCTION_OF))
def test_every_row_is_allowed_on_its_resource(cfn: dict, source: dict, logical_id: str,  # noqa: F811
                                              deploy: Deployment) -> None:
    inline, managed = deployed(cfn, source, logical_id, deploy)
    denied = [f"{r.call} needs {r.action} on {r.resource} {r.context or ''}".strip()
              for r in perms.for_function(FUNCTION_OF[logical_id], deploy)
              if not allowed(inline + managed, r.action, concrete(r.resource) if r.resource != "*" else "*", r.context)]
    assert denied == []


@pytest.mark.parametrize("deploy", DEPLOYS, ids=DEPLOY_IDS)
@pytest.mark.parametrize("logical_id", sorted(FUNCTION_OF))
def test_nothing_else_is_allowed(cfn: dict, source: dict, logical_id: str, deploy: Deployment) -> None:  # noqa: F811
    inline, _ = deployed(cfn, source, logical_id, deploy)
    assert mismatches(FUNCTION_OF[logical_id], inline, deploy) == []


def test_a_fleet_role_may_act_on_any_endpoint_a_single_role_on_its_own_only(cfn: dict, source: dict) -> None:  # noqa: F811
    other = f"arn:aws:sagemaker:{DEPLOY.region}:{DEPLOY.account}:endpoint/other-endpoint"
    single, _ = deployed(cfn, source, "PrescaleFunction", DEPLOY)
    fleet, _ = deployed(cfn, source, "PrescaleFunction", FLEET)
    assert allowed(fleet, "sagemaker:DescribeEndpoint", other, {}) and allowed(fleet, "sagemaker:ListTags", other, {})
    assert not allowed(single, "sagemaker:DescribeEndpoint", other, {})
    assert not allowed(single, "sagemaker:ListEndpoints", "*", {})
    assert allowed(fleet, "sagemaker:ListEndpoints", "*", {})


def test_only_a_tagging_api_fleet_may_call_get_resources(cfn: dict, source: dict) -> None:  # noqa: F811
    for logical_id in ("PrescaleFunction", "RelaxFunction"):
        for deploy, expected in ((DEPLOY, False), (FLEET, False), (TAGGING, True)):
            inline, managed = deployed(cfn, source, logical_id, deploy)
            granted = allowed(inline + managed, "tag:GetResources", "*", {})
            assert granted is expected, (logical_id, deploy.fleet_discovery)
    gpu, _ = deployed(cfn, source, "GpuMetricFunction", TAGGING)
    assert not allowed(gpu, "tag:GetResources", "*", {})


def test_a_fleet_role_may_act_on_any_inference_component_and_a_component_stack_on_its_own_only(
        cfn: dict, source: dict) -> None:  # noqa: F811
    arn = f"arn:aws:sagemaker:{DEPLOY.region}:{DEPLOY.account}:inference-component/{{}}"
    copies = {"application-autoscaling:service-namespace": "sagemaker",
              "application-autoscaling:scalable-dimension": "sagemaker:inference-component:DesiredCopyCount"}
    instances = {**copies, "application-autoscaling:scalable-dimension": "sagemaker:variant:DesiredInstanceCount"}
    fleet, _ = deployed(cfn, source, "RelaxFunction", FLEET)
    single, _ = deployed(cfn, source, "RelaxFunction", DEPLOY)
    component, _ = deployed(cfn, source, "RelaxFunction", COMPONENT)
    # a fleet: discovery, tags, copies and instances of any member
    assert allowed(fleet, "sagemaker:ListInferenceComponents", "*", {})
    assert allowed(fleet, "sagemaker:ListTags", arn.format("any-component"), {})
    assert allowed(fleet, "sagemaker:UpdateInferenceComponentRuntimeConfig", arn.format("any-component"), {})
    assert allowed(fleet, "application-autoscaling:RegisterScalableTarget", "*", copies)
    assert allowed(fleet, "application-autoscaling:RegisterScalableTarget", "*", instances)
    # a single-variant stack: no component at all
    assert not allowed(single, "sagemaker:DescribeInferenceComponent", arn.format("llama-3-8b"), {})
    assert not allowed(single, "application-autoscaling:RegisterScalableTarget", "*", copies)
    # a single-component stack: its own component (lower-case ARN), its copies, no endpoint action
    assert allowed(component, "sagemaker:UpdateInferenceComponentRuntimeConfig", arn.format("llama-3-8b"), {})
    assert not allowed(component, "sagemaker:UpdateInferenceComponentRuntimeConfig", arn.format("other"), {})
    assert allowed(component, "application-autoscaling:RegisterScalableTarget", "*", copies)
    assert not allowed(component, "application-autoscaling:RegisterScalableTarget", "*", instances)
    assert not allowed(component, "sagemaker:UpdateEndpointWeightsAndCapacities",
                       f"arn:aws:sagemaker:{DEPLOY.region}:{DEPLOY.account}:endpoint/catalogue-tagger", {})


@pytest.mark.parametrize("logical_id", sorted(FUNCTION_OF))
def test_managed_policies_are_the_two_sam_attaches(cfn: dict, logical_id: str) -> None:  # noqa: F811
    arns = cfn["Resources"][f"{logical_id}Role"]["Properties"]["ManagedPolicyArns"]
    assert sorted(str(a).rsplit("/", 1)[-1] for a in arns) == sorted(perms.MANAGED_POLICIES)


def test_the_endpoint_arn_is_the_lower_case_name_for_a_mixed_case_endpoint(cfn: dict, source: dict) -> None:  # noqa: F811
    inline, _ = deployed(cfn, source, "PrescaleFunction")
    lower = f"arn:aws:sagemaker:{DEPLOY.region}:{DEPLOY.account}:endpoint/catalogue-tagger"
    assert allowed(inline, "sagemaker:UpdateEndpointWeightsAndCapacities", lower, {})
    assert not allowed(inline, "sagemaker:UpdateEndpointWeightsAndCapacities", lower.replace("catalogue-tagger",
                                                                                            "Catalogue-Tagger"), {})


# The check can fail: each mutation of the deployed policy below is a least-privilege or a
# missing-permission defect, and the same functions that pass the template must report it.


def _mutated(cfn: dict, source: dict, mutate: Any) -> list[dict]:  # noqa: F811
    inline, _ = deployed(cfn, source, "RelaxFunction")
    inline = copy.deepcopy(inline)
    for statement in _statements(inline):
        mutate(statement)
    return inline


def test_an_extra_action_is_reported(cfn: dict, source: dict) -> None:  # noqa: F811
    def add(statement: dict) -> None:
        if statement.get("Sid") == "Ledger":
            statement["Action"] = [*statement["Action"], "dynamodb:DeleteItem"]

    found = mismatches("relax", _mutated(cfn, source, add))
    assert found and all("dynamodb:DeleteItem" in m for m in found)


def test_a_broader_resource_is_reported(cfn: dict, source: dict) -> None:  # noqa: F811
    def widen(statement: dict) -> None:
        if statement.get("Sid") == "TheEndpoint":
            statement["Resource"] = statement["Resource"].rsplit("/", 1)[0] + "/*"

    found = mismatches("relax", _mutated(cfn, source, widen))
    assert any("other-endpoint" in m for m in found)


def test_a_dropped_condition_is_reported(cfn: dict, source: dict) -> None:  # noqa: F811
    def drop(statement: dict) -> None:
        statement.pop("Condition", None)

    found = mismatches("relax", _mutated(cfn, source, drop))
    assert any("RegisterScalableTarget" in m and "'other'" in m for m in found)


def test_a_missing_alarm_permission_is_reported(cfn: dict, source: dict) -> None:  # noqa: F811
    def remove(statement: dict) -> None:
        if "cloudwatch:DeleteAlarms" in statement.get("Action", []):
            statement["Action"] = [a for a in statement["Action"] if a != "cloudwatch:DeleteAlarms"]

    found = mismatches("relax", _mutated(cfn, source, remove))
    assert found and all("cloudwatch:DeleteAlarms" in m for m in found)


def test_each_row_names_its_aws_documentation_page() -> None:
    for row in perms.PERMISSIONS:
        assert row.doc.startswith("https://docs.aws.amazon.com/"), row
        assert row.function in perms.FUNCTIONS and ":" in row.action


def test_register_scalable_target_rows_carry_what_application_auto_scaling_validates_on_the_caller() -> None:
    # Application Auto Scaling user guide, "Permissions validation for API calls on target resources"
    documented = {"sagemaker:DescribeEndpoint", "sagemaker:DescribeEndpointConfig",
                  "sagemaker:UpdateEndpointWeightsAndCapacities", "cloudwatch:PutMetricAlarm",
                  "cloudwatch:DescribeAlarms", "cloudwatch:DeleteAlarms"}
    for function in ("prescale", "relax"):
        validated = {r.action for r in perms.for_function(function)
                     if r.validated_by == "application-autoscaling:RegisterScalableTarget"}
        assert validated == documented
    assert not [r for r in perms.for_function("gpu_metric") if r.validated_by]


def test_a_function_without_rows_is_an_error() -> None:
    with pytest.raises(KeyError, match="RestoreBaselineFunction"):
        perms.for_function("RestoreBaselineFunction")
