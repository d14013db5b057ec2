"""The endpoint twin: one SageMaker variant under a demand curve, and the policies that scale it.

Model (PROBLEM.md and ARCHITECTURE.md; settings in :class:`EndpointModel`):
- ``step_s``-second steps (10 s). Each in-service instance serves 50 requests/s; a request takes
  35 ms of service; what cannot be served waits in a FIFO backlog (fluid queue), so a request's
  latency is 35 ms plus the backlog ahead of it divided by the fleet's service rate.
- Scaling, as SageMaker and Application Auto Scaling do it: a capacity change (a MinCapacity raise,
  target tracking's scale-out or scale-in, the relaxer's prompt scale-in) is an endpoint update. A new
  instance is ``InService`` after a provisioning delay drawn uniformly from 2-4 minutes (seeded) and is
  billed from the request; scale-in removes pending instances first, at once. The endpoint is
  ``Updating`` until every new instance is in service (after a scale-in: ``scale_in_update_s``), and a
  change asked for meanwhile is refused: Application Auto Scaling retries its own (the alarm invokes
  the policy again at its next evaluation; a MinCapacity above the desired count is caught up as soon
  as the endpoint is ``InService``), the pre-scaler defers its whole tick as ``service.py`` does.
- CloudWatch: one datapoint per minute (``Invocations`` Sum, ``InvocationsPerInstance`` = Invocations
  / in-service instances, ``CPUUtilization`` ~35% at GPU saturation), visible 60 s after its minute
  ends; the high-resolution ``ConcurrentRequestsPerModel`` (requests in the container, queued ones
  included, per in-service instance) one datapoint per 10 s, visible 10 s after it ends.
- Target tracking (the alarms Application Auto Scaling creates): scale out when the 3 newest
  datapoints are above target (1-minute metrics: 3 minutes; high resolution: 30 s), scale in when 15
  one-minute datapoints are below 90% of target; new capacity = ceil(DESIRED capacity x metric /
  target) -- instances still provisioning count, as AWS documents for the scale-out cooldown; scale-in
  waits 300 s after any scaling activity.
- Policies act at each minute boundary (the concurrency alarm every 10 s). ``predictive`` calls
  :func:`prescaler.plan.decide` (the code the Lambdas run) with only the datapoints visible then, in
  the window the Lambda reads (14 days, zero before the run's first minute, as the CloudWatch reader
  zero-fills a young endpoint's window: :func:`prescaler.history.window`), and with the lead time
  the prescale Lambda would learn by then: :func:`prescaler.aws.autoscaling.lead_time_s`
  on the twin's completed scale-outs (DescribeScalingActivities' newest :data:`ACTIVITIES_READ`), the
  planner's ``lead_time_s`` until there is one.

Inference components (``EndpointModel.component``, :class:`ComponentModel`): the unit of capacity is
a copy of the model (``capacity_rps_per_instance`` etc. are per copy; MinCapacity and MaxCapacity
count copies, and MinCapacity may be 0). Copies live on the endpoint's instances,
``copies_per_instance`` each: a new copy on an instance with room is serving after the copy start-up
time; a copy that does not fit waits for a new instance (managed instance scaling: the instance's
provisioning delay, then the copy's start-up). An instance with no copies left is released. Billing
is per instance. While no copy is in service, SageMaker answers requests with an error (they count
as SLO-violating and are not queued), and target tracking cannot scale out from zero (no copy, no
``InvocationsPerCopy``): as AWS documents, a step-scaling policy on the ``NoCapacityInvocationFailures``
alarm adds one copy (every reactive policy has it; it acts on the newest visible minute).

Scores (evaluated period only): ``breach_minutes`` (minutes whose p99 latency exceeds the SLO),
``slo_violating_requests``, ``peak_queue`` (requests), ``instance_hours`` (billed, pending included).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from prescaler.aws.autoscaling import Activity, lead_time_s
from prescaler.history import INCOMPLETE_MINUTES, MAX_INVOCATIONS_PER_MINUTE, MINUTE, window
from prescaler.plan import MAX_LEAD_TIME_S, Decision, PlannerSettings, TargetState, decide
from prescaler.sim.scenarios import Demand

POLICIES = (
    "cpu-target-tracking",
    "invocations-target-tracking",
    "concurrency-target-tracking",
    "scheduled-prewarm",
    "aws-predictive-scaling",
    "predictive",
    "oracle",
)

#: The target-tracking metric behind ``predictive`` (its backstop): SageMakerVariantInvocationsPerInstance
#: or SageMakerVariantConcurrentRequestsPerModelHighResolution.
BACKSTOPS = ("invocations", "concurrency")

#: SageMaker real-time inference: a model container must answer InvokeEndpoint within 60 s (API reference),
#: so one request's service time and its p99 latency SLO are at most this, and an instance serves at
#: least one request per this many seconds.
INVOKE_TIMEOUT_S = 60.0
#: The most requests per second one instance (or copy) may serve: the most a demand may reach.
MAX_RPS_PER_INSTANCE = MAX_INVOCATIONS_PER_MINUTE / 60.0
#: CloudWatch's CPUUtilization for a SageMaker instance sums its cores (0-100% x vCPUs): the largest
#: instances (ml.p5.48xlarge, ml.m7i.48xlarge) have 192 vCPUs.
MAX_CPU_PCT = 100.0 * 192

#: Scaling activities the prescale Lambda reads each tick (DescribeScalingActivities' default page).
ACTIVITIES_READ = 50


@dataclass(frozen=True)
class ComponentModel:
    """An inference component's placement on the endpoint's instances.

    Attributes:
        copies_per_instance: copies of the component one instance holds (its accelerators divided by
            the component's ``NumberOfAcceleratorDevicesRequired``).
        copy_startup_s: (low, high) seconds from a copy's request on an instance with room to the copy
            serving (model download + container start + health check; uniform).
        min_instances / max_instances: managed instance scaling's MinInstanceCount / MaxInstanceCount.
    """

    copies_per_instance: int = 2
    copy_startup_s: tuple[float, float] = (60.0, 120.0)
    min_instances: int = 0
    max_instances: int = 4

    def __post_init__(self) -> None:
        if self.copies_per_instance < 1:
            raise ValueError("copies_per_instance must be at least 1")
        lo, hi = self.copy_startup_s
        if not 0 <= lo <= hi:
            raise ValueError(f"copy start-up must be 0 <= low <= high seconds, got {lo}-{hi}")
        if not 0 <= self.min_instances <= self.max_instances or self.max_instances < 1:
            raise ValueError(f"need 0 <= min_instances <= max_instances >= 1, got {self.min_instances}, "
                             f"{self.max_instances}")

    @property
    def max_copies(self) -> int:
        """Copies the largest fleet of instances can hold."""
        return self.copies_per_instance * self.max_instances


@dataclass(frozen=True)
class EndpointModel:
    """The twin's endpoint (defaults: PROBLEM.md's ml.g5.xlarge image classifier).

    Attributes:
        capacity_rps_per_instance: requests/s one instance serves at saturation (a load test measures it).
        service_time_s: one request's service time, seconds (the model's latency at low load).
        provisioning_s: (low, high) seconds from a scale-out request to ``InService`` (uniform).
        scale_in_update_s: seconds the endpoint stays ``Updating`` after a scale-in.
        metric_delay_s: seconds after a 1-minute datapoint's end before it is visible.
        high_resolution_delay_s: the same for a 10-second datapoint.
        cpu_at_saturation_pct: CPUUtilization (%) at saturation (GPU-bound models: low).
        slo_p99_s: p99 latency SLO, seconds.
        min_capacity, max_capacity: the scalable target's baseline MinCapacity and MaxCapacity.
        target_invocations_per_instance: InvocationsPerInstance target (per minute).
        target_cpu_pct: CPUUtilization target (%).
        target_concurrency_per_instance: ConcurrentRequestsPerModel target; None = the same saturation
            as the invocations target by Little's law (target/60 x service time: 1.4 by default).
        scale_out_cooldown_s, scale_in_cooldown_s: cooldowns (scale-out: a further scale-out during
            it only when larger, which desired-capacity sizing always is; scale-in: blocks scale-in).
        scale_out_datapoints, scale_in_datapoints, scale_in_ratio: the alarms' shape.
        predictive_scaling_buffer_s: ``aws-predictive-scaling``'s SchedulingBufferTime (0-3600 s).
        predictive_scaling_history_days: the history its hourly forecast reads (AWS: up to 14 days).
        backstop: the target tracking behind ``predictive``: "concurrency" (default: the high-resolution
            metric, AWS's fastest reactive option, as the template's ``BackstopMetric``) or "invocations".
        component: None for an endpoint variant; an inference component's placement otherwise (then
            capacities count copies, per-instance figures are per copy, and MinCapacity may be 0).
    """

    capacity_rps_per_instance: float = 50.0
    service_time_s: float = 0.035
    provisioning_s: tuple[float, float] = (120.0, 240.0)
    scale_in_update_s: float = 60.0
    metric_delay_s: int = 60
    high_resolution_delay_s: int = 10
    cpu_at_saturation_pct: float = 35.0
    slo_p99_s: float = 0.5
    min_capacity: int = 2
    max_capacity: int = 8
    target_invocations_per_instance: float = 2400.0  # per minute (= 40 RPS, 20% under saturation)
    target_cpu_pct: float = 70.0
    target_concurrency_per_instance: float | None = None
    scale_out_cooldown_s: int = 60
    scale_in_cooldown_s: int = 300
    scale_out_datapoints: int = 3  # AWS documents 3 datapoints for scale-out
    scale_in_datapoints: int = 15  # ... and 15 below 90% of target for scale-in
    scale_in_ratio: float = 0.9
    predictive_scaling_buffer_s: int = 300
    predictive_scaling_history_days: int = 14
    backstop: str = "concurrency"
    component: ComponentModel | None = None

    def __post_init__(self) -> None:
        if self.backstop not in BACKSTOPS:
            raise ValueError(f"backstop must be one of {', '.join(BACKSTOPS)}, got {self.backstop!r}")
        lowest = 0 if self.component is not None else 1
        if not lowest <= self.min_capacity <= self.max_capacity:
            raise ValueError(f"need {lowest} <= MinCapacity <= MaxCapacity, got {self.min_capacity} and "
                             f"{self.max_capacity}")
        if self.component is not None and self.max_capacity > self.component.max_copies:
            raise ValueError(f"MaxCapacity {self.max_capacity} copies do not fit on "
                             f"{self.component.max_instances} instances of {self.component.copies_per_instance}")
        if not 0 <= self.predictive_scaling_buffer_s <= 3600:
            raise ValueError("SchedulingBufferTime must be 0-3600 s")
        lo, hi = self.provisioning_s
        if not 0 <= lo <= hi <= MAX_LEAD_TIME_S:
            raise ValueError(f"provisioning delay must be 0 <= low <= high <= {MAX_LEAD_TIME_S} seconds (the "
                             f"longest lead time), got {lo}-{hi}")
        if not 1 / INVOKE_TIMEOUT_S <= self.capacity_rps_per_instance <= MAX_RPS_PER_INSTANCE:
            raise ValueError(f"capacity_rps_per_instance must be {1 / INVOKE_TIMEOUT_S:.4g}-{MAX_RPS_PER_INSTANCE:g} "
                             f"requests/s (a container answers within {INVOKE_TIMEOUT_S:g} s), got "
                             f"{self.capacity_rps_per_instance}")

    @property
    def concurrency_target(self) -> float:
        """ConcurrentRequestsPerModel target per instance (requests in the container)."""
        if self.target_concurrency_per_instance is not None:
            return self.target_concurrency_per_instance
        return self.target_invocations_per_instance / 60.0 * self.service_time_s


@dataclass
class PolicyResult:
    """One policy's run: scores plus per-minute traces for plots."""

    name: str
    breach_minutes: int
    slo_violating_requests: float
    peak_queue: float
    instance_hours: float
    capacity: pd.Series  # in-service instances per minute (evaluated period)
    min_capacity: pd.Series  # MinCapacity per minute (evaluated period)
    breach: pd.Series  # True for each minute whose p99 latency is over the SLO (evaluated period)
    decisions: list[tuple[pd.Timestamp, Decision]] = field(default_factory=list)
    queue: pd.Series | None = None  # peak backlog (requests) per minute (evaluated period)
    desired: pd.Series | None = None  # desired instance count at each minute's end (evaluated period)
    refused: int = 0  # capacity changes refused because the endpoint was Updating (whole run)
    deferred: int = 0  # pre-scaler ticks deferred because the endpoint was Updating (whole run)
    billed: pd.Series | None = None  # instances billed per minute, pending included (evaluated period)

    def scores(self) -> dict[str, float | int]:
        return {
            "breach_minutes": int(self.breach_minutes),
            "slo_violating_requests": round(float(self.slo_violating_requests), 1),
            "peak_queue": round(float(self.peak_queue), 1),
            "instance_hours": round(float(self.instance_hours), 3),
        }


