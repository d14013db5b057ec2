"""The project's functions, built by ``sam build`` and run by ``sam local invoke`` in the stand-in
Lambda image, each with its sample events from events/, against a seeded moto container.

Outcomes are asserted in moto (MinCapacity of the scalable target, the ledger item, the published
GPU metric), not only the exit code.

The moto state is built from the template's parameter defaults and events/env.json, so the two
cannot drift from what the stack deploys.
"""

from __future__ import annotations

import importlib.util
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from . import infra
from .seed import Seeded, client, seed

pytestmark = pytest.mark.e2e

EVENTS = infra.ROOT / "events"


def _template_values() -> Any:
    """tests/integration/template_values.py: the template's parameter defaults (one reader for both)."""
    path = infra.ROOT / "tests" / "integration" / "template_values.py"
    spec = importlib.util.spec_from_file_location("prescaler_template_values", path)
    assert spec and spec.loader, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TV = _template_values()
BASELINE_MIN = int(TV.default("BaselineMinCapacity"))
PRESCALE_MAX = int(TV.default("PrescaleMaxCapacity"))
SEED_DAYS = 3


def _event_time(name: str) -> datetime:
    return datetime.fromisoformat(json.loads((EVENTS / name).read_text())["time"].replace("Z", "+00:00"))


def _env_vars(moto: infra.Moto, dry_run: bool) -> dict[str, dict[str, str]]:
    """events/env.json with AWS_ENDPOINT_URL pointed at the moto container."""
    doc: dict[str, dict[str, str]] = json.loads((EVENTS / "env.json").read_text())
    doc["Parameters"]["AWS_ENDPOINT_URL"] = moto.url_in_network
    # moto's GetMetricData slows with the window (a 14-day per-minute query: ~20 s against 3 s for
    # 3 days), so read only the days the seed wrote; the template declares HISTORY_DAYS for this.
    doc["Parameters"]["HISTORY_DAYS"] = str(SEED_DAYS)
    for section in ("PrescaleFunction", "RelaxFunction"):
        doc.setdefault(section, {})["DRY_RUN"] = "true" if dry_run else "false"
    return doc


def _seed(moto: infra.Moto, now: datetime) -> Seeded:
    params = json.loads((EVENTS / "env.json").read_text())["Parameters"]
    return seed(
        moto.url,
        endpoint_name=params["ENDPOINT_NAME"],
        ledger_table=params["LEDGER_TABLE_NAME"],
        now=now,
        days=SEED_DAYS,
        min_capacity=BASELINE_MIN,
        max_capacity=int(TV.default("MaxCapacity")),
        target_invocations_per_instance_per_minute=float(TV.default("TargetInvocationsPerInstance")),
        scale_out_cooldown_s=int(TV.default("ScaleOutCooldown")),
        scale_in_cooldown_s=int(TV.default("ScaleInCooldown")),
    )


def _min_capacity(moto: infra.Moto, seeded: Seeded) -> int:
    targets = client("application-autoscaling", moto.url).describe_scalable_targets(
        ServiceNamespace="sagemaker", ResourceIds=[seeded.resource_id]
    )["ScalableTargets"]
    return int(targets[0]["MinCapacity"])


def _ledger(moto: infra.Moto, seeded: Seeded) -> dict[str, Any]:
    resp = client("dynamodb", moto.url).get_item(
        TableName=seeded.ledger_table, Key={seeded.ledger_key: {"S": seeded.resource_id}}, ConsistentRead=True
    )
    return resp.get("Item", {})


def _invoke(
    built: Path, function: str, event: str, images: infra.Images, moto: infra.Moto, work: Path, dry_run: bool
) -> infra.Invocation:
    result = infra.sam_local_invoke(
        built,
        function,
        image=images.lambda_python311,
        event=EVENTS / event,
        env_vars=_env_vars(moto, dry_run),
        work_dir=work,
    )
    assert result.returncode == 0 and not result.function_error, (
        f"{function} with {event}: {result.response}\n{result.stderr[-3000:]}"
    )
    assert isinstance(result.response, dict), result.stdout[-2000:]
    return result


