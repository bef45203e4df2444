"""EfficientNet as in pycls (`EN-B0`..`EN-B5`): MBConv stages with SE, silu."""
from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from perfmodel.errors import PerfmodelError
from perfmodel.models.anynet import AnyHead, SimpleStem
from perfmodel.models.complexity import Complexity, conv2d_cx, norm2d_cx
from perfmodel.models.layers import SE, Chain, activation, conv2d, norm2d


class MBConv(nn.Module):
    """Mobile inverted bottleneck: [1x1 expand], kxk depthwise, SE, 1x1 project, skip.

    Expanded width `int(w_in * exp_r)` (no expansion conv when it equals `w_in`);
    SE width `int(w_in * se_r)`; skip when stride is 1 and `w_in == w_out`.
    """

    def __init__(self, w_in: int, exp_r: float, k: int, stride: int, se_r: float,
                 w_out: int, act: str = "silu"):
        super().__init__()
        w_exp = int(w_in * exp_r)
        self.exp = None
        if w_exp != w_in:
            self.exp = nn.Sequential(conv2d(w_in, w_exp, 1), norm2d(w_exp), activation(act))
        self.dwise = conv2d(w_exp, w_exp, k, stride=stride, groups=w_exp)
        self.dwise_bn = norm2d(w_exp)
        self.dwise_af = activation(act)
        self.se = SE(w_exp, int(w_in * se_r), act)
        self.lin_proj = conv2d(w_exp, w_out, 1)
        self.lin_proj_bn = norm2d(w_out)
        self.has_skip = stride == 1 and w_in == w_out

    def forward(self, x):
        f = self.exp(x) if self.exp is not None else x
        f = self.dwise_af(self.dwise_bn(self.dwise(f)))
        f = self.lin_proj_bn(self.lin_proj(self.se(f)))
        return x + f if self.has_skip else f

    @staticmethod
    def complexity(cx: Complexity, w_in: int, exp_r: float, k: int, stride: int,
                   se_r: float, w_out: int) -> Complexity:
        w_exp = int(w_in * exp_r)
        if w_exp != w_in:
            cx = norm2d_cx(conv2d_cx(cx, w_in, w_exp, 1), w_exp)
        cx = norm2d_cx(conv2d_cx(cx, w_exp, w_exp, k, stride=stride, groups=w_exp), w_exp)
        cx = SE.complexity(cx, w_exp, int(w_in * se_r))
        return norm2d_cx(conv2d_cx(cx, w_exp, w_out, 1), w_out)


class EffStem(SimpleStem):
    """3x3/2 conv, BN, act (pycls's simple stem)."""


class EffHead(AnyHead):
    """1x1 conv to `head_w`, BN, act, global average pool, linear (the AnyNet head)."""


@dataclass(frozen=True)
class EffNetParams:
    """An EfficientNet (pycls's EN config, typed)."""

    depths: tuple[int, ...]
    widths: tuple[int, ...]
    strides: tuple[int, ...]
    exp_ratios: tuple[float, ...]
    kernels: tuple[int, ...]
    stem_w: int = 32
    head_w: int = 1280
    se_r: float = 0.25
    num_classes: int = 1000
    activation: str = "silu"
    resolution: int = 224
    name: str = field(default="effnet", compare=False)

    def __post_init__(self):
        n = len(self.depths)
        for key in ("widths", "strides", "exp_ratios", "kernels"):
            if len(getattr(self, key)) != n:
                raise PerfmodelError(f"{key} has {len(getattr(self, key))} entries, depths has {n}")

    def stages(self):
        """(depth, width, exp_ratio, stride, kernel) per stage."""
        return list(zip(self.depths, self.widths, self.exp_ratios, self.strides, self.kernels))

    @property
    def input_size(self) -> tuple[int, int, int]:
        return (3, self.resolution, self.resolution)


class EffStage(Chain):
    """`d` MBConv blocks; the first takes the stride and width change."""

    def __init__(self, w_in, exp_r, k, stride, se_r, w_out, d, act):
        super().__init__()
        for i in range(d):
            self.add_module(f"b{i + 1}", MBConv(w_in, exp_r, k, stride, se_r, w_out, act))
            stride, w_in = 1, w_out

    @staticmethod
    def complexity(cx, w_in, exp_r, k, stride, se_r, w_out, d):
        for _ in range(d):
            cx = MBConv.complexity(cx, w_in, exp_r, k, stride, se_r, w_out)
            stride, w_in = 1, w_out
        return cx


class EffNet(Chain):
    """An EfficientNet built from `EffNetParams`; `input_size` is (3, R, R)."""

    def __init__(self, p: EffNetParams):
        super().__init__()
        self.params = p
        self.input_size = p.input_size
        self.stem = EffStem(3, p.stem_w, p.activation)
        w_prev = p.stem_w
        for i, (d, w, e, s, k) in enumerate(p.stages()):
            self.add_module(f"s{i + 1}", EffStage(w_prev, e, k, s, p.se_r, w, d, p.activation))
            w_prev = w
        self.head = EffHead(w_prev, p.head_w, p.num_classes, p.activation)

    @staticmethod
    def complexity(p: EffNetParams, resolution: int | None = None) -> Complexity:
        r = resolution or p.resolution
        cx = EffStem.complexity(Complexity(r, r), 3, p.stem_w)
        w_prev = p.stem_w
        for d, w, e, s, k in p.stages():
            cx = EffStage.complexity(cx, w_prev, e, k, s, p.se_r, w, d)
            w_prev = w
        return EffHead.complexity(cx, w_prev, p.head_w, p.num_classes)
