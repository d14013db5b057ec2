"""``prescaler backtest --fleet``: every endpoint of a folder of traces, a table per endpoint and in
total, progress shown, a bad trace skipped with its reason (issue 11 §4)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from prescaler import cli

pytestmark = pytest.mark.unit

TRACES = Path(__file__).resolve().parents[2] / "data" / "traces"


def _slice(src: str, dst: Path, rows: int) -> None:
    pd.read_csv(TRACES / src, nrows=rows).to_csv(dst, index=False)


@pytest.fixture
def fleet_folder(tmp_path: Path) -> Path:
    _slice("nasa_http_jul1995_1min.csv", tmp_path / "nasa.csv", 3 * 1440)
    _slice("worldcup98_http_1min.csv", tmp_path / "worldcup.csv", 3 * 1440)
    (tmp_path / "broken.csv").write_text("timestamp,invocations\nyesterday,12\n")
    (tmp_path / "notes.txt").write_text("not a trace")
    return tmp_path


def test_backtest_fleet_replays_every_trace_of_a_folder_per_endpoint_and_in_total(
        fleet_folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["backtest", "--fleet", str(fleet_folder), "--warmup-days", "2", "--json", "--peak-rps", "100"])
    out, err = capsys.readouterr()
    assert code == 0
    report = json.loads(out)
    assert sorted(report["endpoints"]) == ["nasa", "worldcup"]
    assert list(report["skipped"]) == ["broken"] and "skipped broken" in err
    # progress: one line per endpoint on stderr when it is not a terminal
    assert [line for line in err.splitlines() if line.startswith("replaying")] == [
        "replaying 1/3: broken", "replaying 2/3: nasa", "replaying 3/3: worldcup"]
    for policy in ("invocations-target-tracking", "predictive"):
        per = [report["endpoints"][e][policy] for e in ("nasa", "worldcup")]
        total = report["total"][policy]
        assert total["breach_minutes"] == sum(p["breach_minutes"] for p in per)
        assert total["instance_hours"] == pytest.approx(sum(p["instance_hours"] for p in per), abs=0.01)
        assert all(p["instance_hours"] > 0 for p in per)


def test_backtest_fleet_prints_a_table_with_a_total_row(fleet_folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (fleet_folder / "broken.csv").unlink()
    assert cli.main(["backtest", "--fleet", str(fleet_folder), "--warmup-days", "2"]) == 0
    out = capsys.readouterr().out
    assert "nasa" in out and "worldcup" in out and "total (2 endpoints)" in out


@pytest.mark.parametrize(("args", "message"), [
    (["--fleet", "/nonexistent-folder"], "not a folder"),
    (["--fleet", "{empty}"], "no *.csv"),
    (["--fleet", "{empty}", "--trace", "x.csv"], "not with --trace"),
])
def test_backtest_fleet_user_mistakes_are_one_line(args: list[str], message: str, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    args = [a.replace("{empty}", str(tmp_path)) for a in args]
    assert cli.main(["backtest", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
