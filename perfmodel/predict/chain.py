"""A user's `nn.Module` as a chain of parts, found by running it once on the meta device.

A named model is split into parts by its family's decomposer (`parts.py`); a user's module
used to be one part, so none of its blocks could be matched with the profile's measured
blocks, nor take its measured neighbours' residuals (`neighbours.py`): RegNetX-400MF at 64
passed as a module was predicted +13.5 % (training) and -12.0 % (inference) against its
measured steps, the same network by name +0.4 % and -2.5 % (AMD profile, 2026-12-01).

`chain_parts` runs the module once on meta tensors, in the mode predicted (training or
eval) with autograd on, recording every module call (its hooks see keyword arguments) and
the aten ops each call runs outside its children's calls. A module is a *chain* when its
children run one after the other, each once, each on the previous one's output (views
aside), the first on the module's input and the last giving its output, each with one
tensor argument and no keywords, and the module itself runs no op but views between them
(`nn.Sequential`, pycls's stages, a head that flattens). Chains are opened recursively;
what is left - a residual block, an attention block, anything whose `forward` does its own
arithmetic, a plain conv-norm-activation `Sequential` - is a part, with the input shape it
was called with and whether autograd wanted its input's gradient. A module that writes
into its input or returns a view of it (`ReLU(inplace=True)`, `Flatten`) joins the part
before it.

`split_module` then checks the split against the module counted whole (one part, as
before): the parts' op rows (every counted column but the module name and the in-place
flag), forward and backward, and their parameters must be the whole module's, else the
module stays one part. So a training-only branch, a `no_grad` section, a keyword that
changes what a child does, an unused layer, a checkpointed segment or a user's hook can
cost a split, never an op.

Each part that may be a block (`_block_like`) is then compared with perfmodel's own blocks
(`recognise`): the residual bottleneck block (ResNet, RegNetX/Y: the suite's `cnn` blocks)
and MBConv (EfficientNet). The candidate's arguments are read off the part's counted
convolutions, and the part is taken for that block only when the two run the same op rows
at the batch, dtype and phase predicted (the forward ones in the same order) and hold the
same number of parameters. A recognised part is then priced as that block: its measured
time where the profile timed one of that shape, its neighbours' residual otherwise. A
block with anything else (another activation, a bias, a dilation, a dropout in training)
is not recognised and stays a sum of its own ops. In-place flags are not compared: a
torchvision-style block (`ReLU(inplace=True)`) is priced as perfmodel's, whose
activations run out of place; on the AMD profile that is within 2 % of a RegNet (session
13: its ReLUs switched in place, predicted x0.979, measured x1.007).

Not under `torch.compile` (`compiled=True`): fusing each part alone would cut the fused
runs at the parts' edges, and compiled predictions take no measured block anyway.
"""
from __future__ import annotations

import hashlib
import itertools
import math
import weakref
from collections import Counter
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from perfmodel.predict.parts import Part

# aten ops that only re-describe a tensor: allowed between a chain's children
VIEW_OPS = frozenset({
    "view", "_unsafe_view", "reshape", "flatten", "t", "transpose", "permute", "expand",
    "squeeze", "unsqueeze", "alias", "as_strided", "_reshape_alias", "unflatten", "select",
    "slice", "lift_fresh",
})
TRACE_BATCH = 3  # the batch the trace runs (an unusual size: dimension 0 of every part)
# the columns of a counted op row that decide its cost (`_rows`)
# between a user's block and perfmodel's (counted in closed form, `analytic.py`): the
# in-place flag aside (module doc)
ROW_COLUMNS = ("op", "phase", "direction", "dtype", "bias", "batch", "c_in", "h", "w",
               "c_out", "kernel_h", "kernel_w", "stride", "padding", "dilation", "groups",
               "numel", "channels", "affine", "features", "out_numel", "read_numel", "inputs",
               "training", "grad_input", "grad_weight", "m", "n", "k", "b", "flops", "bytes")


@dataclass
class _Call:
    """One module call of the trace."""

    module: nn.Module
    inp: torch.Tensor | None = None  # its one tensor argument (None: anything else)
    out: torch.Tensor | None = None  # its one tensor result
    children: list = field(default_factory=list)
    direct: list = field(default_factory=list)  # aten ops run here, outside its children


