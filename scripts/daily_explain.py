"""Why `predictive` does not act on a real daily cycle, and what a daily level would have done.

    .venv/bin/python scripts/daily_explain.py "backtest --trace data/traces/nasa_http_jul1995_1min.csv --peak-rps 220"
        [--at 1995-07-13T12:00 ...] [--window 10] [--bursts-days 4 --bursts-seeds 100 106]

Replays the ``prescaler backtest`` command (:func:`sweep_explain.replay`) with ``predictive``, its backstop
and the oracle, and prints:

1. **Where the backstop alone breaches**: its breach minutes by hour of day, by minute of a 10-minute
   bin (coarse data is spread evenly over its bin: its steps land on minutes 0-3), by day, those within
   30 minutes after a minute with no demand (a data gap: traffic restarts on a scaled-in endpoint), and
   each against the *daily profile*: the level two of the previous four days reached within
   ``--window`` minutes of that time of day. "covered": the profile's instances at the target would
   have served that minute; "above": it needed more than every one of the four previous days had.
2. **The backtest's backstop against the twin's**: the forecaster judges patterns against a simplified
   target tracking (``forecast._backtest``: demand seen ``backstop_reaction_minutes`` ago, held
   ``backstop_hold_minutes``, sized at the target); the breach minutes of that model over the whole
   evaluated period against the twin's backstop's (same minute; within 3 minutes), and the same for a
   stateful replay of the alarms (:func:`alarm_replay`, a sketch of a backstop-aware backtest).
3. **The candidates' scores** at each ``--at``: for the hourly and daily cycles at each drift, the
   backtest's net (instance-minutes), breach minutes prevented / preventable, return, and whether it is
   convincing (whole span; both halves), as the forecaster acts on it (``act``: the minutes of the cycle
   where the backstop breached in two cycles) and as a level forecast (``level``: every minute).
4. **A daily level floor in the twin** (a counterfactual, not a policy of the product): each minute
   MinCapacity = the instances the daily profile needs at the lead time + horizon (6 minutes ahead),
   behind the same backstop; breach minutes and instance-hours against the backstop alone. With
   ``--bursts-days`` the same floor on pattern-free bursts of that many days (the property test's
   generator): a daily level that helps here must not be bought on noise.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from prescaler import forecast as F
from prescaler.sim import scenarios, twin
from sweep_explain import replay

LOOKAHEAD = 6  # the planner's default lead time (300 s) + horizon (1 min)
DAYS = 4  # previous days the profile reads (as the daily pattern's ``cycles``)


def profile_level(y: np.ndarray, i: int, window: int, visible: int) -> float | None:
    """The level two of the previous :data:`DAYS` days reached within ``window`` minutes of minute
    ``i``'s time of day, from the minutes before ``visible`` only; None with fewer than two such days."""
    days = [float(y[i - k * 1440 - window: i - k * 1440 + window + 1].max()) for k in range(1, DAYS + 1)
            if i - k * 1440 - window >= 0 and i - k * 1440 + window + 1 <= visible]
    return sorted(days)[-2] if len(days) >= 2 else None


def where(y: np.ndarray, back: twin.PolicyResult, first: int, window: int, per_instance: float, target: float) -> None:
    """Section 1: where the backstop's breach minutes fall."""
    idx = back.breach.index[back.breach.to_numpy()]
    at = np.flatnonzero(back.breach.to_numpy()) + first
    print(f"\n1. {back.name}: {len(at)} breach minutes")
    print("   by hour of day (UTC):", pd.Series(idx.hour).value_counts().sort_index().to_dict())
    print("   by minute of a 10-minute bin:", pd.Series(idx.minute % 10).value_counts().sort_index().to_dict())
    print("   by day:", {str(k): v for k, v in pd.Series(idx.date).value_counts().sort_index().items()})
    gap = sum(bool((y[max(0, i - 30):i] == 0).any()) for i in at)
    kinds = {"covered": 0, "between": 0, "above": 0, "no profile": 0}
    for i in at:
        lvl = profile_level(y, i, window, i)
        need = math.ceil(y[i] / per_instance - 1e-9)
        if lvl is None:
            kinds["no profile"] += 1
        elif math.ceil(lvl / target - 1e-9) >= need:
            kinds["covered"] += 1
        else:
            days = [y[i - k * 1440 - window: i - k * 1440 + window + 1].max() for k in range(1, DAYS + 1)
                    if i - k * 1440 - window >= 0]
            kinds["above" if math.ceil(max(days) / target - 1e-9) < need else "between"] += 1
    print(f"   within 30 min after a minute with no demand (a data gap): {gap}")
    print(f"   against the daily profile (±{window} min, two of {DAYS} days): {kinds}")


