"""Fleet membership and per-endpoint settings (issue 11 §1): pure parts, and discovery against a
botocore Stubber in SageMaker's real ListEndpoints / ListTags shapes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from prescaler import fleet
from prescaler.fleet import FleetSettings, Member, member_settings
from prescaler.settings import SettingsError, load

ENV = {"LEDGER_TABLE_NAME": "ledger", "BASELINE_MIN_CAPACITY": "2", "PRESCALE_MAX_CAPACITY": "8"}
ARN = "arn:aws:sagemaker:us-east-1:123456789012:endpoint/{}"


def test_the_explicit_list_is_parsed_with_the_default_variant_and_deduplicated() -> None:
    fs = load(FleetSettings, {"FLEET_MODE": "list", "FLEET_ENDPOINTS": " a, b/Blue,a ,\nc ", "VARIANT_NAME": "Green",
                              "LEDGER_TABLE_NAME": "ledger"})
    assert fs.listed() == [("a", "Green"), ("b", "Blue"), ("c", "Green")]


@pytest.mark.parametrize(("env", "names"), [
    ({"FLEET_MODE": "list"}, "FLEET_ENDPOINTS"),
    ({"FLEET_MODE": "list", "FLEET_ENDPOINTS": "a/b/c", "LEDGER_TABLE_NAME": "ledger"}, "'a/b/c'"),
    ({"FLEET_MODE": "all", "LEDGER_TABLE_NAME": "ledger"}, "FLEET_MODE"),
])
def test_bad_fleet_settings_name_the_variable(env: dict[str, str], names: str) -> None:
    with pytest.raises(SettingsError, match=names):
        load(FleetSettings, env)


def test_single_mode_needs_nothing_new() -> None:
    assert load(FleetSettings, {}).fleet_mode == "single"


def test_tags_override_the_stacks_defaults_and_untagged_settings_keep_them() -> None:
    tags = {"prescaler:baseline": "1", "prescaler:prescale-cap": " 4 ", "prescaler:headroom": "0.2",
            "prescaler:dry-run": "true", "prescaler:timezone": "Europe/Berlin", "prescaler:prompt-scale-in": "false",
            "prescaler:target-per-instance": "1200", "unrelated": "x"}
    s = member_settings(Member("ep", "AllTraffic", tags), ENV)
    assert (s.endpoint_name, s.variant_name, s.baseline_min_capacity, s.prescale_max_capacity) == ("ep", "AllTraffic",
                                                                                                   1, 4)
    assert (s.headroom, s.dry_run, s.schedule_timezone, s.prompt_scale_in) == (0.2, True, "Europe/Berlin", False)
    assert s.target_invocations_per_instance == 1200
    plain = member_settings(Member("other", "AllTraffic"), ENV)
    assert (plain.baseline_min_capacity, plain.headroom, plain.dry_run) == (2, 0.0, False)


@pytest.mark.parametrize(("tags", "named"), [
    ({"prescaler:headroom": "lots"}, "tag prescaler:headroom='lots'"),
    ({"prescaler:timezone": "Mars/Olympus"}, "tag prescaler:timezone='Mars/Olympus'"),
    ({"prescaler:baseline": "0"}, "tag prescaler:baseline='0'"),
    ({"prescaler:baseline": "9"}, "PRESCALE_MAX_CAPACITY"),  # the cap below the tagged baseline
])
def test_a_bad_tag_value_is_a_settings_error_naming_the_endpoint_and_the_tag(tags: dict, named: str) -> None:
    with pytest.raises(SettingsError) as err:
        member_settings(Member("ep", "AllTraffic", tags), ENV)
    assert named in str(err.value) and str(err.value).startswith("ep/AllTraffic:")


# --------------------------------------------------------------------------------------------------
# discovery


def _sagemaker() -> Any:
    return boto3.client("sagemaker", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")


def _endpoint(name: str) -> dict:
    now = datetime(2024, 5, 15, tzinfo=UTC)
    return {"EndpointName": name, "EndpointArn": ARN.format(name), "CreationTime": now, "LastModifiedTime": now,
            "EndpointStatus": "InService"}


def _tags(stub: Stubber, name: str, tags: dict[str, str]) -> None:
    stub.add_response("list_tags", {"Tags": [{"Key": k, "Value": v} for k, v in tags.items()]},
                      {"ResourceArn": ARN.format(name)})


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_tag_discovery_pages_endpoints_reads_tags_and_is_cached_until_the_ttl(caplog: pytest.LogCaptureFixture) -> None:
    fleet.clear_cache()
    sm, clock = _sagemaker(), Clock()
    fs = load(FleetSettings, {"FLEET_MODE": "tag", "LEDGER_TABLE_NAME": "ledger", "FLEET_DISCOVERY_TTL_SECONDS": "300"})
    with Stubber(sm) as stub:
        # two ListEndpoints pages; a, c enabled (c on two variants), b not, d's tags unreadable
        stub.add_response("list_endpoints", {"Endpoints": [_endpoint("a"), _endpoint("b")], "NextToken": "t"},
                          {"MaxResults": 100})
        stub.add_response("list_endpoints", {"Endpoints": [_endpoint("c"), _endpoint("d")]},
                          {"MaxResults": 100, "NextToken": "t"})
        _tags(stub, "a", {"prescaler:enabled": "true"})
        _tags(stub, "b", {"prescaler:enabled": "false"})
        _tags(stub, "c", {"prescaler:enabled": " TRUE ", "prescaler:variant": "Blue, Green"})
        stub.add_client_error("list_tags", "ValidationException", "Could not find endpoint", 400,
                              expected_params={"ResourceArn": ARN.format("d")})
        members, refreshed = fleet.discover(sm, fs, clock)
        stub.assert_no_pending_responses()
    assert refreshed and [m.resource_id for m in members] == [
        "endpoint/a/variant/AllTraffic", "endpoint/c/variant/Blue", "endpoint/c/variant/Green"]
    assert "tags of endpoint d unreadable (ValidationException)" in caplog.text
    # within the TTL: no SageMaker call at all (the Stubber would fail on one)
    clock.t += 299
    with Stubber(sm):
        again, refreshed = fleet.discover(sm, fs, clock)
    assert not refreshed and again == members
    # after it: asked again; c was untagged meanwhile: dropped with a log line
    clock.t += 2
    with Stubber(sm) as stub:
        stub.add_response("list_endpoints", {"Endpoints": [_endpoint("a"), _endpoint("c")]}, {"MaxResults": 100})
        _tags(stub, "a", {"prescaler:enabled": "true"})
        _tags(stub, "c", {})
        later, refreshed = fleet.discover(sm, fs, clock)
    assert refreshed and [m.endpoint_name for m in later] == ["a"]
    assert "endpoint/c/variant/Blue left the fleet" in caplog.text


def test_an_explicit_list_wins_and_still_reads_each_listed_endpoints_tags() -> None:
    fleet.clear_cache()
    sm = _sagemaker()
    fs = load(FleetSettings, {"FLEET_MODE": "tag", "FLEET_ENDPOINTS": "b, missing", "LEDGER_TABLE_NAME": "ledger"})
    with Stubber(sm) as stub:
        stub.add_response("list_endpoints", {"Endpoints": [_endpoint("a"), _endpoint("b")]}, {"MaxResults": 100})
        _tags(stub, "b", {"prescaler:headroom": "0.5"})  # not enabled by tag: the list decides
        members, _ = fleet.discover(sm, fs, Clock())
        stub.assert_no_pending_responses()
    assert [(m.endpoint_name, dict(m.tags)) for m in members] == [("b", {"prescaler:headroom": "0.5"}),
                                                                  ("missing", {})]
