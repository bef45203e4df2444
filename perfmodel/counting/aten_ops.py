"""Map aten ops to op kinds and shape parameters of `perfmodel.ops`.

`@handles(aten.mm, ...)` registers a handler `h(args, kwargs, out) -> OpSpec | None`.
`plan(func)` picks the handler of an aten overload once (cached by the caller): an
explicit handler, else nothing for views and allocations, a `reduction` for ops tagged
reduction, an `elementwise` for ops tagged pointwise, and a bytes-only `memory` op for
anything else that produces a tensor.
"""
from __future__ import annotations

from math import prod
from typing import Callable, NamedTuple

import torch

aten = torch.ops.aten


class OpSpec(NamedTuple):
    """What a handler extracts: kind, formula parameters, formula direction, dtype tensor."""

    kind: str
    params: dict
    direction: str
    like: torch.Tensor  # tensor whose dtype is the op's dtype


Handler = Callable[[tuple, dict, object], "OpSpec | None"]
_HANDLERS: dict[object, Handler] = {}


def handles(*packets):
    """Register a handler for aten overload packets (every overload of each)."""
    def deco(fn: Handler) -> Handler:
        for p in packets:
            if p is not None:
                _HANDLERS[p] = fn
        return fn

    return deco


def _first_tensor(x):
    if isinstance(x, torch.Tensor):
        return x
    if isinstance(x, (tuple, list)):
        for y in x:
            if isinstance(y, torch.Tensor):
                return y
    return None


def _pair(v, n):
    v = list(v) if isinstance(v, (list, tuple)) else [v]
    if len(v) == 1:
        v = v * n
    return v


def _scalar_or_tuple(v):
    v = tuple(int(x) for x in v)
    return v[0] if len(set(v)) == 1 else v


def _opt(packet_name: str):
    return getattr(aten, packet_name, None)


# ----------------------------------------------------------------------------- GEMM


@handles(aten.mm, _opt("_scaled_mm"))
def _mm(args, kwargs, out):
    a, b = args[0], args[1]
    return OpSpec("gemm", {"m": a.shape[0], "n": b.shape[1], "k": a.shape[1], "b": 1}, "fwd", a)


@handles(aten.addmm)
def _addmm(args, kwargs, out):
    a, b = args[1], args[2]
    return OpSpec("gemm", {"m": a.shape[0], "n": b.shape[1], "k": a.shape[1], "b": 1,
                           "bias": True}, "fwd", a)


@handles(aten.bmm)
def _bmm(args, kwargs, out):
    a, b = args[0], args[1]
    return OpSpec("bmm", {"m": a.shape[1], "n": b.shape[2], "k": a.shape[2], "b": a.shape[0]},
                  "fwd", a)


@handles(aten.baddbmm)
def _baddbmm(args, kwargs, out):
    a, b = args[1], args[2]
    return OpSpec("bmm", {"m": a.shape[1], "n": b.shape[2], "k": a.shape[2], "b": a.shape[0],
                          "bias": True}, "fwd", a)


# ----------------------------------------------------------------------------- conv


def _conv_params(x, w, stride, padding, dilation, transposed, output_padding, groups, bias):
    nd = x.dim() - 2
    c_in = x.shape[1]
    c_out = w.shape[1] * groups if transposed else w.shape[0]
    kernel = list(w.shape[2:])
    size = list(x.shape[2:])
    stride, padding = _pair(stride, nd), _pair(padding, nd)
    dilation, opad = _pair(dilation, nd), _pair(output_padding, nd)
    if nd == 1:  # a 1-D conv is a 2-D conv of height 1
        size, kernel = [1] + size, [1] + kernel
        stride, padding, dilation, opad = [1] + stride, [0] + padding, [1] + dilation, [0] + opad
        nd = 2
    kind = {2: "conv2d", 3: "conv3d"}.get(nd)
    if kind is None:
        return None
    p = {"batch": x.shape[0], "c_in": c_in}
    p.update(zip(("d", "h", "w")[3 - nd:], size))
    p["c_out"] = c_out
    p.update(zip(("kernel_d", "kernel_h", "kernel_w")[3 - nd:], kernel))
    p.update(stride=_scalar_or_tuple(stride), padding=_scalar_or_tuple(padding),
             dilation=_scalar_or_tuple(dilation), groups=int(groups), bias=bool(bias))
    if transposed:
        p.update(transposed=True, output_padding=_scalar_or_tuple(opad))
    return kind, p


