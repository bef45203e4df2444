"""fit(base="tiled"): the learned ratio over the tile-quantised roofline (features.base_time)."""
from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import perfmodel
from perfmodel.errors import PerfmodelError
from perfmodel.hardware.catalogue import get_device
from perfmodel.learn.features import base_time, build_features
from perfmodel.learn.metrics import score

ROOT = Path(__file__).resolve().parents[1]
FAST = {"n_estimators": 60, "max_depth": 6, "learning_rate": 0.25}


def _common():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import common

    return common


def _vidur_h100():
    c = _common()
    v = c.load_vidur()
    v = v[(v["device"] == c.VIDUR_DEVICES["h100"]) & (v["m"] % 64 == 0)]
    return v.reset_index(drop=True)


def _neusight_h100_bmm():
    d = _common().load_neusight("bmm")
    return d[d["device"].map(lambda s: s.startswith("NVIDIA H100"))].reset_index(drop=True)


def test_tiled_base_is_never_below_the_roofline_and_quantises(shared_data):
    d = _neusight_h100_bmm()
    dev = get_device("h100-sxm")
    feats, t_r = build_features(d, "gemm", dev)
    tiled = base_time(feats, t_r, "tiled", dev)
    assert (tiled >= t_r * (1 - 1e-12)).all()
    assert (tiled > 1.2 * t_r).mean() > 0.2  # small per-sample matrices waste tiles
    assert base_time(feats, t_r, "roofline", dev) is t_r


def test_unknown_base_is_one_line_error(shared_data):
    with pytest.raises(PerfmodelError, match="unknown base 'wave'"):
        perfmodel.fit(_vidur_h100().head(50), base="wave")


def test_tiled_base_carries_to_another_dtype_and_batch(shared_data, tmp_path):
    """Fit on vidur fp16 H100 projections (batch 1), predict NeuSight fp32 H100 bmm (batch
    12..65536, per-sample shapes 64..4096): the analytic quantisation extrapolates, trees do not."""
    train, test = _vidur_h100(), _neusight_h100_bmm()
    mape = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for base in ("roofline", "tiled"):
            pred = perfmodel.fit(train, device="h100-sxm", group_by="group", params=FAST, base=base)
            res = pred.predict(test, device="h100-sxm")
            mape[base] = score(test["time_s"], res["pred_time_s"]).mape
        loaded = perfmodel.load(pred.save(tmp_path / "tiled"))
        again = loaded.predict(test, device="h100-sxm")
    assert loaded.base == "tiled"
    np.testing.assert_allclose(again["pred_time_s"], res["pred_time_s"], rtol=1e-6)
    assert mape["tiled"] < mape["roofline"] - 2.0, mape
