"""Counting time: perfmodel.counting.count_model vs torch.utils.flop_counter (and fvcore).

Usage: python benchmarks/bench_counting.py [--reps 3] [--models R-50-1x64d Llama-2-7B] [--cold]

Every counter runs on the same meta-device model and input (nothing is allocated), after
one untimed warm-up run each (the first meta op in a process imports torch._dynamo and
friends, ~2 s, whoever runs it). Times are the median of `--reps` runs, in seconds, of
one forward (`fwd`) or forward + backward (`fwd+bwd`) pass, including the backward
pass itself. FLOPs columns show what each counter reports; they differ where the
counters do (fused attention backward: 5 matmuls for ours and for flop_counter's fused
formula, 4 bmm for the math path flop_counter sees on meta; bias adds: ours only).
Target: ours faster than flop_counter and under 1 s on the 7B transformer.
"""
from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from perfmodel.counting import count_model  # noqa: E402
from perfmodel.models.registry import build_model  # noqa: E402


def _input(model, batch):
    example = getattr(model, "example_input", None)
    if callable(example):
        return example(batch, device="meta")
    return torch.empty(batch, *model.input_size, device="meta")


def ours(model, x, backward):
    c = count_model(model, inputs=x, backward=backward)
    return c.flops


def flop_counter(model, x, backward):
    with FlopCounterMode(display=False) as fc:
        out = model(x)
        if backward:
            out.sum().backward()
    return fc.get_total_flops()


def fvcore_counter(model, x, backward):
    from fvcore.nn import FlopCountAnalysis

    if backward:
        return None  # fvcore counts forward only
    return 2 * FlopCountAnalysis(model, x).unsupported_ops_warnings(False).total()


def timed(fn, reps):
    fn()  # warm-up
    times, result = [], None
    for _ in range(reps):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), result


_COLD = """
import sys, time
sys.path.insert(0, {root!r})
import torch
from perfmodel.models.registry import build_model
sys.path.insert(0, {here!r})
import bench_counting as b
model = build_model({name!r}, device="meta")
x = b._input(model, {batch})
t = time.perf_counter(); b.{fn}(model, x, {backward}); print(time.perf_counter() - t)
"""


def cold(name, fn, batch, backward) -> float:
    """Seconds of the first count in a fresh Python process (torch's lazy imports included)."""
    import subprocess

    here = Path(__file__).resolve().parent
    code = _COLD.format(root=str(here.parent), here=str(here), name=name, batch=batch,
                        fn=fn, backward=backward)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--models", nargs="+", default=["R-50-1x64d", "Llama-2-7B"])
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--cold", action="store_true",
                    help="also time the first count in a fresh process (fwd+bwd)")
    args = ap.parse_args(argv)

    counters = {"ours": ours, "flop_counter": flop_counter}
    if importlib.util.find_spec("fvcore") is not None:
        counters["fvcore"] = fvcore_counter
    else:
        print("fvcore not installed: skipped")

    rows = []
    for name in args.models:
        model = build_model(name, device="meta")
        x = _input(model, args.batch)
        nparams = sum(p.numel() for p in model.parameters())
        for backward in (False, True):
            row = {"model": f"{name} ({nparams / 1e9:.2f}B params)", "pass": "fwd+bwd" if backward else "fwd"}
            for cname, fn in counters.items():
                try:
                    t, flops = timed(lambda fn=fn: fn(model, x, backward), args.reps)
                except Exception as e:  # a counter that cannot handle the model
                    t, flops = float("nan"), f"error: {type(e).__name__}"
                row[cname] = (t, flops)
            rows.append(row)

    names = list(counters)
    header = f"{'model':34s} {'pass':8s}" + "".join(f" {n + ' s':>15s}" for n in names) \
        + "".join(f" {n + ' FLOPs':>22s}" for n in names) + f" {'speed-up':>9s}"
    print(f"torch {torch.__version__}, {args.reps} reps (median), batch {args.batch}, meta device")
    print(header)
    print("-" * len(header))
    for r in rows:
        line = f"{r['model']:34s} {r['pass']:8s}"
        line += "".join(f" {r[n][0]:15.3f}" for n in names)
        line += "".join(f" {r[n][1]:22,}" if isinstance(r[n][1], int) else f" {str(r[n][1]):>22s}"
                        for n in names)
        line += f" {r['flop_counter'][0] / r['ours'][0]:8.1f}x"
        print(line)
    if args.cold:
        print("\nfirst count in a fresh process, fwd+bwd (includes torch's one-time lazy imports):")
        for name in args.models:
            times = {c: cold(name, c, args.batch, True) for c in ("ours", "flop_counter")}
            print(f"{name:34s} " + "  ".join(f"{c} {t:.3f} s" for c, t in times.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