class _Fleet:
    """Instances of one variant: ready times in seconds; billing from the scaling request."""

    def __init__(self, model: EndpointModel, rng: np.random.Generator, initial: int, instant: bool = False) -> None:
        self.model = model
        self.rng = rng
        self.instant = instant
        # Provisioning delays depend on when an instance is asked for and how many are already there,
        # not on how many were asked for before: two policies that acted differently earlier still
        # draw the same delays for the same later request (no breach minutes from a shifted stream).
        self.delay_seed = int(rng.integers(2**62))
        self.ready_at: list[float] = [-1e9] * initial
        self.min_capacity = model.min_capacity
        self.max_capacity = model.max_capacity
        self.updating_until = -1e9
        self.refused = 0
        self.backlog = 0.0  # requests waiting at the start of the current step (for the oracle)
        # (requested, all in service) seconds and (from, to) instances of each scale-out, oldest first
        self.scale_outs: list[tuple[float, float, int, int]] = []

    @property
    def desired(self) -> int:
        return len(self.ready_at)

    @property
    def billed(self) -> int:
        """Instances billed now (requested ones included)."""
        return self.desired

    rejects_without_capacity = False  # a variant queues; an inference component at zero copies errors

    def in_service(self, t: float) -> int:
        return sum(1 for r in self.ready_at if r <= t)

    def updating(self, t: float) -> bool:
        """Whether the endpoint is ``Updating`` (a capacity change in progress) at ``t``."""
        return t < self.updating_until

    def request(self, n: int, t: float) -> bool:
        """A scaling activity (UpdateEndpointWeightsAndCapacities): desired count ``n`` clamped to
        [MinCapacity, MaxCapacity]. Refused (False) while the endpoint is ``Updating``."""
        n = self._clamped(n)
        if n == self.desired:
            return True
        if self._refused(t):
            return False
        if n > self.desired:
            before = self.desired
            lo, hi = self.model.provisioning_s
            new = [t if self.instant else t + self._delay(t, i, lo, hi) for i in range(self.desired, n)]
            self.ready_at.extend(new)
            self.updating_until = max(new)
            self.scale_outs.append((t, self.updating_until, before, n))
        else:
            self.ready_at.sort()  # pending (latest ready) are removed first
            del self.ready_at[n:]
            self.updating_until = t if self.instant else t + self.model.scale_in_update_s
        return True

    def _clamped(self, n: int) -> int:
        """A requested count within [MinCapacity, MaxCapacity]."""
        return max(self.min_capacity, min(self.max_capacity, n))

    def _refused(self, t: float) -> bool:
        """A change asked for while ``Updating`` is refused (and counted)."""
        if self.updating(t):
            self.refused += 1
            return True
        return False

    def _delay(self, t: float, position: int, lo: float, hi: float) -> float:
        """Provisioning delay (s) of the instance at ``position`` in the fleet, asked for at ``t``."""
        return float(np.random.default_rng((self.delay_seed, round(t * 1000), position)).uniform(lo, hi))

    def register(self, min_capacity: int, t: float) -> None:
        """RegisterScalableTarget: the new MinCapacity is recorded at once; Application Auto Scaling
        then scales into range, now or (endpoint ``Updating``) as soon as it can (:meth:`catch_up`)."""
        self.min_capacity = min_capacity
        self.catch_up(t)

    def catch_up(self, t: float) -> None:
        """Application Auto Scaling's retry of a MinCapacity the desired count is still below."""
        if self.desired < self.min_capacity and not self.updating(t):
            self.request(self.min_capacity, t)


