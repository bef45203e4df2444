"""torch.compile predictions: the pointwise ops between matrix ops fused (`fusion.py`)."""
from __future__ import annotations

import pandas as pd
import pytest
import torch
from torch import nn

from perfmodel.counting import count_model
from perfmodel.predict.fusion import fuse_pointwise
from perfmodel.predict.optimes import is_tensor


class Mlp(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.norm = nn.Linear(64, 256), nn.Linear(256, 64), nn.LayerNorm(64)

    def forward(self, x):
        h = self.fc1(self.norm(x + 1.0))
        return self.fc2(torch.tanh(h) * h + h)


def _ops(backward: bool) -> pd.DataFrame:
    x = torch.empty(32, 64, requires_grad=backward)
    return count_model(Mlp(), inputs=(x,), backward=backward).to_frame()


def test_each_run_between_matmuls_becomes_one_kernel():
    ops = _ops(False)
    fused = fuse_pointwise(ops)
    assert list(fused["op"]) == ["elementwise", "gemm", "elementwise", "gemm"]
    # the runs: add + layer_norm before fc1; tanh, mul, add after it
    first = ops.iloc[:list(ops["op"]).index("gemm")]
    assert fused["bytes_read"].iloc[0] == first["bytes_read"].max()
    assert fused["bytes_written"].iloc[0] == first["bytes_written"].max()
    assert fused["flops"].sum() == pytest.approx(ops["flops"].sum())
    assert fused["bytes"].sum() < ops["bytes"].sum()
    gemms = ops[is_tensor(ops["op"])].reset_index(drop=True)
    pd.testing.assert_frame_equal(fused[is_tensor(fused["op"])].reset_index(drop=True), gemms,
                                  check_dtype=False)


def test_runs_do_not_cross_the_forward_backward_boundary():
    ops = _ops(True)
    fused = fuse_pointwise(ops)
    for phase in ("fwd", "bwd"):
        assert (fused["phase"] == phase).sum() < (ops["phase"] == phase).sum()
    assert fused["flops"].sum() == pytest.approx(ops["flops"].sum())
    # a phase's ops stay in order: all forward rows come before the backward ones
    ph = list(fused["phase"])
    assert ph == sorted(ph, key=lambda p: p != "fwd")


def test_a_fused_kernel_has_the_dtype_of_its_largest_output():
    """A CNN's batch-norm run opens with the int64 `num_batches_tracked += 1`: the fused
    kernel is still float32."""
    from perfmodel.predict.model import prepare

    p = prepare("RegNetX-400MF", 2, train=True, overrides={"resolution": 64}, compiled=True)
    ops = pd.concat([c.ops for c in p.counts])
    assert set(ops.loc[ops["op"] == "elementwise", "dtype"]) == {"float32"}


def test_a_fused_kernel_is_not_in_place():
    """That run's first op (`add_`) runs in place; the fused kernel writes a fresh buffer,
    and a batch norm's `training` flag is not the kernel's either."""
    from perfmodel.predict.model import prepare

    p = prepare("RegNetY-400MF", 2, train=True, overrides={"resolution": 64}, compiled=True)
    ops = pd.concat([c.ops for c in p.counts])
    fused = ops[ops["aten"].astype(str).str.startswith("fused(")]
    assert len(fused) and fused["aten"].str.contains("add_").any()
    assert not fused["inplace"].fillna(False).astype(bool).any()
    assert fused["training"].isna().all()


def test_compiled_prediction_is_faster_and_ignores_measured_eager_blocks():
    from perfmodel.predict import predict_model

    eager = predict_model("gpt2", 4, train=True, device="h100", overrides={"seq_len": 256})
    compiled = predict_model("gpt2", 4, train=True, device="h100", compiled=True,
                             overrides={"seq_len": 256})
    assert compiled.compiled and not eager.compiled
    assert compiled.time.value < eager.time.value
    assert compiled.params == eager.params and compiled.flops == eager.flops
    # a CPU profile's measured blocks are eager times: a compiled prediction does not use them
    cpu = predict_model("RegNetX-400MF", 8, train=True, device="cpu", factor=2, strategy="w",
                        overrides={"resolution": 64})
    cpu_c = predict_model("RegNetX-400MF", 8, train=True, device="cpu", factor=2,
                          strategy="w", overrides={"resolution": 64}, compiled=True)
    assert cpu.measured_parts > 0 and cpu_c.measured_parts == 0
