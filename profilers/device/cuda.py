"""An NVIDIA GPU: CUDA for timing and memory, NVML for energy, power, clocks and heat."""
from __future__ import annotations

import ctypes
import time

from profilers.device.base import Device, DeviceState, EnergyWindow
from profilers.device.nvml import Nvml
from profilers.device.sampler import PowerSampler
from profilers.device.ticks import wait_for_ticks, work_energy_j


class CudaDevice(Device):
    """`cuda:index` as torch numbers it."""

    kind = "cuda"

    def __init__(self, index: int = 0):
        super().__init__()
        import torch

        self.index = index
        self.props = torch.cuda.get_device_properties(index)
        torch.cuda.set_device(index)
        self.nvml = Nvml.open(index, self.notes)
        # Energy windows start and end on the counter's ticks (`ticks.py`), so they need not
        # span many of them: 5 steps, at least 0.5 s (power settles), at most 1 s.
        self.counter_period_s = self.nvml.counter_period_s(1.2) if self.nvml is not None else None
        self.min_window_s = min(1.0, max(0.5, 5 * (self.counter_period_s or 0.0)))
        self.idle_w: float | None = None  # set by `idle_power_w`: the aligned windows' tail

    @property
    def torch_device(self):
        import torch

        return torch.device("cuda", self.index)

    @property
    def capability(self) -> tuple[int, int]:
        return (self.props.major, self.props.minor)

    def synchronize(self) -> None:
        import torch

        torch.cuda.synchronize(self.index)

    @property
    def has_energy(self) -> bool:
        return self.nvml is not None and (self.nvml.has_counter or self.nvml.has_power)

    # -- energy windows ----------------------------------------------------------
    def _begin_energy(self):
        if self.nvml is None:
            return None
        sampler = None
        if self.nvml.has_power:
            sampler = PowerSampler(self.nvml.power_w, self.nvml.state).start()
        if self.nvml.has_counter and self.counter_period_s:  # start on a tick of the counter
            t0, e0, ok = wait_for_ticks(self.nvml.energy_j, self.counter_period_s, 1)
            return (t0, e0 if ok else None, sampler, True)
        # no measured step: the counter read at the edges, as it comes
        return (time.perf_counter(), self.nvml.energy_j() if self.nvml.has_counter else None,
                sampler, False)

    def _abort_energy(self, token) -> None:
        if token is not None and token[2] is not None:
            token[2].stop()

    def _end_energy(self, name: str, duration: float, token) -> EnergyWindow:
        if token is None:
            return EnergyWindow(name, duration, None, "", state=self.state())
        t0, e0, sampler, aligned = token
        t1 = time.perf_counter()  # the work has ended (`end_window` synchronised)
        t2, e2 = t1, None
        if e0 is not None and aligned:
            # the second tick after the work; the tail [t1, t2] comes off below
            t2, e2, ok = wait_for_ticks(self.nvml.energy_j, self.counter_period_s, 2)
            e2 = e2 if ok else None  # a counter that stopped: the sampled power instead
        elif e0 is not None:
            e2 = self.nvml.energy_j()
        trace = sampler.stop() if sampler is not None else None
        counter, tail_s, tail_j = None, None, None
        if e0 is not None and e2 is not None:
            if not aligned or t2 <= t1:
                counter = e2 - e0
            else:
                # the tail's power: sampled where NVML reads instant power (the device
                # cools down from the work), else the idle power measured at the start (a
                # 1 s average lags the work by far too much). Both parts are kept in the
                # row: the tail can be priced again the other way
                sampled_tail = (trace.energy_j(t1, t2) if trace is not None and trace.watts
                                and self.nvml.instant_power else None)
                if sampled_tail is None and self.idle_w is None:
                    counter, t1 = e2 - e0, t2  # nothing to price the tail with: it counts
                else:
                    tail_s = t2 - t1
                    tail_w = sampled_tail / tail_s if sampled_tail is not None else self.idle_w
                    counter = work_energy_j(e0, e2, t1, t2, tail_w)
                    tail_j = (e2 - e0) - counter
            if counter is not None and counter <= 0:  # nothing left: not a measurement
                counter = tail_s = tail_j = None
        duration = t1 - t0
        sampled, n, state = None, 0, self.state()
        if trace is not None:
            sampled = trace.energy_j(t0, t1)
            n = len(trace.watts)
            state = trace.summary_state() if trace.states else state
        if counter is not None and (aligned or sampled is None):
            best, source = counter, "nvml_counter"
        elif sampled is not None:  # an unaligned counter is off by up to a step an edge
            best, source = sampled, "nvml_sampled"
        else:
            best, source = None, ""
        return EnergyWindow(name, duration, best, source, counter, sampled, n, state,
                            tail_s, tail_j)

    def idle_power_w(self, seconds: float = 2.0) -> float | None:
        """Idle power, kept for the tails of later windows without sampled power."""
        self.idle_w = None
        watts = super().idle_power_w(seconds)
        self.idle_w = watts if watts is not None and watts > 0 else None
        return watts

    def state(self) -> DeviceState:
        return self.nvml.state() if self.nvml is not None else DeviceState()

    # -- memory and capabilities ----------------------------------------------------
    def reset_peak_memory(self) -> None:
        import torch

        torch.cuda.reset_peak_memory_stats(self.index)

    def peak_memory_bytes(self) -> int | None:
        import torch

        return int(torch.cuda.max_memory_allocated(self.index))

    def alive(self) -> bool:
        """Whether the device still runs a trivial kernel (after a failed point)."""
        import torch

        try:
            (torch.ones(1, device=self.torch_device) + 1).item()
            torch.cuda.synchronize(self.index)
            return True
        except torch.cuda.OutOfMemoryError:  # full, not broken
            return True
        except Exception:
            return False

    def empty_cache(self) -> None:
        import gc

        import torch

        gc.collect()
        torch.cuda.empty_cache()

    def l2_bytes(self) -> int:
        return int(getattr(self.props, "L2_cache_size", 0) or 0)

    def supports(self, dtype: str) -> tuple[bool, str]:
        import torch

        cc = self.capability
        if dtype in ("tf32", "bfloat16") and cc < (8, 0):
            return False, f"{dtype} tensor cores need sm_80+, this GPU is sm_{cc[0]}{cc[1]}"
        if dtype == "float8_e4m3fn":
            if cc < (8, 9):
                return False, f"float8 matmul needs sm_89+, this GPU is sm_{cc[0]}{cc[1]}"
            if not hasattr(torch, "_scaled_mm") or not hasattr(torch, "float8_e4m3fn"):
                return False, "this torch has no torch._scaled_mm"
        return True, ""

    def metadata(self) -> dict:
        import torch

        meta = {
            "device_kind": "gpu",
            "device_name": self.props.name,
            "compute_capability": f"{self.capability[0]}.{self.capability[1]}",
            "sm_count": self.props.multi_processor_count,
            "memory_bytes": int(self.props.total_memory),
            "l2_bytes": self.l2_bytes(),
            "cuda_runtime": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
            "cublas": cublas_version(),
            "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
        }
        if self.nvml is not None:
            meta.update(self.nvml.metadata())
            meta["energy_counter_period_s"] = self.counter_period_s
        meta["notes"] = list(self.notes)
        return meta

    def close(self) -> None:
        if self.nvml is not None:
            self.nvml.close()


def cublas_version() -> str | None:
    """Version of the cuBLAS library torch loaded (via cublasGetProperty), or None."""
    try:
        import torch

        torch.ones(2, 2, device="cuda") @ torch.ones(2, 2, device="cuda")  # loads cuBLAS
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "libcublas.so" in line}
        for path in sorted(paths):
            lib = ctypes.CDLL(path)
            parts = []
            for prop in (0, 1, 2):  # MAJOR_VERSION, MINOR_VERSION, PATCH_LEVEL
                value = ctypes.c_int()
                if lib.cublasGetProperty(prop, ctypes.byref(value)) != 0:
                    break
                parts.append(str(value.value))
            if len(parts) == 3:
                return ".".join(parts)
    except Exception:
        pass
    try:
        from importlib.metadata import version

        for dist in ("nvidia-cublas", "nvidia-cublas-cu12", "nvidia-cublas-cu13"):
            try:
                return version(dist)
            except Exception:
                continue
    except Exception:
        pass
    return None
