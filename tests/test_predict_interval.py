"""Whole-model intervals: conformal over the profile's measured whole models, out of sample
for the whole-model scale, never scored on the models they were fitted on."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest

from perfmodel.predict.device import datasets_dir, from_profile
from perfmodel.predict.interval import (ModelInterval, conformal_quantile, fit_model_interval,
                                        loo_residuals)
from perfmodel.predict.model import predict_model
from perfmodel.predict.validate import validate


def _preds(ratios, phase="train_step"):
    """Fold predictions of models measured at `ratios` x their predicted 1 s."""
    return pd.DataFrame([{"model": "m", "phase": phase, "dtype": "float32", "batch": 8,
                          "factor": 2.0, "strategy": f"s{i}", "measured_s": r, "pred_s": 1.0}
                         for i, r in enumerate(ratios)])


def test_conformal_rank():
    r = np.arange(1, 16) / 100.0  # 15 residuals
    assert conformal_quantile(r, 0.9) == pytest.approx(0.15)  # ceil(16 x 0.9) = 15th: the max
    assert conformal_quantile(np.arange(1, 31) / 100, 0.9) == pytest.approx(0.28)  # 28th of 30
    assert math.isinf(conformal_quantile(r[:8], 0.9))  # ceil(9 x 0.9) = 9 > 8: no finite bound
    assert conformal_quantile(-r, 0.9) == pytest.approx(0.15)  # absolute values


def test_residuals_leave_the_model_out_of_the_scale():
    # nine models measured 1.10 x their prediction, one 2.0 x
    preds = _preds([1.10] * 9 + [2.0])
    res = loo_residuals(preds, preds)
    # the outlier's scale is the other nine's (1.10), not one that includes itself
    assert res["residual"].iloc[-1] == pytest.approx(math.log(2.0 / 1.10))
    assert np.allclose(res["residual"].iloc[:-1], 0.0)


def test_fit_per_phase_and_pooled_and_interpolate_blocks_to_ops():
    rng = np.random.default_rng(0)
    train = _preds(np.exp(rng.normal(0, 0.03, 15)))
    infer = _preds(np.exp(rng.normal(0, 0.10, 6)), "inference")  # too few for its own
    blocks = pd.concat([train, infer], ignore_index=True)
    ops = blocks.assign(pred_s=blocks["pred_s"] * np.exp(rng.normal(0, 0.2, len(blocks))))
    iv = fit_model_interval(blocks, ops)
    assert set(iv.q) == {f"{k}|{kind}" for k in ("train_step|float32", "train_step|*", "*|*")
                         for kind in ("blocks", "ops")}
    assert iv.n["train_step|float32|blocks"] == 15 and iv.n["*|*|blocks"] == 21
    qb, qo = iv.q["train_step|float32|blocks"], iv.q["train_step|float32|ops"]
    assert qb < qo
    assert iv.half_width(True, 1.0, "float32") == pytest.approx(qb)
    assert iv.half_width(True, 0.0, "float32") == pytest.approx(qo)
    assert iv.half_width(True, 0.25, "float32") == pytest.approx(0.25 * qb + 0.75 * qo)
    assert iv.half_width(True, 1.0, "bfloat16") == pytest.approx(iv.q["train_step|*|blocks"])
    assert iv.half_width(False, 1.0, "float32") == pytest.approx(iv.q["*|*|blocks"])  # pooled
    lo, hi = iv.ratio(True, 1.0, "float32")
    assert lo == pytest.approx(math.exp(-qb)) and hi == pytest.approx(math.exp(qb))
    assert ModelInterval.from_json(iv.to_json()) == iv
    assert "90% interval" in iv.describe()
    assert ModelInterval().half_width(True) is None  # nothing fitted: no interval


def test_a_sum_of_ops_is_never_narrower_and_shares_read_relative_to_the_fold():
    rng = np.random.default_rng(3)
    blocks = _preds(np.exp(rng.normal(0, 0.10, 15))).assign(measured_share=0.8)
    ops = blocks.assign(pred_s=1.0, measured_s=np.exp(rng.normal(0, 0.01, 15)))
    iv = fit_model_interval(blocks, ops)
    key = "train_step|float32"
    assert iv.q[f"{key}|ops"] == iv.q[f"{key}|blocks"]  # raised to the blocks end
    assert iv.share[key] == pytest.approx(0.8)
    # the fold's models had 80 % of their time measured: 80 % or more is the blocks end
    ops2 = blocks.assign(pred_s=blocks["pred_s"] * np.exp(rng.normal(0, 0.3, 15)))
    iv2 = fit_model_interval(blocks, ops2)
    qb, qo = iv2.q[f"{key}|blocks"], iv2.q[f"{key}|ops"]
    assert iv2.half_width(True, 0.8, "float32") == pytest.approx(qb)
    assert iv2.half_width(True, 0.95, "float32") == pytest.approx(qb)
    assert iv2.half_width(True, 0.4, "float32") == pytest.approx(0.5 * qb + 0.5 * qo)
    iv2.share["train_step|float32"] = 0.0  # a fold whose models had no block measured
    assert iv2.half_width(True, 0.0, "float32") == pytest.approx(qo)
    assert iv2.half_width(True, 0.3, "float32") == pytest.approx(qb)


def test_predictions_carry_the_base_fold_interval(shipped):
    b = from_profile(shipped)
    assert b.interval is not None and b.interval.fold == "base"
    assert "interval (conformal, base fold)" in b.description
    kw = dict(batch=8, dtype="float32", train=True, factor=4.0, strategy="w",
              overrides={"resolution": 64})
    p = predict_model("RegNetX-400MF", device=b, **kw)
    assert p.measured_parts > 0
    # every block of this candidate was measured (its stem, head, loss and optimizer are
    # predicted): its share is read against the fold's, near the measured-blocks end
    assert 0.5 < p.measured_share < 1 and p.interval_kind == "whole-model"
    qb = b.interval.half_width(True, 1.0, "float32")
    qo = b.interval.half_width(True, 0.0, "float32")
    h = math.log(p.time.hi / p.time.value)
    assert h == pytest.approx(-math.log(p.time.lo / p.time.value), rel=1e-9)
    assert h == pytest.approx(b.interval.half_width(True, p.measured_share, "float32"))
    assert qb <= h <= qo
    # no measured block (batch 3 was never profiled): the sum-of-ops end
    p3 = predict_model("RegNetX-400MF", device=b, **dict(kw, batch=3))
    assert p3.measured_parts == 0 and p3.measured_share == 0
    assert p3.time.hi / p3.time.value == pytest.approx(math.exp(qo), rel=1e-6)
    # a compiled prediction is not what the validation models ran: per-part interval
    pc = predict_model("RegNetX-400MF", device=b, compiled=True, **kw)
    assert pc.interval_kind == "parts"
    # without a fitted interval the per-part calibration's interval stands
    raw = predict_model("RegNetX-400MF", device=dataclasses.replace(b, interval=None), **kw)
    lo, hi = b.calibration.get("float32").interval(1.0)
    assert raw.time.hi / raw.time.value == pytest.approx(hi, rel=1e-6)


def test_held_out_coverage_and_width_on_real_profiles(shipped):
    """On every shipped CPU profile, the x4 candidates (never fitted on) fall inside the
    90 % interval fitted on the base fold at least 85 % of the time, and the training-step
    interval (what `rank` ranks by default) is narrower than the per-part calibration
    interval it replaces. Measured (2026-12-01): coverage 100 % (AMD EPYC, with the
    held-out families' x4 rows) and 96 % (Intel Xeon VM); training-step median
    half-width 15.2 % and 18.5 % against calibration intervals of 23.9 % and 34.4 %. The
    inference interval is not held to that: with 13 base-fold models its conformal
    quantile is the largest residual, and on the AMD profile one model measured bimodal
    (RegNetX x2 by resolution, +36.5 %) widens it to 31.6 %."""
    profiles = [p.parent for p in sorted(datasets_dir().glob("cpu-*/metadata.json"))]
    for prof in profiles:
        t = validate(prof).table
        x4 = t[t["factor"] >= 4]
        assert len(x4) >= 20
        assert x4["in_interval"].mean() >= 0.85, prof.name
        train = x4[x4["phase"] == "train_step"]
        half = np.median((train["pred_hi_s"] - train["pred_lo_s"]) / (2 * train["pred_s"]))
        lo, hi = from_profile(prof).calibration.get("float32").interval(1.0)
        assert half < (hi - lo) / 2, f"{prof.name}: {half:.3f} vs {(hi - lo) / 2:.3f}"
