"""Fleet membership and per-endpoint settings (issue 11 §1): pure parts, and discovery against a
botocore Stubber in SageMaker's real ListEndpoints / ListTags shapes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from prescaler import fleet
from prescaler.aws.cloudwatch import Component
from prescaler.fleet import FleetSettings, Member, member_settings
from prescaler.settings import SettingsError, load

ENV = {"LEDGER_TABLE_NAME": "ledger", "BASELINE_MIN_CAPACITY": "2", "PRESCALE_MAX_CAPACITY": "8"}
ARN = "arn:aws:sagemaker:us-east-1:123456789012:endpoint/{}"
IC_ARN = "arn:aws:sagemaker:us-east-1:123456789012:inference-component/{}"


def test_the_explicit_list_is_parsed_with_the_default_variant_and_deduplicated() -> None:
    fs = load(FleetSettings, {"FLEET_MODE": "list", "FLEET_ENDPOINTS": " a, b/Blue,a ,\nc ", "VARIANT_NAME": "Green",
                              "LEDGER_TABLE_NAME": "ledger"})
    assert fs.listed() == [("a", "Green"), ("b", "Blue"), ("c", "Green")]


def test_a_component_entry_is_its_own_kind_and_never_an_endpoint_named_inference_component() -> None:
    # "inference-component/x" is a legal endpoint/variant pair; the colon form is not
    fs = load(FleetSettings, {"FLEET_MODE": "list", "LEDGER_TABLE_NAME": "ledger",
                              "FLEET_ENDPOINTS": "inference-component/x, inference-component:llama-8b, "
                                                 "Inference-Component: llama-8b"})
    assert fs.listed() == [("inference-component", "x"), Component("llama-8b")]
    with pytest.raises(SettingsError, match="'inference-component:-bad': '-bad' is not an inference component name"):
        load(FleetSettings, {"FLEET_MODE": "list", "FLEET_ENDPOINTS": "inference-component:-bad",
                             "LEDGER_TABLE_NAME": "ledger"})


def test_a_component_members_settings_scale_its_copies_and_only_it_may_have_baseline_zero() -> None:
    env = {**ENV, "INFERENCE_COMPONENT_NAME": "the-stacks-own"}
    s = member_settings(Member("llm-ep", "AllTraffic", {"prescaler:baseline": "0"}, "llama-8b"), env)
    assert (s.inference_component_name, s.resource_id, s.baseline_min_capacity) == (
        "llama-8b", "inference-component/llama-8b", 0)
    assert s.endpoint_name == "llm-ep"  # the hosting endpoint: its heartbeat, its alarms' dimensions
    # a variant member never inherits the stack's INFERENCE_COMPONENT_NAME
    v = member_settings(Member("ep", "AllTraffic"), env)
    assert (v.inference_component_name, v.resource_id) == (None, "endpoint/ep/variant/AllTraffic")
    with pytest.raises(SettingsError, match=r"^inference-component/llama-8b: .*tag prescaler:headroom='x'"):
        member_settings(Member("llm-ep", "AllTraffic", {"prescaler:headroom": "x"}, "llama-8b"), env)


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


def _tags(stub: Stubber, name: str, tags: dict[str, str], arn: str = ARN) -> None:
    stub.add_response("list_tags", {"Tags": [{"Key": k, "Value": v} for k, v in tags.items()]},
                      {"ResourceArn": arn.format(name)})


def _component(name: str, endpoint: str = "llm", variant: str = "AllTraffic") -> dict:
    """An InferenceComponentSummary (SageMaker API reference), required fields and the status."""
    now = datetime(2024, 5, 15, tzinfo=UTC)
    return {"InferenceComponentName": name, "InferenceComponentArn": IC_ARN.format(name), "EndpointName": endpoint,
            "EndpointArn": ARN.format(endpoint), "VariantName": variant, "CreationTime": now,
            "LastModifiedTime": now, "InferenceComponentStatus": "InService"}


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
        # two ListInferenceComponents pages; llama enabled on llm/Blue, mistral not
        stub.add_response("list_inference_components", {"InferenceComponents": [_component("llama", variant="Blue")],
                                                        "NextToken": "u"}, {"MaxResults": 100})
        stub.add_response("list_inference_components", {"InferenceComponents": [_component("mistral")]},
                          {"MaxResults": 100, "NextToken": "u"})
        _tags(stub, "a", {"prescaler:enabled": "true"})
        _tags(stub, "b", {"prescaler:enabled": "false"})
        _tags(stub, "c", {"prescaler:enabled": " TRUE ", "prescaler:variant": "Blue, Green"})
        stub.add_client_error("list_tags", "ValidationException", "Could not find endpoint", 400,
                              expected_params={"ResourceArn": ARN.format("d")})
        _tags(stub, "llama", {"prescaler:enabled": "true", "prescaler:baseline": "0"}, IC_ARN)
        _tags(stub, "mistral", {"prescaler:baseline": "0"}, IC_ARN)
        members, refreshed = fleet.discover(sm, fs, clock)
        stub.assert_no_pending_responses()
    assert refreshed and [m.resource_id for m in members] == [
        "endpoint/a/variant/AllTraffic", "endpoint/c/variant/Blue", "endpoint/c/variant/Green",
        "inference-component/llama"]
    assert (members[-1].endpoint_name, members[-1].variant_name, members[-1].component) == ("llm", "Blue", "llama")
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
        stub.add_response("list_inference_components", {"InferenceComponents": []}, {"MaxResults": 100})
        _tags(stub, "a", {"prescaler:enabled": "true"})
        _tags(stub, "c", {})
        later, refreshed = fleet.discover(sm, fs, clock)
    assert refreshed and [m.endpoint_name for m in later] == ["a"]
    assert "endpoint/c/variant/Blue left the fleet" in caplog.text
    assert "inference-component/llama left the fleet" in caplog.text


def test_an_explicit_list_wins_and_still_reads_each_listed_endpoints_tags() -> None:
    fleet.clear_cache()
    sm = _sagemaker()
    fs = load(FleetSettings, {"FLEET_MODE": "tag", "FLEET_ENDPOINTS": "b, missing", "LEDGER_TABLE_NAME": "ledger"})
    with Stubber(sm) as stub:  # no component listed: ListInferenceComponents is not called
        stub.add_response("list_endpoints", {"Endpoints": [_endpoint("a"), _endpoint("b")]}, {"MaxResults": 100})
        _tags(stub, "b", {"prescaler:headroom": "0.5"})  # not enabled by tag: the list decides
        members, _ = fleet.discover(sm, fs, Clock())
        stub.assert_no_pending_responses()
    assert [(m.endpoint_name, dict(m.tags)) for m in members] == [("b", {"prescaler:headroom": "0.5"}),
                                                                  ("missing", {})]


def test_a_listed_component_is_found_by_name_with_its_host_and_tags_and_a_missing_one_has_no_host() -> None:
    fleet.clear_cache()
    sm = _sagemaker()
    fs = load(FleetSettings, {"FLEET_MODE": "list", "LEDGER_TABLE_NAME": "ledger",
                              "FLEET_ENDPOINTS": "a, inference-component:llama, inference-component:gone"})
    with Stubber(sm) as stub:
        stub.add_response("list_endpoints", {"Endpoints": [_endpoint("a")]}, {"MaxResults": 100})
        stub.add_response("list_inference_components", {"InferenceComponents": [
            _component("llama", "llm", "Blue"), _component("other")]}, {"MaxResults": 100})
        _tags(stub, "a", {})
        _tags(stub, "llama", {"prescaler:headroom": "0.5"}, IC_ARN)  # not enabled by tag: the list decides
        members, _ = fleet.discover(sm, fs, Clock())
        stub.assert_no_pending_responses()
    assert [(m.resource_id, m.endpoint_name, m.variant_name, dict(m.tags)) for m in members] == [
        ("endpoint/a/variant/AllTraffic", "a", "AllTraffic", {}),
        ("inference-component/llama", "llm", "Blue", {"prescaler:headroom": "0.5"}),
        ("inference-component/gone", "", "AllTraffic", {})]


def test_a_failed_component_listing_keeps_the_known_components_and_departs_nothing(
        caplog: pytest.LogCaptureFixture) -> None:
    fleet.clear_cache()
    sm, clock = _sagemaker(), Clock()
    fs = load(FleetSettings, {"FLEET_MODE": "tag", "LEDGER_TABLE_NAME": "ledger", "FLEET_DISCOVERY_TTL_SECONDS": "0"})
    with Stubber(sm) as stub:  # a complete discovery: llama is a member
        stub.add_response("list_endpoints", {"Endpoints": []}, {"MaxResults": 100})
        stub.add_response("list_inference_components", {"InferenceComponents": [_component("llama")]},
                          {"MaxResults": 100})
        _tags(stub, "llama", {"prescaler:enabled": "true"}, IC_ARN)
        first, refreshed = fleet.discover(sm, fs, clock)
    assert refreshed and [m.resource_id for m in first] == ["inference-component/llama"]
    # When ListInferenceComponents is throttled on the next discovery
    clock.t += 1
    with Stubber(sm) as stub:
        stub.add_response("list_endpoints", {"Endpoints": [_endpoint("a")]}, {"MaxResults": 100})
        stub.add_client_error("list_inference_components", "ThrottlingException", "Rate exceeded", 400)
        _tags(stub, "a", {"prescaler:enabled": "true"})
        members, refreshed = fleet.discover(sm, fs, clock)
        stub.assert_no_pending_responses()
    # Then llama stays a member (never released on a partial view), the endpoints are current, and
    # the tick is not a refresh (no departures); the log says why
    assert not refreshed
    assert [m.resource_id for m in members] == ["endpoint/a/variant/AllTraffic", "inference-component/llama"]
    assert "ListInferenceComponents failed" in caplog.text


# --------------------------------------------------------------------------------------------------
# FLEET_DISCOVERY=tagging-api: the Resource Groups Tagging API's GetResources

GET_RESOURCES = {"ResourceTypeFilters": ["sagemaker"],
                 "TagFilters": [{"Key": "prescaler:enabled"}], "ResourcesPerPage": 100}


def _tagging() -> Any:
    return boto3.client("resourcegroupstaggingapi", region_name="us-east-1", aws_access_key_id="x",
                        aws_secret_access_key="x")


def _mapping(arn: str, tags: dict[str, str]) -> dict:
    """A ResourceTagMapping (Resource Groups Tagging API reference): the ARN and ALL its tags."""
    return {"ResourceARN": arn, "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}


def test_tagging_api_discovery_pages_get_resources_and_never_calls_list_tags(caplog: pytest.LogCaptureFixture) -> None:
    fleet.clear_cache()
    sm, rgt = _sagemaker(), _tagging()
    fs = load(FleetSettings, {"FLEET_MODE": "tag", "FLEET_DISCOVERY": "tagging-api", "LEDGER_TABLE_NAME": "ledger"})
    with Stubber(sm) as stub, Stubber(rgt) as tag_stub:  # no list_tags response queued: a ListTags call fails
        stub.add_response("list_endpoints", {"Endpoints": [_endpoint("a"), _endpoint("b"), _endpoint("c")]},
                          {"MaxResults": 100})
        stub.add_response("list_inference_components", {"InferenceComponents": [_component("llama")]},
                          {"MaxResults": 100})
        # page 1: a enabled in mixed case on two variants, b disabled; page 2: the component, and
        # "gone", still known to the Tagging API but deleted (not in ListEndpoints)
        tag_stub.add_response("get_resources", {"ResourceTagMappingList": [
            _mapping(ARN.format("a"), {"prescaler:enabled": "True", "prescaler:variant": "Blue,Green",
                                       "prescaler:headroom": "0.3"}),
            _mapping(ARN.format("b"), {"prescaler:enabled": "false"}),
            # another SageMaker resource with the tag: not a member, and not "tagged but not listed"
            _mapping("arn:aws:sagemaker:us-east-1:123456789012:endpoint-config/a", {"prescaler:enabled": "true"}),
        ], "PaginationToken": "p2"}, GET_RESOURCES)
        tag_stub.add_response("get_resources", {"ResourceTagMappingList": [
            _mapping(IC_ARN.format("llama"), {"prescaler:enabled": "TRUE", "prescaler:baseline": "0"}),
            _mapping(ARN.format("gone"), {"prescaler:enabled": "true"})], "PaginationToken": ""},
            {**GET_RESOURCES, "PaginationToken": "p2"})
        members, refreshed = fleet.discover(sm, fs, Clock(), tagging=rgt)
        stub.assert_no_pending_responses()
        tag_stub.assert_no_pending_responses()
    assert refreshed and [(m.resource_id, dict(m.tags).get("prescaler:headroom")) for m in members] == [
        ("endpoint/a/variant/Blue", "0.3"), ("endpoint/a/variant/Green", "0.3"), ("inference-component/llama", None)]
    assert (members[-1].endpoint_name, members[-1].tags["prescaler:baseline"]) == ("llm", "0")
    assert f"{ARN.format('gone')} is tagged prescaler:enabled but SageMaker does not list it" in caplog.text
    assert "endpoint/b" not in caplog.text  # disabled: quietly not a member
    assert "endpoint-config" not in caplog.text


def test_tagging_api_matches_sagemakers_lower_case_arns_to_mixed_case_names() -> None:
    fleet.clear_cache()
    sm, rgt = _sagemaker(), _tagging()
    fs = load(FleetSettings, {"FLEET_MODE": "tag", "FLEET_DISCOVERY": "tagging-api", "LEDGER_TABLE_NAME": "ledger"})
    endpoint = {**_endpoint("Catalogue-Tagger"), "EndpointArn": ARN.format("catalogue-tagger")}
    with Stubber(sm) as stub, Stubber(rgt) as tag_stub:
        stub.add_response("list_endpoints", {"Endpoints": [endpoint]}, {"MaxResults": 100})
        stub.add_response("list_inference_components", {"InferenceComponents": []}, {"MaxResults": 100})
        tag_stub.add_response("get_resources", {"ResourceTagMappingList": [
            _mapping(ARN.format("catalogue-tagger"), {"prescaler:enabled": "true"})]}, GET_RESOURCES)
        members, _ = fleet.discover(sm, fs, Clock(), tagging=rgt)
    assert [m.resource_id for m in members] == ["endpoint/Catalogue-Tagger/variant/AllTraffic"]


def test_a_failed_get_resources_keeps_the_known_members_and_departs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    fleet.clear_cache()
    sm, rgt, clock = _sagemaker(), _tagging(), Clock()
    fs = load(FleetSettings, {"FLEET_MODE": "tag", "FLEET_DISCOVERY": "tagging-api", "LEDGER_TABLE_NAME": "ledger",
                              "FLEET_DISCOVERY_TTL_SECONDS": "0"})
    with Stubber(sm) as stub, Stubber(rgt) as tag_stub:
        stub.add_response("list_endpoints", {"Endpoints": [_endpoint("a")]}, {"MaxResults": 100})
        stub.add_response("list_inference_components", {"InferenceComponents": []}, {"MaxResults": 100})
        tag_stub.add_response("get_resources", {"ResourceTagMappingList": [
            _mapping(ARN.format("a"), {"prescaler:enabled": "true"})]}, GET_RESOURCES)
        first, _ = fleet.discover(sm, fs, clock, tagging=rgt)
    clock.t += 1
    with Stubber(sm) as stub, Stubber(rgt) as tag_stub:  # no tag:GetResources grant
        stub.add_response("list_endpoints", {"Endpoints": []}, {"MaxResults": 100})
        stub.add_response("list_inference_components", {"InferenceComponents": []}, {"MaxResults": 100})
        tag_stub.add_client_error("get_resources", "AccessDeniedException", "not authorized: tag:GetResources", 400)
        members, refreshed = fleet.discover(sm, fs, clock, tagging=rgt)
    assert not refreshed and members == first == [Member("a", "AllTraffic", {"prescaler:enabled": "true"})]
    assert "GetResources failed" in caplog.text and "AccessDeniedException" in caplog.text
    assert "left the fleet" not in caplog.text


def test_fleet_discovery_accepts_only_its_two_modes() -> None:
    assert load(FleetSettings, {}).fleet_discovery == "list-tags"
    with pytest.raises(SettingsError, match="FLEET_DISCOVERY"):
        load(FleetSettings, {"FLEET_DISCOVERY": "resource-groups", "LEDGER_TABLE_NAME": "ledger"})
