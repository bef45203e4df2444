"""Peak memory of a step: weights, gradients, optimizer states, saved activations, workspace.

- weights: unique parameters x dtype bytes;
- gradients (training): one per weight;
- optimizer states (training): `STATE_TENSORS` per weight (momentum: 1; Adam: 2);
- activations (training): bytes autograd saves for backward, measured on the meta device
  with saved-tensor hooks (shared storages once, parameters excluded; `counts.py`);
- workspace: the transient tensors on top of those: in training the largest op output plus
  its gradient (2 x the largest op output), in inference the largest part's input plus
  output. It is the uncertain term, so the interval is `peak -/+ workspace`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from perfmodel.predict.counts import PartCount
from perfmodel.predict.optimizer import STATE_TENSORS, canonical_optimizer


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes of each term and the peak (their sum) with its interval."""

    weights: float
    gradients: float
    optimizer_states: float
    activations: float
    workspace: float

    @property
    def peak(self) -> float:
        return (self.weights + self.gradients + self.optimizer_states + self.activations
                + self.workspace)

    @property
    def lo(self) -> float:
        return self.peak - self.workspace

    @property
    def hi(self) -> float:
        return self.peak + self.workspace

    def to_dict(self) -> dict:
        return {"pred_peak_bytes": self.peak, "pred_peak_bytes_lo": self.lo,
                "pred_peak_bytes_hi": self.hi, "weights_bytes": self.weights,
                "gradients_bytes": self.gradients,
                "optimizer_states_bytes": self.optimizer_states,
                "activations_bytes": self.activations, "workspace_bytes": self.workspace}


def memory_estimate(counts: list[PartCount], train: bool, optimizer: str,
                    saved: list[float] | None, shared_bytes: float = 0.0) -> MemoryEstimate:
    """The memory terms of a model made of counted parts (`saved`: assembled saved bytes;
    `shared_bytes`: tied parameters counted by two parts)."""
    weights = float(sum(c.param_bytes for c in counts)) - shared_bytes
    if train:
        states = STATE_TENSORS[canonical_optimizer(optimizer)]
        acts = float(sum(saved or []))
        work = 2.0 * max((c.max_op_bytes for c in counts), default=0.0)
        return MemoryEstimate(weights, weights, states * weights, acts, work)
    work = max((c.input_bytes + c.max_op_bytes for c in counts), default=0.0)
    return MemoryEstimate(weights, 0.0, 0.0, 0.0, float(work) if math.isfinite(work) else 0.0)


def device_capacity(device_key: str) -> float | None:
    """Memory of a GPU in bytes, for a fits-in-memory check (None for a CPU, whose RAM is
    the machine's, not the chip's, and for a device the catalogue does not know)."""
    from perfmodel.errors import PerfmodelError
    from perfmodel.hardware.catalogue import get_device

    try:
        spec = get_device(device_key)
    except PerfmodelError:
        return None
    mem = getattr(spec, "memory_bytes", None)
    return float(mem) if spec.kind != "cpu" and mem else None

