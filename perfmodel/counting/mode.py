"""The recording machinery: a dispatch mode that turns aten ops into `OpRecord`s.

- `CountingMode` (a `TorchDispatchMode`) sees every aten op below autograd, so
  `@`, `matmul`, `einsum` and `linear` arrive as their mm/bmm/addmm decompositions and
  backward ops arrive as they run. Per op it does one dict lookup to find the handler
  (cached per overload), reads shapes, and evaluates the cost formula.
- `ModuleTracker` keeps a stack of module paths with global forward (pre-)hooks, and
  logs the autograd sequence number at each push/pop so that a backward op is
  attributed to the module whose forward created its autograd node (the node's
  sequence number is bisected into that log): no per-tensor backward hooks.
- `FusedKernels` (a `TorchFunctionMode`) routes
  `torch.nn.functional.scaled_dot_product_attention` on meta tensors to the fused
  `_scaled_dot_product_flash_attention_for_cpu` kernel, which has meta and autograd
  support; on the meta device SDPA would otherwise take its math path and show up as
  bmm + softmax instead of one attention op (and a fused backward). With `gpu=True`
  (counting for a GPU) it also sends out-of-place `F.dropout` in training to
  `native_dropout`, the one fused kernel CUDA runs (and its fused backward), and
  `F.rms_norm` to one fused RMSNorm op (`fused_ops`); on the meta device, as on a CPU, dropout runs as
  bernoulli_ + div_ + mul (three passes over a float mask) and RMSNorm as about ten
  float32 pointwise and reduction passes.
"""
from __future__ import annotations

import functools

from bisect import bisect_right
from dataclasses import replace

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

from perfmodel.counting.aten_ops import plan
from perfmodel.counting.records import OpRecord
from perfmodel.dtypes import DTYPE_BYTES
from perfmodel.ops.registry import get_formula

_current_node = torch._C._current_autograd_node
_sequence_nr = torch._C._autograd._get_sequence_nr
_SDPA = F.scaled_dot_product_attention
_DROPOUT = F.dropout
_RMS_NORM = getattr(F, "rms_norm", None)
_FUSED_SDPA = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)

# Cost dtype for storage types the formulas do not know, by element size.
_SIZE_FALLBACK = {1: "int8", 2: "float16", 4: "float32", 8: "float64", 16: "float64"}


def _dtype_names(dtype: torch.dtype) -> tuple[str, str]:
    """(recorded name, name used for the byte count) of a torch dtype."""
    name = str(dtype).replace("torch.", "")
    if name in DTYPE_BYTES:
        return name, name
    return name, _SIZE_FALLBACK.get(torch.empty((), dtype=dtype, device="meta").element_size(), "float32")


class ModuleTracker:
    """Stack of module paths driven by global forward hooks, plus a sequence-number log."""

    def __init__(self, names: dict[int, str]):
        self.names = names  # id(module) -> dotted path
        self.stack = [""]
        self.seqs: list[int] = [_sequence_nr()]
        self.mods: list[str] = [""]
        self._handles = []

    def _pre(self, module, args):
        name = self.names.get(id(module))
        if name is not None:
            self.stack.append(name)
            self.seqs.append(_sequence_nr())
            self.mods.append(name)

    def _post(self, module, args, out):
        if self.names.get(id(module)) is not None and len(self.stack) > 1:
            self.stack.pop()
            self.seqs.append(_sequence_nr())
            self.mods.append(self.stack[-1])

    def current(self) -> str:
        return self.stack[-1]

    def module_of(self, node) -> str:
        """Module whose forward created autograd node `node`."""
        i = bisect_right(self.seqs, node._sequence_nr()) - 1
        return self.mods[i] if i >= 0 else ""

    def __enter__(self):
        reg = torch.nn.modules.module
        self._handles = [reg.register_module_forward_pre_hook(self._pre),
                         reg.register_module_forward_hook(self._post, always_call=True)]
        return self

    def __exit__(self, *exc):
        for h in self._handles:
            h.remove()
        self._handles = []
        return False


class CountingMode(TorchDispatchMode):
    """Records every aten op that does work as an `OpRecord`."""

    def __init__(self, tracker: ModuleTracker, *, tf32: bool = False, causal_flops: str = "full"):
        super().__init__()
        self.tracker = tracker
        self.records: list[OpRecord] = []
        self.recording = True
        self.tf32 = tf32
        self.causal_flops = causal_flops
        self._plans: dict = {}
        self._dtypes: dict = {}
        self._cacheable: dict = {}
        self._outputs: dict = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = self._run(func, args, kwargs)
        if not self.recording:
            return out
        try:
            handler = self._plans[func]
        except KeyError:
            handler = self._plans[func] = plan(func)
        if handler is None:
            return out
        spec = handler(args, kwargs, out)
        if spec is not None:
            self._record(func, spec, args)
        return out

    def _run(self, func, args, kwargs):
        """Execute `func` on meta, reusing the output metadata of an identical earlier call.

        Meta kernels of pointwise ops are Python reference implementations costing
        ~0.3 ms each; a transformer repeats the same op on the same shapes in every
        layer. A functional op (no mutation, no aliasing outputs) on inputs of equal
        shapes, strides and dtypes, with equal other arguments, has outputs of equal
        metadata, so those are rebuilt with `empty_strided` instead of re-running the
        kernel: exact, and only for this counting run.
        """
        cacheable = self._cacheable.get(func)
        if cacheable is None:
            cacheable = self._cacheable[func] = _is_functional(func)
        if not cacheable:
            return func(*args, **kwargs)
        try:
            key = (func, _key(args), _key(tuple(kwargs.items())) if kwargs else None)
        except _Unkeyable:
            return func(*args, **kwargs)
        meta = self._outputs.get(key)
        if meta is not None:
            return _rebuild(meta)
        out = func(*args, **kwargs)
        meta = _describe(out)
        if meta is not None:
            self._outputs[key] = meta
        return out

    def _record(self, func, spec, args) -> None:
        node = _current_node()
        if node is None:
            phase, module = "fwd", self.tracker.current()
        else:
            phase, module = "bwd", self.tracker.module_of(node)
        kind, params = spec.kind, spec.params
        tdt = spec.like.dtype
        names = self._dtypes.get(tdt)
        if names is None:
            names = self._dtypes[tdt] = _dtype_names(tdt)
        name, cost_dtype = names
        formula = get_formula(kind)
        if phase == "fwd" and "inplace" in formula.params and _writes_first_input(func):
            params["inplace"] = True  # relu_, add_ (x += y): no fresh output buffer
        if self.tf32 and name == "float32" and formula.tensor:
            name = "tf32"
        if kind == "attention" and self.causal_flops != "full":
            params["causal_flops"] = self.causal_flops
        cost = formula(phase=spec.direction, dtype=cost_dtype, **params)
        if phase == "bwd" and cost.acts:  # gradients are not activations
            cost = replace(cost, acts=0)
        shapes = tuple(_shape(a) for a in args
                       if isinstance(a, torch.Tensor) or (isinstance(a, (list, tuple)) and a
                                                          and isinstance(a[0], torch.Tensor)))
        self.records.append(OpRecord(kind, str(func), module, phase, name, shapes, params, cost,
                                     spec.direction))


