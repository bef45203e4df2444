"""`OpCost`: what one op costs in arithmetic, memory traffic and activations."""
from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True)
class OpCost:
    """Cost of one op (or a sum of ops).

    - `flops`: floating-point operations (a multiply-add is 2 FLOPs).
    - `bytes_read`, `bytes_written`: main-memory traffic of an ideal kernel that reads
      each input and writes each output once (no cache reuse across ops).
    - `acts`: output activations in pycls's sense: output elements of conv, linear/GEMM,
      attention and windowed pooling; 0 for norms, activations, elementwise, reductions
      and for backward ops (gradients are not activations).
    - `macs`: multiply-adds of the matmul-class work (GEMM, conv, attention), 0 for
      vector ops. A bias add counts as one MAC per output element, as pycls counts it,
      and `flops = 2 * macs` for matmul-class ops.
    """

    flops: float = 0.0
    bytes_read: float = 0.0
    bytes_written: float = 0.0
    acts: int = 0
    macs: float = 0.0

    @property
    def bytes(self) -> float:
        """Total bytes moved (read + written)."""
        return self.bytes_read + self.bytes_written

    @property
    def intensity(self) -> float:
        """Arithmetic intensity in FLOP/byte (inf when nothing is moved)."""
        b = self.bytes
        if b == 0:
            return float("inf") if self.flops > 0 else 0.0
        return self.flops / b

    def __add__(self, other: "OpCost") -> "OpCost":
        if not isinstance(other, OpCost):
            return NotImplemented
        return OpCost(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    def __radd__(self, other):
        if other == 0:  # lets sum() start from 0
            return self
        return NotImplemented

    def __mul__(self, k) -> "OpCost":
        """The cost of running the op `k` times."""
        return OpCost(self.flops * k, self.bytes_read * k, self.bytes_written * k,
                      int(self.acts * k), self.macs * k)

    __rmul__ = __mul__

    def to_dict(self) -> dict:
        """Plain dict with `bytes` and `intensity` included."""
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["bytes"] = self.bytes
        d["intensity"] = self.intensity
        return d
