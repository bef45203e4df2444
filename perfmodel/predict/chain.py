"""A user's `nn.Module` as a chain of parts, found by running it once on the meta device.

A named model is split into parts by its family's decomposer (`parts.py`); a user's module
used to be one part, so none of its blocks could be matched with the profile's measured
blocks, nor take its measured neighbours' residuals (`neighbours.py`): RegNetX-400MF at 64
passed as a module was predicted +13.5 % (training) and -12.0 % (inference) against its
measured steps, the same network by name +0.4 % and -2.5 % (AMD profile, 2026-12-01).

`chain_parts` runs the module once on meta tensors, recording every module call and the
aten ops each call runs outside its children's calls. A module is a *chain* when its
children run one after the other, each once, each on the previous one's output (views
aside), the first on the module's input and the last giving its output, and the module
itself runs no op but views between them (`nn.Sequential`, pycls's stages, a stem of
conv, norm and activation, a head that flattens). Chains are opened recursively; what is
left - a residual block, an attention block, anything whose `forward` does its own
arithmetic - is a part, with the input shape it was called with. Where the whole module
is not a chain at all, or anything about its calls is unusual (tuple inputs, a long
tensor between parts, a module called twice, parameters shared between parts), the
module stays one part, as before.

Each part that is a composite module is then compared with perfmodel's own blocks
(`recognise`): the residual bottleneck block (ResNet, RegNetX/Y: the suite's `cnn` blocks)
and MBConv (EfficientNet). The candidate's arguments are read off the part's counted
convolutions, and the part is taken for that block only when the two run the same forward
ops and backward ops in a training step (op, FLOPs and bytes of every one; in-place
flags and module names aside) and hold the same number of parameters. A recognised part is then priced as that block: its
measured time where the profile timed one of that shape, its neighbours' residual
otherwise. Ops are compared as counted, so a block with an extra op anywhere (a
different activation, a bias, a dropout in training) is not recognised and stays a sum
of its own ops.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from perfmodel.predict.parts import Part

# aten ops that only re-describe a tensor: allowed between a chain's children
VIEW_OPS = frozenset({
    "view", "_unsafe_view", "reshape", "flatten", "t", "transpose", "permute", "expand",
    "squeeze", "unsqueeze", "alias", "detach", "as_strided", "contiguous", "clone",
    "_reshape_alias", "unflatten", "select", "slice", "split", "chunk", "lift_fresh",
})
TRACE_BATCH = 2  # the batch the trace runs (parts' inputs must keep it as dimension 0)


@dataclass
class _Call:
    """One module call of the trace."""

    module: nn.Module
    inp: torch.Tensor | None = None  # its one tensor argument (None: anything else)
    out: torch.Tensor | None = None  # its one tensor result
    children: list = field(default_factory=list)
    direct: list = field(default_factory=list)  # aten ops run here, outside its children


class _Ops(TorchDispatchMode):
    """Attributes every aten op to the innermost module call running."""

    def __init__(self, stack: list):
        super().__init__()
        self.stack = stack

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if self.stack:
            self.stack[-1].direct.append(func.overloadpacket.__name__)
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


def _trace(model: nn.Module, x: torch.Tensor) -> _Call | None:
    """The call tree of `model(x)` on meta copies of its state, or None if it fails."""
    mods = {id(m) for m in model.modules()}
    stack: list[_Call] = []
    top: list[_Call] = []

    def pre(mod, args, kwargs):
        if id(mod) not in mods:
            return
        call = _Call(mod)
        if len(args) == 1 and not kwargs and isinstance(args[0], torch.Tensor):
            call.inp = args[0]
        (stack[-1].children if stack else top).append(call)
        stack.append(call)

    def post(mod, args, kwargs, out):
        if id(mod) not in mods or not stack or stack[-1].module is not mod:
            return
        stack.pop().out = out if isinstance(out, torch.Tensor) else None

    state = {n: torch.empty(t.shape, dtype=t.dtype, device="meta")
             for n, t in list(model.named_parameters()) + list(model.named_buffers())}
    hooks = [nn.modules.module.register_module_forward_pre_hook(
        lambda m, a: pre(m, a, {})),
        nn.modules.module.register_module_forward_hook(lambda m, a, o: post(m, a, {}, o))]
    was = model.training
    try:
        model.eval()
        with torch.no_grad(), torch.device("meta"), _Ops(stack):
            torch.func.functional_call(model, state, (x,))
    except Exception:  # noqa: BLE001  (a model the trace cannot run stays one part)
        return None
    finally:
        model.train(was)
        for h in hooks:
            h.remove()
    return top[0] if len(top) == 1 and top[0].module is model else None


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


def _leaves(call: _Call) -> list[_Call]:
    """The calls a chain opens into; a chain of plain layers only (a conv, norm and
    activation `nn.Sequential`) stays one part, and so does a module that may be one of
    perfmodel's blocks (an MBConv without its skip is a chain too)."""
    if _block_like(call.module):
        return [call]
    if _is_chain(call) and any(any(k.module.children()) for k in call.children):
        return [leaf for k in call.children for leaf in _leaves(k)]
    return [call]


