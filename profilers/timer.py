"""One timer owns warm-up, synchronisation, adaptive repetition, median and IQR.

A *sample* is the average time of `inner` back-to-back executions (CUDA events around
them on a GPU, `perf_counter` on a CPU); samples are collected in rounds until the
relative IQR is small enough or the time budget is spent.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from profilers.device import Device


@dataclass(frozen=True)
class Timing:
    """Statistics of the samples of one measured callable (seconds per execution)."""

    median_s: float
    iqr_s: float
    reps: int  # timed samples
    inner: int  # executions per sample
    samples: tuple[float, ...]

    @property
    def rel_iqr(self) -> float:
        return self.iqr_s / self.median_s if self.median_s > 0 else float("inf")


def summarize(samples) -> tuple[float, float]:
    """(median, interquartile range) of the samples (linear-interpolated quartiles)."""
    arr = np.asarray(samples, dtype=float)
    if arr.size == 0:
        raise ValueError("no samples to summarize")
    q25, q50, q75 = np.percentile(arr, [25, 50, 75])
    return float(q50), float(q75 - q25)


@dataclass
class Timer:
    """Adaptive timer; `measure(fn)` returns a `Timing`."""

    device: Device
    budget_s: float = 1.0  # wall time for warm-up plus timed samples
    min_reps: int = 5  # samples before the spread may stop the loop
    max_reps: int = 200
    rel_iqr: float = 0.05  # stop once IQR / median is at most this
    round_reps: int = 5
    min_sample_s: float | None = None  # executions are grouped to reach this per sample
    flush_l2: bool = False  # zero a buffer twice the L2 size before every sample (GPU)

    def measure(self, fn: Callable[[], object]) -> Timing:
        start = time.perf_counter()
        dev = self.device
        cuda = dev.kind == "cuda"
        # Warm-up: first call pays for compilation, handles, allocator growth.
        first = self._wall(fn)
        estimate = self._wall(fn)  # the second call: compiled, cached
        warm_until = start + min(0.15 * self.budget_s, 0.5)
        calls = 2
        while time.perf_counter() < warm_until and calls < 100 and first < self.budget_s:
            estimate = min(estimate, self._wall(fn))
            calls += 1
        flush = self._flush_buffer() if (self.flush_l2 and cuda) else None
        min_sample = self.min_sample_s if self.min_sample_s is not None else (1e-3 if cuda else 5e-4)
        inner = 1 if flush is not None else max(1, math.ceil(min_sample / max(estimate, 1e-9)))
        samples: list[float] = []
        per_sample = estimate * inner
        while True:
            left = start + self.budget_s - time.perf_counter()
            n = max(1, min(self.round_reps, int(left / max(per_sample, 1e-9))))
            if not samples:
                n = max(n, min(self.min_reps, 3))
            n = max(n, 3 - len(samples))  # an IQR needs three samples, budget or not
            t0 = time.perf_counter()
            samples += self._round(fn, n, inner, flush) if cuda else self._cpu_round(fn, n, inner)
            per_sample = (time.perf_counter() - t0) / n
            med, iqr = summarize(samples)
            done_spread = len(samples) >= self.min_reps and iqr <= self.rel_iqr * med
            done_budget = len(samples) >= 3 and time.perf_counter() - start >= self.budget_s
            if done_spread or done_budget or len(samples) >= self.max_reps:
                return Timing(med, iqr, len(samples), inner, tuple(samples))

    def _wall(self, fn) -> float:
        self.device.synchronize()
        t0 = time.perf_counter()
        fn()
        self.device.synchronize()
        return time.perf_counter() - t0

    def _cpu_round(self, fn, n: int, inner: int) -> list[float]:
        out = []
        for _ in range(n):
            t0 = time.perf_counter()
            for _ in range(inner):
                fn()
            out.append((time.perf_counter() - t0) / inner)
        return out

    def _round(self, fn, n: int, inner: int, flush) -> list[float]:
        import torch

        events = []
        self.device.synchronize()
        for _ in range(n):
            if flush is not None:
                flush.zero_()
            begin = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            begin.record()
            for _ in range(inner):
                fn()
            end.record()
            events.append((begin, end))
        self.device.synchronize()
        return [b.elapsed_time(e) / 1e3 / inner for b, e in events]

    def _flush_buffer(self):
        import torch

        size = max(2 * self.device.l2_bytes(), 8 << 20)
        return torch.empty(size, dtype=torch.int8, device=self.device.torch_device)


@dataclass(frozen=True)
class Energy:
    """Energy per execution over a sustained window of back-to-back executions."""

    energy_j: float | None
    power_w: float | None
    energy_sampled_j: float | None  # sampled-power cross-check, per execution
    source: str
    window_s: float
    executions: int
    state: object  # DeviceState over the window
    tail_s: float | None = None  # aligned GPU window: seconds from the work's end to the tick
    tail_j: float | None = None  # energy taken off for that tail (whole window, not per run)


def measure_energy(device: Device, fn: Callable[[], object], time_s: float,
                   min_window_s: float = 0.5) -> Energy:
    """Run `fn` back to back for at least `min_window_s` inside an energy window."""
    n = max(1, math.ceil(min_window_s / max(time_s, 1e-9)))
    device.begin_window("point")
    try:
        for _ in range(n):
            fn()
        win = device.end_window("point")
    except BaseException:
        device.abort_window("point")  # no sampler thread left polling
        raise
    per = (lambda v: v / n if v is not None else None)
    return Energy(per(win.energy_j), win.power_w, per(win.energy_sampled_j), win.source,
                  win.duration_s, n, win.state, win.tail_s, win.tail_j)
