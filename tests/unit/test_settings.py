"""The functions' settings model, on its own: names, defaults, units, errors that name the variable."""

from __future__ import annotations

import pytest
from prescaler.settings import FunctionSettings, ScalerSettings, SettingsError, load

pytestmark = pytest.mark.unit

BASE = {"ENDPOINT_NAME": "catalogue-tagger", "LEDGER_TABLE_NAME": "ledger"}


def test_defaults_match_the_known_good_baseline() -> None:
    s = load(ScalerSettings, BASE)
    assert (s.variant_name, s.baseline_min_capacity, s.prescale_max_capacity) == ("AllTraffic", 2, 8)
    assert (s.target_invocations_per_instance, s.dry_run, s.prompt_scale_in) == (2400, False, True)
    assert s.resource_id == "endpoint/catalogue-tagger/variant/AllTraffic"


def test_environment_names_are_the_documented_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {**BASE, "VARIANT_NAME": "Blue", "BASELINE_MIN_CAPACITY": "3", "PRESCALE_MAX_CAPACITY": "7",
           "TARGET_INVOCATIONS_PER_INSTANCE": "2000", "HEADROOM": "0.1", "HORIZON_MINUTES": "3",
           "DEFAULT_LEAD_TIME_SECONDS": "240", "DRY_RUN": "true", "PROMPT_SCALE_IN": "false",
           "METRICS_NAMESPACE": "Mine", "MAX_HOLD_MINUTES": "60", "SCHEDULE_TIMEZONE": "Europe/Berlin"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    s = load(ScalerSettings)
    p = s.planner(lead_time_s=200)
    assert (s.variant_name, s.dry_run, s.metrics_namespace) == ("Blue", True, "Mine")
    assert (p.baseline_min_capacity, p.prescale_max_capacity, p.target_invocations_per_instance) == (3, 7, 2000)
    assert (p.headroom, p.horizon_minutes, p.lead_time_s, p.prompt_scale_in) == (0.1, 3, 200, False)
    assert (p.max_hold_minutes, p.timezone, s.planner().lead_time_s) == (60, "Europe/Berlin", 240)


@pytest.mark.parametrize(("env", "message"), [
    ({}, "ENDPOINT_NAME: missing"),
    ({"ENDPOINT_NAME": "x"}, "LEDGER_TABLE_NAME: missing"),
    ({**BASE, "HEADROOM": "-1"}, "HEADROOM='-1'"),
    ({**BASE, "DRY_RUN": "maybe"}, "DRY_RUN='maybe'"),
    ({**BASE, "ENDPOINT_NAME": "bad name!"}, "ENDPOINT_NAME='bad name!'"),
    ({**BASE, "METRICS_NAMESPACE": "AWS/SageMaker"}, "METRICS_NAMESPACE"),
    ({**BASE, "SCHEDULE_TIMEZONE": "Mars/Olympus"}, "SCHEDULE_TIMEZONE"),
    ({**BASE, "BASELINE_MIN_CAPACITY": "5", "PRESCALE_MAX_CAPACITY": "4"}, "PRESCALE_MAX_CAPACITY (4)"),
])
def test_a_missing_or_invalid_variable_is_named(env: dict, message: str) -> None:
    with pytest.raises(SettingsError, match="invalid settings") as err:
        load(ScalerSettings, env)
    assert message in str(err.value)


def test_gpu_function_needs_no_ledger() -> None:
    assert load(FunctionSettings, {"ENDPOINT_NAME": "e"}).metrics_namespace == "SageMakerPrescaler"
