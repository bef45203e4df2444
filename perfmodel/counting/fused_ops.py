"""Counting-only stand-ins for fused GPU kernels that have no meta kernel.

CUDA PyTorch (`_fused_rms_norm`), Transformer Engine and Apex run RMSNorm as one kernel
forward and one backward; on the meta device `_fused_rms_norm` is a composite of about
ten float32 passes, so it cannot show what a GPU runs. `perfmodel::fused_rms_norm` and
its backward are custom ops with shape-only (fake) kernels and an autograd formula: under
`FusedKernels(gpu=True)` the counter sees one `rms_norm` op per pass, as on the GPU.
They are never executed on data (their real kernels raise).
"""
# no `from __future__ import annotations`: torch infers the ops' schemas from these
# annotations, and before torch 2.7 only from typing's List / Tuple, not strings
from typing import List, Optional, Tuple

import torch
from torch import Tensor


def _register():
    """Define the two ops; (None, None) where this torch cannot."""
    if not hasattr(getattr(torch, "library", None), "custom_op"):
        return None, None
    if hasattr(torch.ops.perfmodel, "fused_rms_norm"):  # this module loaded twice
        return torch.ops.perfmodel.fused_rms_norm, torch.ops.perfmodel.fused_rms_norm_backward

    @torch.library.custom_op("perfmodel::fused_rms_norm", mutates_args=())
    def _rms_norm(x: Tensor, shape: List[int], weight: Optional[Tensor],
                  eps: Optional[float]) -> Tuple[Tensor, Tensor]:
        raise NotImplementedError("perfmodel::fused_rms_norm only counts (meta tensors)")

    @_rms_norm.register_fake
    def _(x, shape, weight, eps):
        n = len(shape)
        rstd = x.new_empty(tuple(x.shape[:-n]) + (1,) * n, dtype=torch.float32)
        return torch.empty_like(x), rstd

    @torch.library.custom_op("perfmodel::fused_rms_norm_backward", mutates_args=())
    def _rms_norm_backward(dy: Tensor, x: Tensor, shape: List[int], rstd: Tensor,
                           weight: Optional[Tensor]) -> Tuple[Tensor, Tensor]:
        raise NotImplementedError("perfmodel::fused_rms_norm_backward only counts")

    @_rms_norm_backward.register_fake
    def _(dy, x, shape, rstd, weight):
        return torch.empty_like(x), (torch.empty_like(weight) if weight is not None
                                     else x.new_empty(0))

    def _setup(ctx, inputs, output):
        x, shape, weight, _eps = inputs
        ctx.save_for_backward(x, output[1], weight)
        ctx.shape = shape
        ctx.set_materialize_grads(False)  # no zeros kernel for the unused rstd gradient

    def _backward(ctx, dy, _drstd):
        if dy is None:  # the output itself is unused
            return None, None, None, None
        x, rstd, weight = ctx.saved_tensors
        dx, dw = _rms_norm_backward(dy, x, ctx.shape, rstd, weight)
        return dx, None, (dw if weight is not None else None), None

    _rms_norm.register_autograd(_backward, setup_context=_setup)
    return torch.ops.perfmodel.fused_rms_norm, torch.ops.perfmodel.fused_rms_norm_backward


UNAVAILABLE_WHY = ""
try:
    FORWARD, BACKWARD = _register()
    if FORWARD is None:
        UNAVAILABLE_WHY = f"torch {torch.__version__} has no torch.library.custom_op"
except Exception as exc:  # noqa: BLE001  (a torch whose custom-op API differs)
    FORWARD = BACKWARD = None
    UNAVAILABLE_WHY = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
AVAILABLE = FORWARD is not None
_WARNED: list[bool] = []


def fused_rms_norm(x: Tensor, shape, weight: Optional[Tensor], eps: Optional[float]):
    """The normalised output through the counting-only fused op (None if unavailable: the
    composite ops are counted, and a warning says so once)."""
    if FORWARD is None:
        if not _WARNED:
            import warnings

            warnings.warn("RMSNorm is counted as its composite float32 ops, not one fused GPU "
                          f"kernel (the counting op could not be registered: "
                          f"{UNAVAILABLE_WHY})", stacklevel=2)
            _WARNED.append(True)
        return None
    return FORWARD(x, [int(s) for s in shape], weight, eps)[0]
