"""2-D convolutions over batch, channels, resolution, kernel, stride and groups (incl. depthwise)."""
from __future__ import annotations

import contextlib

import numpy as np

from profilers.points import Point, Workload
from profilers.suites.base import (Suite, log2, math_mode, one_hot, op_cost, randn,
                                   register_suite)

GPU_GRID = dict(batch=(1, 8, 32, 128), channels=(16, 32, 64, 128, 256, 512, 1024),
                res=(7, 14, 28, 56, 112, 224), dtypes=("float32", "tf32", "float16", "bfloat16"),
                max_flops=4e11, max_elems=2e8, pool=6000)
CPU_GRID = dict(batch=(1, 2, 4, 8), channels=(8, 16, 32, 64, 128, 256, 512, 1024),
                res=(2, 4, 7, 14, 28, 56, 112), dtypes=("float32", "bfloat16"),
                max_flops=6e8, max_elems=4e6, pool=3000)
# PyTorch's native (non-oneDNN) CPU path: unstrided 1x1 float32 convolutions of fewer than
# 16 samples, single-threaded, run one small GEMM per sample and are slow on small maps;
# the end stages of a CNN at low resolution live there (perfmodel.predict.native)
CPU_NATIVE = dict(batch=(1, 2, 4, 8), channels=(128, 192, 256, 384, 512, 768, 1024),
                  res=(1, 2, 3, 4, 5, 6, 8, 9, 12), pool=400, seed=5)
# Off-grid widths: the channel grids above are powers of two (and 3 x 2^k), so the only
# channel count with low alignment they hold is 8, the narrowest, slowest per FLOP; a
# model of them reads "not a multiple of 16" as "slow". Real networks' widths are
# multiples of 8 that are mostly not powers of two (RegNet 104, 440; EfficientNet 40, 112,
# 672) and their stems read 3 channels: these points sample such widths at random (log-
# uniform multiples of 8, never a power of two), not from any model's list.
CPU_WIDTHS = dict(batch=(1, 2, 4, 8), res=(2, 3, 4, 7, 8, 14, 16, 28, 32, 56, 112),
                  max_width=1024, pool=700, seed=11)
GPU_WIDTHS = dict(batch=(1, 8, 32, 128), res=(7, 14, 28, 56, 112, 224), max_width=2048,
                  pool=500, seed=11)
# Large maps (CPU): the grids above stop at 4M elements per tensor (16 MB in float32),
# inside the L3 of most CPUs; a CNN trained at 224 pixels runs its first stages beyond it
# (EfficientNet-B0 at batch 8: 8 x 96 x 112 x 112 = 9.6M; ResNet-50: 6.4M), where its
# depthwise and pointwise convolutions stream from DRAM. These points draw convolutions of
# realistic widths on maps of 28-224 pixels with at least `min_elems` elements in their
# largest tensor (log-uniform widths, multiples of 8, any kind a CNN's early stages run),
# from their own seed, after the others: `--after` measures only them.
CPU_MAPS = dict(batch=(1, 2, 4, 8, 16), res=(28, 56, 112), max_width=384, max_flops=5e9,
                max_elems=3.4e7, min_elems=2e6, pool=420, seed=13)
MAP_KINDS = ("pointwise", "depthwise", "dense", "stem")
MAP_KIND_P = (0.4, 0.3, 0.15, 0.15)
WIDTH_KINDS = ("pointwise", "dense", "grouped", "depthwise", "stem")
WIDTH_KIND_P = (0.35, 0.15, 0.2, 0.2, 0.1)
GROUP_WIDTHS = (8, 16, 24, 32, 48, 64)
KERNELS = (1, 3, 5, 7)
GROUPINGS = ("dense", "grouped", "depthwise")
PHASES = ("fwd", "fwd_bwd")


