"""scripts/results.py: the README's table is replaced between its markers, and only there."""

from __future__ import annotations

from pathlib import Path

import pytest
from _scripts import script_module as _script_module

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def _results_module():
    return _script_module("results")


def test_the_readme_table_is_replaced_between_the_markers_only(tmp_path: Path) -> None:
    results = _results_module()
    readme = tmp_path / "README.md"
    readme.write_text(f"# title\nbefore\n{results.BEGIN}\nold table\n{results.END}\nafter\n")
    results.replace_in_readme(readme, "| new | table |")
    assert readme.read_text() == f"# title\nbefore\n{results.BEGIN}\n| new | table |\n{results.END}\nafter\n"


def test_a_readme_without_markers_is_refused(tmp_path: Path) -> None:
    results = _results_module()
    readme = tmp_path / "README.md"
    readme.write_text("# no markers\n")
    with pytest.raises(SystemExit, match="markers"):
        results.replace_in_readme(readme, "x")
    assert readme.read_text() == "# no markers\n"


def test_make_results_covers_every_trace_in_data_traces() -> None:
    results = _results_module()
    commands = " ".join(command for _, command in results.RUNS)
    traces = sorted(p.name for p in (ROOT / "data" / "traces").glob("*.csv"))
    assert len(traces) == 8
    for name in traces:
        assert f"data/traces/{name}" in commands, name
    # and the reference scenario with the three seeds the targets name
    for seed in (7, 11, 3):
        assert f"--seed {seed}" in commands
    # and the committed README carries the markers the script writes between
    text = (ROOT / "README.md").read_text()
    assert text.count(results.BEGIN) == 1 and text.count(results.END) == 1


def test_oracle_gap_puts_each_minute_in_its_phase_of_the_oracles_spikes() -> None:
    import numpy as np

    gap = _script_module("oracle_gap")
    # Given the oracle at baseline 2, above it at minutes 5-7 and 12, with a 2-minute window
    billed = np.array([2, 2, 2, 2, 2, 4, 5, 3, 2, 2, 2, 2, 6, 2, 2, 2], dtype=float)
    names = [gap.PHASES[i] for i in gap.phases(billed, 2.0, 2)]
    # Then the minutes before a spike are "before" (a later spike's "before" wins over an earlier
    # one's "after"), its first minute "first", the rest "during", then "after", else "elsewhere"
    assert names == ["elsewhere", "elsewhere", "elsewhere", "before", "before", "first", "during", "during",
                     "after", "after", "before", "before", "first", "after", "after", "elsewhere"]