#: Copies draw their start-up delays at positions of their own (instances use 0, 1, ...).
COPY_POSITIONS = 1_000_000


class _ComponentFleet(_Fleet):
    """Copies of an inference component on instances (:class:`ComponentModel`); ``ready_at`` holds the
    copies, ``instances`` the instances' ready times. The component is ``Updating`` until its new
    copies serve (after a scale-in: ``scale_in_update_s``) and refuses a change meanwhile."""

    rejects_without_capacity = True

    def __init__(self, model: EndpointModel, rng: np.random.Generator, initial: int, instant: bool = False) -> None:
        super().__init__(model, rng, initial, instant)
        assert model.component is not None
        self.component = model.component
        self.instances: list[float] = [-1e9] * self._instances_for(initial)

    def _instances_for(self, copies: int) -> int:
        c = self.component
        return max(c.min_instances, min(c.max_instances, math.ceil(copies / c.copies_per_instance)))

    @property
    def billed(self) -> int:
        return len(self.instances)

    def _draw(self, t: float, position: int, bounds: tuple[float, float]) -> float:
        """A delay in ``bounds`` (s) for the instance or copy at ``position``, asked for at ``t``
        (the base fleet's per-request draws; 0 for the instant oracle)."""
        return 0.0 if self.instant else self._delay(t, position, *bounds)

    def request(self, n: int, t: float) -> bool:
        """UpdateInferenceComponentRuntimeConfig (or Application Auto Scaling's): copy count ``n``
        clamped to [MinCapacity, MaxCapacity]; instances follow. Refused while ``Updating``."""
        n = self._clamped(n)
        if n == self.desired:
            return True
        if self._refused(t):
            return False
        per = self.component.copies_per_instance
        if n > self.desired:
            self.instances.sort()
            new = []
            for i in range(self.desired, n):
                slot = i // per
                while slot >= len(self.instances):  # managed instance scaling: one more instance
                    self.instances.append(t + self._draw(t, len(self.instances), self.model.provisioning_s))
                start = max(t, self.instances[slot])
                new.append(start + self._draw(start, COPY_POSITIONS + i, self.component.copy_startup_s))
            self.ready_at.extend(new)
            self.updating_until = max(new)
        else:
            self.ready_at.sort()  # copies still starting are removed first
            del self.ready_at[n:]
            self.instances.sort()  # instances still provisioning are released first
            del self.instances[self._instances_for(n):]
            self.updating_until = t if self.instant else t + self.model.scale_in_update_s
        return True


