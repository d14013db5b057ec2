"""Settings of the Lambda functions, read from environment variables and validated in the handler.

The variable names are part of the interface (the template sets them, ``sam local invoke --env-vars``
overrides them, the e2e tests drive them): ``ENDPOINT_NAME``, ``VARIANT_NAME``,
``BASELINE_MIN_CAPACITY``, ``PRESCALE_MAX_CAPACITY``, ``TARGET_INVOCATIONS_PER_INSTANCE``,
``HEADROOM``, ``HORIZON_MINUTES``, ``DEFAULT_LEAD_TIME_SECONDS``, ``DRY_RUN``, ``PROMPT_SCALE_IN``,
``LEDGER_TABLE_NAME``, ``METRICS_NAMESPACE``, ``MAX_HOLD_MINUTES``, ``SCHEDULE_TIMEZONE``,
``BREACH_MINUTE_COST``, ``KNOWN_EVENTS``,
``INFERENCE_COMPONENT_NAME`` (optional: scale that inference component's copy count instead of the
variant's instances; only then may ``BASELINE_MIN_CAPACITY`` be 0, scale to zero). Each field is
named after its variable (pydantic-settings matches them case-insensitively).

Nothing here runs at import time: :func:`load` reads ``os.environ`` when a handler calls it and turns
a pydantic ``ValidationError`` into a :class:`SettingsError` that names the variables.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar
from zoneinfo import available_timezones

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from prescaler import events
from prescaler.history import MAX_INVOCATIONS_PER_MINUTE
from prescaler.plan import PlannerSettings

#: SageMaker endpoint and variant names: ``^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}`` (SageMaker API reference,
#: CreateEndpoint ``EndpointName`` and ProductionVariant ``VariantName``).
SAGEMAKER_NAME = r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$"
#: InferenceComponentName: ``^[a-zA-Z0-9]([\-a-zA-Z0-9]*[a-zA-Z0-9])?$``, at most 63 characters
#: (SageMaker API reference, CreateInferenceComponent).
COMPONENT_NAME = r"^[a-zA-Z0-9]([-a-zA-Z0-9]{0,61}[a-zA-Z0-9])?$"
#: CloudWatch namespace characters; a namespace may not start with ``AWS/`` (reserved for AWS).
NAMESPACE = r"^[A-Za-z0-9._/#:-]{1,255}$"


class SettingsError(ValueError):
    """One or more environment variables are missing or invalid; the message names each one."""


class FunctionSettings(BaseSettings):
    """What every function needs: which variant, and where its own metrics go."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True, allow_inf_nan=False)

    endpoint_name: str = Field(pattern=SAGEMAKER_NAME, description="ENDPOINT_NAME: the SageMaker endpoint.")
    variant_name: str = Field("AllTraffic", pattern=SAGEMAKER_NAME, description="VARIANT_NAME")
    metrics_namespace: str = Field(
        "SageMakerPrescaler",
        pattern=NAMESPACE,
        description="METRICS_NAMESPACE: the project's CloudWatch namespace (IAM limits PutMetricData to it).",
    )

    @field_validator("metrics_namespace")
    @classmethod
    def _not_aws(cls, value: str) -> str:
        if value.startswith("AWS/"):
            raise ValueError("namespaces starting with AWS/ are reserved for AWS services")
        return value

    @property
    def resource_id(self) -> str:
        """Application Auto Scaling resource id: ``endpoint/<name>/variant/<variant>``."""
        return f"endpoint/{self.endpoint_name}/variant/{self.variant_name}"