@handles(aten.convolution, aten._convolution)
def _convolution(args, kwargs, out):
    x, w, bias, stride, padding, dilation, transposed, output_padding, groups = args[:9]
    r = _conv_params(x, w, stride, padding, dilation, transposed, output_padding, groups,
                     bias is not None)
    return None if r is None else OpSpec(r[0], r[1], "fwd", x)


@handles(aten.convolution_backward)
def _convolution_backward(args, kwargs, out):
    (dy, x, w, bias_sizes, stride, padding, dilation, transposed, output_padding, groups,
     mask) = args[:11]
    r = _conv_params(x, w, stride, padding, dilation, transposed, output_padding, groups,
                     bool(mask[2]))
    if r is None:
        return None
    kind, p = r
    p.update(grad_input=bool(mask[0]), grad_weight=bool(mask[1]))
    return OpSpec(kind, p, "bwd", x)


# ------------------------------------------------------------------------ attention


def _attention_params(q, k, v, causal):
    return {"batch": q.shape[0], "heads": q.shape[1], "seq_q": q.shape[2], "seq_k": k.shape[2],
            "head_dim": q.shape[3], "kv_heads": k.shape[1], "head_dim_v": v.shape[3],
            "causal": bool(causal)}


@handles(_opt("_scaled_dot_product_flash_attention_for_cpu"),
         _opt("_scaled_dot_product_flash_attention"),
         _opt("_scaled_dot_product_efficient_attention"),
         _opt("_scaled_dot_product_cudnn_attention"))
def _sdpa(args, kwargs, out):
    q, k, v = args[:3]
    if q.dim() != 4:
        return None
    causal = kwargs.get("is_causal", args[4] if len(args) > 4 and isinstance(args[4], bool) else False)
    return OpSpec("attention", _attention_params(q, k, v, causal), "fwd", q)


@handles(_opt("_scaled_dot_product_flash_attention_for_cpu_backward"))
def _sdpa_cpu_backward(args, kwargs, out):
    q, k, v = args[1:4]
    causal = kwargs.get("is_causal", args[7] if len(args) > 7 else False)
    return OpSpec("attention", _attention_params(q, k, v, causal), "bwd", q)


# ---------------------------------------------------------------------------- norms


@handles(aten.native_layer_norm)
def _layer_norm(args, kwargs, out):
    x, shape, weight = args[0], args[1], args[2]
    return OpSpec("layer_norm", {"numel": x.numel(), "features": prod(shape),
                                 "affine": weight is not None}, "fwd", x)


@handles(aten.native_layer_norm_backward)
def _layer_norm_backward(args, kwargs, out):
    x, shape, weight = args[1], args[2], args[5]
    return OpSpec("layer_norm", {"numel": x.numel(), "features": prod(shape),
                                 "affine": weight is not None}, "bwd", x)


@handles(_opt("_fused_rms_norm"))
def _rms_norm(args, kwargs, out):
    x, shape, weight = args[0], args[1], args[2] if len(args) > 2 else None
    return OpSpec("rms_norm", {"numel": x.numel(), "features": prod(shape),
                               "affine": weight is not None}, "fwd", x)


