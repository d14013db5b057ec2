"""Sweep the real traces for cases where `predictive` does worse than its backstop alone.

    .venv/bin/python scripts/sweep.py [--quick] [--jobs N] [--json docs/sweep.json] > docs/sweep.md

Issue 10's target for every real trace: `predictive` breaches no more SLO minutes than its backstop
(`concurrency-target-tracking` or `invocations-target-tracking`, per ``--backstop``) and costs at
most 1.05x its instance-hours. The README's table checks one slice of each trace at one scale; this
script replays variants of every trace in data/traces/ the way a user would (``prescaler backtest
... --policies predictive,<backstop> --json``, through :func:`prescaler.cli.main` as
scripts/results.py does):

- slices: the README's slice of each trace, plus 7- and 14-day windows (``--start``/``--days``) over
  the longer traces (each week of NASA, the World Cup's build-up, group stage and knock-outs, ELB's two
  weeks, NYC taxi's holidays and blizzard, Twitter's months, ServeGen's two weeks);
- scales ``--peak-rps`` 120, 220 (the README's) and 400 on the README slices;
- both backstops (``--backstop concurrency|invocations``) everywhere;
- model variants on the README slices: ``--capacity-rps 30 --target 1440`` (a slower model, its target
  20% under its saturation as the reference's is) and ``--provisioning-s 240 360``.

Each run reports predictive against its backstop (breach minutes, instance-hours, their ratio) and
is flagged a violation when predictive breaches more, or costs more than 1.05x. The Markdown report
(stdout) lists the violations first, then every run; ``--json`` also writes every row. Finished runs
are cached (``--cache``, one JSON line per command) so an interrupted sweep resumes where it stopped.
A progress bar (rich) goes to stderr. ``--quick`` replays a short slice of each trace only.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shlex
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from prescaler.cli import main
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

#: Issue 10: predictive may cost at most this many times its backstop's instance-hours.
COST_LIMIT = 1.05
#: Runs within the limits but costing more than this are listed as near misses.
NEAR_COST = 1.03
BACKSTOP_POLICY = {"concurrency": "concurrency-target-tracking", "invocations": "invocations-target-tracking"}
T = "data/traces/"


@dataclass(frozen=True)
class Trace:
    """One recording: its file, the options it always needs, the README's slice and extra slices."""

    key: str
    path: str
    options: str = ""
    readme: str = ""  # the README table's --start/--days/--warmup-days options ("" = the whole trace)
    slices: tuple[str, ...] = ()  # further windows, each "--start X --days N"
    quick: str = ""  # the slice --quick replays ("" = the README's)


TRACES = (
    Trace("elb", T + "elb_request_count_8c0756.csv",
          slices=("--start 2014-04-10 --days 7", "--start 2014-04-15 --days 7"),
          quick="--start 2014-04-15 --days 2"),
    Trace("nyc-taxi", T + "nyc_taxi.csv", readme="--days 14",
          slices=("--start 2014-09-01 --days 7", "--start 2014-11-24 --days 7", "--start 2014-12-22 --days 7",
                  "--start 2015-01-22 --days 7"),
          quick="--start 2015-01-22 --days 3"),
    Trace("twitter-amzn", T + "Twitter_volume_AMZN.csv", readme="--days 14",
          slices=("--start 2015-03-12 --days 7", "--start 2015-03-26 --days 7", "--start 2015-04-09 --days 7"),
          quick="--start 2015-03-12 --days 2"),
    Trace("azure-llm", T + "AzureLLMInferenceTrace_code.csv", options="--requests"),
    Trace("nasa", T + "nasa_http_jul1995_1min.csv",
          slices=("--start 1995-07-01 --days 7", "--start 1995-07-08 --days 7", "--start 1995-07-15 --days 7",
                  "--start 1995-07-19 --days 7", "--start 1995-07-12 --days 14"),
          quick="--start 1995-07-10 --days 3"),
    Trace("worldcup98", T + "worldcup98_http_1min.csv", readme="--start 1998-06-08 --days 14",
          slices=("--start 1998-05-22 --days 14", "--start 1998-05-01 --days 7", "--start 1998-06-01 --days 7",
                  "--start 1998-06-22 --days 7", "--start 1998-07-06 --days 7"),
          quick="--start 1998-06-08 --days 2"),
    Trace("servegen", T + "servegen_bailian_m_small_10min.csv",
          slices=("--start 1970-01-01 --days 7", "--start 1970-01-06 --days 7"),
          quick="--start 1970-01-06 --days 2"),
    Trace("azure-functions", T + "azure_functions_2019_sample500_timer_8h_1min.csv", options="--warmup-days 0"),
)


