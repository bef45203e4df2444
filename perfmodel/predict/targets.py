"""The model-level accuracy targets of issue 5: which candidates, at which settings.

CPU target (measured on this machine class): RegNetX-400MF and a GPT-style base, each
scaled x4 by at least 6 strategies; predicted against measured training-step time (median
error <= 10 %, Spearman >= 0.9 across candidates, same top choice). The profilers'
`validation` suite must measure exactly these candidates (phase `train_step`, float32 on
CPU) for `benchmarks/bench_model_level.py` and `perfmodel validate` to check the target:

- `RegNetX-400MF`, overrides `{"resolution": 64}`, factor 4.0, strategies
  `d, w, r, dw, dwr, d1_w8_g8_r1` (and the unscaled base), batch 8;
- `gpt2`, overrides `{"n_layers": 4, "d_model": 256, "n_heads": 4, "d_ff": 1024,
  "seq_len": 128, "vocab_size": 4096}`, factor 4.0, strategies `d, w, s, dw, ds, ws, dws`
  (and the unscaled base), batch 4.

Other factors and batch sizes in the suite are welcome (more evaluation points); the
target rows are selected with `target_rows`.

The calibration data must cover these candidates' shapes, or the prediction extrapolates:
RegNetX-400MF at resolution 64 ends in 4x4 and 2x2 feature maps (stages 3 and 4) with
widths up to ~770 after x4 width scaling, where PyTorch's CPU convolution leaves oneDNN for
its slow im2col path (`_slow_conv2d`, 3-4x slower per FLOP). The CPU `blocks` and `conv`
suites therefore need resolutions 2 and 4 (today: 7 and up) and widths up to 1024 (today:
256), group widths 16-32; the transformer blocks need d_model 256-1024 at seq 128-512.
Measure with `--threads 1` (or on an otherwise idle machine): with two threads on a
shared two-core machine, OpenMP barriers make block times swing 10-100x. The first
points of a suite also ran 5-10x slow in a development profile (warm-up).
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

CNN_BASE = "RegNetX-400MF"
GPT_BASE = "gpt2"
TARGET_FACTOR = 4.0
CNN_STRATEGIES = ("d", "w", "r", "dw", "dwr", "d1_w8_g8_r1")
GPT_STRATEGIES = ("d", "w", "s", "dw", "ds", "ws", "dws")
CPU_OVERRIDES = {
    CNN_BASE: {"resolution": 64},
    GPT_BASE: {"n_layers": 4, "d_model": 256, "n_heads": 4, "d_ff": 1024, "seq_len": 128,
               "vocab_size": 4096},
}
CPU_BATCH = {CNN_BASE: 8, GPT_BASE: 4}
MIN_STRATEGIES = 6

# Families the validation suite measures only to score generalisation: a Llama-style
# transformer (RMSNorm, SwiGLU, rotary positions, grouped-query attention) and
# RegNetY-400MF (squeeze-excitation). The blocks suite never times their candidates'
# blocks, so every prediction of them is a calibrated sum of ops (corrected by measured
# blocks of other shapes: `neighbours.py`). They are never fitted on
# (not by the whole-model scale, the interval or the rank resolution: `assembly.row_fold`)
# and are not part of the target. Their settings: profilers.suites.validation.
# On a CPU, also three unscaled CNNs at their own resolution, 224 (the CPU candidates run
# at 64): `FULL_RESOLUTION_MODELS`.
HELD_OUT_BASE = "Llama-3-8B"
FULL_RESOLUTION_MODELS = ("R-50-1x64d", "RegNetX-200MF", "EN-B0")
HELD_OUT_MODELS = (HELD_OUT_BASE, "RegNetY-400MF") + FULL_RESOLUTION_MODELS


@dataclass(frozen=True)
class Target:
    """One family of the target: base model, strategies, factor, batch, overrides."""

    base: str
    strategies: tuple[str, ...]
    factor: float
    batch: int
    overrides: dict


CPU_TARGETS = (
    Target(CNN_BASE, CNN_STRATEGIES, TARGET_FACTOR, CPU_BATCH[CNN_BASE], CPU_OVERRIDES[CNN_BASE]),
    Target(GPT_BASE, GPT_STRATEGIES, TARGET_FACTOR, CPU_BATCH[GPT_BASE], CPU_OVERRIDES[GPT_BASE]),
)


def target_rows(validation: pd.DataFrame, phase: str = "train_step") -> pd.DataFrame:
    """Rows of a validation frame that belong to the target: factor 4, the target strategies."""
    keep = (validation["phase"] == phase) & (validation["factor"].astype(float) == TARGET_FACTOR)
    strategies = set(CNN_STRATEGIES) | set(GPT_STRATEGIES)
    keep &= validation["strategy"].astype(str).isin(strategies)
    keep &= validation["model"].astype(str).isin((CNN_BASE, GPT_BASE))
    return validation[keep]


def held_out_rows(validation: pd.DataFrame, phase: str = "train_step") -> pd.DataFrame:
    """Rows of the held-out families (`HELD_OUT_MODELS`) at the target factor."""
    keep = (validation["phase"] == phase) & (validation["factor"].astype(float) == TARGET_FACTOR)
    keep &= validation["model"].astype(str).isin(HELD_OUT_MODELS)
    return validation[keep]
