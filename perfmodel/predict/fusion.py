"""What `torch.compile` does to an op list: the pointwise work between matrix ops, fused.

TorchInductor leaves matrix ops to their libraries (cuBLAS / oneDNN GEMMs, convolutions,
fused attention) and generates one kernel per run of the memory-bound ops between them
(pointwise ops, norms and softmax reductions, layout copies), so a chain's intermediate
tensors never touch memory. `fuse_pointwise` models that on a counted op list: every
maximal run of non-matrix ops of one phase between two matrix ops becomes one
`elementwise` kernel that reads the largest input any of its ops reads, writes the
largest output any of its ops writes, does all of their FLOPs and pays one launch; ops
that move nothing (views) disappear. It is an estimate, not Inductor's scheduler: a run
whose ops read several different large tensors (a residual add after a norm) counts only
the largest, and Inductor sometimes splits a run in two.

Checked in `benchmarks/bench_gpu_e2e.py` against NeuSight's `torch.compile`d BERT-Large and
GPT-2-Large inference runs on A100, H100 and L4.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from perfmodel.predict.optimes import is_tensor

# shape columns and flags that describe one op and no longer apply to a fused kernel (it
# writes a fresh buffer even when its run opens with an in-place op)
_SHAPE = ("m", "n", "k", "b", "bias", "batch", "c_in", "d", "h", "w", "c_out", "kernel_d",
          "kernel_h", "kernel_w", "stride", "padding", "dilation", "transposed", "features",
          "affine", "channels", "groups", "read_numel", "out_numel", "heads", "kv_heads",
          "seq_q", "seq_k", "head_dim", "head_dim_v", "causal", "tokens", "vocab", "training",
          "inplace")


def fuse_pointwise(ops: pd.DataFrame) -> pd.DataFrame:
    """The op list a compiled model runs (module docstring); matrix ops are kept as they are."""
    if ops is None or not len(ops):
        return ops
    ops = ops.reset_index(drop=True)
    tensor = is_tensor(ops["op"])
    phase = ops["phase"].astype(str).to_numpy()
    nbytes = pd.to_numeric(ops["bytes"], errors="coerce").to_numpy(dtype=float)
    flops = pd.to_numeric(ops["flops"], errors="coerce").to_numpy(dtype=float)
    moves = ~((nbytes == 0) & (flops == 0))  # a view moves nothing; an unknown cost is kept
    # a new run starts at every matrix op, after every matrix op, and at a phase change
    start = tensor | np.r_[True, tensor[:-1]] | np.r_[True, phase[1:] != phase[:-1]]
    run = np.cumsum(start)
    keep, fused = [], []
    for r in np.unique(run):
        idx = np.flatnonzero(run == r)
        if tensor[idx[0]]:
            keep.append(idx[0])
            continue
        idx = idx[moves[idx]]
        if len(idx) == 1:
            keep.append(idx[0])
        elif len(idx):
            fused.append(_fused_row(ops.iloc[idx]))
    out = pd.concat([ops.iloc[keep]] + fused) if fused else ops.iloc[keep]
    return out.sort_index(kind="stable").reset_index(drop=True)


def _fused_row(run: pd.DataFrame) -> pd.DataFrame:
    """One kernel for a run of memory-bound ops (keeps the index of the run's first op)."""
    row = run.iloc[[0]].copy()
    read = float(pd.to_numeric(run["bytes_read"], errors="coerce").max())
    out = pd.to_numeric(run["bytes_written"], errors="coerce")
    written = float(out.max())
    if "dtype" in run.columns and out.notna().any():
        # the kernel's dtype is that of its largest output (not, say, an int64 counter
        # update or an arange that happens to open the run)
        row["dtype"] = run["dtype"].iloc[int(np.nanargmax(out.to_numpy(dtype=float)))]
    numel = pd.to_numeric(run["numel"], errors="coerce") if "numel" in run else pd.Series([np.nan])
    row["op"] = "elementwise"
    if "aten" in run.columns:
        row["aten"] = "fused(" + ",".join(run["aten"].astype(str).str.replace("aten.", "")) + ")"
    row["direction"] = "fwd"  # one generated kernel, whichever pass it belongs to
    for c in _SHAPE:
        if c in row.columns:
            row[c] = np.nan
    row["numel"] = float(numel.max()) if numel.notna().any() else np.nan
    row["inputs"] = max(1.0, round(read / written)) if written > 0 else 1.0
    row["bytes_read"], row["bytes_written"] = read, written
    row["bytes"] = read + written
    row["flops"] = float(pd.to_numeric(run["flops"], errors="coerce").fillna(0).sum())
    for c in ("macs", "acts"):
        if c in row.columns:
            row[c] = float(pd.to_numeric(run[c], errors="coerce").fillna(0).sum())
    return row
