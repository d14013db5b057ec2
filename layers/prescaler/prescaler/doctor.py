"""``prescaler doctor``: check a real account before deploying, read-only, with the caller's credentials.

One :class:`Check` per line, each with a verdict:

- ``ok``: in place; ``warn``: works, but read the detail; ``fail``: the stack would not work
  (the command exits 1); ``not checked``: the check could not run (a failed check before it, or
  the caller may not call what it needs); it does not fail the run.

Exit codes of ``prescaler doctor``: 0 ready, 1 a check failed, 2 the checks could not run: no or
invalid region, unknown profile, missing or rejected credentials, AWS unreachable (one line naming
the cause, from ``prescaler.cli``).

Calls (all read-only): ``sts:GetCallerIdentity``, ``sagemaker:DescribeEndpoint`` and
``DescribeEndpointConfig``, ``application-autoscaling:DescribeScalableTargets`` and
``DescribeScalingPolicies``, ``cloudwatch:ListMetrics`` and ``GetMetricData``,
``iam:SimulatePrincipalPolicy`` (and ``iam:GetRole`` for an assumed role's path).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal

import pandas as pd
from botocore.exceptions import BotoCoreError, ClientError

from prescaler.aws import permissions
from prescaler.aws.autoscaling import resource_id
from prescaler.aws.cloudwatch import SAGEMAKER_NAMESPACE, MetricReadError, NoMetricData, read_invocations
from prescaler.aws.sagemaker import IN_SERVICE, UnknownInstanceType, gpus_per_instance
from prescaler.forecast import PATTERNS
from prescaler.history import complete_end

Verdict = Literal["ok", "warn", "fail", "not checked"]
ClientFactory = Callable[[str], Any]

#: How old the newest Invocations minute may be before it is reported late: the pre-scaler reads
#: complete minutes up to now - 2, and SageMaker publishes each minute about a minute after it ends.
LATE_AFTER = pd.Timedelta(minutes=3)
HISTORY = pd.Timedelta(days=14)
SCALABLE_DIMENSION = "sagemaker:variant:DesiredInstanceCount"
INVOCATIONS_PER_INSTANCE = "SageMakerVariantInvocationsPerInstance"


@dataclass(frozen=True)
class Check:
    """One line of the checklist: ``name``, ``verdict`` and a one-line ``detail``."""

    name: str
    verdict: Verdict
    detail: str


@dataclass
class Report:
    """What ``doctor`` found. ``ready`` is True when no check failed."""

    endpoint: str
    variant: str
    region: str
    checks: list[Check]
    manage_scalable_target: bool | None = None

    @property
    def ready(self) -> bool:
        return all(c.verdict != "fail" for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {"endpoint": self.endpoint, "variant": self.variant, "region": self.region, "ready": self.ready,
                "manage_scalable_target": self.manage_scalable_target, "checks": [asdict(c) for c in self.checks]}


def _error(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        return f"{err.get('Code', 'Error')}: {err.get('Message', '')}".strip()
    return str(exc)


def _denied(exc: Exception) -> bool:
    code = exc.response.get("Error", {}).get("Code", "") if isinstance(exc, ClientError) else ""
    return code in ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation")


def principal_arn(caller_arn: str, iam: Any) -> str | None:
    """The IAM ARN ``SimulatePrincipalPolicy`` accepts for a caller (``sts:GetCallerIdentity``'s Arn):
    a user as is; an assumed role as its role (path from ``iam:GetRole`` when allowed); None for
    the root user and federated users, which cannot be simulated."""
    m = re.fullmatch(r"arn:([^:]+):sts::(\d+):assumed-role/([^/]+)/.+", caller_arn)
    if m:
        partition, account, role = m.groups()
        try:
            return str(iam.get_role(RoleName=role)["Role"]["Arn"])
        except (ClientError, BotoCoreError):
            return f"arn:{partition}:iam::{account}:role/{role}"
    if re.fullmatch(r"arn:[^:]+:iam::\d+:user/.+", caller_arn):
        return caller_arn
    return None


class Doctor:
    """Runs the checks for one endpoint variant with clients from ``client`` (boto3 service names)."""

    def __init__(self, endpoint: str, variant: str, client: ClientFactory,
                 now: pd.Timestamp | None = None) -> None:
        self.endpoint, self.variant, self.client = endpoint, variant, client
        self.now = now if now is not None else pd.Timestamp.now(tz="UTC")
        self.checks: list[Check] = []
        self.manage: bool | None = None

    def add(self, name: str, verdict: Verdict, detail: str) -> None:
        self.checks.append(Check(name, verdict, detail))

    def run(self, caller_arn: str, account: str, partition: str, region: str) -> Report:
        config = self._endpoint()
        if config is not None:
            self._instance_type(config)
        else:
            self.add("instance type", "not checked", "no endpoint config to read")
        self._scalable_target()
        if self._metric_dimensions():
            self._history()
        else:
            self.add("Invocations history", "not checked", "no Invocations metric with these dimensions")
            self.add("newest minute", "not checked", "no Invocations metric with these dimensions")
        self._permissions(caller_arn, permissions.Deployment(partition, region, account, self.endpoint, self.variant))
        return Report(self.endpoint, self.variant, region, self.checks, self.manage)

    # ---------------------------------------------------------------------------------------------

    def _endpoint(self) -> str | None:
        """Endpoint InService and the variant on it; returns the endpoint config's name."""
        try:
            d = self.client("sagemaker").describe_endpoint(EndpointName=self.endpoint)
        except ClientError as exc:
            detail = _error(exc)
            if "Could not find" in detail:
                detail = f"no endpoint {self.endpoint!r} in this account and region ({detail})"
            self.add("endpoint", "fail", detail)
            self.add("variant", "not checked", "no endpoint")
            return None
        status = d.get("EndpointStatus", "")
        self.add("endpoint", "ok" if status == IN_SERVICE else "fail",
                 f"{d['EndpointName']} is {status}" + ("" if status == IN_SERVICE else f", not {IN_SERVICE}"))
        variants = {v["VariantName"]: v for v in d.get("ProductionVariants", [])}
        v = variants.get(self.variant)
        if v is None:
            have = ", ".join(variants) or "none"
            self.add("variant", "fail", f"no variant {self.variant!r}; the endpoint has: {have}")
            return None
        self.add("variant", "ok", f"{self.variant}: {v.get('CurrentInstanceCount', '?')} instance(s) now, "
                                  f"{v.get('DesiredInstanceCount', '?')} desired")
        return str(d.get("EndpointConfigName", ""))

    def _instance_type(self, config_name: str) -> None:
        try:
            cfg = self.client("sagemaker").describe_endpoint_config(EndpointConfigName=config_name)
        except ClientError as exc:
            self.add("instance type", "fail", f"DescribeEndpointConfig {config_name}: {_error(exc)}")
            return
        types = {v["VariantName"]: v.get("InstanceType") for v in cfg.get("ProductionVariants", [])}
        instance_type = types.get(self.variant)
        if not instance_type:
            self.add("instance type", "fail", f"variant {self.variant} has no instance type in {config_name} "
                                              "(serverless inference has no MinCapacity to pre-scale)")
            return
        try:
            gpus = gpus_per_instance(instance_type)
        except UnknownInstanceType:
            self.add("instance type", "warn", f"{instance_type}: GPU count unknown, keep EnableGpuMetric=false "
                                              "(or add the type to prescaler.aws.sagemaker.GPU_COUNT)")
            return
        self.add("instance type", "ok", f"{instance_type}: {gpus} GPU(s) per instance (EnableGpuMetric can be true)")

    def _scalable_target(self) -> None:
        rid = resource_id(self.endpoint, self.variant)
        aas = self.client("application-autoscaling")
        try:
            targets = aas.describe_scalable_targets(ServiceNamespace="sagemaker", ResourceIds=[rid],
                                                    ScalableDimension=SCALABLE_DIMENSION)["ScalableTargets"]
            policies = aas.describe_scaling_policies(ServiceNamespace="sagemaker", ResourceId=rid,
                                                     ScalableDimension=SCALABLE_DIMENSION)["ScalingPolicies"]
        except ClientError as exc:
            self.add("scalable target", "fail", f"{rid}: {_error(exc)}")
            self.add("scaling policies", "not checked", "the scalable target could not be read")
            return
        if not targets:
            self.manage = True
            self.add("scalable target", "ok", f"none for {rid}: deploy with ManageScalableTarget=true "
                                              "(the stack creates it and its target tracking)")
        else:
            t = targets[0]
            self.manage = False
            suspended = [k for k, v in (t.get("SuspendedState") or {}).items() if v]
            self.add("scalable target", "warn" if suspended else "ok",
                     f"exists (MinCapacity {t['MinCapacity']}, MaxCapacity {t['MaxCapacity']}): deploy with "
                     "ManageScalableTarget=false (CloudFormation cannot create a target that exists)"
                     + (f"; suspended: {', '.join(suspended)}" if suspended else ""))
        names = []
        tracking = False
        for p in policies:
            spec = (p.get("TargetTrackingScalingPolicyConfiguration") or {})
            metric = (spec.get("PredefinedMetricSpecification") or {}).get("PredefinedMetricType") or (
                "custom metric" if spec else p.get("PolicyType", ""))
            tracking |= metric == INVOCATIONS_PER_INSTANCE
            names.append(f"{p['PolicyName']} ({metric})")
        if not policies:
            verdict: Verdict = "ok" if not targets else "warn"
            detail = "none" + ("" if not targets else ": the adopted target has no target tracking; add "
                               f"{INVOCATIONS_PER_INSTANCE} target tracking (README: Deploy to your account)")
        else:
            verdict = "ok" if tracking else "warn"
            detail = ", ".join(names) + ("" if tracking else f"; none tracks {INVOCATIONS_PER_INSTANCE}: the "
                                         "pre-scaler raises MinCapacity, target tracking does the rest")
        self.add("scaling policies", verdict, detail)

    def _metric_dimensions(self) -> bool:
        """``Invocations`` with exactly these EndpointName/VariantName values (case included)."""
        cw = self.client("cloudwatch")
        exact = [{"Name": "EndpointName", "Value": self.endpoint}, {"Name": "VariantName", "Value": self.variant}]
        try:
            found = cw.list_metrics(Namespace=SAGEMAKER_NAMESPACE, MetricName="Invocations",
                                    Dimensions=exact).get("Metrics", [])
            if found:
                self.add("Invocations metric", "ok", f"{SAGEMAKER_NAMESPACE} Invocations with EndpointName="
                                                     f"{self.endpoint}, VariantName={self.variant}")
                return True
            near = set()
            for page in cw.get_paginator("list_metrics").paginate(Namespace=SAGEMAKER_NAMESPACE,
                                                                  MetricName="Invocations"):
                for m in page.get("Metrics", []):
                    dims = {d["Name"]: d["Value"] for d in m.get("Dimensions", [])}
                    if dims.get("EndpointName", "").lower() == self.endpoint.lower():
                        near.add(f"EndpointName={dims.get('EndpointName')}, VariantName={dims.get('VariantName')}")
        except ClientError as exc:
            self.add("Invocations metric", "fail", f"ListMetrics: {_error(exc)}")
            return False
        hint = (f"; found {'; '.join(sorted(near))}: use those exact names (CloudWatch dimensions are case-sensitive)"
                if near else "; no traffic in the last 2 weeks, or another region")
        self.add("Invocations metric", "fail", f"no {SAGEMAKER_NAMESPACE} Invocations with EndpointName="
                                               f"{self.endpoint}, VariantName={self.variant}{hint}")
        return False

    def _history(self) -> None:
        cw = self.client("cloudwatch")
        end = complete_end(self.now, incomplete_minutes=0)
        try:
            hourly = read_invocations(cw, self.endpoint, self.variant, end - HISTORY, end, period_s=3600)
        except MetricReadError as exc:
            self.add("Invocations history", "fail", str(exc))
            self.add("newest minute", "not checked", "no history")
            return
        hourly = hourly.resample("1h").sum()  # read_invocations spreads each hour over its minutes
        active = hourly[hourly > 0]
        span = (active.index[-1] - active.index[0] + pd.Timedelta(hours=1)) if len(active) else pd.Timedelta(0)
        days = span / pd.Timedelta(days=1)
        # a pattern may act once the history spans enough of its cycles (forecast.Pattern.min_span_minutes)
        needs = {p.name: pd.Timedelta(minutes=p.min_span_minutes) for p in PATTERNS}
        ready = [name for name, need in needs.items() if span >= need]
        enough = {"hourly", "daily"} <= set(ready)  # weekly is a bonus: CloudWatch keeps 15 days of minutes
        self.add("Invocations history", "ok" if enough else "warn",
                 f"{days:.1f} days with traffic in the last 14 ({len(active)} active hours, "
                 f"{active.sum():,.0f} invocations); patterns it can prove: {', '.join(ready) or 'none yet'}"
                 + ("" if len(ready) == len(needs) else "; needed: " + ", ".join(
                     f"{name} {need / pd.Timedelta(hours=1):g} h" for name, need in needs.items()
                     if name not in ready)))
        try:
            recent = read_invocations(cw, self.endpoint, self.variant, end - pd.Timedelta(hours=3), end)
        except NoMetricData:
            self.add("newest minute", "warn", "no Invocations in the last 3 hours (idle, or CloudWatch is late)")
            return
        except MetricReadError as exc:
            self.add("newest minute", "fail", str(exc))
            return
        newest = recent[recent > 0].index.max()
        age = self.now - (newest + pd.Timedelta(minutes=1))
        minutes = age / pd.Timedelta(minutes=1)
        self.add("newest minute", "ok" if age <= LATE_AFTER else "warn",
                 f"{newest:%Y-%m-%d %H:%M} UTC, {minutes:.0f} min ago"
                 + ("" if age <= LATE_AFTER else " (late: idle since, or CloudWatch is delayed; the pre-scaler "
                    "holds on missing minutes)"))

    def _permissions(self, caller_arn: str, deployment: permissions.Deployment) -> None:
        """Ask IAM whether the caller may do what the functions will do (table rows the functions'
        own code or Application Auto Scaling's validation needs; not Lambda's logs, X-Ray, queue)."""
        iam = self.client("iam")
        principal = principal_arn(caller_arn, iam)
        if principal is None:
            self.add("caller's permissions", "not checked", f"{caller_arn} cannot be simulated (root or federated)")
            return
        rows = permissions.for_caller(deployment)
        missing = []
        try:
            for row in rows:
                request: dict[str, Any] = {"PolicySourceArn": principal, "ActionNames": [row.action]}
                if row.resource != "*":
                    request["ResourceArns"] = [row.resource]
                if row.context:
                    request["ContextEntries"] = [{"ContextKeyName": k, "ContextKeyValues": [v],
                                                  "ContextKeyType": "string"} for k, v in sorted(row.context.items())]
                for page in iam.get_paginator("simulate_principal_policy").paginate(**request):
                    for result in page.get("EvaluationResults", []):
                        if result.get("EvalDecision") != "allowed":
                            missing.append(f"{row.action} on {row.resource} ({result.get('EvalDecision')})")
        except ClientError as exc:
            reason = "the caller may not call iam:SimulatePrincipalPolicy" if _denied(exc) else _error(exc)
            self.add("caller's permissions", "not checked", f"{principal}: {reason}")
            return
        if missing:
            self.add("caller's permissions", "fail", f"{principal} lacks {len(missing)} of {len(rows)}: "
                                                     + "; ".join(missing))
        else:
            self.add("caller's permissions", "ok", f"{principal} may do all {len(rows)} things the functions do "
                                                   "(iam:SimulatePrincipalPolicy)")


def diagnose(endpoint: str, variant: str, client: ClientFactory, region: str,
             now: pd.Timestamp | None = None) -> Report:
    """Run every check. The caller's identity comes first: no credentials raise before any check.

    Raises:
        botocore.exceptions.NoCredentialsError / ClientError: from ``sts:GetCallerIdentity``.
    """
    who = client("sts").get_caller_identity()
    arn = str(who["Arn"])
    partition = arn.split(":")[1]
    return Doctor(endpoint, variant, client, now).run(arn, str(who["Account"]), partition, region)


VERDICT_STYLE = {"ok": "green", "warn": "yellow", "fail": "bold red", "not checked": "dim"}


def render(report: Report) -> Any:
    """A rich Table of the checks."""
    from rich.table import Table

    table = Table(title=f"prescaler doctor: {report.endpoint}/{report.variant} in {report.region}",
                  title_justify="left")
    table.add_column("check")
    table.add_column("verdict")
    table.add_column("detail", overflow="fold")
    for c in report.checks:
        table.add_row(c.name, f"[{VERDICT_STYLE[c.verdict]}]{c.verdict}[/]", c.detail)
    return table