class _Ops(TorchDispatchMode):
    """Attributes every aten op to the innermost module call running (or to `outside`)."""

    def __init__(self, stack: list, outside: list):
        super().__init__()
        self.stack, self.outside = stack, outside

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        (self.stack[-1].direct if self.stack else self.outside).append(
            func.overloadpacket.__name__)
        return func(*args, **(kwargs or {}))


class _Run(nn.Module):
    """Modules run one after the other (a part of more than one call)."""

    def __init__(self, mods):
        super().__init__()
        self.mods = nn.ModuleList(mods)

    def forward(self, x):
        for m in self.mods:
            x = m(x)
        return x


def _root(t):
    """The tensor a view was taken of (a tensor itself otherwise)."""
    return t._base if isinstance(t, torch.Tensor) and t._base is not None else t


def _trace(model: nn.Module, x: torch.Tensor, train: bool) -> _Call | None:
    """The call tree of `model(x)` on meta copies of its state, in training (`train`) or
    eval mode, autograd on; None if it fails or runs ops outside the model's own call."""
    stack: list[_Call] = []
    top: list[_Call] = []
    outside: list[str] = []

    def pre(mod, args, kwargs):
        call = _Call(mod)
        if len(args) == 1 and not kwargs and isinstance(args[0], torch.Tensor):
            call.inp = args[0]
        (stack[-1].children if stack else top).append(call)
        stack.append(call)

    def post(mod, args, kwargs, out):
        if stack and stack[-1].module is mod:
            stack.pop().out = out if isinstance(out, torch.Tensor) else None

    state = {n: torch.empty(t.shape, dtype=t.dtype, device="meta",
                            requires_grad=isinstance(t, nn.Parameter) and t.requires_grad)
             for n, t in list(model.named_parameters()) + list(model.named_buffers())}
    modes = {m: m.training for m in model.modules()}
    # ours run first before a call and last after it: a user's hooks count as the module's
    hooks = [h for m in model.modules() for h in (
        m.register_forward_pre_hook(pre, prepend=True, with_kwargs=True),
        m.register_forward_hook(post, with_kwargs=True, always_call=True))]
    try:
        model.train(train)
        with torch.enable_grad(), torch.device("meta"), _Ops(stack, outside):
            torch.func.functional_call(model, state, (x,))
    except Exception:  # noqa: BLE001  (a model the trace cannot run stays one part)
        return None
    finally:
        for m, was in modes.items():
            m.training = was
        for h in hooks:
            h.remove()
    if len(top) != 1 or top[0].module is not model or outside:
        return None
    return top[0]


def _is_chain(call: _Call) -> bool:
    kids = call.children
    if not kids or call.inp is None or call.out is None:
        return False
    if any(k.inp is None or k.out is None for k in kids):
        return False
    if len({id(k.module) for k in kids}) != len(kids):
        return False
    if any(op not in VIEW_OPS for op in call.direct):
        return False
    if _root(kids[0].inp) is not _root(call.inp) or _root(call.out) is not _root(kids[-1].out):
        return False
    return all(_root(b.inp) is _root(a.out) for a, b in zip(kids, kids[1:]))


def _block_like(module: nn.Module) -> bool:
    """Whether `module` may be a block `recognise` knows: one spatial convolution (its
    3x3 or depthwise one) among two or more."""
    convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
    return len(convs) >= 2 and sum(max(m.kernel_size) > 1 for m in convs) == 1


def _leaves(call: _Call) -> list[_Call]:
    """The calls a chain opens into; a chain of plain layers only (a conv, norm and
    activation `nn.Sequential`) stays one part, and so does a module that may be one of
    perfmodel's blocks (an MBConv without its skip is a chain too)."""
    if _block_like(call.module):
        return [call]
    if _is_chain(call) and any(any(k.module.children()) for k in call.children):
        return [leaf for k in call.children for leaf in _leaves(k)]
    return [call]


_TOKENS: "weakref.WeakKeyDictionary[object, int]" = weakref.WeakKeyDictionary()
_SERIAL = itertools.count()


def module_token(obj) -> int:
    """A number for `obj` never given to another object in this process (an `id` is
    reused once its object is gone, and a count cached under it would be another's)."""
    try:
        if obj not in _TOKENS:
            _TOKENS[obj] = next(_SERIAL)
        return _TOKENS[obj]
    except TypeError:  # not weak-referenceable or not hashable: no count is shared
        return next(_SERIAL)


