"""A background thread that samples power (and device state) during a window."""
from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from profilers.device.base import DeviceState


@dataclass
class Trace:
    """Power samples (seconds on the perf_counter clock, watts) and state samples."""

    times: list[float] = field(default_factory=list)
    watts: list[float] = field(default_factory=list)
    states: list[DeviceState] = field(default_factory=list)

    def energy_j(self, t0: float, t1: float) -> float | None:
        """Integral of power over [t0, t1] (trapezoids; edge values held flat)."""
        pts = [(t, w) for t, w in zip(self.times, self.watts) if t0 <= t <= t1]
        before = [(t, w) for t, w in zip(self.times, self.watts) if t < t0]
        after = [(t, w) for t, w in zip(self.times, self.watts) if t > t1]
        if before:
            pts.insert(0, (t0, before[-1][1]))
        if after:
            pts.append((t1, after[0][1]))
        if not pts:
            return None
        if pts[0][0] > t0:
            pts.insert(0, (t0, pts[0][1]))
        if pts[-1][0] < t1:
            pts.append((t1, pts[-1][1]))
        return sum((b[0] - a[0]) * (a[1] + b[1]) / 2 for a, b in zip(pts, pts[1:]))

    def summary_state(self) -> DeviceState:
        """Mean clocks, max temperature and OR'd throttle reasons over the samples."""
        if not self.states:
            return DeviceState()

        def mean(values):
            vals = [v for v in values if not math.isnan(v)]
            return sum(vals) / len(vals) if vals else float("nan")

        temps = [s.temp_c for s in self.states if not math.isnan(s.temp_c)]
        reasons = 0
        for s in self.states:
            reasons |= s.throttle_reasons
        return DeviceState(mean(s.sm_clock_hz for s in self.states),
                           mean(s.mem_clock_hz for s in self.states),
                           max(temps) if temps else float("nan"), reasons)


class PowerSampler:
    """Samples `read_power()` every `interval_s` and `read_state()` every `state_every_s`."""

    def __init__(self, read_power: Callable[[], float | None],
                 read_state: Callable[[], DeviceState] | None = None,
                 interval_s: float = 0.005, state_every_s: float = 0.1):
        self.read_power = read_power
        self.read_state = read_state
        self.interval_s = interval_s
        self.state_every_s = state_every_s
        self.trace = Trace()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _loop(self) -> None:
        next_state = 0.0
        while True:
            now = time.perf_counter()
            watts = self.read_power()
            if watts is not None:
                self.trace.times.append(now)
                self.trace.watts.append(watts)
            if self.read_state is not None and now >= next_state:
                self.trace.states.append(self.read_state())
                next_state = now + self.state_every_s
            if self._stop.wait(self.interval_s):
                break

    def start(self) -> "PowerSampler":
        self._thread = threading.Thread(target=self._loop, name="power-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> Trace:
        """Stop sampling (after one last sample) and return the trace."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        watts = self.read_power()
        if watts is not None:
            self.trace.times.append(time.perf_counter())
            self.trace.watts.append(watts)
        return self.trace
