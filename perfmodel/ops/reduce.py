"""Softmax and reductions (sum, mean, max over one or more dimensions)."""
from __future__ import annotations

from perfmodel.dtypes import dtype_bytes
from perfmodel.ops.cost import OpCost
from perfmodel.ops.registry import dims, register


@register("softmax", "log_softmax")
def softmax(numel, features=None, *, dtype, phase) -> OpCost:
    """Softmax (or log-softmax) over rows of a tensor of `numel` elements (`features`: the
    row length, when known; it does not change the cost, a learned model reads it).

    Forward 5 FLOPs/element (row max, subtract, exp, row sum, divide); backward 4
    (dy * y, row sum, subtract, multiply). Reads x and writes y once; backward reads
    y and dy and writes dx.
    """
    (n,) = dims("softmax", numel=numel)
    s = dtype_bytes(dtype)
    if phase == "fwd":
        return OpCost(5.0 * n, n * s, n * s)
    return OpCost(4.0 * n, 2 * n * s, n * s)


@register("reduction", "sum", "mean")
def reduction(numel, out_numel=1, *, dtype, phase) -> OpCost:
    """Reduce `numel` elements to `out_numel`: one add/compare per input element.

    Backward broadcasts the `out_numel` gradients back to `numel` elements (no FLOPs).
    """
    numel, out_numel = dims("reduction", numel=numel, out_numel=out_numel)
    s = dtype_bytes(dtype)
    if phase == "fwd":
        return OpCost(float(numel), numel * s, out_numel * s)
    return OpCost(0.0, out_numel * s, numel * s)