def _describe(v):
    """A plain attribute as text; a function or class by its qualified name; None for
    anything else (the signature then holds the object's identity)."""
    if isinstance(v, (int, float, bool, str, type(None))):
        return repr(v)
    if isinstance(v, (tuple, list)) and all(isinstance(e, (int, float, bool, str, type(None)))
                                            for e in v):
        return repr(v)
    name = getattr(v, "__qualname__", "") if callable(v) else ""
    if name and "<" not in name:  # a lambda or a closure has no name of its own
        return f"{getattr(v, '__module__', '')}.{name}"
    return None


def _signature(module: nn.Module) -> str:
    """What decides a module's cost besides its input: its class and printed structure,
    every plain attribute and function it holds (strides, flags, `self.act = F.gelu`), and
    its parameters' and buffers' shapes, dtypes and `requires_grad`. An attribute of any
    other kind (a config object, a dict, a lambda) makes that object's identity
    (`module_token`) part of it: no two modules then share a count."""
    items = []
    for name, m in module.named_modules():
        items.append((name, type(m).__module__, type(m).__qualname__))
        for k, v in sorted(vars(m).items()):
            if k in ("training",) or k.startswith("_"):
                continue
            d = _describe(v)
            items.append((name, k, d if d is not None else f"object{module_token(v)}"))
        items += [(name, n, tuple(p.shape), str(p.dtype), p.requires_grad)
                  for n, p in m.named_parameters(recurse=False)]
        items += [(name, n, tuple(b.shape), str(b.dtype))
                  for n, b in m.named_buffers(recurse=False)]
    text = f"{module!r}|{items!r}"
    return hashlib.sha1(text.encode()).hexdigest()


def chain_parts(model: nn.Module, input_shape: tuple, input_kind: str, high: int,
                train: bool = True) -> list[Part] | None:
    """The parts of `model` (module doc), not yet checked against the whole module
    (`split_module`), or None where it is not a chain of parts."""
    if input_kind == "long":
        x = torch.zeros((TRACE_BATCH,) + tuple(input_shape), dtype=torch.long, device="meta")
    else:
        x = torch.empty((TRACE_BATCH,) + tuple(input_shape), device="meta")
    root = _trace(model, x, train)
    if root is None or not _is_chain(root):
        return None
    leaves = _leaves(root)
    if leaves == [root]:
        return None
    groups: list[list[_Call]] = []
    for call in leaves:
        # a module that writes into its input (ReLU(inplace=True)) or returns a view of it
        # joins the part before it: alone, its input would be a leaf that needs a
        # gradient, which autograd cannot modify in place
        if groups and _root(call.out) is _root(call.inp):
            if call.inp is not groups[-1][-1].out:
                return None  # a view between the two: the joined part would not run it
            groups[-1].append(call)
        else:
            groups.append([call])
    names = {id(m): n for n, m in model.named_modules()}
    seen_params: set[int] = set()
    parts = []
    for i, group in enumerate(groups):
        first = group[0]
        shape = tuple(first.inp.shape)
        if not shape or shape[0] != TRACE_BATCH or (i and not first.inp.is_floating_point()):
            return None
        mods = [c.module for c in group]
        own = {id(p) for m in mods for p in m.parameters()}
        if own & seen_params:
            return None  # a tied weight: one part, as before
        seen_params |= own
        kind = input_kind if i == 0 else "float"
        path = "+".join(names.get(id(m), f"part{i}") for m in mods)
        key = ("module_part",) + tuple(_signature(m) for m in mods)
        build = (lambda m=mods[0]: m) if len(mods) == 1 else (lambda ms=tuple(mods): _Run(ms))
        parts.append(Part(path, key, build, shape[1:], kind, bool(first.inp.requires_grad),
                          high if kind == "long" else 1, group=type(mods[0]).__name__))
    return parts


def split_module(model: nn.Module, whole: Part, batch: int, dtype: str,
                 train: bool) -> list[Part] | None:
    """`model`'s parts (its blocks recognised, `recognise`) where they run exactly the op
    rows and hold exactly the parameters of `whole` (the model as one part) at this batch,
    dtype and phase; None otherwise (module doc)."""
    from perfmodel.predict.counts import count_part

    try:
        parts = chain_parts(model, whole.input_shape, whole.input_kind, whole.high, train)
        if not parts:
            return None
        ref = count_part(whole, batch, dtype, train)
        counts = [count_part(p, batch, dtype, train) for p in parts]  # as `prepare` will
    except Exception:  # noqa: BLE001  (the whole model, counted again, says what is wrong)
        return None
    if ref.params != sum(c.params for c in counts):
        return None
    if Counter(_rows(ref, None)) != Counter(r for c in counts for r in _rows(c, None)):
        return None
    return [recognise(p, c, batch, dtype, train) for p, c in zip(parts, counts)]


