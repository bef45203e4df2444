"""Op cost formulas: hand-computed costs and agreement with torch.utils.flop_counter."""
from __future__ import annotations

import pytest
from torch.utils import flop_counter as fc

from perfmodel.errors import PerfmodelError
from perfmodel.ops import OpCost, gemm_cost, get_formula, list_op_kinds, op_cost
from perfmodel.ops.attention import causal_pairs
from perfmodel.ops.conv import conv_output_size
from perfmodel.ops.pool import pool_output_size


def test_gemm_forward_by_hand():
    c = gemm_cost(m=4, n=5, k=6, b=3, dtype="bfloat16")
    assert c.flops == 2 * 3 * 4 * 5 * 6 == 720
    assert c.macs == 360
    assert c.bytes_read == 2 * 3 * (4 * 6 + 6 * 5)
    assert c.bytes_written == 2 * 3 * 4 * 5
    assert c.acts == 60
    assert c.bytes == c.bytes_read + c.bytes_written
    assert c.intensity == pytest.approx(720 / c.bytes)


def test_gemm_bias_counts_one_mac_per_output_like_pycls():
    c = op_cost("linear", m=1, n=1000, k=2048, bias=True, dtype="float32")
    assert c.macs == 2048 * 1000 + 1000
    assert c.flops == 2 * c.macs
    assert c.bytes_read == 4 * (2048 + 2048 * 1000 + 1000)


def test_gemm_backward_is_dgrad_plus_wgrad():
    fwd = gemm_cost(64, 32, 16, dtype="float16")
    bwd = op_cost("gemm", m=64, n=32, k=16, dtype="float16", phase="bwd")
    assert bwd.flops == 2 * fwd.flops
    # dA = dC @ B^T reads dC[64,32] + B[16,32], writes dA[64,16]; dB = A^T @ dC reads A + dC
    assert bwd.bytes_read == 2 * ((64 * 32 + 16 * 32) + (64 * 16 + 64 * 32))
    assert bwd.bytes_written == 2 * (64 * 16 + 16 * 32)
    assert bwd.acts == 0
    only_w = op_cost("gemm", m=64, n=32, k=16, grad_a=False, phase="bwd")
    assert only_w.flops == fwd.flops
    both = op_cost("gemm", m=64, n=32, k=16, phase="fwd_bwd")
    assert both == fwd + bwd


def test_gemm_agrees_with_flop_counter():
    assert gemm_cost(7, 9, 11).flops == fc.mm_flop((7, 11), (11, 9))
    assert gemm_cost(7, 9, 11, b=5).flops == fc.bmm_flop((5, 7, 11), (5, 11, 9))


def test_conv2d_by_hand_resnet_stem():
    c = op_cost("conv2d", batch=2, c_in=3, h=224, w=224, c_out=64, kernel_h=7, kernel_w=7,
                stride=2, padding=3, dtype="float32")
    assert conv_output_size(224, 7, 2, 3) == 112
    assert c.macs == 2 * 64 * 112 * 112 * 3 * 49
    assert c.acts == 2 * 64 * 112 * 112
    assert c.bytes_read == 4 * (2 * 3 * 224 * 224 + 64 * 3 * 49)
    assert c.bytes_written == 4 * 2 * 64 * 112 * 112


