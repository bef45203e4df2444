"""The interpolation floor (perfmodel.learn.noise) and the error breakdown of evaluate."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from perfmodel.errors import PerfmodelError
from perfmodel.hardware.catalogue import get_device, is_known
from perfmodel.learn.evaluate import error_breakdown
from perfmodel.learn.metrics import score
from perfmodel.learn.noise import interpolation_floor

ROOT = Path(__file__).resolve().parents[1]


def test_floor_exact_on_a_power_law_and_nan_at_series_ends():
    b = np.array([1, 2, 4, 8, 16, 3, 6, 12])
    series = np.array(["x"] * 5 + ["y"] * 3)
    t = np.where(series == "x", 1e-5 * b ** 0.8, 3e-5 * b)
    df = pd.DataFrame({"b": b, "group": series, "time_s": t}).sample(frac=1.0, random_state=0)
    pred = interpolation_floor(df, "b", "group")
    ends = df["b"].isin([1, 16, 3, 12]).to_numpy()
    assert np.isnan(pred[ends]).all()
    np.testing.assert_allclose(pred[~ends], df["time_s"].to_numpy()[~ends], rtol=1e-12)


def test_floor_sees_a_jump_between_neighbours():
    df = pd.DataFrame({"m": [1, 2, 3], "group": "g", "time_s": [1.0, 2.0, 1.0]})
    assert interpolation_floor(df, "m", "group")[1] == pytest.approx(1.0)


def test_floor_missing_column_is_one_line_error():
    with pytest.raises(PerfmodelError, match="tp"):
        interpolation_floor(pd.DataFrame({"m": [1], "time_s": [1.0]}), "m", ["tp"])


def test_error_breakdown_shares_sum_to_100():
    preds = pd.DataFrame({"time_s": [1.0, 1.0, 2.0], "xgboost_time_s": [1.05, 0.8, 2.0]})
    t = error_breakdown(preds, np.array([1, 1, 2]))
    assert t["share_of_error"].sum() == pytest.approx(100.0)
    row = t.set_index("by").loc[1]
    assert row["mape"] == pytest.approx(12.5) and row["bias"] == pytest.approx(-7.5)
    assert row["within_10"] == pytest.approx(50.0)


def _neusight(op, key):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from common import load_neusight

    d = load_neusight(op)
    keys = {n: get_device(n).key for n in d["device"].unique() if is_known(n)}
    return d[d["device"].map(keys) == key].reset_index(drop=True)


def test_floor_separates_noisy_from_smooth_gpus(shared_data):
    """NeuSight bmm: the 72 W L4 jumps between neighbouring batch counts (one kernel, one grid
    per matrix shape), the H100 does not; the floor tells them apart."""
    floors = {}
    for key in ("l4", "h100-sxm"):
        d = _neusight("bmm", key)
        pred = interpolation_floor(d, "b", "group")
        ok = np.isfinite(pred)
        assert ok.sum() > 0.8 * len(d)
        floors[key] = score(d["time_s"][ok], pred[ok])
    assert floors["l4"].mape > 12.0, floors
    assert floors["h100-sxm"].mape < 6.0, floors
    d = _neusight("bmm", "l4")
    preds = pd.DataFrame({"time_s": d["time_s"], "interp_floor_time_s": interpolation_floor(d, "b", "group")})
    t = error_breakdown(preds, 2 ** np.floor(np.log2(d["b"])), method="interp_floor")
    small = t[t["by"] < 64]["mape"].mean()
    large = t[t["by"] >= 4096]["mape"].mean()
    assert small > large, t  # the jumps are largest at small batch counts (short kernels)
