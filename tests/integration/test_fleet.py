"""The fleet tick (issue 11 §1, §2, §4) through the real handlers against moto: 20 members with
mixed tags, one bad tag, one deleted endpoint, one without a scalable target, one throttled and one
inference component, through a raise and a relax, every member's outcome checked. moto has no
inference components: ``awsworld.InferenceComponents`` answers their calls in the real wire format.
Given/When/Then."""

from __future__ import annotations

import re
from typing import Any

import pandas as pd
import pytest
from awsworld import TABLE, VARIANT, World, build_world, emf, hourly_spikes, load_handler
from prescaler import fleet
from prescaler.aws import clients
from prescaler.history import complete_end
from template_values import dashboard, event, function_env

pytestmark = pytest.mark.integration

HANDLERS = {name: load_handler(name) for name in ("prescale", "relax")}
PRESCALE_TIME = pd.Timestamp(event("prescale_scheduled.json")["time"])  # 09:55, spike at 10:00
RELAX_TIME = pd.Timestamp(event("relax_scheduled.json")["time"])  # 10:20
DIMENSION = "sagemaker:variant:DesiredInstanceCount"

#: name -> the endpoint's tags (beyond prescaler:enabled=true); None: not tagged at all
PLAIN = {f"fleet-{i:02d}": {} for i in range(11)}
FLEET: dict[str, dict[str, str] | None] = {
    **PLAIN,
    "fleet-baseline-1": {"prescaler:baseline": "1", "prescaler:prescale-cap": "4"},  # capped at 4
    "fleet-headroom": {"prescaler:headroom": "0.25"},  # 13200 x 1.25 / 2400 -> 7
    "fleet-dry-run": {"prescaler:dry-run": "true"},
    "fleet-big-target": {"prescaler:target-per-instance": "4800"},  # 13200 / 4800 -> 3
    "fleet-bad-tag": {"prescaler:headroom": "lots"},
    "fleet-deleted": {},
    "fleet-no-target": {},
    "fleet-throttled": {},
    "not-in-fleet": None,
}
#: the inference component member, hosted on the untagged endpoint: tagged with its own baseline 0
#: (scale to zero, allowed for a component only) and target (13,200/min at 2,200 per copy -> 6 copies)
COMPONENT = "fleet-llm-copies"
COMPONENT_TAGS = {"prescaler:enabled": "true", "prescaler:baseline": "0", "prescaler:target-per-instance": "2200"}


class _Http:
    status_code = 400
    headers: dict = {}  # noqa: RUF012


class _Ok(_Http):
    status_code = 200


#: every GetMetricData request served (StartTime, EndTime, NextToken)
REQUESTS: list[dict] = []
#: endpoint name -> the per-minute Invocations GetMetricData answers from
SERVED: dict[str, pd.Series] = {}
#: GetMetricData returns at most 100,800 datapoints per response (CloudWatch API reference).
MAX_DATAPOINTS_PER_PAGE = 100_800


