"""Count any `nn.Module`: params, MACs, FLOPs, activations, bytes, and the op list.

    from perfmodel.counting import count_model
    c = count_model(model, (3, 224, 224))           # one sample's shape; batch=1
    c.params, c.macs, c.flops, c.acts, c.bytes
    c.ops.to_frame(); c.by_module(depth=2); c.by_kind()

The model runs on the meta device: its parameters and buffers are replaced (for the
call only, via `torch.func.functional_call`) by meta tensors of the requested dtype, so
a model of any size allocates nothing and the caller's model is left untouched.
Factory calls inside `forward` default to the meta device as well.

Conventions (pycls for MACs and acts, torch.utils.flop_counter for FLOPs):
- `macs`: multiply-adds of GEMMs, convolutions and attention matmuls, with one MAC per
  output element for a bias add (pycls); `flops = 2 * macs`. These are the FLOPs
  torch.utils.flop_counter counts (it ignores biases: on a bias-free model the two agree).
- `all_flops`: also the vector work (norms, softmax, activations, elementwise, pools).
- `acts`: output elements of convs, GEMMs/linears, attention and windowed pooling (pycls).
- `bytes`: memory traffic if every op reads its inputs and writes its outputs once.
- With `backward=True`, the backward pass is run on meta too (gradient of ones for
  every output), and every total covers forward + backward; `fwd` / `bwd` split them.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch
from torch import nn

from perfmodel.counting.mode import CountingMode, FusedKernels, ModuleTracker
from perfmodel.counting.records import OpList
from perfmodel.dtypes import canonical_dtype
from perfmodel.errors import PerfmodelError
from perfmodel.ops.attention import CAUSAL_FLOPS
from perfmodel.ops.cost import OpCost

_TORCH_DTYPES = {
    "float64": torch.float64, "float32": torch.float32, "tf32": torch.float32,
    "float16": torch.float16, "bfloat16": torch.bfloat16,
    "float8_e4m3fn": torch.float8_e4m3fn, "float8_e5m2": torch.float8_e5m2,
}


@dataclass(frozen=True)
class ModelCount:
    """Result of `count_model`: totals, the op list, and per-module / per-kind views."""

    model: str
    input_shapes: tuple
    dtype: str
    backward: bool
    params: int
    ops: OpList
    param_counts: tuple  # (parameter path, numel) of each unique parameter

    def total(self) -> OpCost:
        """Sum of every op's cost (its `flops` include vector ops)."""
        return self.ops.total()

    @property
    def fwd(self) -> OpCost:
        """Sum over forward ops."""
        return self.ops.filter(phase="fwd").total()

    @property
    def bwd(self) -> OpCost:
        """Sum over backward ops (zero unless counted with `backward=True`)."""
        return self.ops.filter(phase="bwd").total()

    @property
    def macs(self) -> int:
        """Multiply-adds of GEMM/conv/attention ops (+1 per bias output element)."""
        return int(round(self.total().macs))

    @property
    def flops(self) -> int:
        """2 x MACs: the FLOPs of the matmul-class ops."""
        return 2 * self.macs

    @property
    def all_flops(self) -> float:
        """FLOPs of every op, vector ops included."""
        return self.total().flops

    @property
    def acts(self) -> int:
        """pycls activations: output elements of conv, linear, attention, windowed pooling."""
        return int(self.total().acts)

    @property
    def bytes(self) -> float:
        """Bytes read + written by all ops."""
        return self.total().bytes

    def to_frame(self) -> pd.DataFrame:
        """One row per op (see `OpList.to_frame`)."""
        return self.ops.to_frame()

    def by_kind(self) -> pd.DataFrame:
        """Totals per (op kind, phase)."""
        return self.ops.by_kind()

    def by_module(self, depth: int | None = None) -> pd.DataFrame:
        """Totals per module path (each including its submodules), with a `params` column."""
        df = self.ops.by_module(depth)
        counts: dict[str, int] = {}
        for path, n in self.param_counts:
            parts = path.split(".")[:-1]
            for i in range(len(parts) + 1):
                key = ".".join(parts[:i])
                counts[key] = counts.get(key, 0) + n
        df.insert(3, "params", df["module"].map(counts).fillna(0).astype("int64"))
        return df

    def to_dict(self) -> dict:
        """The totals as plain numbers (JSON-friendly)."""
        return {"model": self.model, "input_shapes": [list(s) for s in self.input_shapes],
                "dtype": self.dtype, "backward": self.backward, "params": self.params,
                "macs": self.macs, "flops": self.flops, "all_flops": self.all_flops,
                "acts": self.acts, "bytes": self.bytes, "ops": len(self.ops)}

    def __str__(self) -> str:
        return (f"{self.model} {self.input_shapes} {self.dtype}: params {self.params:,}, "
                f"MACs {self.macs:,}, FLOPs {self.flops:,}, acts {self.acts:,}, "
                f"bytes {self.bytes:,.0f}, {len(self.ops)} ops")


def _meta_like(t: torch.Tensor, dtype: torch.dtype, requires_grad: bool = False) -> torch.Tensor:
    dt = dtype if t.is_floating_point() else t.dtype
    m = torch.empty(t.shape, dtype=dt, device="meta")
    return m.requires_grad_(requires_grad and m.is_floating_point())