@handles(_opt("_fused_rms_norm_backward"))
def _rms_norm_backward(args, kwargs, out):
    x, shape = args[1], args[2]
    weight = args[4] if len(args) > 4 else None
    return OpSpec("rms_norm", {"numel": x.numel(), "features": prod(shape),
                               "affine": weight is not None}, "bwd", x)


def _counting_rms_norm(args, kwargs, out):
    x, shape, weight = args[0], args[1], args[2]
    return OpSpec("rms_norm", {"numel": x.numel(), "features": prod(shape),
                               "affine": weight is not None}, "fwd", x)


def _counting_rms_norm_backward(args, kwargs, out):
    x, shape, weight = args[1], args[2], args[4]
    return OpSpec("rms_norm", {"numel": x.numel(), "features": prod(shape),
                               "affine": weight is not None}, "bwd", x)


def _register_counting_ops() -> None:
    """Handlers of the counting-only fused ops (`perfmodel.counting.fused_ops`)."""
    from perfmodel.counting import fused_ops

    if fused_ops.FORWARD is not None:
        handles(fused_ops.FORWARD)(_counting_rms_norm)
        handles(fused_ops.BACKWARD)(_counting_rms_norm_backward)


_register_counting_ops()


def _bn(x, weight, training, phase: str) -> OpSpec:
    return OpSpec("batch_norm", {"numel": x.numel(), "channels": x.shape[1],
                                 "training": bool(training), "affine": weight is not None,
                                 "batch": x.shape[0]}, phase, x)


@handles(aten.native_batch_norm, aten._native_batch_norm_legit, _opt("_native_batch_norm_legit_functional"))
def _batch_norm(args, kwargs, out):
    return _bn(args[0], args[1], args[5], "fwd")


@handles(aten._native_batch_norm_legit_no_training)
def _batch_norm_eval(args, kwargs, out):
    return _bn(args[0], args[1], False, "fwd")


@handles(aten.native_batch_norm_backward)
def _batch_norm_backward(args, kwargs, out):
    return _bn(args[1], args[2], args[7], "bwd")


@handles(aten.native_group_norm)
def _group_norm(args, kwargs, out):
    x, weight, n, c, groups = args[0], args[1], args[3], args[4], args[6]
    return OpSpec("group_norm", {"numel": x.numel(), "channels": c, "groups": groups, "batch": n,
                                 "affine": weight is not None}, "fwd", x)


@handles(aten.native_group_norm_backward)
def _group_norm_backward(args, kwargs, out):
    x, weight, n, c, groups = args[1], args[4], args[5], args[6], args[8]
    return OpSpec("group_norm", {"numel": x.numel(), "channels": c, "groups": groups, "batch": n,
                                 "affine": weight is not None}, "bwd", x)


# ---------------------------------------------------------------- softmax, activations


def _softmax_params(x, dim) -> dict:
    """numel, and the row length (`features`) where the softmax dimension is known."""
    p = {"numel": x.numel()}
    if isinstance(dim, int) and x.dim():
        p["features"] = int(x.shape[dim])
    return p


@handles(aten._softmax, aten._safe_softmax, aten._log_softmax)
def _softmax(args, kwargs, out):
    dim = args[1] if len(args) > 1 else kwargs.get("dim")
    return OpSpec("softmax", _softmax_params(args[0], dim), "fwd", args[0])


@handles(aten._softmax_backward_data, aten._log_softmax_backward_data)
def _softmax_backward(args, kwargs, out):
    dim = args[2] if len(args) > 2 else kwargs.get("dim")
    return OpSpec("softmax", _softmax_params(args[0], dim), "bwd", args[0])


def _activation(kind: str, direction: str):
    def h(args, kwargs, out):
        return OpSpec(kind, {"numel": args[0].numel()}, direction, args[0])

    return h