def _fleet(model: EndpointModel, rng: np.random.Generator, instant: bool = False) -> _Fleet:
    cls = _ComponentFleet if model.component is not None else _Fleet
    return cls(model, rng, model.min_capacity, instant)


class _TargetTracking:
    """A target-tracking policy: the two alarms AWS creates for it, on the datapoints visible now."""

    def __init__(self, model: EndpointModel, target: float) -> None:
        self.model = model
        self.target = target
        self.last_out = -1e9
        self.last_in = -1e9

    def scale_out(self, newest: np.ndarray, fleet: _Fleet, t: float) -> bool:
        """The scale-out alarm on ``newest`` (its datapoints, oldest first). Returns whether it is in
        ALARM; then asks for ceil(desired x metric / target) instances (refused while Updating: the
        alarm invokes the policy again at its next evaluation)."""
        m = self.model
        if len(newest) < m.scale_out_datapoints or not (newest > self.target).all():
            return False
        want = math.ceil(fleet.desired * float(newest[-1]) / self.target)
        if want > fleet.desired and fleet.request(want, t):
            self.last_out = t
        return True

    def scale_in(self, newest: np.ndarray, fleet: _Fleet, t: float) -> None:
        """The scale-in alarm (15 datapoints below 90% of target) and the scale-in cooldown."""
        m = self.model
        if len(newest) < m.scale_in_datapoints or not (newest < m.scale_in_ratio * self.target).all():
            return
        want = max(fleet.min_capacity, math.ceil(fleet.desired * float(newest[-1]) / self.target))
        if (want < fleet.desired and t - self.last_in >= m.scale_in_cooldown_s
                and t - self.last_out >= m.scale_in_cooldown_s and fleet.request(want, t)):
            self.last_in = t