def test_prescale_raises_before_the_spike_and_relax_lowers_after_it(
    moto: infra.Moto, e2e_images: infra.Images, project_build: Path, sam_work_dir: Path
) -> None:
    # Given 3 days of hourly spikes up to the relax tick, and the target at its baseline
    seeded = _seed(moto, _event_time("relax_scheduled.json") + timedelta(minutes=1))
    assert _min_capacity(moto, seeded) == BASELINE_MIN

    # When the pre-scaler ticks at 09:55, five minutes before the 10:00 spike
    raised = _invoke(
        project_build, "PrescaleFunction", "prescale_scheduled.json", e2e_images, moto, sam_work_dir, dry_run=False
    ).response

    # Then MinCapacity is raised in moto, within the pre-scaler's cap, and the ledger records it
    new_min = _min_capacity(moto, seeded)
    assert BASELINE_MIN < new_min <= PRESCALE_MAX, raised
    assert raised["action"] == "raise" and raised["new_min_capacity"] == new_min
    entry = _ledger(moto, seeded)
    assert entry["last_action"] == {"S": "raise"}
    assert int(entry["last_raise"]["M"]["min_capacity"]["N"]) == new_min

    # When the relaxer ticks at 10:20, after the spike
    relaxed = _invoke(
        project_build, "RelaxFunction", "relax_scheduled.json", e2e_images, moto, sam_work_dir, dry_run=False
    ).response

    # Then MinCapacity is back at the baseline in moto and the ledger says so
    assert _min_capacity(moto, seeded) == BASELINE_MIN, relaxed
    assert relaxed["action"] == "relax"
    entry = _ledger(moto, seeded)
    assert entry["last_action"] == {"S": "relax"}
    assert int(entry["last_relax"]["M"]["min_capacity"]["N"]) == BASELINE_MIN


def test_gpu_metric_publishes_utilisation_per_gpu(
    moto: infra.Moto, e2e_images: infra.Images, project_build: Path, sam_work_dir: Path
) -> None:
    # Given GPUUtilization history up to now (PutMetricData refuses datapoints older than 14 days, so
    # the sample event's 2024 time would publish nothing: it is replayed at the current time)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    seeded = _seed(moto, now + timedelta(minutes=1))
    live = sam_work_dir / "gpu_metric_now.json"
    live.write_text(json.dumps({**json.loads((EVENTS / "gpu_metric_scheduled.json").read_text()),
                                "time": now.isoformat(), "prescaler-replay": True}))

    # When the GPU metric function ticks
    response = _invoke(
        project_build, "GpuMetricFunction", str(live), e2e_images, moto, sam_work_dir, dry_run=True
    ).response

    # Then the per-GPU figure is in moto's CloudWatch under the project's namespace and metric name
    assert response["outcome"] == "applied", response
    at = datetime.fromisoformat(response["timestamp"])
    points = client("cloudwatch", moto.url).get_metric_statistics(
        Namespace=response["namespace"],
        MetricName=response["metric_name"],
        Dimensions=[
            {"Name": "EndpointName", "Value": seeded.endpoint_name},
            {"Name": "VariantName", "Value": seeded.variant_name},
        ],
        StartTime=at - timedelta(minutes=1),
        EndTime=at + timedelta(minutes=1),
        Period=60,
        Statistics=["Average"],
    )["Datapoints"]
    assert [p["Average"] for p in points] == [pytest.approx(response["gpu_utilization_per_gpu"])], points
    assert 0 < response["gpu_utilization_per_gpu"] <= 100


@pytest.mark.parametrize("function", ["PrescaleFunction", "RelaxFunction", "GpuMetricFunction"])
def test_empty_scheduler_input_runs_on_the_current_time(
    function: str, moto: infra.Moto, e2e_images: infra.Images, project_build: Path, sam_work_dir: Path
) -> None:
    # Given history up to now and the dry-run settings of events/env.json
    now = datetime.now(UTC)
    seeded = _seed(moto, now)

    # When the function gets EventBridge Scheduler's empty input
    response = _invoke(
        project_build, function, "scheduler_empty.json", e2e_images, moto, sam_work_dir, dry_run=True
    ).response

    # Then it decides on the current time and, dry run, leaves MinCapacity where it was
    decided_at = datetime.fromisoformat(response["now"])
    assert abs(decided_at - now) < timedelta(minutes=5), response
    assert _min_capacity(moto, seeded) == BASELINE_MIN, response


