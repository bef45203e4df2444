"""Measure one point: activation bytes, peak memory, time statistics, energy, device state."""
from __future__ import annotations

import json
import math
import time

from perfmodel.errors import PerfmodelError
from profilers.device import Device
from profilers.memory import activation_bytes
from profilers.points import Point
from profilers.schema import COLUMN_NAMES
from profilers.canary import TOLERANCE, timed
from profilers.timer import Timer, measure_energy


def point_columns(point: Point, seq: int) -> dict:
    """The identifying columns of a point's row (parameters named as schema columns)."""
    row = {"point_id": point.id, "suite": point.suite, "op": point.op, "phase": point.phase,
           "dtype": point.dtype, "seq": seq, "params": json.dumps(point.p, sort_keys=True)}
    for key, value in point.params:
        if key in COLUMN_NAMES and key not in row:
            row[key] = value
    return row


def error_text(exc: BaseException) -> str:
    """`Type: first line of the message`, short enough for a table cell."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:300] if lines else ''}".rstrip(": ")


# A CUDA error that leaves the context unusable: every later point would fail in
# milliseconds (an out-of-memory error is not one of them)
STICKY_CUDA_ERRORS = ("illegal memory access", "device-side assert", "an illegal instruction",
                      "CUBLAS_STATUS_EXECUTION_FAILED", "CUDNN_STATUS_EXECUTION_FAILED",
                      "unspecified launch failure", "misaligned address", "ECC error",
                      "GPU has fallen off the bus", "uncorrectable")


class DeviceLost(PerfmodelError):
    """The device cannot go on after this point (its row says why); the run stops, and a
    rerun resumes in a fresh process (`profilers.session` reruns it)."""

    def __init__(self, row: dict):
        super().__init__(f"the device failed at point {row.get('point_id')} and cannot go on "
                         f"({row.get('error', '')}); its row is kept as failed: rerun the same "
                         "command to resume in a fresh process")
        self.row = row


def is_sticky(exc: BaseException) -> bool:
    """Whether `exc` is a CUDA error after which the device context is lost (torch raises
    `AcceleratorError` for recoverable launch errors too: the message decides)."""
    text = str(exc).lower()
    return any(s.lower() in text for s in STICKY_CUDA_ERRORS)


def device_alive(device: Device) -> bool:
    """Whether the device still runs a trivial kernel (devices without the probe: yes)."""
    alive = getattr(device, "alive", None)
    return alive is None or bool(alive())


def _throttled(device: Device, state, speed: float | None):
    """NVML's power/thermal reasons on a GPU; a slow canary around the timing anywhere."""
    slow = speed is not None and speed > TOLERANCE
    if device.kind == "cuda":
        return bool(state.throttled or slow)
    return slow if speed is not None else None


def measure_point(suite, point: Point, seq: int, device: Device, *, flush_l2: bool = False,
                  canary=None) -> dict:
    """One row for `point`: status ok with measurements, or status failed with the reason.
    With a `profilers.canary.Canary`, the timing is taken in a nominal-speed spell."""
    start = time.perf_counter()
    row = point_columns(point, seq)
    workload = None
    try:
        workload = suite.build(point, device)
        row.update(workload.extra)
        row["flops"], row["bytes"] = workload.flops, workload.bytes
        with workload.context():
            if workload.forward is not None:
                row["act_bytes"] = activation_bytes(workload.forward, workload.not_activations)
            if device.kind == "cuda":
                workload.run()  # allocator and optimizer state settle before the peak is read
                device.synchronize()
                device.reset_peak_memory()
                workload.run()
                device.synchronize()
                row["peak_bytes"] = device.peak_memory_bytes()
            timer = Timer(device, budget_s=suite.timing_budget_s(device), flush_l2=flush_l2)
            timing, speed = timed(timer, workload.run, canary)
            row.update(time_s=timing.median_s, time_iqr_s=timing.iqr_s, reps=timing.reps,
                       inner_reps=timing.inner, speed_ratio=speed)
            state = None
            if device.has_energy:
                energy = measure_energy(device, workload.run, timing.median_s,
                                        suite.energy_window_s(device, timing.median_s))
                row.update(energy_j=energy.energy_j, power_w=energy.power_w,
                           energy_sampled_j=energy.energy_sampled_j,
                           energy_source=energy.source, energy_window_s=energy.window_s,
                           energy_execs=energy.executions, energy_tail_s=energy.tail_s,
                           energy_tail_j=energy.tail_j)
                state = energy.state
            state = state or device.state()
        row.update(sm_clock_hz=state.sm_clock_hz, mem_clock_hz=state.mem_clock_hz,
                   temp_c=state.temp_c, throttle_reasons=state.throttle_reasons,
                   throttled=_throttled(device, state, speed),
                   status="ok", error="")
    except Exception as exc:  # OOM, unsupported op, bad shape: a failed row, the run goes on
        row.update(status="failed", error=error_text(exc))
        for key in ("time_s", "time_iqr_s", "energy_j", "power_w"):
            row.pop(key, None)
        failed, sticky = True, is_sticky(exc)  # flags only: the exception's frames hold
    else:                                      # the workload's memory
        failed = sticky = False
    finally:
        del workload
        lost = False
        if row.get("status") == "failed":
            try:
                device.empty_cache()
            except Exception as exc:  # the context is gone
                lost = device.kind == "cuda"
                row["error"] = f"{row.get('error', '')}; then {error_text(exc)}"
    if failed and not lost and device.kind == "cuda":  # probed with the point's memory freed
        lost = sticky or not device_alive(device)
    row["wall_s"] = time.perf_counter() - start
    for key, value in list(row.items()):
        if isinstance(value, float) and math.isnan(value):
            row[key] = None
    if lost:
        raise DeviceLost(row)
    return row
