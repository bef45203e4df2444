"""The optimizer step: per-tensor kernels on a CPU, multi-tensor (foreach) launches on a GPU."""
from __future__ import annotations

import pytest

from perfmodel.hardware.catalogue import get_device
from perfmodel.ops.roofline import LAUNCH_OVERHEAD_S
from perfmodel.predict.optimizer import (BLOCKS_PER_LAUNCH, CHUNK, KERNELS, TENSORS_PER_LAUNCH,
                                         foreach_launches, optimizer_ops, uses_foreach)

pytestmark = pytest.mark.usefixtures("no_shipped_profiles")


def test_foreach_launches_respect_the_multi_tensor_apply_limits():
    sizes = [100] * 250 + [30_000_000, 7, 5_000_000]
    for lists in (1, 2, 3, 4):
        launches = foreach_launches(sizes, lists)
        assert sum(launches) == sum(sizes)
        assert max(launches) <= BLOCKS_PER_LAUNCH * CHUNK
    # 250 small tensors: 110 per launch with one list, 48 with three
    assert foreach_launches([100] * 250, 1) == [11000, 11000, 3000]
    assert len(foreach_launches([100] * 250, 3)) == -(-250 // TENSORS_PER_LAUNCH[3])
    assert foreach_launches([30_000_000], 1) == [BLOCKS_PER_LAUNCH * CHUNK,
                                                30_000_000 - BLOCKS_PER_LAUNCH * CHUNK]


def test_each_kernel_launches_with_its_own_tensor_lists():
    """AdamW's addcmul_(exp_avg_sq, grad, grad) takes 3 lists (48 tensors a launch), the
    out-of-place sqrt 2 (64), div_ by a scalar list 96, the in-place mul_ 1 (110)."""
    from perfmodel.predict.optimizer import FOREACH_LISTS

    assert all(len(KERNELS[k]) == len(FOREACH_LISTS[k]) for k in KERNELS)
    ops = optimizer_ops("adamw", [10] * 200, "float32", foreach=True)
    per_kernel = [len(foreach_launches([10] * 200, n, cap)) for n, cap in FOREACH_LISTS["adamw"]]
    assert per_kernel == [2, 4, 2, 5, 4, 3, 2, 5] and len(ops) == sum(per_kernel)


def test_same_bytes_far_fewer_launches():
    sizes = [4096] * 300
    per_tensor = optimizer_ops("adamw", sizes, "float32")
    multi = optimizer_ops("adamw", sizes, "float32", foreach=True)
    assert multi["bytes"].sum() == per_tensor["bytes"].sum()
    assert multi["flops"].sum() == per_tensor["flops"].sum()
    assert len(per_tensor) == 300 * len(KERNELS["adamw"])
    assert len(multi) < len(per_tensor) / 20


def test_gpu_steps_launch_multi_tensor_cpu_steps_per_tensor():
    from perfmodel.predict import predict_model

    assert uses_foreach(get_device("h100")) and not uses_foreach(get_device("cpu"))
    gpu = predict_model("ViT-B/16", 2, device="h100")
    assert gpu.optimizer == "adamw"  # ViTs train with AdamW
    ops = predict_model("ViT-B/16", 2, device="h100", keep_ops=True).ops
    opt = ops[ops["phase"] == "optimizer"]
    h100 = get_device("h100")
    launches = len(opt)
    assert launches < 200  # ~150 tensors x 8 kernels would be ~1,200
    expect = opt["bytes"].sum() / h100.memory_bandwidth + launches * LAUNCH_OVERHEAD_S["gpu"]
    assert gpu.optimizer_time.value == pytest.approx(expect, rel=0.02)
    cpu = predict_model("ViT-B/16", 1, device="cpu", overrides={"resolution": 32},
                        keep_ops=True).ops
    assert (cpu["phase"] == "optimizer").sum() > 8 * 100  # one launch per tensor and kernel