def _shape(a):
    if isinstance(a, torch.Tensor):
        return tuple(a.shape)
    return tuple(tuple(t.shape) for t in a if isinstance(t, torch.Tensor))


class _Unkeyable(Exception):
    """An argument that cannot be part of a cache key."""


_SCALARS = (int, float, str, type(None), torch.dtype, torch.device, torch.memory_format,
            torch.layout)


def _key(args) -> tuple:
    out = []
    for a in args:
        if isinstance(a, torch.Tensor):
            if not a.is_meta or a.layout is not torch.strided:
                raise _Unkeyable
            out.append((a.shape, a.stride(), a.dtype, a.storage_offset()))
        elif isinstance(a, bool):
            out.append(("bool", a))
        elif isinstance(a, _SCALARS):
            out.append(a)
        elif isinstance(a, (tuple, list)):
            out.append(("seq", _key(a)))
        else:
            raise _Unkeyable
    return tuple(out)


@functools.lru_cache(maxsize=None)
def _writes_first_input(func) -> bool:
    """Whether `func` writes into its first argument (an in-place op: `relu_`, `add_`; an
    `out=` overload writes into its last)."""
    args = func._schema.arguments
    info = args[0].alias_info if args else None
    return bool(info is not None and info.is_write)


def _is_functional(func) -> bool:
    """Whether `func` mutates nothing and returns fresh tensors only."""
    schema = func._schema
    if schema.is_mutable or func.is_view or not schema.returns:
        return False
    return all(r.alias_info is None and str(r.type) == "Tensor" for r in schema.returns)


def _describe(out):
    if isinstance(out, torch.Tensor):
        return (out.shape, out.stride(), out.dtype) if out.is_meta else None
    if isinstance(out, tuple) and all(isinstance(t, torch.Tensor) and t.is_meta for t in out):
        return tuple((t.shape, t.stride(), t.dtype) for t in out)
    return None


def _rebuild(meta):
    if isinstance(meta[0], torch.Size):
        return torch.empty_strided(meta[0], meta[1], dtype=meta[2], device="meta")
    return tuple(torch.empty_strided(s, st, dtype=d, device="meta") for s, st, d in meta)


class FusedKernels(TorchFunctionMode):
    """Send 4-D SDPA calls on meta tensors to the fused flash kernel, and (`gpu`) dropout
    and RMSNorm to the fused kernels a GPU runs (see module doc)."""

    def __init__(self, gpu: bool = False):
        super().__init__()
        self.gpu = gpu

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is _SDPA and _FUSED_SDPA is not None:
            out = _fused_sdpa(*args, **kwargs)
            if out is not None:
                return out
        if self.gpu and func is _DROPOUT:
            out = _fused_dropout(*args, **kwargs)
            if out is not None:
                return out
        if self.gpu and func is _RMS_NORM:
            out = _fused_rms_norm(*args, **kwargs)
            if out is not None:
                return out
        return func(*args, **kwargs)


def _fused_rms_norm(input, normalized_shape, weight=None, eps=None):
    """One fused RMSNorm kernel (and one backward), as CUDA PyTorch, Transformer Engine and
    Apex run it, instead of the composite path's float32 pow / mean / rsqrt / mul passes
    (`perfmodel.counting.fused_ops`)."""
    from perfmodel.counting.fused_ops import fused_rms_norm

    if not input.is_meta or input.numel() == 0:
        return None
    shape = normalized_shape if isinstance(normalized_shape, (tuple, list)) \
        else [normalized_shape]
    return fused_rms_norm(input, shape, weight, eps)


def _fused_dropout(input, p=0.5, training=True, inplace=False):
    """`native_dropout` where CUDA would fuse (out of place, training, 0 < p < 1)."""
    if inplace or not training or not 0 < p < 1 or not input.is_meta or input.numel() == 0:
        return None
    return torch.native_dropout(input, p, True)[0]


def _fused_sdpa(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                enable_gqa=False):
    if not (query.dim() == key.dim() == value.dim() == 4 and query.is_meta):
        return None
    if query.shape[1] != key.shape[1] and not enable_gqa:
        return None  # let SDPA raise its own error
    return _FUSED_SDPA(query, key, value, dropout_p, is_causal, attn_mask=attn_mask, scale=scale)[0]
