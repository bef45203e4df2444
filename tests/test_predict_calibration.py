"""Block calibration: NNLS recovers known coefficients, conformal intervals cover, round trip."""
from __future__ import annotations

import numpy as np
import pytest

from perfmodel.errors import PerfmodelError
from perfmodel.predict.calibration import (Calibration, Calibrations, features,
                                           fit_calibration)


def synthetic(n, rng, beta, noise=0.05):
    cols = []
    for _ in range(2):  # forward, backward: conv, gemm, attention, vector seconds; op count
        cols += [rng.uniform(1e-4, 1e-2, n), rng.uniform(0, 5e-3, n), rng.uniform(0, 2e-3, n),
                 rng.uniform(1e-5, 1e-3, n), rng.integers(5, 80, n)]
    X = np.column_stack(cols).astype(float)
    y = X @ beta * np.exp(rng.normal(0, noise, n))
    return X, y


def test_nnls_recovers_coefficients_and_resists_outliers():
    rng = np.random.default_rng(1)
    beta = np.array([1.5, 1.1, 2.0, 3.0, 2e-5, 1.2, 0.9, 2.5, 4.0, 3e-5])
    X, y = synthetic(400, rng, beta, noise=0.02)
    y[:10] *= 50  # a few blocks slowed down by another process
    cal = fit_calibration(X, y, np.arange(len(y)))
    assert np.allclose(cal.beta, beta, rtol=0.1)
    assert cal.cv_median_ape < 0.05 and cal.calibrated


def test_conformal_interval_covers_held_out_blocks():
    rng = np.random.default_rng(2)
    beta = np.array([2.0, 1.0, 1.5, 1.0, 1e-5, 2.5, 1.2, 1.0, 1.0, 1e-5])
    X, y = synthetic(400, rng, beta, noise=0.1)
    cal = fit_calibration(X, y, np.arange(len(y)) // 2, coverage=0.9)
    Xt, yt = synthetic(2000, rng, beta, noise=0.1)
    pred = Xt @ np.asarray(cal.beta)
    lo, hi = cal.interval(1.0)
    inside = (pred * lo <= yt) & (yt <= pred * hi)
    assert 0.85 <= inside.mean() <= 0.97
    assert lo < 1.0 < hi


def test_too_few_blocks_and_json_round_trip():
    with pytest.raises(PerfmodelError, match="calibration needs"):
        fit_calibration(np.ones((3, 12)), np.ones(3), np.arange(3))
    beta = tuple(float(i) for i in range(12))
    c = Calibrations({"float32": Calibration(beta=beta, q_lo=-0.1, q_hi=0.2, rows=40,
                                             source="blocks")})
    back = Calibrations.from_json(c.to_json())
    assert back.get("float32").beta == beta
    assert back.get("bfloat16") is back.pooled and not back.pooled.calibrated
    x = np.array([1.0, 2.0, 3.0, 4.0, 4.5, 50, 5.0, 6.0, 7.0, 8.0, 8.5, 90])
    assert Calibration().time(x) == pytest.approx(49.0)  # identity: the plain sum of times


def test_features_split_phases_and_matrix_ops():
    import pandas as pd

    ops = pd.DataFrame({"op": ["conv2d", "relu", "gemm", "attention", "conv2d", "batch_norm",
                               "add"],
                        "phase": ["fwd", "fwd", "fwd", "fwd", "bwd", "bwd", "bwd"]})
    x = features(ops, np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]))
    # conv, gemm, attention, norm, other vector ops, op count; forward then backward
    assert x.tolist() == [1.0, 3.0, 4.0, 0.0, 2.0, 4.0, 5.0, 0.0, 0.0, 6.0, 7.0, 3.0]


def test_measured_classes_keep_their_times():
    """A class priced by a learned model of measured kernels keeps coefficient 1; the fit
    prices the rest (here: the per-op overheads and the roofline-priced attention)."""
    from perfmodel.predict.calibration import FEATURES, measured_classes

    pinned = measured_classes(["conv", "gemm", "elementwise"])
    assert [f for f, p in zip(FEATURES, pinned) if p] == [
        "conv_fwd", "gemm_fwd", "norm_fwd", "vec_fwd", "conv_bwd", "gemm_bwd", "norm_bwd",
        "vec_bwd"]
    assert not measured_classes([]).any()
    # conv and GEMM measured, vector ops on the roofline: nothing pinned (the free vector
    # coefficients would take the difference)
    assert not measured_classes(["conv", "gemm", "attention"]).any()
    rng = np.random.default_rng(3)
    n = 400
    X = np.column_stack([rng.uniform(1e-4, 1e-2, n) if not f.startswith("n_")
                         else rng.integers(5, 80, n) for f in FEATURES]).astype(float)
    beta = np.array([1.3, 1.0, 2.5, 1.4, 0.6, 4e-6] * 2)
    y = X @ beta * np.exp(rng.normal(0, 0.02, n))
    free = fit_calibration(X, y, np.arange(n))
    fixed = fit_calibration(X, y, np.arange(n), pinned=pinned)
    sums = np.array([not f.startswith("n_") for f in FEATURES])
    assert np.allclose(np.asarray(free.beta)[sums], beta[sums], rtol=0.1)
    b = np.asarray(fixed.beta)
    assert (b[pinned] == 1.0).all() and (b[~pinned] != 1.0).all()
    assert fixed.pinned == tuple(f for f, p in zip(FEATURES, pinned) if p)
    assert fixed.cv_median_ape > free.cv_median_ape  # the data had other coefficients
    back = Calibration.from_dict({k: v for k, v in fixed.to_dict().items() if k != "pinned"})
    assert back.pinned == () and back.beta == fixed.beta  # a calibration cached before


def test_pinning_every_feature_or_a_wrong_mask():
    from perfmodel.predict.calibration import FEATURES

    rng = np.random.default_rng(4)
    X = rng.uniform(1e-4, 1e-2, (40, len(FEATURES)))
    y = X.sum(axis=1)
    cal = fit_calibration(X, y, np.arange(40), pinned=np.ones(len(FEATURES), bool))
    assert cal.beta == (1.0,) * len(FEATURES)  # nothing to fit: each fixed at 1
    with pytest.raises(PerfmodelError, match="pinned mask of 3 entries for 12 features"):
        fit_calibration(X, y, np.arange(40), pinned=np.ones(3, bool))
