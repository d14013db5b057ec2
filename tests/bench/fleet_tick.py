"""One fleet tick over N endpoints against botocore Stubber-backed clients (no network): the
measured part of ``make bench``'s fleet target. Run as ``python tests/bench/fleet_tick.py N`` (its
peak memory is then the child process's); prints one JSON line with the tick's wall time, the AWS
calls it made per operation, and the outcomes.

The fan-out (prescaler/fanout.py):

- ``fleet_tick.py N --shard``: one worker's shard of N members (no discovery), cold then warm: what
  ``FLEET_SHARD_SIZE`` is derived from (per-member seconds);
- ``fleet_tick.py N --dispatch``: the dispatcher over N endpoints (cold discovery, then the shards
  sent with SendMessageBatch);
- ``--latency-ms L`` adds L ms to every AWS call (a model of the network, which the Stubber lacks);
- ``--discovery tagging-api`` discovers with the Resource Groups Tagging API's GetResources (100
  tagged endpoints a page) instead of one ListTags per endpoint (``FLEET_DISCOVERY``).

Every request goes through botocore's real parameter validation and every response through the
Stubber's validation against the real output shape: the responses are built per request (the
Stubber is fed on ``provide-client-params``) from a small model of N InService endpoints tagged
``prescaler:enabled = true``, each with 14 days of hourly spikes (one datapoint a minute; pages of
at most 100,800 datapoints, as GetMetricData returns).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
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
        self.shards_sent = 0
        self.latency_s = 0.0
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

    def resourcegroupstaggingapi(self, op: str, p: dict) -> dict:
        assert op == "GetResources", op
        start = int(p.get("PaginationToken") or 0)
        page = self.names[start:start + p.get("ResourcesPerPage", 100)]
        more = start + len(page) < len(self.names)
        return {"ResourceTagMappingList": [
            {"ResourceARN": f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:endpoint/{n}",
             "Tags": [{"Key": "prescaler:enabled", "Value": "true"}]} for n in page],
            "PaginationToken": str(start + len(page)) if more else ""}

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

    def sqs(self, op: str, p: dict) -> dict:
        if op != "SendMessageBatch":
            raise AssertionError(f"sqs {op} not modelled")
        self.shards_sent += len(p["Entries"])
        return {"Successful": [{"Id": e["Id"], "MessageId": f"m-{e['Id']}", "MD5OfMessageBody": "0" * 32}
                               for e in p["Entries"]], "Failed": []}

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
        if world.latency_s:
            time.sleep(world.latency_s)
        stub.add_response(xform_name(model.name), answer(model.name, params))

    client.meta.events.register("provide-client-params", feed)
    stub.activate()
    return client, stub


def run(n: int, mode: str = "tick", latency_ms: float = 0.0, discovery: str = "list-tags") -> dict:
    """``mode``: ``tick`` (one invocation over the whole fleet), ``shard`` (a worker's shard of ``n``)
    or ``dispatch`` (the dispatcher over ``n`` endpoints); ``discovery``: ``FLEET_DISCOVERY``."""
    os.environ.update({"FLEET_MODE": "tag", "FLEET_DISCOVERY": discovery, "LEDGER_TABLE_NAME": "ledger",
                       "DRY_RUN": "false",
                       "POWERTOOLS_TRACE_DISABLED": "1", "POWERTOOLS_LOG_LEVEL": "WARNING",
                       "AWS_DEFAULT_REGION": "us-east-1"})
    from prescaler import fleet, service
    from prescaler.aws.autoscaling import AutoScaling
    from prescaler.aws.ledger import Ledger
    from prescaler.aws.sagemaker import SageMaker
    from prescaler.settings import load

    world = FleetWorld(n)
    world.latency_s = latency_ms / 1000
    clients = {s: stubbed(s, world)[0] for s in ("cloudwatch", "application-autoscaling", "sagemaker", "dynamodb",
                                                  "sqs", "resourcegroupstaggingapi")}
    from prescaler.aws import clients as factory

    factory.client = clients.__getitem__  # type: ignore[assignment]  # discovery's GetResources client
    ad = service.Adapters(clients["cloudwatch"], AutoScaling(clients["application-autoscaling"]),
                          SageMaker(clients["sagemaker"]), Ledger(clients["dynamodb"], "ledger"))
    fs = load(fleet.FleetSettings)
    if mode == "dispatch":
        return dispatch(n, world, fs, ad, clients["sqs"], latency_ms)
    shard = [fleet.Member(name, "AllTraffic", {"prescaler:enabled": "true"}) for name in world.names]

    def one_tick(now: pd.Timestamp) -> dict:
        world.calls.clear()
        world.first_pages.clear()
        emf = io.StringIO()
        started, cpu = time.perf_counter(), time.process_time()
        with contextlib.redirect_stdout(emf):
            result = fleet.run_tick("prescale", service.prescale, fs, service.Tick(now, "bench", "event"), ad,
                                    remaining_ms=lambda: 900_000, members=shard if mode == "shard" else None)
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
        blobs = [json.loads(line) for line in emf.getvalue().splitlines() if line.startswith('{"_aws"')]
        return {
            "seconds": round(seconds, 2),
            "calls": dict(sorted(world.calls.items())),
            "calls_total": sum(world.calls.values()),
            "get_metric_data_batches": dict(world.first_pages),
            "outcomes": result["outcomes"],
            "not_reached": len(result["not_reached"]),
            "emf_blobs_with_endpoint": sum("EndpointName" in b for b in blobs),
            "ms_per_member": round(seconds * 1000 / n, 2),
            "cpu_ms_per_member": round(cpu_seconds * 1000 / n, 2),
        }

    cold = one_tick(NOW)  # a cold process: discovery and 14 days of history for every endpoint
    raised = sum(v == 6 for v in world.min_capacity.values())
    warm = one_tick(NOW + pd.Timedelta(minutes=1))  # the next minute, same warm process
    return {"endpoints": n, "mode": mode, "latency_ms": latency_ms, "cold": cold, "warm": warm, "raised_to_6": raised}


def dispatch(n: int, world: FleetWorld, fs: Any, ad: Any, sqs: Any, latency_ms: float) -> dict:
    """The dispatcher of a cold process over ``n`` tagged endpoints: discovery (ListEndpoints, then
    one ListTags each or GetResources' pages), then the ordered members sent as shards of ``FLEET_SHARD_SIZE``."""
    from prescaler import fanout, fleet, service

    tick = service.Tick(NOW, "bench", "event")
    started = time.perf_counter()
    members, refreshed = fleet.discover(ad.sagemaker.client, fs)
    discovered = time.perf_counter()
    out = fanout.dispatch("prescale", fs, tick, ad, sqs, "https://sqs.us-east-1.amazonaws.com/1/q", members,
                          refreshed, os.environ)
    done = time.perf_counter()
    return {"endpoints": n, "mode": "dispatch", "discovery": fs.fleet_discovery, "latency_ms": latency_ms,
            "shard_size": fs.fleet_shard_size,
            "shards": out["dispatched"]["shards"], "shards_sent": world.shards_sent,
            "send_message_batch_calls": world.calls["sqs:SendMessageBatch"],
            "discovery_seconds": round(discovered - started, 2), "send_seconds": round(done - discovered, 2),
            "seconds": round(done - started, 2), "calls": dict(sorted(world.calls.items()))}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("n", type=int, help="endpoints")
    parser.add_argument("--shard", action="store_true", help="a worker's shard of n members (no discovery)")
    parser.add_argument("--dispatch", action="store_true", help="the dispatcher over n endpoints")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="added to every AWS call (network model)")
    parser.add_argument("--discovery", choices=["list-tags", "tagging-api"], default="list-tags",
                        help="FLEET_DISCOVERY: one ListTags per endpoint, or GetResources (100 a page)")
    args = parser.parse_args()
    print(json.dumps(run(args.n, "shard" if args.shard else "dispatch" if args.dispatch else "tick", args.latency_ms,
                         args.discovery)))
