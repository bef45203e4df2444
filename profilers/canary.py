"""The canary (`--canary`): a fixed small workload timed around every point, to see the
machine's speed.

A shared machine (a cloud VM, a GPU under a power cap) has slow spells that last seconds
to minutes: during one, everything runs up to 2x slower, and a point measured then is
wrong by that much however tight its own samples are. Before each point the runner times
the canary (a fixed GEMM, a few milliseconds in all) and compares it with the fastest the
canary has run so far; while it is more than `TOLERANCE` slower the runner waits (up to
`MAX_WAIT_S`), then measures, then times the canary again. A point whose canary was slow
before or after is measured once more; the row records the slowdown (`speed_ratio`) and
is flagged `throttled` when it stayed above the tolerance.

It sees compute-side slowdowns (frequency, a busy sibling thread) only: a cache-resident
GEMM does not notice memory-bandwidth or last-level-cache contention from neighbours.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

TOLERANCE = 1.2  # canary time / fastest canary time above which the machine is "slow"
MAX_WAIT_S = 3.0  # longest wait for a slow spell to pass before measuring anyway
SAMPLES = 5  # canary samples; their median is the reading


@dataclass
class Canary:
    """Times a fixed GEMM on `device`; `ratio()` is its slowdown against the fastest seen."""

    device: object
    size: int = 0  # GEMM edge; 0: chosen by device kind
    best_s: float = float("inf")
    readings: int = field(default=0, repr=False)

    def __post_init__(self) -> None:
        import torch

        cuda = self.device.kind == "cuda"
        n = self.size or (2048 if cuda else 128)
        dtype = torch.float16 if cuda else torch.float32
        dev = self.device.torch_device
        self._a = torch.randn(n, n, device=dev).to(dtype)
        self._b = torch.randn(n, n, device=dev).to(dtype)
        self._inner = 4 if cuda else 2
        for _ in range(3):
            self._sample()

    def _sample(self) -> float:
        self.device.synchronize()
        t0 = time.perf_counter()
        for _ in range(self._inner):
            self._a @ self._b
        self.device.synchronize()
        return (time.perf_counter() - t0) / self._inner

    def ratio(self) -> float:
        """The canary's median time now over the fastest median seen (>= 1)."""
        t = float(np.median([self._sample() for _ in range(SAMPLES)]))
        self.best_s = min(self.best_s, t)
        self.readings += 1
        return t / self.best_s

    def settle(self, max_wait_s: float = MAX_WAIT_S) -> float:
        """Wait until the canary runs within TOLERANCE (or max_wait_s passes); its ratio."""
        deadline = time.monotonic() + max_wait_s
        r = self.ratio()
        while r > TOLERANCE and time.monotonic() < deadline:
            time.sleep(0.1)
            r = self.ratio()
        return r


def timed(timer, fn, canary: Canary | None):
    """(Timing, speed ratio) of `fn`, measured in a nominal-speed spell where a canary is
    given: settle, measure, check; measured once more if the canary was slow around it."""
    if canary is None:
        return timer.measure(fn), None
    best = None
    for _ in range(2):
        before = canary.settle()
        timing = timer.measure(fn)
        ratio = max(before, canary.ratio())
        if best is None or ratio < best[1]:
            best = (timing, ratio)
        if ratio <= TOLERANCE:
            break
    return best
