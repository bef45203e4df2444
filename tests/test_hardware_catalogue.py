"""Hardware catalogue: lookup by key/torch/NVML name, datasheet consistency, local CPU."""
from __future__ import annotations

import json
import math

import pytest

from perfmodel.errors import PerfmodelError
from perfmodel.hardware.catalogue import DeviceSpec, get_device, list_devices
from perfmodel.hardware.cpu import local_cpu

NVML_NAMES = {
    "NVIDIA H100 80GB HBM3": "h100-sxm",
    "NVIDIA A100-SXM4-40GB": "a100-sxm-40gb",
    "NVIDIA A100-SXM4-80GB": "a100-sxm-80gb",
    "NVIDIA A100-PCIE-40GB": "a100-pcie-40gb",
    "NVIDIA A100 80GB PCIe": "a100-pcie-80gb",
    "Tesla V100-PCIE-32GB": "v100-pcie-32gb",
    "Tesla V100-SXM2-16GB": "v100-sxm2-16gb",
    "NVIDIA H100 PCIe": "h100-pcie",
    "Tesla T4": "t4",
    "NVIDIA L4": "l4",
    "NVIDIA L40S": "l40s",
    "NVIDIA A10G": "a10g",
    "NVIDIA A10": "a10",
    "NVIDIA GeForce RTX 4090": "rtx-4090",
    "NVIDIA GeForce RTX 3090": "rtx-3090",
    "NVIDIA GeForce RTX 4070": "rtx-4070",
    "NVIDIA H200": "h200",
    "NVIDIA B200": "b200",
}


@pytest.mark.parametrize("name,key", sorted(NVML_NAMES.items()))
def test_torch_and_nvml_names(name, key):
    assert get_device(name).key == key
    assert get_device(name.lower()).key == key
    assert get_device(name.upper().replace(" ", "_")).key == key


@pytest.mark.parametrize("short,key", [("h100", "h100-sxm"), ("h100-sxm", "h100-sxm"),
                                       ("H100_SXM5", "h100-sxm"), ("a100", "a100-sxm-80gb"),
                                       ("v100", "v100-sxm2-32gb"), ("4090", "rtx-4090"),
                                       ("tpu-v4", "tpu-v4")])
def test_short_keys(short, key):
    assert get_device(short).key == key


def test_unknown_name_lists_close_matches():
    with pytest.raises(PerfmodelError, match="h100-sxm"):
        get_device("h1000")
    with pytest.raises(PerfmodelError, match="rtx-4090"):
        get_device("rtx 5090")
    with pytest.raises(PerfmodelError, match="empty"):
        get_device("  ")


def test_required_gpus_present_and_keys_unique():
    keys = [d.key for d in list_devices()]
    assert len(keys) == len(set(keys))
    for k in ["v100-sxm2-32gb", "v100-pcie-32gb", "t4", "a10", "a10g", "a100-sxm-40gb",
              "a100-sxm-80gb", "a100-pcie-40gb", "a100-pcie-80gb", "l4", "l40s", "rtx-3090",
              "rtx-4070", "rtx-4090", "h100-sxm", "h100-pcie", "h200", "b200"]:
        assert k in keys
    for d in list_devices():
        assert d.source and d.memory_bytes > 0 and d.memory_bandwidth > 0 and d.l2_bytes > 0


# SIMT FP32 FLOPs per SM per clock (2 x FP32 lanes) by architecture.
_FP32_PER_SM_CLOCK = {"volta": 128, "turing": 128, "hopper": 256, "ada": 256}


@pytest.mark.parametrize("dev", [d for d in list_devices() if d.kind == "gpu"],
                         ids=lambda d: d.key)
def test_fp32_peak_matches_sms_times_clock(dev):
    """The datasheet FP32 peak equals SMs x boost clock x lanes (1.5% rounding)."""
    lanes = _FP32_PER_SM_CLOCK.get(dev.architecture)
    if dev.architecture == "ampere":
        lanes = 128 if dev.sm_count == 108 else 256  # GA100 vs GA10x
    if dev.architecture == "pascal":
        lanes = 128 if dev.sm_count == 56 else 256  # GP100 (64 cores/SM) vs GP104
    if dev.architecture == "blackwell":
        pytest.skip("B200 datasheet FP32 is quoted at a clock NVIDIA does not publish")
    expected = dev.sm_count * dev.boost_clock_hz * lanes
    assert dev.peak("float32") == pytest.approx(expected, rel=0.015)


@pytest.mark.parametrize("dev", [d for d in list_devices() if d.kind == "gpu"],
                         ids=lambda d: d.key)
