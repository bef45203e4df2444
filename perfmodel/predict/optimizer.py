"""The optimizer step as pointwise ops, priced like any other op.

PyTorch's single-tensor (CPU default) optimizers run, for every parameter tensor of
`numel` elements, these in-place kernels (reads, writes in elements of the param dtype):

- `sgd-momentum`: `buf.mul_(m)` (1 read, 1 write), `buf.add_(grad)` (2, 1),
  `param.add_(buf, alpha=-lr)` (2, 1);
- `sgd`: `param.add_(grad, alpha=-lr)` (2, 1);
- `adam` / `adamw`: `step += 1` (scalar), [adamw: `param.mul_(1 - lr wd)` (1, 1)],
  `exp_avg.lerp_(grad)` (2, 1), `exp_avg_sq.mul_(b2)` (1, 1),
  `exp_avg_sq.addcmul_(grad, grad)` (2, 1), `sqrt` (1, 1), `div_` (1, 1), `add_(eps)` (1, 1),
  `param.addcdiv_(exp_avg, denom)` (3, 1).

Each kernel is an `elementwise` op row (`perfmodel.ops.pointwise`) with `inputs` reads;
the multi-tensor (`foreach`) and fused GPU paths run the same bytes in fewer launches.
"""
from __future__ import annotations

import pandas as pd

from perfmodel.errors import PerfmodelError
from perfmodel.ops.registry import op_cost

# optimizer -> [(inputs read per element, FLOPs per element)] per parameter tensor
KERNELS: dict[str, tuple[tuple[int, int], ...]] = {
    "none": (),
    "sgd": ((2, 2),),
    "sgd-momentum": ((1, 1), (2, 1), (2, 2)),
    "adam": ((2, 2), (1, 1), (2, 3), (1, 1), (1, 1), (1, 1), (3, 3)),
    "adamw": ((1, 1), (2, 2), (1, 1), (2, 3), (1, 1), (1, 1), (1, 1), (3, 3)),
}
STATE_TENSORS = {"none": 0, "sgd": 0, "sgd-momentum": 1, "adam": 2, "adamw": 2}
_ALIASES = {"momentum": "sgd-momentum", "sgdm": "sgd-momentum", "sgd_momentum": "sgd-momentum"}


def canonical_optimizer(name: str) -> str:
    n = _ALIASES.get(str(name).strip().lower(), str(name).strip().lower())
    if n not in KERNELS:
        raise PerfmodelError(f"unknown optimizer {name!r}; expected one of {', '.join(KERNELS)}")
    return n


def default_optimizer(sequence_model: bool) -> str:
    """AdamW for transformers, SGD with momentum for CNNs (as the validation suite trains)."""
    return "adamw" if sequence_model else "sgd-momentum"


def optimizer_ops(optimizer: str, numels, dtype: str, master_cast: bool = False) -> pd.DataFrame:
    """One `elementwise` row per kernel per parameter tensor (phase `optimizer`).

    `master_cast`: mixed precision, one more kernel per tensor copies the updated float32
    master weights into the half-precision model weights.
    """
    kernels = KERNELS[canonical_optimizer(optimizer)]
    if master_cast:
        kernels = kernels + ((1, 1),)
    rows = []
    for numel in numels:
        for inputs, fpe in kernels:
            c = op_cost("elementwise", numel=int(numel), inputs=inputs, flops_per_element=fpe,
                        dtype=dtype, phase="fwd")
            rows.append({"op": "elementwise", "module": "optimizer", "phase": "optimizer",
                         "direction": "fwd", "dtype": dtype, "numel": int(numel),
                         "inputs": inputs, "flops": c.flops, "bytes_read": c.bytes_read,
                         "bytes_written": c.bytes_written, "bytes": c.bytes, "macs": 0.0,
                         "acts": 0})
    return pd.DataFrame(rows)