def serve_invocations(cw: Any, history: dict[str, pd.Series]) -> None:
    """Answer GetMetricData from ``history`` (endpoint name -> per-minute Sum) in the real response
    shape, paged at 100,800 datapoints with NextToken. moto's GetMetricData scans every stored
    datapoint for every period of every query (20 endpoints x 2 days: minutes per tick), so the
    fleet's reads are served here; the reader itself is tested against moto in test_cloudwatch.py."""
    seen: dict[str, Any] = {}

    def capture(params: dict, **_: Any) -> None:
        seen.clear()
        seen.update(params)
        REQUESTS.append({k: params.get(k) for k in ("StartTime", "EndTime", "NextToken")})

    def answer(**_: Any) -> Any:
        start = pd.Timestamp(seen["StartTime"]).tz_convert("UTC") if pd.Timestamp(seen["StartTime"]).tzinfo else \
            pd.Timestamp(seen["StartTime"], tz="UTC")
        end = pd.Timestamp(seen["EndTime"]).tz_convert("UTC") if pd.Timestamp(seen["EndTime"]).tzinfo else \
            pd.Timestamp(seen["EndTime"], tz="UTC")
        skip = int(seen.get("NextToken") or 0)
        results, budget, used = [], MAX_DATAPOINTS_PER_PAGE, 0
        points = []
        for q in seen["MetricDataQueries"]:
            if q["MetricStat"]["Metric"]["MetricName"] != "Invocations":
                continue  # no instance metrics (heartbeat) in this world
            dims = {d["Name"]: d["Value"] for d in q["MetricStat"]["Metric"]["Dimensions"]}
            if set(dims) == {"InferenceComponentName"}:  # a component: its own dimension only
                series = history.get(dims["InferenceComponentName"])
            else:
                series = history.get(dims.get("EndpointName", "")) if dims.get("VariantName") == VARIANT else None
            if series is None:
                continue
            window = series[(series.index >= start) & (series.index < end) & (series > 0)]
            points.extend((q["Id"], t, v) for t, v in window.items())
        page = points[skip:skip + budget]
        used = skip + len(page)
        by_id: dict[str, dict] = {}
        for qid, t, v in page:
            r = by_id.setdefault(qid, {"Id": qid, "Label": "Invocations", "Timestamps": [], "Values": [],
                                       "StatusCode": "Complete"})
            r["Timestamps"].append(t.to_pydatetime())
            r["Values"].append(float(v))
        results = list(by_id.values())
        out = {"MetricDataResults": results, "Messages": [], "ResponseMetadata": {"HTTPStatusCode": 200}}
        if used < len(points):
            out["NextToken"] = str(used)
        return _Ok(), out

    cw.meta.events.register("before-parameter-build.cloudwatch.GetMetricData", capture)
    cw.meta.events.register("before-call.cloudwatch.GetMetricData", answer)


def _throttle(name: str) -> Any:
    """A before-call hook answering DescribeEndpoint for ``name`` with ThrottlingException (the
    real error shape; botocore raises ClientError from it), every other call untouched."""

    def hook(params: dict, **_: Any) -> Any:
        if name.encode() in params.get("body", b""):
            return _Http(), {"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"},
                             "ResponseMetadata": {"HTTPStatusCode": 400}}
        return None

    return hook


def rid(name: str) -> str:
    return f"endpoint/{name}/variant/{VARIANT}"


def member_rid(result: dict) -> str:
    """The scalable target a member's result is about."""
    if result.get("inference_component_name"):
        return f"inference-component/{result['inference_component_name']}"
    return rid(result["endpoint_name"])


def build_fleet(world: World, end: pd.Timestamp) -> None:
    sm, aas = world.sagemaker, world.autoscaling
    history = hourly_spikes(end.floor("min"))
    served: dict[str, pd.Series] = {}
    for name, tags in FLEET.items():
        sm.create_endpoint_config(EndpointConfigName=f"{name}-config", ProductionVariants=[{
            "VariantName": VARIANT, "ModelName": "tagger", "InitialInstanceCount": 2,
            "InstanceType": "ml.g4dn.xlarge"}])
        all_tags = None if tags is None else {"prescaler:enabled": "true", **tags}
        sm.create_endpoint(EndpointName=name, EndpointConfigName=f"{name}-config",
                           Tags=[{"Key": k, "Value": v} for k, v in (all_tags or {}).items()])
        if name != "fleet-no-target":
            aas.register_scalable_target(ServiceNamespace="sagemaker", ScalableDimension=DIMENSION,
                                         ResourceId=rid(name), MinCapacity=1 if name == "fleet-baseline-1" else 2,
                                         MaxCapacity=8)
        served[name] = history.copy()
    # the component: 2 copies running, its target at MinCapacity 0 (scaled to zero allowed), 6 at most
    world.components.add(COMPONENT, "not-in-fleet", copies=2, tags=COMPONENT_TAGS, min_capacity=0, max_capacity=8)
    world.components.add("untagged-copies", "not-in-fleet", copies=1, tags={}, min_capacity=1)  # not a member
    served[COMPONENT] = history.copy()
    SERVED.clear()
    SERVED.update(served)
    serve_invocations(world.cloudwatch, SERVED)
    sm.meta.events.register("before-call.sagemaker.DescribeEndpoint", _throttle("fleet-throttled"))


