"""The op list: records, attribution to modules, frames, conventions and errors."""
from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from torch import nn

from perfmodel.counting import OpList, count_model
from perfmodel.errors import PerfmodelError
from perfmodel.models.registry import build_model
from perfmodel.ops import op_cost


@pytest.fixture(scope="module")
def tiny_llama():
    return build_model("Llama-2-7B", device="meta", n_layers=2, d_model=64, n_heads=4,
                       n_kv_heads=2, d_ff=160, vocab_size=100, seq_len=16)


@pytest.fixture(scope="module")
def tiny_count(tiny_llama):
    return count_model(tiny_llama, batch=2, backward=True)


def test_every_record_is_reproducible_from_its_params(tiny_count):
    assert len(tiny_count.ops) > 50
    for r in tiny_count.ops:
        cost = op_cost(r.kind, phase=r.direction, dtype=r.dtype, **r.params)
        if r.phase == "bwd":
            cost = replace(cost, acts=0)
        assert cost == r.cost, r


def test_ops_are_attributed_to_modules_in_both_passes(tiny_count):
    q = tiny_count.ops.filter(module="blocks.0.attn.q_proj", kind="gemm")
    assert [(r.kind, r.phase) for r in q] == [("gemm", "fwd"), ("gemm", "bwd"), ("gemm", "bwd")]
    fwd = q[0].params
    assert (fwd["m"], fwd["n"], fwd["k"]) == (2 * 16, 64, 64)
    att = tiny_count.ops.filter(module="blocks.1.attn", kind="attention")
    assert [(r.phase, r.direction) for r in att] == [("fwd", "fwd"), ("bwd", "bwd")]
    assert att[0].params["causal"] is True
    assert att[0].params["heads"] == 4 and att[0].params["head_dim"] == 16
    assert att[0].params["kv_heads"] == 2  # grouped-query attention


def test_by_module_is_hierarchical(tiny_count):
    df = tiny_count.by_module().set_index("module")
    assert df.loc["", "flops"] == pytest.approx(tiny_count.all_flops)
    assert df.loc["", "params"] == tiny_count.params
    blocks = df.loc["blocks", "flops"]
    assert blocks == pytest.approx(df.loc["blocks.0", "flops"] + df.loc["blocks.1", "flops"])
    assert df.loc["blocks.0.mlp", "params"] == 3 * 64 * 160
    shallow = tiny_count.by_module(depth=1)
    assert set(shallow["depth"]) == {0, 1}


def test_frame_and_by_kind(tiny_count):
    df = tiny_count.to_frame()
    assert len(df) == len(tiny_count.ops)
    for col in ("op", "phase", "dtype", "m", "n", "k", "b", "flops", "bytes", "module", "aten"):
        assert col in df.columns
    gemms = df[df.op == "gemm"]
    assert (gemms.flops == 2 * gemms.m * gemms.n * gemms.k * gemms.b).all()
    kinds = tiny_count.by_kind()
    assert kinds.flops.sum() == pytest.approx(tiny_count.all_flops)
    assert kinds.iloc[0].flops == kinds.flops.max()
    assert "OpList(" in repr(tiny_count.ops) and isinstance(tiny_count.ops[:3], OpList)


def test_einsum_matmul_and_operator_become_gemms():
    class M(nn.Module):
        def forward(self, a, b):
            return torch.einsum("bij,bjk->bik", a, b) + a @ b + torch.matmul(a, b)

    c = count_model(M(), inputs=(torch.empty(3, 5, 7), torch.empty(3, 7, 2)))
    bmms = [r for r in c.ops if r.kind == "bmm"]
    assert len(bmms) == 3
    assert all((r.params["b"], r.params["m"], r.params["n"], r.params["k"]) == (3, 5, 2, 7) for r in bmms)
    assert c.flops == 3 * 2 * 3 * 5 * 2 * 7


def test_grouped_and_depthwise_conv_records():
    model = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False),
                          nn.Conv2d(8, 16, 3, stride=2, groups=2, bias=False))
    c = count_model(model, (8, 9, 9), batch=2, backward=True)
    convs = [r for r in c.ops if r.kind == "conv2d"]
    dw, grouped = convs[0].params, convs[1].params
    assert (dw["groups"], dw["c_in"], dw["c_out"]) == (8, 8, 8)
    assert convs[0].cost.macs == 2 * 8 * 81 * 9
    assert (grouped["groups"], grouped["stride"]) == (2, 2)
    assert convs[1].cost.acts == 2 * 16 * 4 * 4
    bwd = [r for r in convs if r.phase == "bwd"]
    first = next(r for r in bwd if r.params["groups"] == 8)
    assert first.params["grad_input"] is False  # the input image needs no gradient
    assert first.cost.macs == convs[0].cost.macs  # weight gradient only


def test_dtypes_bytes_and_tf32():
    lin = nn.Linear(64, 32, bias=False)
    f32 = count_model(lin, (64,), batch=8)
    bf16 = count_model(lin, (64,), batch=8, dtype="bf16")
    assert bf16.bytes == f32.bytes / 2 and bf16.flops == f32.flops
    assert bf16.ops[0].dtype == "bfloat16"
    assert count_model(lin, (64,), batch=8, dtype="tf32").ops[0].dtype == "tf32"


def test_real_model_is_left_untouched():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    count_model(model, (4,), batch=3, backward=True)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad is None and p.device.type == "cpu" for p in model.parameters())


