"""Energy windows aligned on the ticks of a hardware energy counter.

NVML's total-energy counter changes in steps (tens of milliseconds apart on recent GPUs;
`Nvml.counter_period_s` measures the step). A window that starts and ends at arbitrary
moments is off by up to one step at each edge, so a short window needs many steps to be
accurate (50 steps: 1-5 s a point). Aligned, it needs none:

- begin: poll until the counter changes, and start the work at once: the counter's value
  then is the energy up to the start (less the counter's latency L, spent idle);
- end: after the work, poll until the counter has changed twice (the second change comes
  more than one step after the work ended, so it includes all of it, whatever L < one
  step), and take off the energy of the tail, from the end of the work to that change:
  its sampled power (the device cools down from the work), else the idle power. The L at
  both edges cancels when the power a step before the start equals the power a step
  before the end: the count covers [start - L, tick - L], the work plus the tail.
- a wait that sees no change in time (a counter that stopped) gives no counter value: the
  window falls back to the sampled power (`nvml_sampled`).

Cost: at most one step at the start and two at the end, while the device idles.
"""
from __future__ import annotations

import time
from typing import Callable

UNKNOWN_PERIOD_S = 0.1  # the step assumed where it was not measured
POLL_S = 0.0005


def wait_for_ticks(read: Callable[[], float | None], period_s: float | None, ticks: int = 1,
                   clock: Callable[[], float] = time.perf_counter,
                   sleep: Callable[[float], None] = time.sleep) -> tuple[float, float | None, bool]:
    """Poll `read` until its value has changed `ticks` times: (time of the last change, the
    value then, whether it did). Gives up after `ticks + 1` steps (the counter may have
    stopped): then (now, the value now, False)."""
    period = period_s if period_s and period_s > 0 else UNKNOWN_PERIOD_S
    last = read()
    deadline = clock() + (ticks + 1) * period
    seen = 0
    while True:
        value = read()
        now = clock()
        if value is not None and last is not None and value != last:
            seen += 1
            last = value
            if seen >= ticks:
                return now, value, True
        elif last is None:
            last = value
        if now >= deadline:
            return now, value, False
        sleep(POLL_S)


def work_energy_j(e0: float, e_tick: float, work_end: float, tick: float,
                  tail_w: float | None) -> float:
    """Energy of the work in an aligned window: the counted energy less the tail's, at
    `tail_w` watts from the end of the work to the tick."""
    tail = max(0.0, tick - work_end) * (tail_w or 0.0)
    return e_tick - e0 - tail  # <= 0: no measurement (the caller falls back)
