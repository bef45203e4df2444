"""Correct an unmeasured block by its measured neighbours' residuals.

The calibrated sum of ops (`calibration.py`) has one coefficient per op class for every
block of a profile, so its error on one block shape is not noise: the per-op GEMM model is
off for those GEMM shapes, the block's glue runs in or out of cache. On the AMD CPU
profile of 2026-11-23 the calibrated sum over-predicts the transformer blocks at batch 4 x 128 tokens
by 10-21 % (d_model 512: measured 117.7 ms, calibrated 142 ms) while grid blocks of other
shapes run up to 1.6x their raw sum. A measured block replaces its own sum
(`measured.py`); a block the profile did not measure - another architecture (a
Llama-style block: RMSNorm, SwiGLU, rotary positions, grouped-query attention), or the
same one at another shape - takes the residual of the measured blocks of its family
nearest to it, same phase and dtype:

    scale = exp(weighted mean of log(measured / calibrated) over the `k` nearest blocks
                within `RADIUS` octaves in every dimension), weights 1 / (1 + distance)

and no correction where no measured block is that close. Families and their dimensions:
- `transformer`: (log2 d_model, log2 tokens per sequence, log2 batch), `K` = 4 nearest;
- convolutional blocks, (log2 width, log2 input map side, log2 batch), `K_CNN` = 8
  nearest: residual bottleneck blocks split three ways, `se` (squeeze-excitation:
  RegNetY), `bottleneck` (a bottleneck narrower than the block: ResNet), `plain` (RegNetX),
  and `mbconv` (EfficientNet; width = the expanded width, where its work is).
CNN blocks are noisier than transformer blocks (many short kernels) and vary less with
shape, hence more neighbours. Chosen on the blocks suite itself, leave-one-shape-out
(AMD CPU profile, 2026-12-01, 809 CNN block rows): median |log error| of the forward
blocks 0.105 -> 0.081 with 8 neighbours (0.083 with 4), the signed median bias of
forward RegNetX blocks +0.056 -> -0.005, of RegNetY +0.110 -> +0.013; splitting the
families by stride as well gained nothing (0.079). Forward + backward CNN blocks are not
corrected (`CNN_PHASES`): there the same test gained next to nothing (0.098 -> 0.100 with
4 neighbours, 0.093 with 8) - the calibrated sum already fits them without a bias
by size - and on the held-out families of `perfmodel validate` correcting them moved
training steps from 2.4 % to 3.5 % median error.

The very block a part is (same key as `measured.part_block_key`) is never its own
neighbour: with block measurements switched off (`perfmodel validate` ablation) the
correction is leave-that-shape-out.
"""
from __future__ import annotations

import math

import numpy as np

K = 4
K_CNN = 8
CNN_PHASES = ("fwd",)  # the phases whose CNN blocks are corrected (module doc)
RADIUS = 1.0  # octaves: a neighbour within 2x in every dimension


def transformer_dims(d_model: int, seq: int, batch: int) -> tuple[float, float, float]:
    return (math.log2(d_model), math.log2(seq), math.log2(batch))


def cnn_dims(width: float, side: int, batch: int) -> tuple[float, float, float]:
    return (math.log2(width), math.log2(side), math.log2(batch))


def key_family(key) -> str:
    """The neighbour family of a measured-block key (`measured._row_key`)."""
    kind = key[0]
    if kind == "cnn":  # ("cnn", c_in, c_out, stride, bot_mul, group_w, se_r, h, ...)
        return "se" if float(key[6]) > 0 else ("bottleneck" if float(key[4]) < 1 else "plain")
    return str(kind)  # "transformer", "mbconv"


def key_place(key):
    """(family, dims) of a measured-block key, None for a block without neighbours."""
    if key is None:
        return None
    kind = key[0]
    if kind == "transformer":  # ("transformer", d_model, seq, batch, dtype, phase)
        return "transformer", transformer_dims(key[1], key[2], key[3])
    if kind == "cnn":
        return key_family(key), cnn_dims(key[2], key[7], key[8])
    if kind == "mbconv":  # ("mbconv", c_in, exp_r, k, stride, se_r, c_out, h, batch, ...)
        return "mbconv", cnn_dims(max(1.0, key[1] * key[2]), key[7], key[8])
    return None


def corrected(family: str, phase: str) -> bool:
    """Whether blocks of `family` in `phase` take their neighbours' residuals."""
    return family == "transformer" or phase in CNN_PHASES


def part_place(part, batch: int):
    """(family, dims) of a model part that has measured neighbours' residuals, else None."""
    from perfmodel.predict.measured import part_block_key

    kind = part.key[0] if part.key else None
    if kind == "transformer_block":  # any transformer block (Llama-style ones too)
        cfg, seq = part.key[1], part.key[2]
        return "transformer", transformer_dims(int(cfg.d_model), int(seq), int(batch))
    # a CNN block like the suite's (its key, whatever dtype and phase)
    return key_place(part_block_key(part, batch, "-", True, require_grad=False))


def neighbour_scale(table: list, dims, phase: str, exclude=None, dtype: str | None = None,
                    family: str = "transformer") -> float:
    """The correction for a block of `family` at `dims` from `table` entries
    `[dims, phase, key, log residual]` (see module doc), only those of `phase` and (the
    key's dtype) `dtype`; 1.0 without neighbours."""
    if dims is None or not table:
        return 1.0
    found = []
    for d, ph, key, r in table:
        if ph != phase or (exclude is not None and tuple(key) == tuple(exclude)):
            continue
        if dtype is not None and str(key[-2]) != dtype:  # keys end with (dtype, phase)
            continue
        if key_family(key) != family:
            continue
        delta = np.abs(np.asarray(d, float) - np.asarray(dims, float))
        if delta.max() <= RADIUS:
            found.append((float(np.sqrt((delta ** 2).sum())), float(r)))
    if not found:
        return 1.0
    found.sort()
    near = found[:K if family == "transformer" else K_CNN]
    w = np.array([1.0 / (1.0 + dist) for dist, _ in near])
    r = np.array([res for _, res in near])
    return float(np.exp((w * r).sum() / w.sum()))