def alarm_replay(y: np.ndarray, m: twin.EndpointModel, provisioning_minutes: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """A stateful replay of target tracking's two alarms on per-minute InvocationsPerInstance (the
    twin's rules at minute resolution: scale-out on ``scale_out_datapoints`` above target, scale-in on
    ``scale_in_datapoints`` below ``scale_in_ratio`` x target after the cooldowns, both sized from the
    newest visible datapoint; a scale-out in service ``provisioning_minutes`` later). Returns (instances in
    service, breached: the minute needs more instances at saturation) per minute. A sketch of what a
    backstop-aware backtest would replay, for section 2's comparison only."""
    n, target = len(y), m.target_invocations_per_instance
    delay, cooldown = 1 + m.metric_delay_s // 60, m.scale_in_cooldown_s // 60
    in_service = desired = m.min_capacity
    pending: list[tuple[int, int]] = []  # (minute in service, instances)
    last_out = last_in = -(10**9)
    ipi, cap = np.zeros(n), np.zeros(n)
    for t in range(n):
        while pending and pending[0][0] <= t:
            in_service = max(in_service, pending.pop(0)[1])
        newest = t - delay
        out = ipi[max(0, newest - m.scale_out_datapoints + 1): newest + 1] if newest >= 0 else ipi[:0]
        low = ipi[max(0, newest - m.scale_in_datapoints + 1): newest + 1] if newest >= 0 else ipi[:0]
        if len(out) == m.scale_out_datapoints and (out > target).all():
            want = min(m.max_capacity, math.ceil(desired * ipi[newest] / target - 1e-9))
            if want > desired:
                pending.append((t + provisioning_minutes, want))
                desired, last_out = want, t
        elif (len(low) == m.scale_in_datapoints and (low < m.scale_in_ratio * target).all()
              and t - last_in >= cooldown and t - last_out >= cooldown):
            want = max(m.min_capacity, math.ceil(desired * ipi[newest] / target - 1e-9))
            if want < desired:
                desired, in_service, last_in = want, min(in_service, want), t
                pending = [(r, min(c, want)) for r, c in pending]
        cap[t] = in_service
        ipi[t] = y[t] / in_service
    return cap, np.ceil(y / (m.capacity_rps_per_instance * 60) - 1e-9) > cap


def model_vs_twin(y: np.ndarray, back: twin.PolicyResult, first: int, cost: F.CostModel, m: twin.EndpointModel) -> None:
    """Section 2: the backtest's backstop model, and a stateful replay of the alarms, against the twin's backstop."""
    bt = F._backtest(y, len(y), cost)
    tw = back.breach.to_numpy()
    print("\n2. the backstop as the backtest models it, against the twin's:")
    replayed = alarm_replay(y, m)
    for label, cap, breached in (("backtest's model (forecast._backtest)", bt.backstop, bt.breaching),
                                 ("stateful alarm replay (alarm_replay)", *replayed)):
        mb = breached[first:first + len(tw)]
        near = np.convolve(mb.astype(float), np.ones(7), "same") > 0
        hours = cap[first:first + len(tw)].sum() / 60
        print(f"   {label}: {int(mb.sum())} breach minutes, {hours:,.1f} instance-hours in service; "
              f"twin's {back.name}: {int(tw.sum())}, {back.capacity.sum() / 60:,.1f}; the same minute: "
              f"{int((mb & tw).sum())}, within 3 min: {int((tw & near).sum())}")


def candidates(y: pd.Series, at: pd.Timestamp, cost: F.CostModel) -> None:
    """Section 3: the hourly and daily candidates' backtest at ``at`` (as the forecaster computes it)."""
    h = y[:at - pd.Timedelta(minutes=3)].iloc[-14 * 1440:]
    n = len(h)
    end = n - (h.index[-1] + F.MINUTE).minute
    v = h.to_numpy(float)[end % 60:end]
    origin = h.index[end % 60]
    span = min(F.SKILL_MINUTES, len(v) - 60)
    bt = F._backtest(v, span, cost)
    observed = bt.targets - cost.lookahead_minutes
    print(f"\n3. at {at:%Y-%m-%d %H:%M}: backtest of the newest {span / 1440:.1f} days, backstop model "
          f"{bt.backstop_breaches} breach minutes")
    for p in F.PATTERNS[:2]:
        for d in sorted({1, *F.DRIFT_CANDIDATES}):
            if d > 1 and d > p.period_minutes // F.MAX_DRIFT_FRACTION:
                continue
            ymax = F._rolling_max(v, d)
            level, act = F._evidence(F._lag_matrix(ymax, bt.targets, origin, p, "UTC", observed, d),
                                     F._lag_matrix(bt.breached(d), bt.targets, origin, p, "UTC", observed, d + 1))
            for label, mask in (("act", act), ("level", np.ones_like(act))):
                net, prevented, per, prevented_at = bt.score(F._acted(level, mask))
                spent = prevented * cost.breach_minute_cost - net
                ret = prevented * cost.breach_minute_cost / spent if spent > 0 else math.inf
                whole = bt.convincing(net, prevented, bt.preventable(p.period_minutes))
                halves = bt.convincing_in_both_halves(per, prevented_at, p.period_minutes)
                print(f"   {p.name:6s} ±{d:2d} min {label:5s}: net {net:8,.0f}  prevented {prevented:4d} of "
                      f"{bt.preventable(p.period_minutes):4d}  return {ret:5.2f}x  convincing {whole}, "
                      f"both halves {halves}")


def floor_hook(model: twin.EndpointModel, window: int) -> Callable[[np.ndarray, pd.DatetimeIndex], twin.MinuteHook]:
    """The daily level floor (section 4) as a twin minute hook: reads what the Lambda would see."""
    def factory(inv: np.ndarray, index: pd.DatetimeIndex) -> twin.MinuteHook:
        def hook(now: pd.Timestamp, mi: int, fleet: twin._Fleet, t: float) -> None:
            if fleet.updating(t):
                return  # deferred, as service.py does
            lvl = profile_level(inv, mi + LOOKAHEAD, window, mi - 2)
            want = model.min_capacity if lvl is None else math.ceil(lvl / model.target_invocations_per_instance - 1e-9)
            want = max(model.min_capacity, min(model.max_capacity, want))
            if want != fleet.min_capacity:
                fleet.register(want, t)
        return hook
    return factory


def floor(demand: scenarios.Demand, back: twin.PolicyResult, model: twin.EndpointModel, window: int,
          label: str) -> None:
    r = twin._simulate("daily-floor", demand, model, 7, model.backstop, floor_hook(model, window))
    print(f"   {label}: {back.name} {back.breach_minutes} breach min at {back.instance_hours:,.1f} h; with the daily "
          f"floor {r.breach_minutes} at {r.instance_hours:,.1f} h ({r.instance_hours / back.instance_hours:.3f}x)",
          flush=True)


def main_(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("command", help="a backtest command (with or without the leading 'prescaler')")
    p.add_argument("--at", action="append", default=[], help="instants (UTC) to score the candidates at")
    p.add_argument("--window", type=int, default=10, help="the daily profile's window, ± minutes (default 10)")
    p.add_argument("--bursts-days", type=int, default=0, help="also try the floor on pattern-free bursts this long")
    p.add_argument("--bursts-seeds", type=int, nargs=2, default=(100, 106), metavar=("FIRST", "END"))
    args = p.parse_args(argv)
    backstop = "invocations" if "--backstop invocations" in args.command else "concurrency"
    model = twin.EndpointModel(backstop=backstop)
    bname = f"{backstop}-target-tracking"
    demand, results = replay(f"{args.command} --policies predictive,{bname},oracle")
    pred, back = results["predictive"], results[bname]
    print(f"predictive {pred.breach_minutes} breach min at {pred.instance_hours:,.1f} h; {bname} "
          f"{back.breach_minutes} at {back.instance_hours:,.1f} h; oracle {results['oracle'].breach_minutes} at "
          f"{results['oracle'].instance_hours:,.1f} h")
    inv = demand.per_minute_invocations()
    y = inv.to_numpy(float)
    first = inv.index.get_loc(back.breach.index[0])
    cost = F.CostModel()
    where(y, back, first, args.window, model.capacity_rps_per_instance * 60, model.target_invocations_per_instance)
    model_vs_twin(y, back, first, cost, model)
    for at in args.at:
        candidates(inv, pd.Timestamp(at, tz="UTC"), cost)
    print(f"\n4. a daily level floor (±{args.window} min, two of {DAYS} days, {LOOKAHEAD} min ahead) in the twin:")
    floor(demand, back, model, args.window, "this trace")
    if args.bursts_days:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "unit"))
        from test_forecast_properties import _bursts, _minutes

        for seed in range(*args.bursts_seeds):
            rng = np.random.default_rng(seed)
            rate = 2.0 + seed % 11
            d = scenarios.from_minutes(_minutes(_bursts(rng, args.bursts_days * 1440, rate)), "bursts")
            floor(d, twin.run(d, (bname,), model=model)[bname], model, args.window,
                  f"bursts seed {seed} ({rate:g}/h, {args.bursts_days} days)")


if __name__ == "__main__":
    main_()
