"""Bridge to the op-cost formulas and roofline of `perfmodel.ops` for the learned predictors.

GEMM costs are vectorised in `features.py` (a million rows at a time); other kinds go
through `perfmodel.ops.op_cost` once per distinct shape.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from perfmodel.errors import PerfmodelError


def launch_overhead(device) -> float:
    """Seconds per op the roofline of `perfmodel.ops.roofline` adds (`LAUNCH_OVERHEAD_S`)."""
    from perfmodel.ops.roofline import LAUNCH_OVERHEAD_S

    try:
        return float(LAUNCH_OVERHEAD_S[device.kind])
    except KeyError:
        raise PerfmodelError(f"{device.key}: no launch overhead known for kind {device.kind!r}") from None


def op_costs(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """FLOPs and bytes of each row via `perfmodel.ops.op_cost`, one call per distinct shape."""
    from perfmodel.ops import PHASES, get_formula, op_cost

    flops = np.full(len(df), np.nan)
    bytes_ = np.full(len(df), np.nan)
    ops = df["op"].to_numpy(dtype=object)
    for op in pd.unique(ops):
        sel = np.flatnonzero(ops == op)
        try:
            formula = get_formula(op)
        except PerfmodelError:
            raise PerfmodelError(
                f"row {row_number(df, sel[0])}: cannot work out FLOPs and bytes of op {op!r}: no cost formula "
                "for it; give `flops` and `bytes` columns"
            ) from None
        params = [c for c in formula.params if c in df.columns]
        cols = ["dtype", *params] + (["phase"] if "phase" in df.columns else [])
        sub = df.iloc[sel][cols].astype(object)
        sub = sub.where(sub.notna(), None)
        cache: dict[tuple, tuple[float, float]] = {}
        for j, row in zip(sel, sub.itertuples(index=False, name=None)):
            if row not in cache:
                rec = dict(zip(cols, row))
                phase = rec.get("phase") if rec.get("phase") in PHASES else "fwd"
                kwargs = {p: _plain(rec[p]) for p in params if rec[p] is not None}
                try:
                    cost = op_cost(op, phase=phase, dtype=rec["dtype"], **kwargs)
                except PerfmodelError as exc:
                    raise PerfmodelError(f"row {row_number(df, j)}: {exc}") from None
                cache[row] = (float(cost.flops), float(cost.bytes))
            flops[j], bytes_[j] = cache[row]
    return flops, bytes_


def row_number(df: pd.DataFrame, i: int):
    """1-based number of the row at position `i` (its label when the index is not 0..n-1)."""
    label = df.index[i]
    return int(label) + 1 if isinstance(label, (int, np.integer)) else label


def _plain(v):
    """A numpy/pandas scalar as a Python int (whole numbers), bool or float."""
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, str):
        return v
    f = float(v)
    return int(f) if f.is_integer() else f
