"""The device layer: one interface over CUDA+NVML and CPU+RAPL (callers never touch NVML).

`open_device("cpu" | "cuda" | "cuda:N")` returns a `Device` with `begin_window(name)` /
`end_window(name) -> EnergyWindow`, `state()`, `idle_power_w()`, peak memory and metadata.
"""
from __future__ import annotations

from perfmodel.errors import PerfmodelError
from profilers.device.base import Device, DeviceState, EnergyWindow

__all__ = ["Device", "DeviceState", "EnergyWindow", "open_device"]


def open_device(spec: str) -> Device:
    """Open `cpu`, `cuda` or `cuda:N`; a missing GPU is a PerfmodelError, not a crash."""
    import torch

    text = str(spec).strip().lower()
    if text == "cpu":
        from profilers.device.cpu import CpuDevice

        return CpuDevice()
    if text == "cuda" or text.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise PerfmodelError(f"device {spec!r}: no CUDA GPU visible to torch; use --device cpu")
        index = 0
        if ":" in text:
            try:
                index = int(text.split(":", 1)[1])
            except ValueError:
                raise PerfmodelError(f"device {spec!r}: expected cuda:N with an integer N") from None
        if not 0 <= index < torch.cuda.device_count():
            raise PerfmodelError(f"device {spec!r}: torch sees {torch.cuda.device_count()} GPU(s)")
        from profilers.device.cuda import CudaDevice

        return CudaDevice(index)
    raise PerfmodelError(f"unknown device {spec!r}; expected cpu, cuda or cuda:N")