def min_capacity(world: World, name: str) -> int:
    return world.autoscaling.describe_scalable_targets(ServiceNamespace="sagemaker", ResourceIds=[rid(name)])[
        "ScalableTargets"][0]["MinCapacity"]


def ledger(world: World, name: str, component: bool = False) -> dict:
    key = f"inference-component/{name}" if component else rid(name)
    return world.dynamodb.get_item(TableName=TABLE, Key={"scalable_target": {"S": key}}).get("Item", {})


@pytest.fixture
def fleet_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = function_env("PrescaleFunction", LEDGER_TABLE_NAME=TABLE, AWS_ENDPOINT_URL="", HISTORY_DAYS="2",
                       DRY_RUN="false")
    env.update(FLEET_MODE="tag", FLEET_DISCOVERY_TTL_SECONDS="0", DRY_RUN="false", HISTORY_DAYS="2")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    fleet.clear_cache()
    return env


def by_endpoint(result: dict) -> dict[str, dict]:
    """Each member's result by endpoint name (a component's by its own name)."""
    return {r.get("inference_component_name") or r["endpoint_name"]: r for r in result["results"]}


def fleet_searches() -> list[tuple[frozenset[str], set[str]]]:
    """(dimension schema, metric names) of every SEARCH in the dashboard's fleet widgets."""
    board = dashboard({"EndpointName": "e", "VariantName": VARIANT, "InferenceComponentName": "",
                       "MetricsNamespace": "SageMakerPrescaler", "AWS::Region": "us-east-1"})
    out = []
    for w in board["widgets"]:
        for row in w["properties"]["metrics"]:
            if isinstance(row[0], dict):
                schema = re.search(r"SEARCH\('\{([^}]*)\}", row[0]["expression"]).group(1).split(",")
                out.append((frozenset(schema[1:]), set(re.findall(r'"(\w+)"', row[0]["expression"]))))
    return out


