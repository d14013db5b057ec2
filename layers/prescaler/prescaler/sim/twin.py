"""The endpoint twin: one SageMaker variant under a demand curve, and the policies that scale it.

Model (PROBLEM.md and ARCHITECTURE.md; constants in :class:`EndpointModel`):
- ``step_s``-second steps (10 s). Each in-service instance serves 50 requests/s; a request takes
  35 ms of service; what cannot be served waits in a FIFO backlog (fluid queue), so a request's
  latency is 35 ms plus the backlog ahead of it divided by the fleet's service rate.
- Scaling: the desired instance count changes at once; a new instance is ``InService`` after a
  provisioning delay drawn uniformly from 2-4 minutes (seeded) and is billed from the request;
  scale-in removes pending instances first, at once.
- CloudWatch: one datapoint per minute (``Invocations`` Sum, ``InvocationsPerInstance`` = Invocations
  / in-service instances, ``CPUUtilization`` ~35% at GPU saturation), visible 60 s after its minute
  ends. Target tracking: scale out when the 3 newest datapoints are above target, scale in when 15
  are below 90% of target (AWS documents these), new capacity = ceil(capacity x metric / target),
  cooldowns 60 s out and 300 s in. Raising MinCapacity scales out at once.
- Policies act at each minute boundary. ``predictive`` calls :func:`prescaler.plan.decide` (the
  code the Lambdas run) with only the datapoints visible at that moment.

Scores (evaluated period only): ``breach_minutes`` (minutes whose p99 latency exceeds the SLO),
``slo_violating_requests``, ``peak_queue`` (requests), ``instance_hours`` (billed, pending included).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from prescaler.history import INCOMPLETE_MINUTES
from prescaler.plan import Decision, PlannerSettings, TargetState, decide
from prescaler.sim.scenarios import Demand

POLICIES = (
    "cpu-target-tracking",
    "invocations-target-tracking",
    "scheduled-prewarm",
    "predictive",
    "oracle",
)


@dataclass(frozen=True)
class EndpointModel:
    """Constants of the twin (defaults: PROBLEM.md's ml.g5.xlarge image classifier)."""

    capacity_rps_per_instance: float = 50.0  # one instance saturates at ~50 requests/s
    service_time_s: float = 0.035  # GPU forward pass
    provisioning_s: tuple[float, float] = (120.0, 240.0)  # API call to InService: 2-4 minutes
    metric_delay_s: int = 60  # a minute's datapoint is visible about a minute after it ends
    cpu_at_saturation_pct: float = 35.0  # GPU-bound: CPU is ~35% busy at saturation
    slo_p99_s: float = 0.5  # p99 latency SLO (service + queueing)
    min_capacity: int = 2
    max_capacity: int = 8
    target_invocations_per_instance: float = 2400.0  # per minute (= 40 RPS, 20% under saturation)
    target_cpu_pct: float = 70.0
    scale_out_cooldown_s: int = 60
    scale_in_cooldown_s: int = 300
    scale_out_datapoints: int = 3  # AWS documents 3 datapoints for scale-out
    scale_in_datapoints: int = 15  # ... and 15 below 90% of target for scale-in
    scale_in_ratio: float = 0.9


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

    def scores(self) -> dict[str, float | int]:
        return {
            "breach_minutes": int(self.breach_minutes),
            "slo_violating_requests": round(float(self.slo_violating_requests), 1),
            "peak_queue": round(float(self.peak_queue), 1),
            "instance_hours": round(float(self.instance_hours), 3),
        }


class _Fleet:
    """Instances of one variant: ready times in seconds; billing from the scaling request."""

    def __init__(self, model: EndpointModel, rng: np.random.Generator, initial: int) -> None:
        self.model = model
        self.rng = rng
        self.ready_at: list[float] = [-1e9] * initial
        self.min_capacity = model.min_capacity
        self.max_capacity = model.max_capacity

    @property
    def desired(self) -> int:
        return len(self.ready_at)

    def in_service(self, t: float) -> int:
        return sum(1 for r in self.ready_at if r <= t)

    def set_desired(self, n: int, t: float) -> None:
        n = max(self.min_capacity, min(self.max_capacity, n))
        while len(self.ready_at) < n:
            lo, hi = self.model.provisioning_s
            self.ready_at.append(t + float(self.rng.uniform(lo, hi)))
        if len(self.ready_at) > n:
            self.ready_at.sort()  # pending (latest ready) are removed first
            del self.ready_at[n:]

    def set_min_capacity(self, n: int, t: float) -> None:
        """RegisterScalableTarget: a higher MinCapacity moves capacity into range at once."""
        self.min_capacity = n
        if self.desired < n:
            self.set_desired(n, t)


class _TargetTracking:
    """A target-tracking policy: the alarms AWS creates for it, evaluated on visible datapoints."""

    def __init__(self, model: EndpointModel, target: float) -> None:
        self.model = model
        self.target = target
        self.last_out = -1e9
        self.last_in = -1e9

    def evaluate(self, metric: np.ndarray, capacity: np.ndarray, newest: int, fleet: _Fleet, t: float) -> None:
        m = self.model
        n_out, n_in = m.scale_out_datapoints, m.scale_in_datapoints
        if newest + 1 >= n_out and (metric[newest - n_out + 1: newest + 1] > self.target).all():
            want = math.ceil(capacity[newest] * metric[newest] / self.target)
            if want > fleet.desired and t - self.last_out >= m.scale_out_cooldown_s:
                fleet.set_desired(want, t)
                self.last_out = t
            return
        if newest + 1 >= n_in and (metric[newest - n_in + 1: newest + 1] < m.scale_in_ratio * self.target).all():
            want = max(fleet.min_capacity, math.ceil(capacity[newest] * metric[newest] / self.target))
            if (want < fleet.desired and t - self.last_in >= m.scale_in_cooldown_s
                    and t - self.last_out >= m.scale_in_cooldown_s):
                fleet.set_desired(want, t)
                self.last_in = t


MinuteHook = Callable[[pd.Timestamp, int, _Fleet, float], None]


def _simulate(
    name: str,
    demand: Demand,
    model: EndpointModel,
    seed: int,
    tt_metric: str | None,
    hook_factory: Callable[[np.ndarray, pd.DatetimeIndex], MinuteHook] | None = None,
    progress: Callable[[int], None] | None = None,
) -> PolicyResult:
    rng = np.random.default_rng(seed)
    fleet = _Fleet(model, rng, model.min_capacity)
    k = demand.steps_per_minute
    minutes = demand.minutes
    dt = float(demand.step_s)
    index = pd.date_range(demand.start, periods=minutes, freq="min", name="minute")
    invocations = np.zeros(minutes)
    avg_in_service = np.zeros(minutes)
    cpu = np.zeros(minutes)
    min_cap = np.zeros(minutes)
    breach = np.zeros(minutes, dtype=bool)
    violating = np.zeros(minutes)
    queue_peak = np.zeros(minutes)
    billed = np.zeros(minutes)
    ipi = np.zeros(minutes)
    tt = None
    if tt_metric == "invocations":
        tt = _TargetTracking(model, model.target_invocations_per_instance)
    elif tt_metric == "cpu":
        tt = _TargetTracking(model, model.target_cpu_pct)
    hook = hook_factory(invocations, index) if hook_factory else None
    delay_minutes = 1 + model.metric_delay_s // 60  # newest visible datapoint at a minute boundary
    backlog = 0.0
    mu1 = model.capacity_rps_per_instance
    wait_budget = model.slo_p99_s - model.service_time_s
    rps = demand.rps
    for mi in range(minutes):
        t_min = mi * 60.0
        newest = mi - delay_minutes
        if tt is not None and newest >= 0:
            metric = ipi if tt_metric == "invocations" else cpu
            tt.evaluate(metric, avg_in_service, newest, fleet, t_min)
        if hook is not None:
            hook(index[mi], mi, fleet, t_min)
        min_cap[mi] = fleet.min_capacity
        arrivals_minute = 0.0
        viol_minute = 0.0
        served_minute = 0.0
        in_service_sum = 0.0
        qmax = 0.0
        for j in range(k):
            t = t_min + j * dt
            n = fleet.in_service(t)
            mu = n * mu1
            lam = rps[mi * k + j]
            a = lam * dt
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
            backlog = b1
            qmax = max(qmax, b1)
            billed[mi] += fleet.desired * dt / 3600.0
        invocations[mi] = arrivals_minute
        avg = in_service_sum / k
        avg_in_service[mi] = avg
        ipi[mi] = arrivals_minute / avg if avg else 0.0
        util = served_minute / (avg * mu1 * 60.0) if avg else 0.0
        cpu[mi] = model.cpu_at_saturation_pct * min(1.0, util)
        violating[mi] = viol_minute
        breach[mi] = arrivals_minute > 0 and viol_minute > 0.01 * arrivals_minute
        queue_peak[mi] = qmax
        if progress is not None:
            progress(1)
    first = demand.warmup_steps // k
    decisions = getattr(hook, "decisions", [])
    return PolicyResult(
        name=name,
        breach_minutes=int(breach[first:].sum()),
        slo_violating_requests=float(violating[first:].sum()),
        peak_queue=float(queue_peak[first:].max(initial=0.0)),
        instance_hours=float(billed[first:].sum()),
        capacity=pd.Series(avg_in_service[first:], index=index[first:], name=name),
        min_capacity=pd.Series(min_cap[first:], index=index[first:], name=name),
        breach=pd.Series(breach[first:], index=index[first:], name=name),
        decisions=[d for d in decisions if d[0] >= index[first]] if first < minutes else decisions,
    )


def _scheduled_prewarm(model: EndpointModel, raise_to: int = 4, at_minute: int = 58,
                       back_at_minute: int = 10) -> Callable[[np.ndarray, pd.DatetimeIndex], MinuteHook]:
    """The hand-written schedule: MinCapacity 4 at minute 58 of every hour, back to 2 at minute 10."""

    def factory(_invocations: np.ndarray, _index: pd.DatetimeIndex) -> MinuteHook:
        def hook(now: pd.Timestamp, _mi: int, fleet: _Fleet, t: float) -> None:
            if now.minute == at_minute:
                fleet.set_min_capacity(raise_to, t)
            elif now.minute == back_at_minute:
                fleet.set_min_capacity(model.min_capacity, t)

        return hook

    return factory


class _PredictiveHook:
    """Each simulated minute: the same ``decide`` the Lambdas call, on what CloudWatch shows by then."""

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
        # What the Lambda reads at a tick: the complete minutes before floor(now) - 2 (the CloudWatch
        # reader drops the newest two as incomplete), or less if the twin publishes later than that.
        self.visible_lag = max(INCOMPLETE_MINUTES + 1, 1 + model.metric_delay_s // 60)

    def visible_history(self, mi: int) -> pd.Series:
        """The minutes the Lambda would read at minute ``mi``'s start: ``[.., mi - 3]`` by default."""
        end = max(0, mi - self.visible_lag + 1)
        start = max(0, end - self.history_minutes)
        # a copy: later minutes of the run must never show through
        return pd.Series(self.invocations[start:end].copy(), index=self.index[start:end], name="invocations")

    def __call__(self, now: pd.Timestamp, mi: int, fleet: _Fleet, t: float) -> None:
        history = self.visible_history(mi)
        if len(history) == 0:
            return
        state = TargetState(fleet.min_capacity, fleet.max_capacity, fleet.desired, self.owned, self.owned_since,
                            self.watchdog_at)
        decision = decide(history, state, self.settings, now)
        if decision.watchdog_fired:
            self.watchdog_at = now
        if decision.action != "hold":
            self.decisions.append((now, decision))
        if decision.action == "raise":
            fleet.set_min_capacity(decision.min_capacity, t)
            if self.owned is None:
                self.owned_since = now
            self.owned = decision.min_capacity
        elif decision.action == "relax":
            if decision.changes_min_capacity:
                fleet.set_min_capacity(decision.min_capacity, t)
                if decision.min_capacity > self.settings.baseline_min_capacity:
                    self.owned = decision.min_capacity
                else:
                    self.owned, self.owned_since = None, None
            if decision.desired_instances is not None and decision.desired_instances < fleet.desired:
                fleet.set_desired(max(fleet.min_capacity, decision.desired_instances), t)


def _oracle(demand: Demand, model: EndpointModel) -> PolicyResult:
    """Knows the future and provisions instantly, keeping the baseline MinCapacity: in-service
    capacity each step is ``max(MinCapacity, ceil(demand / per-instance capacity))``."""
    k = demand.steps_per_minute
    need = np.ceil(np.round(demand.rps / model.capacity_rps_per_instance, 9))
    cap = np.clip(need, model.min_capacity, None)[: demand.minutes * k]
    first = demand.warmup_steps // k
    per_min = cap.reshape(-1, k)
    index = pd.date_range(demand.start, periods=demand.minutes, freq="min", name="minute")
    return PolicyResult(
        name="oracle",
        breach_minutes=0,
        slo_violating_requests=0.0,
        peak_queue=0.0,
        instance_hours=float(per_min[first:].sum() * demand.step_s / 3600.0),
        capacity=pd.Series(per_min.mean(axis=1)[first:], index=index[first:], name="oracle"),
        min_capacity=pd.Series(float(model.min_capacity), index=index[first:], name="oracle"),
        breach=pd.Series(False, index=index[first:], name="oracle"),
    )


def default_planner_settings(model: EndpointModel) -> PlannerSettings:
    """Planner settings that match the twin's endpoint (target, baseline, MaxCapacity)."""
    return PlannerSettings(
        target_invocations_per_instance=model.target_invocations_per_instance,
        baseline_min_capacity=model.min_capacity,
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
        ValueError: an unknown policy name.
    """
    model = model or EndpointModel()
    settings = settings or default_planner_settings(model)
    unknown = [p for p in policies if p not in POLICIES]
    if unknown:
        raise ValueError(f"unknown policy {unknown[0]!r}; choose from {', '.join(POLICIES)}")
    results: dict[str, PolicyResult] = {}
    for name in policies:
        tick = (lambda n, _name=name: progress(_name, n)) if progress else None
        if name == "oracle":
            results[name] = _oracle(demand, model)
            if tick:
                tick(demand.minutes)
        elif name == "cpu-target-tracking":
            results[name] = _simulate(name, demand, model, seed, "cpu", None, tick)
        elif name == "invocations-target-tracking":
            results[name] = _simulate(name, demand, model, seed, "invocations", None, tick)
        elif name == "scheduled-prewarm":
            results[name] = _simulate(name, demand, model, seed, "invocations", _scheduled_prewarm(model), tick)
        else:
            s = settings

            def factory(inv: np.ndarray, idx: pd.DatetimeIndex, _s: PlannerSettings = s) -> MinuteHook:
                return _PredictiveHook(inv, idx, _s, model)

            results[name] = _simulate(name, demand, model, seed, "invocations", factory, tick)
    return results