def _cell(v):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    if isinstance(v, float):
        return round(v, 6)
    return v if isinstance(v, (int, bool, str)) else str(v)


def _rows(c, columns=ROW_COLUMNS) -> list[tuple]:
    """A count's op rows as tuples of `columns` (None: every column but the module's name,
    as `(column, value)` pairs), in its order."""
    ops = c.ops
    if not len(ops):
        return []
    if columns is None:
        names = sorted(k for k in ops.columns if k != "module")
        cols = [ops[k].tolist() for k in names]
        return [tuple((k, v) for k, v in zip(names, map(_cell, row)) if v is not None)
                for row in zip(*cols)]
    cols = [ops[k].tolist() if k in ops.columns else [None] * len(ops) for k in columns]
    return [tuple(_cell(v) for v in row) for row in zip(*cols)]


def recognise(part: Part, mine, batch: int, dtype: str, train: bool) -> Part:
    """`part` as perfmodel's own block where it runs exactly that block's op rows (`mine`:
    its count at this batch, dtype and phase; the forward rows in the same order), else
    `part` unchanged."""
    from perfmodel.predict.counts import count_part

    if part.input_kind != "float" or len(part.input_shape) != 3 \
            or not _block_like(part.build()):
        return part
    want = _rows(mine)
    for candidate in _candidates(part, mine.ops):
        try:
            theirs = count_part(candidate, batch, dtype, train)
        except Exception:  # noqa: BLE001  (arguments no block of ours takes)
            continue
        have = _rows(theirs)
        if theirs.params == mine.params and Counter(have) == Counter(want) \
                and [r for r in have if r[1] == "fwd"] == [r for r in want if r[1] == "fwd"]:
            return candidate
    return part


def _candidates(part: Part, ops) -> list[Part]:
    """perfmodel blocks with the arguments `ops` (the part's counted ops) imply."""
    try:
        return _candidates_of(part, ops)
    except (TypeError, ValueError, KeyError):  # tuple strides, missing columns: none
        return []


def _candidates_of(part: Part, ops) -> list[Part]:
    from perfmodel.models.anynet import ResBottleneckBlock
    from perfmodel.models.effnet import MBConv

    if not len(ops) or "groups" not in ops.columns:
        return []
    fwd = ops[ops["phase"] == "fwd"]
    convs = fwd[fwd["op"] == "conv2d"]
    acts = set(fwd["op"].astype(str)) & {"relu", "silu"}
    if len(acts) != 1 or not len(convs):
        return []
    act = acts.pop()
    c_in, h = int(part.input_shape[0]), int(part.input_shape[1])
    if int(part.input_shape[2]) != h:
        return []
    conv = [tuple(int(v) for v in r) for r in
            convs[["c_in", "c_out", "kernel_h", "stride", "groups", "h"]].to_numpy()]
    se = [c for c in conv if c[5] == 1 and c[2] == 1]  # squeeze-excitation convs (1x1 maps)
    w_se = se[0][1] if se else 0
    spatial = [i for i, c in enumerate(conv) if c[2] > 1]
    if len(spatial) != 1:
        return []
    j = spatial[0]
    w_b, _, k, stride, groups, _ = conv[j]
    # the 1x1 convolution that reads the spatial one's output (after SE, if any)
    heads = [c for c in conv[j + 1:] if c[2] == 1 and c[0] == w_b and c[5] > 1]
    if not heads:
        return []
    w_out = heads[0][1]
    out = []
    if k == 3:
        args = (c_in, w_out, stride, w_b / w_out, w_b // groups, w_se / c_in, act)
        out.append(Part(part.path, ("res_bottleneck_block", args, h),
                        (lambda a=args: ResBottleneckBlock(*a)), part.input_shape,
                        input_grad=part.input_grad, group="res_bottleneck_block"))
    if groups == w_b:  # depthwise: MBConv
        args = (c_in, w_b / c_in, k, stride, w_se / c_in, w_out, act)
        out.append(Part(part.path, ("mbconv", args, h), (lambda a=args: MBConv(*a)),
                        part.input_shape, input_grad=part.input_grad, group="mbconv"))
    return out
