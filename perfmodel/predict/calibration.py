"""Calibrate the sum of per-op predictions against measured blocks, and its interval.

A block (or a whole model) runs more than the sum of its ops' isolated kernel times:
per-op framework overhead (dispatch, autograd bookkeeping, allocation), glue kernels the
op list prices as ideal memory traffic, and kernels that run faster or slower inside a
block than alone (cache reuse, fusion). With the per-op predictions `t_i` of a block's
ops grouped into twelve sums,

    x = [sum t_i over the forward pass's convolutions, GEMMs (incl. bmm), attention ops,
         normalisations, and other (vector) ops, number of forward ops,
         the same six for the backward pass]

(one coefficient per op class: on the CPU profile of this project the class split cuts the
out-of-fold median block error from 28 % to 22 % against a single matrix/vector split.
Normalisations have their own class because their backward kernels (batch norm's above
all) run far slower than their memory traffic, while elementwise kernels do not: with one
`vec` class the AMD profile's (2026-11-23) backward vector coefficient was 3.3, which priced the
~180 small elementwise backward kernels of a Llama-style block stack (composite RMSNorm,
rotary embeddings) at 3.3x too; split, it is 1.9 (normalisations 5.9), and the held-out
Llama family's x4 training steps went from +23.2 % to +18.9 % median error, the block
cross-validation error unchanged; `neighbours.py` then took it to 7.5 %)
the calibrated time is `beta . x` with `beta >= 0` fitted by non-negative least squares
on relative error (rows divided by the measured time) over the profile's `blocks` suite
(phases `fwd` and `fwd_bwd`). The count terms are the per-op overheads; the sum terms
rescale the kernels.

**Measured classes keep their times.** Once a profile's per-op predictor has learned
models of measured convolutions, GEMMs and vector ops (the `vector` suite), a class whose
ops it prices (`measured_classes`: conv, GEMM, norm, vector, and attention where measured)
keeps coefficient 1; the fit then prices the per-op overheads (the count terms) and the
classes the roofline prices. A profile without one of the three keeps the free fit. The
few ops of a pinned vector class that the vector suite does not time (pooling, embedding,
copies, dropout, group norm: `GUARDED_KINDS` in `perfmodel.learn.predictor`) keep their
roofline times (in the shipped models well under 3 % of the vector bytes). Free,
twelve coefficients trade against each other: on the AMD profile with measured vector ops
(2026-12-01) the free fit set the float32 backward norm coefficient to 0 and the forward
one to 2.7, which fit the blocks suite's small maps (out-of-fold block error 6.4 %, 8.3 %
pinned) but priced a batch norm's backward at nothing in a 224-pixel CNN: held-out
families' training steps -8.4 % (signed median), pinned -2.0 %. Over the 36 held-out
whole models of the validation suite and 6 CNNs timed apart at resolutions 128 and 224
(`perfmodel validate`; session notes), the median |error| was 5.9 % as shipped before
(roofline vector ops, free fit), 6.3 % with measured vector ops and a free fit, 4.4 % with
measured vector ops pinned (training steps 3.3 %, inference 8.3 %: CNN inference stays
under-predicted, -11 % signed: a forward CNN block runs slower than its ops timed alone,
by 8-11 % in log at 0.5-2 MB activations, a bias by size the pinned fit cannot take;
`neighbours.py` now gives unmeasured CNN blocks their forward neighbours' residual).
Only the blocks suite is used: the `validation` suite (whole models) never enters this fit
(its unscaled and x2 models give one whole-model scale per phase afterwards,
`assembly.py`). The optimizer step's pointwise kernels are not calibrated
(`model.optimizer_seconds`): they stream from DRAM, unlike the
cache-resident vector ops of a block measured in a loop.

Interval: split-conformal on the blocks. Out-of-fold log residuals (5 folds, grouped by
block shape so that a shape's dtypes and phases stay together) give quantiles `q_lo, q_hi`
at the requested coverage, and a model's interval is `[T e^q_lo, T e^q_hi]`. Applying a
block's relative error to a whole model assumes the errors of its blocks are perfectly
correlated (the conservative choice: independent errors would shrink with depth).
Coverage on the validation suite is reported by `perfmodel validate`.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from perfmodel.errors import PerfmodelError

CLASSES = {"conv": ("conv2d", "conv3d"), "gemm": ("gemm", "bmm", "linear"),
           "attention": ("attention",),
           "norm": ("batch_norm", "layer_norm", "rms_norm", "group_norm")}
FEATURES = tuple(f"{c}_{ph}" for ph in ("fwd", "bwd")
                 for c in ("conv", "gemm", "attention", "norm", "vec", "n"))
IDENTITY = (1.0, 1.0, 1.0, 1.0, 1.0, 0.0) * 2  # uncalibrated: the plain sum of op times
HALF = len(FEATURES) // 2  # forward features first, then backward
MIN_BLOCK_ROWS = 12
FOLDS = 5
DEFAULT_COVERAGE = 0.9


def feature_columns(ops: pd.DataFrame, times: np.ndarray) -> list[np.ndarray]:
    """Per-op contributions to the features (summing them gives `features`)."""
    t = np.asarray(times, dtype=float)
    op = ops["op"].astype(str).to_numpy()
    masks = [np.isin(op, kinds) for kinds in CLASSES.values()]
    vec = ~np.logical_or.reduce(masks)
    bwd = (ops["phase"].astype(str) == "bwd").to_numpy()
    out = []
    for ph in (~bwd, bwd):
        out += [t * (ph & m) for m in masks] + [t * (ph & vec), ph.astype(float)]
    return out


def features(ops: pd.DataFrame, times: np.ndarray) -> np.ndarray:
    """The calibration features of an op table with per-op seconds `times`."""
    if not len(ops):
        return np.zeros(len(FEATURES))
    return np.array([c.sum() for c in feature_columns(ops, times)])


@dataclass
class Calibration:
    """Coefficients of `beta . x`, conformal log-residual quantiles and fit statistics."""

    beta: tuple[float, ...] = IDENTITY
    q_lo: float = float("nan")
    q_hi: float = float("nan")
    coverage: float = DEFAULT_COVERAGE
    rows: int = 0
    power_w: float = float("nan")  # mean measured power over the blocks (NaN: none)
    cv_median_ape: float = float("nan")  # out-of-fold median |error| on the blocks
    source: str = "none"  # "blocks" | "none"
    pinned: tuple = ()  # features whose coefficient was fixed at 1 (measured kernels)
    info: dict = field(default_factory=dict)
    # measured blocks with neighbours: [dims, phase, key, log(measured / calibrated)]
    # (`neighbours.py`)
    residuals: list = field(default_factory=list)

    @property
    def calibrated(self) -> bool:
        return self.source == "blocks"

    def time(self, x: np.ndarray) -> float:
        """Calibrated seconds for features `x`."""
        return float(np.dot(self.beta, x))

    def interval(self, t: float) -> tuple[float, float]:
        """(lo, hi) seconds around a calibrated time (NaN when not calibrated)."""
        if not np.isfinite(self.q_lo):
            return float("nan"), float("nan")
        return t * float(np.exp(self.q_lo)), t * float(np.exp(self.q_hi))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Calibration":
        d = dict(d)
        d["beta"] = tuple(d["beta"])
        d["pinned"] = tuple(d.get("pinned", ()))
        return cls(**d)


@dataclass
class Calibrations:
    """One `Calibration` per dtype measured in the blocks suite, and one over all of them."""

    by_dtype: dict[str, Calibration] = field(default_factory=dict)
    pooled: Calibration = field(default_factory=Calibration)

    def get(self, dtype: str) -> Calibration:
        """The dtype's own calibration when it has one, else the pooled one."""
        return self.by_dtype.get(dtype, self.pooled)

    @property
    def calibrated(self) -> bool:
        return self.pooled.calibrated or any(c.calibrated for c in self.by_dtype.values())

    @property
    def rows(self) -> int:
        return self.pooled.rows

    @property
    def power_w(self) -> float:
        return self.pooled.power_w

    def to_json(self) -> str:
        return json.dumps({"pooled": self.pooled.to_dict(),
                           "by_dtype": {k: v.to_dict() for k, v in self.by_dtype.items()}})

    @classmethod
    def from_json(cls, text: str) -> "Calibrations":
        d = json.loads(text)
        return cls({k: Calibration.from_dict(v) for k, v in d["by_dtype"].items()},
                   Calibration.from_dict(d["pooled"]))


