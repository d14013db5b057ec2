"""Bench tests run only when asked for (``make bench``: ``pytest -m bench --benchmark-enable``).

A bare ``pytest`` from the repository root collects them too; there pytest-benchmark is disabled
(``--benchmark-disable`` in pyproject.toml), so a timing could not be measured: they are skipped with
the command that runs them, instead of failing on a missing measurement.
"""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("benchmark_enable", default=False):
        return
    skip = pytest.mark.skip(reason="speed/memory target: run `make bench` (pytest -m bench --benchmark-enable)")
    for item in items:
        if item.get_closest_marker("bench") is not None:
            item.add_marker(skip)
