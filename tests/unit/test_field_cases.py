"""scripts/field_cases.py: the generated traces hold the bursts each case says (on the real background,
recorded at the case's resolution), a miss of issue 10's target and a never-worse violation are flagged
exactly when they happen, and every case's command is one the CLI takes."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _scripts import script_module as _script_module
from prescaler.cli import _parser
from prescaler.sim.scenarios import load_trace

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def fc():
    return _script_module("field_cases")


def _background(fc, key: str) -> np.ndarray:
    bg = fc.BACKGROUNDS[key]
    start = pd.Timestamp(bg.start, tz="UTC")
    s = load_trace(bg.path)
    index = pd.date_range(start, periods=bg.days * 1440, freq="min")
    return s.reindex(index, fill_value=0.0).to_numpy()


@pytest.mark.parametrize(("period", "per_day"), [("15min", 96), ("1h", 24), ("2h", 12), ("8h", 3), ("12h", 2),
                                                 ("daily", 1), ("twice-daily", 2)])
def test_a_case_adds_its_bursts_to_the_real_background_at_its_period(fc, period: str, per_day: int) -> None:
    case = fc.Case("nasa", period, jitter=0, cv=0.0, ramp=1)
    trace = fc.generate(case)
    bg = _background(fc, "nasa")
    added = trace.to_numpy() - np.round(bg)
    assert len(trace) == fc.DAYS * 1440 and (np.abs(added) <= 0.5 + 1e-9).sum() > 0.5 * len(trace)
    starts = np.flatnonzero((added > 1) & (np.concatenate(([0.0], added[:-1])) <= 1))
    assert len(starts) == per_day * fc.DAYS
    assert starts[0] == fc.PERIODS[period][1]
    # every burst lasts its duration at one height (cv 0): 1.5x the background's p99
    height = 1.5 * np.percentile(bg, 99)
    assert np.allclose(added[starts[0]:starts[0] + case.minutes], height, atol=1)
    assert abs(added[starts[0] + case.minutes]) <= 1


def test_weekdays_skips_moves_and_jitter_are_where_the_case_says(fc) -> None:
    start = pd.Timestamp(fc.BACKGROUNDS["nasa"].start, tz="UTC")
    minutes = fc.DAYS * 1440
    weekdays = fc.burst_starts(fc.Case("nasa", "weekdays", jitter=0), start, minutes, np.random.default_rng(1))
    assert all((start + pd.Timedelta(minutes=m)).dayofweek < 5 for m in weekdays) and len(weekdays) in (10, 11)
    assert all(m % 1440 == 540 for m in weekdays)
    moved = fc.burst_starts(fc.Case("nasa", "daily", jitter=0, move=60), start, minutes, np.random.default_rng(1))
    assert [m % 1440 for m in moved] == [840] * 7 + [900] * 8
    hourly = fc.Case("nasa", "1h", jitter=0)
    skipped = fc.burst_starts(replace(hourly, skip=0.3), start, minutes, np.random.default_rng(1))
    assert 0.6 < len(skipped) / (24 * fc.DAYS) < 0.8
    jittered = fc.burst_starts(replace(hourly, jitter=7), start, minutes, np.random.default_rng(1))
    offsets = np.array([(m + 30) % 60 - 30 for m in jittered])
    assert offsets.min() == -7 and offsets.max() == 7


def test_a_coarse_recording_sums_the_minutes_of_each_interval(fc) -> None:
    fine = fc.generate(fc.Case("elb", "1h"))
    coarse = fc.generate(fc.Case("elb", "1h", resolution=10))
    assert len(coarse) == len(fine) // 10 and coarse.index[1] - coarse.index[0] == pd.Timedelta("10min")
    assert coarse.sum() == fine.sum() and coarse.iloc[3] == fine.iloc[30:40].sum()


def _report(p: tuple[int, float], inv: tuple[int, float], conc: tuple[int, float], backstop: str = "concurrency"):
    pol = {name: {"breach_minutes": b, "instance_hours": h} for name, (b, h) in
           (("predictive", p), ("invocations-target-tracking", inv), ("concurrency-target-tracking", conc))}
    return {"policies": pol, "model": {"backstop": backstop}, "wall_s": 1.0}


@pytest.mark.parametrize(
    ("p", "inv", "conc", "miss", "worse"),
    [
        ((50, 115.0), (100, 100.0), (300, 110.0), "", ""),  # exactly 0.5x at exactly 1.15x the best peer (inv)
        ((51, 100.0), (100, 100.0), (300, 110.0), "breach 51 > 0.5x 100", ""),
        ((10, 115.1), (100, 100.0), (300, 110.0), "cost 1.151x > 1.15x", ""),
        ((10, 95.0), (300, 100.0), (100, 90.0), "", "cost 1.056x > 1.05x"),  # conc is best and the backstop
        ((301, 95.0), (100, 100.0), (300, 100.0), "breach 301 > 0.5x 100", "breaches +1"),
        ((0, 100.0), (0, 100.0), (0, 99.0), "", ""),
    ],
    ids=["at-limits", "breaches", "costly", "costlier-than-backstop", "worse-than-backstop", "all-zero"],
)
def test_a_miss_and_a_violation_are_flagged_exactly_when_they_happen(fc, p, inv, conc, miss, worse) -> None:
    r = fc.row(fc.Case("nasa", "1h"), "backtest ...", _report(p, inv, conc))
    assert (r["target_miss"], r["never_worse_violation"]) == (miss, worse)
    best = min(("invocations-target-tracking", inv), ("concurrency-target-tracking", conc),
               key=lambda kv: (kv[1][0], kv[1][1]))
    assert (r["best_peer"], r["peer_breach_min"]) == (best[0], best[1][0])
    # behind the invocations backstop the never-worse check reads that policy
    r = fc.row(fc.Case("nasa", "1h"), "backtest ...", _report(p, inv, conc, "invocations"))
    assert r["backstop"] == "invocations-target-tracking" and r["backstop_breach_min"] == inv[0]


def test_every_case_is_distinct_and_its_command_is_one_the_cli_takes(fc, tmp_path: Path) -> None:
    for quick in (True, False):
        cases = fc.cases(quick)
        assert len({c.name for c in cases}) == len({c.file for c in cases}) == len(cases)
        for c in cases:
            args = _parser().parse_args(fc.command(c, tmp_path).split())
            assert args.command == "backtest" and args.peak_rps == c.peak_rps
    full = fc.cases(False)
    assert set(fc.PERIODS) <= {c.period for c in full} and set(fc.BACKGROUNDS) == {c.background for c in full}
    assert {c.resolution for c in full} == {1, 5, 10} and {c.peak_rps for c in full} == {120, 220, 400}


def test_a_case_is_replayed_then_read_back_from_the_cache(fc, tmp_path: Path, monkeypatch) -> None:
    calls: list[str] = []

    def backtest(command: str) -> dict:
        calls.append(command)
        assert Path(command.split("--trace ")[1].split()[0]).exists()
        return _report((10, 100.0), (100, 100.0), (80, 110.0))

    monkeypatch.setattr(fc._sweep, "backtest", backtest)
    out = tmp_path / "report.md"
    for _ in range(2):
        with out.open("w") as f, pytest.MonkeyPatch.context() as m:
            m.setattr("sys.stdout", f)
            fc.main_(["--quick", "--only", "nasa 1h", "--dir", str(tmp_path / "cases"),
                      "--cache", str(tmp_path / "c.jsonl")])
    assert len(calls) == 1  # the second run read the case from the cache
    md = out.read_text()
    assert "| nasa 1h | 10 | 80 |" in md and "0 miss issue 10's target" in md
