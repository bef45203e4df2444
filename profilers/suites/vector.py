"""Vector (memory-bound) ops: activations, elementwise sums and products, batch and layer
norms, softmax and reductions, over sizes from cache-resident to DRAM-streaming.

Without them a profile prices these ops by the roofline and the block calibration's two
coefficients per class, which cannot tell a mean over 2x2 pixels (a few hundred MB/s on a
CPU) from one over 56x56, nor a batch norm over a small map from one over a large map.
Each point is one op of the kind `perfmodel.counting` records, with the columns it records
(`numel`, `channels`, `batch`, `features`, `out_numel`, `read_numel`, `inputs`,
`training`, `inplace`; an NCHW map's shape travels in `params` as `nchw`), so a learned
model of these rows prices the counted ops of a model directly. Sizes are drawn at
random (log-uniform), not from any model's list.

In-place ops (`INPLACE_OPS`: `relu_`, as `nn.ReLU(inplace=True)` runs it, and `x += y`, a
residual sum torchvision-style) are drawn apart, after the others, from their own seed: a
profile measured before they existed keeps its points, and `--after` measures only them.
On a CPU they are far cheaper than the same op into a fresh buffer (AMD profile,
2026-12-01, float32, per size band: relu_ 0.41-0.62x relu, add_ 0.53-0.72x add). Only
ops that stay finite when repeated on their own output are timed in place (silu_ would
shrink its input towards denormals); the predictor prices an activation never timed in place as the op out
of place, and any in-place pointwise op (recorded as `elementwise`) as `x += y` in place.
"""
from __future__ import annotations

import contextlib
import math

import numpy as np

from profilers.points import Point, Workload
from profilers.suites.base import Suite, log2, one_hot, op_cost, randn, register_suite

# op name (as perfmodel.counting records it), variant, phases
OPS = (
    ("relu", "unary", ("fwd", "fwd_bwd")),
    ("silu", "unary", ("fwd", "fwd_bwd")),
    ("gelu", "unary", ("fwd", "fwd_bwd")),
    ("sigmoid", "unary", ("fwd", "fwd_bwd")),
    ("elementwise", "add", ("fwd",)),  # a residual sum: two inputs of one shape
    ("elementwise", "scale", ("fwd",)),  # x * s[:, :, None, None] (squeeze-excitation)
    ("batch_norm", "train", ("fwd", "fwd_bwd")),
    ("batch_norm", "eval", ("fwd",)),
    ("layer_norm", "rows", ("fwd", "fwd_bwd")),
    ("softmax", "rows", ("fwd", "fwd_bwd")),
    ("reduction", "spatial", ("fwd",)),  # mean over h, w (global pooling, SE squeeze)
    ("reduction", "rows", ("fwd",)),  # sum over the leading dimension (a bias gradient)
)
# in place, forward only (a backward through an in-place op is the out-of-place op's)
INPLACE_OPS = (
    ("relu", "inplace", ("fwd",)),  # torch.relu_(x)
    ("elementwise", "add_inplace", ("fwd",)),  # x += y
)
VARIANTS = tuple(f"{op}/{v}" for op, v, _ in OPS + INPLACE_OPS)
INPLACE_POOL = 240  # draws of in-place points (own seed: `INPLACE_SEED`)
INPLACE_SEED = 22
GPU = dict(dtypes=("float32", "float16", "bfloat16"), numel=(2 ** 12, 2 ** 28),
           batch=(1, 8, 32, 128), res=(1, 2, 4, 7, 14, 28, 56, 112, 224), pool=1400, seed=21)
CPU = dict(dtypes=("float32", "bfloat16"), numel=(2 ** 8, 2 ** 24),
           batch=(1, 2, 4, 8), res=(1, 2, 3, 4, 7, 8, 14, 16, 28, 32, 56, 112), pool=1400,
           seed=21)
# Large maps (CPU): the pool above draws a size, then a map side at random and the
# channels it leaves, so its large batch norms sit on small maps with tens of thousands
# of channels, and nothing exceeds 2^24 elements. A CNN at 224 pixels runs its early
# stages on maps of 56-112 pixels with 16-512 channels and up to 2^25 elements per tensor
# (EfficientNet-B0 at batch 16). These points draw such maps (channels log-uniform,
# multiples of 8) for the ops a CNN runs on them, from their own seed, after the others.
CPU_MAPS = dict(batch=(1, 2, 4, 8, 16), res=(28, 56, 112), numel=(2 ** 20, 2 ** 25),
                channels=(16, 512), pool=450, seed=23)
MAP_OPS = (
    ("batch_norm", "train", ("fwd", "fwd_bwd")),
    ("batch_norm", "eval", ("fwd",)),
    ("relu", "unary", ("fwd", "fwd_bwd")),
    ("silu", "unary", ("fwd", "fwd_bwd")),
    ("elementwise", "add", ("fwd",)),
    ("elementwise", "scale", ("fwd",)),
    ("reduction", "spatial", ("fwd",)),
)
FEATURES = (64, 8192)  # normalised extent of layer norm and softmax rows