MinuteHook = Callable[[pd.Timestamp, int, _Fleet, float], None]
StepHook = Callable[[int, _Fleet, float], None]


def _tail(values: np.ndarray, newest: int, n: int) -> np.ndarray:
    """The ``n`` datapoints ending at index ``newest`` (fewer at the start; empty when newest < 0)."""
    if newest < 0:
        return values[:0]
    return values[max(0, newest - n + 1): newest + 1]


def _simulate(
    name: str,
    demand: Demand,
    model: EndpointModel,
    seed: int,
    tt_metric: str | None,
    hook_factory: Callable[[np.ndarray, pd.DatetimeIndex], MinuteHook] | None = None,
    progress: Callable[[int], None] | None = None,
    step_hook: StepHook | None = None,
    instant: bool = False,
) -> PolicyResult:
    """Run one policy. ``tt_metric``: the target tracking in place ("invocations", "cpu",
    "concurrency" or None); ``hook_factory``: a per-minute policy (given the invocations array the
    run fills and the minute index); ``step_hook``: a per-step one; ``instant``: no provisioning delay."""
    rng = np.random.default_rng(seed)
    fleet = _fleet(model, rng, instant)
    k = demand.steps_per_minute
    minutes = demand.minutes
    dt = float(demand.step_s)
    index = pd.date_range(demand.start, periods=minutes, freq="min", name="minute")
    invocations = np.zeros(minutes)
    avg_in_service = np.zeros(minutes)
    desired = np.zeros(minutes)
    cpu = np.zeros(minutes)
    min_cap = np.zeros(minutes)
    breach = np.zeros(minutes, dtype=bool)
    violating = np.zeros(minutes)
    queue_peak = np.zeros(minutes)
    billed = np.zeros(minutes)
    ipi = np.zeros(minutes)
    conc_step = np.zeros(minutes * k)  # ConcurrentRequestsPerModel, one datapoint per step
    conc_minute = np.zeros(minutes)
    tt = None
    if tt_metric == "invocations":
        tt = _TargetTracking(model, model.target_invocations_per_instance)
    elif tt_metric == "cpu":
        tt = _TargetTracking(model, model.target_cpu_pct)
    elif tt_metric == "concurrency":
        tt = _TargetTracking(model, model.concurrency_target)
    minute_metric = {"invocations": ipi, "cpu": cpu, "concurrency": conc_minute}.get(tt_metric or "")
    hook = hook_factory(invocations, index) if hook_factory else None
    failures = np.zeros(minutes)  # NoCapacityInvocationFailures: requests answered with no copy serving
    from_zero = fleet.rejects_without_capacity and tt is not None
    delay_minutes = 1 + model.metric_delay_s // 60  # newest visible datapoint at a minute boundary
    delay_steps = 1 + math.ceil(model.high_resolution_delay_s / dt)
    backlog = 0.0
    mu1 = model.capacity_rps_per_instance
    svc = model.service_time_s
    wait_budget = model.slo_p99_s - svc
    rps = demand.rps
    for mi in range(minutes):
        t_min = mi * 60.0
        newest = mi - delay_minutes
        fleet.catch_up(t_min)
        if tt is not None and minute_metric is not None and newest >= 0:
            fired = False
            if tt_metric != "concurrency":
                fired = tt.scale_out(_tail(minute_metric, newest, model.scale_out_datapoints), fleet, t_min)
            else:  # scale-in on the 1-minute average unless the 10-second scale-out alarm is in ALARM
                hr = _tail(conc_step, mi * k - delay_steps, model.scale_out_datapoints)
                fired = len(hr) >= model.scale_out_datapoints and bool((hr > tt.target).all())
            if not fired:
                tt.scale_in(_tail(minute_metric, newest, model.scale_in_datapoints), fleet, t_min)
        if from_zero and newest >= 0 and failures[newest] > 0 and fleet.desired == 0:
            fleet.request(1, t_min)  # the step-scaling policy on NoCapacityInvocationFailures (AWS)
        if hook is not None:
            hook(index[mi], mi, fleet, t_min)
        min_cap[mi] = fleet.min_capacity
        arrivals_minute = 0.0
        viol_minute = 0.0
        served_minute = 0.0
        in_service_sum = 0.0
        conc_sum = 0.0
        qmax = 0.0
        for j in range(k):
            s = mi * k + j
            t = t_min + j * dt
            if j:
                fleet.catch_up(t)
            if step_hook is not None:
                fleet.backlog = backlog
                step_hook(s, fleet, t)
            if tt_metric == "concurrency" and tt is not None:
                tt.scale_out(_tail(conc_step, s - delay_steps, model.scale_out_datapoints), fleet, t)
            n = fleet.in_service(t)
            mu = n * mu1
            lam = rps[s]
            a = lam * dt
            if n == 0 and fleet.rejects_without_capacity:
                # no copy serving: every request is answered with an error at once, nothing queues
                failures[mi] += a
                viol_minute += a
                arrivals_minute += a
                conc_step[s] = math.nan  # no copy, no ConcurrentRequestsPerCopy datapoint
                backlog = 0.0
                billed[mi] += fleet.billed * dt / 3600.0
                continue
            b0 = backlog
            b1 = max(0.0, b0 + a - mu * dt)
            served = b0 + a - b1
            # requests arriving while the backlog ahead of them exceeds the SLO's waiting budget
            limit = wait_budget * mu
            if b0 > limit and b1 > limit:
                frac = 1.0
            elif b0 <= limit and b1 <= limit:
                frac = 0.0
            else:
                frac = (max(b0, b1) - limit) / abs(b1 - b0)
            viol_minute += frac * a
            arrivals_minute += a
            served_minute += served
            in_service_sum += n
            # requests in the containers (in service + queued), per in-service instance
            conc_step[s] = (served / dt * svc + 0.5 * (b0 + b1)) / n if n else float(b1 + a)
            conc_sum += conc_step[s]
            backlog = b1
            qmax = max(qmax, b1)
            billed[mi] += fleet.billed * dt / 3600.0
        invocations[mi] = arrivals_minute
        avg = in_service_sum / k
        avg_in_service[mi] = avg
        desired[mi] = fleet.desired
        conc_minute[mi] = conc_sum / k
        ipi[mi] = arrivals_minute / avg if avg else 0.0
        util = served_minute / (avg * mu1 * 60.0) if avg else 0.0
        cpu[mi] = model.cpu_at_saturation_pct * min(1.0, util)
        if not avg and fleet.rejects_without_capacity:
            # A component with no copy publishes no per-copy datapoint: its target-tracking alarms see
            # missing data (neither above nor below target), so they neither scale out nor scale in.
            ipi[mi] = cpu[mi] = conc_minute[mi] = math.nan
        violating[mi] = viol_minute
        breach[mi] = arrivals_minute > 0 and viol_minute > 0.01 * arrivals_minute
        queue_peak[mi] = qmax
        if progress is not None:
            progress(1)
    first = demand.warmup_steps // k
    decisions = getattr(hook, "decisions", [])
    ev = index[first:]
    return PolicyResult(
        name=name,
        breach_minutes=int(breach[first:].sum()),
        slo_violating_requests=float(violating[first:].sum()),
        peak_queue=float(queue_peak[first:].max(initial=0.0)),
        instance_hours=float(billed[first:].sum()),
        capacity=pd.Series(avg_in_service[first:], index=ev, name=name),
        min_capacity=pd.Series(min_cap[first:], index=ev, name=name),
        breach=pd.Series(breach[first:], index=ev, name=name),
        decisions=[d for d in decisions if d[0] >= index[first]] if first < minutes else decisions,
        queue=pd.Series(queue_peak[first:], index=ev, name=name),
        desired=pd.Series(desired[first:], index=ev, name=name),
        refused=fleet.refused,
        deferred=int(getattr(hook, "deferred", 0)),
        billed=pd.Series(billed[first:] * 60.0, index=ev, name=name),
    )


