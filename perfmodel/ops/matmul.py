"""GEMM / batched GEMM / linear: C[b, m, n] = A[b, m, k] @ B[b, k, n] (+ bias[n])."""
from __future__ import annotations

from perfmodel.dtypes import dtype_bytes
from perfmodel.ops.cost import OpCost
from perfmodel.ops.registry import dims, op_cost, register


@register("gemm", "bmm", "linear", "mm", "matmul", tensor=True)
def gemm(m, n, k, b=1, bias=False, grad_a=True, grad_b=True, *, dtype, phase) -> OpCost:
    """`b` independent [m,k]@[k,n] products; for `linear`, A is the input, B the weight.

    Forward: 2*b*m*n*k FLOPs (the count of torch.utils.flop_counter), plus one MAC per
    output element for the bias (pycls's convention). Backward: the data gradient
    dA = dC @ B^T and the weight gradient dB = A^T @ dC, each a GEMM of the same
    2*b*m*n*k FLOPs (so backward = 2x forward); `grad_a` / `grad_b` switch them off
    (e.g. the first layer needs no dA), and the bias gradient (a sum of dC over m)
    counts one MAC per element of dC.
    """
    m, n, k, b = dims("gemm", m=m, n=n, k=k, b=b)
    s = dtype_bytes(dtype)
    if phase == "fwd":
        macs = b * m * n * k + (b * m * n if bias else 0)
        read = b * (m * k + k * n) + (n if bias else 0)
        return OpCost(2.0 * macs, read * s, b * m * n * s, acts=b * m * n, macs=macs)
    macs, read, written = 0, 0, 0
    if grad_a:  # dA[m,k] = dC[m,n] @ B^T[n,k]
        macs += b * m * n * k
        read += b * (m * n + k * n)
        written += b * m * k
    if grad_b:  # dB[k,n] = A^T[k,m] @ dC[m,n]
        macs += b * m * n * k
        read += b * (m * k + m * n)
        written += b * k * n
    if bias:  # db[n] = sum_m dC[m,n] (fused with a dC read above)
        macs += b * m * n
        written += n
    return OpCost(2.0 * macs, read * s, written * s, acts=0, macs=macs)


def gemm_cost(m, n, k, b=1, dtype="float16", *, phase="fwd", bias=False) -> OpCost:
    """Cost of C[b,m,n] = A[b,m,k] @ B[b,k,n] (shortcut for `op_cost("gemm", ...)`)."""
    return op_cost("gemm", m=m, n=n, k=k, b=b, bias=bias, dtype=dtype, phase=phase)
