"""Counting-only stand-ins for fused GPU kernels that have no meta kernel.

CUDA PyTorch (`_fused_rms_norm`), Transformer Engine and Apex run RMSNorm as one kernel
forward and one backward; on the meta device `_fused_rms_norm` is a composite of about
ten float32 passes, so it cannot show what a GPU runs. `perfmodel::fused_rms_norm` and
its backward are custom ops with shape-only (fake) kernels and an autograd formula: under
`FusedKernels(gpu=True)` the counter sees one `rms_norm` op per pass, as on the GPU.
They are never executed on data (their real kernels raise).
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

AVAILABLE = hasattr(torch, "library") and hasattr(torch.library, "custom_op")

if AVAILABLE:
    @torch.library.custom_op("perfmodel::fused_rms_norm", mutates_args=())
    def _rms_norm(x: Tensor, shape: list[int], weight: Optional[Tensor],
                  eps: Optional[float]) -> tuple[Tensor, Tensor]:
        raise NotImplementedError("perfmodel::fused_rms_norm only counts (meta tensors)")

    @_rms_norm.register_fake
    def _(x, shape, weight, eps):
        n = len(shape)
        rstd = x.new_empty(tuple(x.shape[:-n]) + (1,) * n, dtype=torch.float32)
        return torch.empty_like(x), rstd

    @torch.library.custom_op("perfmodel::fused_rms_norm_backward", mutates_args=())
    def _rms_norm_backward(dy: Tensor, x: Tensor, shape: list[int], rstd: Tensor,
                           weight: Optional[Tensor]) -> tuple[Tensor, Tensor]:
        raise NotImplementedError("perfmodel::fused_rms_norm_backward only counts")

    @_rms_norm_backward.register_fake
    def _(dy, x, shape, rstd, weight):
        return torch.empty_like(x), (torch.empty_like(weight) if weight is not None
                                     else x.new_empty(0))

    def _setup(ctx, inputs, output):
        x, shape, weight, _eps = inputs
        ctx.save_for_backward(x, output[1], weight)
        ctx.shape = shape

    def _backward(ctx, dy, _drstd):
        x, rstd, weight = ctx.saved_tensors
        dx, dw = _rms_norm_backward(dy, x, ctx.shape, rstd, weight)
        return dx, None, (dw if weight is not None else None), None

    _rms_norm.register_autograd(_backward, setup_context=_setup)

    FORWARD = torch.ops.perfmodel.fused_rms_norm
    BACKWARD = torch.ops.perfmodel.fused_rms_norm_backward
else:  # an old torch: RMSNorm stays its composite ops
    FORWARD = BACKWARD = None


def fused_rms_norm(x: Tensor, shape, weight: Optional[Tensor], eps: Optional[float]):
    """The normalised output through the counting-only fused op (None if unavailable)."""
    if FORWARD is None:
        return None
    return FORWARD(x, [int(s) for s in shape], weight, eps)[0]
