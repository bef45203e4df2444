"""NVML behind one small class: every quirk of `pynvml` (nvidia-ml-py) stays here.

Units as NVML gives them: energy counter in millijoules (Volta and newer), power in
milliwatts, clocks in MHz. Everything returned from this module is SI.
"""
from __future__ import annotations

import os

from profilers.device.base import DeviceState

# Clocks-event (throttle) bits that mean the clocks were held down by power or heat.
# Idle, application clocks, sync boost and display clocks are not throttling.
THROTTLE_BITS = {
    0x4: "sw_power_cap",
    0x8: "hw_slowdown",
    0x20: "sw_thermal_slowdown",
    0x40: "hw_thermal_slowdown",
    0x80: "hw_power_brake_slowdown",
}


def is_throttled(reasons: int) -> bool:
    """Whether an NVML clocks-event bitmask says power or thermal throttling."""
    return bool(int(reasons) & sum(THROTTLE_BITS))


def throttle_names(reasons: int) -> list[str]:
    """Names of the throttling bits set in `reasons`."""
    return [name for bit, name in THROTTLE_BITS.items() if int(reasons) & bit]


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Nvml:
    """One GPU seen through NVML; construct with `Nvml.open(torch_index)`."""

    def __init__(self, pynvml, handle, notes: list[str]):
        self.nv = pynvml
        self.handle = handle
        self.notes = notes
        self.has_counter = self._probe(self._counter_mj) is not None
        self._instant = self._probe(self._instant_mw) is not None
        self.has_power = self._instant or self._probe(self._usage_mw) is not None
        if not self.has_counter:
            notes.append("NVML total-energy counter unavailable (pre-Volta GPU or no "
                         "permission): energy integrated from sampled power")
        if not self.has_power:
            notes.append("NVML power reading unavailable: no sampled-power cross-check")
        elif not self._instant:
            notes.append("NVML instantaneous power field unavailable: sampled power uses "
                         "nvmlDeviceGetPowerUsage (a 1 s average on Ampere and newer)")

    # -- construction --------------------------------------------------------
    @classmethod
    def open(cls, torch_index: int, notes: list[str]) -> "Nvml | None":
        """Bind NVML to the GPU torch calls `cuda:torch_index`; None (with a note) if impossible."""
        try:
            import pynvml
        except ImportError:
            notes.append("pynvml (nvidia-ml-py) not installed: no power, energy, clocks "
                         "or temperature")
            return None
        try:
            pynvml.nvmlInit()
        except Exception as exc:  # NVMLError: driver missing, no permission, ...
            notes.append(f"NVML could not start ({exc}): no power, energy, clocks or "
                         "temperature")
            return None
        handle = cls._find_handle(pynvml, torch_index, notes)
        if handle is None:
            return None
        return cls(pynvml, handle, notes)

    @staticmethod
    def _find_handle(pynvml, torch_index: int, notes: list[str]):
        """Match torch's device to NVML's by UUID, then PCI bus id, then index."""
        import torch

        props = torch.cuda.get_device_properties(torch_index)
        tries = []
        uuid = getattr(props, "uuid", None)
        if uuid is not None:
            text = str(uuid)
            tries.append(lambda: pynvml.nvmlDeviceGetHandleByUUID(
                text if text.startswith(("GPU-", "MIG-")) else "GPU-" + text))
        if hasattr(props, "pci_bus_id"):
            bus = "{:08X}:{:02X}:{:02X}.0".format(
                getattr(props, "pci_domain_id", 0), props.pci_bus_id, props.pci_device_id)
            tries.append(lambda: pynvml.nvmlDeviceGetHandleByPciBusId(bus))
        if not os.environ.get("CUDA_VISIBLE_DEVICES"):
            tries.append(lambda: pynvml.nvmlDeviceGetHandleByIndex(torch_index))
        for attempt in tries:
            try:
                return attempt()
            except Exception:
                continue
        notes.append(f"NVML has no device matching cuda:{torch_index}: no power or energy")
        return None

    def _probe(self, fn):
        try:
            return fn()
        except Exception:
            return None

    # -- raw readings --------------------------------------------------------
    def _counter_mj(self) -> int:
        return int(self.nv.nvmlDeviceGetTotalEnergyConsumption(self.handle))

    def _instant_mw(self) -> float:
        field = self.nv.nvmlDeviceGetFieldValues(self.handle, [self.nv.NVML_FI_DEV_POWER_INSTANT])[0]
        if field.nvmlReturn != 0:
            raise RuntimeError("NVML_FI_DEV_POWER_INSTANT not supported")
        kinds = {0: "dVal", 1: "uiVal", 2: "ulVal", 3: "ullVal", 4: "sllVal", 5: "siVal",
                 6: "usVal"}
        value = float(getattr(field.value, kinds[int(field.valueType)]))
        if value <= 0:
            raise RuntimeError("NVML_FI_DEV_POWER_INSTANT returned no reading")
        return value

    def _usage_mw(self) -> float:
        return float(self.nv.nvmlDeviceGetPowerUsage(self.handle))

    # -- SI readings -----------------------------------------------------------
    def energy_j(self) -> float | None:
        """Total-energy counter in joules since the driver loaded (None if unsupported)."""
        if not self.has_counter:
            return None
        try:
            return self._counter_mj() / 1e3
        except Exception:
            return None

    def counter_period_s(self, seconds: float = 0.5) -> float | None:
        """How often the energy counter changes (median interval), polled for `seconds`."""
        import time

        if not self.has_counter:
            return None
        changes, last = [], self.energy_j()
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            value = self.energy_j()
            if value != last:
                changes.append(time.perf_counter())
                last = value
            time.sleep(0.0005)
        if len(changes) < 3:
            return None
        gaps = sorted(b - a for a, b in zip(changes, changes[1:]))
        return gaps[len(gaps) // 2]

    @property
    def instant_power(self) -> bool:
        """Whether `power_w` reads instant power (else NVML's 1 s average)."""
        return bool(self._instant)

    def power_w(self) -> float | None:
        """Power now in watts (instantaneous field where the driver has it)."""
        try:
            return (self._instant_mw() if self._instant else self._usage_mw()) / 1e3
        except Exception:
            return None

    def reasons(self) -> int:
        """Current clocks-event (throttle) reasons bitmask; 0 when unknown."""
        for name in ("nvmlDeviceGetCurrentClocksEventReasons",
                     "nvmlDeviceGetCurrentClocksThrottleReasons"):
            fn = getattr(self.nv, name, None)
            if fn is None:
                continue
            try:
                return int(fn(self.handle))
            except Exception:
                continue
        return 0

    def state(self) -> DeviceState:
        """Clocks (Hz), temperature (C) and throttle reasons now."""
        nv, h = self.nv, self.handle
        sm = self._probe(lambda: nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_SM) * 1e6)
        mem = self._probe(lambda: nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_MEM) * 1e6)
        temp = self._probe(lambda: float(nv.nvmlDeviceGetTemperature(h, nv.NVML_TEMPERATURE_GPU)))
        nan = float("nan")
        return DeviceState(sm if sm is not None else nan, mem if mem is not None else nan,
                           temp if temp is not None else nan, self.reasons())

    def metadata(self) -> dict:
        """Driver, CUDA driver version, NVML name, power limit, max clocks."""
        nv, h = self.nv, self.handle
        meta: dict = {}
        driver = self._probe(lambda: nv.nvmlSystemGetDriverVersion())
        if driver is not None:
            meta["driver"] = _text(driver)
        cuda = self._probe(lambda: nv.nvmlSystemGetCudaDriverVersion())
        if cuda:
            meta["cuda_driver"] = f"{cuda // 1000}.{cuda % 1000 // 10}"
        name = self._probe(lambda: nv.nvmlDeviceGetName(h))
        if name is not None:
            meta["nvml_name"] = _text(name)
        limit = self._probe(lambda: nv.nvmlDeviceGetEnforcedPowerLimit(h))
        if limit is None:
            limit = self._probe(lambda: nv.nvmlDeviceGetPowerManagementLimit(h))
        if limit is not None:
            meta["power_limit_w"] = limit / 1e3
        for key, clock in (("max_sm_clock_hz", "NVML_CLOCK_SM"), ("max_mem_clock_hz", "NVML_CLOCK_MEM")):
            value = self._probe(lambda: nv.nvmlDeviceGetMaxClockInfo(h, getattr(nv, clock)))
            if value is not None:
                meta[key] = value * 1e6
        meta["energy_counter"] = self.has_counter
        meta["instant_power_field"] = self._instant
        return meta

    def close(self) -> None:
        try:
            self.nv.nvmlShutdown()
        except Exception:
            pass
