"""Correct an unmeasured transformer block by its measured neighbours' residuals.

The calibrated sum of ops (`calibration.py`) has one coefficient per op class for every
block of a profile, so its error on one block shape is not noise: the per-op GEMM model is
off for those GEMM shapes, the block's glue runs in or out of cache. On the AMD CPU
profile of 2026-11-23 the calibrated sum over-predicts the transformer blocks at batch 4 x 128 tokens
by 10-21 % (d_model 512: measured 117.7 ms, calibrated 142 ms) while grid blocks of other
shapes run up to 1.6x their raw sum. A measured block replaces its own sum
(`measured.py`); a block the profile did not measure - another architecture (a
Llama-style block: RMSNorm, SwiGLU, rotary positions, grouped-query attention), or the
same one at another shape - takes the residual of the measured transformer blocks nearest
to it in (log2 d_model, log2 tokens per sequence, log2 batch), same phase and dtype:

    scale = exp(weighted mean of log(measured / calibrated) over the `K` nearest blocks
                within `RADIUS` octaves in every dimension), weights 1 / (1 + distance)

and no correction where no measured block is that close. The very block a part is (same
key as `measured.part_block_key`) is never its own neighbour: with block measurements
switched off (`perfmodel validate` ablation) the correction is leave-that-shape-out.
"""
from __future__ import annotations

import math

import numpy as np

K = 4
RADIUS = 1.0  # octaves: a neighbour within 2x in d_model, tokens and batch


def transformer_dims(d_model: int, seq: int, batch: int) -> tuple[float, float, float]:
    return (math.log2(d_model), math.log2(seq), math.log2(batch))


def part_dims(part, batch: int):
    """(log2 d_model, log2 seq, log2 batch) of a transformer-block part, else None."""
    kind = part.key[0] if part.key else None
    if kind != "transformer_block":
        return None
    cfg, seq = part.key[1], part.key[2]
    return transformer_dims(int(cfg.d_model), int(seq), int(batch))


def neighbour_scale(table: list, dims, phase: str, exclude=None, dtype: str | None = None) -> float:
    """The correction for a block at `dims` from `table` entries
    `[dims, phase, key, log residual]` (see module doc), only those of `phase` and (the
    key's dtype) `dtype`; 1.0 without neighbours."""
    if dims is None or not table:
        return 1.0
    found = []
    for d, ph, key, r in table:
        if ph != phase or (exclude is not None and tuple(key) == tuple(exclude)):
            continue
        if dtype is not None and len(key) > 4 and str(key[4]) != dtype:
            continue
        delta = np.abs(np.asarray(d, float) - np.asarray(dims, float))
        if delta.max() <= RADIUS:
            found.append((float(np.sqrt((delta ** 2).sum())), float(r)))
    if not found:
        return 1.0
    found.sort()
    near = found[:K]
    w = np.array([1.0 / (1.0 + dist) for dist, _ in near])
    r = np.array([res for _, res in near])
    return float(np.exp((w * r).sum() / w.sum()))
