"""Interval coverage on held-out groups of real measurements (public data; shipped profiles)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import perfmodel
from perfmodel.learn.metrics import score
from perfmodel.learn.predictor import group_folds, group_ids
from perfmodel.learn.schema import read_measurements

ROOT = Path(__file__).resolve().parents[1]
FAST = {"n_estimators": 60, "max_depth": 6, "learning_rate": 0.25}


def _vidur(gpu):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from common import VIDUR_DEVICES, load_vidur

    v = load_vidur()
    return v[v["device"] == VIDUR_DEVICES[gpu]].reset_index(drop=True)


def test_interval_coverage_on_held_out_llms(shared_data):
    """Fit on five LLMs' A100 GEMMs, predict three others: 90% intervals cover about 90%."""
    v = _vidur("a100")
    v = v[v["m"] % 32 == 0]  # every other token count keeps the test fast
    held = v["group"].isin(["meta-llama/Llama-2-7b-hf", "microsoft/phi-2", "internlm/internlm-20b"])
    pred = perfmodel.fit(v[~held], params=FAST)
    res = pred.predict(v[held])
    s = score(v[held]["time_s"], res["pred_time_s"], res["pred_time_lo_s"], res["pred_time_hi_s"])
    assert s.n == held.sum() > 1000
    assert 85.0 <= s.coverage <= 99.0, s
    assert s.mape < 10.0, s


def _profiles():
    return sorted(p.parent for p in (ROOT / "datasets").glob("*/measurements.parquet"))


@pytest.mark.parametrize("profile", _profiles() or [None], ids=lambda p: p.name if p else "none")
def test_interval_coverage_on_shipped_profile(profile):
    """Held-out shapes of the project's own profile: coverage near the stated 90%."""
    if profile is None:
        pytest.skip("no profile under datasets/ yet")
    df = read_measurements(profile)
    df = df[df["suite"].astype(str).isin(["gemm", "conv"])] if "suite" in df.columns else df
    if len(df) < 100:
        pytest.skip(f"{profile.name}: only {len(df)} per-op rows")
    groups = group_ids(df)
    test = group_folds(groups, 4, seed=1)[0]
    pred = perfmodel.fit(df[~test], params=FAST)
    res = pred.predict(df[test])
    learned = (res["source"] == "learned").to_numpy()
    s = score(df[test]["time_s"][learned], res["pred_time_s"][learned],
              res["pred_time_lo_s"][learned], res["pred_time_hi_s"][learned])
    assert s.n >= 20
    assert 80.0 <= s.coverage <= 100.0, s
    assert np.isfinite(s.mape)
