"""``prescaler``: simulate, backtest and forecast from the command line.

    prescaler simulate [--scenario reference] [--days N] [--warmup-days N] [--seed N] [--json] [--plot PNG]
    prescaler backtest --trace CSV [--column NAME] [--requests] [--dayfirst] [--peak-rps X] [--start ISO8601]
                       [--warmup-days N] [--days N] [--json] [--plot PNG] [endpoint model options]
    prescaler backtest --endpoint NAME [--variant V] [--days 14] ...
    prescaler backtest --fleet [FOLDER] [--json] ...   (every endpoint of a fleet, per endpoint and total)
    prescaler forecast --history CSV --at ISO8601 [--dayfirst] [--current-min N [--owned [--owned-since ISO8601]]
                       --baseline-min N --max-capacity N] [--json]
    prescaler doctor --endpoint NAME [--variant V] [--json]

    Every command also takes the planner's options, among them ``--events CSV|JSON`` (known events,
    raised for like forecast spikes) and ``--breach-minute-cost X`` (the forecaster's asymmetric loss).


Timestamps are ISO 8601 (naive = UTC); numeric dates such as 01/11/2026 are refused as ambiguous
unless ``--dayfirst`` says the day comes first.

Exit codes: 0 success, 2 bad input (one line on stderr naming the problem; an unusable AWS setup
too: no or invalid region, unknown profile, missing credentials, AWS unreachable), 1 an error AWS
returned (``doctor``: 1 when a check fails).
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pandas as pd
from pydantic import ValidationError

from prescaler.history import MAX_INVOCATIONS_PER_MINUTE, MAX_SPAN, HistoryError, complete_end, to_utc, window
from prescaler.plan import MAX_CAPACITY, MAX_LEAD_TIME_S, PlannerSettings, TargetState, decide

PROG = "prescaler"


class UsageError(Exception):
    """A user mistake: reported as one line, exit code 2."""


#: Planner fields and the options that set them, for error messages that name what the user typed.
OPTION_OF_FIELD = {
    "lead_time_s": "--lead-time-s",
    "horizon_minutes": "--horizon-minutes",
    "headroom": "--headroom",
    "timezone": "--timezone",
    "target_invocations_per_instance": "--target",
    "baseline_min_capacity": "--baseline-min",
    "prescale_max_capacity": "--max-capacity",
    "breach_minute_cost": "--breach-minute-cost",
}


#: Why a planner field has its upper bound, appended to pydantic's "less than or equal to" message.
WHY_LIMIT = {
    "target_invocations_per_instance": "the most invocations a minute of a trace may hold",
    "baseline_min_capacity": "the most instances or copies the pre-scaler manages: the Lambda's limit",
    "prescale_max_capacity": "the most instances or copies the pre-scaler manages: the Lambda's limit",
    "lead_time_s": "a spike is raised for at most an hour ahead",
}


def _known_events(args: argparse.Namespace) -> dict[str, Any]:
    """``--events FILE`` and ``--breach-minute-cost X`` as planner fields (empty when not given)."""
    from prescaler import events

    fields: dict[str, Any] = {}
    if getattr(args, "events", None):
        try:
            fields["known_events"] = events.load(args.events, dayfirst=bool(getattr(args, "dayfirst", False)))
        except events.EventsError as exc:
            raise UsageError(f"--events {args.events}: {exc}") from exc
        if not fields["known_events"]:
            _note(f"note: --events {args.events} holds no events (a header row only, or an empty list): "
                  "the run uses none")
    if getattr(args, "breach_minute_cost", None) is not None:
        fields["breach_minute_cost"] = args.breach_minute_cost
    return fields


def _settings(fields: dict[str, Any]) -> PlannerSettings:
    """PlannerSettings from CLI values; a validation error becomes one line naming the option."""
    try:
        return PlannerSettings(**fields)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = str(err["loc"][0]) if err.get("loc") else ""
        option = OPTION_OF_FIELD.get(field, field or "settings")
        message = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        if err.get("type") == "less_than_equal" and field in WHY_LIMIT:
            message += f" ({WHY_LIMIT[field]})"
        raise UsageError(f"{option} {fields.get(field, '')!s}: {message}".replace(" : ", ": ")) from exc


def _finite(name: str, value: float | None, *, minimum: float = 0.0, strict: bool = True,
            maximum: float | None = None, why: str = "") -> None:
    """Refuse NaN, infinity and out-of-range numbers for option ``name`` (None passes); ``why`` says
    where ``maximum`` comes from (and a ``minimum`` above 0)."""
    if value is None:
        return
    reason = f" ({why})" if why else ""
    ok = math.isfinite(value) and (value > minimum if strict else value >= minimum)
    if not ok:
        raise UsageError(f"{name} must be a finite number {'>' if strict else '>='} {minimum:,.4g}, got {value!r}"
                         + (reason if minimum > 0 else ""))
    if maximum is not None and value > maximum:
        raise UsageError(f"{name} must be at most {maximum:,.10g}, got {value:g}{reason}")


def _sagemaker_name(option: str, value: str) -> None:
    """An endpoint or variant name as SageMaker allows it (``settings.SAGEMAKER_NAME``: letters, digits
    and hyphens, at most 63), checked before any AWS call."""
    import re

    from prescaler.settings import SAGEMAKER_NAME

    if not re.fullmatch(SAGEMAKER_NAME, value):
        raise UsageError(f"{option} {value!r} is not a SageMaker name (letters, digits and inner hyphens, "
                         "at most 63 characters)")


def _time(option: str, value: str, dayfirst: bool = False) -> pd.Timestamp:
    """A time the user typed for ``option``, by the trace files' rule: ISO 8601 or an offset, no zone
    names, numeric day/month dates only with ``--dayfirst`` (then day first). One line naming the option."""
    try:
        return to_utc(value, dayfirst=dayfirst)
    except HistoryError as exc:
        raise UsageError(f"{option} {value!r}: {_one_line(exc)}") from exc


def _check_plot_path(path: str) -> None:
    """``--plot FILE`` must name an image format matplotlib writes (.png, .svg, .pdf, ...), checked
    before the simulation rather than after it."""
    from pathlib import Path

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    formats = FigureCanvasAgg(Figure()).get_supported_filetypes()
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in formats:
        raise UsageError(f"--plot {path}: not an image file name (use .png, or one of "
                         f"{', '.join('.' + f for f in sorted(formats))})")
    target = Path(path)
    existed = target.exists()
    try:  # writable, as report.plot will write it (parent folders made): found now, not after the run
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("ab"):
            pass
        if not existed:
            target.unlink()
    except (FileExistsError, NotADirectoryError) as exc:
        raise UsageError(f"--plot {path}: cannot write there ({exc.filename} is a file, not a folder)") from exc
    except OSError as exc:
        raise UsageError(f"--plot {path}: cannot write there ({exc.strerror or exc})") from exc


def _check_sim_options(args: argparse.Namespace) -> None:
    """Fail fast, before any file is read, on options that cannot work."""
    from prescaler.sim import twin

    _finite("--slo-ms", args.slo_ms, maximum=twin.INVOKE_TIMEOUT_S * 1000,
            why=f"a SageMaker model container must answer within {twin.INVOKE_TIMEOUT_S:g} s: a slower request "
                "fails, it does not breach")
    if getattr(args, "plot", None):
        _check_plot_path(args.plot)
    if args.seed < 0:
        raise UsageError(f"--seed must be >= 0, got {args.seed}")
    _policies(args)
    _planner_settings(args, _endpoint_model(args))


def _policies(args: argparse.Namespace) -> tuple[str, ...]:
    """``--policies a,b`` as the twin's policy names in the twin's order (all of them by default).

    Raises:
        UsageError: an unknown or empty name.
    """
    from prescaler.sim import twin

    given = getattr(args, "policies", None)
    if given is None:
        return twin.POLICIES
    names = [n.strip() for n in given.split(",")]
    unknown = [n for n in names if n not in twin.POLICIES]
    if unknown or not names:
        raise UsageError(f"--policies: unknown policy {unknown[0] if unknown else given!r}; "
                         f"choose from {', '.join(twin.POLICIES)}")
    return tuple(p for p in twin.POLICIES if p in names)


def _endpoint_model(args: argparse.Namespace) -> Any:
    """The twin's endpoint model from the simulate/backtest options (reference values by default).

    Raises:
        UsageError: a value that is not finite, out of range, or inconsistent with another one.
    """
    from prescaler.sim import twin

    timeout = f"a SageMaker model container must answer within {twin.INVOKE_TIMEOUT_S:g} s"
    _finite("--capacity-rps", args.capacity_rps, minimum=1 / twin.INVOKE_TIMEOUT_S, strict=False,
            why=f"one request per {twin.INVOKE_TIMEOUT_S:g} s at least, as {timeout}")
    _finite("--capacity-rps", args.capacity_rps, maximum=twin.MAX_RPS_PER_INSTANCE,
            why="the most requests/s a demand may reach")
    _finite("--service-time-ms", args.service_time_ms, maximum=twin.INVOKE_TIMEOUT_S * 1000, why=timeout)
    _finite("--target", args.target, maximum=MAX_INVOCATIONS_PER_MINUTE,
            why="the most invocations a minute of a trace may hold")
    _finite("--concurrency-target", args.concurrency_target,
            maximum=args.capacity_rps * twin.INVOKE_TIMEOUT_S,
            why=f"--capacity-rps x {twin.INVOKE_TIMEOUT_S:g} s: requests in flight = throughput x latency "
                f"(Little's law), and {timeout}")
    _finite("--cpu-at-saturation", args.cpu_at_saturation, maximum=twin.MAX_CPU_PCT,
            why="CPUUtilization sums the instance's cores: at most 100% x 192 vCPUs, the largest instances")
    lo, hi = args.provisioning_s
    _finite("--provisioning-s", lo, strict=False)
    _finite("--provisioning-s", hi, strict=False, maximum=MAX_LEAD_TIME_S,
            why=f"the pre-scaler's lead time is at most {MAX_LEAD_TIME_S} s: a slower scale-out cannot be "
                "raised for in time")
    if lo > hi:
        raise UsageError(f"--provisioning-s LOW HIGH needs LOW <= HIGH, got {lo:g} {hi:g}")
    if args.max_capacity > MAX_CAPACITY:
        raise UsageError(f"--max-capacity must be at most {MAX_CAPACITY}, got {args.max_capacity} (the most "
                         "instances or copies the pre-scaler manages: the Lambda's PRESCALE_MAX_CAPACITY limit)")
    component = _component_model(args)
    lowest = 0 if component is not None else 1
    min_capacity = args.min_capacity if args.min_capacity is not None else (0 if component else 2)
    if not lowest <= min_capacity <= args.max_capacity:
        note = "" if component else " (0, scale to zero, only for an inference component scenario)"
        raise UsageError(f"need {lowest} <= --min-capacity <= --max-capacity, got {min_capacity} and "
                         f"{args.max_capacity}{note}")
    if component is not None and args.max_capacity > component.max_copies:
        raise UsageError(f"--max-capacity {args.max_capacity} copies do not fit on --max-instances "
                         f"{component.max_instances} x --copies-per-instance {component.copies_per_instance}")
    if args.service_time_ms >= args.slo_ms:
        raise UsageError(f"--slo-ms {args.slo_ms:g} must be above the service time (--service-time-ms "
                         f"{args.service_time_ms:g}): no request could meet it")
    if not 0 <= args.scheduling_buffer_s <= 3600:
        raise UsageError("--scheduling-buffer-s must be 0-3600 (AWS's SchedulingBufferTime), "
                         f"got {args.scheduling_buffer_s}")
    return twin.EndpointModel(
        capacity_rps_per_instance=args.capacity_rps,
        service_time_s=args.service_time_ms / 1000.0,
        provisioning_s=(lo, hi),
        slo_p99_s=args.slo_ms / 1000.0,
        min_capacity=min_capacity,
        max_capacity=args.max_capacity,
        target_invocations_per_instance=args.target,
        target_concurrency_per_instance=args.concurrency_target,
        cpu_at_saturation_pct=args.cpu_at_saturation,
        predictive_scaling_buffer_s=args.scheduling_buffer_s,
        backstop=args.backstop,
        component=component,
    )


def _component_model(args: argparse.Namespace) -> Any:
    """The inference component's placement for a component scenario (``simulate --scenario
    llm-workday``), else None.

    Raises:
        UsageError: an option out of range.
    """
    from prescaler.sim import scenarios, twin

    if getattr(args, "scenario", None) not in scenarios.COMPONENT_SCENARIOS:
        return None
    lo, hi = args.copy_startup_s
    _finite("--copy-startup-s", lo, strict=False)
    _finite("--copy-startup-s", hi, strict=False, maximum=MAX_LEAD_TIME_S,
            why=f"the pre-scaler's lead time is at most {MAX_LEAD_TIME_S} s: a slower start-up cannot be raised "
                "for in time")
    for option, value in (("--copies-per-instance", args.copies_per_instance), ("--max-instances", args.max_instances)):
        if value > MAX_CAPACITY:
            raise UsageError(f"{option} must be at most {MAX_CAPACITY}, got {value} (the most instances or "
                             "copies the pre-scaler manages: the Lambda's PRESCALE_MAX_CAPACITY limit)")
    try:
        return twin.ComponentModel(copies_per_instance=args.copies_per_instance, copy_startup_s=(lo, hi),
                                   max_instances=args.max_instances)
    except ValueError as exc:
        raise UsageError(f"--copies-per-instance / --copy-startup-s / --max-instances: {exc}") from None


def model_summary(model: Any) -> dict[str, Any]:
    """The endpoint model as printed above the table and put in the JSON report (units in the keys)."""
    return {
        "capacity_rps_per_instance": model.capacity_rps_per_instance,
        "service_time_ms": round(model.service_time_s * 1000.0, 3),
        "provisioning_s": list(model.provisioning_s),
        "min_capacity": model.min_capacity,
        "max_capacity": model.max_capacity,
        "target_invocations_per_instance": model.target_invocations_per_instance,
        "target_concurrency_per_instance": round(model.concurrency_target, 4),
        "target_cpu_pct": model.target_cpu_pct,
        "cpu_at_saturation_pct": model.cpu_at_saturation_pct,
        "slo_p99_ms": round(model.slo_p99_s * 1000.0, 3),
        "scheduling_buffer_s": model.predictive_scaling_buffer_s,
        "backstop": model.backstop,
        **({"component": {
            "copies_per_instance": model.component.copies_per_instance,
            "copy_startup_s": list(model.component.copy_startup_s),
            "max_instances": model.component.max_instances,
        }} if getattr(model, "component", None) is not None else {}),
    }


def _planner_settings(args: argparse.Namespace, model: Any) -> PlannerSettings:
    fields: dict[str, Any] = {
        "target_invocations_per_instance": model.target_invocations_per_instance,
        "baseline_min_capacity": model.min_capacity,
        "scale_to_zero": getattr(model, "component", None) is not None and model.min_capacity == 0,
        "prescale_max_capacity": model.max_capacity,
    }
    for name in ("lead_time_s", "horizon_minutes", "headroom", "timezone"):
        value = getattr(args, name, None)
        if value is not None:
            fields[name] = value
    if getattr(args, "no_prompt_scale_in", False):
        fields["prompt_scale_in"] = False
    fields.update(_known_events(args))
    return _settings(fields)


def _check_events_window(settings: PlannerSettings, demand: Any, args: argparse.Namespace) -> None:
    """``--events`` against the simulated window: refused when no event overlaps it (the dates are
    wrong, or the wrong file), a note naming the events it ignores or does not score (warm-up only).

    Raises:
        UsageError: events were given and none overlaps ``[demand.start, demand end + lead time + horizon)``.
    """
    from prescaler import events

    known = settings.known_events
    if not known:
        return
    start = demand.start
    scored = start + pd.Timedelta(minutes=demand.warmup_steps // demand.steps_per_minute)
    end = start + pd.Timedelta(minutes=demand.minutes)
    window = f"{start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC"
    # an event just after the window is raised for a lead time (plus horizon) before it starts
    ahead = end + pd.Timedelta(minutes=settings.lookahead_minutes)
    inside = events.overlapping(known, start, ahead)
    if not inside:
        raise UsageError(f"--events {args.events}: none of its {len(known)} event(s) overlaps the simulated window "
                         f"{window}: {events.describe(known)}")
    outside = tuple(ev for ev in known if ev not in inside)
    if outside:
        _note(f"note: --events: {len(outside)} of {len(known)} events lie outside the simulated window {window} "
              f"and change nothing: {events.describe(outside)}")
    unscored = tuple(ev for ev in inside if not events.overlapping((ev,), scored, ahead))
    if unscored:
        _note(f"note: --events: {len(unscored)} event(s) fall in the warm-up only (before {scored:%Y-%m-%d %H:%M} "
              f"UTC), not scored: {events.describe(unscored)}")


def _note_saturated_target(model: Any) -> None:
    """A note when ``--target`` is at or above what one instance serves: a model, not a product, mistake."""
    per_minute = model.capacity_rps_per_instance * 60
    if model.target_invocations_per_instance >= per_minute:
        t = model.target_invocations_per_instance
        _note(f"note: --target {t:g} invocations/instance/min is {t / 60:g} req/s, at or above what one instance "
              f"serves (--capacity-rps {model.capacity_rps_per_instance:g}): target tracking keeps every instance "
              f"saturated and every policy breaches; set --target below --capacity-rps x 60, e.g. "
              f"{0.8 * per_minute:g} (20% under saturation, as the reference's 2400 is for 50 req/s)")


def _run_policies(demand: Any, args: argparse.Namespace, title: str) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from prescaler.sim import report, twin

    model = _endpoint_model(args)
    settings = _planner_settings(args, model)
    _check_events_window(settings, demand, args)
    _note_saturated_target(model)
    console = Console(stderr=args.json, width=None if sys.stdout.isatty() else 110)
    policies = _policies(args)
    total = demand.minutes * len(policies)
    started = time.perf_counter()
    with Progress(TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), console=Console(stderr=True), transient=True,
                  disable=not sys.stderr.isatty()) as progress:
        task = progress.add_task("simulating", total=total)

        def tick(name: str, n: int) -> None:
            progress.update(task, advance=n, description=f"simulating {name}")

        results = twin.run(demand, policies=policies, model=model, settings=settings, seed=args.seed,
                           progress=tick)
    elapsed = time.perf_counter() - started
    data = report.to_dict(demand, results, model, {
        "model": model_summary(model),
        "settings": settings.model_dump(),
        "elapsed_s": round(elapsed, 2),
    })
    if args.plot:
        report.plot(demand, results, model, args.plot, title)
        data["plot"] = str(args.plot)
    if args.json:
        print(json.dumps(data, indent=2, default=str))
    else:
        m = data["model"]
        unit = "copy" if "component" in m else "instance"
        console.print(f"endpoint model: {m['capacity_rps_per_instance']:g} req/s per {unit}, service "
                      f"{m['service_time_ms']:g} ms, provisioning "
                      f"{m['provisioning_s'][0]:g}-{m['provisioning_s'][1]:g} s, "
                      f"MinCapacity {m['min_capacity']}, MaxCapacity {m['max_capacity']}, target "
                      f"{m['target_invocations_per_instance']:g} invocations/{unit}/min (concurrency "
                      f"{m['target_concurrency_per_instance']:g}), SLO p99 {m['slo_p99_ms']:g} ms, backstop "
                      f"{m['backstop']}")
        if "component" in m:
            c = m["component"]
            console.print(f"inference component: {c['copies_per_instance']} copies per instance, copy start-up "
                          f"{c['copy_startup_s'][0]:g}-{c['copy_startup_s'][1]:g} s, at most "
                          f"{c['max_instances']} instances; instance-hours are the instances billed")
        console.print(report.table(data, title))
        d = data["demand"]
        console.print(f"evaluated {d['evaluated_minutes'] / 1440:.2f} days from {d['evaluated_start']} "
                      f"after {d['warmup_minutes'] / 1440:.2f} days of warm-up; SLO p99 <= {args.slo_ms:g} ms; "
                      f"{elapsed:.1f} s")
        if args.plot:
            console.print(f"plot: {args.plot}")
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from prescaler.sim import scenarios

    _check_sim_options(args)
    if args.scenario not in scenarios.SCENARIOS:
        raise UsageError(f"unknown scenario {args.scenario!r} (built in: {', '.join(scenarios.SCENARIOS)})")
    if args.days < 1:
        raise UsageError("--days must be at least 1")
    if args.warmup_days is not None and args.warmup_days < 0:
        raise UsageError("--warmup-days cannot be negative")
    make = scenarios.SCENARIOS[args.scenario]
    warmup_days = args.warmup_days if args.warmup_days is not None else (
        inspect.signature(make).parameters["warmup_days"].default)
    if args.days + warmup_days > MAX_SPAN.days:
        raise UsageError(f"--days {args.days} + --warmup-days {warmup_days} is more than the {MAX_SPAN.days} days "
                         "a simulation (or a trace) may span")
    warmup = {} if args.warmup_days is None else {"warmup_days": args.warmup_days}
    demand = make(days_evaluated=args.days, seed=args.seed, **warmup)
    return _run_policies(demand, args, f"{args.scenario} scenario: {args.days} evaluated days (seed {args.seed})")


def _note(message: str) -> None:
    """A one-line note for the user on stderr (never on stdout, which may be JSON)."""
    print(message, file=sys.stderr)


def _aws_setup_problem(exc: Exception) -> str | None:
    """One line naming what is wrong with the caller's AWS setup (region, profile, credentials, the
    network path to AWS), or None when ``exc`` is not such a problem (an error AWS itself returned)."""
    import os

    from botocore.exceptions import (
        CredentialRetrievalError,
        InvalidRegionError,
        NoCredentialsError,
        NoRegionError,
        PartialCredentialsError,
        ProfileNotFound,
        SSOError,
        TokenRetrievalError,
    )

    from prescaler.aws.errors import UNREACHABLE

    if isinstance(exc, NoRegionError):
        return "no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION, or a profile's region)"
    if isinstance(exc, InvalidRegionError):
        region = getattr(exc, "kwargs", {}).get("region_name", "")
        return f"AWS region {region!r} is not a region name (e.g. us-east-1): check AWS_REGION / AWS_DEFAULT_REGION"
    if isinstance(exc, ProfileNotFound):
        profile = getattr(exc, "kwargs", {}).get("profile", "")
        return (f"AWS profile {profile!r} not found in the AWS config or credentials file: check AWS_PROFILE "
                "(aws configure list-profiles)")
    if isinstance(exc, NoCredentialsError):
        return "no AWS credentials: set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
    if isinstance(exc, TokenRetrievalError | SSOError):
        return f"unusable AWS credentials: {_one_line(exc)} (an SSO profile: run aws sso login)"
    if isinstance(exc, PartialCredentialsError | CredentialRetrievalError):
        return f"unusable AWS credentials: {_one_line(exc)}"
    if isinstance(exc, UNREACHABLE):
        url = str(getattr(exc, "kwargs", {}).get("endpoint_url", ""))
        region = _session_region()
        if os.environ.get("AWS_ENDPOINT_URL"):
            hint = f"AWS_ENDPOINT_URL={os.environ['AWS_ENDPOINT_URL']} is set: is that server up?"
        elif region and region not in _known_regions():
            hint = f"region {region!r} is not one botocore knows: check AWS_REGION / AWS_DEFAULT_REGION"
        else:
            hint = "check the network, a proxy (HTTPS_PROXY) and the region"
        return f"cannot reach AWS at {url or 'its endpoint'} ({type(exc).__name__}): {hint}"
    return None


def _session_region() -> str | None:
    from botocore.exceptions import BotoCoreError

    from prescaler.aws.clients import session

    try:
        region = session().region_name
    except BotoCoreError:  # only a hint: a broken profile is reported on its own
        return None
    return str(region) if region else None


def _known_regions() -> set[str]:
    """Every region botocore's endpoint data lists for SageMaker, over all partitions."""
    import botocore.session

    core = botocore.session.get_session()
    return {r for partition in core.get_available_partitions()
            for r in core.get_available_regions("sagemaker", partition_name=partition)}


