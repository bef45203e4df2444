"""Count a `Part` once per (structure, input shape, batch, dtype, training): ops and saved bytes.

The op list comes from `perfmodel.counting.count_model` (meta device). A part whose input
is an activation is wrapped so that its input requires grad: backward then computes the
input gradient as it does inside the whole model. The bytes saved for backward are
measured on the meta device with `torch.autograd.graph.saved_tensors_hooks`: every
tensor autograd packs, shared storages once, parameters excluded; whether the part's
input and output are among them is kept too, so that a tensor saved on both sides of a
part boundary is counted once when parts are put together (`assemble_saved_bytes`).
"""
from __future__ import annotations

from dataclasses import dataclass
import pandas as pd
import torch
from torch import nn

from perfmodel.dtypes import canonical_dtype
from perfmodel.errors import PerfmodelError
from perfmodel.predict.parts import Part

_TORCH = {"float64": torch.float64, "float32": torch.float32, "tf32": torch.float32,
          "float16": torch.float16, "bfloat16": torch.bfloat16}


class InputGrad(nn.Module):
    """Runs `inner` with its floating-point input marked as requiring grad."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner
        self.input_size = getattr(inner, "input_size", None)

    def forward(self, x):
        if isinstance(x, torch.Tensor) and x.is_floating_point() and not x.requires_grad:
            x.requires_grad_(True)
        return self.inner(x)


@dataclass(frozen=True)
class PartCount:
    """What one part costs at one batch size: ops (a frame), params and saved bytes."""

    ops: pd.DataFrame  # perfmodel.counting op table; `module` relative to the part
    params: int
    param_bytes: float
    param_numels: tuple  # numel of each trainable parameter tensor (optimizer ops)
    saved_bytes: float  # saved for backward, excluding the part's input
    input_saved: bool
    input_bytes: float
    output_saved: bool
    output_bytes: float
    macs: float
    acts: int
    max_op_bytes: float  # largest single op output (workspace estimate)


def torch_dtype(dtype: str) -> torch.dtype:
    dt = canonical_dtype(dtype)
    if dt not in _TORCH:
        raise PerfmodelError(f"cannot predict in {dt}; use one of {', '.join(_TORCH)}")
    return _TORCH[dt]


def _input(part: Part, batch: int, tdtype) -> torch.Tensor:
    shape = (batch,) + tuple(part.input_shape)
    if part.input_kind == "long":
        return torch.zeros(shape, dtype=torch.long, device="meta")
    return torch.empty(shape, dtype=tdtype, device="meta")


def count_part(part: Part, batch: int, dtype: str, train: bool) -> PartCount:
    """Count `part` (cached by its key, input shape, batch, dtype and training)."""
    k = (part.key, part.input_shape, part.input_kind, part.input_grad, int(batch),
         canonical_dtype(dtype), bool(train))
    hit = _CACHE.get(k)
    if hit is None:
        hit = _CACHE[k] = _count(part, int(batch), canonical_dtype(dtype), bool(train))
    return hit


_CACHE: dict[tuple, PartCount] = {}


def _count(part: Part, batch: int, dtype: str, train: bool) -> PartCount:
    from perfmodel.counting.counter import count_model

    kind, input_grad = part.input_kind, part.input_grad
    tdtype = torch_dtype(dtype)
    with torch.device("meta"):
        module = part.build()
    x = _input(part, batch, tdtype)
    wrapped = InputGrad(module) if (train and input_grad and kind == "float") else module
    c = count_model(wrapped, inputs=(x,), dtype=dtype, backward=train)
    ops = c.to_frame()
    if wrapped is not module and len(ops):
        ops["module"] = ops["module"].str.replace(r"^inner\.?", "", regex=True)
    saved, in_saved, out_saved, out_bytes = (0.0, False, False, 0.0)
    if train:
        saved, in_saved, out_saved, out_bytes = _saved_bytes(module, x, input_grad and kind == "float",
                                                             tdtype)
    params = list({id(p): p for p in module.parameters()}.values())
    n_params = sum(p.numel() for p in params)
    size = torch.empty((), dtype=tdtype, device="meta").element_size()
    written = ops["bytes_written"] if len(ops) else pd.Series([0.0])
    return PartCount(
        ops=ops, params=n_params, param_bytes=float(n_params * size),
        param_numels=tuple(p.numel() for p in params if p.requires_grad),
        saved_bytes=saved, input_saved=in_saved, input_bytes=float(x.numel() * x.element_size()),
        output_saved=out_saved, output_bytes=out_bytes, macs=c.total().macs, acts=c.acts,
        max_op_bytes=float(written.max()),
    )


def _saved_bytes(module: nn.Module, x: torch.Tensor, input_grad: bool, tdtype):
    """(bytes saved excluding the input, input saved?, output saved?, output bytes).

    The module runs through `torch.func.functional_call` with meta parameters of the
    model dtype, so a caller's real model is neither moved nor cast.
    """
    x = x.detach().requires_grad_(input_grad)
    state = {}
    for n, p in module.named_parameters():
        dt = tdtype if p.is_floating_point() else p.dtype
        state[n] = torch.empty(p.shape, dtype=dt, device="meta").requires_grad_(p.requires_grad)
    for n, b in module.named_buffers():
        dt = tdtype if b.is_floating_point() else b.dtype
        state[n] = torch.empty(b.shape, dtype=dt, device="meta")
    param_storages = {t.untyped_storage()._cdata for t in state.values()}
    storages: dict[int, int] = {}

    def pack(t):
        if isinstance(t, torch.Tensor) and t.device.type == "meta":
            s = t.untyped_storage()
            if s._cdata not in param_storages:
                storages[s._cdata] = s.nbytes()
        return t

    was = module.training
    module.train()
    try:
        with torch.device("meta"), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = torch.func.functional_call(module, state, (x,))
    except Exception as exc:  # the model does not run on meta: no activation estimate
        raise PerfmodelError(f"{type(module).__name__}: cannot run on the meta device to "
                             f"measure saved activations ({str(exc).splitlines()[0]})") from None
    finally:
        module.train(was)
    in_id = x.untyped_storage()._cdata
    out_t = out if isinstance(out, torch.Tensor) else None
    out_id = out_t.untyped_storage()._cdata if out_t is not None else None
    in_saved = in_id in storages
    out_saved = out_id in storages if out_id is not None else False
    total = sum(v for k, v in storages.items() if k != in_id)
    out_bytes = float(out_t.numel() * out_t.element_size()) if out_t is not None else 0.0
    return float(total), in_saved, out_saved, out_bytes


def assemble_saved_bytes(counts: list[PartCount]) -> list[float]:
    """Saved bytes per part in a chain, a boundary tensor saved on both sides counted once.

    The first part's input is a data batch (not an activation of the model) and is only
    counted when the part saves it.
    """
    out = []
    prev_out_saved = False
    for c in counts:
        b = c.saved_bytes
        if c.input_saved and not prev_out_saved:
            b += c.input_bytes
        out.append(b)
        prev_out_saved = c.output_saved
    return out
