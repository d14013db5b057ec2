"""Explain one violation of scripts/sweep.py: where and why `predictive` did worse than its backstop.

    .venv/bin/python scripts/sweep_explain.py "backtest --trace data/traces/X.csv ... --backstop invocations"
        [--context 20] [--episodes 5]

Runs the same ``prescaler backtest`` command (through :func:`prescaler.cli.main`), keeps the twin's
:class:`prescaler.sim.twin.PolicyResult` of ``predictive`` and of its backstop, and prints:

- the instance-minutes predictive spent above the backstop and the minutes it had less capacity;
- the breach episodes (runs of consecutive minutes, gaps <= 2 min) where predictive breached and
  the backstop did not, worst first; for each, minute by minute around its start: demand (req/s),
  each policy's in-service capacity, desired capacity and MinCapacity, the breach flags, and every
  pre-scaler decision (raise/relax with its reason) in the hour before it;
- the pre-scaler's decisions counted by action, and the ticks it deferred while the endpoint was
  ``Updating``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import math
import shlex
from typing import Any

import pandas as pd
from prescaler.cli import main
from prescaler.sim import twin


def replay(command: str) -> tuple[Any, dict[str, twin.PolicyResult]]:
    """``prescaler <command>`` with the twin's demand and results captured (not only the JSON scores)."""
    captured: dict[str, Any] = {}
    real_run = twin.run

    def run(demand: Any, *args: Any, **kwargs: Any) -> dict[str, twin.PolicyResult]:
        captured["demand"] = demand
        captured["results"] = real_run(demand, *args, **kwargs)
        return captured["results"]

    twin.run = run  # type: ignore[assignment]
    try:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main([*shlex.split(command.removeprefix("prescaler ")), "--json"])
    finally:
        twin.run = real_run  # type: ignore[assignment]
    if code != 0:
        raise SystemExit(f"prescaler {command} exited {code}: {err.getvalue().strip()}")
    return captured["demand"], captured["results"]


def episodes(mask: pd.Series, gap: int = 2) -> list[tuple[pd.Timestamp, pd.Timestamp, int]]:
    """Runs of True minutes (joined across gaps of at most ``gap`` minutes): (first, last, minutes True)."""
    out: list[tuple[pd.Timestamp, pd.Timestamp, int]] = []
    for t in mask.index[mask.to_numpy()]:
        if out and (t - out[-1][1]) <= pd.Timedelta(minutes=gap + 1):
            out[-1] = (out[-1][0], t, out[-1][2] + 1)
        else:
            out.append((t, t, 1))
    return out


def raises(pred: twin.PolicyResult, rps: pd.Series, demand: Any) -> str:
    """Each raise judged by what followed: did demand need the raised capacity before the next relax
    (hit) or not (miss), counted per pattern, with the instance-minutes each kind held above the baseline."""
    target = demand_target(pred)
    rows = []
    decisions = pred.decisions
    for i, (t, d) in enumerate(decisions):
        if d.action != "raise":
            continue
        end = next((u for u, e in decisions[i + 1:] if e.action == "relax" and e.changes_min_capacity), None)
        if end is None or t < rps.index[0]:
            continue
        need = math.ceil(round(float(rps[t:end].max()) * 60 / target, 9)) if len(rps[t:end]) else 0
        held = (pred.min_capacity[t:end] - d.previous_min_capacity).clip(lower=0).sum()
        rows.append({"pattern": str(d.numbers.get("pattern")), "hit": need >= d.min_capacity,
                     "held_instance_min": float(held), "minutes": (end - t) / pd.Timedelta(minutes=1)})
    if not rows:
        return "raises in the evaluated period: none"
    df = pd.DataFrame(rows)
    g = df.groupby(["pattern", "hit"]).agg(raises=("hit", "size"), held_instance_min=("held_instance_min", "sum"),
                                           median_minutes=("minutes", "median"))
    head = "raises in the evaluated period (hit: demand needed the raised MinCapacity before the relax):"
    return f"{head}\n{g.to_string()}"