class ScalerSettings(FunctionSettings):
    """Settings of the pre-scaler and the relaxer (units in the names)."""

    inference_component_name: str | None = Field(
        None,
        pattern=COMPONENT_NAME,
        description="INFERENCE_COMPONENT_NAME: scale this inference component's copies (empty: the variant)",
    )
    baseline_min_capacity: int = Field(
        2, ge=0, le=1000, description="BASELINE_MIN_CAPACITY (instances, or copies; 0 only for a component)"
    )
    prescale_max_capacity: int = Field(8, ge=1, le=1000, description="PRESCALE_MAX_CAPACITY (instances)")
    target_invocations_per_instance: float = Field(
        2400.0, gt=0, le=MAX_INVOCATIONS_PER_MINUTE,
        description="TARGET_INVOCATIONS_PER_INSTANCE: per instance per minute",
    )
    headroom: float = Field(0.0, ge=0, le=4, description="HEADROOM: 0.1 = 10% on the forecast peak")
    horizon_minutes: int = Field(1, ge=1, le=120, description="HORIZON_MINUTES beyond the lead time")
    default_lead_time_seconds: int = Field(
        300, ge=0, le=3600, description="DEFAULT_LEAD_TIME_SECONDS when no scale-out was ever measured"
    )
    max_hold_minutes: int = Field(120, ge=1, le=10080, description="MAX_HOLD_MINUTES for the watchdog")
    history_days: int = Field(
        14, ge=2, le=14, description="HISTORY_DAYS of Invocations read per tick (1-minute data is kept 15 days)"
    )
    dry_run: bool = Field(False, description="DRY_RUN: compute and publish, change nothing")
    prompt_scale_in: bool = Field(True, description="PROMPT_SCALE_IN: lower the desired count after a spike")
    ledger_table_name: str = Field(
        min_length=3, max_length=255, pattern=r"^[a-zA-Z0-9_.-]+$", description="LEDGER_TABLE_NAME"
    )
    schedule_timezone: str = Field("UTC", description="SCHEDULE_TIMEZONE: IANA zone of local-time jobs")
    breach_minute_cost: float = Field(
        30.0, gt=0, le=100000,
        description="BREACH_MINUTE_COST: instance-minutes one SLO breach minute is worth (the forecaster's loss)")
    known_events: str = Field(
        "", max_length=4096,
        description="KNOWN_EVENTS: JSON list of {name, start, end, peak_invocations_per_minute} (prescaler.events)")

    @field_validator("known_events")
    @classmethod
    def _events_parse(cls, value: str) -> str:
        events.from_json(value)  # EventsError is a ValueError: pydantic reports it under KNOWN_EVENTS
        return value

    @field_validator("schedule_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        if value not in ("UTC", "Etc/UTC") and value not in available_timezones():
            raise ValueError(f"unknown IANA time zone {value!r}")
        return value

    @field_validator("inference_component_name", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value  # the template passes "" for "no component"

    @model_validator(mode="after")
    def _zero_only_for_components(self) -> ScalerSettings:
        if self.baseline_min_capacity == 0 and self.inference_component_name is None:
            raise ValueError(
                "BASELINE_MIN_CAPACITY 0 (scale to zero) needs INFERENCE_COMPONENT_NAME: an endpoint "
                "variant's MinCapacity is at least 1"
            )
        return self

    @property
    def resource_id(self) -> str:
        """Application Auto Scaling resource id: ``inference-component/<name>`` for a component,
        else ``endpoint/<name>/variant/<variant>``."""
        if self.inference_component_name:
            return f"inference-component/{self.inference_component_name}"
        return super().resource_id

    @model_validator(mode="after")
    def _cap_above_baseline(self) -> ScalerSettings:
        if self.prescale_max_capacity < self.baseline_min_capacity:
            raise ValueError(
                f"PRESCALE_MAX_CAPACITY ({self.prescale_max_capacity}) is below "
                f"BASELINE_MIN_CAPACITY ({self.baseline_min_capacity})"
            )
        return self

    def planner(self, lead_time_s: int | None = None) -> PlannerSettings:
        """The core's settings; ``lead_time_s`` (seconds, measured) replaces the default when given."""
        return PlannerSettings.model_validate(
            {
                "target_invocations_per_instance": self.target_invocations_per_instance,
                "headroom": self.headroom,
                "lead_time_s": self.default_lead_time_seconds if lead_time_s is None else lead_time_s,
                "horizon_minutes": self.horizon_minutes,
                "baseline_min_capacity": self.baseline_min_capacity,
                "scale_to_zero": self.baseline_min_capacity == 0 and self.inference_component_name is not None,
                "prescale_max_capacity": self.prescale_max_capacity,
                "prompt_scale_in": self.prompt_scale_in,
                "max_hold_minutes": self.max_hold_minutes,
                "timezone": self.schedule_timezone,
                "breach_minute_cost": self.breach_minute_cost,
                "known_events": events.from_json(self.known_events),
            }
        )


S = TypeVar("S", bound=BaseSettings)


def load(model: type[S], environ: Mapping[str, str] | None = None) -> S:
    """Validate the environment (default ``os.environ``) against ``model``.

    Raises:
        SettingsError: a message naming each missing or invalid variable, e.g.
            ``ENDPOINT_NAME: missing``; ``HEADROOM='x': Input should be a valid number``.
    """
    try:
        if environ is None:
            return model()  # fields come from the environment (pydantic-settings)
        # explicit mapping (tests, CLI): pass values as init kwargs under the field names
        fields = {name: environ[key] for name in model.model_fields for key in (name.upper(), name) if key in environ}
        return model.model_validate(fields)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = [str(part) for part in err.get("loc", ())]
            var = loc[0].upper() if loc else "settings"
            if err.get("type") == "missing":
                problems.append(f"{var}: missing")
            else:
                value = err.get("input")
                shown = f"={value!r}" if loc and not isinstance(value, dict) else ""
                problems.append(f"{var}{shown}: {err.get('msg')}")
        raise SettingsError("invalid settings: " + "; ".join(problems)) from None
