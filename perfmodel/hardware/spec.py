"""`DeviceSpec`: the datasheet figures of one accelerator or CPU."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from perfmodel.dtypes import canonical_dtype
from perfmodel.errors import PerfmodelError

# Math modes a DeviceSpec may list in `peak_flops`, in display order.
MATH_MODES: tuple[str, ...] = (
    "float64", "float32", "tf32", "float16", "bfloat16", "float8_e4m3fn", "int8",
)

# Dtypes that run on another dtype's math mode (same tensor-core rate).
_SAME_RATE = {"float8_e5m2": "float8_e4m3fn"}


@dataclass(frozen=True)
class DeviceSpec:
    """Datasheet figures of a device; peaks are dense (never the 2:4-sparsity figure).

    Units: FLOP/s, bytes, bytes/s, hertz, watts. `peak_flops` maps a math mode
    (`float32` = SIMT/vector FP32, `tf32` = FP32 on TF32 tensor cores, `float16` /
    `bfloat16` / `float8_e4m3fn` = tensor cores with FP32 accumulate, `int8` = int8
    tensor ops with int32 accumulate, `float64` = the best dense FP64 rate) to its peak.
    `sm_count` is SMs for a GPU, TensorCores for a TPU, physical cores for a CPU.
    A figure the vendor does not publish is NaN (e.g. a CPU's TDP), never a guess.
    """

    key: str
    name: str
    kind: str  # "gpu" | "cpu" | "tpu"
    sm_count: int
    boost_clock_hz: float
    peak_flops: dict[str, float]
    memory_bytes: int
    memory_bandwidth: float
    l2_bytes: int
    tdp_w: float
    aliases: tuple[str, ...] = ()
    source: str = ""
    architecture: str = ""
    notes: str = ""
    extra: dict[str, object] = field(default_factory=dict, compare=False)

    def __hash__(self) -> int:  # the dict fields are not hashable; the key identifies a spec
        return hash((self.key, self.name, self.kind))

    def peak(self, dtype: str) -> float:
        """Dense peak FLOP/s (or OP/s for int8) of the math mode `dtype` runs on."""
        mode = canonical_dtype(dtype)
        mode = _SAME_RATE.get(mode, mode)
        value = self.peak_flops.get(mode)
        if value is None or not math.isfinite(value) or value <= 0:
            have = ", ".join(m for m in MATH_MODES if m in self.peak_flops) or "none"
            raise PerfmodelError(
                f"{self.key} has no dense {mode} math mode (has: {have})"
            )
        return float(value)

    def supports(self, dtype: str) -> bool:
        """Whether `peak(dtype)` is defined for this device."""
        try:
            self.peak(dtype)
        except PerfmodelError:
            return False
        return True

    @property
    def ridge_point(self) -> dict[str, float]:
        """Arithmetic intensity (FLOP/byte) where each math mode turns compute-bound."""
        return {m: v / self.memory_bandwidth for m, v in self.peak_flops.items()}

    @classmethod
    def from_dict(cls, d: dict) -> "DeviceSpec":
        """Inverse of `to_dict` (None becomes NaN)."""
        def num(v):
            return float("nan") if v is None else float(v)

        try:
            return cls(
                key=d["key"], name=d["name"], kind=d["kind"], sm_count=int(d["sm_count"]),
                boost_clock_hz=num(d["boost_clock_hz"]),
                peak_flops={k: num(v) for k, v in d["peak_flops"].items()},
                memory_bytes=int(d["memory_bytes"]), memory_bandwidth=num(d["memory_bandwidth"]),
                l2_bytes=int(d.get("l2_bytes") or 0), tdp_w=num(d.get("tdp_w")),
                aliases=tuple(d.get("aliases", ())), source=d.get("source", ""),
                architecture=d.get("architecture", ""), notes=d.get("notes", ""))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise PerfmodelError(f"not a device description: {type(exc).__name__}: {exc}") from None

    def to_dict(self) -> dict:
        """JSON-friendly view (NaN becomes None)."""
        def clean(v):
            return None if isinstance(v, float) and not math.isfinite(v) else v

        return {
            "key": self.key, "name": self.name, "kind": self.kind,
            "architecture": self.architecture,
            "sm_count": self.sm_count, "boost_clock_hz": clean(self.boost_clock_hz),
            "peak_flops": {m: clean(self.peak_flops[m]) for m in MATH_MODES
                           if m in self.peak_flops},
            "memory_bytes": self.memory_bytes,
            "memory_bandwidth": clean(self.memory_bandwidth),
            "l2_bytes": self.l2_bytes, "tdp_w": clean(self.tdp_w),
            "aliases": list(self.aliases), "source": self.source, "notes": self.notes,
        }