def conv_flops(batch, c_in, h, w, c_out, k, stride, groups) -> float:
    """Forward FLOPs (2 x MACs) of a 'same'-padded convolution; used only to cap the grid."""
    ho, wo = -(-h // stride), -(-w // stride)
    return 2.0 * batch * c_out * ho * wo * (c_in // groups) * k * k


@register_suite
class ConvSuite(Suite):
    name = "conv"
    weight = 2.0

    def candidates(self, device) -> list[Point]:
        grid = GPU_GRID if device.kind == "cuda" else CPU_GRID
        dtypes = [d for d in grid["dtypes"] if device.supports(d)[0]]
        rng = np.random.default_rng(3)  # a fixed sample of the full product
        seen, points = set(), []
        for _ in range(grid["pool"]):
            batch = int(rng.choice(grid["batch"]))
            c_in = int(rng.choice(grid["channels"]))
            res = int(rng.choice(grid["res"]))
            k = int(rng.choice(KERNELS))
            stride = int(rng.choice((1, 2)))
            grouping = str(rng.choice(GROUPINGS))
            dtype = str(rng.choice(dtypes))
            phase = str(rng.choice(PHASES))
            if grouping == "depthwise":
                c_out, groups = c_in, c_in
            else:
                c_out = c_in * int(rng.choice((1, 2))) if stride == 2 else c_in
                groups = max(1, c_in // 16) if grouping == "grouped" else 1
            if k > res or (grouping == "grouped" and groups == 1):
                continue
            self._add(points, seen, grid, batch, c_in, res, c_out, k, stride, groups, dtype,
                      phase)
        if device.kind != "cuda":
            points += self._native_points(seen)
        points += self._width_points(seen, grid, dtypes,
                                     GPU_WIDTHS if device.kind == "cuda" else CPU_WIDTHS)
        if device.kind != "cuda":  # a GPU's grid runs to 2e8 elements already
            points += self._map_points(seen, dtypes)
        return points

    def _add(self, points: list, seen: set, grid: dict, batch, c_in, res, c_out, k, stride,
             groups, dtype, phase) -> None:
        """Append the 'same'-padded square convolution unless over the grid's caps or seen."""
        if conv_flops(batch, c_in, res, res, c_out, k, stride, groups) > grid["max_flops"]:
            return
        if batch * max(c_in, c_out) * res * res > grid["max_elems"]:
            return
        key = (batch, c_in, res, c_out, k, stride, groups, dtype, phase)
        if key in seen:
            return
        seen.add(key)
        points.append(Point.make(
            self.name, "conv2d", phase, dtype, batch=batch, c_in=c_in, h=res, w=res,
            c_out=c_out, kernel_h=k, kernel_w=k, stride=stride, padding=k // 2,
            dilation=1, groups=groups))

    def _width_points(self, seen: set, grid: dict, dtypes: list, g: dict) -> list[Point]:
        """Convolutions of off-grid widths (`CPU_WIDTHS`): pointwise, dense, grouped,
        depthwise and 3-channel stems."""
        rng = np.random.default_rng(g["seed"])
        points = []

        def width(lo: int = 24) -> int:
            while True:  # log-uniform multiple of 8, not a power of two
                c = 8 * int(round(np.exp(rng.uniform(np.log(lo / 8), np.log(g["max_width"] / 8)))))
                if c & (c - 1):
                    return c

        for _ in range(g["pool"]):
            kind = str(rng.choice(WIDTH_KINDS, p=WIDTH_KIND_P))
            batch = int(rng.choice(g["batch"]))
            res = int(rng.choice(g["res"]))
            dtype = str(rng.choice(dtypes))
            phase = str(rng.choice(PHASES))
            stride = int(rng.choice((1, 2), p=(0.75, 0.25)))
            groups = 1
            if kind == "pointwise":
                k, c_in = 1, width()
                c_out = max(8, 8 * int(round(c_in * float(rng.choice((0.25, 0.5, 1, 2, 4))) / 8)))
            elif kind == "dense":
                k, c_in = int(rng.choice((3, 5))), width()
                c_out = c_in * (2 if stride == 2 else 1)
            elif kind == "grouped":
                gw = int(rng.choice(GROUP_WIDTHS))
                k, c_in = 3, gw * max(2, int(round(width() / gw)))
                c_out, groups = c_in, c_in // gw
            elif kind == "depthwise":
                k, c_in = int(rng.choice((3, 5))), width(16)
                c_out = groups = c_in
            else:  # a stem: RGB in, strided
                k, c_in, stride = int(rng.choice((3, 7))), 3, 2
                c_out = int(rng.choice((16, 24, 32, 40, 48, 64)))
                res = int(rng.choice([r for r in g["res"] if r >= 28] + [64, 224]))
            if k > res:
                continue
            self._add(points, seen, grid, batch, c_in, res, c_out, k, stride, groups, dtype,
                      phase)
        return points

    def _map_points(self, seen: set, dtypes: list) -> list[Point]:
        """Convolutions on large maps (`CPU_MAPS`): pointwise expansions and projections,
        depthwise, dense 3x3 and RGB stems, float32 mostly."""
        g = CPU_MAPS
        rng = np.random.default_rng(g["seed"])
        points = []
        for _ in range(g["pool"]):
            kind = str(rng.choice(MAP_KINDS, p=MAP_KIND_P))
            batch = int(rng.choice(g["batch"]))
            res = int(rng.choice(g["res"]))
            dtype = "float32" if rng.random() < 0.75 or len(dtypes) == 1 else str(rng.choice(dtypes))
            phase = str(rng.choice(PHASES))
            stride = int(rng.choice((1, 2), p=(0.7, 0.3)))
            c_in = 8 * int(round(np.exp(rng.uniform(np.log(2), np.log(g["max_width"] / 8)))))
            groups, k = 1, 1
            if kind == "pointwise":
                stride = 1
                ratio = float(rng.choice((1 / 6, 0.25, 0.5, 1, 2, 4, 6)))
                c_out = max(8, 8 * int(round(c_in * ratio / 8)))
            elif kind == "depthwise":
                k, c_out, groups = int(rng.choice((3, 5))), c_in, c_in
            elif kind == "dense":
                k, c_out = 3, c_in * (2 if stride == 2 else 1)
            else:  # a stem: RGB in, strided, on the full image
                k, c_in, stride = int(rng.choice((3, 7))), 3, 2
                c_out = int(rng.choice((16, 24, 32, 48, 64)))
                res = int(rng.choice((112, 224)))
            if batch * max(c_in, c_out) * res * res < g["min_elems"]:
                continue
            self._add(points, seen, g, batch, c_in, res, c_out, k, stride, groups, dtype, phase)
        return points

    def _native_points(self, seen: set) -> list[Point]:
        """1x1 unstrided float32 convolutions on small maps with wide channels (CPU)."""
        g = CPU_NATIVE
        rng = np.random.default_rng(g["seed"])
        points = []
        for _ in range(g["pool"]):
            batch = int(rng.choice(g["batch"]))
            c_in = int(rng.choice(g["channels"]))
            c_out = int(rng.choice(g["channels"]))
            res = int(rng.choice(g["res"]))
            phase = str(rng.choice(PHASES))
            key = (batch, c_in, res, c_out, 1, 1, 1, "float32", phase)
            if key in seen:
                continue
            seen.add(key)
            points.append(Point.make(
                self.name, "conv2d", phase, "float32", batch=batch, c_in=c_in, h=res, w=res,
                c_out=c_out, kernel_h=1, kernel_w=1, stride=1, padding=0, dilation=1, groups=1))
        return points

    def features(self, point: Point) -> list[float]:
        p = point.p
        return [log2(p["batch"]), log2(p["c_in"]), log2(p["c_out"]), log2(p["h"]),
                log2(p["kernel_h"]) * 2, log2(p["stride"]) * 2, log2(p["groups"]) / 2,
                ] + one_hot(point.dtype, GPU_GRID["dtypes"]) + one_hot(point.phase, PHASES)

    def build(self, point: Point, device) -> Workload:
        import torch
        import torch.nn.functional as F

        p, dt, dev = point.p, point.dtype, device.torch_device
        x = randn((p["batch"], p["c_in"], p["h"], p["w"]), dt, dev, requires_grad=True)
        weight = randn((p["c_out"], p["c_in"] // p["groups"], p["kernel_h"], p["kernel_w"]),
                       dt, dev, requires_grad=True)
        bias = None

        def forward():
            return F.conv2d(x, weight, bias, p["stride"], p["padding"], p["dilation"], p["groups"])

        shape = {k: p[k] for k in ("batch", "c_in", "h", "w", "c_out", "kernel_h", "kernel_w",
                                   "stride", "padding", "dilation", "groups")}
        flops, nbytes = op_cost("conv2d", point.phase, **shape, dtype=dt)
        if point.phase == "fwd":
            @contextlib.contextmanager
            def context():
                with math_mode(dt), torch.no_grad():
                    yield

            return Workload(forward, forward=forward, not_activations=[weight],
                            context=context, flops=flops, bytes=nbytes)
        with torch.no_grad():
            grad = torch.randn_like(forward())

        def fwd_bwd():
            out = forward()
            return torch.autograd.grad(out, (x, weight), grad)

        return Workload(fwd_bwd, forward=forward, not_activations=[weight],
                        context=lambda: math_mode(dt), flops=flops, bytes=nbytes)