def fit_calibration(X: np.ndarray, y: np.ndarray, groups: np.ndarray,
                    coverage: float = DEFAULT_COVERAGE, seed: int = 0,
                    pinned=None) -> Calibration:
    """NNLS fit of `beta` on relative error, with grouped K-fold conformal quantiles;
    `pinned`: a mask over FEATURES of the coefficients fixed at 1 (`measured_classes`)."""
    X, y = np.asarray(X, float), np.asarray(y, float)
    ok = np.isfinite(X).all(axis=1) & np.isfinite(y) & (y > 0)
    X, y, groups = X[ok], y[ok], np.asarray(groups)[ok]
    if len(y) < MIN_BLOCK_ROWS:
        raise PerfmodelError(f"{len(y)} usable block measurements; calibration needs "
                             f"{MIN_BLOCK_ROWS}")
    beta = _nnls_relative(X, y, pinned)
    uniq = np.unique(groups)
    rng = np.random.default_rng(seed)
    fold_of = dict(zip(rng.permutation(uniq), np.arange(len(uniq)) % FOLDS))
    folds = np.array([fold_of[g] for g in groups])
    oof = np.full(len(y), np.nan)
    for f in range(min(FOLDS, len(uniq))):
        test = folds == f
        if test.all() or not test.any():
            continue
        b = _nnls_relative(X[~test], y[~test], pinned)
        oof[test] = X[test] @ b
    good = np.isfinite(oof) & (oof > 0)
    r = np.log(y[good] / oof[good])
    alpha = 1.0 - coverage
    n = len(r)
    # finite-sample split-conformal levels for each tail
    lo_level = max(0.0, np.floor(alpha / 2 * (n + 1)) / n)
    hi_level = min(1.0, np.ceil((1 - alpha / 2) * (n + 1)) / n)
    q_lo = float(np.quantile(r, lo_level)) if n else float("nan")
    q_hi = float(np.quantile(r, hi_level)) if n else float("nan")
    ape = np.abs(oof[good] / y[good] - 1.0)
    return Calibration(beta=tuple(float(b) for b in beta), q_lo=min(q_lo, 0.0),
                       q_hi=max(q_hi, 0.0), coverage=coverage, rows=int(len(y)),
                       cv_median_ape=float(np.median(ape)) if n else float("nan"),
                       source="blocks",
                       pinned=tuple(f for f, p in zip(FEATURES, _mask(pinned)) if p))


