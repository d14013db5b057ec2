"""One fleet tick over N endpoints against botocore Stubber-backed clients (no network): the
measured part of ``make bench``'s fleet target. Run as ``python tests/bench/fleet_tick.py N`` (its
peak memory is then the child process's); prints one JSON line with the tick's wall time, the AWS
calls it made per operation, and the outcomes.

Every request goes through botocore's real parameter validation and every response through the
Stubber's validation against the real output shape: the responses are built per request (the
Stubber is fed on ``provide-client-params``) from a small model of N InService endpoints tagged
``prescaler:enabled = true``, each with 14 days of hourly spikes (one datapoint a minute; pages of
at most 100,800 datapoints, as GetMetricData returns).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import boto3
import numpy as np
import pandas as pd
from botocore import xform_name
from botocore.stub import Stubber

MAX_DATAPOINTS_PER_PAGE = 100_800
NOW = pd.Timestamp("2026-03-15T09:55:00Z")
ACCOUNT = "123456789012"
CREATED = datetime(2026, 1, 1, tzinfo=UTC)


class FleetWorld:
    """N endpoints, their scalable targets and the ledger, answering the fleet tick's calls."""

    def __init__(self, n: int) -> None:
        self.names = [f"bench-{i:04d}" for i in range(n)]
        self.min_capacity = {f"endpoint/{name}/variant/AllTraffic": 2 for name in self.names}
        self.calls: Counter[str] = Counter()
        self.first_pages: Counter[str] = Counter()
        index = pd.date_range(NOW.floor("min") - pd.Timedelta(days=14), NOW.floor("min"), freq="min",
                              inclusive="left", tz="UTC")
        values = np.where(index.minute < 8, 13200.0, 2400.0)
        self.times = [t.to_pydatetime() for t in index]  # shared by every endpoint's answer
        self.values = [float(v) for v in values]

    # -- per service ------------------------------------------------------------------------------

    def sagemaker(self, op: str, p: dict) -> dict:
        if op == "ListEndpoints":
            start = int(p.get("NextToken", 0))
            page = self.names[start:start + p.get("MaxResults", 100)]
            out: dict[str, Any] = {"Endpoints": [
                {"EndpointName": n, "EndpointArn": f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:endpoint/{n}",
                 "CreationTime": CREATED, "LastModifiedTime": CREATED, "EndpointStatus": "InService"}
                for n in page]}
            if start + len(page) < len(self.names):
                out["NextToken"] = str(start + len(page))
            return out
        if op == "ListInferenceComponents":  # tag mode asks; this fleet has endpoints only
            return {"InferenceComponents": []}
        if op == "ListTags":
            return {"Tags": [{"Key": "prescaler:enabled", "Value": "true"}]}
        if op == "DescribeEndpoint":
            n = p["EndpointName"]
            return {"EndpointName": n, "EndpointArn": f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:endpoint/{n}",
                    "EndpointConfigName": f"{n}-config", "EndpointStatus": "InService", "CreationTime": CREATED,
                    "LastModifiedTime": CREATED, "ProductionVariants": [
                        {"VariantName": "AllTraffic", "CurrentWeight": 1.0, "DesiredWeight": 1.0,
                         "CurrentInstanceCount": 2, "DesiredInstanceCount": 2}]}
        raise AssertionError(f"sagemaker {op} not modelled")

    def autoscaling(self, op: str, p: dict) -> dict:
        if op == "DescribeScalableTargets":
            rids = p.get("ResourceIds", [])
            return {"ScalableTargets": [
                {"ServiceNamespace": "sagemaker", "ResourceId": r,
                 "ScalableDimension": "sagemaker:variant:DesiredInstanceCount", "MinCapacity": self.min_capacity[r],
                 "MaxCapacity": 8, "RoleARN": f"arn:aws:iam::{ACCOUNT}:role/aas", "CreationTime": CREATED,
                 "SuspendedState": {"DynamicScalingInSuspended": False, "DynamicScalingOutSuspended": False,
                                    "ScheduledScalingSuspended": False}}
                for r in rids if r in self.min_capacity]}
        if op == "DescribeScalingActivities":
            return {"ScalingActivities": []}
        if op == "RegisterScalableTarget":
            self.min_capacity[p["ResourceId"]] = p["MinCapacity"]
            return {"ScalableTargetARN": f"arn:aws:application-autoscaling:us-east-1:{ACCOUNT}:scalable-target/x"}
        raise AssertionError(f"application-autoscaling {op} not modelled")

    def dynamodb(self, op: str, p: dict) -> dict:
        if op == "GetItem":
            return {}
        if op in ("UpdateItem", "PutItem"):
            return {}
        if op == "Scan":
            return {"Items": [], "Count": 0, "ScannedCount": 0}
        raise AssertionError(f"dynamodb {op} not modelled")

    def cloudwatch(self, op: str, p: dict) -> dict:
        if op != "GetMetricData":
            raise AssertionError(f"cloudwatch {op} not modelled")
        start = pd.Timestamp(p["StartTime"])
        end = pd.Timestamp(p["EndTime"])
        lo = int((start - NOW.floor("min") + pd.Timedelta(days=14)) / pd.Timedelta(minutes=1))
        hi = int((end - NOW.floor("min") + pd.Timedelta(days=14)) / pd.Timedelta(minutes=1))
        lo, hi = max(lo, 0), min(hi, len(self.times))
        per_query = max(hi - lo, 0)
        skip = int(p.get("NextToken", 0))  # datapoints already returned
        if not skip:
            self.first_pages[p["MetricDataQueries"][0]["MetricStat"]["Metric"]["MetricName"]] += 1
        results, budget, position = [], MAX_DATAPOINTS_PER_PAGE, 0
        total = per_query * len(p["MetricDataQueries"])
        for q in p["MetricDataQueries"]:
            q_lo, q_hi = position, position + per_query
            position = q_hi
            take_lo, take_hi = max(q_lo, skip), min(q_hi, skip + budget)
            if take_lo >= take_hi or q["MetricStat"]["Metric"]["MetricName"] != "Invocations":
                continue
            a, b = lo + take_lo - q_lo, lo + take_hi - q_lo
            results.append({"Id": q["Id"], "Label": "Invocations", "StatusCode": "Complete",
                            "Timestamps": self.times[a:b], "Values": self.values[a:b]})
        out: dict[str, Any] = {"MetricDataResults": results, "Messages": []}
        if skip + budget < total:
            out["NextToken"] = str(skip + budget)
        return out


