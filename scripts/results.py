"""Regenerate the results table: the reference simulation (seeds 7, 11, 3) and a backtest of every
real trace in data/traces/, all seven policies each.

    .venv/bin/python scripts/results.py --readme README.md > docs/results.md      (or: make results)

Runs the same `prescaler` commands a user would (listed in the output) and prints a Markdown table
of their JSON reports, so that no number in the README is typed by hand. With ``--readme``, the table
between the README's ``<!-- results:begin -->`` and ``<!-- results:end -->`` markers is replaced too.
Progress (each command, then its time) goes to stderr; about 3 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import re
import shlex
import sys
import time
from pathlib import Path

from prescaler.cli import main

RUNS = [
    ("reference day (simulated, seed 7)", "simulate --scenario reference --days 3 --warmup-days 2 --seed 7"),
    ("reference day (simulated, seed 11)", "simulate --scenario reference --days 3 --warmup-days 2 --seed 11"),
    ("reference day (simulated, seed 3)", "simulate --scenario reference --days 3 --warmup-days 2 --seed 3"),
    ("AWS ELB request count, 14 days", "backtest --trace data/traces/elb_request_count_8c0756.csv --peak-rps 220"),
    ("NYC taxi, first 16 days", "backtest --trace data/traces/nyc_taxi.csv --peak-rps 220 --days 14"),
    ("Twitter AMZN volume, first 16 days",
     "backtest --trace data/traces/Twitter_volume_AMZN.csv --peak-rps 220 --days 14"),
    ("Azure LLM code requests, 1 hour", "backtest --trace data/traces/AzureLLMInferenceTrace_code.csv --requests "
     "--peak-rps 220"),
    ("NASA HTTP, July 1995 (27.6 days)", "backtest --trace data/traces/nasa_http_jul1995_1min.csv --peak-rps 220"),
    ("WorldCup98 HTTP, 8-26 June 1998 (group stage)",
     "backtest --trace data/traces/worldcup98_http_1min.csv --peak-rps 220 --start 1998-06-08 --days 14"),
    ("ServeGen Bailian LLM (M-small), 14 days",
     "backtest --trace data/traces/servegen_bailian_m_small_10min.csv --peak-rps 220"),
    ("Azure Functions 2019 timer-triggered sample, 8 hours",
     "backtest --trace data/traces/azure_functions_2019_sample500_timer_8h_1min.csv --peak-rps 220 "
     "--warmup-days 0"),
]

BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"


def run(command: str) -> dict:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main([*shlex.split(command), "--json"])
    if code != 0:
        raise SystemExit(f"prescaler {command} exited {code}")
    return json.loads(out.getvalue())


def table() -> str:
    lines = ["| traffic | policy | SLO breach min | requests over SLO | peak queue | instance-hours | vs oracle |",
             "|---|---|---:|---:|---:|---:|---:|"]
    commands = []
    total = time.perf_counter()
    for i, (label, command) in enumerate(RUNS, 1):
        print(f"[{i}/{len(RUNS)}] prescaler {command}", file=sys.stderr, flush=True)
        started = time.perf_counter()
        report = run(command)
        print(f"      {label}: {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
        commands.append(f"prescaler {command}")
        minutes = report["demand"]["evaluated_minutes"]
        span = f"{minutes / 1440:.1f} evaluated days" if minutes >= 1440 else f"{minutes} evaluated minutes"
        ratios = report.get("instance_hours_vs_oracle", {})
        for j, (name, s) in enumerate(report["policies"].items()):
            first = f"{label} ({span})" if j == 0 else ""
            bold = "**" if name == "predictive" else ""
            lines.append(f"| {first} | {bold}{name}{bold} | {s['breach_minutes']:,} "
                         f"| {s['slo_violating_requests']:,.0f} | {s['peak_queue']:,.0f} "
                         f"| {s['instance_hours']:,.1f} | {ratios.get(name, 0):.2f}x |")
    print(f"all {len(RUNS)} runs: {time.perf_counter() - total:.0f} s", file=sys.stderr, flush=True)
    lines += ["", "Produced by `make results` (scripts/results.py), which runs:", "", "```", *commands, "```"]
    return "\n".join(lines)


def replace_in_readme(readme: Path, text: str) -> None:
    """Put ``text`` between the README's results markers (refuses a README without them)."""
    content = readme.read_text()
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.S)
    if not pattern.search(content):
        raise SystemExit(f"{readme} has no {BEGIN} ... {END} markers")
    readme.write_text(pattern.sub(lambda _m: f"{BEGIN}\n{text}\n{END}", content, count=1))


def main_(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--readme", type=Path, help="also replace the table between the markers in this README")
    args = p.parse_args(argv)
    text = table()
    print(text)
    if args.readme:
        replace_in_readme(args.readme, text)


if __name__ == "__main__":
    main_()