@contextmanager
def _aws_calls(what: str) -> Iterator[None]:
    """AWS calls the user asked for: an unusable setup (no or invalid region, unknown profile, missing
    or partial credentials, AWS unreachable) is a one-line usage error naming the cause (exit 2);
    an error AWS returned is a RuntimeError naming ``what`` was being done (exit 1)."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except (BotoCoreError, ClientError) as exc:
        problem = _aws_setup_problem(exc)
        if problem is not None:
            raise UsageError(problem) from exc
        raise RuntimeError(f"{what}: {exc}") from exc


def _endpoint_history(args: argparse.Namespace) -> pd.Series:
    from prescaler.aws.clients import session
    from prescaler.aws.cloudwatch import read_invocations

    end = complete_end(pd.Timestamp.now(tz="UTC"))
    start = end - pd.Timedelta(days=args.days or 14)
    with _aws_calls(f"reading CloudWatch history of {args.endpoint}/{args.variant}"):
        return read_invocations(session().client("cloudwatch"), args.endpoint, args.variant, start, end)


def cmd_backtest(args: argparse.Namespace) -> int:
    from prescaler.sim import scenarios

    _check_sim_options(args)
    if args.fleet is not None:
        if args.policies is not None:
            raise UsageError("--policies does not apply to --fleet: a fleet backtest compares predictive with "
                             "its backstop on each endpoint")
        return _backtest_fleet(args)
    if bool(args.trace) == bool(args.endpoint):
        raise UsageError("give exactly one of --trace CSV, --endpoint NAME or --fleet [FOLDER]")
    _finite("--peak-rps", args.peak_rps, maximum=scenarios.MAX_RPS)
    _finite("--days", args.days)
    _finite("--warmup-days", args.warmup_days, strict=False)
    if args.trace:
        minutes = scenarios.load_trace(args.trace, column=args.column, requests=args.requests,
                                       dayfirst=args.dayfirst)
        name = str(args.trace)
        if not args.requests and scenarios.sub_minute_rows(args.trace):
            _note(f"note: rows of {args.trace} are less than a minute apart; if each row is one request, "
                  "pass --requests (now each row's value is read as a count)")
        if float(minutes.sum()) == 0:
            column = ("one row per request" if args.requests else
                      f"column {args.column!r}" if args.column else "the second column")
            raise UsageError(f"{name} has no traffic: every value ({column}) is 0; nothing to backtest "
                             "(the wrong --column?)")
    else:
        _sagemaker_name("--endpoint", args.endpoint)
        _sagemaker_name("--variant", args.variant)
        minutes = _endpoint_history(args)
        name = f"endpoint {args.endpoint}/{args.variant}"
        if float(minutes.sum()) == 0:
            raise UsageError(f"{name} has no Invocations datapoints in the last {args.days or 14} days "
                             "(check the endpoint and variant names, and the region)")
    if getattr(args, "start", None) and args.trace:
        start = _time("--start", args.start, args.dayfirst)
        if start >= minutes.index[-1]:
            raise UsageError(f"--start {start.isoformat()} is after the trace ends ({minutes.index[-1].isoformat()})")
        minutes = minutes[minutes.index >= start]
    if args.days is not None and args.trace:
        span_days = len(minutes) / 1440
        end = minutes.index[0] + pd.Timedelta(days=min(args.warmup_days + args.days, span_days + 1))
        minutes = minutes[minutes.index < end]
    demand = scenarios.from_minutes(minutes, name, peak_rps=args.peak_rps, warmup_days=args.warmup_days)
    shortened = scenarios.warmup_note(demand, args.warmup_days)
    if shortened:
        _note(f"note: {shortened}")
    scale = f", scaled to p99.9 minute = {args.peak_rps:g} req/s" if args.peak_rps else ""
    return _run_policies(demand, args, f"backtest: {name}{scale}")


def _fleet_histories(args: argparse.Namespace) -> list[tuple[str, Any]]:
    """The fleet as the functions see it (FLEET_MODE / FLEET_ENDPOINTS; tag mode by default), each
    member's Invocations read in one batched GetMetricData (500 variants per call; an inference
    component by its ``InferenceComponentName``, labelled ``inference-component/<name>``)."""
    import os

    from prescaler import fleet
    from prescaler.aws.clients import session
    from prescaler.aws.cloudwatch import Component, read_many

    listed = os.environ.get("FLEET_ENDPOINTS", "")
    fs = fleet.FleetSettings.model_validate({"fleet_mode": "list" if listed.strip() else "tag",
                                             "fleet_endpoints": listed,
                                             "variant_name": os.environ.get("VARIANT_NAME", "AllTraffic")})
    end = complete_end(pd.Timestamp.now(tz="UTC"))
    with _aws_calls("discovering the fleet or reading its history"):
        members, _ = fleet.discover(session().client("sagemaker"), fs)
        sources = {m.label: Component(m.component) if m.component else (m.endpoint_name, m.variant_name)
                   for m in members}
        histories = read_many(session().client("cloudwatch"), sources.values(),
                              end - pd.Timedelta(days=args.days or 14), end, published_until=end) if sources else {}
    if not sources:
        raise UsageError("the fleet is empty: tag endpoints or inference components prescaler:enabled=true, "
                         "or set FLEET_ENDPOINTS")
    return [(label, (lambda h=histories[src]: h.series)) for label, src in sources.items()]


def _backtest_fleet(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from prescaler.sim import fleet_backtest, scenarios

    if args.trace or args.endpoint:
        raise UsageError("--fleet replays a whole fleet: not with --trace or --endpoint")
    _finite("--peak-rps", args.peak_rps, maximum=scenarios.MAX_RPS)
    _finite("--warmup-days", args.warmup_days, strict=False)
    model = _endpoint_model(args)
    settings = _planner_settings(args, model)
    if args.fleet:
        sources: list[tuple[str, Any]] = [
            (f.stem, (lambda f=f: scenarios.load_trace(f, column=args.column, requests=args.requests,
                                                       dayfirst=args.dayfirst)))
            for f in fleet_backtest.traces_in(args.fleet)]
        where = f"folder {args.fleet}"
    else:
        sources = _fleet_histories(args)
        where = "the fleet's CloudWatch history"
    started = time.perf_counter()
    tty = sys.stderr.isatty()
    with Progress(TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  console=Console(stderr=True), transient=True, disable=not tty) as progress:
        task = progress.add_task("replaying", total=len(sources))
        done = {"n": 0}

        def step(name: str) -> None:
            progress.update(task, completed=done["n"], description=f"replaying {name}")
            done["n"] += 1
            if not tty:
                _note(f"replaying {done['n']}/{len(sources)}: {name}")

        result = fleet_backtest.replay(sources, model=model, settings=settings, seed=args.seed,
                                       warmup_days=args.warmup_days, peak_rps=args.peak_rps, progress=step)
    elapsed = time.perf_counter() - started
    for name, why in result.notes.items():
        _note(f"note: {name}: {why}")
    for name, why in result.skipped.items():
        _note(f"skipped {name}: {why}")
    if not result.endpoints:
        raise UsageError(f"no endpoint of {where} could be replayed ({len(result.skipped)} skipped)")
    if args.json:
        print(json.dumps({**result.to_dict(), "elapsed_s": round(elapsed, 2)}, indent=2, default=str))
    else:
        console = Console(width=None if sys.stdout.isatty() else 130)
        console.print(fleet_backtest.table(result, f"fleet backtest: {len(sources)} endpoints from {where}"))
        console.print(f"{len(result.endpoints)} replayed, {len(result.skipped)} skipped; {elapsed:.1f} s")
    return 0


def cmd_forecast(args: argparse.Namespace) -> int:
    from prescaler.sim import scenarios

    at = _time("--at", args.at, args.dayfirst)
    history = scenarios.load_trace(args.history, column=args.column, requests=args.requests, dayfirst=args.dayfirst,
                                   what="history file (--history)")
    end = complete_end(at)
    if end <= history.index[0]:
        raise UsageError(f"--at {at.isoformat()} is before the history starts ({history.index[0].isoformat()})")
    last_data = history.index[-1] + pd.Timedelta(minutes=1)
    if last_data < end:
        _note(f"note: the history ends at {last_data.isoformat()}, {(end - last_data) / pd.Timedelta(minutes=1):,.0f} "
              "min before --at's newest complete minute: the minutes in between count as no traffic")
    history = window(history[history.index < end], end)
    baseline = args.baseline_min
    current = args.current_min if args.current_min is not None else baseline
    if not 1 <= baseline <= args.max_capacity or not 1 <= current <= args.max_capacity:
        raise UsageError(f"need 1 <= --baseline-min, --current-min <= --max-capacity, got --baseline-min "
                         f"{baseline}, --current-min {current}, --max-capacity {args.max_capacity}")
    fields: dict[str, Any] = {"baseline_min_capacity": baseline, "prescale_max_capacity": args.max_capacity,
                              "target_invocations_per_instance": args.target}
    for name in ("lead_time_s", "horizon_minutes", "headroom", "timezone"):
        if getattr(args, name, None) is not None:
            fields[name] = getattr(args, name)
    fields.update(_known_events(args))
    settings = _settings(fields)
    owned_since = _time("--owned-since", args.owned_since, args.dayfirst) if args.owned_since else None
    if owned_since is not None and not args.owned:
        raise UsageError("--owned-since needs --owned (the current MinCapacity is the pre-scaler's raise)")
    if owned_since is not None and owned_since > at:
        raise UsageError(f"--owned-since {owned_since.isoformat()} is after --at {at.isoformat()}: "
                         "a raise cannot start in the future")
    if args.owned and current <= baseline:
        raise UsageError(f"--owned: --current-min {current} is not a raise above --baseline-min {baseline}")
    state = TargetState(min_capacity=current, max_capacity=args.max_capacity, current_instances=current,
                        owned_min_capacity=current if args.owned else None,
                        owned_since=owned_since if owned_since is not None else (at if args.owned else None))
    decision = decide(history, state, settings, at)
    fc = decision.forecast
    assert fc is not None
    data = {"at": at.isoformat(), "decision": decision.to_dict(), "forecast": fc.to_dict(),
            "history": {"window_start": history.index[0].isoformat(), "window_end": end.isoformat(),
                        "window_minutes": len(history), "data_ends": last_data.isoformat()}}
    if args.json:
        print(json.dumps(data, indent=2, default=str))
        return 0
    from rich.console import Console

    console = Console(width=None if sys.stdout.isatty() else 110)
    colour = {"raise": "green", "relax": "yellow", "hold": "cyan"}[decision.action]
    console.print(f"[bold {colour}]{decision.action.upper()}[/] MinCapacity {decision.previous_min_capacity}"
                  f" -> {decision.min_capacity}")
    console.print(f"why: {decision.reason}")
    console.print(f"forecast: {fc.reason}")
    peaks = fc.values.round(0).astype(int).to_dict()
    console.print("per minute: " + ", ".join(f"{t:%H:%M} {v:,}" for t, v in peaks.items()))
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    """Check the account before deploying (read-only); exit 0 only when no check fails."""
    from botocore.exceptions import ClientError

    from prescaler import doctor
    from prescaler.aws.clients import CONFIG, session

    _sagemaker_name("--endpoint", args.endpoint)
    _sagemaker_name("--variant", args.variant)
    with _aws_calls("doctor"):
        aws = session()
        if not aws.region_name:
            raise UsageError("no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION, or a profile's region)")
        made: dict[str, Any] = {}

        def client(service: str) -> Any:
            if service not in made:
                made[service] = aws.client(service, config=CONFIG)
            return made[service]

        try:
            report = doctor.diagnose(args.endpoint, args.variant, client, aws.region_name)
        except ClientError as exc:  # only sts:GetCallerIdentity's errors reach here
            err = exc.response.get("Error", {})
            raise UsageError(f"AWS refused the credentials ({err.get('Code')}: {err.get('Message', '')})") from exc
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        from rich.console import Console

        console = Console(width=None if sys.stdout.isatty() else 120)
        console.print(doctor.render(report))
        if report.manage_scalable_target is not None:
            console.print(f"ManageScalableTarget={str(report.manage_scalable_target).lower()}")
        console.print("[green]ready to deploy[/]" if report.ready else "[bold red]not ready: fix the failed lines[/]")
    return 0 if report.ready else 1


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=(
        "Predictive pre-scaler for SageMaker endpoints: simulate and backtest it against the policies "
        "you would otherwise use, or ask what it would decide now."))
    sub = p.add_subparsers(dest="command", required=True)

    def sim_options(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--seed", type=int, default=7, help="noise and provisioning-delay seed (default 7)")
        sp.add_argument("--json", action="store_true", help="print the JSON report instead of a table")
        sp.add_argument("--plot", metavar="PNG", help="write a plot of demand and capacity per policy")
        sp.add_argument("--slo-ms", type=float, default=500.0, help="p99 latency SLO in ms (default 500)")
        sp.add_argument("--policies", metavar="NAME[,NAME...]", help=(
            "simulate only these policies, comma-separated (default: all seven; keep oracle for the "
            "'vs oracle' column), e.g. predictive,concurrency-target-tracking for a faster comparison"))
        m = sp.add_argument_group("endpoint model (measure these for your own model: see the README)")
        m.add_argument("--capacity-rps", type=float, default=50.0,
                       help="requests/s one instance serves at saturation, from a load test (default 50)")
        m.add_argument("--service-time-ms", type=float, default=35.0,
                       help="one request's latency at low load, ms (default 35)")
        m.add_argument("--provisioning-s", type=float, nargs=2, metavar=("LOW", "HIGH"), default=[120.0, 240.0],
                       help="seconds from a scale-out to InService, uniform in LOW-HIGH, from the variant's "
                            "scaling activities (default 120 240)")
        m.add_argument("--min-capacity", "--baseline-min", dest="min_capacity", type=int, default=None,
                       help="baseline MinCapacity (default 2; an inference component scenario: 0, scale to zero)")
        m.add_argument("--max-capacity", type=int, default=8, help="MaxCapacity (default 8)")
        m.add_argument("--target", type=float, default=2400.0,
                       help="target InvocationsPerInstance per minute (default 2400)")
        m.add_argument("--concurrency-target", type=float,
                       help="target ConcurrentRequestsPerModel per instance (default: the same saturation as "
                            "--target by Little's law, target/60 x service time = 1.4)")
        m.add_argument("--cpu-at-saturation", type=float, default=35.0,
                       help="CPUUtilization %% at saturation (GPU-bound: low; default 35)")
        m.add_argument("--scheduling-buffer-s", type=int, default=300,
                       help="aws-predictive-scaling's SchedulingBufferTime, 0-3600 s (default 300)")
        m.add_argument("--backstop", choices=("invocations", "concurrency"), default="concurrency",
                       help="the target tracking behind predictive: the high-resolution ConcurrentRequestsPerModel "
                            "(default: AWS's fastest reactive option) or InvocationsPerInstance")
        planner_options(sp)

    def planner_options(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--lead-time-s", dest="lead_time_s", type=int, help="lead time in seconds (default 300)")
        sp.add_argument("--horizon-minutes", type=int, help="minutes looked ahead beyond the lead time (default 1)")
        sp.add_argument("--headroom", type=float, help="extra capacity on the forecast peak, 0.1 = 10%% (default 0)")
        sp.add_argument("--timezone", help="IANA time zone of local-time daily jobs (default UTC)")
        sp.add_argument("--no-prompt-scale-in", action="store_true", help="leave scale-in to target tracking")
        sp.add_argument("--events", metavar="CSV|JSON", help=(
            "known events: windows with an expected peak, raised for like a forecast spike "
            "(CSV header name,start,end,peak_invocations_per_minute, or a .json list of the same)"))
        sp.add_argument("--breach-minute-cost", type=float, help=(
            "instance-minutes one SLO breach minute is worth: a pattern acts when the breach minutes it "
            "prevents in the backtest are worth more than the instance-minutes it spends (default 30)"))

    s = sub.add_parser("simulate", help="run the seven policies on a built-in scenario")
    s.add_argument("--scenario", default="reference",
                   help="built-in scenario: reference (an endpoint variant) or llm-workday (an inference "
                        "component that scales to zero; capacities count copies) (default: reference)")
    s.add_argument("--days", type=int, default=3, help="evaluated days (default 3)")
    s.add_argument("--warmup-days", type=int, default=None,
                   help="days of history before scoring (default: reference 2, llm-workday 4)")
    sim_options(s)
    c = s.add_argument_group("inference component (llm-workday; --capacity-rps etc. are then per copy)")
    c.add_argument("--copies-per-instance", type=int, default=2, help="copies one instance holds (default 2)")
    c.add_argument("--copy-startup-s", type=float, nargs=2, metavar=("LOW", "HIGH"), default=[60.0, 120.0],
                   help="seconds from a copy's request on an instance with room to serving (default 60 120)")
    c.add_argument("--max-instances", type=int, default=4,
                   help="managed instance scaling's MaxInstanceCount (default 4)")
    s.set_defaults(func=cmd_simulate)

    b = sub.add_parser("backtest", help="replay a recorded trace (or an endpoint's CloudWatch history)")
    b.add_argument("--trace", metavar="CSV", help="CSV: timestamp column first, then counts per row")
    b.add_argument("--column", help="value column (default: the second)")
    b.add_argument("--requests", action="store_true", help="one row per request: count rows per minute")
    b.add_argument("--dayfirst", action="store_true",
                   help="numeric dates are day first (01/11/2026 = 1 November); without it they are refused")
    b.add_argument("--peak-rps", type=float, help="scale so the 99.9th-percentile minute is this many req/s")
    b.add_argument("--warmup-days", type=float, default=2.0, help="days simulated before scoring (default 2)")
    b.add_argument("--days", type=float, help="evaluated days after the warm-up (default: all; --endpoint: 14)")
    b.add_argument("--start", metavar="ISO8601",
                   help="replay the trace from this instant (the warm-up starts here; default: its first row)")
    b.add_argument("--endpoint", help="a SageMaker endpoint: replay its own CloudWatch Invocations history")
    b.add_argument("--variant", default="AllTraffic", help="production variant (default AllTraffic)")
    b.add_argument("--fleet", nargs="?", const="", metavar="FOLDER", help=(
        "replay every endpoint: each *.csv of FOLDER, or without FOLDER the fleet from CloudWatch "
        "(FLEET_ENDPOINTS, else endpoints tagged prescaler:enabled=true); a table per endpoint and in total"))
    sim_options(b)
    b.set_defaults(func=cmd_backtest)

    f = sub.add_parser("forecast", help="what the pre-scaler would decide at an instant, and why")
    f.add_argument("--history", required=True, metavar="CSV", help="CSV: timestamp, invocations per row")
    f.add_argument("--at", required=True, help="the instant (ISO 8601; naive = UTC)")
    f.add_argument("--column", help="value column (default: the second)")
    f.add_argument("--requests", action="store_true", help="one row per request")
    f.add_argument("--dayfirst", action="store_true",
                   help="numeric dates are day first (01/11/2026 = 1 November); without it they are refused")
    f.add_argument("--current-min", type=int, help="the scalable target's MinCapacity now (default: baseline)")
    f.add_argument("--owned", action="store_true",
                   help="--current-min is the pre-scaler's own raise (as its ledger says): preview a relax")
    f.add_argument("--owned-since", metavar="ISO8601",
                   help="when that raise was made, for the watchdog (default: --at, i.e. not held yet)")
    f.add_argument("--baseline-min", type=int, default=2, help="baseline MinCapacity (default 2)")
    f.add_argument("--max-capacity", type=int, default=8, help="MaxCapacity (default 8)")
    f.add_argument("--target", type=float, default=2400.0,
                   help="target invocations per instance per minute (default 2400)")
    f.add_argument("--json", action="store_true", help="print JSON")
    planner_options(f)
    f.set_defaults(func=cmd_forecast)

    d = sub.add_parser("doctor", help="check an endpoint and your account before deploying (read-only)")
    d.add_argument("--endpoint", required=True, help="the SageMaker endpoint's name, exactly as SageMaker shows it")
    d.add_argument("--variant", default="AllTraffic", help="production variant (default AllTraffic)")
    d.add_argument("--json", action="store_true", help="print JSON")
    d.set_defaults(func=cmd_doctor)
    return p


def _one_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``prescaler`` console script. Returns the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    # pandas warns on stderr about odd inputs it then refuses; the one-line error says it all
    warnings.filterwarnings("ignore", category=UserWarning)
    try:
        return int(args.func(args))
    except (UsageError, HistoryError, ValueError) as exc:
        print(f"{PROG}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except RuntimeError as exc:
        print(f"{PROG}: error: {_one_line(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
