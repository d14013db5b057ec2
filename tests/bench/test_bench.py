"""Speed and memory targets (`make bench`). Not part of `make test`: timings belong here.

Targets (issue 2): forecast + plan on 14 days of per-minute history <= 100 ms; a 14-day backtest of
all five policies <= 60 s on a 2-core machine; peak memory of that backtest <= 500 MB.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
from prescaler.plan import PlannerSettings, TargetState, decide

pytestmark = pytest.mark.bench

TRACE_14_DAYS = "data/traces/elb_request_count_8c0756.csv"  # 2014-04-10 .. 2014-04-24


def fourteen_days_hourly_spikes() -> pd.Series:
    index = pd.date_range("2026-03-01", periods=14 * 1440, freq="min", tz="UTC", name="minute")
    rng = np.random.default_rng(0)
    values = np.where(index.minute < 10, 13200.0, 2400.0) * rng.normal(1, 0.03, len(index))
    return pd.Series(values, index=index, name="invocations")


def test_forecast_and_plan_on_14_days_is_under_100_ms(benchmark) -> None:
    history = fourteen_days_hourly_spikes()
    now = history.index[-1] + pd.Timedelta(minutes=3)
    state = TargetState(min_capacity=2, max_capacity=8, current_instances=2)
    settings = PlannerSettings()
    decision = benchmark(decide, history, state, settings, now)
    assert decision.forecast is not None and decision.forecast.usable
    assert benchmark.stats.stats.mean < 0.100


def test_14_day_backtest_of_five_policies_under_60_s_and_500_mb() -> None:
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "prescaler.cli", "backtest", "--trace", TRACE_14_DAYS, "--peak-rps", "220",
         "--warmup-days", "0", "--json"],
        check=True, capture_output=True, text=True,
    )
    elapsed = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    report = json.loads(out.stdout)
    minutes = report["demand"]["evaluated_minutes"]
    print(f"\n14-day backtest: {minutes} minutes x 5 policies in {elapsed:.1f} s, peak RSS {peak_mb:.0f} MB")
    assert minutes >= 14 * 1440 - 60
    assert elapsed <= 60
    assert peak_mb <= 500
