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
    """The stable JSON shape: ``{"policies": {name: scores}, "demand": {...}, "slo": {...},
    "updating": {name: {"changes_refused", "ticks_deferred"}}, "instance_hours_vs_oracle": {...}}``."""
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
    # the Updating lock at work: scaling requests refused while the endpoint was Updating, and
    # pre-scaler ticks deferred for that reason (whole run, warm-up included)
    out["updating"] = {name: {"changes_refused": r.refused, "ticks_deferred": r.deferred}
                       for name, r in results.items()}
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


#: Line styles per policy so that policies with the same capacity do not hide each other.
STYLES = {
    "cpu-target-tracking": ("-", 3.2),
    "invocations-target-tracking": ("-", 2.6),
    "concurrency-target-tracking": ("--", 2.0),
    "scheduled-prewarm": (":", 2.0),
    "aws-predictive-scaling": ("-.", 1.6),
    "predictive": ("-", 1.1),
    "oracle": ("--", 0.9),
}


def rise_start(rps: pd.Series, window: int = 10) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The steepest rise of a per-minute demand series: (the minute it starts, the minute of the
    steepest ``window``-minute increase). The start is the first minute of that window above its
    first minute by 10% of the increase. An empty or flat series gives its first minute twice."""
    rise = (rps - rps.shift(window)).fillna(0.0)
    if len(rps) == 0 or float(rise.max()) <= 0:
        first = rps.index[0] if len(rps) else pd.Timestamp(0, tz="UTC")
        return first, first
    i = int(rise.to_numpy().argmax())
    lo = max(0, i - window)
    base, top = float(rps.iloc[lo]), float(rps.iloc[i])
    above = rps.iloc[lo: i + 1].to_numpy() > base + 0.1 * (top - base)
    return rps.index[lo + int(above.argmax())], rps.index[i]


#: In the zoom's queue panel, a policy whose queue peaks this many times above another's (non-zero)
#: peak would flatten it to the axis on a linear scale: the panel is then drawn on a symlog scale.
QUEUE_SPREAD_FOR_LOG = 100.0


def queue_scale(peaks: list[float]) -> tuple[str, float]:
    """The y scale of the zoom's queue panel from the peak queue (requests) of each policy that
    breached the SLO in the zoom's window.

    Returns ``("linear", 0)``, or ``("symlog", linthresh)`` when the largest peak is at least
    :data:`QUEUE_SPREAD_FOR_LOG` times the smallest non-zero one (a backlog that never drains, such as
    ``cpu-target-tracking``'s on a GPU-bound model, next to a 2-minute breach): ``linthresh`` is that
    smallest peak, so every queue that breached stays visible.
    """
    nonzero = [p for p in peaks if p > 0]
    if len(nonzero) < 2 or max(nonzero) < QUEUE_SPREAD_FOR_LOG * min(nonzero):
        return "linear", 0.0
    return "symlog", float(min(nonzero))


def plot(demand: Demand, results: dict[str, PolicyResult], model: EndpointModel, path: str | Path,
         title: str, zoom_hours: float = 3.0) -> Path:
    """PNG of what the table headlines. Panels: demand over the evaluated period; each policy's SLO
    breach minutes (one row per policy, so none hides another); in-service instances (hourly mean);
    and a zoom of ``zoom_hours`` around the steepest rise (titled with the minute it starts): demand vs
    each policy's capacity, and each policy's queue (requests waiting; on a symlog scale when the
    breaching queues differ a hundredfold, see :func:`queue_scale`). Returns the path written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    k = demand.steps_per_minute
    first = demand.warmup_steps // k
    rps = demand.per_minute_invocations().iloc[first:] / 60.0
    names = list(results)
    fig = plt.figure(figsize=(14, 15), constrained_layout=True)
    grid = fig.add_gridspec(5, 2, height_ratios=[1.0, 1.1, 1.1, 1.3, 1.3])
    ax_demand = fig.add_subplot(grid[0, :])
    ax_breach = fig.add_subplot(grid[1, :], sharex=ax_demand)
    ax_cap = fig.add_subplot(grid[2, :], sharex=ax_demand)
    ax_zoom = fig.add_subplot(grid[3, :])
    ax_queue = fig.add_subplot(grid[4, :], sharex=ax_zoom)
    ax_demand.plot(rps.index, rps.to_numpy(), color="black", lw=0.6)
    ax_demand.set_ylabel("demand (requests/s)")
    ax_demand.set_title(title)
    # breach minutes: one row per policy
    for row, name in enumerate(names):
        r = results[name]
        at = r.breach.index[r.breach.to_numpy()]
        ax_breach.scatter(at, [row] * len(at), marker="|", s=60, color=COLOURS.get(name), linewidths=1.0)
    ax_breach.set_yticks(range(len(names)))
    ax_breach.set_yticklabels([f"{n} ({results[n].breach_minutes:,} min)" for n in names], fontsize=8)
    ax_breach.set_ylim(-0.7, len(names) - 0.3)
    ax_breach.invert_yaxis()
    ax_breach.set_title(f"minutes over the SLO (p99 > {model.slo_p99_s * 1000:g} ms)", fontsize=10)
    for name in names:
        ls, lw = STYLES.get(name, ("-", 1.0))
        hourly = results[name].capacity.resample("1h").mean()
        ax_cap.step(hourly.index, hourly.to_numpy(), where="post", lw=lw, ls=ls, label=name,
                    color=COLOURS.get(name), alpha=0.9)
    ax_cap.set_ylabel("in-service instances\n(hourly mean)")
    ax_cap.set_ylim(bottom=0)
    ax_cap.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), fontsize=8, ncol=len(names), frameon=False)
    if len(rps):
        starts, steepest = rise_start(rps)
        begin = max(rps.index[0], starts - pd.Timedelta(minutes=30))
        end = begin + pd.Timedelta(hours=zoom_hours)
        z = rps[(rps.index >= begin) & (rps.index < end)]
        ax_zoom.fill_between(z.index, z.to_numpy(), step="post", color="#dddddd", label="demand")
        peaks: list[float] = []
        for name in names:
            ls, lw = STYLES.get(name, ("-", 1.0))
            r = results[name]
            c = r.capacity[(r.capacity.index >= begin) & (r.capacity.index < end)]
            ax_zoom.step(c.index, c.to_numpy() * model.capacity_rps_per_instance, where="post", lw=lw, ls=ls,
                         label=name, color=COLOURS.get(name), alpha=0.9)
            if r.queue is not None:
                q = r.queue[(r.queue.index >= begin) & (r.queue.index < end)]
                over = int(r.breach[q.index].sum())
                ax_queue.step(q.index, q.to_numpy(), where="post", lw=lw, ls=ls, color=COLOURS.get(name),
                              label=f"{name} ({over} min over SLO here)", alpha=0.9)
                if over:
                    peaks.append(float(q.max()))
        marker = float(mdates.date2num(starts.to_pydatetime()))
        ax_zoom.axvline(marker, color="black", lw=0.8, ls=":")
        ax_zoom.set_ylabel("requests/s")
        ax_zoom.set_title(f"zoom: the rise starts at {starts:%Y-%m-%d %H:%M} UTC (steepest at {steepest:%H:%M}): "
                          "demand (grey) vs capacity (in-service instances x "
                          f"{model.capacity_rps_per_instance:g} req/s)",
                          fontsize=10)
        ax_queue.axvline(marker, color="black", lw=0.8, ls=":")
        scale, linthresh = queue_scale(peaks)
        if scale == "symlog":
            ax_queue.set_yscale("symlog", linthresh=linthresh)
            ax_queue.set_ylim(bottom=0)
        log_note = ", log scale" if scale == "symlog" else ""
        ax_queue.set_ylabel(f"queue (requests waiting,\npeak per minute{log_note})")
        ax_queue.set_title("the same window: requests waiting; a queue above "
                           f"{model.slo_p99_s - model.service_time_s:g} s of the fleet's service rate breaches "
                           "the SLO", fontsize=10)
        ax_queue.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), fontsize=8, ncol=4, frameon=False)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
