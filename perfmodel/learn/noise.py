"""How well a measurement set predicts itself: a reference floor for held-out accuracy.

Within one series of measurements that differ only in one size (the token count of one
layer, the batch count of one matrix product), each row is predicted by log-log linear
interpolation between its two neighbours along that size. Where the series is smooth this
is nearly exact; where the GPU's clock, a kernel switch or timing noise makes neighbours
jump, it fails, and so will any model whose features vary smoothly with size. The floor
uses the measurements of the very series it scores, which a held-out predictor never sees,
so a learned model that comes near it has little left to learn from shape features.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from perfmodel.errors import PerfmodelError


def interpolation_floor(df: pd.DataFrame, along: str, within) -> np.ndarray:
    """Seconds predicted for each row from its two neighbours along `along` in its `within` series.

    `within`: the column(s) naming a series. Rows at either end of a series, and rows of a
    series with fewer than three distinct sizes, are NaN.
    """
    within = [within] if isinstance(within, str) else list(within)
    missing = [c for c in [along, "time_s", *within] if c not in df.columns]
    if missing:
        raise PerfmodelError(f"interpolation floor needs column(s) {', '.join(missing)}")
    x = np.log(pd.to_numeric(df[along], errors="coerce").to_numpy(dtype=float))
    y = np.log(df["time_s"].to_numpy(dtype=float))
    key = pd.factorize(df[within].astype(str).agg("|".join, axis=1))[0]
    order = np.lexsort((x, key))
    xs, ys, ks = x[order], y[order], key[order]
    pred = np.full(len(df), np.nan)
    inner = np.zeros(len(df), dtype=bool)
    inner[1:-1] = (ks[:-2] == ks[1:-1]) & (ks[2:] == ks[1:-1]) & (xs[2:] > xs[:-2])
    i = np.flatnonzero(inner)
    w = (xs[i] - xs[i - 1]) / (xs[i + 1] - xs[i - 1])
    pred[order[i]] = np.exp(ys[i - 1] + w * (ys[i + 1] - ys[i - 1]))
    return pred