@register_suite
class VectorSuite(Suite):
    name = "vector"
    weight = 1.0

    def candidates(self, device) -> list[Point]:
        g = GPU if device.kind == "cuda" else CPU
        dtypes = [d for d in g["dtypes"] if device.supports(d)[0]]
        rng = np.random.default_rng(g["seed"])
        lo, hi = (math.log(v) for v in g["numel"])
        seen, points = set(), []
        for _ in range(g["pool"]):
            op, variant, phases = OPS[int(rng.integers(len(OPS)))]
            dtype = str(rng.choice(dtypes))
            phase = str(rng.choice(phases))
            want = int(round(math.exp(rng.uniform(lo, hi))))
            p = _shape(op, variant, want, g, rng)
            if p is None or not g["numel"][0] <= p["numel"] <= g["numel"][1]:
                continue
            key = (op, variant, phase, dtype, tuple(sorted(p.items())))
            if key in seen:
                continue
            seen.add(key)
            points.append(Point.make(self.name, op, phase, dtype, variant=variant, **p))
        points += _inplace_points(self.name, g, dtypes)
        if device.kind != "cuda":  # a GPU's pool runs to 2^28 elements already
            points += _map_points(self.name, dtypes, seen)
        return points

    def features(self, point: Point) -> list[float]:
        p = point.p
        extent = p.get("features") or (_nchw(p)[1] if "nchw" in p else 1)
        return ([log2(p["numel"]), log2(extent) / 2]
                + one_hot(f"{point.op}/{p['variant']}", VARIANTS, 2.0)
                + one_hot(point.dtype, GPU["dtypes"]) + one_hot(point.phase, ("fwd", "fwd_bwd")))

    def build(self, point: Point, device) -> Workload:
        import torch
        import torch.nn.functional as F

        p, dt, dev, op = point.p, point.dtype, device.torch_device, point.op
        variant = p["variant"]
        grad = point.phase == "fwd_bwd"
        params = []
        if variant == "inplace":
            x = randn((p["numel"],), dt, dev)
            forward = lambda: torch.relu_(x)  # noqa: E731
        elif variant == "add_inplace":
            x, y = randn((p["numel"],), dt, dev), randn((p["numel"],), dt, dev)
            forward = lambda: x.add_(y)  # noqa: E731
        elif op in ("relu", "silu", "gelu", "sigmoid"):
            x = randn((p["numel"],), dt, dev, requires_grad=grad)
            fn = {"relu": torch.relu, "silu": F.silu, "gelu": F.gelu, "sigmoid": torch.sigmoid}[op]
            forward = lambda: fn(x)  # noqa: E731
        elif op == "elementwise" and variant == "add":
            x, y = randn((p["numel"],), dt, dev), randn((p["numel"],), dt, dev)
            forward = lambda: x + y  # noqa: E731
        elif op == "elementwise":
            b, c, h, w = _nchw(p)
            x, s = randn((b, c, h, w), dt, dev), randn((b, c, 1, 1), dt, dev)
            forward = lambda: x * s  # noqa: E731
        elif op == "batch_norm":
            b, c, h, w = _nchw(p)
            x = randn((b, c, h, w), dt, dev, requires_grad=grad)
            weight = randn((c,), dt, dev, requires_grad=grad)
            bias = randn((c,), dt, dev, requires_grad=grad)
            mean = torch.zeros(c, dtype=x.dtype, device=dev)
            var = torch.ones(c, dtype=x.dtype, device=dev)
            params = [weight, bias]
            training = bool(p["training"])
            forward = lambda: F.batch_norm(x, mean, var, weight, bias, training)  # noqa: E731
        elif op == "layer_norm":
            d = p["features"]
            x = randn((p["numel"] // d, d), dt, dev, requires_grad=grad)
            weight = randn((d,), dt, dev, requires_grad=grad)
            bias = randn((d,), dt, dev, requires_grad=grad)
            params = [weight, bias]
            forward = lambda: F.layer_norm(x, (d,), weight, bias)  # noqa: E731
        elif op == "softmax":
            d = p["features"]
            x = randn((p["numel"] // d, d), dt, dev, requires_grad=grad)
            forward = lambda: torch.softmax(x, -1)  # noqa: E731
        elif op == "reduction" and variant == "spatial":
            x = randn(_nchw(p), dt, dev)
            forward = lambda: x.mean((2, 3), keepdim=True)  # noqa: E731
        elif op == "reduction":
            x = randn((p["numel"] // p["out_numel"], p["out_numel"]), dt, dev)
            forward = lambda: x.sum(0)  # noqa: E731
        else:
            raise ValueError(f"vector suite: no op {op!r}")
        cost = {k: p[k] for k in _COST_KEYS[op] if k in p}
        flops, nbytes = op_cost(op, point.phase, **cost, dtype=dt)
        if not grad:
            @contextlib.contextmanager
            def context():
                with torch.no_grad():
                    yield

            return Workload(forward, forward=forward, not_activations=params, context=context,
                            flops=flops, bytes=nbytes)
        with torch.no_grad():
            dy = torch.randn_like(forward())
        wrt = [x] + params

        def fwd_bwd():
            return torch.autograd.grad(forward(), wrt, dy)

        return Workload(fwd_bwd, forward=forward, not_activations=params,
                        context=contextlib.nullcontext, flops=flops, bytes=nbytes)


def _inplace_points(suite: str, g: dict, dtypes: list) -> list[Point]:
    """The in-place points (`INPLACE_OPS`): sizes log-uniform over the suite's range."""
    rng = np.random.default_rng(INPLACE_SEED)
    lo, hi = (math.log(v) for v in g["numel"])
    seen, points = set(), []
    for _ in range(INPLACE_POOL):
        op, variant, _phases = INPLACE_OPS[int(rng.integers(len(INPLACE_OPS)))]
        dtype = str(rng.choice(dtypes))
        numel = int(round(math.exp(rng.uniform(lo, hi))))
        p = {"numel": numel, "inplace": True}
        if op == "elementwise":
            p["inputs"] = 2
        if (op, variant, dtype, numel) not in seen:
            seen.add((op, variant, dtype, numel))
            points.append(Point.make(suite, op, "fwd", dtype, variant=variant, **p))
    return points


def _map_points(suite: str, dtypes: list, seen: set) -> list[Point]:
    """Ops on large NCHW maps (`CPU_MAPS`), float32 mostly."""
    g = CPU_MAPS
    rng = np.random.default_rng(g["seed"])
    lo, hi = (math.log(v / 8) for v in g["channels"])
    points = []
    for _ in range(g["pool"]):
        op, variant, phases = MAP_OPS[int(rng.integers(len(MAP_OPS)))]
        dtype = "float32" if rng.random() < 0.75 or len(dtypes) == 1 else str(rng.choice(dtypes))
        phase = str(rng.choice(phases))
        b, h = int(rng.choice(g["batch"])), int(rng.choice(g["res"]))
        c = 8 * int(round(math.exp(rng.uniform(lo, hi))))
        numel = b * c * h * h
        if not g["numel"][0] <= numel <= g["numel"][1]:
            continue
        if op in ("relu", "silu"):
            p = {"numel": numel}
        elif variant == "add":
            p = {"numel": numel, "inputs": 2}
        else:
            p = {"numel": numel, "nchw": f"{b},{c},{h},{h}"}
            if op == "batch_norm":
                p.update(channels=c, batch=b, training=variant == "train")
            elif op == "elementwise":
                p.update(inputs=2, read_numel=numel + b * c)
            else:
                p["out_numel"] = b * c
        key = (op, variant, phase, dtype, tuple(sorted(p.items())))
        if key not in seen:
            seen.add(key)
            points.append(Point.make(suite, op, phase, dtype, variant=variant, **p))
    return points


def _nchw(p: dict) -> tuple[int, int, int, int]:
    b, c, h, w = (int(v) for v in p["nchw"].split(","))
    return b, c, h, w


# the parameters `perfmodel.ops` prices each op by (the counter records the same)
_COST_KEYS = {"relu": ("numel", "inplace"), "silu": ("numel",), "gelu": ("numel",),
              "sigmoid": ("numel",), "elementwise": ("numel", "inputs", "read_numel", "inplace"),
              "batch_norm": ("numel", "channels", "training", "batch"),
              "layer_norm": ("numel", "features"), "softmax": ("numel",),
              "reduction": ("numel", "out_numel")}


def _shape(op: str, variant: str, want: int, g: dict, rng) -> dict | None:
    """The point's parameters for about `want` elements (None: no such shape)."""
    if op in ("relu", "silu", "gelu", "sigmoid"):
        return {"numel": want}
    if op == "elementwise" and variant == "add":
        return {"numel": want, "inputs": 2}
    if op in ("layer_norm", "softmax"):
        lo, hi = (math.log(v) for v in FEATURES)
        d = int(round(math.exp(rng.uniform(lo, hi))))
        d = max(8, 8 * round(d / 8)) if rng.random() < 0.8 else d  # mostly multiples of 8
        rows = max(1, want // d)
        return {"numel": rows * d, "features": d}
    if op == "reduction" and variant == "rows":
        n = int(round(math.exp(rng.uniform(math.log(16), math.log(8192)))))
        rows = max(2, want // n)
        return {"numel": rows * n, "out_numel": n}
    # NCHW maps: batch norm, the SE scale, spatial means. The map's shape travels as
    # `nchw` (params only); the columns are those the counter records for the op
    b = int(rng.choice(g["batch"]))
    h = int(rng.choice(g["res"]))
    c = want // (b * h * h)
    if c < 8:
        return None
    c = 8 * round(c / 8) if rng.random() < 0.85 else c
    numel = b * c * h * h
    if op == "batch_norm" and variant == "train" and b * h * h == 1:
        return None  # batch statistics need more than one value per channel
    p = {"numel": numel, "nchw": f"{b},{c},{h},{h}"}
    if op == "batch_norm":
        p.update(channels=c, batch=b, training=variant == "train")
    elif op == "elementwise":
        p.update(inputs=2, read_numel=numel + b * c)
    else:  # spatial mean
        p["out_numel"] = b * c
    return p