def _scheduled_prewarm(model: EndpointModel, raise_to: int = 4, at_minute: int = 58,
                       back_at_minute: int = 10) -> Callable[[np.ndarray, pd.DatetimeIndex], MinuteHook]:
    """The hand-written schedule: MinCapacity 4 at minute 58 of every hour, back to 2 at minute 10
    (scheduled actions of Application Auto Scaling: RegisterScalableTarget at those minutes)."""

    def factory(_invocations: np.ndarray, _index: pd.DatetimeIndex) -> MinuteHook:
        def hook(now: pd.Timestamp, _mi: int, fleet: _Fleet, t: float) -> None:
            if now.minute == at_minute:
                fleet.register(min(raise_to, model.max_capacity), t)
            elif now.minute == back_at_minute:
                fleet.register(model.min_capacity, t)

        return hook

    return factory


class _AwsPredictiveScaling:
    """What EC2/ECS predictive scaling would do for a SageMaker variant (mode ForecastAndScale).

    From AWS's documentation of predictive scaling: the load metric (here ``Invocations``) is forecast
    hourly from up to 14 days of history, and only once at least 24 hours are there; the capacity
    forecast for each hour is the hourly load divided by the scaling metric's target (here
    ``target_invocations_per_instance`` per minute); that capacity becomes the MinCapacity at the start
    of the hour, ``SchedulingBufferTime`` earlier (default here 300 s, at most 3600 s); predictive scaling
    only scales out (a lower forecast lowers MinCapacity, and target tracking does the scale-in), and
    honours MaxCapacity. Target tracking on InvocationsPerInstance runs alongside. AWS's forecasting
    model is not published: the hourly forecast here is the mean of the same hour of the day over the
    days of history (up to 14).
    """

    def __init__(self, invocations: np.ndarray, index: pd.DatetimeIndex, model: EndpointModel) -> None:
        self.invocations = invocations
        self.index = index
        self.model = model
        self.visible_lag = 1 + model.metric_delay_s // 60
        self.buffer = pd.Timedelta(seconds=model.predictive_scaling_buffer_s)
        self.forecasts: list[tuple[pd.Timestamp, int]] = []  # (hour, capacity) for plots and tests

    def forecast_capacity(self, mi: int, hour: pd.Timestamp) -> int | None:
        """Capacity for the hour starting at ``hour``, from the minutes visible at minute ``mi``;
        None with less than 24 hours of history."""
        end = max(0, mi - self.visible_lag + 1)
        start = max(0, end - self.model.predictive_scaling_history_days * 1440)
        if end - start < 1440:
            return None
        hist = pd.Series(self.invocations[start:end], index=self.index[start:end])
        hourly = hist.resample("h").agg(["sum", "count"])
        same = hourly[(hourly["count"] == 60) & (pd.DatetimeIndex(hourly.index).hour == hour.hour)]
        if same.empty:
            return None
        per_minute = float(same["sum"].mean()) / 60.0
        return math.ceil(round(per_minute / self.model.target_invocations_per_instance, 9))

    def __call__(self, now: pd.Timestamp, mi: int, fleet: _Fleet, t: float) -> None:
        hour = now + self.buffer
        if hour.minute != 0 or hour.second != 0:
            return
        capacity = self.forecast_capacity(mi, hour)
        if capacity is None:
            return
        capacity = max(self.model.min_capacity, min(self.model.max_capacity, capacity))
        self.forecasts.append((hour, capacity))
        fleet.register(capacity, t)


