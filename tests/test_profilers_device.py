"""The device layer without a GPU: RAPL parsing and wraparound, NVML absent or refusing,
sampled-power integration. GPU paths are marked `gpu` (skipped without one)."""
from __future__ import annotations

import sys
import types

import pytest

from profilers.device import open_device
from profilers.device.base import DeviceState
from profilers.device.cpu import CpuDevice
from profilers.device.nvml import Nvml, is_throttled, throttle_names
from profilers.device.rapl import Rapl
from profilers.device.sampler import Trace
from perfmodel.errors import PerfmodelError


def _zone(root, name, label, energy, wrap=None):
    z = root / name
    z.mkdir(parents=True)
    (z / "name").write_text(label + "\n")
    if energy is not None:
        (z / "energy_uj").write_text(f"{energy}\n")
    if wrap is not None:
        (z / "max_energy_range_uj").write_text(f"{wrap}\n")
    return z


def test_rapl_reads_packages_and_unwraps(tmp_path):
    z0 = _zone(tmp_path, "intel-rapl:0", "package-0", 1_000_000, wrap=2_000_000)
    _zone(tmp_path, "intel-rapl:1", "package-1", 500_000, wrap=10_000_000)
    _zone(tmp_path, "intel-rapl:0:0", "core", 7)  # sub-zone: part of package-0
    _zone(tmp_path, "intel-rapl:2", "psys", 9)  # platform: would double count
    rapl = Rapl(tmp_path)
    assert rapl.available and [z[0] for z in rapl.zones] == ["package-0", "package-1"]
    before = rapl.read()
    (z0 / "energy_uj").write_text("300000\n")  # wrapped: 1.0 J -> 2.0 J wrap -> 0.3 J
    (tmp_path / "intel-rapl:1" / "energy_uj").write_text("2500000\n")
    after = rapl.read()
    assert rapl.energy_j(before, after) == pytest.approx(1.3 + 2.0)


def test_rapl_absent_or_unreadable_gives_a_note(tmp_path):
    assert not Rapl(tmp_path / "missing").available
    assert "no RAPL zones" in Rapl(tmp_path / "missing").note
    _zone(tmp_path, "intel-rapl:0", "package-0", None)  # energy_uj unreadable/missing
    rapl = Rapl(tmp_path)
    assert not rapl.available and "not readable" in rapl.note


def test_cpu_device_energy_window_with_fake_rapl(tmp_path):
    z = _zone(tmp_path, "intel-rapl:0", "package-0", 0, wrap=2**32)
    dev = CpuDevice(tmp_path)
    assert dev.has_energy
    dev.begin_window("w")
    (z / "energy_uj").write_text("2500000\n")
    win = dev.end_window("w")
    assert win.source == "rapl" and win.energy_j == pytest.approx(2.5)
    assert win.power_w == pytest.approx(2.5 / win.duration_s)
    dev.close()


def test_cpu_device_without_rapl_has_empty_energy(tmp_path):
    dev = CpuDevice(tmp_path / "none")
    assert not dev.has_energy and dev.notes
    dev.begin_window("w")
    win = dev.end_window("w")
    assert win.energy_j is None and win.power_w is None and win.source == ""
    assert dev.idle_power_w() is None
    assert dev.metadata()["notes"] == dev.notes
    dev.close()


def test_open_device_errors():
    with pytest.raises(PerfmodelError):
        open_device("tpu")
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(PerfmodelError, match="no CUDA GPU"):
            open_device("cuda:0")


