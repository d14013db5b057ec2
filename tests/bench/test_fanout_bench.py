"""Where the fleet tick fans out (issue 11 §2: "state the size at which it switches and measure it").

One worker's shard (tests/bench/fleet_tick.py --shard: run_tick over N members, no discovery)
is timed cold (14 days of history read for every member, every member raised: the worst tick) and
warm, at several sizes, against Stubber-backed clients on this machine. A shard must finish within
the function's Timeout less FLEET_RESERVE_SECONDS. The Stubber answers at once and this machine's
cores are whole, so the size is derived with two corrections, both stated:

- CPU: Lambda gives a function CPU in proportion to its memory, one vCPU at 1,769 MB (Lambda
  developer guide, "Configure Lambda function memory"): at the template's MemorySize the measured
  CPU time is multiplied by 1,769 / MemorySize;
- network: every AWS call a member makes (measured: calls per member) costs LATENCY_MS more.

The largest shard that fits is printed and FLEET_SHARD_SIZE's default must not exceed it. The
dispatcher over 5,000 endpoints is measured too: its SendMessageBatch calls and wall time.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from prescaler import fleet

pytestmark = pytest.mark.bench

SCRIPT = Path(__file__).with_name("fleet_tick.py")
ROOT = Path(__file__).resolve().parents[2]
SIZES = (50, 100, 200, 400)
#: an assumed in-region AWS API round trip (ms): the Stubber has none
LATENCY_MS = 20.0
#: Lambda: one vCPU at 1,769 MB of memory, CPU in proportion below it
ONE_VCPU_MB = 1769


class _Cfn(yaml.SafeLoader):
    pass


_Cfn.add_multi_constructor("!", lambda loader, suffix, node: None)


def _globals() -> dict:
    return yaml.load((ROOT / "template.yaml").read_text(), Loader=_Cfn)["Globals"]["Function"]


def _run(*args: str) -> dict:
    out = subprocess.run([sys.executable, str(SCRIPT), *args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_shard_size_fits_the_timeout_less_the_reserve() -> None:
    g = _globals()
    budget_ms = (g["Timeout"] - fleet.FleetSettings().fleet_reserve_seconds) * 1000
    cpu_factor = max(1.0, ONE_VCPU_MB / g["MemorySize"])
    rows = []
    for n in SIZES:
        r = _run(str(n), "--shard")
        cold, warm = r["cold"], r["warm"]
        assert cold["outcomes"] == {"applied": n} and cold["not_reached"] == 0
        rows.append((n, cold["seconds"], cold["ms_per_member"], cold["cpu_ms_per_member"], cold["calls_total"] / n,
                     warm["seconds"], warm["ms_per_member"], warm["cpu_ms_per_member"], warm["calls_total"] / n))
    print("\n| shard | cold s | cold ms/member | cold CPU ms/member | calls/member | warm s | warm ms/member "
          "| warm CPU ms/member | calls/member |\n|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        print("| {} | {:.2f} | {:.1f} | {:.1f} | {:.1f} | {:.2f} | {:.1f} | {:.1f} | {:.1f} |".format(*row))
    # the worst measured cold CPU per member, as a Lambda at MemorySize would spend it, plus latency
    # (CPU time, not wall time: other jobs on this shared machine do not count; the wall times show them)
    cpu_ms = max(r[3] for r in rows)
    calls = max(r[4] for r in rows)
    per_member_ms = cpu_ms * cpu_factor + calls * LATENCY_MS
    fits = math.floor(budget_ms / per_member_ms)
    print(f"cold: {cpu_ms:.1f} ms CPU x {cpu_factor:.2f} (1,769 MB / {g['MemorySize']} MB) + {calls:.1f} calls x "
          f"{LATENCY_MS:.0f} ms = {per_member_ms:.0f} ms a member; {budget_ms / 1000:.0f} s (Timeout less the "
          f"reserve) fits {fits}; FLEET_SHARD_SIZE default {fleet.DEFAULT_SHARD_SIZE}")
    assert fits >= fleet.DEFAULT_SHARD_SIZE


def test_the_dispatcher_sends_5000_endpoints_in_few_calls() -> None:
    r = _run("5000", "--dispatch")
    shards = math.ceil(5000 / fleet.DEFAULT_SHARD_SIZE)
    print(f"\ndispatcher over 5,000 endpoints: {r['shards']} shards of {r['shard_size']} in "
          f"{r['send_message_batch_calls']} SendMessageBatch calls, {r['send_seconds']} s to send; cold discovery "
          f"{r['discovery_seconds']} s ({r['calls']['sagemaker:ListTags']} ListTags, "
          f"{r['calls']['sagemaker:ListEndpoints']} ListEndpoints); {r['seconds']} s in all")
    assert r["shards"] == r["shards_sent"] == shards
    assert r["send_message_batch_calls"] == math.ceil(shards / 10)
    assert r["send_seconds"] < 5
