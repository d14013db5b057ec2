"""Every AWS call each function makes, and the IAM actions it needs: the table, in code.

One :class:`Permission` per (function, API call, IAM action), with the resource the action applies
to, the request context (condition keys) it is evaluated with, who grants it in the template
(an inline ``Policies:`` statement, or an AWS managed policy that SAM attaches), and the AWS
documentation page that says so. ``tests/unit/test_permissions.py`` checks the SAM-transformed
template against this table with an IAM policy evaluator (every row allowed on its resource,
nothing else), and ``prescaler doctor`` asks IAM (``SimulatePrincipalPolicy``) about the same rows
for the caller.

Application Auto Scaling checks, on EVERY ``RegisterScalableTarget`` (updates included), that the
*caller* may act on the target: for a SageMaker variant ``sagemaker:DescribeEndpoint``,
``sagemaker:DescribeEndpointConfig``, ``sagemaker:UpdateEndpointWeightsAndCapacities``,
``cloudwatch:PutMetricAlarm``, ``cloudwatch:DescribeAlarms`` and ``cloudwatch:DeleteAlarms``; a
missing one fails the call with ``ValidationException`` naming it. Those rows have
``validated_by`` set.

For an inference component (``Deployment.inference_component``) the scaler rows differ: the target's
dimension is ``sagemaker:inference-component:DesiredCopyCount``, the tick reads
``sagemaker:DescribeInferenceComponent``, prompt scale-in is
``sagemaker:UpdateInferenceComponentRuntimeConfig``, and Application Auto Scaling validates
``sagemaker:DescribeInferenceComponent`` and ``sagemaker:UpdateInferenceComponentRuntimeConfig`` on the
caller instead of the endpoint actions. Each row says which kind of scalable target it is for
(:attr:`Permission.target`). A fleet (``FleetMode`` list or tag) may have both kinds of member, so
its scalers get both kinds of row, on any endpoint and any inference component, plus discovery:
``ListEndpoints`` and ``ListInferenceComponents`` (no resource type: ``*``) and ``ListTags`` on
``endpoint/*`` and ``inference-component/*``; with ``FleetDiscovery`` tagging-api also
``tag:GetResources``, which has no resource type (``*`` only: the tags of every resource in the
account and region; granted only then, by a template Condition).

Resources are templates (``str.format`` fields, see :class:`Deployment`). Case: SageMaker writes
its ARNs in lower case whatever the endpoint name's case (``Catalogue-Tagger`` ->
``endpoint/catalogue-tagger``), so IAM resources use :attr:`Deployment.endpoint_arn_name`;
API calls and CloudWatch dimensions use the name as given.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Literal

Function = Literal["prescale", "relax", "gpu_metric"]
FUNCTIONS: tuple[Function, ...] = ("prescale", "relax", "gpu_metric")
#: The functions that tick over the whole fleet in FleetMode list / tag (gpu_metric stays single).
FLEET_FUNCTIONS: tuple[Function, ...] = ("prescale", "relax")

#: Where each function is declared in template.yaml (logical id).
LOGICAL_IDS: dict[Function, str] = {
    "prescale": "PrescaleFunction",
    "relax": "RelaxFunction",
    "gpu_metric": "GpuMetricFunction",
}

#: The AWS managed policies SAM attaches to each function's role (``Tracing: Active`` adds X-Ray).
MANAGED_POLICIES = ("AWSLambdaBasicExecutionRole", "AWSXrayWriteOnlyAccess")

_SAR = "https://docs.aws.amazon.com/service-authorization/latest/reference"
DOC_AAS = f"{_SAR}/list_applicationautoscaling.html"
DOC_AAS_VALIDATION = (
    "https://docs.aws.amazon.com/autoscaling/application/userguide/security_iam_permission_validation.html"
)
DOC_AAS_SAGEMAKER = (
    "https://docs.aws.amazon.com/autoscaling/application/userguide/security_iam_id-based-policy-examples.html"
)
DOC_SAGEMAKER = f"{_SAR}/list_amazonsagemaker.html"
DOC_CLOUDWATCH = f"{_SAR}/list_amazoncloudwatch.html"
DOC_CLOUDWATCH_NAMESPACE = (
    "https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/iam-cw-condition-keys-namespace.html"
)
DOC_DYNAMODB = f"{_SAR}/list_amazondynamodb.html"
DOC_LAMBDA_DESTINATION = "https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-retain-records.html"
DOC_LAMBDA_LOGS = "https://docs.aws.amazon.com/lambda/latest/dg/permissions-executionrole.html"
DOC_LAMBDA_XRAY = "https://docs.aws.amazon.com/lambda/latest/dg/services-xray.html"
DOC_SQS = f"{_SAR}/list_amazonsqs.html"
DOC_TAGGING = f"{_SAR}/list_resourcegroupstaggingapi.html"
#: The event source mapping polls the queue with the function's execution role.
DOC_LAMBDA_SQS = "https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-configure.html"

ENDPOINT_ARN = "arn:{partition}:sagemaker:{region}:{account}:endpoint/{endpoint_arn_name}"
COMPONENT_ARN = "arn:{partition}:sagemaker:{region}:{account}:inference-component/{component_arn_name}"
ANY_ENDPOINT_ARN = "arn:{partition}:sagemaker:{region}:{account}:endpoint/*"
ANY_COMPONENT_ARN = "arn:{partition}:sagemaker:{region}:{account}:inference-component/*"
ENDPOINT_CONFIG_ARN = "arn:{partition}:sagemaker:{region}:{account}:endpoint-config/*"
ALARM_ARN = "arn:{partition}:cloudwatch:{region}:{account}:alarm:*"
TABLE_ARN = "arn:{partition}:dynamodb:{region}:{account}:table/{ledger_table}"
QUEUE_ARN = "arn:{partition}:sqs:{region}:{account}:{failure_queue}"
#: The function's own fleet shard queue (prescaler.fanout): the dispatcher sends, the worker receives.
SHARD_QUEUE_ARN = "arn:{partition}:sqs:{region}:{account}:{shard_queue}"
LOG_STREAM_ARN = "arn:{partition}:logs:{region}:{account}:log-group:/aws/lambda/{stack}-{log_suffix}:log-stream:*"
ANY = "*"

#: RegisterScalableTarget is narrowed by its condition keys (the target's ARN is generated).
SAGEMAKER_VARIANT = {
    "application-autoscaling:service-namespace": "sagemaker",
    "application-autoscaling:scalable-dimension": "sagemaker:variant:DesiredInstanceCount",
}
SAGEMAKER_COMPONENT = {
    "application-autoscaling:service-namespace": "sagemaker",
    "application-autoscaling:scalable-dimension": "sagemaker:inference-component:DesiredCopyCount",
}

#: Which kind of scalable target a row is for: both, an endpoint variant, an inference component.
Target = Literal["any", "variant", "component"]


@dataclass(frozen=True)
class Permission:
    """One IAM action one function needs.

    Attributes:
        function: ``prescale``, ``relax`` or ``gpu_metric``.
        call: the API call that needs it, ``service:Operation`` (boto3 service name).
        action: the IAM action, ``prefix:Action``.
        resource: the resource ARN template (``*`` where the action has no resource-level
            permissions, per the Service Authorization Reference; the ARN may end in ``*``).
        context: condition keys and values the request carries (templates too).
        doc: the AWS documentation page for this row.
        validated_by: set when Application Auto Scaling checks this action on the caller of that
            call (``RegisterScalableTarget``) rather than the function calling it itself.
        granted_by: ``inline`` (the function's ``Policies:``) or the AWS managed policy's name.
        target: ``any``, or the kind of scalable target the row is for (``variant``, ``component``).
        fleet_only: the row applies to a fleet deployment only (``FleetMode`` list or tag).
        discovery: ``any``, or the ``FleetDiscovery`` the row applies to only (``tagging-api``).
    """

    function: Function
    call: str
    action: str
    resource: str
    doc: str
    context: dict[str, str] = field(default_factory=dict)
    validated_by: str = ""
    granted_by: str = "inline"
    target: Target = "any"
    fleet_only: bool = False
    discovery: Literal["any", "tagging-api"] = "any"

    def render(self, deployment: Deployment) -> Permission:
        """This row with its resource and context filled in for one deployment."""
        values = deployment.values(self.function)
        return Permission(
            self.function,
            self.call,
            self.action,
            self.resource.format(**values),
            self.doc,
            {k: v.format(**values) for k, v in self.context.items()},
            self.validated_by,
            self.granted_by,
            self.target,
            self.fleet_only,
            self.discovery,
        )

    def covers(self, action: str, resource: str, context: dict[str, str]) -> bool:
        """True when a request (action, resource, context) is what this rendered row allows: same
        action (IAM action names are case-insensitive), the resource matched by this row's ARN
        (case-sensitive, ``*`` wildcards), and every condition key of the row present with its value."""
        return (
            action.lower() == self.action.lower()
            and fnmatchcase(resource, self.resource)
            and all(context.get(k) == v for k, v in self.context.items())
        )


@dataclass(frozen=True)
class Deployment:
    """The values a deployed stack fills the table's templates with.

    ``endpoint_name`` is the name as SageMaker's API and CloudWatch's ``EndpointName`` dimension
    spell it; :attr:`endpoint_arn_name` is its lower-case form, as SageMaker writes it in ARNs. A
    fleet (``fleet``: ``FleetMode`` list or tag; members found at run time) renders the endpoint and
    the inference component of :data:`FLEET_FUNCTIONS`' rows as ``*`` and has both kinds of target.
    """

    partition: str
    region: str
    account: str
    endpoint_name: str
    variant_name: str = "AllTraffic"
    namespace: str = "SageMakerPrescaler"
    ledger_table: str = "*"
    failure_queue: str = "*"
    stack: str = "*"
    inference_component: str = ""
    fleet: bool = False
    #: ``FleetDiscovery``: how tag mode reads tags (``list-tags`` or ``tagging-api``)
    fleet_discovery: str = "list-tags"
    #: function -> the name of its fleet shard queue ("*" when not given)
    shard_queues: Mapping[str, str] = field(default_factory=dict)

    @property
    def endpoint_arn_name(self) -> str:
        return self.endpoint_name.lower()

    @property
    def target(self) -> Target:
        """``component`` when the deployment scales an inference component, else ``variant``
        (a fleet has both: :meth:`targets`)."""
        return "component" if self.inference_component else "variant"

    def targets(self, function: str) -> tuple[Target, ...]:
        """The kinds of rows ``function`` has in this deployment: ``any`` plus :attr:`target`, or
        plus both kinds for a fleet's scalers (its members may be variants and components)."""
        if self.fleet and function in FLEET_FUNCTIONS:
            return ("any", "variant", "component")
        return ("any", self.target)

    def values(self, function: Function) -> dict[str, str]:
        return {
            "partition": self.partition,
            "region": self.region,
            "account": self.account,
            "endpoint_name": self.endpoint_name,
            # the fleet's scalers act on any endpoint; the GPU metric stays on EndpointName's
            "endpoint_arn_name": "*" if self.fleet and function in FLEET_FUNCTIONS else self.endpoint_arn_name,
            "variant_name": self.variant_name,
            "component_arn_name": "*" if self.fleet and function in FLEET_FUNCTIONS
            else self.inference_component.lower() or "*",
            "namespace": self.namespace,
            "ledger_table": self.ledger_table,
            "failure_queue": self.failure_queue,
            "shard_queue": self.shard_queues.get(function, "*"),
            "stack": self.stack,
            "log_suffix": function.replace("_", "-"),
        }


def _platform(function: Function) -> list[Permission]:
    """What the Lambda service does with the function's role: logs, X-Ray, the failure destination."""
    return [
        Permission(function, "lambda:OnFailureDestination", "sqs:SendMessage", QUEUE_ARN, DOC_LAMBDA_DESTINATION),
        Permission(function, "logs:CreateLogStream", "logs:CreateLogStream", LOG_STREAM_ARN, DOC_LAMBDA_LOGS,
                   granted_by="AWSLambdaBasicExecutionRole"),
        Permission(function, "logs:PutLogEvents", "logs:PutLogEvents", LOG_STREAM_ARN, DOC_LAMBDA_LOGS,
                   granted_by="AWSLambdaBasicExecutionRole"),
        Permission(function, "xray:PutTraceSegments", "xray:PutTraceSegments", ANY, DOC_LAMBDA_XRAY,
                   granted_by="AWSXrayWriteOnlyAccess"),
        Permission(function, "xray:PutTelemetryRecords", "xray:PutTelemetryRecords", ANY, DOC_LAMBDA_XRAY,
                   granted_by="AWSXrayWriteOnlyAccess"),
    ]


def _register_min_capacity(function: Function) -> list[Permission]:
    """RegisterScalableTarget and what Application Auto Scaling validates on its caller, for a
    variant and for an inference component."""
    call = "application-autoscaling:RegisterScalableTarget"
    rows = [
        Permission(function, call, "application-autoscaling:RegisterScalableTarget", ANY, DOC_AAS,
                   dict(SAGEMAKER_VARIANT), target="variant"),
        Permission(function, call, "application-autoscaling:RegisterScalableTarget", ANY, DOC_AAS,
                   dict(SAGEMAKER_COMPONENT), target="component"),
    ]
    validated: tuple[tuple[str, str, Target], ...] = (
        ("sagemaker:DescribeEndpoint", ENDPOINT_ARN, "variant"),
        ("sagemaker:DescribeEndpointConfig", ENDPOINT_CONFIG_ARN, "variant"),
        ("sagemaker:UpdateEndpointWeightsAndCapacities", ENDPOINT_ARN, "variant"),
        ("sagemaker:DescribeInferenceComponent", COMPONENT_ARN, "component"),
        ("sagemaker:UpdateInferenceComponentRuntimeConfig", COMPONENT_ARN, "component"),
        # Which alarm name Application Auto Scaling probes with is not documented: any alarm of
        # the account and region (the target-tracking alarms are named by the service).
        ("cloudwatch:PutMetricAlarm", ALARM_ARN, "any"),
        # read-only, and a narrower scope only filters what DescribeAlarms returns: "*", the safe reading
        ("cloudwatch:DescribeAlarms", ANY, "any"),
        ("cloudwatch:DeleteAlarms", ALARM_ARN, "any"),
    )
    for action, resource, target in validated:
        rows.append(Permission(function, call, action, resource, DOC_AAS_VALIDATION, validated_by=call,
                               target=target))
    return rows


def _scaler(function: Function) -> list[Permission]:
    """What prescale and relax both do on a tick (see ``service._observe`` and ``_change_min``)."""
    return [
        Permission(function, "application-autoscaling:DescribeScalableTargets",
                   "application-autoscaling:DescribeScalableTargets", ANY, DOC_AAS),
        Permission(function, "application-autoscaling:DescribeScalingActivities",
                   "application-autoscaling:DescribeScalingActivities", ANY, DOC_AAS),
        Permission(function, "sagemaker:DescribeEndpoint", "sagemaker:DescribeEndpoint", ENDPOINT_ARN, DOC_SAGEMAKER,
                   target="variant"),
        Permission(function, "sagemaker:DescribeInferenceComponent", "sagemaker:DescribeInferenceComponent",
                   COMPONENT_ARN, DOC_SAGEMAKER, target="component"),
        Permission(function, "cloudwatch:GetMetricData", "cloudwatch:GetMetricData", ANY, DOC_CLOUDWATCH),
        Permission(function, "dynamodb:GetItem", "dynamodb:GetItem", TABLE_ARN, DOC_DYNAMODB),
        Permission(function, "dynamodb:UpdateItem", "dynamodb:UpdateItem", TABLE_ARN, DOC_DYNAMODB),
        *_register_min_capacity(function),
        *_platform(function),
        *_fleet(function),
    ]


def _fleet(function: Function) -> list[Permission]:
    """What a fleet tick adds (``prescaler.fleet``): discovery, departed entries, the not-reached order;
    and its fan-out (``prescaler.fanout``): the dispatcher sends shards to the function's own queue
    (``SendMessageBatch`` is authorised as ``sqs:SendMessage``), whose event source mapping receives
    and deletes them with the function's role."""
    return [
        Permission(function, "sqs:SendMessageBatch", "sqs:SendMessage", SHARD_QUEUE_ARN, DOC_SQS, fleet_only=True),
        *(Permission(function, "lambda:EventSourceMapping", action, SHARD_QUEUE_ARN, DOC_LAMBDA_SQS, fleet_only=True)
          for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes")),
        Permission(function, "sagemaker:ListEndpoints", "sagemaker:ListEndpoints", ANY, DOC_SAGEMAKER,
                   fleet_only=True),
        Permission(function, "sagemaker:ListInferenceComponents", "sagemaker:ListInferenceComponents", ANY,
                   DOC_SAGEMAKER, fleet_only=True),
        Permission(function, "sagemaker:ListTags", "sagemaker:ListTags", ANY_ENDPOINT_ARN, DOC_SAGEMAKER,
                   fleet_only=True),
        Permission(function, "sagemaker:ListTags", "sagemaker:ListTags", ANY_COMPONENT_ARN, DOC_SAGEMAKER,
                   fleet_only=True),
        Permission(function, "resourcegroupstaggingapi:GetResources", "tag:GetResources", ANY, DOC_TAGGING,
                   fleet_only=True, discovery="tagging-api"),
        Permission(function, "dynamodb:Scan", "dynamodb:Scan", TABLE_ARN, DOC_DYNAMODB, fleet_only=True),
        Permission(function, "dynamodb:PutItem", "dynamodb:PutItem", TABLE_ARN, DOC_DYNAMODB, fleet_only=True),
    ]


#: The table. Keep it in step with the adapters: a new call without a row fails the tests.
PERMISSIONS: tuple[Permission, ...] = (
    *_scaler("prescale"),
    *_scaler("relax"),
    # prompt scale-in: the variant's desired instance count, or the inference component's copy count
    Permission("relax", "sagemaker:UpdateEndpointWeightsAndCapacities",
               "sagemaker:UpdateEndpointWeightsAndCapacities", ENDPOINT_ARN, DOC_SAGEMAKER, target="variant"),
    Permission("relax", "sagemaker:UpdateInferenceComponentRuntimeConfig",
               "sagemaker:UpdateInferenceComponentRuntimeConfig", COMPONENT_ARN, DOC_SAGEMAKER, target="component"),
    Permission("gpu_metric", "sagemaker:DescribeEndpoint", "sagemaker:DescribeEndpoint", ENDPOINT_ARN, DOC_SAGEMAKER),
    Permission("gpu_metric", "sagemaker:DescribeEndpointConfig", "sagemaker:DescribeEndpointConfig",
               ENDPOINT_CONFIG_ARN, DOC_SAGEMAKER),
    Permission("gpu_metric", "cloudwatch:GetMetricData", "cloudwatch:GetMetricData", ANY, DOC_CLOUDWATCH),
    Permission("gpu_metric", "cloudwatch:PutMetricData", "cloudwatch:PutMetricData", ANY, DOC_CLOUDWATCH_NAMESPACE,
               {"cloudwatch:namespace": "{namespace}"}),
    *_platform("gpu_metric"),
)


def for_function(function: str, deployment: Deployment | None = None, target: Target | None = None) -> list[Permission]:
    """The rows of one function for one kind of scalable target (``target``; default: the
    deployment's kinds, :meth:`Deployment.targets`, else ``variant``), rendered for ``deployment``
    when given.

    Raises:
        KeyError: ``function`` has no rows (not one of :data:`FUNCTIONS`).
    """
    kinds: tuple[Target, ...] = ("any", "variant")
    if target is not None:
        kinds = ("any", target)
    elif deployment is not None:
        kinds = deployment.targets(function)
    rows = [p for p in PERMISSIONS if p.function == function and p.target in kinds]
    if not rows:
        raise KeyError(f"no permissions table entry for function {function!r}")
    if deployment is None:
        return rows
    return [p.render(deployment) for p in rows if (deployment.fleet or not p.fleet_only)
            and p.discovery in ("any", deployment.fleet_discovery)]


def api_calls(function: str, target: Target = "variant", fleet: bool = False) -> set[str]:
    """The ``service:Operation`` calls a function's code makes itself for a ``target`` kind of
    scalable target: not those Application Auto Scaling makes to validate a caller, nor the Lambda
    service's logs, traces and failure queue (``fleet``: with those of a fleet tick, whose members
    may be of both kinds, so both kinds' calls)."""
    rows = (for_function(function, target="variant") + for_function(function, target="component") if fleet
            else for_function(function, target=target))
    return {p.call for p in rows
            if not p.validated_by and not p.call.startswith(("lambda:", "logs:", "xray:"))
            and (fleet or not p.fleet_only)}


def for_caller(deployment: Deployment) -> list[Permission]:
    """What a principal needs to do what the functions' code does (and what Application Auto
    Scaling validates on it), once per (action, resource, context), rendered for ``deployment``:
    ``prescaler doctor`` simulates these for its caller. Lambda's own logs, traces and failure
    queue are left out (the functions' roles get them, a deployer does not need them)."""
    rows: dict[tuple[str, str, tuple[tuple[str, str], ...]], Permission] = {}
    for function in FUNCTIONS:
        for r in for_function(function, deployment):
            if r.granted_by == "inline" and not r.call.startswith("lambda:"):
                rows.setdefault((r.action, r.resource, tuple(sorted(r.context.items()))), r)
    return [rows[k] for k in sorted(rows)]
