"""Split-conformal prediction intervals on log-scale residuals.

Residuals r = log(measured) - log(predicted) of a model on calibration rows it was not fitted
on (whole groups held out) give the interval [pred * exp(q_lo), pred * exp(q_hi)], with q_lo,
q_hi the finite-sample-corrected alpha/2 and 1 - alpha/2 quantiles of r. Residuals are
binned by predicted log value (Mondrian conformal): small ops, dominated by launch overhead
and timer noise, get wider intervals than large ones, and each bin keeps its own coverage.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

MIN_PER_BIN = 200
MAX_BINS = 4


@dataclass(frozen=True)
class Conformal:
    """Calibrated log-residual quantiles per bin of predicted log value."""

    coverage: float  # target share of true values inside the interval (e.g. 0.9)
    edges: tuple[float, ...]  # inner bin edges on the predicted log value (len = bins - 1)
    q_lo: tuple[float, ...]  # per bin, log-residual lower quantile (<= 0 usually)
    q_hi: tuple[float, ...]  # per bin, log-residual upper quantile
    n: int  # calibration rows

    def bounds(self, log_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper log offsets to add to `log_pred`."""
        idx = np.searchsorted(np.asarray(self.edges), log_pred, side="right")
        return np.asarray(self.q_lo)[idx], np.asarray(self.q_hi)[idx]

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> "Conformal":
        """Inverse of `to_dict`; ValueError when the numbers cannot be a calibration (a
        hand-edited file), so that `bounds` never indexes past them."""
        c = cls(
            coverage=float(d["coverage"]), edges=tuple(map(float, d["edges"])),
            q_lo=tuple(map(float, d["q_lo"])), q_hi=tuple(map(float, d["q_hi"])), n=int(d["n"]),
        )
        edges, lo, hi = (np.asarray(v, dtype=float) for v in (c.edges, c.q_lo, c.q_hi))
        if not 0 < c.coverage < 1:
            raise ValueError(f"interval coverage {c.coverage} is not between 0 and 1")
        if not (np.isfinite(edges).all() and (np.diff(edges) > 0).all()):
            raise ValueError(f"interval edges {list(c.edges)} are not finite and strictly increasing")
        if not len(lo) == len(hi) == len(edges) + 1:
            raise ValueError(f"interval has {len(lo)} q_lo and {len(hi)} q_hi for {len(edges) + 1} "
                             f"bin(s) ({len(edges)} edge(s)); each needs one per bin")
        if not (np.isfinite(lo).all() and np.isfinite(hi).all()):
            raise ValueError(f"interval quantiles q_lo {list(c.q_lo)}, q_hi {list(c.q_hi)} are not all finite")
        if (lo > hi).any():
            raise ValueError(f"interval q_lo {list(c.q_lo)} exceeds q_hi {list(c.q_hi)}")
        if c.n < 1:
            raise ValueError(f"interval calibrated on n = {c.n} rows; needs at least 1")
        return c


def _quantiles(r: np.ndarray, alpha: float) -> tuple[float, float]:
    """Finite-sample split-conformal quantiles (each tail gets alpha/2)."""
    n = len(r)
    s = np.sort(r)
    k_hi = int(np.ceil((n + 1) * (1 - alpha / 2)))
    k_lo = int(np.floor((n + 1) * (alpha / 2)))
    hi = s[min(k_hi, n) - 1] if k_hi <= n else s[-1] + (s[-1] - s[0] if n > 1 else 1.0)
    lo = s[k_lo - 1] if k_lo >= 1 else s[0] - (s[-1] - s[0] if n > 1 else 1.0)
    return float(lo), float(hi)


def calibrate(residuals, log_pred, coverage: float = 0.9,
              min_per_bin: int = MIN_PER_BIN, max_bins: int = MAX_BINS) -> Conformal:
    """Fit interval quantiles from held-out residuals (log true - log pred)."""
    r = np.asarray(residuals, dtype=float)
    p = np.asarray(log_pred, dtype=float)
    ok = np.isfinite(r) & np.isfinite(p)
    r, p = r[ok], p[ok]
    if len(r) == 0:
        raise ValueError("no calibration residuals")
    alpha = 1.0 - coverage
    bins = int(max(1, min(max_bins, len(r) // min_per_bin)))
    edges = np.quantile(p, np.linspace(0, 1, bins + 1)[1:-1]) if bins > 1 else np.array([])
    edges = np.unique(edges)
    idx = np.searchsorted(edges, p, side="right")
    pooled = _quantiles(r, alpha)
    q_lo, q_hi = [], []
    for b in range(len(edges) + 1):
        rb = r[idx == b]
        lo, hi = _quantiles(rb, alpha) if len(rb) >= min_per_bin // 2 else pooled
        q_lo.append(lo)
        q_hi.append(hi)
    return Conformal(coverage=float(coverage), edges=tuple(map(float, edges)),
                     q_lo=tuple(q_lo), q_hi=tuple(q_hi), n=int(len(r)))
