"""Roofline estimate of one op on one device.

time = max(FLOPs / peak(dtype), bytes / memory_bandwidth) + launch overhead.

`LAUNCH_OVERHEAD_S` is a fixed cost per op (per kernel) added on top of the roofline:
- GPU, 5 us: launching a CUDA kernel from eager PyTorch costs a few microseconds of host
  time (Python and the dispatcher, then the driver's launch path); back-to-back small
  kernels in eager mode run at roughly one per 5 us, the usual rule of thumb. CUDA graphs
  or a compiler that fuses kernels remove most of it: pass `overhead_s=0` then.
- CPU, 1 us: no launch, but eager PyTorch spends on the order of a microsecond per op in
  argument parsing, dispatch and output allocation before the kernel runs.
- TPU, 0: XLA compiles a whole step into one program; there is no per-op launch.
"""
from __future__ import annotations

from dataclasses import dataclass

from perfmodel.dtypes import canonical_dtype
from perfmodel.errors import PerfmodelError
from perfmodel.ops.cost import OpCost
from perfmodel.ops.registry import is_tensor_op, op_cost

LAUNCH_OVERHEAD_S: dict[str, float] = {"gpu": 5e-6, "cpu": 1e-6, "tpu": 0.0}

# Vector (non-matrix-unit) math runs on the SIMT/vector FP32 pipes whatever the storage type.
VECTOR_MATH = "float32"


@dataclass(frozen=True)
class RooflineEstimate:
    """Roofline time of an op: `time_s = max(compute_s, memory_s) + overhead_s`."""

    time_s: float
    bound: str  # "compute" | "memory"
    compute_s: float
    memory_s: float
    overhead_s: float
    intensity: float  # FLOP/byte of the op
    ridge: float  # FLOP/byte where the device turns compute-bound at this peak
    peak_flops: float  # FLOP/s used
    bandwidth: float  # bytes/s used

    @property
    def attained_flops(self) -> float:
        """FLOP/s the op attains at this time (FLOPs / time_s)."""
        return self.compute_s * self.peak_flops / self.time_s if self.time_s > 0 else 0.0


def roofline(cost: OpCost, device, dtype="float16", *, vector: bool = False,
             overhead_s: float | None = None) -> RooflineEstimate:
    """Roofline time of `cost` on `device` (a DeviceSpec) computing in `dtype`.

    `vector=True` uses the FP32 SIMT peak (norms, softmax, activations do not run on
    tensor cores); otherwise the peak of `dtype`'s math mode (`tf32` for float32 on
    TF32 tensor cores). `overhead_s` overrides the per-kind launch overhead.
    """
    peak = device.peak(VECTOR_MATH if vector else canonical_dtype(dtype))
    bw = float(device.memory_bandwidth)
    if not bw > 0:
        raise PerfmodelError(f"{device.key}: memory bandwidth unknown, cannot compute a roofline")
    if overhead_s is None:
        if device.kind not in LAUNCH_OVERHEAD_S:
            raise PerfmodelError(f"{device.key}: no launch overhead known for kind {device.kind!r}")
        overhead_s = LAUNCH_OVERHEAD_S[device.kind]
    compute_s = cost.flops / peak
    memory_s = cost.bytes / bw
    return RooflineEstimate(
        time_s=max(compute_s, memory_s) + overhead_s,
        bound="compute" if compute_s > memory_s else "memory",
        compute_s=compute_s, memory_s=memory_s, overhead_s=overhead_s,
        intensity=cost.intensity, ridge=peak / bw, peak_flops=peak, bandwidth=bw,
    )


def op_roofline(kind: str, device, *, dtype="float16", phase="fwd", overhead_s=None,
                **params) -> RooflineEstimate:
    """Roofline of one registered op kind (vector math chosen from the kind)."""
    cost = op_cost(kind, phase=phase, dtype=dtype, **params)
    return roofline(cost, device, dtype, vector=not is_tensor_op(kind), overhead_s=overhead_s)
