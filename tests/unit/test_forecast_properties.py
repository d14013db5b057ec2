"""Properties of the forecaster and planner in the twin (issue 10 §3, hypothesis).

- No lookahead: the predictive policy's decisions up to minute ``m`` never change when the demand
  after ``m`` changes (the forecast at ``t`` reads only what CloudWatch shows at ``t``).
- Never worse than the backstop: on bursty traffic with no pattern, ``predictive`` breaches no more
  minutes than target tracking alone and costs at most 5% more (hypothesis examples, plus the seeds
  where 35941c0 acted on a fit to noise, with either backstop).

Each example simulates hours of traffic minute by minute, so the example counts are small.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prescaler.history import SERIES_NAME
from prescaler.sim import scenarios, twin

pytestmark = pytest.mark.unit

START = pd.Timestamp("2026-03-02", tz="UTC")
SLOW = settings(max_examples=3, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _minutes(values: np.ndarray) -> pd.Series:
    index = pd.date_range(START, periods=len(values), freq="min", name="minute")
    return pd.Series(values, index=index, name=SERIES_NAME)


def _bursts(rng: np.random.Generator, minutes: int, rate_per_hour: float) -> np.ndarray:
    """Baseline ~2,400/min with bursts at Poisson times (no period), random height and length."""
    y = 2400.0 * rng.lognormal(0.0, 0.08, minutes)
    t = 0.0
    while True:
        t += rng.exponential(60.0 / rate_per_hour)
        if t >= minutes:
            return y
        a = int(t)
        y[a: a + int(rng.integers(2, 15))] *= rng.uniform(2.0, 6.0)


@SLOW
@given(seed=st.integers(0, 2**31 - 1), cut=st.integers(400, 470))
def test_no_lookahead_decisions_before_m_ignore_demand_after_m(seed: int, cut: int) -> None:
    # Given 8 hours of hourly spikes with noise, and a copy whose minutes from `cut` on are different
    rng = np.random.default_rng(seed)
    n = 480
    base = np.where(np.arange(n) % 60 < 10, 13200.0, 2400.0) * rng.lognormal(0.0, 0.05, n)
    other = base.copy()
    other[cut:] = _bursts(rng, n - cut, 12.0) * rng.uniform(0.2, 3.0)
    runs = []
    for values in (base, other):
        demand = scenarios.from_minutes(_minutes(values), "lookahead")
        runs.append(twin.run(demand, ("predictive",))["predictive"])
    a, b = runs
    # Then every decision made before `cut` is the same, and so is the capacity
    before = [(t, d.action, d.min_capacity, d.desired_instances) for t, d in a.decisions if t < a.capacity.index[cut]]
    assert before == [(t, d.action, d.min_capacity, d.desired_instances)
                      for t, d in b.decisions if t < b.capacity.index[cut]]
    np.testing.assert_array_equal(a.min_capacity.iloc[:cut], b.min_capacity.iloc[:cut])
    # (the property has something to compare: the spikes were acted on before the cut)
    assert any(d.action == "raise" for t, d in a.decisions if t < a.capacity.index[cut])


def _assert_never_worse(values: np.ndarray, backstop: str = "concurrency") -> None:
    demand = scenarios.from_minutes(_minutes(values), "bursts")
    # When target tracking alone and the pre-scaler on top of it run on the same demand
    peer = f"{backstop}-target-tracking"
    r = twin.run(demand, (peer, "predictive"), model=twin.EndpointModel(backstop=backstop))
    alone, predictive = r[peer], r["predictive"]
    # Then the pre-scaler breaches no more minutes and costs at most 5% more
    assert predictive.breach_minutes <= alone.breach_minutes
    assert predictive.instance_hours <= 1.05 * alone.instance_hours, (
        f"{predictive.instance_hours:.2f} h against {alone.instance_hours:.2f} h: "
        f"{[(t.strftime('%H:%M'), d.reason[:80]) for t, d in predictive.decisions[:3]]}")
    # (the traffic does breach the backstop: there is something to be worse at)
    assert alone.breach_minutes > 0


@settings(max_examples=12, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(seed=st.integers(0, 2**31 - 1), rate=st.floats(2.0, 12.0))
def test_never_worse_than_the_backstop_on_pattern_free_bursts(seed: int, rate: float) -> None:
    # Given 10 hours of bursts at Poisson times (no recurring structure)
    _assert_never_worse(_bursts(np.random.default_rng(seed), 600, rate))


#: Seeds (rate = 2 + seed % 11 bursts an hour) on which 35941c0 acted on a fit to noise: it cost up
#: to 32% more than the backstop alone, or breached more (157, 233, 301, 345 with the concurrency
#: backstop); found by a sweep of seeds 100-399, 17 of 298 failing with the concurrency backstop and
#: 36 with the invocations one (those listed under "invocations" are the ones not already listed
#: under "concurrency"). 244 is a noise fit (a 35-minute period on 4 hours of history) that a
#: draft of the rule let through.
NOISE_FITS = {
    "concurrency": (101, 110, 157, 176, 201, 209, 214, 220, 233, 244, 254, 297, 301, 345, 352, 353, 363, 377),
    "invocations": (102, 128, 134, 145, 155, 158, 166, 179, 232, 242, 286, 310, 396),
}


@pytest.mark.parametrize(("seed", "backstop"), [(s, b) for b, seeds in NOISE_FITS.items() for s in seeds])
def test_never_worse_than_the_backstop_where_noise_once_looked_like_a_pattern(seed: int, backstop: str) -> None:
    # Given 10 hours of bursts at Poisson times on which an hourly or a discovered period once seemed
    # to pay in the backtest
    _assert_never_worse(_bursts(np.random.default_rng(seed), 600, 2.0 + seed % 11), backstop)


def _jittered_bursts(rng: np.random.Generator, days: int) -> np.ndarray:
    """~2,000/min with a burst every hour whose start jitters from 4 minutes early to 4 late, 6-12
    minutes long, ~2.5x higher, one hour in ten skipped: faster than reactive scaling, recurring."""
    n = days * 1440
    y = 2000.0 * rng.lognormal(0.0, 0.1, n)
    for top in range(0, n, 60):
        if rng.random() < 0.1:
            continue
        s = max(0, top + int(rng.integers(-4, 5)))
        y[s: s + int(rng.integers(6, 13))] += 2000.0 * rng.lognormal(np.log(2.5), 0.2)
    return y


@pytest.mark.parametrize("seed", [0, 1])
def test_jittered_hourly_bursts_the_backstop_misses_are_caught(seed: int) -> None:
    # Given two days of hourly bursts with a jittered start (one warm-up day, one scored)
    values = _jittered_bursts(np.random.default_rng(seed), 2)
    demand = scenarios.from_minutes(_minutes(values), "jittered bursts", warmup_days=1)
    # When target tracking alone and the pre-scaler on top of it run on the same demand
    r = twin.run(demand, ("concurrency-target-tracking", "predictive"))
    backstop, predictive = r["concurrency-target-tracking"], r["predictive"]
    # Then the pre-scaler breaches at most half the minutes target tracking does (issue 10's target
    # for recurring structure), at no more than 1.05x its cost
    assert backstop.breach_minutes >= 60  # the bursts outrun reactive scaling: something to catch
    assert predictive.breach_minutes <= 0.5 * backstop.breach_minutes
    assert predictive.instance_hours <= 1.05 * backstop.instance_hours
