"""Shared builders for the unit tests of the decision core: synthetic per-minute histories.

The reference traffic comes from PROBLEM.md: a baseline of ~40 requests/s (~2,400 invocations per
minute) and a spike at the top of every hour to ~220 requests/s (~13,200 invocations per minute)
that lasts ~10 minutes. ``synth.history`` builds a per-minute UTC series of invocations (the
``prescaler.history`` shape) from a mask function that says which minutes are in a spike.
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from prescaler.history import SERIES_NAME

BASELINE_PER_MINUTE = 2400.0
SPIKE_PER_MINUTE = 13200.0
SPIKE_MINUTES = 10
#: A Monday, a week before the US daylight-saving change of 2026-03-08.
MONDAY = pd.Timestamp("2026-03-02 00:00", tz="UTC")

SpikeMask = Callable[[pd.DatetimeIndex], np.ndarray]


def history(
    minutes: int,
    spike_mask: SpikeMask | None = None,
    *,
    start: pd.Timestamp = MONDAY,
    baseline: float = BASELINE_PER_MINUTE,
    spike: float = SPIKE_PER_MINUTE,
    noise: float = 0.02,
    seed: int = 0,
) -> pd.Series:
    """A per-minute UTC series of invocations over ``[start, start + minutes)``.

    ``baseline`` invocations per minute everywhere, ``spike`` where ``spike_mask(index)`` is True,
    both with multiplicative Gaussian noise of relative size ``noise`` (seeded, never negative).
    """
    index = pd.date_range(start, periods=minutes, freq="min", name="minute")
    rng = np.random.default_rng(seed)
    level = np.full(minutes, baseline)
    if spike_mask is not None:
        level = np.where(np.asarray(spike_mask(index), dtype=bool), spike, level)
    values = np.clip(level * (1 + noise * rng.standard_normal(minutes)), 0.0, None)
    return pd.Series(values, index=index, name=SERIES_NAME)


def top_of_hour(index: pd.DatetimeIndex, minute: int = 0, width: int = SPIKE_MINUTES) -> np.ndarray:
    """Spike mask: ``width`` minutes starting at ``minute`` past every hour."""
    return (index.minute >= minute) & (index.minute < minute + width)


@pytest.fixture(scope="session")
def synth() -> SimpleNamespace:
    """The synthetic-history builders and the reference traffic levels."""
    return SimpleNamespace(
        history=history,
        top_of_hour=top_of_hour,
        BASELINE=BASELINE_PER_MINUTE,
        SPIKE=SPIKE_PER_MINUTE,
        SPIKE_MINUTES=SPIKE_MINUTES,
        MONDAY=MONDAY,
    )