def test_nvml_missing_module_is_a_note(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml -> ImportError
    notes = []
    assert Nvml.open(0, notes) is None
    assert "not installed" in notes[0]


def test_nvml_init_failure_is_a_note(monkeypatch):
    fake = types.ModuleType("pynvml")

    def fail():
        raise RuntimeError("Insufficient Permissions")

    fake.nvmlInit = fail
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    notes = []
    assert Nvml.open(0, notes) is None
    assert "could not start" in notes[0] and "Insufficient Permissions" in notes[0]


class _FakeNvml(types.SimpleNamespace):
    """Just enough of pynvml for Nvml: no energy counter (pre-Volta), power via usage."""

    NVML_FI_DEV_POWER_INSTANT = 186
    NVML_CLOCK_SM, NVML_CLOCK_MEM, NVML_TEMPERATURE_GPU = 1, 2, 0

    def nvmlDeviceGetTotalEnergyConsumption(self, h):
        raise RuntimeError("Not Supported")

    def nvmlDeviceGetFieldValues(self, h, ids):
        raise RuntimeError("Function Not Found")

    def nvmlDeviceGetPowerUsage(self, h):
        return 250_000  # mW

    def nvmlDeviceGetClockInfo(self, h, kind):
        return 1980 if kind == 1 else 2619  # MHz

    def nvmlDeviceGetTemperature(self, h, sensor):
        return 61

    def nvmlDeviceGetCurrentClocksEventReasons(self, h):
        return 0x4 | 0x1

    def nvmlSystemGetDriverVersion(self):
        return "580.1"

    def nvmlDeviceGetEnforcedPowerLimit(self, h):
        return 700_000


def test_nvml_quirks_without_energy_counter():
    notes = []
    nv = Nvml(_FakeNvml(), handle=object(), notes=notes)
    assert not nv.has_counter and nv.has_power
    assert nv.energy_j() is None and nv.power_w() == 250.0
    assert any("counter unavailable" in n for n in notes)
    assert any("1 s average" in n for n in notes)
    st = nv.state()
    assert st.sm_clock_hz == 1980e6 and st.mem_clock_hz == 2619e6 and st.temp_c == 61
    assert st.throttled and throttle_names(st.throttle_reasons) == ["sw_power_cap"]
    meta = nv.metadata()
    assert meta["driver"] == "580.1" and meta["power_limit_w"] == 700.0
    assert meta["energy_counter"] is False


def test_throttle_bits():
    assert not is_throttled(0) and not is_throttled(0x1)  # idle is not throttling
    assert is_throttled(0x40) and is_throttled(0x8)


def test_trace_integrates_sampled_power():
    tr = Trace(times=[0.0, 1.0, 2.0, 3.0], watts=[100.0, 100.0, 300.0, 300.0])
    assert tr.energy_j(0.0, 3.0) == pytest.approx(100 + 200 + 300)
    # window edges between samples hold the nearest outside value flat
    assert tr.energy_j(0.5, 1.0) == pytest.approx(50.0)
    assert Trace().energy_j(0, 1) is None
    tr.states = [DeviceState(1e9, 2e9, 50, 0), DeviceState(2e9, 2e9, 70, 0x20)]
    s = tr.summary_state()
    assert s.sm_clock_hz == 1.5e9 and s.temp_c == 70 and s.throttled


@pytest.mark.gpu
def test_gpu_energy_counter_agrees_with_sampled_power():
    """On a sustained GEMM, the NVML energy counter and integrated power agree within 5%."""
    import time

    import torch

    dev = open_device("cuda:0")
    if not (dev.nvml and dev.nvml.has_counter and dev.nvml.has_power):
        pytest.skip("needs both the NVML energy counter and power readings")
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    end = time.perf_counter() + 2.0  # reach steady power before the window
    while time.perf_counter() < end:
        for _ in range(20):
            a @ b
        dev.synchronize()
    dev.begin_window("gemm")
    end = time.perf_counter() + 5.0
    while time.perf_counter() < end:
        for _ in range(20):
            a @ b
        dev.synchronize()
    win = dev.end_window("gemm")
    assert win.energy_counter_j and win.energy_sampled_j
    assert win.energy_sampled_j == pytest.approx(win.energy_counter_j, rel=0.05)
    assert win.power_w > 100  # an H100/H200 under a bf16 GEMM draws hundreds of watts


@pytest.mark.gpu
def test_gpu_metadata_and_idle_power():
    dev = open_device("cuda:0")
    meta = dev.metadata()
    assert meta["device_kind"] == "gpu" and meta["sm_count"] > 0
    if dev.has_energy:
        assert dev.idle_power_w(0.5) > 0


def test_cpu_device_flushes_denormals_while_open(tmp_path):
    """A fresh model's first training steps make denormals that some CPUs run several times
    slower; the CPU device flushes them while open and records it, and restores on close."""
    import torch

    tiny = torch.tensor([1e-30], dtype=torch.float32)
    assert float(tiny * 1e-10) > 0  # denormal result kept
    dev = CpuDevice(tmp_path / "none")
    try:
        assert dev.flush_denormal and dev.metadata()["flush_denormal"] is True
        assert float(tiny * 1e-10) == 0.0
    finally:
        dev.close()
    assert float(tiny * 1e-10) > 0