@dataclass(frozen=True)
class Variant:
    trace: str
    window: str  # "readme" or the slice's options
    peak_rps: float
    backstop: str
    model: str  # "" = the reference endpoint model

    def command(self, traces: dict[str, Trace]) -> str:
        t = traces[self.trace]
        window = t.readme if self.window == "readme" else self.window
        parts = [f"backtest --trace {t.path}", t.options.strip(), window.strip(), f"--peak-rps {self.peak_rps:g}",
                 f"--backstop {self.backstop}", self.model,
                 f"--policies predictive,{BACKSTOP_POLICY[self.backstop]}"]
        return " ".join(p for p in parts if p)


MODELS = ("--capacity-rps 30 --target 1440", "--provisioning-s 240 360")


def variants(quick: bool) -> list[Variant]:
    """Every run of the sweep: cheapest first within each group, so that partial results span traces."""
    out: list[Variant] = []
    if quick:
        for t in TRACES:
            window = t.quick.strip() or "readme"
            for backstop in BACKSTOP_POLICY:
                out.append(Variant(t.key, window, 220, backstop, ""))
        return out
    for backstop in BACKSTOP_POLICY:  # every slice at the README's scale
        for t in TRACES:
            for window in ("readme", *t.slices):
                out.append(Variant(t.key, window, 220, backstop, ""))
    for backstop in BACKSTOP_POLICY:  # the README slices at other scales
        for t in TRACES:
            for rps in (120, 400):
                out.append(Variant(t.key, "readme", rps, backstop, ""))
    for backstop in BACKSTOP_POLICY:  # ... and on other endpoint models
        for t in TRACES:
            for model in MODELS:
                out.append(Variant(t.key, "readme", 220, backstop, model))
    return out


def backtest(command: str) -> dict:
    """``prescaler <command> --json`` in this process; its JSON report (SystemExit on a non-zero exit)."""
    out, err = io.StringIO(), io.StringIO()
    started = time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([*shlex.split(command), "--json"])
    if code != 0:
        raise SystemExit(f"prescaler {command} exited {code}: {err.getvalue().strip()}")
    report = json.loads(out.getvalue())
    report["wall_s"] = round(time.perf_counter() - started, 1)
    return report


def never_worse(p: dict, b: dict) -> tuple[float, str]:
    """Predictive's scores ``p`` against its backstop's ``b`` (``breach_minutes``, ``instance_hours``):
    its cost ratio, and how it breaks issue 10's "never worse than the backstop" (more breach minutes,
    or more than :data:`COST_LIMIT` times its instance-hours), ``""`` when it does not."""
    ratio = p["instance_hours"] / b["instance_hours"] if b["instance_hours"] else float("inf")
    more_breach = p["breach_minutes"] > b["breach_minutes"]
    too_costly = ratio > COST_LIMIT
    return ratio, ", ".join([f"breaches +{p['breach_minutes'] - b['breach_minutes']}"] * more_breach
                            + [f"cost {ratio:.3f}x > {COST_LIMIT}x"] * too_costly)


def row(v: Variant, command: str, report: dict) -> dict:
    """One line of the sweep: predictive against its backstop, and whether it violates issue 10's targets."""
    backstop = BACKSTOP_POLICY[v.backstop]
    p, b = report["policies"]["predictive"], report["policies"][backstop]
    ratio, violation = never_worse(p, b)
    d = report["demand"]
    return {
        "trace": v.trace, "window": v.window, "peak_rps": v.peak_rps, "backstop": v.backstop,
        "model": v.model or "reference", "evaluated_start": d["evaluated_start"],
        "evaluated_days": round(d["evaluated_minutes"] / 1440, 2),
        "predictive_breach_min": p["breach_minutes"], "backstop_breach_min": b["breach_minutes"],
        "predictive_instance_h": round(p["instance_hours"], 1), "backstop_instance_h": round(b["instance_hours"], 1),
        "cost_ratio": round(ratio, 3), "violation": violation,
        "wall_s": report["wall_s"], "command": f"prescaler {command}",
    }


def _cached(path: Path) -> dict[str, dict]:
    if not path.exists():
        return {}
    rows = (json.loads(line) for line in path.read_text().splitlines() if line.strip())
    return {r["command"]: r for r in rows}


def _job(v: Variant, command: str) -> dict:
    return row(v, command, backtest(command))


def _describe(r: dict) -> str:
    return f"{r['trace']} {r['window']} ({r['wall_s']:.0f} s)"


