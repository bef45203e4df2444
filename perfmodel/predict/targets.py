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
    return validation[keep]
