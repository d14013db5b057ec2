"""Fleet tick targets (issue 11 §4): one tick over 500 endpoints against Stubber-backed clients
(tests/bench/fleet_tick.py, run in a child process so that its peak memory is its own).

- the tick of a warm process (the every-minute case) <= 20 s, and the whole process <= 512 MB;
- GetMetricData requests grow with endpoints / 500 (and with datapoints / 100,800, the API's page
  size), never with endpoints: 2 batches (Invocations + the heartbeat) per 500 endpoints;
- the cold tick (discovery + 14 days of history for all 500) is reported, and must fit the
  function's 60 s timeout with room to record.
"""

from __future__ import annotations

import json
import math
import resource
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.bench

SCRIPT = Path(__file__).with_name("fleet_tick.py")
DAY_MINUTES = 1440


@pytest.mark.parametrize("endpoints", [500])
def test_one_fleet_tick_over_500_endpoints(endpoints: int) -> None:
    out = subprocess.run([sys.executable, str(SCRIPT), str(endpoints)], check=True, capture_output=True, text=True)
    report = json.loads(out.stdout.strip().splitlines()[-1])
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    cold, warm = report["cold"], report["warm"]
    print(f"\nfleet tick over {endpoints} endpoints: cold {cold['seconds']} s ({cold['calls_total']} AWS calls, "
          f"GetMetricData {cold['calls']['cloudwatch:GetMetricData']}), warm {warm['seconds']} s "
          f"({warm['calls_total']} AWS calls, GetMetricData {warm['calls']['cloudwatch:GetMetricData']}), "
          f"peak RSS {peak_mb:.0f} MB\ncold calls: {cold['calls']}\nwarm calls: {warm['calls']}")
    batches = math.ceil(endpoints / 500)
    for tick in (cold, warm):
        assert tick["get_metric_data_batches"] == {"Invocations": batches, "CPUUtilization": batches}
        assert tick["not_reached"] == 0 and tick["emf_blobs_with_endpoint"] == endpoints
    # every page of the cold read is full: 14 days x 500 endpoints / 100,800 datapoints, plus the heartbeat
    assert cold["calls"]["cloudwatch:GetMetricData"] <= math.ceil(endpoints * 14 * DAY_MINUTES / 100_800) + batches
    assert warm["calls"]["cloudwatch:GetMetricData"] == 2 * batches
    assert cold["outcomes"] == {"applied": endpoints} and report["raised_to_6"] == endpoints
    assert warm["seconds"] <= 20
    assert cold["seconds"] <= 50  # the 60 s timeout less FleetReserveSeconds
    assert peak_mb <= 512
