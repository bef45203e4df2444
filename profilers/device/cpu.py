"""The host CPU: perf_counter timing, RAPL energy where readable."""
from __future__ import annotations

import os
from pathlib import Path

from profilers.device.allocator import pin_allocator
from profilers.device.base import Device, DeviceState, EnergyWindow
from profilers.device.rapl import POWERCAP, Rapl


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo (or the platform's processor string)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine() or "unknown cpu"


class CpuDevice(Device):
    """The CPU torch runs on, with package energy from RAPL when the kernel lets us read it.

    While open, denormal floats are flushed to zero (`torch.set_flush_denormal`): a fresh
    model's first training steps make denormal optimizer state and gradients, which on
    some CPUs (seen on an Intel Xeon with AVX-512: a 16-layer GPT's step 1.4-1.7 s for its
    first ~10 steps, 0.5 s after) run several times slower until the values grow. The
    timer's samples are a fresh workload's steps 3-5, so without flushing they would time
    that start-up transient instead of the steady state a training run spends its hours
    in (the same 0.5 s with or without flushing once past it).

    Opening it fixes glibc malloc's mmap and trim thresholds for the rest of the process
    (`profilers.device.allocator`; glibc cannot go back): freed memory is reused, as in a
    long-running process, instead of page-faulted in again in a regime that depends on
    what ran before.
    """

    kind = "cpu"

    def __init__(self, powercap: Path | str = POWERCAP):
        import torch

        super().__init__()
        self.rapl = Rapl(powercap)
        if self.rapl.note:
            self.notes.append(self.rapl.note)
        self.allocator = pin_allocator()
        if not self.allocator.get("pinned"):
            self.notes.append(f"C allocator not pinned ({self.allocator['allocator']}): "
                              f"{self.allocator['note']}")
        self.flush_denormal = bool(torch.set_flush_denormal(True))
        if not self.flush_denormal:
            self.notes.append("this CPU cannot flush denormals (no SSE3): the first training "
                              "steps of a fresh model may time slower than its steady state")

    def close(self) -> None:
        import torch

        if self.flush_denormal:
            torch.set_flush_denormal(False)
        super().close()

    @property
    def has_energy(self) -> bool:
        return self.rapl.available

    def _begin_energy(self):
        return self.rapl.read() if self.rapl.available else None

    def _end_energy(self, name: str, duration: float, token) -> EnergyWindow:
        state = self.state()
        if token is None:
            return EnergyWindow(name, duration, None, "", state=state)
        energy = self.rapl.energy_j(token, self.rapl.read())
        return EnergyWindow(name, duration, energy, "rapl" if energy is not None else "",
                            energy_counter_j=energy, state=state)

    def state(self) -> DeviceState:
        freqs = []
        for path in Path("/sys/devices/system/cpu").glob("cpu[0-9]*/cpufreq/scaling_cur_freq"):
            try:
                freqs.append(int(path.read_text()) * 1e3)  # kHz -> Hz
            except (OSError, ValueError):
                continue
        return DeviceState(sm_clock_hz=sum(freqs) / len(freqs) if freqs else float("nan"))

    def metadata(self) -> dict:
        import torch

        return {
            "device_kind": "cpu",
            "device_name": cpu_model(),
            "logical_cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "mkldnn": bool(torch.backends.mkldnn.is_available()),
            "flush_denormal": self.flush_denormal,
            "cpu_allocator": self.allocator,
            "rapl_zones": [name for name, _, _ in self.rapl.zones],
            "notes": list(self.notes),
        }


def slug(text: str) -> str:
    """Lower-case words joined by dashes: 'AMD EPYC 7B13' -> 'amd-epyc-7b13'."""
    import re

    words = re.sub(r"\((r|tm)\)|cpu @ [\d.]+ ?ghz|processor|\d+-core", " ", text.lower())
    return "-".join(re.findall(r"[a-z0-9.]+", words)).strip("-.") or "unknown"


def cpu_slug() -> str:
    """Directory name for this CPU's profile under datasets/: `cpu-<model>`."""
    return "cpu-" + slug(cpu_model())
