"""Local CPU description: ISA table, cache parsing, bandwidth measurement."""
from __future__ import annotations

import pytest

from perfmodel.hardware import cpu


@pytest.mark.parametrize("flags,vendor,family,isa,fpc", [
    ({"avx512f", "avx2", "fma"}, "GenuineIntel", 6, "avx512", 64),
    ({"avx512f", "avx2", "fma"}, "AuthenticAMD", 25, "avx512 (zen4, 256-bit datapaths)", 32),
    ({"avx512f", "avx2", "fma"}, "AuthenticAMD", 26, "avx512", 64),  # Zen 5: full 512-bit
    ({"avx2", "fma", "avx"}, "GenuineIntel", 6, "avx2+fma", 32),
    ({"avx", "sse2"}, "GenuineIntel", 6, "avx", 16),
    ({"asimd", "fp"}, "ARM", 0, "neon", 16),
    ({"sse2"}, "GenuineIntel", 6, "sse2", 8),
])
def test_isa_table(flags, vendor, family, isa, fpc):
    assert cpu._isa(flags, vendor, family) == (isa, fpc)


def test_size_parsing():
    assert cpu._size_bytes("32K") == 32 * 1024
    assert cpu._size_bytes("32768K") == 32 * 2**20
    assert cpu._size_bytes("2M") == 2 * 2**20
    assert cpu._size_bytes("") == 0 and cpu._size_bytes("lots") == 0


def test_frequency_sources():
    hz, src = cpu._frequency_hz({"model name": "Intel(R) Xeon(R) CPU @ 2.20GHz"})
    if src == "cpufreq max":  # this machine exposes cpufreq: it wins
        assert hz > 1e8
    else:
        assert (hz, src) == (2.2e9, "model name")
    hz, src = cpu._frequency_hz({"model name": "AMD EPYC", "cpu MHz": "2596.1"})
    assert src in ("cpufreq max", "/proc/cpuinfo cpu MHz") and hz > 1e8


def test_measured_bandwidth_is_plausible():
    bw = cpu.measure_memory_bandwidth(nbytes=16 * 2**20, repeats=3)
    assert 1e8 < bw < 5e12  # between 0.1 GB/s and 5 TB/s
    measured = cpu.local_cpu(measure_bandwidth=True)
    assert "measured" in measured.source and measured.memory_bandwidth > 1e8