def test_a_fleet_of_20_through_raise_and_relax_every_endpoint_gets_its_outcome(
        aws: None, fleet_env: dict, lambda_context: Any, capsys: pytest.CaptureFixture[str]) -> None:
    # Given 20 tagged endpoints with hourly spikes of 13,200/min and one untagged endpoint
    world = build_world()
    clients.client("sagemaker").delete_endpoint(EndpointName="catalogue-tagger")  # the single-stack one
    build_fleet(world, RELAX_TIME)
    # When the pre-scaler ticks five minutes before the spike
    raised = HANDLERS["prescale"].lambda_handler(event("prescale_scheduled.json"), lambda_context)
    # Then every member has its own outcome, and the untagged endpoint and component are not members
    out = by_endpoint(raised)
    assert raised["members"] == 20 and "not-in-fleet" not in out and len(out) == 20
    assert "untagged-copies" not in out
    for name in PLAIN:
        assert (out[name]["outcome"], out[name]["new_min_capacity"], min_capacity(world, name)) == ("applied", 6, 6)
    assert (out["fleet-baseline-1"]["old_min_capacity"], min_capacity(world, "fleet-baseline-1")) == (1, 4)
    assert min_capacity(world, "fleet-headroom") == 7
    assert min_capacity(world, "fleet-big-target") == 3
    assert out["fleet-dry-run"]["outcome"] == "dry_run" and min_capacity(world, "fleet-dry-run") == 2
    assert out["fleet-bad-tag"]["outcome"] == "invalid_settings"
    assert "tag prescaler:headroom='lots'" in out["fleet-bad-tag"]["reason"]
    assert min_capacity(world, "fleet-bad-tag") == 2
    assert out["fleet-no-target"]["outcome"] == "target_missing"
    assert out["fleet-throttled"]["outcome"] == "throttled" and min_capacity(world, "fleet-throttled") == 2
    # the component: its copy count's MinCapacity raised from 0 to 6 (13,200 / 2,200 per copy)
    llm = out[COMPONENT]
    assert (llm["outcome"], llm["old_min_capacity"], llm["new_min_capacity"]) == ("applied", 0, 6), llm
    assert (llm["endpoint_name"], llm["variant_name"]) == ("not-in-fleet", VARIANT)
    assert world.components.components[COMPONENT].min_capacity == 6
    assert ledger(world, COMPONENT, component=True)["owned_min_capacity"] == {"N": "6"}
    assert raised["outcomes"] == {"applied": 16, "dry_run": 1, "invalid_settings": 1, "target_missing": 1,
                                  "throttled": 1}
    assert raised["not_reached"] == []
    assert ledger(world, "fleet-deleted")["owned_min_capacity"] == {"N": "6"}
    # and each member's metrics are their own EMF blob with its dimensions, the totals in one more
    blobs = emf(capsys)
    dims = {(b.get("EndpointName"), b.get("VariantName")) for b in blobs if "EndpointName" in b}
    assert {(name, VARIANT) for name in FLEET if name != "not-in-fleet"} <= dims
    bad = [b for b in blobs if b.get("EndpointName") == "fleet-bad-tag"]
    assert bad and bad[0]["InvalidSettings"] == [1.0]
    totals = [b for b in blobs if "FleetMembers" in b]
    assert totals and totals[0]["FleetMembers"] == [20.0] and totals[0]["FleetInvalidSettings"] == [1.0]
    assert totals[0]["FleetThrottled"] == [1.0] and "EndpointName" not in totals[0]
    # the component's blob carries its own dimension, and the dashboard's fleet SEARCHes find its metrics
    (llm_blob,) = [b for b in blobs if b.get("InferenceComponentName") == COMPONENT]
    (directive,) = llm_blob["_aws"]["CloudWatchMetrics"]
    schema = frozenset(directive["Dimensions"][0])
    assert schema == {"EndpointName", "VariantName", "InferenceComponentName"}
    searched = {name for dims, names in fleet_searches() if dims == schema for name in names}
    emitted = {m["Name"] for m in directive["Metrics"]}
    assert {"ActionRaise", "ForecastPeakInvocationsPerMinute", "ObservedInvocationsPerMinute"} <= searched & emitted

    # Given one raised endpoint is deleted after the raise
    world.sagemaker.delete_endpoint(EndpointName="fleet-deleted")
    # When the relaxer ticks after the spike
    relaxed = HANDLERS["relax"].lambda_handler(event("relax_scheduled.json"), lambda_context)
    out = by_endpoint(relaxed)
    # Then every raise is relaxed back to its baseline, the deleted endpoint left the fleet with its
    # ledger entry closed and its MinCapacity back at the baseline (nothing left raised)
    assert relaxed["members"] == 19 and "fleet-deleted" not in out
    for name in PLAIN:
        assert (out[name]["action"], min_capacity(world, name)) == ("relax", 2), out[name]
    assert min_capacity(world, "fleet-baseline-1") == 1  # its own baseline tag, not the stack's 2
    assert [r["resource_id"] for r in relaxed["released"]] == [rid("fleet-deleted")]
    assert relaxed["released"][0]["outcome"] == "released"
    assert min_capacity(world, "fleet-deleted") == 2
    item = ledger(world, "fleet-deleted")
    assert "owned_min_capacity" not in item and item["last_action"] == {"S": "release"}
    assert out["fleet-bad-tag"]["outcome"] == "invalid_settings"
    assert out["fleet-throttled"]["outcome"] == "throttled"
    # and the component's MinCapacity and copies come down from 6 to what the forecast base of
    # 2,400/min needs at 2,200 per copy (2): its tagged baseline 0 allows zero, but never while
    # traffic is forecast (scale to zero only when the history says it stops)
    llm = out[COMPONENT]
    assert (llm["action"], llm["old_min_capacity"], llm["new_min_capacity"]) == ("relax", 6, 2), llm
    assert llm["prompt_scale_in"] == "applied" and llm["scale_in"] == "pending"
    assert world.components.components[COMPONENT].min_capacity == 2
    assert world.components.copy_updates == [(COMPONENT, 2)]
    assert ledger(world, COMPONENT, component=True)["owned_min_capacity"] == {"N": "2"}


