"""Roofline estimates on catalogue devices."""
from __future__ import annotations

import pytest

from perfmodel.errors import PerfmodelError
from perfmodel.hardware.catalogue import get_device
from perfmodel.ops import LAUNCH_OVERHEAD_S, OpCost, gemm_cost, op_roofline, roofline


def test_big_gemm_is_compute_bound_at_the_tensor_core_peak():
    h100 = get_device("h100-sxm")
    cost = gemm_cost(8192, 8192, 8192, dtype="bfloat16")
    est = roofline(cost, h100, "bfloat16")
    assert est.bound == "compute"
    assert est.compute_s == pytest.approx(2 * 8192**3 / h100.peak("bfloat16"))
    assert est.time_s == pytest.approx(est.compute_s + LAUNCH_OVERHEAD_S["gpu"])
    assert est.intensity > est.ridge


def test_elementwise_is_memory_bound_on_vector_math():
    a100 = get_device("a100")
    est = op_roofline("relu", a100, dtype="float16", numel=1 << 24)
    assert est.bound == "memory"
    assert est.memory_s == pytest.approx(2 * 2 * (1 << 24) / a100.memory_bandwidth)
    assert est.peak_flops == a100.peak("float32")  # vector ops never use tensor cores
    assert est.time_s == pytest.approx(est.memory_s + 5e-6)


def test_overhead_override_and_tiny_op_dominated_by_launch():
    h100 = get_device("h100")
    tiny = roofline(gemm_cost(8, 8, 8), h100, "float16")
    assert tiny.time_s == pytest.approx(LAUNCH_OVERHEAD_S["gpu"], rel=1e-3)
    assert roofline(gemm_cost(8, 8, 8), h100, "float16", overhead_s=0).time_s < 1e-8


def test_unsupported_math_mode_is_an_error():
    with pytest.raises(PerfmodelError):
        roofline(OpCost(flops=1e9, bytes_read=1e6), get_device("v100"), "bfloat16")


def test_cpu_roofline_uses_cpu_overhead():
    cpu = get_device("cpu")
    est = roofline(gemm_cost(256, 256, 256, dtype="float32"), cpu, "float32")
    assert est.overhead_s == LAUNCH_OVERHEAD_S["cpu"]
    assert est.time_s > est.overhead_s