def test_dry_run_changes_nothing_but_logs_and_publishes_the_decision(
    moto: infra.Moto, e2e_images: infra.Images, project_build: Path, sam_work_dir: Path
) -> None:
    # Given history up to the pre-scale tick, five minutes before a spike
    seeded = _seed(moto, _event_time("prescale_scheduled.json") + timedelta(minutes=1))

    # When the pre-scaler ticks with DryRun on (events/env.json's setting)
    run = _invoke(
        project_build, "PrescaleFunction", "prescale_scheduled.json", e2e_images, moto, sam_work_dir, dry_run=True
    )

    # Then it decides to raise and says so, but nothing changes in moto: MinCapacity, ledger
    assert (run.response["action"], run.response["outcome"]) == ("raise", "dry_run"), run.response
    assert run.response["proposed_min_capacity"] > BASELINE_MIN
    assert _min_capacity(moto, seeded) == BASELINE_MIN
    # (the ledger holds only the hourly DryRun preflight's verdict: no raise, no ownership)
    entry = _ledger(moto, seeded)
    assert not {"version", "owned_min_capacity", "last_raise"} & set(entry), entry
    assert run.response["can_apply"] is True and entry["preflight_prescale_can_apply"] == {"BOOL": True}
    # and the decision is logged and published as EMF metrics in the function's log stream
    assert "ForecastPeakInvocationsPerMinute" in run.stderr and "DesiredMinCapacity" in run.stderr
    assert '"_aws"' in run.stderr  # the Embedded Metric Format envelope CloudWatch turns into metrics


def test_a_bad_event_or_a_missing_endpoint_is_a_clean_error_and_changes_nothing(
    moto: infra.Moto, e2e_images: infra.Images, project_build: Path, sam_work_dir: Path
) -> None:
    # Given a live (not dry-run) pre-scaler and history up to the pre-scale tick
    seeded = _seed(moto, _event_time("prescale_scheduled.json") + timedelta(minutes=1))
    env = _env_vars(moto, dry_run=False)

    # When it gets an event whose time cannot be read
    bad_event = sam_work_dir / "bad_event.json"
    bad_event.write_text(json.dumps({"time": "yesterday-ish", "detail-type": "Scheduled Event"}))
    bad = infra.sam_local_invoke(project_build, "PrescaleFunction", image=e2e_images.lambda_python311,
                                 event=bad_event, env_vars=env, work_dir=sam_work_dir)
    # Then the invocation FAILS, so the platform sees it (Errors metric and alarm, failure queue;
    # issue 8 section 3), with Lambda's error naming the field ...
    assert bad.function_error, bad.response
    assert bad.response["errorType"] == "InvalidEvent" and "'time'" in bad.response["errorMessage"], bad.response
    # ... and our own log says it in one clear line (the stack trace is Lambda's report of the failure)
    ours = [json.loads(line[line.index('{"level"'):]) for line in bad.stderr.splitlines() if '{"level"' in line]
    errors = [entry for entry in ours if entry.get("level") == "ERROR"]
    assert [e.get("outcome") for e in errors] == ["invalid_event"], bad.stderr[-3000:]

    # When it is pointed at an endpoint that does not exist
    env["Parameters"]["ENDPOINT_NAME"] = "no-such-endpoint"
    missing = infra.sam_local_invoke(project_build, "PrescaleFunction", image=e2e_images.lambda_python311,
                                     event=EVENTS / "prescale_scheduled.json", env_vars=env, work_dir=sam_work_dir)
    # Then it holds and says what is missing
    assert missing.returncode == 0 and not missing.function_error, missing.response
    assert missing.response["action"] == "hold", missing.response
    assert missing.response["outcome"] in ("target_missing", "endpoint_missing"), missing.response

    # And nothing changed for the real endpoint
    assert _min_capacity(moto, seeded) == BASELINE_MIN
    assert _ledger(moto, seeded) == {}


def _seed_tagged(moto: infra.Moto, tags: dict[str, str]) -> Seeded:
    """The seed with history up to the relax tick, its endpoint carrying ``tags``."""
    seeded = _seed(moto, _event_time("relax_scheduled.json") + timedelta(minutes=1))
    sm = client("sagemaker", moto.url)
    arn = sm.describe_endpoint(EndpointName=seeded.endpoint_name)["EndpointArn"]
    sm.add_tags(ResourceArn=arn, Tags=[{"Key": k, "Value": v} for k, v in tags.items()])
    return seeded


