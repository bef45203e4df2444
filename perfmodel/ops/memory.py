"""Data-movement ops: copies, fills and embedding lookups (no arithmetic to speak of)."""
from __future__ import annotations

from perfmodel.dtypes import dtype_bytes
from perfmodel.ops.cost import OpCost
from perfmodel.ops.registry import dims, register

_INDEX_BYTES = 8  # int64 indices


@register("copy", "cat", "contiguous")
def copy(numel, *, dtype, phase) -> OpCost:
    """Read and write `numel` elements (a copy, concatenation or layout change)."""
    (n,) = dims("copy", numel=numel)
    s = dtype_bytes(dtype)
    return OpCost(0.0, n * s, n * s)


@register("fill", "zeros", "ones")
def fill(numel, *, dtype, phase) -> OpCost:
    """Write `numel` elements of a constant; backward of a constant is nothing."""
    (n,) = dims("fill", numel=numel)
    if phase == "bwd":
        return OpCost()
    return OpCost(0.0, 0.0, n * dtype_bytes(dtype))


@register("embedding")
def embedding(tokens, features, vocab, *, dtype, phase) -> OpCost:
    """Gather `tokens` rows of a [vocab, features] table.

    Backward (dense) zeroes the [vocab, features] gradient and scatter-adds the
    `tokens` rows of dy into it: one add per gathered element.
    """
    tokens, features, vocab = dims("embedding", tokens=tokens, features=features, vocab=vocab)
    s = dtype_bytes(dtype)
    rows = tokens * features
    if phase == "fwd":
        return OpCost(0.0, rows * s + tokens * _INDEX_BYTES, rows * s)
    return OpCost(float(rows), 2 * rows * s + tokens * _INDEX_BYTES, (vocab * features + rows) * s)


@register("memory")
def memory(read_numel, write_numel, *, dtype, phase) -> OpCost:
    """Any other data-movement op (gather, scatter, index, pad, ...): bytes only."""
    s = dtype_bytes(dtype)
    return OpCost(0.0, int(read_numel) * s, int(write_numel) * s)
