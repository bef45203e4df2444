"""Timer statistics, adaptive repetition, budgets and the spread order."""
from __future__ import annotations

import time

import numpy as np
import pytest

from perfmodel.errors import PerfmodelError
from profilers.budget import parse_duration, split_budget
from profilers.device import open_device
from profilers.order import spread_order
from profilers.timer import Timer, measure_energy, summarize


def test_summarize_median_and_iqr():
    med, iqr = summarize([1.0, 2.0, 3.0, 4.0, 100.0])
    assert med == 3.0
    assert iqr == pytest.approx(4.0 - 2.0)  # linear quartiles: q25=2, q75=4
    assert summarize([5.0]) == (5.0, 0.0)
    with pytest.raises(ValueError):
        summarize([])


def test_timer_measures_a_known_sleep():
    dev = open_device("cpu")
    timing = Timer(dev, budget_s=0.5, rel_iqr=0.5).measure(lambda: time.sleep(0.01))
    assert 0.009 < timing.median_s < 0.05
    assert timing.reps >= 3 and timing.inner == 1
    assert timing.iqr_s >= 0 and len(timing.samples) == timing.reps


def test_timer_groups_tiny_ops_and_stops_on_small_spread():
    dev = open_device("cpu")
    x = np.ones(8)
    timing = Timer(dev, budget_s=2.0, rel_iqr=10.0, min_reps=5).measure(lambda: x.sum())
    assert timing.inner > 1  # many executions per sample for a sub-microsecond op
    assert timing.reps == 5  # spread already within 10x: stops at min_reps
    assert timing.median_s < 1e-4


def test_timer_respects_budget_for_slow_ops():
    dev = open_device("cpu")
    start = time.perf_counter()
    timing = Timer(dev, budget_s=0.1, rel_iqr=0.0).measure(lambda: time.sleep(0.05))
    took = time.perf_counter() - start
    assert timing.reps == 3  # the minimum for an IQR, even past the budget
    assert took < 0.5  # 2 warm-up calls + 3 samples of 50 ms


def test_energy_window_without_energy_source_counts_executions():
    dev = open_device("cpu")
    dev.rapl.zones = []  # as on a machine without readable RAPL
    calls = []
    energy = measure_energy(dev, lambda: calls.append(1), time_s=0.001, min_window_s=0.05)
    assert energy.executions == len(calls) == 50
    assert energy.energy_j is None and energy.power_w is None and energy.source == ""


@pytest.mark.parametrize("text,seconds", [("90s", 90), ("8m", 480), ("1h", 3600),
                                          ("1h30m", 5400), ("2.5m", 150), ("45", 45)])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["", "ten", "5x", "-3", "0s", "m5", "nan", "inf", "-inf",
                                 "Infinity"])
def test_parse_duration_rejects_bad_input(bad):
    with pytest.raises(PerfmodelError, match="^budget "):
        parse_duration(bad)
    with pytest.raises(PerfmodelError, match="^--stop-after "):
        parse_duration(bad, "--stop-after")


def test_split_budget_is_proportional():
    shares = split_budget(100, {"a": 3, "b": 1})
    assert shares == {"a": 75, "b": 25}


def test_spread_order_is_a_deterministic_permutation_covering_early():
    grid = np.array([[i, j] for i in range(10) for j in range(10)], dtype=float)
    order = spread_order(grid, seed=1)
    assert sorted(order) == list(range(100))
    assert order == spread_order(grid, seed=1)
    first = grid[order[:8]]
    # the first few points already span both axes
    assert np.ptp(first[:, 0]) >= 8 and np.ptp(first[:, 1]) >= 8
    head = grid[:8]  # versus the naive order, which covers one corner only
    assert np.ptp(head[:, 0]) == 0
