"""GEMMs C[m,n] = A[m,k] @ B[k,n] (batched: b of them) in every math mode the device has."""
from __future__ import annotations

import contextlib
import itertools

from profilers.points import Point, Workload
from profilers.suites.base import (Suite, log2, math_mode, one_hot, op_cost, randn,
                                   register_suite)

GPU_DTYPES = ("float32", "tf32", "float16", "bfloat16", "float8_e4m3fn")
CPU_DTYPES = ("float32", "bfloat16", "float16")

# (powers of two, odd/model sizes, LLM (n, k) pairs, LLM m, bmm batches, seq, head_dim, FLOP cap)
GPU_SIZES = dict(
    pow2=(64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384),
    odd=(100, 257, 384, 1000, 1536, 2304, 3000, 5120, 6144, 11008, 12288),
    llm_nk=((768, 3072), (3072, 768), (4096, 4096), (12288, 4096), (11008, 4096),
            (4096, 11008), (14336, 4096), (4096, 14336), (8192, 8192), (28672, 8192),
            (50304, 768), (5632, 2048)),
    llm_m=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
    bmm_b=(4, 16, 64, 256), seq=(128, 512, 1024, 2048, 4096), head_dim=(64, 128),
    max_flops=2.5e12,
)
CPU_SIZES = dict(
    pow2=(16, 32, 64, 128, 256, 512, 1024),
    odd=(24, 100, 255, 384, 500, 768, 1000),
    llm_nk=((768, 768), (3072, 768), (768, 3072), (1024, 1024), (2048, 512), (512, 2048)),
    llm_m=(1, 2, 4, 16, 64, 128),
    bmm_b=(2, 8, 32), seq=(32, 64, 128, 256), head_dim=(32, 64),
    # thin products: a 1x1 convolution over a map of n pixels on PyTorch's native CPU path
    # is one (c_out x n) = (c_out x c_in) @ (c_in x n) GEMM per sample
    thin_m=(64, 160, 384, 768), thin_n=(1, 2, 3, 4, 6, 8, 12), thin_k=(64, 192, 512, 1024),
    max_flops=2e9,
)
CPU_MAX_FLOPS = {"float16": 5e7}  # CPU float16 matmul has no fast kernel (a few GFLOP/s)


def gemm_shapes(sizes: dict) -> list[tuple[int, int, int, int]]:
    """(m, n, k, b) shapes: square, mixed power-of-two/odd, LLM-like and batched."""
    shapes = set()
    dims = sorted(set(sizes["pow2"]) | set(sizes["odd"]))
    for d in dims:
        shapes.add((d, d, d, 1))
    coarse = dims[::2]
    for m, n, k in itertools.product(coarse, repeat=3):
        shapes.add((m, n, k, 1))
    for m, (n, k) in itertools.product(sizes["llm_m"], sizes["llm_nk"]):
        shapes.add((m, n, k, 1))
    for m, n, k in itertools.product(sizes.get("thin_m", ()), sizes.get("thin_n", ()),
                                     sizes.get("thin_k", ())):
        shapes.add((m, n, k, 1))
    for b, s, hd in itertools.product(sizes["bmm_b"], sizes["seq"], sizes["head_dim"]):
        shapes.add((s, s, hd, b))  # scores = Q @ K^T
        shapes.add((s, hd, s, b))  # context = P @ V
    return sorted(s for s in shapes if 2.0 * s[0] * s[1] * s[2] * s[3] <= sizes["max_flops"])


@register_suite
class GemmSuite(Suite):
    name = "gemm"
    weight = 3.0

    def candidates(self, device) -> list[Point]:
        cuda = device.kind == "cuda"
        sizes = GPU_SIZES if cuda else CPU_SIZES
        dtypes = [d for d in (GPU_DTYPES if cuda else CPU_DTYPES) if device.supports(d)[0]]
        points = []
        for (m, n, k, b), dtype in itertools.product(gemm_shapes(sizes), dtypes):
            if dtype == "float8_e4m3fn" and (b > 1 or m % 16 or n % 16 or k % 16):
                continue  # torch._scaled_mm: 2-D only, dimensions multiples of 16
            if not cuda and 2.0 * m * n * k * b > CPU_MAX_FLOPS.get(dtype, sizes["max_flops"]):
                continue
            op = "bmm" if b > 1 else "gemm"
            points.append(Point.make(self.name, op, "fwd", dtype, m=m, n=n, k=k, b=b))
        return points

    def features(self, point: Point) -> list[float]:
        p = point.p
        return [log2(p["m"]), log2(p["n"]), log2(p["k"]), log2(p["b"])] + one_hot(
            point.dtype, GPU_DTYPES)

    def build(self, point: Point, device) -> Workload:
        import torch

        p, dt, dev = point.p, point.dtype, device.torch_device
        m, n, k, b = p["m"], p["n"], p["k"], p["b"]
        flops, nbytes = op_cost(point.op, m=m, n=n, k=k, b=b, dtype=dt)
        if dt == "float8_e4m3fn":
            nbytes += m * n  # the output is bfloat16: two bytes an element, not the input's one
            a = randn((m, k), "float32", dev).to(torch.float8_e4m3fn)
            bt = randn((n, k), "float32", dev).to(torch.float8_e4m3fn)
            one = torch.ones((), dtype=torch.float32, device=dev)

            def run():
                return torch._scaled_mm(a, bt.t(), scale_a=one, scale_b=one,
                                        out_dtype=torch.bfloat16)

            return Workload(run, context=torch.no_grad, flops=flops, bytes=nbytes)
        shape_a = (b, m, k) if b > 1 else (m, k)
        shape_b = (b, k, n) if b > 1 else (k, n)
        a = randn(shape_a, dt, dev, requires_grad=True)
        w = randn(shape_b, dt, dev, requires_grad=True)

        @contextlib.contextmanager
        def context():
            with math_mode(dt), torch.no_grad():
                yield

        # A plain GEMM's B plays the weight (not an activation); a bmm's operands are both.
        return Workload(lambda: torch.matmul(a, w), forward=lambda: torch.matmul(a, w),
                        not_activations=[w] if b == 1 else [], context=context,
                        flops=flops, bytes=nbytes)