@pytest.mark.parametrize("groups,c_in,c_out", [(1, 16, 32), (4, 16, 32), (16, 16, 16)])
@pytest.mark.parametrize("stride,padding,dilation", [(1, 1, 1), (2, 0, 1), (1, 2, 2)])
def test_conv2d_grouped_strided_dilated_agrees_with_flop_counter(groups, c_in, c_out, stride,
                                                                padding, dilation):
    p = dict(batch=3, c_in=c_in, h=13, w=11, c_out=c_out, kernel_h=3, kernel_w=3,
             stride=stride, padding=padding, dilation=dilation, groups=groups)
    ho = conv_output_size(13, 3, stride, padding, dilation)
    wo = conv_output_size(11, 3, stride, padding, dilation)
    ref = fc.conv_flop_count([3, c_in, 13, 11], [c_out, c_in // groups, 3, 3], [3, c_out, ho, wo])
    fwd = op_cost("conv2d", **p)
    assert fwd.flops == ref
    assert fwd.macs == 3 * c_out * ho * wo * (c_in // groups) * 9  # by hand
    assert fwd.acts == 3 * c_out * ho * wo
    assert op_cost("conv2d", phase="bwd", **p).flops == 2 * ref


def test_depthwise_conv_is_c_out_times_cheaper():
    dense = op_cost("conv2d", batch=1, c_in=96, h=56, w=56, c_out=96, kernel_h=3, kernel_w=3, padding=1)
    dw = op_cost("conv2d", batch=1, c_in=96, h=56, w=56, c_out=96, kernel_h=3, kernel_w=3, padding=1,
                 groups=96)
    assert dense.flops == 96 * dw.flops
    assert dw.macs == 96 * 56 * 56 * 9


def test_transposed_conv_matches_flop_counter():
    # ConvTranspose2d(8 -> 4, k=4, stride 2, padding 1): 16x16 -> 32x32
    c = op_cost("conv2d", batch=2, c_in=8, h=16, w=16, c_out=4, kernel_h=4, kernel_w=4,
                stride=2, padding=1, transposed=True)
    assert c.acts == 2 * 4 * 32 * 32
    assert c.flops == fc.conv_flop_count([2, 8, 16, 16], [8, 4, 4, 4], [2, 4, 32, 32], transposed=True)


def test_conv_bad_groups_is_a_clear_error():
    with pytest.raises(PerfmodelError, match="groups"):
        op_cost("conv2d", batch=1, c_in=6, h=8, w=8, c_out=8, kernel_h=3, kernel_w=3, groups=4)


def test_attention_forward_backward_agree_with_flop_counter():
    p = dict(batch=2, heads=8, seq_q=128, seq_k=96, head_dim=64)
    q, k = (2, 8, 128, 64), (2, 8, 96, 64)
    fwd = op_cost("attention", **p)
    assert fwd.flops == fc.sdpa_flop_count(q, k, k) == 4 * 2 * 8 * 128 * 96 * 64
    bwd = op_cost("attention", phase="bwd", **p)
    assert bwd.flops == fc.sdpa_backward_flop_count(q, q, k, k) == 2.5 * fwd.flops
    assert fwd.acts == 2 * 8 * 128 * 64


def test_attention_gqa_agrees_with_flop_counter_and_reads_fewer_kv_bytes():
    mha = op_cost("attention", batch=1, heads=32, seq_q=64, seq_k=64, head_dim=128, dtype="float16")
    gqa = op_cost("attention", batch=1, heads=32, kv_heads=8, seq_q=64, seq_k=64, head_dim=128,
                  dtype="float16")
    # each of the 8 KV heads serves 4 query heads: the FLOPs of 32 heads (torch 2.11
    # counts only equal head counts, so K and V are given broadcast to 32 heads)
    assert gqa.flops == mha.flops == fc.sdpa_flop_count((1, 32, 64, 128), (1, 32, 64, 128),
                                                        (1, 32, 64, 128))
    assert mha.bytes_read - gqa.bytes_read == 2 * 2 * (32 - 8) * 64 * 128


def test_causal_attention_counts():
    p = dict(batch=1, heads=4, seq_q=1000, seq_k=1000, head_dim=64, causal=True)
    full = op_cost("attention", **p)  # default: like flop_counter, mask ignored
    assert full.flops == op_cost("attention", **{**p, "causal": False}).flops
    unmasked = op_cost("attention", causal_flops="unmasked", **p)
    half = op_cost("attention", causal_flops="half", **p)
    assert unmasked.flops == 4 * 4 * 64 * (1000 * 1001 // 2)
    assert half.flops == full.flops / 2
    assert op_cost("attention", causal_flops="unmasked", phase="bwd", **p).flops == 2.5 * unmasked.flops
    # top-left aligned mask, as torch's is_causal: 3 queries x 5 keys keep 1 + 2 + 3 pairs
    assert causal_pairs(3, 5) == 6
    assert causal_pairs(5, 3) == 1 + 2 + 3 + 3 + 3
    with pytest.raises(PerfmodelError, match="causal_flops"):
        op_cost("attention", causal_flops="quarter", **p)


def test_norms_by_hand():
    ln = op_cost("layer_norm", numel=6 * 10, features=10, dtype="float32")
    assert ln.flops == 8 * 60 and ln.acts == 0
    assert ln.bytes_read == 4 * (60 + 20)
    assert ln.bytes_written == 4 * 60 + 4 * 2 * 6  # y + float32 mean, rstd per row
    assert op_cost("layer_norm", numel=60, features=10, phase="bwd").flops == 13 * 60
    assert op_cost("rms_norm", numel=60, features=10, affine=False).flops == 3 * 60
    bn = op_cost("batch_norm", numel=2 * 12 * 8 * 8, channels=12, dtype="float16")
    assert bn.flops == 8 * 1536
    assert op_cost("batch_norm", numel=1536, channels=12, training=False).flops == 2 * 1536
    gn = op_cost("group_norm", numel=2 * 12 * 16, channels=12, groups=3, batch=2, dtype="float32")
    assert gn.bytes_written == 4 * 384 + 4 * 2 * 2 * 3
    with pytest.raises(PerfmodelError, match="multiple"):
        op_cost("layer_norm", numel=61, features=10)


def test_softmax_activation_elementwise_by_hand():
    assert op_cost("softmax", numel=100).flops == 500
    assert op_cost("softmax", numel=100, phase="bwd").flops == 400
    g = op_cost("gelu", numel=100, dtype="bfloat16")
    assert (g.flops, g.bytes_read, g.bytes_written, g.acts) == (500, 200, 200, 0)
    r = op_cost("relu", numel=100, dtype="float32", phase="bwd")
    assert (r.flops, r.bytes_read, r.bytes_written) == (100, 800, 400)
    add = op_cost("add", numel=100, inputs=2, dtype="float32")
    assert (add.flops, add.bytes_read, add.bytes_written) == (100, 800, 400)
    bias_add = op_cost("add", numel=100, inputs=2, read_numel=110, dtype="float32")
    assert bias_add.bytes_read == 440


def test_pooling_by_hand():
    assert pool_output_size(112, 3, 2, 1) == 56
    mp = op_cost("max_pool2d", batch=1, channels=64, h=112, w=112, kernel_h=3, kernel_w=3,
                 stride=2, padding=1, dtype="float32")
    assert mp.acts == 64 * 56 * 56
    assert mp.flops == 64 * 56 * 56 * 9
    assert mp.bytes_written == 64 * 56 * 56 * (4 + 8)  # values + int64 indices
    assert pool_output_size(5, 2, 2, ceil_mode=True) == 3
    ap = op_cost("avg_pool2d", batch=1, channels=2, h=5, w=5, kernel_h=2, kernel_w=2, ceil_mode=True)
    assert ap.acts == 2 * 3 * 3
    gap = op_cost("adaptive_avg_pool2d", batch=2, channels=8, h=7, w=7, dtype="float32")
    assert (gap.flops, gap.acts, gap.bytes_written) == (2 * 8 * 49, 0, 4 * 16)


def test_memory_ops_and_embedding():
    gather = op_cost("memory", read_numel=10, write_numel=4, dtype="float32")
    assert (gather.flops, gather.bytes_read, gather.bytes_written) == (0, 40, 16)
    e = op_cost("embedding", tokens=10, features=4, vocab=100, dtype="float32")
    assert (e.flops, e.bytes_read, e.bytes_written) == (0, 160 + 80, 160)
    eb = op_cost("embedding", tokens=10, features=4, vocab=100, dtype="float32", phase="bwd")
    assert eb.bytes_written == 4 * (400 + 40)
    assert op_cost("copy", numel=5, dtype="float16").bytes == 20
    assert op_cost("fill", numel=5, dtype="float16", phase="bwd") == OpCost()


def test_registry_rejects_bad_input_with_one_line_errors():
    with pytest.raises(PerfmodelError, match="did you mean gemm"):
        op_cost("gemn", m=1, n=1, k=1)
    with pytest.raises(PerfmodelError, match="unexpected parameter 'q'"):
        op_cost("gemm", m=1, n=1, k=1, q=2)
    with pytest.raises(PerfmodelError, match="missing parameter 'k'"):
        op_cost("gemm", m=1, n=1)
    with pytest.raises(PerfmodelError, match="positive integer"):
        op_cost("gemm", m=0, n=1, k=1)
    with pytest.raises(PerfmodelError, match="phase"):
        op_cost("gemm", m=1, n=1, k=1, phase="backward")
    with pytest.raises(PerfmodelError, match="dtype"):
        op_cost("gemm", m=1, n=1, k=1, dtype="float13")


def test_every_kind_has_forward_and_backward():
    minimal = {
        "gemm": dict(m=2, n=3, k=4),
        "conv2d": dict(batch=1, c_in=2, h=4, w=4, c_out=2, kernel_h=3, kernel_w=3),
        "conv3d": dict(batch=1, c_in=2, d=4, h=4, w=4, c_out=2, kernel_d=3, kernel_h=3, kernel_w=3),
        "attention": dict(batch=1, heads=2, seq_q=4, seq_k=4, head_dim=8),
        "layer_norm": dict(numel=8, features=4), "rms_norm": dict(numel=8, features=4),
        "batch_norm": dict(numel=8, channels=2), "group_norm": dict(numel=8, channels=2, groups=1, batch=1),
        "max_pool2d": dict(batch=1, channels=1, h=4, w=4, kernel_h=2, kernel_w=2),
        "avg_pool2d": dict(batch=1, channels=1, h=4, w=4, kernel_h=2, kernel_w=2),
        "adaptive_avg_pool2d": dict(batch=1, channels=1, h=4, w=4),
        "embedding": dict(tokens=3, features=2, vocab=5), "reduction": dict(numel=8),
        "memory": dict(read_numel=8, write_numel=4),
    }
    for kind in list_op_kinds():
        f = get_formula(kind)
        params = minimal.get(f.kind, {"numel": 8})
        fwd, bwd = op_cost(kind, phase="fwd", **params), op_cost(kind, phase="bwd", **params)
        assert op_cost(kind, phase="fwd_bwd", **params) == fwd + bwd
        assert fwd.bytes > 0, kind