def _to_meta(x, dtype):
    if isinstance(x, torch.Tensor):
        return _meta_like(x, dtype, x.requires_grad)
    if isinstance(x, (list, tuple)):
        return type(x)(_to_meta(y, dtype) for y in x)
    if isinstance(x, dict):
        return {k: _to_meta(v, dtype) for k, v in x.items()}
    return x


def _make_inputs(model, input_size, inputs, batch, tdtype):
    """Positional args and kwargs for the forward call, all on meta."""
    if inputs is not None:
        if isinstance(inputs, dict):
            return (), _to_meta(inputs, tdtype)
        if isinstance(inputs, torch.Tensor):
            inputs = (inputs,)
        return tuple(_to_meta(x, tdtype) for x in inputs), {}
    if input_size is None:
        input_size = getattr(model, "input_size", None)
    if input_size is None:
        raise PerfmodelError(f"{type(model).__name__}: give input_size or inputs "
                             f"(the model has no input_size attribute)")
    try:
        shape = (int(batch), *(int(s) for s in input_size))
    except (TypeError, ValueError):
        raise PerfmodelError(f"input_size must be a tuple of ints, got {input_size!r}") from None
    if min(shape) <= 0:
        raise PerfmodelError(f"input sizes must be positive, got batch {batch} and {input_size}")
    example = getattr(model, "example_input", None)
    if callable(example) and input_size == getattr(model, "input_size", None):
        return (_to_meta(example(batch, device="meta"), tdtype),), {}
    tokens = len(input_size) == 1 and any(isinstance(m, nn.Embedding) for m in model.modules())
    return (torch.zeros(shape, dtype=torch.long if tokens else tdtype, device="meta"),), {}


def _grad_roots(out) -> list[torch.Tensor]:
    leaves = torch.utils._pytree.tree_leaves(out)
    if not leaves and hasattr(out, "values"):  # dict-like outputs (e.g. ModelOutput)
        leaves = torch.utils._pytree.tree_leaves(dict(out))
    return [t for t in leaves if isinstance(t, torch.Tensor) and t.requires_grad]


def count_model(model: nn.Module, input_size: tuple | None = None, *, inputs=None,
                batch: int = 1, dtype="float32", backward: bool = False,
                causal_flops: str = "full", fused_kernels: bool = False) -> ModelCount:
    """Count `model` on one batch of `batch` samples of shape `input_size` (or `inputs`).

    `input_size` defaults to `model.input_size`; a 1-D size on a model with embeddings
    means token ids. `inputs` (a tensor, tuple of positional args, or dict of keyword
    args) gives example inputs instead: only their shapes, dtypes and `requires_grad`
    are used (an input that requires grad gets its gradient computed). Floating
    parameters, buffers and inputs are cast to `dtype` (`tf32` = float32 storage, GEMMs
    and convs recorded as tf32). `causal_flops` picks the causal-attention convention
    (`full`, `unmasked`, `half`; see `perfmodel.ops.attention`). `fused_kernels`: count
    dropout and RMSNorm as the fused kernels a GPU runs (`native_dropout`,
    `_fused_rms_norm`), not the CPU's composite ops.
    """
    if not isinstance(model, nn.Module):
        raise PerfmodelError(f"count_model needs a torch.nn.Module, got {type(model).__name__}")
    dt = canonical_dtype(dtype)
    if dt not in _TORCH_DTYPES:
        raise PerfmodelError(f"cannot count in {dt}; use one of {', '.join(_TORCH_DTYPES)}")
    if causal_flops not in CAUSAL_FLOPS:
        raise PerfmodelError(f"causal_flops must be one of {', '.join(CAUSAL_FLOPS)}")
    tdtype = _TORCH_DTYPES[dt]

    named_params = list(model.named_parameters())
    state = {n: _meta_like(p, tdtype, backward and p.requires_grad) for n, p in named_params}
    state.update({n: _meta_like(b, tdtype) for n, b in model.named_buffers()})
    args, kwargs = _make_inputs(model, input_size, inputs, batch, tdtype)
    names = {id(m): n for n, m in model.named_modules()}

    tracker = ModuleTracker(names)
    mode = CountingMode(tracker, tf32=(dt == "tf32"), causal_flops=causal_flops)
    try:
        with torch.device("meta"), tracker, FusedKernels(fused_kernels), mode:
            out = torch.func.functional_call(model, state, args, kwargs)
            if backward:
                roots = _grad_roots(out)
                if not roots:
                    raise PerfmodelError(f"{type(model).__name__}: no output requires grad, "
                                         f"nothing to run backward on")
                mode.recording = False
                grads = [torch.ones_like(t) for t in roots]
                mode.recording = True
                torch.autograd.backward(roots, grads)
    except PerfmodelError:
        raise
    except (RuntimeError, TypeError, ValueError, IndexError, NotImplementedError,
            ArithmeticError) as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise PerfmodelError(f"{type(model).__name__} failed on the meta device: {msg}") from e

    shapes = tuple(tuple(a.shape) for a in torch.utils._pytree.tree_leaves((args, kwargs))
                   if isinstance(a, torch.Tensor))
    return ModelCount(
        model=type(model).__name__, input_shapes=shapes, dtype=dt, backward=backward,
        params=sum(p.numel() for _, p in named_params), ops=OpList(tuple(mode.records)),
        param_counts=tuple((n, p.numel()) for n, p in named_params),
    )
