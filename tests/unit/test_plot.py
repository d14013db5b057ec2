"""The ``--plot`` PNG's queue panel: readable when one policy's backlog never drains."""

from __future__ import annotations

from pathlib import Path

import pytest
from matplotlib.figure import Figure
from prescaler.cli import main
from prescaler.sim.report import QUEUE_SPREAD_FOR_LOG, queue_scale

pytestmark = pytest.mark.unit

AZURE_FUNCTIONS = "data/traces/azure_functions_2019_sample500_timer_8h_1min.csv"


def _saved_queue_axis(monkeypatch, argv: list[str]):
    """Run the CLI and return the queue panel (the figure's last axes) of the PNG it saved."""
    saved: list[Figure] = []
    original = Figure.savefig

    def keep(self, *args, **kwargs):
        saved.append(self)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", keep)
    assert main(argv) == 0
    assert len(saved) == 1
    return saved[0].axes[-1]


def test_a_backlog_that_never_drains_puts_the_queue_panel_on_a_log_scale(monkeypatch, capsys, tmp_path: Path) -> None:
    # When the README's Azure Functions backtest is plotted: cpu-target-tracking's queue grows all day
    # (about a million requests in the zoom) while concurrency-target-tracking breaches 2 minutes
    # at 15:00 with a queue of about a thousand
    ax = _saved_queue_axis(monkeypatch, ["backtest", "--trace", AZURE_FUNCTIONS, "--peak-rps", "220",
                                         "--warmup-days", "0", "--plot", str(tmp_path / "az.png")])
    capsys.readouterr()
    # Then the queue panel is on a symlog scale whose linear part ends at the smallest breaching
    # queue, so the 2-minute breach is not flattened to the axis, and its label says so
    assert ax.get_yscale() == "symlog"
    assert "log scale" in ax.get_ylabel()
    linthresh = ax.yaxis.get_transform().linthresh
    assert 100 < linthresh < 10_000
    assert ax.get_ylim()[1] > QUEUE_SPREAD_FOR_LOG * linthresh


def test_the_reference_plot_keeps_a_linear_queue_panel(monkeypatch, capsys, tmp_path: Path) -> None:
    # When the reference day is plotted: the breaching queues are all within a factor of ten
    ax = _saved_queue_axis(monkeypatch, ["simulate", "--days", "1", "--warmup-days", "1",
                                         "--plot", str(tmp_path / "ref.png")])
    capsys.readouterr()
    # Then the queue panel stays linear, as in docs/reference.png
    assert ax.get_yscale() == "linear"
    assert "log scale" not in ax.get_ylabel()


@pytest.mark.parametrize(("peaks", "expected"), [
    ([], ("linear", 0.0)),
    ([0.0, 0.0], ("linear", 0.0)),
    ([5_000.0], ("linear", 0.0)),  # one breaching policy: nothing to flatten
    ([64_000.0, 50_000.0, 8_000.0], ("linear", 0.0)),
    ([99.0, 1.0], ("linear", 0.0)),
    ([100.0, 1.0], ("symlog", 1.0)),
    ([1_100_000.0, 0.0, 950.0, 3_000.0], ("symlog", 950.0)),
])
def test_queue_scale_goes_symlog_at_a_hundredfold_spread_of_breaching_peaks(peaks, expected) -> None:
    assert queue_scale(peaks) == expected
