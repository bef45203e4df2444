"""Fused attention: `torch.nn.functional.scaled_dot_product_attention` on its own.

Without these points a profile prices the attention op of a transformer (the SDPA call
that `perfmodel.counting` records as one `attention` op, forward and backward) by the
roofline, and only the block calibration, fitted on whole attention blocks (projections
included, full multi-head, one sequence length per width), corrects it. The fused
kernels' speed moves with what the roofline does not see: the sequence length against
the kernel's tiles, the head dimension, the causal mask's skipped tiles, grouped-query
heads, and on a GPU which kernel PyTorch picks (flash, memory-efficient, cuDNN) for the
dtype. Each point is one SDPA call of q[batch, heads, seq, head_dim] over
k/v[batch, kv_heads, seq, head_dim] (`enable_gqa` where kv_heads < heads), forward alone
or forward + backward (the backward's time is their difference, as for convolutions),
with or without the causal mask. Shapes are drawn at random from the grids below
(log-spaced sequence lengths, the head counts and head sizes of published models, and
grouped-query ratios of 1, 4 and 8 on a GPU), not from any one model's list; a FLOP cap
keeps each point short.
"""
from __future__ import annotations

import contextlib

import numpy as np

from profilers.points import Point, Workload
from profilers.suites.base import (Suite, log2, math_mode, one_hot, op_cost, randn,
                                   register_suite)

PHASES = ("fwd", "fwd_bwd")
GPU = dict(dtypes=("bfloat16", "float16", "tf32", "float32"), batch=(1, 2, 4, 8, 16, 32),
           heads=(8, 12, 16, 32, 64), group=(1, 4, 8),
           seq=(128, 256, 512, 1024, 2048, 4096, 8192), head_dim=(64, 128),
           max_flops=2e12, pool=1200, seed=31)
CPU = dict(dtypes=("float32", "bfloat16"), batch=(1, 2, 4, 8), heads=(2, 4, 8, 12),
           group=(1, 2, 4), seq=(32, 64, 128, 256, 512), head_dim=(32, 64),
           max_flops=1e9, pool=700, seed=31)
ALL_DTYPES = ("float32", "tf32", "float16", "bfloat16")
# float32 / tf32 with grouped-query heads: torch versions whose memory-efficient kernel does
# not take `enable_gqa` fall back to the math kernel, which keeps the float32 score matrix
# (b x heads x seq^2, three or four of them in the backward); its bytes are capped here so
# such a point stays in memory
MATH_SCORE_BYTES = 2.0 ** 32


def attention_points(device, name: str = "attention") -> list[Point]:
    """The suite's candidates on `device`: `pool` draws from its grid, deduplicated, the
    forward FLOPs (full score count) at most `max_flops`, kv_heads dividing heads."""
    g = GPU if device.kind == "cuda" else CPU
    dtypes = [d for d in g["dtypes"] if device.supports(d)[0]]
    rng = np.random.default_rng(g["seed"])
    pick = lambda key: g[key][int(rng.integers(len(g[key])))]  # noqa: E731
    seen, points = set(), []
    for _ in range(g["pool"]):
        batch, heads, group, seq, hd = (pick(k) for k in ("batch", "heads", "group", "seq",
                                                          "head_dim"))
        causal = bool(rng.integers(2))
        phase = PHASES[int(rng.integers(len(PHASES)))]
        dtype = dtypes[int(rng.integers(len(dtypes)))] if dtypes else None
        if dtype is None or heads % group:
            continue
        if 4.0 * batch * heads * seq * seq * hd > g["max_flops"]:
            continue
        if (group > 1 and dtype in ("float32", "tf32")
                and 4.0 * batch * heads * seq * seq > MATH_SCORE_BYTES):
            continue
        p = dict(batch=batch, heads=heads, kv_heads=heads // group, seq_q=seq, seq_k=seq,
                 head_dim=hd, causal=causal)
        key = (phase, dtype, tuple(sorted(p.items())))
        if key not in seen:
            seen.add(key)
            points.append(Point.make(name, "attention", phase, dtype, **p))
    return points


@register_suite
class AttentionSuite(Suite):
    name = "attention"
    weight = 1.5

    def candidates(self, device) -> list[Point]:
        return attention_points(device, self.name)

    def features(self, point: Point) -> list[float]:
        p = point.p
        return [log2(p["batch"]), log2(p["heads"]), log2(p["heads"] // p["kv_heads"]),
                2.0 * log2(p["seq_q"]), log2(p["head_dim"]), 2.0 * float(p["causal"])] + one_hot(
            point.phase, PHASES) + one_hot(point.dtype, ALL_DTYPES)

    def build(self, point: Point, device) -> Workload:
        import torch
        import torch.nn.functional as F

        p, dt, dev = point.p, point.dtype, device.torch_device
        b, h, kvh, s, d = p["batch"], p["heads"], p["kv_heads"], p["seq_q"], p["head_dim"]
        extra = {"enable_gqa": True} if kvh != h else {}
        version = tuple(int(x) for x in torch.__version__.split("+")[0].split(".")[:2]
                        if x.isdigit())
        if extra and version < (2, 5):
            raise RuntimeError(f"torch {torch.__version__} has no enable_gqa in "
                               "scaled_dot_product_attention (torch >= 2.5): grouped-query "
                               "points cannot run")
        q = randn((b, h, s, d), dt, dev, requires_grad=True)
        k = randn((b, kvh, p["seq_k"], d), dt, dev, requires_grad=True)
        v = randn((b, kvh, p["seq_k"], d), dt, dev, requires_grad=True)

        def forward():
            return F.scaled_dot_product_attention(q, k, v, is_causal=p["causal"], **extra)

        flops, nbytes = op_cost("attention", point.phase, batch=b, heads=h, kv_heads=kvh,
                                seq_q=s, seq_k=p["seq_k"], head_dim=d, causal=p["causal"],
                                dtype=dt)
        if point.phase == "fwd":
            @contextlib.contextmanager
            def context():
                with math_mode(dt), torch.no_grad():
                    yield

            return Workload(forward, forward=forward, context=context, flops=flops,
                            bytes=nbytes)
        with torch.no_grad(), math_mode(dt):
            grad = torch.randn_like(forward())

        def fwd_bwd():
            return torch.autograd.grad(forward(), (q, k, v), grad)

        return Workload(fwd_bwd, forward=forward, context=lambda: math_mode(dt), flops=flops,
                        bytes=nbytes)
