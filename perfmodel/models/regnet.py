"""RegNet design space (Radosavovic et al. 2020): per-block widths from a quantized
linear function, converted to an AnyNet.

`generate_regnet(wa, w0, wm, depth, q=8)`: continuous widths `u_j = w0 + wa * j`,
`k_j = round(log(u_j / w0) / log(wm))`, `w_j = round(w0 * wm**k_j / q) * q`; equal
consecutive widths form a stage. Group widths and bottleneck widths are then made
compatible with `adjust_block_compatibility` (also used by the scaler).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from perfmodel.errors import PerfmodelError
from perfmodel.models.anynet import AnyNetParams


def generate_regnet(wa: float, w0: int, wm: float, depth: int, q: int = 8
                    ) -> tuple[list[int], list[int]]:
    """Per-stage widths and depths of a RegNet."""
    if not (wa >= 0 and w0 > 0 and wm > 1 and w0 % q == 0 and depth > 0):
        raise PerfmodelError(
            f"invalid RegNet parameters WA={wa} W0={w0} WM={wm} DEPTH={depth} "
            f"(need WA >= 0, W0 > 0 and divisible by {q}, WM > 1, DEPTH > 0)"
        )
    ws_cont = np.arange(depth) * wa + w0
    ks = np.round(np.log(ws_cont / w0) / np.log(wm))
    ws_all = np.round(w0 * np.power(wm, ks) / q).astype(int) * q
    ws, ds = np.unique(ws_all, return_counts=True)
    return [int(w) for w in ws], [int(d) for d in ds]


def adjust_block_compatibility(ws, bs, gs) -> tuple[list[int], list[float], list[int]]:
    """Make widths, bottleneck multipliers and group widths compatible (pycls rule).

    The group width is capped by the bottleneck width, and the bottleneck width is
    rounded to a multiple of lcm(group width, bot_mul) (for integer bot_mul > 1) or of
    the group width.
    """
    if not (len(ws) == len(bs) == len(gs)):
        raise PerfmodelError("widths, bottleneck multipliers and group widths differ in length")
    if not all(w > 0 and b > 0 and g > 0 for w, b, g in zip(ws, bs, gs)):
        raise PerfmodelError("widths, bottleneck multipliers and group widths must be positive")
    vs = [int(max(1, w * b)) for w, b in zip(ws, bs)]
    gs = [int(min(g, v)) for g, v in zip(gs, vs)]
    ms = [int(np.lcm(g, int(b))) if b > 1 else g for g, b in zip(gs, bs)]
    vs = [max(m, int(round(v / m) * m)) for v, m in zip(vs, ms)]
    ws = [int(v / b) for v, b in zip(vs, bs)]
    return ws, list(bs), gs


@dataclass(frozen=True)
class RegNetParams:
    """A RegNet (pycls's REGNET config, typed). `se_r` > 0 makes it a RegNetY."""

    depth: int
    w0: int
    wa: float
    wm: float
    group_w: int
    bot_mul: float = 1.0
    se_r: float = 0.0
    stride: int = 2
    stem_type: str = "simple_stem_in"
    stem_w: int = 32
    block_type: str = "res_bottleneck_block"
    head_w: int = 0
    num_classes: int = 1000
    activation: str = "relu"
    resolution: int = 224
    name: str = field(default="regnet", compare=False)

    def to_anynet(self) -> AnyNetParams:
        """The equivalent AnyNet (stage depths, adjusted widths and group widths)."""
        ws, ds = generate_regnet(self.wa, self.w0, self.wm, self.depth)
        n = len(ws)
        ws, bs, gs = adjust_block_compatibility(ws, [self.bot_mul] * n, [self.group_w] * n)
        return AnyNetParams(
            depths=tuple(ds), widths=tuple(ws), strides=(self.stride,) * n,
            bot_muls=tuple(bs), group_ws=tuple(gs), stem_type=self.stem_type,
            stem_w=self.stem_w, block_type=self.block_type, head_w=self.head_w,
            se_r=self.se_r, num_classes=self.num_classes, activation=self.activation,
            resolution=self.resolution, name=self.name,
        )

    @property
    def input_size(self) -> tuple[int, int, int]:
        return (3, self.resolution, self.resolution)
