"""The local CPU as a `DeviceSpec`, from what the machine reports.

Read from `/proc/cpuinfo` (model, vendor, ISA flags, MHz), `/sys/devices/system/cpu`
(topology, max frequency, cache sizes), `/proc/meminfo` (memory) and the process's CPU
affinity (cores this process may use). Peak FLOP/s = physical cores x frequency x
FLOPs/cycle/core of the widest vector ISA (table `_FLOPS_PER_CYCLE`, two FMA pipes):

| ISA                          | fp32 FLOPs/cycle/core | fp64 |
|------------------------------|-----------------------|------|
| AVX-512 (Intel, 2x512-bit FMA)| 64                   | 32   |
| AVX-512 on AMD Zen 4 (2x256-bit datapaths) | 32      | 16   |
| AVX2 + FMA                   | 32                    | 16   |
| AVX (no FMA)                 | 16                    | 8    |
| SSE2                         | 8                     | 4    |
| NEON / ASIMD (2x128-bit FMA) | 16                    | 8    |

bfloat16 is listed where the ISA has bf16 dot products (AVX512_BF16: 2x the fp32 rate;
AMX-BF16: 1024 FLOPs/cycle/core), int8 with AVX512_VNNI (4x fp32) or AMX-INT8 (2048
OPs/cycle/core). These are upper bounds; real GEMMs reach a fraction of them.
Memory bandwidth is not reported by the OS: `memory_bandwidth` is a documented estimate
(`_BW_PER_CORE` bytes/s per core, a typical sustained STREAM share per core on current
servers and desktops) unless `local_cpu(measure_bandwidth=True)` measures a NumPy copy.
The TDP is not reported either and is NaN.
"""
from __future__ import annotations

import os
import platform
import re
import time
from functools import lru_cache
from pathlib import Path

from perfmodel.hardware.spec import DeviceSpec

_SYS_CPU = Path("/sys/devices/system/cpu")
_BW_PER_CORE = 10e9  # bytes/s per core: documented estimate, see module docstring


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _cpuinfo() -> list[dict[str, str]]:
    """Blocks of /proc/cpuinfo as dicts (empty list where it does not exist)."""
    text = _read(Path("/proc/cpuinfo")) or ""
    blocks = []
    for block in text.split("\n\n"):
        d = {}
        for line in block.splitlines():
            if ":" in line:
                k, v = line.split(":", 1)
                d[k.strip()] = v.strip()
        if d:
            blocks.append(d)
    return blocks


def _size_bytes(text: str | None) -> int:
    """Parse '32K', '1024K', '32768K', '2M' as bytes."""
    if not text:
        return 0
    m = re.fullmatch(r"(\d+)\s*([KMG]?)B?", text.strip(), re.I)
    if not m:
        return 0
    return int(m.group(1)) * {"": 1, "K": 2**10, "M": 2**20, "G": 2**30}[m.group(2).upper()]


def _allowed_cpus() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return list(range(os.cpu_count() or 1))


def _physical_cores(cpus: list[int]) -> int:
    """Distinct (package, core) pairs among the allowed logical CPUs."""
    cores = set()
    for c in cpus:
        topo = _SYS_CPU / f"cpu{c}" / "topology"
        pkg, core = _read(topo / "physical_package_id"), _read(topo / "core_id")
        if pkg is None or core is None:
            return len(cpus)
        cores.add((pkg, core))
    return len(cores) or len(cpus)


def _caches(cpus: list[int]) -> dict[int, int]:
    """Total bytes per cache level (data/unified) over the allowed CPUs, shared caches once."""
    seen: set[tuple[int, str]] = set()
    totals: dict[int, int] = {}
    for c in cpus:
        for idx in sorted((_SYS_CPU / f"cpu{c}" / "cache").glob("index*")):
            if _read(idx / "type") == "Instruction":
                continue
            level = int(_read(idx / "level") or 0)
            shared = _read(idx / "shared_cpu_list") or str(c)
            if (level, shared) in seen:
                continue
            seen.add((level, shared))
            totals[level] = totals.get(level, 0) + _size_bytes(_read(idx / "size"))
    return totals


def _frequency_hz(info: dict[str, str]) -> tuple[float, str]:
    """Max frequency and where it came from (sysfs max, model-name nominal, cpuinfo MHz)."""
    khz = _read(_SYS_CPU / "cpu0" / "cpufreq" / "cpuinfo_max_freq")
    if khz and khz.isdigit():
        return int(khz) * 1e3, "cpufreq max"
    m = re.search(r"@\s*([\d.]+)\s*GHz", info.get("model name", ""))
    if m:
        return float(m.group(1)) * 1e9, "model name"
    mhz = info.get("cpu MHz")
    if mhz:
        return float(mhz) * 1e6, "/proc/cpuinfo cpu MHz"
    return float("nan"), "unknown"


