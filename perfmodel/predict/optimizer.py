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

Each kernel is an `elementwise` op row (`perfmodel.ops.pointwise`) with `inputs` reads.

On a GPU, PyTorch's optimizers default to the multi-tensor (`foreach`) path: each kernel
above becomes one `_foreach_*` op over all parameter tensors, which `multi_tensor_apply`
launches as few kernels as it can: a launch takes chunks of 65,536 elements from up to 320
blocks and from at most 110 / 64 / 48 / 36 tensors for 1 / 2 / 3 / 4 tensor lists
(ATen's `MultiTensorApply.cuh` limits; 96 for an op with a list of scalars), so the same
bytes move in a handful of launches instead of one per tensor (`optimizer_ops(...,
foreach=True)`: one row per launch; `FOREACH_LISTS` gives each kernel's lists).
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
# optimizer -> per kernel of KERNELS, (tensor lists, tensors per launch) of its `_foreach_*`
# op (None: multi_tensor_apply's cap for that many lists): addcmul_(exp_avg_sq, grad, grad)
# takes 3 lists, the out-of-place sqrt 2, div_ by a list of scalars is capped at 96 tensors
FOREACH_LISTS: dict[str, tuple[tuple[int, int | None], ...]] = {
    "none": (),
    "sgd": ((2, None),),
    "sgd-momentum": ((1, None), (2, None), (2, None)),
    "adam": ((2, None), (1, None), (3, None), (2, None), (1, 96), (1, None), (3, None)),
    "adamw": ((1, None), (2, None), (1, None), (3, None), (2, None), (1, 96), (1, None),
              (3, None)),
}
MASTER_CAST_LISTS = (2, None)  # copy of the float32 master weights into the model weights
_ALIASES = {"momentum": "sgd-momentum", "sgdm": "sgd-momentum", "sgd_momentum": "sgd-momentum"}


def canonical_optimizer(name: str) -> str:
    n = _ALIASES.get(str(name).strip().lower(), str(name).strip().lower())
    if n not in KERNELS:
        raise PerfmodelError(f"unknown optimizer {name!r}; expected one of {', '.join(KERNELS)}")
    return n


def default_optimizer(transformer: bool) -> str:
    """AdamW for transformers (language models and ViTs, as they are trained), SGD with
    momentum for CNNs (as pycls and the validation suite train them)."""
    return "adamw" if transformer else "sgd-momentum"


CHUNK = 65536  # elements per block of multi_tensor_apply
BLOCKS_PER_LAUNCH = 320
TENSORS_PER_LAUNCH = {1: 110, 2: 64, 3: 48, 4: 36, 5: 30}  # by number of tensor lists


def uses_foreach(device) -> bool:
    """Whether PyTorch's optimizers take the multi-tensor path on `device` (a DeviceSpec):
    they do for CUDA tensors, not on a CPU."""
    return getattr(device, "kind", "cpu") == "gpu"


def foreach_launches(numels, lists: int, cap: int | None = None) -> list[int]:
    """Elements of each kernel launch of one `_foreach_*` op over tensors of `numels`
    elements with `lists` tensor lists (module docstring); `cap` overrides the tensors per
    launch."""
    cap = cap or TENSORS_PER_LAUNCH[min(max(lists, 1), 5)]
    out, elems, blocks, tensors = [], 0, 0, 0
    for n in numels:
        n = int(n)
        if n <= 0:
            continue
        tensors += 1
        while n > 0:
            take = min(n, (BLOCKS_PER_LAUNCH - blocks) * CHUNK)
            elems += take
            blocks += -(-take // CHUNK)
            n -= take
            if blocks >= BLOCKS_PER_LAUNCH or (tensors >= cap and n == 0):
                out.append(elems)
                elems, blocks, tensors = 0, 0, (1 if n > 0 else 0)
    if elems:
        out.append(elems)
    return out


def optimizer_ops(optimizer: str, numels, dtype: str, master_cast: bool = False,
                  foreach: bool = False) -> pd.DataFrame:
    """One `elementwise` row per kernel per parameter tensor (phase `optimizer`), or with
    `foreach` one row per kernel launch of the multi-tensor path (module docstring).

    `master_cast`: mixed precision, one more kernel per tensor copies the updated float32
    master weights into the half-precision model weights.
    """
    name = canonical_optimizer(optimizer)
    kernels = KERNELS[name]
    lists = FOREACH_LISTS[name]
    if master_cast:
        kernels = kernels + ((1, 1),)
        lists = lists + (MASTER_CAST_LISTS,)
    rows = []
    if foreach:
        sizes = list(numels)
        for (inputs, fpe), (n_lists, cap) in zip(kernels, lists):
            for numel in foreach_launches(sizes, n_lists, cap):
                rows.append(_row(numel, inputs, fpe, dtype))
        return pd.DataFrame(rows)
    for numel in numels:
        for inputs, fpe in kernels:
            rows.append(_row(numel, inputs, fpe, dtype))
    return pd.DataFrame(rows)


def _row(numel: int, inputs: int, fpe: int, dtype: str) -> dict:
    c = op_cost("elementwise", numel=int(numel), inputs=inputs, flops_per_element=fpe,
                dtype=dtype, phase="fwd")
    return {"op": "elementwise", "module": "optimizer", "phase": "optimizer",
            "direction": "fwd", "dtype": dtype, "numel": int(numel), "inputs": inputs,
            "flops": c.flops, "bytes_read": c.bytes_read, "bytes_written": c.bytes_written,
            "bytes": c.bytes, "macs": 0.0, "acts": 0}
