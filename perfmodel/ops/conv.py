"""Convolutions (2-D and 3-D; grouped, depthwise, strided, dilated, transposed)."""
from __future__ import annotations

from math import prod

from perfmodel.dtypes import dtype_bytes
from perfmodel.errors import PerfmodelError
from perfmodel.ops.cost import OpCost
from perfmodel.ops.registry import dims, register


def _tuple(v, n: int, name: str) -> tuple[int, ...]:
    if isinstance(v, (tuple, list)):
        if len(v) == 1:
            v = tuple(v) * n
        if len(v) != n:
            raise PerfmodelError(f"conv: {name} must be an int or {n} ints, got {v!r}")
        return tuple(_int(x, name) for x in v)
    return (_int(v, name),) * n


def _int(x, name: str) -> int:
    try:
        ok = not isinstance(x, bool) and float(x).is_integer()
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok:
        raise PerfmodelError(f"conv: {name} must be an integer, got {x!r}")
    return int(x)


def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0,
                     dilation: int = 1, transposed: bool = False, output_padding: int = 0) -> int:
    """Output length of one spatial dimension (torch.nn.Conv*/ConvTranspose* rule)."""
    if transposed:
        return (size - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def conv_cost(batch, c_in, c_out, in_size, kernel, stride, padding, dilation, groups, bias,
              transposed, output_padding, grad_input, grad_weight, dtype, phase) -> OpCost:
    """N-d convolution cost; `in_size` and `kernel` are tuples of spatial sizes.

    MACs = batch * c_out * prod(out) * (c_in/groups) * prod(kernel) (for a transposed
    conv the roles of input and output positions swap), the count of
    torch.utils.flop_counter; a bias adds one MAC per output element. Backward: the
    input gradient (a transposed conv) and the weight gradient each cost as many
    MACs as the forward, so backward = 2x forward; the bias gradient one MAC per output
    element.
    """
    n = len(in_size)
    batch, c_in, c_out, groups = dims("conv", batch=batch, c_in=c_in, c_out=c_out, groups=groups)
    if c_in % groups or c_out % groups:
        raise PerfmodelError(f"conv: groups={groups} must divide c_in={c_in} and c_out={c_out}")
    kernel = _tuple(kernel, n, "kernel")
    stride, padding = _tuple(stride, n, "stride"), _tuple(padding, n, "padding")
    dilation, opad = _tuple(dilation, n, "dilation"), _tuple(output_padding, n, "output_padding")
    for name, vals, low in (("kernel", kernel, 1), ("stride", stride, 1), ("dilation", dilation, 1),
                            ("padding", padding, 0), ("output_padding", opad, 0)):
        if min(vals) < low:
            raise PerfmodelError(f"conv: {name} must be >= {low}, got {vals}")
    out_size = tuple(conv_output_size(i, k, s, p, d, transposed, op)
                     for i, k, s, p, d, op in zip(in_size, kernel, stride, padding, dilation, opad))
    if min(out_size) <= 0:
        raise PerfmodelError(f"conv: input {tuple(in_size)} is smaller than the kernel "
                             f"{kernel} (padding {padding}, dilation {dilation})")
    x_numel = batch * c_in * prod(in_size)
    y_numel = batch * c_out * prod(out_size)
    w_numel = c_out * (c_in // groups) * prod(kernel)
    positions = prod(in_size) if transposed else prod(out_size)
    conv_macs = batch * positions * c_out * (c_in // groups) * prod(kernel)
    s = dtype_bytes(dtype)
    if phase == "fwd":
        macs = conv_macs + (y_numel if bias else 0)
        read = x_numel + w_numel + (c_out if bias else 0)
        return OpCost(2.0 * macs, read * s, y_numel * s, acts=y_numel, macs=macs)
    macs, read, written = 0, 0, 0
    if grad_input:  # dx = conv_transpose(dy, w)
        macs += conv_macs
        read += y_numel + w_numel
        written += x_numel
    if grad_weight:  # dw = conv(x, dy) over batch and positions
        macs += conv_macs
        read += x_numel + y_numel
        written += w_numel
    if bias:  # db = sum of dy over batch and positions
        macs += y_numel
        written += c_out
    return OpCost(2.0 * macs, read * s, written * s, acts=0, macs=macs)


@register("conv2d", tensor=True)
def conv2d(batch, c_in, h, w, c_out, kernel_h, kernel_w, stride=1, padding=0, dilation=1,
           groups=1, bias=False, transposed=False, output_padding=0,
           grad_input=True, grad_weight=True, *, dtype, phase) -> OpCost:
    """2-D convolution of x[batch, c_in, h, w]; depthwise is groups = c_in = c_out."""
    h, w, kh, kw = dims("conv2d", h=h, w=w, kernel_h=kernel_h, kernel_w=kernel_w)
    return conv_cost(batch, c_in, c_out, (h, w), (kh, kw), stride, padding, dilation, groups,
                     bias, transposed, output_padding, grad_input, grad_weight, dtype, phase)


@register("conv3d", tensor=True)
def conv3d(batch, c_in, d, h, w, c_out, kernel_d, kernel_h, kernel_w, stride=1, padding=0,
           dilation=1, groups=1, bias=False, transposed=False, output_padding=0,
           grad_input=True, grad_weight=True, *, dtype, phase) -> OpCost:
    """3-D convolution of x[batch, c_in, d, h, w]."""
    d, h, w = dims("conv3d", d=d, h=h, w=w)
    kd, kh, kw = dims("conv3d", kernel_d=kernel_d, kernel_h=kernel_h, kernel_w=kernel_w)
    return conv_cost(batch, c_in, c_out, (d, h, w), (kd, kh, kw), stride, padding, dilation,
                     groups, bias, transposed, output_padding, grad_input, grad_weight, dtype, phase)