def sweep(runs: list[Any], cache: Path, jobs: int, run: bool = True, *,
          command: Callable[[Any], str] | None = None, job: Callable[[Any, str], dict] = _job,
          describe: Callable[[dict], str] = _describe) -> Iterator[dict]:
    """Run (or read from ``cache``) every variant; yields each finished row, appending new ones to ``cache``
    (with ``run`` False, only the cached rows: a report of a sweep still under way).

    Other sweeps (scripts/field_cases.py) pass their own runs with ``command`` (a run's ``prescaler``
    arguments; default :meth:`Variant.command`), ``job`` (a module-level function: run and score one,
    its row carrying ``command`` = ``"prescaler " + command``) and ``describe`` (the progress line)."""
    traces = {t.key: t for t in TRACES}
    command_of = command or (lambda v: v.command(traces))
    done = _cached(cache)
    todo = []
    for v in runs:
        command = command_of(v)
        if f"prescaler {command}" in done:
            yield done[f"prescaler {command}"]
        elif run:
            todo.append((v, command))
    cache.parent.mkdir(parents=True, exist_ok=True)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=Console(stderr=True), disable=not todo) as progress, cache.open("a") as f:
        task = progress.add_task("sweeping", total=len(todo))

        def finished(r: dict) -> dict:
            f.write(json.dumps(r) + "\n")
            f.flush()
            progress.update(task, advance=1, description=describe(r))
            return r

        if jobs <= 1:
            for v, command in todo:
                yield finished(job(v, command))
        else:
            with ProcessPoolExecutor(jobs) as pool:
                futures = [pool.submit(job, v, command) for v, command in todo]
                for fut in as_completed(futures):
                    yield finished(fut.result())


def markdown(rows: pd.DataFrame, elapsed: float | None) -> str:
    """The violations first (worst first), then every run, as Markdown tables."""
    cols = ["trace", "window", "peak_rps", "backstop", "model", "predictive_breach_min", "backstop_breach_min",
            "predictive_instance_h", "backstop_instance_h", "cost_ratio", "violation"]
    heads = ["trace", "window", "peak RPS", "backstop", "model", "predictive breach min", "backstop breach min",
             "predictive inst-h", "backstop inst-h", "cost ratio", "violation"]

    def table(df: pd.DataFrame) -> list[str]:
        out = ["| " + " | ".join(heads) + " |", "|" + "---|" * 5 + "---:|" * 5 + "---|"]
        for _, r in df.iterrows():
            cells = [str(r[c]) if c != "peak_rps" else f"{r[c]:g}" for c in cols]
            out.append("| " + " | ".join(cells) + " |")
        return out

    bad = rows[rows["violation"] != ""].copy()
    bad["excess"] = bad["predictive_breach_min"] - bad["backstop_breach_min"]
    bad = bad.sort_values(["excess", "cost_ratio"], ascending=False)
    lines = ["# Sweep: predictive against its backstop on variants of the real traces", "",
             f"{len(rows)} runs, {len(bad)} violations (predictive breaches more than its backstop, or costs more "
             f"than {COST_LIMIT}x its instance-hours). Produced by `.venv/bin/python scripts/sweep.py`"
             + (f" in {elapsed:.0f} s." if elapsed is not None else "."), "",
             "## Violations", ""]
    lines += table(bad) if len(bad) else ["none"]
    lines += ["", "Commands of the violations:", "", "```", *bad["command"], "```", ""]
    near = rows[(rows["violation"] == "") & (rows["cost_ratio"] > NEAR_COST)]
    lines += [f"## Near misses (cost above {NEAR_COST}x, within the limit)", ""]
    lines += table(near.sort_values("cost_ratio", ascending=False)) if len(near) else ["none"]
    lines += ["", "## Every run", ""]
    lines += table(rows)
    return "\n".join(lines)


def main_(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a short slice of each trace, both backstops (< 3 min)")
    p.add_argument("--jobs", type=int, default=1, help="backtests run at once (default 1)")
    p.add_argument("--cache", type=Path, default=Path("out/sweep.jsonl"),
                   help="finished runs, one JSON line each; reused on the next call (default out/sweep.jsonl)")
    p.add_argument("--json", type=Path, help="also write every row to this JSON file")
    p.add_argument("--cached", action="store_true", help="report the cached runs only, run nothing")
    p.add_argument("--only", help="run only the traces whose key contains this text (e.g. nasa)")
    args = p.parse_args(argv)
    runs = [v for v in variants(args.quick) if not args.only or args.only in v.trace]
    started = time.perf_counter()
    rows = pd.DataFrame(list(sweep(runs, args.cache, args.jobs, run=not args.cached)))
    elapsed = time.perf_counter() - started
    print(f"{len(rows)} runs in {elapsed:.0f} s", file=sys.stderr)
    print(markdown(rows, None if args.cached else elapsed))
    if args.json:
        args.json.write_text(json.dumps(rows.to_dict(orient="records"), indent=1))


if __name__ == "__main__":
    main_()
