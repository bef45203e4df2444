"""Baselines that run on the same splits as the learned model.

- roofline: max(FLOPs / peak, bytes / bandwidth) + launch overhead, nothing learned.
- linear ("Time Matters", 2024): time = a * FLOPs + b * bytes + c, per op kind and dtype,
  fitted by non-negative least squares on relative error (rows weighted by 1 / time^2) so
  that small ops count as much as large ones. Its coefficients are saved with a predictor.
- random forest (GPPerf-style): scikit-learn `MultiOutputRegressor(RandomForestRegressor)`
  on m, n, k, FLOPs, bytes and intensity predicting log time (and power where measured),
  one forest per op kind and dtype (its inputs do not say the dtype). For evaluation only;
  never saved.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

MIN_LINEAR_ROWS = 3
RF_COLUMNS = ("m", "n", "k", "flops", "bytes", "intensity")


@dataclass
class LinearBaseline:
    """time = a * FLOPs + b * bytes + c, per (kind, dtype), with a per-kind fallback."""

    coef: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # kind -> dtype|"*" -> [a, b, c]

    def fit(self, kinds, dtypes, flops, bytes_, time) -> "LinearBaseline":
        kinds = np.asarray(kinds, dtype=object)
        dtypes = np.asarray(dtypes, dtype=object)
        for kind in pd.unique(kinds):
            sel = kinds == kind
            per = {"*": _fit_linear(flops[sel], bytes_[sel], time[sel])}
            for d in pd.unique(dtypes[sel]):
                s2 = sel & (dtypes == d)
                if s2.sum() >= MIN_LINEAR_ROWS:
                    per[str(d)] = _fit_linear(flops[s2], bytes_[s2], time[s2])
            self.coef[str(kind)] = per
        return self

    def predict(self, kinds, dtypes, flops, bytes_) -> np.ndarray:
        """Predicted seconds; NaN for a kind the baseline was not fitted on."""
        kinds = np.asarray(kinds, dtype=object)
        dtypes = np.asarray(dtypes, dtype=object)
        out = np.full(len(kinds), np.nan)
        for kind in pd.unique(kinds):
            per = self.coef.get(str(kind))
            if per is None:
                continue
            sel = kinds == kind
            for d in pd.unique(dtypes[sel]):
                s2 = sel & (dtypes == d)
                a, b, c = per.get(str(d), per["*"])
                out[s2] = a * flops[s2] + b * bytes_[s2] + c
        return np.maximum(out, 1e-9)

    def to_dict(self) -> dict:
        return {"form": "time_s = a*flops + b*bytes + c", "coef": self.coef}

    @classmethod
    def from_dict(cls, d: dict) -> "LinearBaseline":
        return cls(coef={k: {dt: [float(x) for x in v] for dt, v in per.items()} for k, per in d["coef"].items()})


def _fit_linear(flops, bytes_, time) -> list[float]:
    """Non-negative least squares of relative error; returns [a, b, c]."""
    from scipy.optimize import nnls

    X = np.column_stack([flops, bytes_, np.ones_like(flops)]) / time[:, None]
    scale = np.abs(X).max(axis=0)
    scale[scale == 0] = 1.0
    coef, _ = nnls(X / scale, np.ones_like(time))
    return [float(v) for v in coef / scale]


def rf_matrix(df: pd.DataFrame, flops, bytes_) -> np.ndarray:
    """GPPerf's inputs: m, n, k (NaN -> -1 for ops without them), FLOPs, bytes, intensity."""
    cols = []
    for c in ("m", "n", "k"):
        v = pd.to_numeric(df[c], errors="coerce").to_numpy(dtype=float) if c in df.columns else np.full(len(df), np.nan)
        cols.append(np.where(np.isfinite(v), v, -1.0))
    cols += [flops, bytes_, flops / np.maximum(bytes_, 1.0)]
    return np.column_stack(cols)


@dataclass
class ForestBaseline:
    """GPPerf-style multi-output random forest: log time and (where measured) power."""

    n_estimators: int = 100
    seed: int = 0
    model: object = None
    has_power: bool = False

    def fit(self, X: np.ndarray, time, power=None) -> "ForestBaseline":
        from sklearn.ensemble import RandomForestRegressor
        from sklearn.multioutput import MultiOutputRegressor

        Y = [np.log(time)]
        self.has_power = power is not None and np.isfinite(power).all()
        if self.has_power:
            Y.append(np.asarray(power, dtype=float))
        rf = RandomForestRegressor(n_estimators=self.n_estimators, random_state=self.seed, n_jobs=2)
        self.model = MultiOutputRegressor(rf).fit(X, np.column_stack(Y))
        return self

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(seconds, watts or NaN)."""
        Y = self.model.predict(X)
        power = Y[:, 1] if self.has_power else np.full(len(X), np.nan)
        return np.exp(Y[:, 0]), power
