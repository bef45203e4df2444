"""Scaled-dot-product attention: out = softmax(Q K^T * scale [+ mask]) V, as one fused kernel.

FLOPs count the two matmuls only (Q K^T and P V), like torch.utils.flop_counter; the
softmax (about 5 FLOPs per score) is not counted. Causal attention has three counts,
chosen by `causal_flops`:

- `"full"` (default): every one of the seq_q x seq_k scores, as if nothing were masked.
  This is what torch.utils.flop_counter counts (it ignores `is_causal`) and what MFU
  conventions such as 6N + 12 L d s count, so counts agree across tools.
- `"unmasked"`: only the scores the mask keeps. PyTorch's `is_causal` mask is aligned
  top-left (query i sees keys j <= i), so the kept pairs number
  sum_{i < seq_q} min(i + 1, seq_k) = s (s + 1) / 2 for seq_q = seq_k = s, i.e. just
  over half. This is the work a kernel that skips masked tiles must do.
- `"half"`: exactly seq_q * seq_k / 2, the convention of FlashAttention's benchmarks.

The count applies to forward and backward alike; without `causal` all three are "full".
Bytes are those of a fused (flash-style) kernel: Q, K, V read once, the output and the
float32 row log-sum-exp written; the seq_q x seq_k score matrix never reaches memory.
"""
from __future__ import annotations

from perfmodel.dtypes import dtype_bytes
from perfmodel.errors import PerfmodelError
from perfmodel.ops.cost import OpCost
from perfmodel.ops.registry import dims, register

CAUSAL_FLOPS = ("full", "unmasked", "half")


def causal_pairs(seq_q: int, seq_k: int) -> int:
    """Query-key pairs kept by a top-left-aligned causal mask (query i sees keys j <= i)."""
    full = min(seq_q, seq_k)  # rows i < seq_k keep i + 1 keys, later rows keep all seq_k
    return full * (full + 1) // 2 + max(seq_q - seq_k, 0) * seq_k


def score_count(seq_q: int, seq_k: int, causal: bool, causal_flops: str = "full") -> float:
    """Number of attention scores counted for FLOPs under the `causal_flops` convention."""
    if causal_flops not in CAUSAL_FLOPS:
        raise PerfmodelError(f"attention: causal_flops must be one of {', '.join(CAUSAL_FLOPS)}, "
                             f"got {causal_flops!r}")
    if not causal or causal_flops == "full":
        return float(seq_q * seq_k)
    if causal_flops == "half":
        return seq_q * seq_k / 2
    return float(causal_pairs(seq_q, seq_k))


@register("attention", "sdpa", tensor=True)
def attention(batch, heads, seq_q, seq_k, head_dim, causal=False, kv_heads=None,
              head_dim_v=None, causal_flops="full", *, dtype, phase) -> OpCost:
    """Fused attention of q[batch, heads, seq_q, head_dim] over k/v[batch, kv_heads, seq_k, .].

    Forward: 2 matmuls, 2*batch*heads*scores*(head_dim + head_dim_v) FLOPs. Backward: 5
    matmuls (Q K^T recomputed, dV = P^T dO, dP = dO V^T, dQ = dS K, dK = dS^T Q), i.e.
    2.5x forward, as torch.utils.flop_counter counts the fused backward kernels.
    `kv_heads` < `heads` is grouped-query attention (only K/V bytes shrink).
    """
    batch, heads, seq_q, seq_k, d = dims("attention", batch=batch, heads=heads, seq_q=seq_q,
                                         seq_k=seq_k, head_dim=head_dim)
    kv_heads = heads if kv_heads is None else dims("attention", kv_heads=kv_heads)[0]
    dv = d if head_dim_v is None else dims("attention", head_dim_v=head_dim_v)[0]
    if heads % kv_heads:
        raise PerfmodelError(f"attention: kv_heads={kv_heads} must divide heads={heads}")
    scores = score_count(seq_q, seq_k, causal, causal_flops)
    s = dtype_bytes(dtype)
    q = batch * heads * seq_q * d
    k = batch * kv_heads * seq_k * d
    v = batch * kv_heads * seq_k * dv
    o = batch * heads * seq_q * dv
    lse_bytes = batch * heads * seq_q * 4.0
    if phase == "fwd":
        macs = batch * heads * scores * (d + dv)
        return OpCost(2.0 * macs, (q + k + v) * s, o * s + lse_bytes, acts=o, macs=macs)
    macs = batch * heads * scores * (3 * d + 2 * dv)  # QK^T, dQ, dK: d; dV, dP: dv
    read = (q + k + v + 2 * o) * s + lse_bytes  # q, k, v, out, dout, lse
    return OpCost(2.0 * macs, read, (q + k + v) * s, acts=0, macs=macs)