def stubbed(service: str, world: FleetWorld) -> tuple[Any, Stubber]:
    """A real boto3 client with a Stubber fed, request by request, from ``world``."""
    client = boto3.client(service, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    stub = Stubber(client)
    answer = getattr(world, service.replace("application-", ""))

    def feed(params: dict, model: Any, **_: Any) -> None:
        world.calls[f"{service}:{model.name}"] += 1
        stub.add_response(xform_name(model.name), answer(model.name, params))

    client.meta.events.register("provide-client-params", feed)
    stub.activate()
    return client, stub


def run(n: int) -> dict:
    os.environ.update({"FLEET_MODE": "tag", "LEDGER_TABLE_NAME": "ledger", "DRY_RUN": "false",
                       "POWERTOOLS_TRACE_DISABLED": "1", "POWERTOOLS_LOG_LEVEL": "WARNING",
                       "AWS_DEFAULT_REGION": "us-east-1"})
    from prescaler import fleet, service
    from prescaler.aws.autoscaling import AutoScaling
    from prescaler.aws.ledger import Ledger
    from prescaler.aws.sagemaker import SageMaker
    from prescaler.settings import load

    world = FleetWorld(n)
    clients = {s: stubbed(s, world)[0] for s in ("cloudwatch", "application-autoscaling", "sagemaker", "dynamodb")}
    ad = service.Adapters(clients["cloudwatch"], AutoScaling(clients["application-autoscaling"]),
                          SageMaker(clients["sagemaker"]), Ledger(clients["dynamodb"], "ledger"))
    fs = load(fleet.FleetSettings)

    def one_tick(now: pd.Timestamp) -> dict:
        world.calls.clear()
        world.first_pages.clear()
        emf = io.StringIO()
        started = time.perf_counter()
        with contextlib.redirect_stdout(emf):
            result = fleet.run_tick("prescale", service.prescale, fs, service.Tick(now, "bench", "event"), ad,
                                    remaining_ms=lambda: 900_000)
        seconds = time.perf_counter() - started
        blobs = [json.loads(line) for line in emf.getvalue().splitlines() if line.startswith('{"_aws"')]
        return {
            "seconds": round(seconds, 2),
            "calls": dict(sorted(world.calls.items())),
            "calls_total": sum(world.calls.values()),
            "get_metric_data_batches": dict(world.first_pages),
            "outcomes": result["outcomes"],
            "not_reached": len(result["not_reached"]),
            "emf_blobs_with_endpoint": sum("EndpointName" in b for b in blobs),
        }

    cold = one_tick(NOW)  # a cold process: discovery and 14 days of history for every endpoint
    raised = sum(v == 6 for v in world.min_capacity.values())
    warm = one_tick(NOW + pd.Timedelta(minutes=1))  # the next minute, same warm process
    return {"endpoints": n, "cold": cold, "warm": warm, "raised_to_6": raised}

if __name__ == "__main__":
    print(json.dumps(run(int(sys.argv[1]))))