def _mask(pinned) -> np.ndarray:
    return np.zeros(len(FEATURES), bool) if pinned is None else np.asarray(pinned, bool)


# the op kinds of the per-op predictor (`perfmodel.learn.kinds`) that price each class
CLASS_KINDS = {"conv": "conv", "gemm": "gemm", "attention": "attention", "norm": "elementwise",
               "vec": "elementwise"}


PINNED_WHEN = ("conv", "gemm", "elementwise")  # the kinds that must all be measured


def measured_classes(kinds) -> np.ndarray:
    """Mask over FEATURES of the op classes whose per-op times come from a learned model of
    measured kernels (`kinds`: the predictor's op kinds): their coefficients stay 1.

    Only when the convolutions, GEMMs and vector ops are all measured: pinning some
    classes while others stay on the roofline hands the free ones the difference (the
    Intel profile, without a vector suite, priced norm backward at 0 with conv and GEMM
    pinned, 6.0 in its free fit). Nothing is pinned otherwise. Attention is pinned only
    where measured: no per-op suite times it yet, so it is fitted (the roofline prices
    it), as the docstring of this module says of roofline-priced classes."""
    kinds = set(kinds)
    if not set(PINNED_WHEN) <= kinds:
        return np.zeros(len(FEATURES), bool)
    return np.array([not f.startswith("n_") and CLASS_KINDS[f.rsplit("_", 1)[0]] in kinds
                     for f in FEATURES])


def _nnls_relative(X: np.ndarray, y: np.ndarray, pinned=None, iterations: int = 8) -> np.ndarray:
    """min sum w_i (beta . x_i / y_i - 1)^2, beta >= 0, with Huber weights (IRLS);
    coefficients of the `pinned` features fixed at 1.

    Robust to the outliers a shared machine produces (a block slowed 100x by another
    process must not drag the coefficients).
    """
    from scipy.optimize import nnls

    pin = np.zeros(X.shape[1], bool) if pinned is None else np.asarray(pinned, bool)
    if pin.shape != (X.shape[1],):
        raise PerfmodelError(f"pinned mask of {pin.size} entries for {X.shape[1]} features")
    if pin.all():  # nothing left to fit: every coefficient fixed at 1
        return np.ones(X.shape[1])
    A = X / y[:, None]
    target = 1.0 - A[:, pin].sum(axis=1)
    A = A[:, ~pin]
    scale = np.where(A.max(axis=0) > 0, A.max(axis=0), 1.0)
    A = A / scale
    w = np.ones(len(y))
    coef = np.zeros(A.shape[1])
    for _ in range(iterations):
        sw = np.sqrt(w)
        coef, _ = nnls(A * sw[:, None], sw * target)
        r = np.abs(A @ coef - target)
        k = max(1.345 * np.median(r) / 0.6745, 1e-3)
        w = np.where(r <= k, 1.0, k / np.maximum(r, 1e-12))
    out = np.ones(X.shape[1])
    out[~pin] = coef / scale
    return out