_ACTIVATIONS = {
    "relu": ("relu", "relu_", "threshold_backward"),
    "gelu": ("gelu", "gelu_", "gelu_backward"),
    "silu": ("silu", "silu_", "silu_backward"),
    "sigmoid": ("sigmoid", "sigmoid_", "sigmoid_backward"),
    "tanh": ("tanh", "tanh_", "tanh_backward"),
    "hardswish": ("hardswish", "hardswish_", "hardswish_backward"),
    "hardsigmoid": ("hardsigmoid", "hardsigmoid_", "hardsigmoid_backward"),
    "leaky_relu": ("leaky_relu", "leaky_relu_", "leaky_relu_backward"),
    "elu": ("elu", "elu_", "elu_backward"),
    "hardtanh": ("hardtanh", "hardtanh_", "hardtanh_backward"),
}
for _kind, (_f, _fi, _b) in _ACTIVATIONS.items():
    handles(_opt(_f), _opt(_fi))(_activation(_kind, "fwd"))
    handles(_opt(_b))(_activation(_kind, "bwd"))


# -------------------------------------------------------------------------- pooling


def _pool_params(x, kernel, stride, padding, dilation=1, ceil_mode=False):
    kh, kw = _pair(kernel, 2)
    stride = _pair(stride, 2) if stride not in (None, [], ()) else [kh, kw]
    p = {"batch": x.shape[0] if x.dim() == 4 else 1, "channels": x.shape[-3],
         "h": x.shape[-2], "w": x.shape[-1], "kernel_h": kh, "kernel_w": kw,
         "stride": _scalar_or_tuple(stride), "padding": _scalar_or_tuple(_pair(padding, 2)),
         "ceil_mode": bool(ceil_mode)}
    if dilation is not None:
        p["dilation"] = _scalar_or_tuple(_pair(dilation, 2))
    return p


def _get(args, i, default):
    return args[i] if len(args) > i else default


@handles(aten.max_pool2d_with_indices)
def _max_pool(args, kwargs, out):
    x = args[0]
    p = _pool_params(x, args[1], _get(args, 2, None), _get(args, 3, 0), _get(args, 4, 1),
                     _get(args, 5, False))
    return OpSpec("max_pool2d", p, "fwd", x)


@handles(aten.max_pool2d_with_indices_backward)
def _max_pool_backward(args, kwargs, out):
    x = args[1]
    p = _pool_params(x, args[2], args[3], args[4], args[5], args[6])
    return OpSpec("max_pool2d", p, "bwd", x)


@handles(aten.avg_pool2d)
def _avg_pool(args, kwargs, out):
    x = args[0]
    p = _pool_params(x, args[1], _get(args, 2, None), _get(args, 3, 0), None, _get(args, 4, False))
    return OpSpec("avg_pool2d", p, "fwd", x)


@handles(aten.avg_pool2d_backward)
def _avg_pool_backward(args, kwargs, out):
    x = args[1]
    p = _pool_params(x, args[2], args[3], args[4], None, args[5])
    return OpSpec("avg_pool2d", p, "bwd", x)


def _adaptive_params(x, out_hw):
    oh, ow = out_hw
    return {"batch": x.shape[0] if x.dim() == 4 else 1, "channels": x.shape[-3],
            "h": x.shape[-2], "w": x.shape[-1], "out_h": oh, "out_w": ow}


@handles(aten._adaptive_avg_pool2d)
def _adaptive_pool(args, kwargs, out):
    return OpSpec("adaptive_avg_pool2d", _adaptive_params(args[0], _pair(args[1], 2)), "fwd", args[0])


@handles(aten._adaptive_avg_pool2d_backward)
def _adaptive_pool_backward(args, kwargs, out):
    dy, x = args[0], args[1]
    return OpSpec("adaptive_avg_pool2d", _adaptive_params(x, dy.shape[-2:]), "bwd", x)


# ------------------------------------------------------------------ memory movement


@handles(aten.embedding)
def _embedding(args, kwargs, out):
    weight, idx = args[0], args[1]
    return OpSpec("embedding", {"tokens": idx.numel(), "features": weight.shape[1],
                                "vocab": weight.shape[0]}, "fwd", weight)