def flip_flops(pred: twin.PolicyResult, within: int = 15) -> str:
    """Relaxes of MinCapacity followed by a raise within ``within`` minutes (the same spike raised
    twice), and how far apart."""
    changes = [(t, d) for t, d in pred.decisions if d.changes_min_capacity]
    gaps = [(u - t) / pd.Timedelta(minutes=1) for (t, d), (u, e) in itertools.pairwise(changes)
            if d.action == "relax" and e.action == "raise" and (u - t) <= pd.Timedelta(minutes=within)]
    relaxes = sum(1 for _, d in changes if d.action == "relax")
    if not gaps:
        return f"relaxes re-raised within {within} min: 0 of {relaxes}"
    return (f"relaxes re-raised within {within} min: {len(gaps)} of {relaxes} (median {pd.Series(gaps).median():g} "
            f"min later)")


def demand_target(pred: twin.PolicyResult) -> float:
    """The planner's target (invocations per instance per minute) from a raise's numbers (2400 if none)."""
    for _, d in pred.decisions:
        value = d.numbers.get("target_invocations_per_instance")
        if isinstance(value, int | float):
            return float(value)
    return 2400.0


def main_(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("command", help="the sweep's command (with or without the leading 'prescaler')")
    p.add_argument("--context", type=int, default=20, help="minutes shown before each episode (default 20)")
    p.add_argument("--episodes", type=int, default=5, help="episodes shown, worst first (default 5)")
    args = p.parse_args(argv)
    demand, results = replay(args.command)
    pred = results["predictive"]
    (bname,) = [n for n in results if n != "predictive" and n != "oracle"][:1]
    back = results[bname]
    rps = pd.Series(demand.rps, index=pd.date_range(demand.start, periods=len(demand.rps),
                                                    freq=pd.Timedelta(seconds=demand.step_s)))
    rps = rps.resample("1min").mean().reindex(pred.capacity.index)
    extra = (pred.capacity - back.capacity)
    print(f"predictive {pred.breach_minutes} breach min, {pred.instance_hours:.1f} inst-h; {bname} "
          f"{back.breach_minutes} breach min, {back.instance_hours:.1f} inst-h")
    billed_p = pred.billed if pred.billed is not None else pred.capacity
    billed_b = back.billed if back.billed is not None else back.capacity
    diff = billed_p - billed_b
    print(f"billed instance-minutes above the backstop: {diff.clip(lower=0).sum():.0f}, below: "
          f"{-diff.clip(upper=0).sum():.0f}; in-service minutes with less capacity than the backstop: "
          f"{int((extra < 0).sum())}")
    actions = pd.Series([d.action for _, d in pred.decisions]).value_counts().to_dict()
    print(f"decisions: {actions}; ticks deferred (Updating): {pred.deferred}; changes refused: predictive "
          f"{pred.refused}, {bname} {back.refused}")
    raised = pred.min_capacity > pred.min_capacity.min()
    print(f"billed instance-minutes above the backstop while MinCapacity was raised: "
          f"{diff[raised].clip(lower=0).sum():.0f}; while at the baseline: {diff[~raised].clip(lower=0).sum():.0f}")
    print(raises(pred, rps, demand))
    print(flip_flops(pred))
    only = pred.breach & ~back.breach
    found = sorted(episodes(only), key=lambda e: -e[2])
    print(f"minutes predictive breached and {bname} did not: {int(only.sum())} in {len(found)} episodes; "
          f"the reverse: {int((back.breach & ~pred.breach).sum())}")
    for first, last, n in found[:args.episodes]:
        print(f"\n== {first:%Y-%m-%d %H:%M} to {last:%H:%M}: {n} minutes only predictive breached")
        window = slice(first - pd.Timedelta(minutes=args.context), last + pd.Timedelta(minutes=3))
        df = pd.DataFrame({
            "rps": rps[window].round(0),
            "P cap": pred.capacity[window], "P desired": (pred.desired[window] if pred.desired is not None else None),
            "P min": pred.min_capacity[window], "P breach": pred.breach[window].astype(int),
            "B cap": back.capacity[window], "B desired": (back.desired[window] if back.desired is not None else None),
            "B min": back.min_capacity[window], "B breach": back.breach[window].astype(int),
        })
        df.index = df.index.strftime("%m-%d %H:%M")
        print(df.to_string())
        since = first - pd.Timedelta(minutes=60)
        for t, d in pred.decisions:
            if since <= t <= last:
                desired = f" desired {d.desired_instances}" if d.desired_instances is not None else ""
                print(f"  {t:%m-%d %H:%M} {d.action} MinCapacity {d.previous_min_capacity} -> {d.min_capacity}"
                      f"{desired}: {d.reason}")


if __name__ == "__main__":
    main_()