def test_keyword_inputs_and_attention_conventions():
    class Att(nn.Module):
        def forward(self, q, k, v):
            return nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)

    shapes = dict(q=torch.empty(1, 2, 8, 4), k=torch.empty(1, 2, 8, 4), v=torch.empty(1, 2, 8, 4))
    full = count_model(Att(), inputs=shapes)
    half = count_model(Att(), inputs=shapes, causal_flops="unmasked")
    assert full.flops == 4 * 2 * 8 * 8 * 4
    assert half.flops == 4 * 2 * 4 * (8 * 9 // 2)


def test_dropout_counted_as_the_target_runs_it():
    """A CPU (and the meta device) runs training dropout as bernoulli_ + div_ + mul; a GPU
    runs one fused native_dropout and its fused backward, with a one-byte mask."""
    m = nn.Sequential(nn.Linear(32, 32), nn.Dropout(0.1))
    x = torch.empty(8, 32, requires_grad=True)
    cpu = count_model(m, inputs=(x,), backward=True).to_frame()
    gpu = count_model(m, inputs=(x,), backward=True, fused_kernels=True).to_frame()
    assert cpu["aten"].astype(str).str.contains("bernoulli_").sum() == 1
    drop = gpu[gpu["op"] == "dropout"]
    assert list(drop["phase"]) == ["fwd", "bwd"]
    n = 8 * 32
    assert list(drop["bytes"]) == [2 * 4 * n + n, 2 * 4 * n + n]
    assert gpu["bytes"].sum() < cpu["bytes"].sum()
    # eval mode and in-place dropout are left alone (CUDA does not fuse in-place dropout)
    ev = count_model(m.eval(), inputs=(x,), fused_kernels=True).to_frame()
    assert not ev["aten"].astype(str).str.contains("dropout|bernoulli").any()
    inplace = nn.Sequential(nn.Linear(32, 32), nn.Dropout(0.1, inplace=True)).train()
    ip = count_model(inplace, inputs=(x,), fused_kernels=True).to_frame()
    assert ip["aten"].astype(str).str.contains("bernoulli_").sum() == 1


def test_rms_norm_counted_as_the_target_runs_it():
    """On a CPU (and the meta device) RMSNorm is ~ten float32 passes; a GPU runs one fused
    kernel forward and one backward (`perfmodel.counting.fused_ops`)."""
    from perfmodel.counting import fused_ops

    if fused_ops.FORWARD is None:
        pytest.skip("torch.library.custom_op is missing")
    m = nn.RMSNorm(64)
    x = torch.empty(8, 64, requires_grad=True)
    cpu = count_model(m, inputs=(x,), backward=True, dtype="bfloat16").to_frame()
    gpu = count_model(m, inputs=(x,), backward=True, dtype="bfloat16",
                      fused_kernels=True).to_frame()
    assert len(cpu) > 15 and (cpu["dtype"] == "float32").any()
    norms = gpu[gpu["op"] == "rms_norm"]
    assert list(norms["phase"]) == ["fwd", "bwd"]
    assert list(gpu["op"]) == ["rms_norm", "rms_norm"]  # nothing else: no zeros for rstd
    assert norms["bytes"].sum() < cpu["bytes"].sum() / 4
    assert gpu["bytes"].sum() < cpu["bytes"].sum() / 3


def test_bad_input_is_one_line_errors():
    with pytest.raises(PerfmodelError, match="input_size"):
        count_model(nn.Linear(2, 2))
    with pytest.raises(PerfmodelError, match="nn.Module"):
        count_model(lambda x: x, (2,))
    with pytest.raises(PerfmodelError, match="meta device"):
        count_model(nn.Linear(2, 2), (3,))
    with pytest.raises(PerfmodelError, match="requires grad"):
        count_model(nn.Linear(2, 2).requires_grad_(False), (2,), backward=True)
    with pytest.raises(PerfmodelError, match="causal_flops"):
        count_model(nn.Linear(2, 2), (2,), causal_flops="most")


def test_rms_norm_without_the_counting_op_warns_once(monkeypatch):
    """Where the fused counting op cannot exist, GPU counting falls back to the composite
    RMSNorm and says so (once), never silently."""
    from perfmodel.counting import fused_ops

    monkeypatch.setattr(fused_ops, "FORWARD", None)
    monkeypatch.setattr(fused_ops, "UNAVAILABLE_WHY", "test")
    monkeypatch.setattr(fused_ops, "_WARNED", [])
    m = nn.RMSNorm(16)
    x = torch.empty(4, 16, requires_grad=True)
    with pytest.warns(UserWarning, match="composite float32 ops"):
        ops = count_model(m, inputs=(x,), backward=True, fused_kernels=True).to_frame()
    assert (ops["op"] != "rms_norm").all() and len(ops) > 10
    assert fused_ops._WARNED == [True]


def test_in_place_forward_ops_are_flagged():
    """relu_ and `x += y` write into their input (no fresh buffer): the counter says so for
    forward ops; out-of-place ops and the backward's kernels carry no flag."""
    import torch

    from perfmodel.counting.counter import count_model

    class M(torch.nn.Module):
        def forward(self, x):
            y = torch.relu_(x * 2)
            z = y * 3
            z += x
            return torch.relu(z)

    x = torch.empty(4, 8, device="meta", requires_grad=True)
    df = count_model(M(), inputs=(x,), backward=True).to_frame()
    flagged = df["inplace"].fillna(False).astype(bool)
    got = list(zip(df["aten"], df["phase"], flagged))
    assert ("aten.relu_.default", "fwd", True) in got
    assert ("aten.add_.Tensor", "fwd", True) in got
    assert ("aten.relu.default", "fwd", False) in got
    assert not flagged[df["phase"] == "bwd"].any()
    assert not flagged[df["aten"].str.contains("mul")].any()
    assert df["bytes"].gt(0).all()  # priced as the op: same bytes