class _PredictiveHook:
    """Each simulated minute: the same ``decide`` the Lambdas call, on what CloudWatch shows by then;
    while the endpoint is ``Updating`` the tick defers (changes nothing), as ``service.py`` does."""

    def __init__(self, invocations: np.ndarray, index: pd.DatetimeIndex, settings: PlannerSettings,
                 model: EndpointModel, history_minutes: int = 14 * 1440) -> None:
        self.invocations = invocations
        self.index = index
        self.settings = settings
        self.model = model
        self.history_minutes = history_minutes
        self.owned: int | None = None
        self.owned_since: pd.Timestamp | None = None
        self.watchdog_at: pd.Timestamp | None = None
        self.decisions: list[tuple[pd.Timestamp, Decision]] = []
        self.deferred = 0
        self.lead_times: list[int] = []  # the lead time (s) of each tick that decided
        self._settings_by_lead: dict[int, PlannerSettings] = {settings.lead_time_s: settings}
        self._lead_key: tuple[int, int] = (0, 0)  # (scale-outs asked for, completed among those read)
        self._lead = settings.lead_time_s
        # What the Lambda reads at a tick: the complete minutes before floor(now) - 2 (the CloudWatch
        # reader drops the newest two as incomplete), or less if the twin publishes later than that.
        self.visible_lag = max(INCOMPLETE_MINUTES + 1, 1 + model.metric_delay_s // 60)
        # ... over its whole window (HISTORY_DAYS), zero-filled before the endpoint's first minute as
        # the CloudWatch reader fills minutes with no datapoint: the run's minutes after
        # ``history_minutes`` of zeros (prescaler.history.window), copied in as the run publishes them.
        padded = window(pd.Series(np.zeros(len(index)), index=index),
                        (index[-1] if len(index) else pd.Timestamp(0, tz="UTC")) + MINUTE,
                        (len(index) + history_minutes) * MINUTE)
        self._padded_index = padded.index
        self._padded = padded.to_numpy(copy=True)
        self._published = 0  # run minutes copied into ``_padded``

    def visible_history(self, mi: int) -> pd.Series:
        """The window the Lambda would read at minute ``mi``'s start: the ``history_minutes`` before
        ``mi - 2`` (``[.., mi - 3]`` by default), zero before the run's first minute."""
        end = max(0, mi - self.visible_lag + 1)
        h = self.history_minutes
        if end > self._published:
            self._padded[h + self._published:h + end] = self.invocations[self._published:end]
            self._published = end
        # run minute i is at h + i: its window [end - h, end) is [end, end + h); a copy, so that
        # later minutes of the run never show through
        return pd.Series(self._padded[end:end + h].copy(), index=self._padded_index[end:end + h], name="invocations")

    def learned_settings(self, fleet: _Fleet, now: pd.Timestamp, t: float) -> PlannerSettings:
        """The planner settings with the lead time the Lambda would learn at ``t``: from the newest
        :data:`ACTIVITIES_READ` scale-outs, those completed count (as ``service.py`` does it)."""
        read = fleet.scale_outs[-ACTIVITIES_READ:]
        completed = [a for a in read if a[1] <= t]
        key = (len(fleet.scale_outs), len(completed))  # the learned value changes only with these
        if key != self._lead_key:
            t0 = now - pd.Timedelta(seconds=t)
            done = [Activity(str(i), "Successful", t0 + pd.Timedelta(seconds=start), t0 + pd.Timedelta(seconds=end),
                             low, high, f"Setting desired instance count to {high}.", "")
                    for i, (start, end, low, high) in enumerate(completed)]
            self._lead_key, self._lead = key, lead_time_s(done, self.settings.lead_time_s)[0]
        lead = self._lead
        if lead not in self._settings_by_lead:
            self._settings_by_lead[lead] = self.settings.model_copy(update={"lead_time_s": lead})
        return self._settings_by_lead[lead]

    def __call__(self, now: pd.Timestamp, mi: int, fleet: _Fleet, t: float) -> None:
        if fleet.updating(t):
            self.deferred += 1  # service.py: "endpoint ... is Updating, not InService: deferred"
            return
        if mi < self.visible_lag:
            return  # nothing published yet: the Lambda reads no datapoint and holds (no_data)
        history = self.visible_history(mi)
        state = TargetState(fleet.min_capacity, fleet.max_capacity, fleet.desired, self.owned, self.owned_since,
                            self.watchdog_at)
        settings = self.learned_settings(fleet, now, t)
        self.lead_times.append(settings.lead_time_s)
        decision = decide(history, state, settings, now)
        if decision.watchdog_fired:
            self.watchdog_at = now
        if decision.action != "hold":
            self.decisions.append((now, decision))
        if decision.action == "raise":
            fleet.register(decision.min_capacity, t)
            if self.owned is None:
                self.owned_since = now
            self.owned = decision.min_capacity
        elif decision.action == "relax":
            if decision.changes_min_capacity:
                fleet.register(decision.min_capacity, t)
                if decision.min_capacity > self.settings.baseline_min_capacity:
                    self.owned = decision.min_capacity
                else:
                    self.owned, self.owned_since = None, None
            if decision.desired_instances is not None and decision.desired_instances < fleet.desired:
                fleet.request(max(fleet.min_capacity, decision.desired_instances), t)


def _oracle(demand: Demand, model: EndpointModel, progress: Callable[[int], None] | None = None) -> PolicyResult:
    """Knows the future and provisions instantly, within the baseline MinCapacity and MaxCapacity:
    in-service capacity each step is what serves the step's arrivals and any backlog,
    ``clip(ceil((arrivals + backlog) / per-instance capacity per step), MinCapacity, MaxCapacity)``,
    through the same queue. It breaches only where MaxCapacity cannot serve the demand, and drains
    such a backlog as fast as MaxCapacity allows (no policy can drain it faster)."""
    dt = float(demand.step_s)
    per_step = model.capacity_rps_per_instance * dt

    def step(s: int, fleet: _Fleet, t: float) -> None:
        fleet.request(math.ceil(round((demand.rps[s] * dt + fleet.backlog) / per_step, 9)), t)

    return _simulate("oracle", demand, model, 0, None, None, progress, step_hook=step, instant=True)
def default_planner_settings(model: EndpointModel) -> PlannerSettings:
    """Planner settings that match the twin's endpoint (target, baseline, MaxCapacity)."""
    return PlannerSettings(
        target_invocations_per_instance=model.target_invocations_per_instance,
        baseline_min_capacity=model.min_capacity,
        scale_to_zero=model.component is not None and model.min_capacity == 0,
        prescale_max_capacity=model.max_capacity,
    )


def run(
    demand: Demand,
    policies: tuple[str, ...] = POLICIES,
    model: EndpointModel | None = None,
    settings: PlannerSettings | None = None,
    seed: int = 7,
    progress: Callable[[str, int], None] | None = None,
) -> dict[str, PolicyResult]:
    """Simulate each policy on the same demand (same provisioning-delay seed).

    Args:
        demand: the demand curve (see :mod:`prescaler.sim.scenarios`).
        policies: names from :data:`POLICIES`.
        model: twin constants. settings: the predictive policy's planner settings.
        seed: provisioning-delay seed.
        progress: called with (policy name, minutes done since the last call).

    Raises:
        ValueError: an unknown policy name, or demand that is not finite, negative, or above
            :data:`prescaler.sim.scenarios.MAX_RPS` requests/s (it would overflow instance counts).
    """
    from prescaler.sim.scenarios import MAX_RPS

    model = model or EndpointModel()
    settings = settings or default_planner_settings(model)
    unknown = [p for p in policies if p not in POLICIES]
    if unknown:
        raise ValueError(f"unknown policy {unknown[0]!r}; choose from {', '.join(POLICIES)}")
    rps = np.asarray(demand.rps, dtype=float)
    if len(rps) and not (np.isfinite(rps).all() and rps.min() >= 0 and rps.max() <= MAX_RPS):
        raise ValueError(f"demand {demand.name}: requests/s must be finite, >= 0 and <= {MAX_RPS:g} "
                         f"(found {rps.min():g} to {rps.max():g})")
    results: dict[str, PolicyResult] = {}
    for name in policies:
        tick = (lambda n, _name=name: progress(_name, n)) if progress else None
        if name == "oracle":
            results[name] = _oracle(demand, model, tick)
        elif name == "cpu-target-tracking":
            results[name] = _simulate(name, demand, model, seed, "cpu", None, tick)
        elif name == "invocations-target-tracking":
            results[name] = _simulate(name, demand, model, seed, "invocations", None, tick)
        elif name == "concurrency-target-tracking":
            results[name] = _simulate(name, demand, model, seed, "concurrency", None, tick)
        elif name == "scheduled-prewarm":
            results[name] = _simulate(name, demand, model, seed, "invocations", _scheduled_prewarm(model), tick)
        elif name == "aws-predictive-scaling":
            def aws(inv: np.ndarray, idx: pd.DatetimeIndex) -> MinuteHook:
                return _AwsPredictiveScaling(inv, idx, model)

            results[name] = _simulate(name, demand, model, seed, "invocations", aws, tick)
        else:
            s = settings

            def factory(inv: np.ndarray, idx: pd.DatetimeIndex, _s: PlannerSettings = s) -> MinuteHook:
                return _PredictiveHook(inv, idx, _s, model)

            results[name] = _simulate(name, demand, model, seed, model.backstop, factory, tick)
    return results
