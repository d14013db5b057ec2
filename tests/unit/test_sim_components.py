"""The twin's inference component (issue 11 §3): copies on shared instances, copy start-up, instance
scale-out underneath, errors at zero copies, and the policies compared on ``llm-workday``. The
expectations come from AWS's documented semantics, not from this project's policy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from prescaler.sim import scenarios, twin
from prescaler.sim.scenarios import Demand

pytestmark = pytest.mark.unit

K = 60 // scenarios.STEP_S
PLACEMENT = twin.ComponentModel(copies_per_instance=2, copy_startup_s=(60.0, 120.0), max_instances=4)


def component(min_copies: int = 0, **kw: object) -> twin.EndpointModel:
    return twin.EndpointModel(min_capacity=min_copies, max_capacity=8, component=PLACEMENT, **kw)  # type: ignore[arg-type]


def per_minute(rps_per_minute: np.ndarray, warmup_minutes: int = 0) -> Demand:
    return Demand("shaped", pd.Timestamp("2026-03-02", tz="UTC"), np.repeat(np.asarray(rps_per_minute, float), K),
                  scenarios.STEP_S, warmup_minutes * K)


def test_a_copy_on_an_instance_with_room_serves_after_the_copy_start_up_not_an_instance_provisioning() -> None:
    """A copy placed on an instance that has free accelerators only loads the model; a copy that does
    not fit waits for managed instance scaling to add an instance first (SageMaker developer guide,
    inference components: instances scale out when copies cannot be placed)."""
    model = component(1)
    fleet = twin._ComponentFleet(model, np.random.default_rng(3), 1)
    assert (fleet.desired, fleet.billed) == (1, 1)
    # the second copy fits on the first instance: copy start-up only
    assert fleet.request(2, 0.0)
    assert fleet.billed == 1
    lo, hi = PLACEMENT.copy_startup_s
    assert lo <= max(fleet.ready_at) <= hi
    # the third does not fit: a new instance (2-4 min), then the copy start-up on it
    t = max(fleet.ready_at)
    assert fleet.request(3, t)
    assert fleet.billed == 2
    p_lo, p_hi = model.provisioning_s
    assert t + p_lo + lo <= max(fleet.ready_at) <= t + p_hi + hi
    # the component is Updating until its new copy serves, and refuses another change meanwhile
    assert not fleet.request(6, t + 1)
    # scaling in releases the instance that has no copy left; billing follows instances, not copies
    done = max(fleet.ready_at)
    assert fleet.request(1, done)
    assert (fleet.desired, fleet.billed) == (1, 1)


def test_scale_to_zero_releases_every_instance_and_scale_from_zero_pays_instance_and_copy_start_up() -> None:
    model = component(0)
    fleet = twin._ComponentFleet(model, np.random.default_rng(4), 2)
    assert fleet.request(0, 0.0) and (fleet.desired, fleet.billed) == (0, 0)
    t = 1000.0
    assert fleet.request(1, t)
    assert fleet.billed == 1 and fleet.in_service(t + model.provisioning_s[0]) == 0
    assert max(fleet.ready_at) >= t + model.provisioning_s[0] + PLACEMENT.copy_startup_s[0]


def test_with_no_copy_serving_requests_fail_at_once_and_nothing_queues() -> None:
    """With zero copies SageMaker answers InvokeEndpoint with an error (NoCapacityInvocationFailures),
    it does not queue: every request of those minutes is over the SLO, the backlog stays empty."""
    demand = per_minute(np.r_[np.zeros(10), np.full(20, 20.0)])
    tt = "invocations-target-tracking"
    result = twin.run(demand, policies=(tt,), model=component(0))[tt]
    minutes = result.breach
    # the first minute with traffic fails, and so does every minute until a copy serves
    assert bool(minutes.iloc[10])
    assert result.queue is not None and result.queue.iloc[10] == 0.0
    assert result.slo_violating_requests >= 20.0 * 60  # the whole first minute, at least


def test_target_tracking_cannot_scale_out_from_zero_the_step_policy_on_failures_does_after_its_delays() -> None:
    """AWS: target tracking on InvocationsPerCopy has no datapoint at zero copies; scaling from zero is
    a step-scaling policy on the NoCapacityInvocationFailures alarm. So the first requests after a
    quiet period fail for at least the metric's delay plus an instance's provisioning plus a copy's
    start-up (no instance is left at zero copies)."""
    model = component(0)
    demand = per_minute(np.r_[np.zeros(30), np.full(30, 20.0)])
    result = twin.run(demand, policies=("invocations-target-tracking",), model=model)["invocations-target-tracking"]
    failing = int(result.breach.iloc[30:].sum())
    floor_s = 60 + model.metric_delay_s + model.provisioning_s[0] + PLACEMENT.copy_startup_s[0]
    assert failing >= floor_s // 60
    # ... and once the copy serves, the traffic is served (20 req/s fits one copy of 50)
    assert not bool(result.breach.iloc[-5:].any())
    assert result.desired is not None and result.desired.iloc[-1] >= 1


def test_the_oracle_on_a_component_has_no_failure_and_bills_instances() -> None:
    demand = per_minute(np.r_[np.zeros(10), np.full(10, 120.0), np.zeros(10)])
    result = twin.run(demand, policies=("oracle",), model=component(0))["oracle"]
    assert result.breach_minutes == 0
    # 120 req/s needs 3 copies of 50: 2 instances of 2 copies, for 10 minutes, none at zero demand
    assert result.instance_hours == pytest.approx(2 * 10 / 60, rel=0.05)


def test_min_capacity_zero_is_only_a_components() -> None:
    with pytest.raises(ValueError, match="0 <= MinCapacity"):
        twin.EndpointModel(min_capacity=-1, component=PLACEMENT)
    with pytest.raises(ValueError, match="1 <= MinCapacity"):
        twin.EndpointModel(min_capacity=0)
    with pytest.raises(ValueError, match="do not fit"):
        twin.EndpointModel(min_capacity=0, max_capacity=9, component=PLACEMENT)


@pytest.fixture(scope="module")
def workday() -> dict[str, dict[str, twin.PolicyResult]]:
    demand = scenarios.llm_workday(days_evaluated=1, warmup_days=4, seed=7)
    return {"zero": twin.run(demand, model=component(0), seed=7),
            "one": twin.run(demand, policies=("invocations-target-tracking", "predictive"), model=component(1), seed=7)}


def test_llm_workday_compares_every_policy_on_the_component(workday: dict) -> None:
    results = workday["zero"]
    assert set(results) == set(twin.POLICIES)
    oracle = results["oracle"]
    for name, r in results.items():
        if r.breach_minutes == 0:  # no policy that serves every request is cheaper than the oracle
            assert r.instance_hours >= oracle.instance_hours * 0.999, name
    # the reactive policies pay for scale from zero with failed requests at 02:00 and 08:00
    assert results["invocations-target-tracking"].breach_minutes > 0


def test_predictive_brings_the_component_back_from_zero_before_the_traffic(workday: dict) -> None:
    r = workday["zero"]["predictive"]
    # Then the nightly batch (02:00) and the working day (08:00) find copies serving
    day = r.breach.index[0].normalize()
    for back in (pd.Timedelta(hours=2), pd.Timedelta(hours=8)):
        window = r.breach[day + back: day + back + pd.Timedelta(minutes=10)]
        assert not window.any(), f"requests failed at {day + back}"
        assert r.capacity[day + back] >= 1
    # and at night, with nothing to serve, it is at zero copies (the operator allowed it)
    assert r.desired is not None and r.desired[day + pd.Timedelta(hours=5)] == 0


def test_no_policy_takes_a_component_to_zero_the_operator_did_not_allow(workday: dict) -> None:
    for name, r in workday["one"].items():
        assert r.desired is not None and r.desired.min() >= 1, name
        assert r.min_capacity.min() >= 1, name