@handles(aten.embedding_dense_backward)
def _embedding_backward(args, kwargs, out):
    dy, idx, vocab = args[0], args[1], args[2]
    return OpSpec("embedding", {"tokens": idx.numel(), "features": dy.shape[-1], "vocab": vocab},
                  "bwd", dy)


@handles(aten._to_copy, aten.clone, aten.copy_, aten.copy, aten.cat, aten.stack,
         aten.constant_pad_nd, aten.repeat)
def _copy(args, kwargs, out):
    t = _first_tensor(out)
    if t is None or t.numel() == 0:
        return None
    return OpSpec("copy", {"numel": t.numel()}, "fwd", t)


@handles(aten.native_dropout)
def _dropout(args, kwargs, out):
    x = args[0]
    return None if x.numel() == 0 else OpSpec("dropout", {"numel": x.numel()}, "fwd", x)


@handles(aten.native_dropout_backward)
def _dropout_backward(args, kwargs, out):
    g = args[0]
    return None if g.numel() == 0 else OpSpec("dropout", {"numel": g.numel()}, "bwd", g)


@handles(aten.zeros, aten.ones, aten.full, aten.zeros_like, aten.ones_like, aten.full_like,
         aten.fill_, aten.zero_, aten.fill, aten.arange, aten.scalar_tensor, aten.randn,
         aten.rand, aten.normal_, aten.uniform_, aten.bernoulli_, aten.randn_like, aten.rand_like)
def _fill(args, kwargs, out):
    t = _first_tensor(out)
    if t is None or t.numel() == 0:
        return None
    return OpSpec("fill", {"numel": t.numel()}, "fwd", t)


# ------------------------------------------------------------------------- planning

# Ops that move no data: allocations, metadata, and views the view tag does not mark.
_FREE = {aten.empty, aten.empty_like, aten.empty_strided, aten.new_empty,
         aten.new_empty_strided, aten.detach, aten.alias, aten.lift_fresh, aten._unsafe_view,
         aten.t, aten.resize_, aten.set_, aten.sym_size, aten.sym_stride, aten.sym_numel,
         aten.sym_storage_offset, aten.is_same_size, aten._local_scalar_dense, aten.detach_}


def _reduction(args, kwargs, out):
    x, t = _first_tensor(args), _first_tensor(out)
    if x is None or t is None or x.numel() == 0:
        return None
    return OpSpec("reduction", {"numel": x.numel(), "out_numel": max(t.numel(), 1)}, "fwd", x)


def _pointwise(args, kwargs, out):
    t = _first_tensor(out)
    if t is None or t.numel() == 0:
        return None
    ins = [a for a in args if isinstance(a, torch.Tensor)]
    read = sum(a.numel() for a in ins)
    p = {"numel": t.numel(), "inputs": max(len(ins), 1)}
    if read != len(ins) * t.numel():
        p["read_numel"] = read
    return OpSpec("elementwise", p, "fwd", t)


def _memory(args, kwargs, out):
    t = _first_tensor(out)
    if t is None:
        return None
    read = sum(a.numel() for a in args if isinstance(a, torch.Tensor))
    if read == 0 and t.numel() == 0:
        return None
    return OpSpec("memory", {"read_numel": read, "write_numel": t.numel()}, "fwd", t)


def plan(func) -> Handler | None:
    """The handler for an aten overload, or None when the op moves no data."""
    packet = func.overloadpacket
    h = _HANDLERS.get(packet)
    if h is not None:
        return h
    if packet in _FREE or func.is_view:
        return None
    name = packet.__name__
    if name.startswith(("sym_", "_assert", "is_", "_has_")):
        return None
    if torch.Tag.reduction in func.tags:
        return _reduction
    if torch.Tag.pointwise in func.tags:
        return _pointwise
    return _memory