def _isa(flags: set[str], vendor: str, family: int) -> tuple[str, int]:
    """Widest vector ISA and its fp32 FLOPs/cycle/core."""
    if "avx512f" in flags:
        if vendor == "AuthenticAMD" and family == 25:  # Zen 4: AVX-512 on 256-bit pipes
            return "avx512 (zen4, 256-bit datapaths)", 32
        return "avx512", 64
    if "avx2" in flags and "fma" in flags:
        return "avx2+fma", 32
    if "avx" in flags:
        return "avx", 16
    if "asimd" in flags or "neon" in flags or platform.machine() in ("aarch64", "arm64"):
        return "neon", 16
    if "sse2" in flags:
        return "sse2", 8
    return "scalar", 2


@lru_cache(maxsize=2)
def local_cpu(measure_bandwidth: bool = False) -> DeviceSpec:
    """The CPU this process runs on, with estimated peaks (see module docstring)."""
    blocks = _cpuinfo()
    info = blocks[0] if blocks else {}
    flags = set((info.get("flags") or info.get("Features") or "").split())
    vendor = info.get("vendor_id", platform.machine())
    family = int(info.get("cpu family", "0") or 0) if info.get("cpu family", "").isdigit() else 0
    model = info.get("model name") or platform.processor() or platform.machine() or "CPU"
    cpus = _allowed_cpus()
    cores = _physical_cores(cpus)
    freq, freq_src = _frequency_hz(info)
    isa, fp32_cycle = _isa(flags, vendor, family)
    per_core_hz = cores * freq
    peaks = {"float64": per_core_hz * fp32_cycle / 2, "float32": per_core_hz * fp32_cycle}
    if "amx_bf16" in flags:
        peaks["bfloat16"] = per_core_hz * 1024
    elif "avx512_bf16" in flags:
        peaks["bfloat16"] = per_core_hz * fp32_cycle * 2
    if "amx_int8" in flags:
        peaks["int8"] = per_core_hz * 2048
    elif "avx512_vnni" in flags or "avx_vnni" in flags:
        peaks["int8"] = per_core_hz * fp32_cycle * 4
    caches = _caches(cpus)
    mem_kb = re.search(r"MemTotal:\s+(\d+)\s+kB", _read(Path("/proc/meminfo")) or "")
    memory = int(mem_kb.group(1)) * 1024 if mem_kb else 0
    bw_src = f"estimate {_BW_PER_CORE / 1e9:.0f} GB/s per core"
    bandwidth = cores * _BW_PER_CORE
    if measure_bandwidth:
        bandwidth, bw_src = measure_memory_bandwidth(), "measured NumPy copy"
    return DeviceSpec(
        key="cpu", name=model, kind="cpu", sm_count=cores, boost_clock_hz=freq,
        peak_flops=peaks, memory_bytes=memory, memory_bandwidth=bandwidth,
        l2_bytes=caches.get(2, 0), tdp_w=float("nan"), aliases=("local-cpu", "host"),
        source=f"local machine: /proc/cpuinfo, /sys; frequency from {freq_src}; "
               f"bandwidth {bw_src}",
        architecture=isa,
        notes=f"{len(cpus)} logical CPUs allowed, {cores} physical cores; "
              f"L3 {caches.get(3, 0) // 2**20} MiB",
        extra={"logical_cpus": len(cpus), "vendor": vendor, "isa": isa,
               "flags": sorted(flags & _ISA_FLAGS), "l3_bytes": caches.get(3, 0),
               "frequency_source": freq_src},
    )


_ISA_FLAGS = {"sse2", "avx", "avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni",
              "avx512_fp16", "avx_vnni", "amx_bf16", "amx_int8", "amx_tile", "asimd",
              "neon", "sve", "sve2"}


def measure_memory_bandwidth(nbytes: int = 64 * 2**20, repeats: int = 3) -> float:
    """Best-of-`repeats` NumPy copy bandwidth in bytes/s (read + write counted); the
    default 2 x 64 MiB working set exceeds the last-level cache of current CPUs."""
    import numpy as np

    src = np.ones(nbytes // 8)
    dst = np.empty_like(src)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - t0)
    return 2 * src.nbytes / best