def _block_like(module: nn.Module) -> bool:
    """Whether `module` may be a block `recognise` knows: one spatial convolution (its
    3x3 or depthwise one) among two or more."""
    convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
    return len(convs) >= 2 and sum(max(m.kernel_size) > 1 for m in convs) == 1


def _signature(module: nn.Module) -> str:
    """What decides a module's cost besides its input: its printed structure and every
    plain attribute of it and its submodules (strides, flags a `forward` may read)."""
    plain = (int, float, bool, str, type(None))
    attrs = []
    for name, m in module.named_modules():
        for k, v in sorted(vars(m).items()):
            if k.startswith("_") or k == "training":
                continue
            if isinstance(v, plain) or (isinstance(v, tuple) and all(isinstance(e, plain) for e in v)):
                attrs.append((name, k, v))
    text = f"{type(module).__module__}.{type(module).__qualname__}|{module!r}|{attrs!r}"
    return hashlib.sha1(text.encode()).hexdigest()


def chain_parts(model: nn.Module, input_shape: tuple, input_kind: str, high: int) -> list[Part] | None:
    """The parts of `model` (module doc), or None where it is not a chain of parts."""
    if input_kind == "long":
        x = torch.zeros((TRACE_BATCH,) + tuple(input_shape), dtype=torch.long, device="meta")
    else:
        x = torch.empty((TRACE_BATCH,) + tuple(input_shape), device="meta")
    root = _trace(model, x)
    if root is None or not _is_chain(root):
        return None
    groups: list[list[_Call]] = []
    leaves = _leaves(root)
    if leaves == [root]:
        return None
    for call in leaves:
        # a module that writes into its input (ReLU(inplace=True)) joins the part before
        # it: alone, its input would be a leaf that needs a gradient, which autograd
        # cannot modify in place
        if (groups and _root(call.out) is _root(call.inp)
                and call.inp is groups[-1][-1].out):
            groups[-1].append(call)
        else:
            groups.append([call])
    names = {id(m): n for n, m in model.named_modules()}
    seen_params: set[int] = set()
    parts, grad = [], False
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
        parts.append(Part(path, key, build, shape[1:], kind, grad,
                          high if kind == "long" else 1, group=type(mods[0]).__name__))
        grad = grad or any(p.requires_grad for m in mods for p in m.parameters())
    return [recognise(p) for p in parts]


def recognise(part: Part) -> Part:
    """`part` as perfmodel's own block where it runs exactly that block's forward ops
    (module doc), else `part` unchanged."""
    module = part.build()
    if part.input_kind != "float" or len(part.input_shape) != 3 or not any(module.children()):
        return part
    from perfmodel.predict.counts import count_part

    try:
        # a training step at batch 2: ops that only training runs (dropout, stochastic
        # depth) are compared too, and batch norm has two values per channel
        mine = count_part(part, 2, "float32", True, fast=False)
    except Exception:  # noqa: BLE001  (counted again, and reported, by the prediction)
        return part
    want = _fingerprint(mine)
    for candidate in _candidates(part, mine.ops):
        try:
            theirs = count_part(candidate, 2, "float32", True)
        except Exception:  # noqa: BLE001  (arguments no block of ours takes)
            continue
        if theirs.params == mine.params and _fingerprint(theirs) == want:
            return candidate
    return part


def _fingerprint(c) -> list:
    ops = c.ops
    if not len(ops):
        return []
    return sorted(zip(ops["op"].astype(str), ops["phase"].astype(str),
                      ops["flops"].round().astype(int), ops["bytes"].round().astype(int)))


def _candidates(part: Part, ops) -> list[Part]:
    """perfmodel blocks with the arguments `ops` (the part's counted forward ops) imply."""
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
    out = []
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
