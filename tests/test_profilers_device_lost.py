"""A CUDA error that loses the device context stops the run (its row kept as failed, never
retried); an out-of-memory error does not. No GPU needed: the device is a stand-in."""
from __future__ import annotations

import types

import pytest

from perfmodel.errors import PerfmodelError
from profilers.measure import DeviceLost, is_sticky, measure_point
from profilers.points import Point
from profilers.repeat import measure_repeat


class _Suite:
    name = "gemm"

    def __init__(self, exc):
        self.exc = exc

    def build(self, point, device):
        raise self.exc


def _device(kind="cuda", empty_cache=lambda: None, alive=lambda: True):
    return types.SimpleNamespace(kind=kind, empty_cache=empty_cache, alive=alive)


POINT = Point.make("gemm", "matmul", "fwd", "bfloat16", m=64, n=64, k=64, b=1)
ILLEGAL = RuntimeError("CUDA error: an illegal memory access was encountered\nCUDA kernel "
                       "errors might be asynchronously reported")


def test_sticky_errors_are_told_from_recoverable_ones():
    assert is_sticky(ILLEGAL)
    assert is_sticky(RuntimeError("CUDA error: device-side assert triggered"))
    assert is_sticky(RuntimeError("cuDNN error: CUDNN_STATUS_EXECUTION_FAILED"))
    assert not is_sticky(RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert not is_sticky(ValueError("bad shape"))
    # torch raises AcceleratorError for a bad launch too: recoverable, the run goes on
    AcceleratorError = type("AcceleratorError", (RuntimeError,), {})
    launch = AcceleratorError("CUDA error: invalid configuration argument")
    assert not is_sticky(launch)
    assert measure_point(_Suite(launch), POINT, 0, _device())["status"] == "failed"


def test_a_lost_device_stops_the_run_with_its_row():
    with pytest.raises(DeviceLost) as info:
        measure_point(_Suite(ILLEGAL), POINT, 0, _device())
    row = info.value.row
    assert row["status"] == "failed" and "illegal memory access" in row["error"]
    assert row["point_id"] == POINT.id and row["wall_s"] >= 0
    assert isinstance(info.value, PerfmodelError)  # one line from both CLIs, no traceback
    assert "cannot go on" in str(info.value) and "rerun" in str(info.value)
    with pytest.raises(DeviceLost) as info:
        measure_repeat(_Suite(ILLEGAL), POINT, _device())
    assert info.value.row["kind"] == "repeat" and info.value.row["time_s"] is None


def test_recoverable_errors_and_a_cpu_go_on():
    oom = RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
    assert measure_point(_Suite(oom), POINT, 0, _device())["status"] == "failed"
    # an unknown error after which the device runs no kernel: lost all the same
    with pytest.raises(DeviceLost):
        measure_point(_Suite(oom), POINT, 0, _device(alive=lambda: False))
    assert measure_point(_Suite(ILLEGAL), POINT, 0, _device("cpu"))["status"] == "failed"


def test_a_context_that_fails_to_free_its_cache_is_lost():
    def broken():
        raise RuntimeError("CUDA error: unspecified launch failure")

    with pytest.raises(DeviceLost) as info:
        measure_point(_Suite(ValueError("bad shape")), POINT, 0, _device(empty_cache=broken))
    assert "bad shape" in info.value.row["error"] and "launch failure" in info.value.row["error"]


def test_nvidia_smi_output_loses_its_serial_numbers():
    from profilers.session import without_serials

    text = ("    Serial Number                         : 1654123456789\n"
            "    GPU UUID                              : GPU-5f3c2a1b-0000-1111-2222-333344445555\n"
            "    Board Part Number                     : 692-2G520-0200-000\n"
            "    Product Name                          : NVIDIA H200\n"
            "    Driver Version                        : 570.124.06\n"
            "GPU 0: NVIDIA H200 (UUID: GPU-5f3c2a1b-0000-1111-2222-333344445555)\n")
    out = without_serials(text)
    assert "1654123456789" not in out and "GPU-5f3c" not in out and "692-2G520" not in out
    assert "NVIDIA H200" in out and "570.124.06" in out and out.count("\n") == 6
