"""Reports of a simulation: JSON-ready dict, a rich table, a matplotlib PNG.

rich and matplotlib are imported inside the functions that use them: the Lambdas never load them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from prescaler.sim.scenarios import Demand
from prescaler.sim.twin import EndpointModel, PolicyResult

#: Colours per policy, stable across plots.
COLOURS = {
    "cpu-target-tracking": "#d62728",
    "invocations-target-tracking": "#ff7f0e",
    "concurrency-target-tracking": "#1f77b4",
    "scheduled-prewarm": "#9467bd",
    "aws-predictive-scaling": "#8c564b",
    "predictive": "#2ca02c",
    "oracle": "#7f7f7f",
}


def to_dict(demand: Demand, results: dict[str, PolicyResult], model: EndpointModel,
            extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The stable JSON shape: ``{"policies": {name: scores}, "demand": {...}, "slo": {...}}``."""
    k = demand.steps_per_minute
    first = demand.warmup_steps // k
    index = demand.per_minute_invocations().index
    evaluated = index[first:]
    out: dict[str, Any] = {
        "policies": {name: r.scores() for name, r in results.items()},
        "demand": {
            "name": demand.name,
            "evaluated_start": evaluated[0].isoformat() if len(evaluated) else None,
            "evaluated_end": (evaluated[-1] + pd.Timedelta(minutes=1)).isoformat() if len(evaluated) else None,
            "evaluated_minutes": len(evaluated),
            "warmup_minutes": first,
            "peak_rps": round(float(demand.rps[first * k:].max(initial=0.0)), 2),
        },
        "slo": {"p99_latency_s": model.slo_p99_s},
    }
    if "oracle" in results and results["oracle"].instance_hours > 0:
        o = results["oracle"].instance_hours
        out["instance_hours_vs_oracle"] = {n: round(r.instance_hours / o, 3) for n, r in results.items()}
    if extra:
        out.update(extra)
    return out


def table(report: dict[str, Any], title: str):  # -> rich.table.Table
    """A rich table of the per-policy scores in ``report`` (the :func:`to_dict` shape)."""
    from rich.table import Table

    t = Table(title=title, title_justify="left")
    t.add_column("policy")
    t.add_column("SLO breach min", justify="right")
    t.add_column("requests over SLO", justify="right")
    t.add_column("peak queue", justify="right")
    t.add_column("instance-hours", justify="right")
    t.add_column("vs oracle", justify="right")
    ratios = report.get("instance_hours_vs_oracle", {})
    for name, s in report["policies"].items():
        style = "bold green" if name == "predictive" else None
        t.add_row(name, f"{s['breach_minutes']:,}", f"{s['slo_violating_requests']:,.0f}",
                  f"{s['peak_queue']:,.0f}", f"{s['instance_hours']:,.1f}",
                  f"{ratios[name]:.2f}x" if name in ratios else "-", style=style)
    return t


def plot(demand: Demand, results: dict[str, PolicyResult], model: EndpointModel, path: str | Path,
         title: str, zoom_hours: float = 3.0) -> Path:
    """PNG: demand and each policy's in-service capacity (requests/s it can serve) over the evaluated
    period, and a zoom on its first ``zoom_hours`` hours. Returns the path written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    k = demand.steps_per_minute
    first = demand.warmup_steps // k
    rps = demand.per_minute_invocations().iloc[first:] / 60.0
    fig, axes = plt.subplots(3, 1, figsize=(13, 10), constrained_layout=True)
    ax_demand, ax_cap, ax_zoom = axes
    ax_demand.plot(rps.index, rps.to_numpy(), color="black", lw=0.6)
    ax_demand.set_ylabel("demand (requests/s)")
    ax_demand.set_title(title)
    for name, r in results.items():
        hourly = r.capacity.resample("1h").mean()
        ax_cap.step(hourly.index, hourly.to_numpy(), where="post", lw=1.0, label=name, color=COLOURS.get(name))
    ax_cap.set_ylabel("in-service instances\n(hourly mean)")
    ax_cap.set_ylim(bottom=0)
    ax_cap.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), fontsize=8, ncol=len(results), frameon=False)
    if len(rps):
        # zoom on the steepest rise (what pre-scaling is for): an hour before it, the rest after
        rise = (rps - rps.shift(10)).fillna(0.0)
        at = rps.index[int(rise.to_numpy().argmax())] if float(rise.max()) > 0 else rps.index[0]
        begin = max(rps.index[0], at - pd.Timedelta(hours=1))
        end = begin + pd.Timedelta(hours=zoom_hours)
        z = rps[(rps.index >= begin) & (rps.index < end)]
        ax_zoom.fill_between(z.index, z.to_numpy(), step="post", color="#cccccc", label="demand")
        for name, r in results.items():
            c = r.capacity[(r.capacity.index >= begin) & (r.capacity.index < end)]
            ax_zoom.step(c.index, c.to_numpy() * model.capacity_rps_per_instance, where="post", lw=1.2,
                         label=f"{name} capacity", color=COLOURS.get(name))
        ax_zoom.set_ylabel("requests/s")
        ax_zoom.set_title(f"{zoom_hours:g} h around the steepest rise ({at:%Y-%m-%d %H:%M} UTC): demand vs "
                          f"capacity (in-service instances x {model.capacity_rps_per_instance:g} req/s)", fontsize=10)
        ax_zoom.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), fontsize=8, ncol=6, frameon=False)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
