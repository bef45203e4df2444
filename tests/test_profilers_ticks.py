"""Energy windows aligned on the energy counter's ticks (`profilers/device/ticks.py`),
on a simulated counter: no GPU needed."""
from __future__ import annotations

import threading
import time

import pytest

from profilers.device.base import DeviceState
from profilers.device.ticks import wait_for_ticks, work_energy_j


class _Clock:
    """Fake time; `sleep` advances it."""

    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t

    def sleep(self, dt):
        self.t += dt


def _stepped(clock, period, watts, latency=0.0):
    """A counter (J) that changes every `period` s to the energy of constant `watts` up to
    `latency` s before the change."""
    return lambda: watts * max(0.0, (int(clock() / period) * period) - latency)


def test_waits_for_the_next_change_and_reports_its_time():
    clock = _Clock()
    clock.t = 1.234
    read = _stepped(clock, 0.1, 300.0)
    t, value, ok = wait_for_ticks(read, 0.1, 1, clock=clock, sleep=clock.sleep)
    assert ok and t == pytest.approx(1.3, abs=1e-3) and value == pytest.approx(300 * 1.3)
    t, value, ok = wait_for_ticks(read, 0.1, 2, clock=clock, sleep=clock.sleep)
    assert ok and t == pytest.approx(1.5, abs=1e-3)


def test_gives_up_on_a_stopped_counter():
    clock = _Clock()
    t, value, ok = wait_for_ticks(lambda: 5.0, 0.1, 2, clock=clock, sleep=clock.sleep)
    assert not ok and value == 5.0 and t == pytest.approx(0.3, abs=1e-3)  # (ticks + 1) steps
    t, value, ok = wait_for_ticks(lambda: None, None, 1, clock=clock, sleep=clock.sleep)
    assert not ok and value is None  # unknown step: 0.1 s assumed


def test_the_idle_tail_comes_off_and_the_latency_cancels():
    """Work at 500 W from 1.0 s to 1.37 s on a 100 W idle device; the counter steps every
    0.1 s and lags 30 ms: begin at the tick, end two ticks after the work."""
    idle, busy, period, lag = 100.0, 500.0, 0.1, 0.03

    def energy_to(t):  # exact energy since 0 up to t
        work = max(0.0, min(t, 1.37) - 1.0)
        return idle * t + (busy - idle) * work

    clock = _Clock()
    clock.t = 0.95
    read = lambda: energy_to(max(0.0, int(clock() / period) * period - lag))  # noqa: E731
    t0, e0, ok0 = wait_for_ticks(read, period, 1, clock=clock, sleep=clock.sleep)
    assert ok0 and t0 == pytest.approx(1.0, abs=1e-3)
    clock.t = 1.37  # the work ran from t0
    t2, e2, ok2 = wait_for_ticks(read, period, 2, clock=clock, sleep=clock.sleep)
    assert ok2 and t2 == pytest.approx(1.5, abs=1e-3)
    got = work_energy_j(e0, e2, 1.37, t2, idle)
    assert got == pytest.approx(busy * 0.37, rel=0.01)
    # unaligned, one step at each edge would have been off by up to 2 x 50 J of 185 J
    assert work_energy_j(10.0, 5.0, 1.0, 2.0, 100.0) < 0  # the caller drops it


class _CounterNvml:
    """A simulated NVML on the real clock: 300 W idle, 600 W while `busy`, counter steps of
    20 ms lagging 5 ms, and a power reading."""

    has_counter = has_power = instant_power = True

    def __init__(self):
        self.frozen = None  # a value: the counter stops there
        self._busy = False
        self._e, self._t = 0.0, time.perf_counter()
        self._lock = threading.Lock()
        self._log = [(self._t, 0.0)]

    @property
    def busy(self):
        return self._busy

    @busy.setter
    def busy(self, value):  # the energy so far accrues at the old power
        self._advance()
        self._busy = value

    def _advance(self):
        now = time.perf_counter()
        with self._lock:
            self._e += (now - self._t) * (600.0 if self._busy else 300.0)
            self._t = now
            self._log.append((now, self._e))

    def energy_j(self):
        if self.frozen is not None:
            return self.frozen
        self._advance()
        step = int((time.perf_counter() - 0.005) / 0.02) * 0.02
        with self._lock:
            before = [e for t, e in self._log if t <= step]
        return before[-1] if before else 0.0

    def power_w(self):
        return 600.0 if self.busy else 300.0

    def state(self):
        return DeviceState()


