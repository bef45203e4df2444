"""Elementwise ops and activation functions.

Activation FLOPs per element count each arithmetic op, compare or transcendental
(exp, erf, tanh) as one FLOP; backward includes the multiply by the incoming gradient:

| kind | forward | backward |
|---|---|---|
| relu | 1 (max) | 1 (select) |
| leaky_relu | 2 (compare, mul) | 2 |
| relu6, hardtanh | 2 (two clamps) | 2 (two compares) |
| sigmoid | 4 (neg, exp, add, div) | 3 (dy * y * (1 - y)) |
| tanh | 1 | 3 (dy * (1 - y^2)) |
| silu | 5 (sigmoid, mul) | 9 (sigmoid 4, s * (1 + x (1 - s)) 4, * dy) |
| gelu | 5 (x / sqrt2, erf, add, mul, mul) | 12 (Phi 4, phi 4, x * phi, add, * dy) |
| elu | 4 (compare, exp, sub, mul) | 3 |
| hardswish | 5 (add, two clamps, mul, div) | 6 |
| hardsigmoid | 4 (add, two clamps, div) | 3 |

Bytes: forward reads x and writes y; backward reads dy and x (or y) and writes dx.
"""
from __future__ import annotations

from perfmodel.dtypes import dtype_bytes
from perfmodel.ops.cost import OpCost
from perfmodel.ops.registry import dims, register

ACTIVATION_FLOPS: dict[str, tuple[int, int]] = {
    "relu": (1, 1),
    "leaky_relu": (2, 2),
    "relu6": (2, 2),
    "hardtanh": (2, 2),
    "sigmoid": (4, 3),
    "tanh": (1, 3),
    "silu": (5, 9),
    "gelu": (5, 12),
    "elu": (4, 3),
    "hardswish": (5, 6),
    "hardsigmoid": (4, 3),
}


@register("elementwise", "add", "mul")
def elementwise(numel, inputs=1, flops_per_element=1, read_numel=None, inplace=False, *, dtype,
                phase) -> OpCost:
    """A pointwise op writing `numel` elements from `inputs` same-shaped inputs.

    `read_numel` overrides the elements read when inputs are broadcast (e.g. a bias).
    `inplace`: the op writes into its first input (`add_`, `x += y`); it moves the same
    bytes (the flag tells the learned models, not the roofline: on a CPU the write into a
    fresh buffer costs more than the bytes).
    Backward reads dy and the inputs and writes one gradient per input, doing the same
    arithmetic as the forward.
    """
    (numel,) = dims("elementwise", numel=numel)
    s = dtype_bytes(dtype)
    read = inputs * numel if read_numel is None else read_numel
    if phase == "fwd":
        return OpCost(flops_per_element * numel, read * s, numel * s)
    return OpCost(flops_per_element * numel, (numel + read) * s, read * s)


@register("dropout")
def dropout(numel, *, dtype, phase) -> OpCost:
    """Fused dropout (`native_dropout`, what CUDA runs): the forward reads x and writes y and a
    one-byte keep-mask, drawing one random number and scaling per element; the backward
    reads dy and the mask and writes dx (one multiply-scale per element)."""
    (n,) = dims("dropout", numel=numel)
    s = dtype_bytes(dtype)
    if phase == "fwd":
        return OpCost(2 * n, n * s, n * s + n)
    return OpCost(2 * n, n * s + n, n * s)


def _activation(name: str, fwd: int, bwd: int):
    def formula(numel, inplace=False, *, dtype, phase) -> OpCost:
        (n,) = dims(name, numel=numel)
        s = dtype_bytes(dtype)
        if phase == "fwd":
            return OpCost(fwd * n, n * s, n * s)
        return OpCost(bwd * n, 2 * n * s, n * s)

    formula.__name__ = name
    formula.__doc__ = (f"{name} activation over `numel` elements ({fwd} FLOPs/element fwd, "
                       f"{bwd} bwd); `inplace`: it overwrites its input ({name}_), the same bytes.")
    return formula


for _name, (_fwd, _bwd) in ACTIVATION_FLOPS.items():
    register(_name)(_activation(_name, _fwd, _bwd))
