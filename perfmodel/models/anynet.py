"""AnyNet (pycls): stem, stages of residual blocks, head. ResNet, ResNeXt and RegNet are
AnyNets. Every module carries a static `complexity(cx, ...)` next to its definition.

Block constructors share one signature, `(w_in, w_out, stride, bot_mul, group_w, se_r,
act)`; the basic blocks ignore `bot_mul`, `group_w` and `se_r`, as pycls does. RegNetX and
RegNetY differ only in `se_r` (0 = no SE; Y uses 0.25 of the block's input width).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from perfmodel.errors import PerfmodelError
from perfmodel.models.complexity import (
    Complexity, conv2d_cx, gap2d_cx, linear_cx, norm2d_cx, pool2d_cx,
)
from perfmodel.models.layers import SE, Chain, ConvBnAct, activation, conv2d, norm2d


class ResStem(ConvBnAct):
    """ResNet stem for ImageNet: 7x7/2 conv, BN, act, 3x3/2 max-pool (`res_stem_in`)."""

    kernel, stride = 7, 2

    def __init__(self, w_in: int, w_out: int, act: str = "relu"):
        super().__init__(w_in, w_out, act)
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)

    def forward(self, x):
        return self.pool(super().forward(x))

    @classmethod
    def complexity(cls, cx: Complexity, w_in: int, w_out: int) -> Complexity:
        return pool2d_cx(super().complexity(cx, w_in, w_out), w_out, 3, stride=2)


class SimpleStem(ConvBnAct):
    """Simple stem for ImageNet: 3x3/2 conv, BN, act (`simple_stem_in`)."""

    kernel, stride = 3, 2


class ResStemCifar(ConvBnAct):
    """ResNet stem for CIFAR: 3x3 conv, BN, act (`res_stem_cifar`)."""

    kernel, stride = 3, 1


class _Projection(nn.Module):
    """1x1 strided conv + BN on the shortcut when the shape changes."""

    def __init__(self, w_in: int, w_out: int, stride: int):
        super().__init__()
        self.conv = conv2d(w_in, w_out, 1, stride=stride)
        self.bn = norm2d(w_out)

    def forward(self, x):
        return self.bn(self.conv(x))

    @staticmethod
    def complexity(cx: Complexity, w_in: int, w_out: int, stride: int) -> Complexity:
        h, w = cx.h, cx.w
        cx = norm2d_cx(conv2d_cx(cx, w_in, w_out, 1, stride=stride), w_out)
        return cx.add(h=h, w=w)  # parallel branch: the spatial size comes from f(x)


def _needs_proj(w_in: int, w_out: int, stride: int) -> bool:
    return w_in != w_out or stride != 1


class VanillaBlock(nn.Module):
    """Vanilla block: [3x3 conv, BN, act] x 2, no shortcut."""

    def __init__(self, w_in, w_out, stride=1, bot_mul=None, group_w=None, se_r=0.0,
                 act="relu"):
        super().__init__()
        self.a = conv2d(w_in, w_out, 3, stride=stride)
        self.a_bn = norm2d(w_out)
        self.a_af = activation(act)
        self.b = conv2d(w_out, w_out, 3)
        self.b_bn = norm2d(w_out)
        self.b_af = activation(act)

    def forward(self, x):
        x = self.a_af(self.a_bn(self.a(x)))
        return self.b_af(self.b_bn(self.b(x)))

    @staticmethod
    def complexity(cx, w_in, w_out, stride=1, bot_mul=None, group_w=None, se_r=0.0):
        cx = norm2d_cx(conv2d_cx(cx, w_in, w_out, 3, stride=stride), w_out)
        return norm2d_cx(conv2d_cx(cx, w_out, w_out, 3), w_out)


class ResBasicBlock(nn.Module):
    """Residual basic block: act(proj(x) + [3x3, BN, act, 3x3, BN](x)) (`res_basic_block`)."""

    def __init__(self, w_in, w_out, stride=1, bot_mul=None, group_w=None, se_r=0.0,
                 act="relu"):
        super().__init__()
        self.proj = _Projection(w_in, w_out, stride) if _needs_proj(w_in, w_out, stride) else None
        self.a = conv2d(w_in, w_out, 3, stride=stride)
        self.a_bn = norm2d(w_out)
        self.a_af = activation(act)
        self.b = conv2d(w_out, w_out, 3)
        self.b_bn = norm2d(w_out)
        self.af = activation(act)

    def forward(self, x):
        x_p = self.proj(x) if self.proj is not None else x
        f = self.b_bn(self.b(self.a_af(self.a_bn(self.a(x)))))
        return self.af(x_p + f)

    @staticmethod
    def complexity(cx, w_in, w_out, stride=1, bot_mul=None, group_w=None, se_r=0.0):
        if _needs_proj(w_in, w_out, stride):
            cx = _Projection.complexity(cx, w_in, w_out, stride)
        cx = norm2d_cx(conv2d_cx(cx, w_in, w_out, 3, stride=stride), w_out)
        return norm2d_cx(conv2d_cx(cx, w_out, w_out, 3), w_out)


def bottleneck_dims(w_in: int, w_out: int, bot_mul: float, group_w: int,
                    se_r: float) -> tuple[int, int, int]:
    """(bottleneck width, number of groups, SE width) as pycls computes them."""
    w_b = int(round(w_out * bot_mul))
    w_se = int(round(w_in * se_r)) if se_r else 0
    if group_w <= 0 or w_b % group_w:
        raise PerfmodelError(
            f"bottleneck width {w_b} is not a multiple of group width {group_w}"
        )
    return w_b, w_b // group_w, w_se


class ResBottleneckBlock(nn.Module):
    """Residual bottleneck block: act(proj(x) + [1x1, 3x3 grouped, (SE), 1x1](x)).

    `w_b = round(w_out * bot_mul)`, groups `= w_b // group_w`, SE width
    `= round(w_in * se_r)` (relative to the block *input* width, as pycls does).
    """

    def __init__(self, w_in, w_out, stride=1, bot_mul=1.0, group_w=1, se_r=0.0,
                 act="relu"):
        super().__init__()
        w_b, groups, w_se = bottleneck_dims(w_in, w_out, bot_mul or 1.0, group_w or 1, se_r)
        self.proj = _Projection(w_in, w_out, stride) if _needs_proj(w_in, w_out, stride) else None
        self.a = conv2d(w_in, w_b, 1)
        self.a_bn = norm2d(w_b)
        self.a_af = activation(act)
        self.b = conv2d(w_b, w_b, 3, stride=stride, groups=groups)
        self.b_bn = norm2d(w_b)
        self.b_af = activation(act)
        self.se = SE(w_b, w_se, act) if w_se else None
        self.c = conv2d(w_b, w_out, 1)
        self.c_bn = norm2d(w_out)
        self.af = activation(act)

    def forward(self, x):
        x_p = self.proj(x) if self.proj is not None else x
        f = self.a_af(self.a_bn(self.a(x)))
        f = self.b_af(self.b_bn(self.b(f)))
        if self.se is not None:
            f = self.se(f)
        f = self.c_bn(self.c(f))
        return self.af(x_p + f)

    @staticmethod
    def complexity(cx, w_in, w_out, stride=1, bot_mul=1.0, group_w=1, se_r=0.0):
        w_b, groups, w_se = bottleneck_dims(w_in, w_out, bot_mul or 1.0, group_w or 1, se_r)
        if _needs_proj(w_in, w_out, stride):
            cx = _Projection.complexity(cx, w_in, w_out, stride)
        cx = norm2d_cx(conv2d_cx(cx, w_in, w_b, 1), w_b)
        cx = norm2d_cx(conv2d_cx(cx, w_b, w_b, 3, stride=stride, groups=groups), w_b)
        if w_se:
            cx = SE.complexity(cx, w_b, w_se)
        return norm2d_cx(conv2d_cx(cx, w_b, w_out, 1), w_out)


class AnyHead(nn.Module):
    """Head: optional 1x1 conv to `head_w` (BN, act), global average pool, linear."""

    def __init__(self, w_in: int, head_w: int, num_classes: int, act: str = "relu"):
        super().__init__()
        self.conv = None
        if head_w > 0:
            self.conv = nn.Sequential(conv2d(w_in, head_w, 1), norm2d(head_w), activation(act))
            w_in = head_w
        self.avg_pool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(w_in, num_classes, bias=True)

    def forward(self, x):
        if self.conv is not None:
            x = self.conv(x)
        return self.fc(torch.flatten(self.avg_pool(x), 1))

    @staticmethod
    def complexity(cx: Complexity, w_in: int, head_w: int, num_classes: int) -> Complexity:
        if head_w > 0:
            cx = norm2d_cx(conv2d_cx(cx, w_in, head_w, 1), head_w)
            w_in = head_w
        cx = gap2d_cx(cx, w_in)
        return linear_cx(cx, w_in, num_classes, bias=True)


STEMS = {"res_stem_in": ResStem, "simple_stem_in": SimpleStem, "res_stem_cifar": ResStemCifar}
BLOCKS = {
    "vanilla_block": VanillaBlock,
    "res_basic_block": ResBasicBlock,
    "res_bottleneck_block": ResBottleneckBlock,
}


def _lookup(table: dict, kind: str, what: str):
    try:
        return table[kind]
    except KeyError:
        raise PerfmodelError(f"unknown {what} {kind!r}; known: {', '.join(table)}") from None


@dataclass(frozen=True)
class AnyNetParams:
    """Per-stage description of an AnyNet (pycls's ANYNET config, typed)."""

    depths: tuple[int, ...]
    widths: tuple[int, ...]
    strides: tuple[int, ...]
    bot_muls: tuple[float, ...] | None = None
    group_ws: tuple[int, ...] | None = None
    stem_type: str = "simple_stem_in"
    stem_w: int = 32
    block_type: str = "res_bottleneck_block"
    head_w: int = 0
    se_r: float = 0.0
    num_classes: int = 1000
    activation: str = "relu"
    resolution: int = 224
    name: str = field(default="anynet", compare=False)

    def __post_init__(self):
        n = len(self.depths)
        for key in ("widths", "strides", "bot_muls", "group_ws"):
            value = getattr(self, key)
            if value is not None and len(value) != n:
                raise PerfmodelError(f"{key} has {len(value)} entries, depths has {n}")
        _lookup(STEMS, self.stem_type, "stem type")
        _lookup(BLOCKS, self.block_type, "block type")
        if self.resolution <= 0 or min(self.depths, default=1) <= 0:
            raise PerfmodelError("depths and resolution must be positive")

    def stages(self):
        """(depth, width, stride, bot_mul, group_w) per stage."""
        n = len(self.depths)
        bms = self.bot_muls or (None,) * n
        gws = self.group_ws or (None,) * n
        return list(zip(self.depths, self.widths, self.strides, bms, gws))

    @property
    def input_size(self) -> tuple[int, int, int]:
        return (3, self.resolution, self.resolution)


class AnyStage(Chain):
    """A sequence of blocks; the first one takes the stride and the width change."""

    def __init__(self, w_in, w_out, stride, depth, block, bot_mul, group_w, se_r, act):
        super().__init__()
        for i in range(depth):
            self.add_module(f"b{i + 1}", block(w_in, w_out, stride, bot_mul, group_w, se_r, act))
            stride, w_in = 1, w_out

    @staticmethod
    def complexity(cx, w_in, w_out, stride, depth, block, bot_mul, group_w, se_r):
        for _ in range(depth):
            cx = block.complexity(cx, w_in, w_out, stride, bot_mul, group_w, se_r)
            stride, w_in = 1, w_out
        return cx


class AnyNet(Chain):
    """An AnyNet built from `AnyNetParams`; `input_size` is (3, R, R)."""

    def __init__(self, p: AnyNetParams):
        super().__init__()
        self.params = p
        self.input_size = p.input_size
        block = _lookup(BLOCKS, p.block_type, "block type")
        self.stem = _lookup(STEMS, p.stem_type, "stem type")(3, p.stem_w, p.activation)
        w_prev = p.stem_w
        for i, (d, w, s, bm, gw) in enumerate(p.stages()):
            self.add_module(f"s{i + 1}", AnyStage(w_prev, w, s, d, block, bm, gw, p.se_r,
                                                  p.activation))
            w_prev = w
        self.head = AnyHead(w_prev, p.head_w, p.num_classes, p.activation)

    @staticmethod
    def complexity(p: AnyNetParams, resolution: int | None = None) -> Complexity:
        r = resolution or p.resolution
        block = _lookup(BLOCKS, p.block_type, "block type")
        cx = _lookup(STEMS, p.stem_type, "stem type").complexity(Complexity(r, r), 3, p.stem_w)
        w_prev = p.stem_w
        for d, w, s, bm, gw in p.stages():
            cx = AnyStage.complexity(cx, w_prev, w, s, d, block, bm, gw, p.se_r)
            w_prev = w
        return AnyHead.complexity(cx, w_prev, p.head_w, p.num_classes)