def test_cuda_device_windows_measure_the_work_energy():
    from profilers.device.cuda import CudaDevice

    dev = object.__new__(CudaDevice)  # no GPU: the NVML side only
    dev.notes, dev._windows = [], {}
    dev.nvml, dev.counter_period_s, dev.idle_w = _CounterNvml(), 0.02, None
    dev.synchronize = lambda: None
    idle = dev.idle_power_w(0.3)
    assert idle == pytest.approx(300.0, rel=0.05) and dev.idle_w == idle
    dev.begin_window("point")
    dev.nvml.busy = True
    time.sleep(0.25)
    dev.nvml.busy = False
    win = dev.end_window("point")
    assert win.source == "nvml_counter"
    assert win.duration_s == pytest.approx(0.25, abs=0.02)
    assert 0.015 < win.tail_s < 0.1 and win.tail_j == pytest.approx(300.0 * win.tail_s, rel=0.1)
    # the idle tail (300 W for 20-45 ms: 4-9% of the work's 150 J) is off
    assert win.energy_j == pytest.approx(600.0 * win.duration_s, rel=0.02)
    assert win.power_w == pytest.approx(600.0, rel=0.02)
    # a counter that stops: no counter value, the sampled power instead
    dev.begin_window("point")
    dev.nvml.busy = True
    time.sleep(0.1)
    dev.nvml.frozen = dev.nvml.energy_j()
    dev.nvml.busy = False
    win = dev.end_window("point")
    assert win.source == "nvml_sampled" and win.energy_counter_j is None
    assert win.energy_j == pytest.approx(600.0 * 0.1, rel=0.15)
    dev.nvml.frozen = None
    # a failed workload: the window closes and its sampler stops
    dev.begin_window("point")
    sampler = dev._windows["point"][1][2]
    dev.abort_window("point")
    assert "point" not in dev._windows and not sampler._thread.is_alive()


def _sim_cuda(nvml, idle_w=None):
    from profilers.device.cuda import CudaDevice

    dev = object.__new__(CudaDevice)  # no GPU: the NVML side only
    dev.notes, dev._windows = [], {}
    dev.nvml, dev.counter_period_s, dev.idle_w = nvml, 0.02, idle_w
    dev.min_window_s, dev.synchronize = 0.5, lambda: None
    return dev


def _busy_work(nvml, seconds):
    def work():
        nvml.busy = True
        time.sleep(seconds)
        nvml.busy = False
    return work


def test_the_check_steps_tail_check_passes_a_sound_tail_and_flags_a_mispriced_one():
    """`profilers.session.tail_check`: short windows (a point's) against a long one on the
    simulated counter; near 1 when the tail is priced right, far off when it is not (the
    idle power it is priced at said 10x too high, no instant power)."""
    from profilers.session import tail_check

    nvml = _CounterNvml()
    dev = _sim_cuda(nvml)
    got = tail_check(dev, _busy_work(nvml, 0.005), 0.005, windows=3, long_s=1.5)
    assert got["short_sources"] == ["nvml_counter"] * 3 and got["long_source"] == "nvml_counter"
    # within 8%: a loaded VM's preemptions between the simulated work's sleeps count at 300 W
    assert got["short_over_long"] == pytest.approx(1.0, abs=0.08)
    # the long window's energy is its busy time at 600 W (sleep overshoots: no fixed J)
    assert got["long_j"] * got["long_execs"] == pytest.approx(600.0 * got["long_window_s"], rel=0.08)
    assert all(0.015 < t < 0.1 for t in got["short_tail_s"])
    nvml.instant_power = False  # the tail priced at the idle power, given wrong
    dev = _sim_cuda(nvml, idle_w=3000.0)
    got = tail_check(dev, _busy_work(nvml, 0.005), 0.005, windows=3, long_s=1.5)
    assert got["short_over_long"] < 0.9