def test_an_explicit_list_wins_over_tags_and_a_listed_endpoint_that_does_not_exist_is_its_own_outcome(
        aws: None, fleet_env: dict, lambda_context: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the tagged fleet, and FLEET_ENDPOINTS naming one tagged, one untagged and one missing endpoint
    world = build_world()
    build_fleet(world, RELAX_TIME)
    monkeypatch.setenv("FLEET_ENDPOINTS", "fleet-headroom, not-in-fleet, no-such-endpoint")
    # When the pre-scaler ticks
    result = HANDLERS["prescale"].lambda_handler(event("prescale_scheduled.json"), lambda_context)
    out = by_endpoint(result)
    # Then exactly the listed three are members; tags still give the listed endpoint its settings
    assert set(out) == {"fleet-headroom", "not-in-fleet", "no-such-endpoint"}
    assert min_capacity(world, "fleet-headroom") == 7 and min_capacity(world, "not-in-fleet") == 6
    assert out["no-such-endpoint"]["outcome"] == "target_missing"
    assert min_capacity(world, "fleet-00") == 2  # tagged but not listed: left alone


def test_members_not_reached_in_the_time_budget_are_reported_and_taken_first_next_tick(
        aws: None, fleet_env: dict, lambda_context: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a fleet and a Lambda context whose remaining time runs out after three members
    world = build_world()
    build_fleet(world, RELAX_TIME)
    monkeypatch.setenv("FLEET_RESERVE_SECONDS", "10")
    calls = {"n": 0}

    class Ctx(type(lambda_context)):  # type: ignore[misc]
        def get_remaining_time_in_millis(self) -> int:
            calls["n"] += 1
            return 60_000 if calls["n"] <= 3 else 9_000

    # When the pre-scaler ticks
    first = HANDLERS["prescale"].lambda_handler(event("prescale_scheduled.json"), Ctx())
    # Then three members are done, the rest reported as not reached and counted
    done = [r["endpoint_name"] for r in first["results"] if r["outcome"] != "invalid_settings"]
    assert len(done) == 3
    assert len(first["not_reached"]) == 20 - 1 - 3 and first["outcomes"]["not_reached"] == 16
    # When the next tick has time for three again
    calls["n"] = 0
    second = HANDLERS["prescale"].lambda_handler(event("prescale_scheduled.json"), Ctx())
    # Then it starts with the ones the first tick did not reach, in their order
    reached = [r for r in second["results"] if r["outcome"] != "invalid_settings"]
    assert [member_rid(r) for r in reached] == first["not_reached"][:3]


def test_a_warm_tick_reads_only_the_recent_minutes_and_gets_the_same_history_as_a_full_read(
        aws: None, fleet_env: dict) -> None:
    # Given the fleet's histories read at 09:40 (a cold read of the whole window)
    from prescaler import service


    world = build_world()
    build_fleet(world, RELAX_TIME)
    ad = service.Adapters.default(TABLE)
    settings = [fleet.member_settings(fleet.Member(n, VARIANT), fleet_env) for n in PLAIN]
    first = pd.Timestamp("2024-05-15T09:40:00Z")
    fleet._histories(ad, settings, service.Tick(first, None, "event"))
    # and a datapoint published late, 10 minutes before the next tick, changed meanwhile
    late = pd.Timestamp("2024-05-15T09:45:00Z")
    for name in PLAIN:
        SERVED[name].loc[late] = 999.0
    # When the next tick (09:55) reads in the same warm process
    REQUESTS.clear()
    tick = service.Tick(PRESCALE_TIME, None, "event")
    warm = fleet._histories(ad, settings, tick)
    starts = {pd.Timestamp(r["StartTime"]) for r in REQUESTS}
    # Then it asked only for the recent minutes (plus the late-data overlap), never the whole window
    assert min(starts) == complete_end(first) - fleet.LATE_DATA, starts  # 09:23, not two days back
    # and each history equals what a cold, full read gives now, the late datapoint included
    fleet.clear_cache()
    cold = fleet._histories(ad, settings, tick)
    assert set(warm) == set(cold) == {(n, VARIANT) for n in PLAIN}
    for pair in cold:
        pd.testing.assert_series_equal(warm[pair].series, cold[pair].series)
        assert warm[pair].newest == cold[pair].newest and warm[pair].empty == cold[pair].empty
        assert warm[pair].series.loc[late] == 999.0



def test_an_unreadable_fleet_ledger_costs_the_order_and_the_releases_never_the_tick(
        aws: None, fleet_env: dict, lambda_context: Any, caplog: pytest.LogCaptureFixture) -> None:
    # Given the fleet, and DynamoDB throttling the fleet's Scan (departures) on this tick
    world = build_world()
    build_fleet(world, RELAX_TIME)

    def throttled(**_: Any) -> Any:
        return _Http(), {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"},
                         "ResponseMetadata": {"HTTPStatusCode": 400}}

    world.dynamodb.meta.events.register("before-call.dynamodb.Scan", throttled)
    # When the pre-scaler ticks
    result = HANDLERS["prescale"].lambda_handler(event("prescale_scheduled.json"), lambda_context)
    # Then every endpoint still gets its decision, and the log says what waits
    assert result["outcomes"]["applied"] == 16 and min_capacity(world, "fleet-00") == 6
    assert "fleet ledger unreadable" in caplog.text


def test_a_component_that_leaves_the_fleet_is_released_like_a_variant(
        aws: None, fleet_env: dict, lambda_context: Any) -> None:
    # Given the fleet raised for the 10:00 spike, the component's copies' MinCapacity 0 -> 6
    world = build_world()
    build_fleet(world, RELAX_TIME)
    HANDLERS["prescale"].lambda_handler(event("prescale_scheduled.json"), lambda_context)
    assert world.components.components[COMPONENT].min_capacity == 6
    # When the component loses its prescaler:enabled tag and the pre-scaler ticks again
    world.components.components[COMPONENT].tags.pop("prescaler:enabled")
    result = HANDLERS["prescale"].lambda_handler(event("prescale_scheduled.json"), lambda_context)
    # Then it is no member, its raise is released to the stack's baseline (2: the tag that said 0
    # went with the membership) and its ledger entry closed: nothing left raised
    assert COMPONENT not in by_endpoint(result) and result["members"] == 19
    (released,) = [r for r in result["released"] if r["resource_id"] == f"inference-component/{COMPONENT}"]
    assert (released["outcome"], released["old_min_capacity"], released["new_min_capacity"]) == ("released", 6, 2)
    assert world.components.components[COMPONENT].min_capacity == 2
    item = ledger(world, COMPONENT, component=True)
    assert "owned_min_capacity" not in item and item["last_action"] == {"S": "release"}


def test_a_listed_component_is_a_member_and_a_listed_component_that_does_not_exist_is_its_own_outcome(
        aws: None, fleet_env: dict, lambda_context: Any, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    # Given FLEET_ENDPOINTS naming one endpoint, the untagged component and one that does not exist
    world = build_world()
    build_fleet(world, RELAX_TIME)
    world.components.components["untagged-copies"].tags["prescaler:target-per-instance"] = "4400"
    SERVED["untagged-copies"] = SERVED[COMPONENT]
    monkeypatch.setenv("FLEET_ENDPOINTS", "fleet-00, inference-component:untagged-copies, inference-component:gone")
    # When the pre-scaler ticks
    result = HANDLERS["prescale"].lambda_handler(event("prescale_scheduled.json"), lambda_context)
    out = by_endpoint(result)
    # Then exactly the three listed are members; the listed component is raised with its tags'
    # settings (13,200 / 4,400 -> 3 copies), the missing one holds, named, with a metric
    assert set(out) == {"fleet-00", "untagged-copies", "gone"}
    assert out["untagged-copies"]["outcome"] == "applied"
    assert world.components.components["untagged-copies"].min_capacity == 3
    assert (out["gone"]["outcome"], out["gone"]["action"]) == ("endpoint_missing", "hold")
    assert "inference component gone not found" in out["gone"]["reason"]
    missing = [b for b in emf(capsys) if b.get("InferenceComponentName") == "gone"]
    assert missing and missing[0]["EndpointMissing"] == [1.0]
    assert world.components.components[COMPONENT].min_capacity == 0  # tagged but not listed: left alone
