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
  nearest: residual bottleneck blocks split two ways, `regnet` (a bottleneck as wide as
  the block, with or without squeeze-excitation: RegNetX and RegNetY) and `bottleneck` (a
  bottleneck narrower than the block: ResNet), and `mbconv` (EfficientNet; width = the
  expanded width, where its work is).
CNN blocks are noisier than transformer blocks (many short kernels) and vary less with
shape, hence more neighbours. Chosen on the blocks suite itself, leave-one-shape-out
(AMD CPU profile, 2026-12-01, 809 CNN block rows): median |log error| of the forward
blocks 0.105 -> 0.081 with 8 neighbours (0.083 with 4), the signed median bias of
forward RegNetX blocks +0.056 -> -0.005, of RegNetY +0.110 -> +0.013; splitting the
families by stride as well gained nothing (0.079). Forward + backward CNN blocks are not
corrected (`CNN_PHASES`): there the same test gained next to nothing (0.098 -> 0.100 with
4 neighbours, 0.093 with 8) - the calibrated sum already fits them without a bias
by size - and on the held-out families of `perfmodel validate` correcting them moved
training steps from 2.4 % to 3.5 % median error. MBConv neighbours are rough: the suite
times expansion 6 only (EfficientNet's first stage has none) and mixes 3x3 and 5x5
depthwise kernels within the family.

Llama-style transformer blocks (RMSNorm, SwiGLU or rotary positions) are a family of their
own (`llama`) where the profile measured the blocks suite's `llama_block`; a profile without
them (the shipped CPU ones) corrects them by the GPT-style blocks' residuals. Paired timing on
the AMD CPU (2026-12-02, `transformer_block` rows the profile measured timed again beside the
suite's Llama blocks of the same shapes, 16 shapes): against the shipped profile's predictions,
the Llama blocks ran 0.96x as much above them as the GPT-style ones above their own
measurements (fwd 0.97, fwd_bwd 0.91): the GPT-style correction stands in for a Llama one.

RegNetY blocks were first their own family (`se`); now they share RegNetX's (`regnet`).
The suite's squeeze-excitation blocks are few (31 steady rows against 109 RegNetX ones)
and sit mostly on 7-56 px maps, so a RegNetY block of the x4 candidates (208-880 wide on
2-16 px maps) had few and distant neighbours; its convolutions are a RegNetX block's, the
squeeze-excitation adds small ops.
`perfmodel validate`, held out (no RegNetY model is in any fit): RegNetY inference 8.7% ->
4.2% median error (AMD profile, 2026-12-01). Leave-one-shape-out on the suite's own SE
blocks (which have neighbours either way) does not decide between the two: median |log
error| uncorrected / own family / pooled, AMD 0.091 / 0.104 / 0.100 (31 blocks), Intel
0.117 / 0.092 / 0.098 (27); the RegNetX blocks, AMD 0.092 / 0.051 / 0.049 (109), Intel
0.091 / 0.086 / 0.084 (89). ResNet bottleneck blocks keep their own family: uncorrected
/ corrected AMD 0.116 / 0.118 (37), Intel 0.118 / 0.106 (32).

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
TRANSFORMER_FAMILIES = ("transformer", "llama")


def transformer_dims(d_model: int, seq: int, batch: int) -> tuple[float, float, float]:
    return (math.log2(d_model), math.log2(seq), math.log2(batch))


def cnn_dims(width: float, side: int, batch: int) -> tuple[float, float, float]:
    return (math.log2(width), math.log2(side), math.log2(batch))


def transformer_family(cfg) -> str:
    """`llama` for a block with any of Llama's parts (RMSNorm, SwiGLU, rotary positions),
    else `transformer` (GPT-style)."""
    llama = cfg.norm == "rmsnorm" or cfg.mlp == "swiglu" or cfg.position == "rope"
    return "llama" if llama else "transformer"


def key_family(key) -> str:
    """The neighbour family of a measured-block key (`measured._row_key`)."""
    kind = key[0]
    if kind == "cnn":  # ("cnn", c_in, c_out, stride, bot_mul, group_w, se_r, h, ...)
        return "bottleneck" if float(key[4]) < 1 else "regnet"
    return str(kind)  # "transformer", "llama", "mbconv"


def key_place(key):
    """(family, dims) of a measured-block key, None for a block without neighbours."""
    if key is None:
        return None
    kind = key[0]
    if kind in ("transformer", "llama"):  # (kind, d_model, seq, batch, dtype, phase)
        return kind, transformer_dims(key[1], key[2], key[3])
    if kind == "cnn":
        return key_family(key), cnn_dims(key[2], key[7], key[8])
    if kind == "mbconv":  # ("mbconv", c_in, exp_r, k, stride, se_r, c_out, h, batch, ...)
        return "mbconv", cnn_dims(max(1.0, key[1] * key[2]), key[7], key[8])
    return None


def corrected(family: str, phase: str) -> bool:
    """Whether blocks of `family` in `phase` take their neighbours' residuals."""
    return family in TRANSFORMER_FAMILIES or phase in CNN_PHASES


def part_place(part, batch: int):
    """(family, dims) of a model part that has measured neighbours' residuals, else None."""
    from perfmodel.predict.measured import part_block_key

    kind = part.key[0] if part.key else None
    if kind == "transformer_block":
        cfg, seq = part.key[1], part.key[2]
        return transformer_family(cfg), transformer_dims(int(cfg.d_model), int(seq), int(batch))
    # a CNN block like the suite's (its key, whatever dtype and phase)
    return key_place(part_block_key(part, batch, "-", True, require_grad=False))


class NeighbourIndex:
    """A residual table (`[dims, phase, key, log residual]` entries) split by family and
    phase into arrays, for a lookup per distinct part (a ranking asks for hundreds)."""

    def __init__(self, table: list):
        groups: dict[tuple, list] = {}
        for d, ph, key, r in table:
            groups.setdefault((key_family(key), ph), []).append((d, tuple(key), r))
        self._groups = {
            g: (np.array([e[0] for e in rows], float), [e[1] for e in rows],
                np.array([str(e[1][-2]) for e in rows]),  # keys end with (dtype, phase)
                np.array([e[2] for e in rows], float))
            for g, rows in groups.items()}

    def scale(self, dims, phase: str, exclude=None, dtype: str | None = None,
              family: str = "transformer", fallback: str | None = None) -> float:
        """The correction for a block of `family` at `dims` (module doc): the `phase` and
        `dtype` entries of its family within `RADIUS`, never the entry keyed `exclude`;
        where its family has none, those of the `fallback` family (a Llama-style block:
        the GPT-style ones); 1.0 without neighbours."""
        for fam in (family, fallback):
            hit = self._lookup(dims, phase, exclude, dtype, fam) if fam else None
            if hit is not None:
                return hit
        return 1.0

    def _lookup(self, dims, phase, exclude, dtype, family) -> float | None:
        group = self._groups.get((family, phase)) if dims is not None else None
        if group is None:
            return None
        D, keys, dtypes, res = group
        delta = np.abs(D - np.asarray(dims, float))
        ok = delta.max(axis=1) <= RADIUS
        if dtype is not None:
            ok &= dtypes == dtype
        if exclude is not None:
            own = tuple(exclude)
            ok &= ~np.array([k == own for k in keys], dtype=bool)
        if not ok.any():
            return None
        dist, r = np.sqrt((delta[ok] ** 2).sum(axis=1)), res[ok]
        # nearest first; equal distances (a grid's are often equal) by residual, so the
        # choice never depends on the order of the profile's rows
        near = np.lexsort((r, dist))[:K if family in TRANSFORMER_FAMILIES else K_CNN]
        w = 1.0 / (1.0 + dist[near])
        return float(np.exp((w * r[near]).sum() / w.sum()))


def neighbour_scale(table: list, dims, phase: str, exclude=None, dtype: str | None = None,
                    family: str = "transformer") -> float:
    """`NeighbourIndex(table).scale(...)`: one lookup in a table of
    `[dims, phase, key, log residual]` entries."""
    if dims is None or not table:
        return 1.0
    return NeighbourIndex(table).scale(dims, phase, exclude, dtype, family)
