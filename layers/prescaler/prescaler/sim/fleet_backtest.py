"""``prescaler backtest --fleet``: replay every endpoint of a fleet, one table per endpoint and in total.

Sources: a folder of trace CSVs (one endpoint per file, named after the file) or the fleet as the
functions see it (:func:`prescaler.fleet.discover`: ``FLEET_MODE`` / ``FLEET_ENDPOINTS`` from the
environment, tag mode by default), whose history is read in one batched ``GetMetricData``
(:func:`prescaler.aws.cloudwatch.read_many`, 500 variants per call).

Each endpoint is replayed through the same twin (:func:`prescaler.sim.twin.run`) on the same endpoint
model and planner settings, with the policies of :func:`fleet_policies`: the pre-scaler against the
target tracking it runs on (its backstop, ``--backstop``), so the two rows differ only by the
forecast. An endpoint whose trace cannot be read, or which has no traffic, is reported as skipped
with the reason; the others go on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from prescaler.history import HistoryError
from prescaler.plan import PlannerSettings


def fleet_policies(model: Any) -> tuple[str, str]:
    """The policies compared per endpoint: the target tracking ``predictive`` runs on (``model.backstop``:
    ``"concurrency"`` or ``"invocations"``), then ``predictive``. Comparing with another target
    tracking would charge the pre-scaler for its backstop's choice. (The full seven are
    ``prescaler backtest --trace``'s.)"""
    return (f"{model.backstop}-target-tracking", "predictive")


@dataclass
class FleetBacktest:
    """Per-endpoint scores (``{endpoint: {policy: scores}}``), skipped endpoints with their reason,
    notes on endpoints scored over a shortened span (``{endpoint: why}``: a trace shorter than the
    warm-up, :func:`prescaler.sim.scenarios.warmup_note`), and the totals per policy (breach minutes,
    requests over the SLO and instance-hours summed; peak queue the largest)."""

    policies: tuple[str, ...] = ()
    endpoints: dict[str, dict[str, dict[str, float | int]]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)

    def totals(self) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        for scores in self.endpoints.values():
            for policy, s in scores.items():
                t = out.setdefault(policy, {"breach_minutes": 0, "slo_violating_requests": 0.0, "peak_queue": 0.0,
                                            "instance_hours": 0.0})
                t["breach_minutes"] += s["breach_minutes"]
                t["slo_violating_requests"] += s["slo_violating_requests"]
                t["peak_queue"] = max(t["peak_queue"], float(s["peak_queue"]))
                t["instance_hours"] += s["instance_hours"]
        return {p: {k: round(v, 3) for k, v in t.items()} for p, t in out.items()}

    def to_dict(self) -> dict[str, Any]:
        return {"policies": list(self.policies), "endpoints": self.endpoints, "skipped": self.skipped,
                "notes": self.notes, "total": self.totals()}


def traces_in(folder: str | Path) -> list[Path]:
    """The ``*.csv`` files of ``folder``, sorted.

    Raises:
        ValueError: not a folder, or no CSV in it.
    """
    path = Path(folder)
    if not path.is_dir():
        raise ValueError(f"--fleet {folder}: not a folder of trace CSVs")
    files = sorted(path.glob("*.csv"))
    if not files:
        raise ValueError(f"--fleet {folder}: no *.csv file in it")
    return files


def replay(
    sources: Iterable[tuple[str, Callable[[], pd.Series]]],
    *,
    model: Any,
    settings: PlannerSettings,
    seed: int,
    warmup_days: float,
    peak_rps: float | None = None,
    progress: Callable[[str], None] | None = None,
) -> FleetBacktest:
    """Replay each (name, loader of its per-minute invocations) through the twin.

    A loader that raises :class:`HistoryError` / ``ValueError`` / ``OSError``, or a series without
    traffic, makes that endpoint skipped (with the reason), never the run failed. An endpoint whose
    history is shorter than ``warmup_days`` is scored on what is left and named in ``notes``.
    """
    from prescaler.sim import scenarios, twin

    policies = fleet_policies(model)
    out = FleetBacktest(policies=policies)
    for name, load in sources:
        if progress is not None:
            progress(name)
        try:
            minutes = load()
        except (HistoryError, ValueError, OSError) as exc:
            out.skipped[name] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            continue
        if len(minutes) == 0 or float(minutes.sum()) == 0:
            out.skipped[name] = "no traffic in its history"
            continue
        demand = scenarios.from_minutes(minutes, name, peak_rps=peak_rps, warmup_days=warmup_days)
        shortened = scenarios.warmup_note(demand, warmup_days)
        if shortened:
            out.notes[name] = shortened
        results = twin.run(demand, policies=policies, model=model, settings=settings, seed=seed)
        out.endpoints[name] = {p: r.scores() for p, r in results.items()}
    return out


def table(result: FleetBacktest, title: str) -> Any:  # -> rich.table.Table
    """One row per endpoint, then the total: breach minutes and instance-hours per policy, formatted as
    ``prescaler backtest --trace``'s table (thousands separators, instance-hours to 0.1)."""
    from rich.table import Table

    def cells(scores: dict[str, dict[str, Any]]) -> list[str]:
        return [c for p in result.policies
                for c in (f"{scores[p]['breach_minutes']:,.0f}", f"{scores[p]['instance_hours']:,.1f}")]

    t = Table(title=title, title_justify="left")
    t.add_column("endpoint")
    for p in result.policies:
        t.add_column(f"{p}\nbreach min", justify="right")
        t.add_column(f"{p}\ninstance-h", justify="right")
    for name, scores in result.endpoints.items():
        t.add_row(name, *cells(scores))
    totals = result.totals()
    if totals:
        t.add_section()
        t.add_row(f"total ({len(result.endpoints)} endpoints)", *cells(totals))
    return t
