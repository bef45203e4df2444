"""Counting multi-billion-parameter models on the meta device: exact, and allocation-free."""
from __future__ import annotations

import resource

import pytest

from perfmodel.counting import count_model
from perfmodel.models.registry import build_model


@pytest.fixture(scope="module")
def llama7b():
    return build_model("Llama-2-7B", device="meta")


def _rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def test_llama2_7b_forward_by_hand(llama7b):
    c = count_model(llama7b)  # one sequence of 4096 tokens
    L, d, f, V, s = 32, 4096, 11008, 32000, 4096
    assert c.params == 6_738_415_616
    linear = s * (4 * d * d + 3 * d * f)  # q, k, v, o; gate, up, down (no biases)
    attention = 2 * s * s * d  # Q K^T and P V over all heads, mask not discounted
    assert c.macs == L * (linear + attention) + s * d * V
    # outputs of q, k, v, o (4d), gate, up (2f), down (d), attention (d); the LM head (V)
    assert c.acts == L * s * (4 * d + 2 * f + d + d) + s * V
    kinds = c.by_kind().set_index("op")["count"]
    assert kinds["attention"] == L and kinds["gemm"] == 7 * L + 1


def test_llama2_7b_backward_allocates_nothing(llama7b):
    before = _rss_bytes()
    c = count_model(llama7b, backward=True, dtype="bfloat16")
    grown = _rss_bytes() - before
    assert grown < 1 << 29  # real bf16 weights alone would be 13.5 GB
    fwd, bwd = c.ops.filter(phase="fwd"), c.ops.filter(phase="bwd")
    gemm = lambda ops: ops.filter(kind="gemm").total().flops  # noqa: E731
    assert gemm(bwd) == 2 * gemm(fwd)  # dgrad + wgrad for every linear
    att = lambda ops: ops.filter(kind="attention").total().flops  # noqa: E731
    assert att(bwd) == 2.5 * att(fwd)
    assert all(r.dtype in ("bfloat16", "int64", "float32", "bool") for r in c.ops)
    assert next(p.device.type for p in llama7b.parameters()) == "meta"


def test_unmasked_causal_convention_on_7b(llama7b):
    full = count_model(llama7b).ops.filter(kind="attention").total().flops
    unmasked = count_model(llama7b, causal_flops="unmasked").ops.filter(kind="attention").total().flops
    s = 4096
    assert unmasked / full == pytest.approx((s + 1) / (2 * s))
