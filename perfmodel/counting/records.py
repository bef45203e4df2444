"""`OpRecord` and `OpList`: the ops a model runs, with shapes, dtypes and costs.

The op list is what the learned predictors consume: one record per aten kernel that
does work (views, detaches and allocations are left out), in execution order, with
its op kind and shape parameters in the names of `perfmodel.ops` (`m, n, k, b` for
GEMMs; `batch, c_in, h, w, c_out, kernel_h, kernel_w, stride, padding, dilation,
groups` for convolutions; `batch, heads, seq_q, seq_k, head_dim, causal` for attention;
`numel` for vector ops), so `op_cost(r.kind, phase=r.direction, dtype=r.dtype,
**r.params) == r.cost`.

`OpList.to_frame()` gives one row per op with the columns of the profile schema
(`op`, `phase`, `dtype`, `m`, `n`, `k`, `b`, conv and attention columns, `flops`,
`bytes`); `total()`, `by_kind()` and `by_module()` aggregate it.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd

from perfmodel.ops.cost import OpCost

# Frame columns, in order; shape-parameter columns follow, then `shapes`.
_BASE_COLUMNS = ["op", "aten", "module", "phase", "direction", "dtype"]
_COST_COLUMNS = ["flops", "macs", "bytes_read", "bytes_written", "bytes", "acts"]
_PARAM_ORDER = ["m", "n", "k", "b", "bias", "batch", "c_in", "d", "h", "w", "c_out",
                "kernel_d", "kernel_h", "kernel_w", "stride", "padding", "dilation", "groups",
                "transposed", "heads", "kv_heads", "seq_q", "seq_k", "head_dim", "head_dim_v",
                "causal", "numel", "features", "channels", "tokens", "vocab", "inplace"]


@dataclass(frozen=True)
class OpRecord:
    """One executed op.

    - `kind`: op kind of `perfmodel.ops` (`gemm`, `bmm`, `conv2d`, `attention`, `gelu`, ...).
    - `aten`: the aten overload that ran (e.g. `aten.addmm.default`).
    - `module`: dotted path of the innermost module that ran it (`""` = the root).
    - `phase`: `"fwd"` or `"bwd"`, the pass the op ran in.
    - `direction`: which formula of `kind` gives the cost: `"fwd"` for a forward kernel
      (every GEMM is one, even the dgrad/wgrad GEMMs of a linear layer's backward),
      `"bwd"` for a backward kernel (`convolution_backward`, attention backward, norm and
      activation backward, ...).
    - `dtype`: dtype name as torch spells it (`tf32` for float32 GEMM/conv when counting
      with `dtype="tf32"`).
    - `shapes`: shapes of the tensor arguments, in order.
    - `params`: shape parameters of the formula; `cost`: its `OpCost`.
    """

    kind: str
    aten: str
    module: str
    phase: str
    dtype: str
    shapes: tuple
    params: dict
    cost: OpCost
    direction: str = "fwd"

    def to_row(self) -> dict:
        """Flat dict: base columns, shape parameters, then costs."""
        c = self.cost
        row = {"op": self.kind, "aten": self.aten, "module": self.module, "phase": self.phase,
               "direction": self.direction, "dtype": self.dtype}
        row.update(self.params)
        row.update(flops=c.flops, macs=c.macs, bytes_read=c.bytes_read,
                   bytes_written=c.bytes_written, bytes=c.bytes, acts=c.acts)
        row["shapes"] = self.shapes
        return row


@dataclass(frozen=True)
class OpList(Sequence):
    """An ordered list of `OpRecord`s with tabular views (fvcore-style analysis object)."""

    records: tuple[OpRecord, ...] = field(default_factory=tuple)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return OpList(self.records[i])
        return self.records[i]

    def __len__(self) -> int:
        return len(self.records)

    def __repr__(self) -> str:
        t = self.total()
        return (f"OpList({len(self)} ops, {t.flops:.4g} FLOPs, {t.bytes:.4g} bytes, "
                f"{t.acts} acts)")

    def filter(self, *, kind: str | None = None, phase: str | None = None,
               module: str | None = None) -> "OpList":
        """The records of one kind / phase / module subtree (`module="blocks.0"`)."""
        def keep(r: OpRecord) -> bool:
            if kind is not None and r.kind != kind:
                return False
            if phase is not None and r.phase != phase:
                return False
            if module is not None and module and not (
                    r.module == module or r.module.startswith(module + ".")):
                return False
            return True

        return OpList(tuple(r for r in self.records if keep(r)))

    def total(self) -> OpCost:
        """Sum of every op's cost (FLOPs here include vector ops)."""
        return sum((r.cost for r in self.records), OpCost())

    def to_frame(self) -> pd.DataFrame:
        """One row per op: op, aten, module, phase, direction, dtype, shape params, costs, shapes."""
        rows = [r.to_row() for r in self.records]
        df = pd.DataFrame(rows)
        if df.empty:
            return pd.DataFrame(columns=_BASE_COLUMNS + _COST_COLUMNS + ["shapes"])
        params = [c for c in _PARAM_ORDER if c in df.columns]
        params += sorted(c for c in df.columns
                         if c not in params and c not in _BASE_COLUMNS + _COST_COLUMNS + ["shapes"])
        return df[_BASE_COLUMNS + params + _COST_COLUMNS + ["shapes"]]

    def by_kind(self) -> pd.DataFrame:
        """Totals per (op kind, phase): count, flops, macs, bytes, acts; largest FLOPs first."""
        df = self.to_frame()
        if df.empty:
            return pd.DataFrame(columns=["op", "phase", "count"] + _COST_COLUMNS)
        g = df.groupby(["op", "phase"], sort=False)
        out = g[_COST_COLUMNS].sum()
        out.insert(0, "count", g.size())
        return out.reset_index().sort_values(["flops", "bytes"], ascending=False,
                                             ignore_index=True)

    def by_module(self, depth: int | None = None) -> pd.DataFrame:
        """Totals per module path, each including its submodules (`""` is the whole model).

        Rows are in first-execution order; `depth` keeps paths with at most that many
        dotted components (0 = the root only).
        """
        acc: dict[str, list] = {}
        for r in self.records:
            c = r.cost
            parts = r.module.split(".") if r.module else []
            for i in range(len(parts) + 1):
                key = ".".join(parts[:i])
                a = acc.get(key)
                if a is None:
                    a = acc[key] = [0, 0.0, 0.0, 0.0, 0.0, 0]
                a[0] += 1
                a[1] += c.flops
                a[2] += c.macs
                a[3] += c.bytes_read
                a[4] += c.bytes_written
                a[5] += c.acts
        rows = []
        for key, (n, flops, macs, br, bw, acts) in acc.items():
            d = key.count(".") + 1 if key else 0
            if depth is not None and d > depth:
                continue
            rows.append({"module": key, "depth": d, "count": n, "flops": flops, "macs": macs,
                         "bytes_read": br, "bytes_written": bw, "bytes": br + bw, "acts": acts})
        return pd.DataFrame(rows, columns=["module", "depth", "count"] + _COST_COLUMNS)
