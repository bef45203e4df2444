"""Op kinds: which measured ops share one learned model.

A kind groups ops that run the same family of kernels (GEMMs on tensor cores, implicit-GEMM
convolutions, fused attention, memory-bound elementwise/normalisation kernels). Ops the
registry does not know form a kind of their own (e.g. a profiled block such as
`resnet_bottleneck`), learned from generic cost features when the training data has them.
"""
from __future__ import annotations

GEMM_PARAMS = ("m", "n", "k", "b")
CONV_PARAMS = ("batch", "c_in", "h", "w", "c_out", "kernel_h", "kernel_w", "stride", "padding", "dilation", "groups")
ATTENTION_PARAMS = ("batch", "heads", "seq_q", "seq_k", "head_dim", "causal")
ELEMENTWISE_PARAMS = ("numel", "features")

OP_KINDS: dict[str, tuple[str, ...]] = {
    "gemm": ("gemm", "bmm", "linear", "matmul", "mm", "addmm", "baddbmm"),
    "conv": ("conv1d", "conv2d", "conv3d", "conv", "conv_transpose2d"),
    "attention": ("attention", "sdpa", "scaled_dot_product_attention", "flash_attention"),
    # memory-bound vector kernels: activations, norms, softmax, pooling, copies, reductions
    "elementwise": (
        "elementwise", "layer_norm", "rms_norm", "batch_norm", "group_norm", "softmax",
        "log_softmax", "gelu", "relu", "relu6", "silu", "elu", "leaky_relu", "hardtanh",
        "hardsigmoid", "hardswish", "tanh", "sigmoid", "add", "mul", "dropout", "max_pool2d",
        "avg_pool2d", "adaptive_avg_pool2d", "embedding", "mean", "sum", "reduction", "cat",
        "copy", "contiguous", "fill", "ones", "zeros", "memory",
    ),
}

_KIND_OF = {op: kind for kind, ops in OP_KINDS.items() for op in ops}


def op_kind(op: str) -> str:
    """The kind an op belongs to; an unknown op is a kind of its own (its name)."""
    op = str(op).strip().lower()
    return _KIND_OF.get(op, op)


def canonical_op(op: str) -> str:
    """An op's canonical name (`perfmodel.ops`' first registered name: `mean` and `sum`
    are `reduction`, `log_softmax` is `softmax`); an unregistered name lower-cased."""
    from perfmodel.ops.registry import _REGISTRY

    name = str(op).strip().lower()
    formula = _REGISTRY.get(name)
    return formula.kind if formula is not None else name


def is_known_kind(kind: str) -> bool:
    """True for the kinds with dedicated shape features (gemm, conv, attention, elementwise)."""
    return kind in OP_KINDS
