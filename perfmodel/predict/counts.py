"""Count a `Part` once per (structure, input shape, batch, dtype, training): ops and saved bytes.

The op list comes from `perfmodel.counting.count_model` (meta device). A part whose input
is an activation is wrapped so that its input requires grad: backward then computes the
input gradient as it does inside the whole model. The bytes saved for backward are
measured in the same meta pass with `torch.autograd.graph.saved_tensors_hooks`: every
tensor autograd packs, shared storages once, parameters and buffers excluded; whether the part's
input and output are among them is kept too, so that a tensor saved on both sides of a
part boundary is counted once when parts are put together (`assemble_saved_bytes`).
"""
from __future__ import annotations

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


class Probe(nn.Module):
    """Wraps a part for counting: input grad on demand, and records the storages of the
    parameters, buffers, input and output it sees inside `functional_call` (the counter's
    meta tensors), so saved-for-backward bytes come from the same pass as the op list."""

    def __init__(self, inner: nn.Module, input_grad: bool):
        super().__init__()
        self.inner = inner
        self.input_grad = input_grad
        self.state: set[int] = set()
        self.input_id = self.output_id = None
        self.output_bytes = 0.0

    def forward(self, x):
        if (self.input_grad and isinstance(x, torch.Tensor) and x.is_floating_point()
                and not x.requires_grad):
            x.requires_grad_(True)
        self.state = {t.untyped_storage()._cdata for t in self.inner.parameters()}
        self.state |= {t.untyped_storage()._cdata for t in self.inner.buffers()}
        self.input_id = x.untyped_storage()._cdata
        out = self.inner(x)
        if isinstance(out, torch.Tensor):
            self.output_id = out.untyped_storage()._cdata
            self.output_bytes = float(out.numel() * out.element_size())
        return out


class PartCount:
    """What one part costs at one batch size: ops (a frame), params and saved bytes.

    `ops` is built lazily from `rows` for closed-form parts (`analytic.py`), so ranking
    many candidates never builds a frame per part.
    """

    def __init__(self, ops, params, param_bytes, param_numels, saved_bytes, input_saved,
                 input_bytes, output_saved, output_bytes, macs, acts, max_op_bytes,
                 fwd_macs=0.0, fwd_acts=0.0, all_flops=0.0, rows=None, fused=False,
                 gemm_dtype=None):
        self._ops, self.rows, self.fused, self.gemm_dtype = ops, rows, fused, gemm_dtype
        self.params, self.param_bytes, self.param_numels = params, param_bytes, param_numels
        self.saved_bytes, self.input_saved, self.input_bytes = saved_bytes, input_saved, input_bytes
        self.output_saved, self.output_bytes = output_saved, output_bytes
        self.macs, self.acts, self.max_op_bytes = macs, acts, max_op_bytes
        self.fwd_macs, self.fwd_acts, self.all_flops = fwd_macs, fwd_acts, all_flops

    @property
    def ops(self) -> pd.DataFrame:
        """The op table (perfmodel.counting layout); `module` relative to the part."""
        if self._ops is None:
            self._ops = pd.DataFrame(self.rows)
        return self._ops

    def with_ops(self, ops: pd.DataFrame, **flags) -> "PartCount":
        """A copy with another op table (the same parameters and saved bytes), e.g. the
        compiled (`fused=True`) or FP8 (`gemm_dtype=...`) op list of the same part."""
        kw = {"fused": self.fused, "gemm_dtype": self.gemm_dtype} | flags
        return PartCount(ops, self.params, self.param_bytes, self.param_numels,
                         self.saved_bytes, self.input_saved, self.input_bytes,
                         self.output_saved, self.output_bytes, self.macs, self.acts,
                         self.max_op_bytes, self.fwd_macs, self.fwd_acts, self.all_flops, **kw)

    def owned_numels(self, part: Part) -> list[int]:
        """Sizes of the part's trainable tensors, a tied weight left to its owner part."""
        numels = list(self.param_numels)
        if part.shared_params in numels:
            numels.remove(part.shared_params)
        return numels

    @property
    def n_ops(self) -> int:
        return len(self.rows) if self._ops is None else len(self._ops)


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


def fuses_kernels(device) -> bool:
    """Whether `device` (a DeviceSpec) runs dropout and RMSNorm as fused kernels: GPUs and
    TPUs do (`native_dropout`, `_fused_rms_norm`); a CPU runs their composite ops."""
    return getattr(device, "kind", "cpu") != "cpu"


def count_part(part: Part, batch: int, dtype: str, train: bool, fast: bool = True,
               fused_kernels: bool = False, compiled: bool = False,
               gemm_dtype: str | None = None) -> PartCount:
    """Count `part` (cached by its key, input shape, batch, dtype, training and the flags).

    `fast`: use the closed-form op list of `analytic.py` where one exists (the same rows
    as the meta-device count), else count on the meta device. `fused_kernels`: count
    dropout and RMSNorm as a GPU runs them (`fuses_kernels`). `compiled`: the op list `torch.compile`
    runs (`fusion.fuse_pointwise`; params and saved bytes as counted eagerly). `gemm_dtype`:
    the GEMMs (fprop, dgrad, wgrad) run in that dtype, everything else in `dtype`
    (Transformer Engine's FP8 recipe: `gemm_dtype="float8_e4m3fn"`, `dtype="bfloat16"`).
    """
    k = (part.key, part.input_shape, part.input_kind, part.input_grad, int(batch),
         canonical_dtype(dtype), bool(train), fast, bool(fused_kernels), bool(compiled),
         gemm_dtype)
    hit = _CACHE.get(k)
    if hit is None and gemm_dtype:
        e = count_part(part, batch, dtype, train, fast, fused_kernels, compiled)
        hit = _CACHE[k] = _with_gemm_dtype(e, canonical_dtype(gemm_dtype),
                                           canonical_dtype(dtype))
    if hit is None and compiled:
        from perfmodel.predict.fusion import fuse_pointwise

        e = count_part(part, batch, dtype, train, fast, fused_kernels)
        hit = _CACHE[k] = e.with_ops(fuse_pointwise(e.ops), fused=True)
    if hit is None:
        hit = _analytic(part, int(batch), canonical_dtype(dtype), bool(train)) if fast else None
        if hit is None:
            hit = _count(part, int(batch), canonical_dtype(dtype), bool(train),
                         bool(fused_kernels))
        _CACHE[k] = hit
    return hit


