"""scripts/sweep.py: every trace is swept, a violation is flagged exactly when issue 10's targets are
missed, and a finished run is read back from the cache instead of being replayed."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from _scripts import script_module as _script_module
from prescaler.cli import _parser

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def _report(p_breach: int, b_breach: int, p_hours: float, b_hours: float, backstop: str) -> dict:
    scores = {"slo_violating_requests": 0.0, "peak_queue": 0.0}
    return {
        "policies": {"predictive": {"breach_minutes": p_breach, "instance_hours": p_hours, **scores},
                     backstop: {"breach_minutes": b_breach, "instance_hours": b_hours, **scores}},
        "demand": {"evaluated_start": "2026-01-01T00:00:00+00:00", "evaluated_minutes": 1440},
        "wall_s": 1.0,
    }


@pytest.mark.parametrize(
    ("p_breach", "b_breach", "p_hours", "b_hours", "violation"),
    [
        (10, 10, 105.0, 100.0, ""),  # exactly 1.05x: within the target
        (9, 10, 105.1, 100.0, "cost 1.051x > 1.05x"),
        (11, 10, 90.0, 100.0, "breaches +1"),
        (12, 10, 120.0, 100.0, "breaches +2, cost 1.200x > 1.05x"),
        (0, 0, 100.0, 100.0, ""),
    ],
    ids=["at-limit", "costlier", "breaches-more", "both", "equal"],
)
def test_a_violation_is_flagged_exactly_when_a_target_is_missed(p_breach, b_breach, p_hours, b_hours,
                                                                 violation) -> None:
    sweep = _script_module("sweep")
    for backstop, policy in sweep.BACKSTOP_POLICY.items():
        v = sweep.Variant("elb", "readme", 220, backstop, "")
        r = sweep.row(v, "backtest ...", _report(p_breach, b_breach, p_hours, b_hours, policy))
        assert r["violation"] == violation
        assert (r["predictive_breach_min"], r["backstop_breach_min"]) == (p_breach, b_breach)


def test_every_trace_is_swept_and_every_command_is_one_the_cli_takes() -> None:
    sweep = _script_module("sweep")
    traces = {t.key: t for t in sweep.TRACES}
    # every recording in data/traces/ has its entry (a new trace is not silently left out)
    assert {Path(t.path).name for t in sweep.TRACES} == {p.name for p in (ROOT / "data/traces").glob("*.csv")}
    for quick in (True, False):
        runs = sweep.variants(quick)
        assert {v.trace for v in runs} == set(traces)
        assert {v.backstop for v in runs} == set(sweep.BACKSTOP_POLICY)
        for v in runs:
            args = _parser().parse_args(v.command(traces).split())
            assert args.command == "backtest" and args.backstop == v.backstop
            assert args.policies == f"predictive,{sweep.BACKSTOP_POLICY[v.backstop]}"
    # the full sweep also varies the scale and the endpoint model
    full = sweep.variants(False)
    assert {v.peak_rps for v in full} == {120, 220, 400} and len({v.model for v in full}) == 1 + len(sweep.MODELS)


def test_a_run_is_scored_from_the_real_backtest_then_read_back_from_the_cache(tmp_path: Path, monkeypatch) -> None:
    sweep = _script_module("sweep")
    runs = [v for v in sweep.variants(True) if v.trace == "azure-llm"]
    cache = tmp_path / "sweep.jsonl"
    rows = list(sweep.sweep(runs, cache, jobs=1))
    # the rows are the backtest's own numbers (both backstops of the 1-hour Azure LLM trace)
    assert [r["backstop"] for r in rows] == ["concurrency", "invocations"]
    direct = sweep.backtest(runs[0].command({t.key: t for t in sweep.TRACES}))
    assert rows[0]["predictive_breach_min"] == direct["policies"]["predictive"]["breach_minutes"]
    assert rows[0]["backstop_instance_h"] == round(direct["policies"]["concurrency-target-tracking"]
                                                   ["instance_hours"], 1)
    assert len(cache.read_text().splitlines()) == 2

    # a second sweep replays nothing: every row comes from the cache
    def replayed(command: str) -> dict:
        raise AssertionError(f"replayed {command}")

    monkeypatch.setattr(sweep, "backtest", replayed)
    again = list(sweep.sweep(runs, cache, jobs=1))
    assert [json.dumps(r, sort_keys=True) for r in again] == [json.dumps(r, sort_keys=True) for r in rows]
    # and the report lists them
    md = sweep.markdown(pd.DataFrame(again), None)
    assert md.count("| azure-llm |") == 2
