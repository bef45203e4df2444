"""The canary: slow spells of the machine are waited out, re-measured and flagged."""
from __future__ import annotations

import pytest

from profilers.canary import TOLERANCE, Canary, timed
from profilers.device import open_device
from profilers.timer import Timing


class _FakeCanary:
    def __init__(self, ratios):
        self.ratios = list(ratios)

    def settle(self):
        return self.ratios.pop(0)

    def ratio(self):
        return self.ratios.pop(0)


class _CountingTimer:
    def __init__(self):
        self.calls = 0

    def measure(self, fn):
        self.calls += 1
        return Timing(float(self.calls), 0.0, 3, 1, (1.0,))


def test_a_point_with_a_slow_canary_is_measured_again_and_the_faster_spell_kept():
    timer = _CountingTimer()
    timing, ratio = timed(timer, lambda: None, _FakeCanary([1.0, 1.9, 1.05, 1.1]))
    assert timer.calls == 2 and timing.median_s == 2.0 and ratio == pytest.approx(1.1)


def test_a_nominal_canary_measures_once_and_a_lasting_spell_is_reported():
    timer = _CountingTimer()
    assert timed(timer, lambda: None, _FakeCanary([1.0, 1.01]))[1] == pytest.approx(1.01)
    assert timer.calls == 1
    timer = _CountingTimer()
    timing, ratio = timed(timer, lambda: None, _FakeCanary([1.5, 1.6, 1.4, 1.45]))
    assert timer.calls == 2 and ratio == pytest.approx(1.45) and ratio > TOLERANCE
    assert timed(_CountingTimer(), lambda: None, None)[1] is None


def test_real_canary_reads_near_one_on_an_unloaded_core():
    """On a quiet core the canary's median ratio is near one. A shared machine has slow
    spells (the reason the canary exists; on 2026-12-02 a clean CI run read medians of 2.24,
    1.33 and 1.53 over three rounds a second apart), so up to eight rounds of 30 readings,
    two seconds apart: one quiet round is enough."""
    import time

    canary = Canary(open_device("cpu"))
    medians = []
    for _ in range(8):
        ratios = [canary.ratio() for _ in range(30)]
        assert min(ratios) >= 1.0
        medians.append(sorted(ratios)[len(ratios) // 2])
        if medians[-1] < TOLERANCE:
            break
        time.sleep(2.0)
    assert min(medians) < TOLERANCE, medians
    assert canary.settle(max_wait_s=0.5) >= 1.0