_CACHE: dict[tuple, PartCount] = {}


def _with_gemm_dtype(e: PartCount, gemm_dtype: str, dtype: str) -> PartCount:
    """`e` with its GEMM rows in `gemm_dtype`: inputs read in it, output written in `dtype`."""
    from perfmodel.dtypes import DTYPE_BYTES

    ops = e.ops.copy()
    if len(ops):
        sel = ops["op"].astype(str) == "gemm"
        m, n, k, b = (pd.to_numeric(ops.loc[sel, c], errors="coerce").fillna(1) for c in "mnkb")
        ops.loc[sel, "dtype"] = gemm_dtype
        bias = (pd.to_numeric(ops.loc[sel, "bias"], errors="coerce").fillna(0) > 0) \
            if "bias" in ops.columns else False
        read = b * (m * k + k * n) * DTYPE_BYTES[gemm_dtype] + bias * n * DTYPE_BYTES[dtype]
        written = b * m * n * DTYPE_BYTES[dtype]
        ops.loc[sel, "bytes_read"] = read
        ops.loc[sel, "bytes_written"] = written
        ops.loc[sel, "bytes"] = read + written
    return e.with_ops(ops, gemm_dtype=gemm_dtype)


def _count(part: Part, batch: int, dtype: str, train: bool, fused_kernels: bool) -> PartCount:
    from perfmodel.counting.counter import count_model

    tdtype = torch_dtype(dtype)
    with torch.device("meta"):
        module = part.build()
    x = _input(part, batch, tdtype)
    probe = Probe(module, train and part.input_grad and part.input_kind == "float")
    storages: dict[int, int] = {}

    def pack(t):
        if isinstance(t, torch.Tensor) and t.device.type == "meta":
            s = t.untyped_storage()
            storages[s._cdata] = s.nbytes()
        return t

    modes = {m: m.training for m in module.modules()}  # restored per module after
    module.train(train)
    # a part before any parameter (a user's pooling first) has no backward to count
    backward = train and (probe.input_grad or any(p.requires_grad for p in module.parameters()))
    try:
        if backward:
            with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
                c = count_model(probe, inputs=(x,), dtype=dtype, backward=True,
                                fused_kernels=fused_kernels)
        else:
            c = count_model(probe, inputs=(x,), dtype=dtype, backward=False,
                            fused_kernels=fused_kernels)
    finally:
        for m, was in modes.items():
            m.training = was
    ops = c.to_frame()
    if len(ops):
        ops["module"] = ops["module"].str.replace(r"^inner\.?", "", regex=True)
    saved = {k: v for k, v in storages.items() if k not in probe.state}
    in_saved = probe.input_id in saved
    out_saved = probe.output_id in saved
    saved_bytes = float(sum(v for k, v in saved.items() if k != probe.input_id))
    params = list({id(p): p for p in module.parameters()}.values())
    n_params = sum(p.numel() for p in params)
    size = torch.empty((), dtype=tdtype, device="meta").element_size()
    written = ops["bytes_written"] if len(ops) else pd.Series([0.0])
    fwd = ops[ops["phase"] == "fwd"] if len(ops) else ops
    return PartCount(
        ops=ops, params=n_params, param_bytes=float(n_params * size),
        param_numels=tuple(p.numel() for p in params if p.requires_grad),
        saved_bytes=saved_bytes, input_saved=in_saved,
        input_bytes=float(x.numel() * x.element_size()), output_saved=out_saved,
        output_bytes=probe.output_bytes, macs=c.total().macs, acts=c.acts,
        max_op_bytes=float(written.max()), fwd_macs=fwd["macs"].sum() if len(ops) else 0.0,
        fwd_acts=fwd["acts"].sum() if len(ops) else 0.0,
        all_flops=float(ops["flops"].sum()) if len(ops) else 0.0,
    )


def _analytic(part: Part, batch: int, dtype: str, train: bool) -> PartCount | None:
    from perfmodel.predict.analytic import analytic_part

    a = analytic_part(part, batch, dtype, train)
    if a is None:
        return None
    size = _SIZE[dtype]
    params = a.params
    rows = a.rows
    x_bytes = float(batch * _prod(part.input_shape) * (8 if part.input_kind == "long" else size))
    return PartCount(
        ops=None, rows=rows.rows, params=sum(params), param_bytes=float(sum(params) * size),
        param_numels=params, saved_bytes=float(a.saved), input_saved=a.input_saved and train,
        input_bytes=x_bytes, output_saved=a.output_saved and train,
        output_bytes=float(a.output_numel * size), macs=rows.total("macs"),
        acts=int(rows.total("acts")), max_op_bytes=max(r["bytes_written"] for r in rows.rows),
        fwd_macs=rows.total("macs", "fwd"), fwd_acts=rows.total("acts", "fwd"),
        all_flops=rows.total("flops"))


_SIZE = {"float64": 8, "float32": 4, "tf32": 4, "float16": 2, "bfloat16": 2}


def _prod(shape) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n


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
