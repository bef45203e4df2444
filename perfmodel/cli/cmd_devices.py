"""`perfmodel devices`: the hardware catalogue and the local CPU."""
from __future__ import annotations

import json
import math

from perfmodel.hardware.catalogue import list_devices
from perfmodel.hardware.spec import MATH_MODES

_SHORT = {"float64": "fp64", "float32": "fp32", "tf32": "tf32", "float16": "fp16",
          "bfloat16": "bf16", "float8_e4m3fn": "fp8", "int8": "int8"}


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "devices", help="list the GPU catalogue and the local CPU",
        description="Datasheet figures of known devices (dense peaks, TFLOP/s) and the "
                    "local CPU. Names accepted by --device options: the key, or the name "
                    "torch/NVML report.")
    p.add_argument("--json", action="store_true", help="one JSON list on stdout")
    cpu = p.add_mutually_exclusive_group()
    cpu.add_argument("--no-cpu", action="store_true", help="leave out the local CPU")
    cpu.add_argument("--measure-cpu-bandwidth", action="store_true",
                   help="measure the CPU's memory bandwidth (a NumPy copy) instead of the "
                        "documented per-core estimate")
    p.set_defaults(func=run)


def _fmt(v: float, scale: float, digits: int = 1) -> str:
    return "-" if v is None or not math.isfinite(v) else f"{v / scale:.{digits}f}"


def run(args) -> int:
    devices = list_devices(include_cpu=not args.no_cpu,
                           measure_cpu_bandwidth=args.measure_cpu_bandwidth)
    if args.json:
        print(json.dumps([d.to_dict() for d in devices], indent=2))
        return 0
    head = (["key", "name", "SMs", "MHz"] + [_SHORT[m] for m in MATH_MODES]
            + ["mem GiB", "GB/s", "L2 MiB", "TDP W"])
    rows = []
    for d in devices:
        peaks = [_fmt(d.peak_flops.get(m, float("nan")), 1e12) for m in MATH_MODES]
        rows.append([d.key, d.name, str(d.sm_count), _fmt(d.boost_clock_hz, 1e6, 0), *peaks,
                     _fmt(d.memory_bytes, 2**30), _fmt(d.memory_bandwidth, 1e9, 0),
                     _fmt(d.l2_bytes, 2**20), _fmt(d.tdp_w, 1, 0)])
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
    line = lambda r: "  ".join(c.ljust(w) if i < 2 else c.rjust(w)  # noqa: E731
                               for i, (c, w) in enumerate(zip(r, widths)))
    print("dense peaks in TFLOP/s (int8: TOP/s); fp16/bf16/fp8 with FP32 accumulate; "
          "'-' = not published")
    print(line(head))
    for r in rows:
        print(line(r))
    return 0
