"""What every device offers the profilers: a timer clock, energy windows, state, memory."""
from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass(frozen=True)
class DeviceState:
    """Clocks, temperature and throttle reasons read at one moment (NaN/0 when unknown)."""

    sm_clock_hz: float = float("nan")
    mem_clock_hz: float = float("nan")
    temp_c: float = float("nan")
    throttle_reasons: int = 0  # NVML clocks-event bitmask (0 = none or unknown)

    @property
    def throttled(self) -> bool:
        from profilers.device.nvml import is_throttled

        return is_throttled(self.throttle_reasons)


@dataclass(frozen=True)
class EnergyWindow:
    """Energy and power over one measurement window (energy fields None when unmeasured)."""

    name: str
    duration_s: float
    energy_j: float | None  # best estimate: the energy counter, else integrated samples
    source: str  # "nvml_counter" | "nvml_sampled" | "rapl" | "" (no energy source)
    energy_counter_j: float | None = None  # difference of the hardware energy counter
    energy_sampled_j: float | None = None  # integral of sampled power (cross-check)
    n_samples: int = 0
    state: DeviceState = field(default_factory=DeviceState)  # max temp, mean clocks, OR'd reasons
    tail_s: float | None = None  # an aligned window: from the work's end to the closing tick
    tail_j: float | None = None  # the energy counted in that tail and taken off

    @property
    def power_w(self) -> float | None:
        """Average power over the window (energy / duration)."""
        if self.energy_j is None or self.duration_s <= 0:
            return None
        return self.energy_j / self.duration_s


class Device:
    """Base class: subclasses hide CUDA vs CPU and the vendor power interfaces."""

    kind = "cpu"

    def __init__(self) -> None:
        self.notes: list[str] = []
        self._windows: dict[str, tuple] = {}

    # -- synchronisation and time ------------------------------------------------
    @property
    def torch_device(self):
        import torch

        return torch.device("cpu")

    def synchronize(self) -> None:
        """Wait until all queued work on the device has finished."""

    @property
    def has_energy(self) -> bool:
        """Whether `end_window` returns an energy value."""
        return False

    # -- energy windows --------------------------------------------------------
    def begin_window(self, name: str) -> None:
        """Start a named measurement window (call after synchronising)."""
        self.synchronize()
        self._windows[name] = (time.perf_counter(), self._begin_energy())

    def end_window(self, name: str) -> EnergyWindow:
        """Close the window started by `begin_window(name)` and return its energy."""
        self.synchronize()
        t1 = time.perf_counter()
        if name not in self._windows:
            raise KeyError(f"no open measurement window named {name!r}")
        t0, token = self._windows.pop(name)
        return self._end_energy(name, t1 - t0, token)

    def abort_window(self, name: str) -> None:
        """Close a window whose work failed, without measuring (stops any sampler)."""
        entry = self._windows.pop(name, None)
        if entry is not None:
            self._abort_energy(entry[1])

    def _begin_energy(self):
        return None

    def _abort_energy(self, token) -> None:
        """Release what `_begin_energy` started."""

    def _end_energy(self, name: str, duration: float, token) -> EnergyWindow:
        return EnergyWindow(name, duration, None, "", state=self.state())

    # -- state, memory, description ------------------------------------------
    def state(self) -> DeviceState:
        """Current clocks, temperature and throttle reasons (unknown fields NaN)."""
        return DeviceState()

    def idle_power_w(self, seconds: float = 2.0) -> float | None:
        """Average power over an idle window (None without an energy source)."""
        if not self.has_energy:
            return None
        self.begin_window("idle")
        time.sleep(seconds)
        return self.end_window("idle").power_w

    def reset_peak_memory(self) -> None:
        """Start a new peak-memory measurement."""

    def peak_memory_bytes(self) -> int | None:
        """Peak bytes allocated since `reset_peak_memory` (None where not measurable)."""
        return None

    def empty_cache(self) -> None:
        """Return cached memory to the system (after an OOM)."""

    def l2_bytes(self) -> int:
        return 0

    def supports(self, dtype: str) -> tuple[bool, str]:
        """Whether this device runs `dtype` math; else (False, reason)."""
        return True, ""

    def metadata(self) -> dict:
        """Device description for metadata.json (no hostnames or serial numbers)."""
        return {"notes": list(self.notes)}

    def close(self) -> None:
        """Release vendor library handles."""