def test_dense_tensor_ratios(dev):
    """Dense tensor rates: bf16 == fp16 == 2 x tf32, fp8 == 2 x fp16 where present."""
    p = dev.peak_flops
    if "bfloat16" in p:
        assert p["bfloat16"] == pytest.approx(p["float16"])
    if "tf32" in p:
        assert p["float16"] == pytest.approx(2 * p["tf32"], rel=0.03)
    if "float8_e4m3fn" in p:
        assert p["float8_e4m3fn"] == pytest.approx(2 * p["float16"], rel=0.02)
    if dev.architecture != "pascal":  # Pascal has no tensor cores (the P4 no fast FP16)
        assert p["float16"] > p["float32"]


def test_peak_modes_and_errors():
    h100 = get_device("h100")
    assert h100.peak("bfloat16") == pytest.approx(989.4e12)
    assert h100.peak("fp8") == h100.peak("float8_e5m2") == pytest.approx(1978.9e12)
    assert h100.peak("float32") == pytest.approx(67e12)
    assert h100.peak("tf32") == pytest.approx(494.7e12)
    # GeForce lists FP32-accumulate tensor rate: half of the headline FP16-accumulate figure.
    rtx = get_device("rtx-4090")
    assert rtx.peak("float16") * 2 == pytest.approx(rtx.extra["float16_acc16"], rel=1e-3)
    with pytest.raises(PerfmodelError, match="no dense bfloat16"):
        get_device("v100").peak("bfloat16")
    with pytest.raises(PerfmodelError, match="unknown dtype"):
        h100.peak("float13")


def test_dict_round_trip():
    for dev in list_devices(include_cpu=True):
        back = DeviceSpec.from_dict(json.loads(json.dumps(dev.to_dict())))
        assert back.key == dev.key and back.peak_flops == dev.peak_flops
        assert back.memory_bytes == dev.memory_bytes and hash(back) == hash(dev)
    with pytest.raises(PerfmodelError, match="not a device description"):
        DeviceSpec.from_dict({"key": "x"})


def test_cpu_from_machine():
    cpu = get_device("cpu")
    assert cpu is local_cpu() and cpu.kind == "cpu"
    assert 1 <= cpu.sm_count <= cpu.extra["logical_cpus"]
    assert cpu.memory_bytes > 0 and cpu.peak("float32") > 0
    assert cpu.peak("float64") == pytest.approx(cpu.peak("float32") / 2)
    fpc = cpu.peak("float32") / (cpu.sm_count * cpu.boost_clock_hz)
    assert fpc in (2, 8, 16, 32, 64)
    assert math.isnan(cpu.tdp_w)
    json.dumps(cpu.to_dict())


def test_cli_devices(capsys):
    from perfmodel.cli import main

    assert main(["devices", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {"h100-sxm", "cpu"} <= {r["key"] for r in rows}
    assert main(["devices", "--json", "--measure-cpu-bandwidth"]) == 0
    cpu_row = [r for r in json.loads(capsys.readouterr().out) if r["key"] == "cpu"][0]
    assert "measured" in cpu_row["source"]
    assert main(["devices", "--no-cpu"]) == 0
    out = capsys.readouterr().out
    assert "h100-sxm" in out and "NVIDIA GeForce RTX 4090" in out


def test_agrees_with_neusight_device_configs(shared_data):
    """SM counts, memory size and bandwidth agree with NeuSight's device configs."""
    cfgs = sorted((shared_data / "neusight" / "device_configs").glob("*.json"))
    checked = 0
    for path in cfgs:
        cfg = json.loads(path.read_text())
        try:
            dev = get_device(cfg["Device"])
        except PerfmodelError:
            continue
        checked += 1
        # NeuSight lists 60 SMs for the L4 (it has 58: 7424 CUDA cores) and 40 of 64
        # cores for the P4 (GP104: 20 SMs of 128 cores, 2560 in all)
        if dev.key not in ("l4", "p4"):
            assert dev.sm_count == cfg["Num_Sm"], dev.key
        assert dev.memory_bandwidth / 1e9 == pytest.approx(cfg["Mem_Bw"], rel=0.03), dev.key
        assert dev.memory_bytes / 2**30 == pytest.approx(cfg["Dev_Mem"], rel=0.07), dev.key
    assert checked >= 8


def test_is_known_says_whether_get_device_finds_it():
    from perfmodel.hardware.catalogue import is_known

    assert is_known("NVIDIA H100 80GB HBM3") and is_known("cpu")
    assert not is_known("Tesla Q9000") and not is_known("")
