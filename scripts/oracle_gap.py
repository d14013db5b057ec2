"""Where a policy pays more than the oracle: instance-minutes above it per day, by phase of each spike.

    .venv/bin/python scripts/oracle_gap.py --scenario reference --days 3 --warmup-days 2 --seed 7

A spike is a run of minutes in which the oracle (instant provisioning, perfect knowledge) bills more
than the baseline MinCapacity. Each evaluated minute is put in one phase: ``before`` (up to
``--window`` minutes before a spike's first minute), ``first`` (that minute), ``during`` (the rest of
the run), ``after`` (up to ``--window`` minutes after it) or ``elsewhere``; the table gives the
policy's billed instance-minutes minus the oracle's in each, per evaluated day. The numbers come from
the twin's per-minute billed instances (``PolicyResult.billed``), the same bill as ``instance_hours``.
"""

from __future__ import annotations

import argparse

import numpy as np
from prescaler.sim import scenarios, twin

PHASES = ("before", "first", "during", "after", "elsewhere")


def phases(oracle_billed: np.ndarray, baseline: float, window: int) -> np.ndarray:
    """The phase (an index into :data:`PHASES`) of each minute, from the oracle's billed instances."""
    spike = oracle_billed > baseline + 1e-9
    out = np.full(len(spike), PHASES.index("elsewhere"))
    starts = np.flatnonzero(spike & ~np.r_[False, spike[:-1]])
    ends = np.flatnonzero(spike & ~np.r_[spike[1:], False]) + 1  # exclusive
    for s, e in zip(starts, ends, strict=True):
        out[e: e + window] = np.where(out[e: e + window] == PHASES.index("elsewhere"), PHASES.index("after"),
                                      out[e: e + window])
        lo = max(0, s - window)
        out[lo:s] = PHASES.index("before")
    for s, e in zip(starts, ends, strict=True):
        out[s] = PHASES.index("first")
        out[s + 1: e] = PHASES.index("during")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenario", default="reference",
                    choices=sorted(set(scenarios.SCENARIOS) - scenarios.COMPONENT_SCENARIOS))
    ap.add_argument("--days", type=int, default=3)
    ap.add_argument("--warmup-days", type=int, default=2)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--policy", default="predictive", choices=[p for p in twin.POLICIES if p != "oracle"])
    ap.add_argument("--window", type=int, default=10, help="minutes before and after a spike (default 10)")
    args = ap.parse_args()
    demand = scenarios.SCENARIOS[args.scenario](days_evaluated=args.days, warmup_days=args.warmup_days, seed=args.seed)
    model = twin.EndpointModel()
    results = twin.run(demand, policies=(args.policy, "oracle"), model=model, seed=args.seed)
    policy, oracle = results[args.policy], results["oracle"]
    assert policy.billed is not None and oracle.billed is not None
    extra = (policy.billed - oracle.billed).to_numpy()
    phase = phases(oracle.billed.to_numpy(), model.min_capacity, args.window)
    days = len(extra) / 1440
    print(f"{args.policy}: {policy.instance_hours:.1f} instance-hours, {policy.breach_minutes} breach minutes; "
          f"oracle {oracle.instance_hours:.1f} ({policy.instance_hours / oracle.instance_hours:.3f}x)")
    print(f"instance-minutes above the oracle per day ({days:g} days):")
    for i, name in enumerate(PHASES):
        print(f"  {name:10s} {extra[phase == i].sum() / days:8.0f}")
    print(f"  {'total':10s} {extra.sum() / days:8.0f}")


if __name__ == "__main__":
    main()
