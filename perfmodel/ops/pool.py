"""2-D pooling: windowed max/avg pooling and adaptive (global) average pooling.

Windowed pooling costs one FLOP (compare or add) per window element per output and
produces pycls activations (pycls counts its max-pool outputs); adaptive average
pooling (pycls's global `gap2d`) costs one add per input element and produces none.
"""
from __future__ import annotations

from perfmodel.dtypes import dtype_bytes
from perfmodel.errors import PerfmodelError
from perfmodel.ops.cost import OpCost
from perfmodel.ops.registry import dims, register

_INDEX_BYTES = 8  # max-pool argmax indices are int64


def pool_output_size(size: int, kernel: int, stride: int, padding: int = 0, dilation: int = 1,
                     ceil_mode: bool = False) -> int:
    """Output length of one pooled dimension (torch.nn.MaxPool2d/AvgPool2d rule)."""
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + padding:  # last window must start inside
        out -= 1
    return out


def _windowed(kind, batch, channels, h, w, kernel_h, kernel_w, stride, padding, dilation,
              ceil_mode, indices, dtype, phase) -> OpCost:
    batch, channels, h, w, kh, kw = dims(kind, batch=batch, channels=channels, h=h, w=w,
                                         kernel_h=kernel_h, kernel_w=kernel_w)
    sh, sw = (stride, stride) if isinstance(stride, int) else tuple(stride)
    ph, pw = (padding, padding) if isinstance(padding, int) else tuple(padding)
    dh, dw = (dilation, dilation) if isinstance(dilation, int) else tuple(dilation)
    ho = pool_output_size(h, kh, sh, ph, dh, ceil_mode)
    wo = pool_output_size(w, kw, sw, pw, dw, ceil_mode)
    if ho <= 0 or wo <= 0:
        raise PerfmodelError(f"{kind}: input {h}x{w} is smaller than the {kh}x{kw} window")
    s = dtype_bytes(dtype)
    x, y = batch * channels * h * w, batch * channels * ho * wo
    idx = y * _INDEX_BYTES if indices else 0
    if phase == "fwd":
        return OpCost(float(y * kh * kw), x * s, y * s + idx, acts=y)
    bwd_flops = y if indices else y * kh * kw  # max: scatter one add; avg: spread the window
    return OpCost(float(bwd_flops), y * s + idx, x * s)


@register("max_pool2d")
def max_pool2d(batch, channels, h, w, kernel_h, kernel_w, stride=None, padding=0, dilation=1,
               ceil_mode=False, *, dtype, phase) -> OpCost:
    """Max pooling (with argmax indices saved for backward); stride defaults to the kernel."""
    stride = (kernel_h, kernel_w) if stride is None else stride
    return _windowed("max_pool2d", batch, channels, h, w, kernel_h, kernel_w, stride, padding,
                     dilation, ceil_mode, True, dtype, phase)


@register("avg_pool2d")
def avg_pool2d(batch, channels, h, w, kernel_h, kernel_w, stride=None, padding=0,
               ceil_mode=False, *, dtype, phase) -> OpCost:
    """Average pooling; stride defaults to the kernel."""
    stride = (kernel_h, kernel_w) if stride is None else stride
    return _windowed("avg_pool2d", batch, channels, h, w, kernel_h, kernel_w, stride, padding,
                     1, ceil_mode, False, dtype, phase)


@register("adaptive_avg_pool2d")
def adaptive_avg_pool2d(batch, channels, h, w, out_h=1, out_w=1, *, dtype, phase) -> OpCost:
    """Adaptive average pooling to out_h x out_w (1x1 = global average pooling)."""
    batch, channels, h, w, oh, ow = dims("adaptive_avg_pool2d", batch=batch, channels=channels,
                                         h=h, w=w, out_h=out_h, out_w=out_w)
    s = dtype_bytes(dtype)
    x, y = batch * channels * h * w, batch * channels * oh * ow
    if phase == "fwd":
        return OpCost(float(x), x * s, y * s)
    return OpCost(float(x), y * s, x * s)
