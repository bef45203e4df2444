"""Error metrics of a prediction against measurements.

APE = |pred - true| / true. R2 is computed on log values for times (times span orders of
magnitude, so a linear R2 would only measure the largest ops) and on linear values for power
and energy (as GPPerf reports it). Spearman is the rank correlation of pred and true.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Scores:
    """Accuracy of one method on one set of held-out rows."""

    n: int
    mape: float  # mean absolute percentage error, in %
    median_ape: float  # in %
    p90_ape: float  # in %
    within_10: float  # share of rows with |error| <= 10%, in %
    r2: float  # on log values (time) or linear values (power/energy), see `log`
    spearman: float
    coverage: float  # share of true values inside [lo, hi], in %, over the rows with both bounds
    interval_n: int = 0  # rows with both bounds: a one-sided row ([lo, -]) claims no coverage

    def as_dict(self) -> dict:
        return asdict(self)


def ape(y_true, y_pred) -> np.ndarray:
    """Absolute percentage errors, in %."""
    y_true = np.asarray(y_true, dtype=float)
    return 100.0 * np.abs(np.asarray(y_pred, dtype=float) - y_true) / y_true


def r2(y_true, y_pred) -> float:
    """Coefficient of determination."""
    y_true = np.asarray(y_true, dtype=float)
    y_pred = np.asarray(y_pred, dtype=float)
    ss_res = float(np.sum((y_true - y_pred) ** 2))
    ss_tot = float(np.sum((y_true - y_true.mean()) ** 2))
    return 1.0 - ss_res / ss_tot if ss_tot > 0 else float("nan")


def spearman(a, b) -> float:
    """Spearman rank correlation (average ranks for ties)."""
    ra = _rank(np.asarray(a, dtype=float))
    rb = _rank(np.asarray(b, dtype=float))
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def _rank(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x), dtype=float)
    ranks[order] = np.arange(len(x), dtype=float)
    # average the ranks of ties
    _, inv, counts = np.unique(x, return_inverse=True, return_counts=True)
    sums = np.bincount(inv, weights=ranks)
    return sums[inv] / counts[inv]


def score(y_true, y_pred, lo=None, hi=None, log: bool = True) -> Scores:
    """Scores of predictions (and optional intervals) against positive true values."""
    y_true = np.asarray(y_true, dtype=float)
    y_pred = np.asarray(y_pred, dtype=float)
    ok = np.isfinite(y_true) & np.isfinite(y_pred) & (y_true > 0)
    if lo is not None:
        lo = np.asarray(lo, dtype=float)[ok]
        hi = np.asarray(hi, dtype=float)[ok]
    y_true, y_pred = y_true[ok], y_pred[ok]
    if len(y_true) == 0:
        nan = float("nan")
        return Scores(0, nan, nan, nan, nan, nan, nan, nan, 0)
    e = ape(y_true, y_pred)
    if log:
        fit = r2(np.log(y_true), np.log(np.maximum(y_pred, 1e-30)))
    else:
        fit = r2(y_true, y_pred)
    cov, n_iv = float("nan"), 0
    if lo is not None:
        both = np.isfinite(lo) & np.isfinite(hi)
        n_iv = int(both.sum())
        if n_iv:
            cov = 100.0 * float(np.mean((y_true[both] >= lo[both]) & (y_true[both] <= hi[both])))
    return Scores(
        n=int(len(y_true)),
        mape=float(e.mean()),
        median_ape=float(np.median(e)),
        p90_ape=float(np.percentile(e, 90)),
        within_10=100.0 * float(np.mean(e <= 10.0)),
        r2=fit,
        spearman=spearman(y_true, y_pred),
        coverage=cov,
        interval_n=n_iv,
    )