def test_the_fleet_tick_runs_in_the_container_with_each_endpoints_tags(
    moto: infra.Moto, e2e_images: infra.Images, project_build: Path, sam_work_dir: Path
) -> None:
    # Given the seeded endpoint tagged into the fleet with its own prescale cap (4, the stack's is 8)
    seeded = _seed_tagged(moto, {"prescaler:enabled": "true", "prescaler:prescale-cap": "4"})
    env = _env_vars(moto, dry_run=False)
    env["PrescaleFunction"].update(FLEET_MODE="tag")

    # When the pre-scaler's fleet tick runs in the Lambda container before the spike
    result = infra.sam_local_invoke(project_build, "PrescaleFunction", image=e2e_images.lambda_python311,
                                    event=EVENTS / "prescale_scheduled.json", env_vars=env, work_dir=sam_work_dir)
    assert result.returncode == 0 and not result.function_error, result.stderr[-3000:]
    fleet = result.response
    # Then the tagged endpoint is the fleet's one member, raised to its own cap in moto
    assert isinstance(fleet, dict) and fleet["members"] == 1, fleet
    (member,) = fleet["results"]
    assert (member["endpoint_name"], member["outcome"], member["new_min_capacity"]) == (
        seeded.endpoint_name, "applied", 4), member
    assert _min_capacity(moto, seeded) == 4
    assert fleet["not_reached"] == [] and fleet["outcomes"] == {"applied": 1}


def test_a_fleet_over_the_shard_size_fans_out_on_sqs_and_the_container_runs_each_shard(
    moto: infra.Moto, e2e_images: infra.Images, project_build: Path, sam_work_dir: Path
) -> None:
    # Given a two-member fleet (the seeded endpoint with its own cap, and a listed endpoint that does
    # not exist) over FLEET_SHARD_SIZE=1, and the shard queue in moto
    seeded = _seed_tagged(moto, {"prescaler:prescale-cap": "4"})
    sqs = client("sqs", moto.url)
    url = sqs.create_queue(QueueName="prescale-shards", Attributes={"VisibilityTimeout": "360"})["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    env = _env_vars(moto, dry_run=False)
    env["PrescaleFunction"].update(FLEET_MODE="list", FLEET_ENDPOINTS=f"{seeded.endpoint_name}, no-such-endpoint",
                                   FLEET_SHARD_SIZE="1", FLEET_SHARD_QUEUE_URL=url)

    # When the scheduled pre-scaler tick runs in the Lambda container
    result = infra.sam_local_invoke(project_build, "PrescaleFunction", image=e2e_images.lambda_python311,
                                    event=EVENTS / "prescale_scheduled.json", env_vars=env, work_dir=sam_work_dir)
    assert result.returncode == 0 and not result.function_error, result.stderr[-3000:]
    # Then it sent two shards and ticked nothing itself
    assert isinstance(result.response, dict) and result.response["dispatched"]["shards"] == 2, result.response
    assert _min_capacity(moto, seeded) == BASELINE_MIN
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"])["Messages"]
    assert len(messages) == 2

    # When the container gets the shards as the SQS event source mapping delivers them
    shard_event = sam_work_dir / "shard-event.json"
    shard_event.write_text(json.dumps({"Records": [{
        "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
        "attributes": {k: m["Attributes"][k] for k in ("ApproximateReceiveCount", "SentTimestamp", "SenderId",
                                                       "ApproximateFirstReceiveTimestamp")},
        "messageAttributes": {}, "md5OfBody": m["MD5OfBody"], "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn, "awsRegion": "us-east-1"} for m in messages]}))
    worker = infra.sam_local_invoke(project_build, "PrescaleFunction", image=e2e_images.lambda_python311,
                                    event=shard_event, env_vars=env, work_dir=sam_work_dir)
    assert worker.returncode == 0 and not worker.function_error, worker.stderr[-3000:]
    # Then no shard failed, and the real endpoint was raised to its own cap in moto
    assert worker.response == {"batchItemFailures": []}, worker.response
    assert _min_capacity(moto, seeded) == 4
