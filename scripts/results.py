"""Regenerate the README's results table: the reference simulation and a backtest of every real trace.

    .venv/bin/python scripts/results.py > docs/results.md      (or: make results)

Runs the same `prescaler` commands a user would (listed in the output) and prints a Markdown table
of their JSON reports, so that no number in the README is typed by hand.
"""

from __future__ import annotations

import contextlib
import io
import json
import shlex
import sys
import time

from prescaler.cli import main

RUNS = [
    ("reference day (simulated)", "simulate --scenario reference --days 3 --warmup-days 2"),
    ("AWS ELB request count, 14 days", "backtest --trace data/traces/elb_request_count_8c0756.csv --peak-rps 220"),
    ("NYC taxi, first 16 days", "backtest --trace data/traces/nyc_taxi.csv --peak-rps 220 --days 14"),
    ("Twitter AMZN volume, first 16 days",
     "backtest --trace data/traces/Twitter_volume_AMZN.csv --peak-rps 220 --days 14"),
    ("Azure LLM code requests, 1 hour", "backtest --trace data/traces/AzureLLMInferenceTrace_code.csv --requests "
     "--peak-rps 220"),
]


def run(command: str) -> dict:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main([*shlex.split(command), "--json"])
    if code != 0:
        raise SystemExit(f"prescaler {command} exited {code}")
    return json.loads(out.getvalue())


def main_() -> None:
    lines = ["| traffic | policy | SLO breach min | requests over SLO | peak queue | instance-hours | vs oracle |",
             "|---|---|---:|---:|---:|---:|---:|"]
    commands = []
    for label, command in RUNS:
        started = time.perf_counter()
        report = run(command)
        print(f"{label}: {time.perf_counter() - started:.0f} s", file=sys.stderr)
        commands.append(f"prescaler {command}")
        minutes = report["demand"]["evaluated_minutes"]
        span = f"{minutes / 1440:.1f} evaluated days" if minutes >= 1440 else f"{minutes} evaluated minutes"
        ratios = report.get("instance_hours_vs_oracle", {})
        for i, (name, s) in enumerate(report["policies"].items()):
            first = f"{label} ({span})" if i == 0 else ""
            bold = "**" if name == "predictive" else ""
            lines.append(f"| {first} | {bold}{name}{bold} | {s['breach_minutes']:,} "
                         f"| {s['slo_violating_requests']:,.0f} | {s['peak_queue']:,.0f} "
                         f"| {s['instance_hours']:,.1f} | {ratios.get(name, 0):.2f}x |")
    print("\n".join(lines))
    print("\nProduced by `make results` (scripts/results.py), which runs:\n")
    print("```")
    print("\n".join(commands))
    print("```")


if __name__ == "__main__":
    main_()
