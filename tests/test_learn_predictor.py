"""The learned predictor: features vs. the op formulas, save/load, corruption, fallback, power."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

import perfmodel
from perfmodel.errors import PerfmodelError
from perfmodel.hardware.catalogue import get_device
from perfmodel.learn.features import build_features
from perfmodel.learn.predictor import PRED_COLUMNS
from perfmodel.ops import gemm_cost, op_roofline

FAST = {"n_estimators": 25, "max_depth": 4}


def synthetic_gemms(n=400, seed=0, power=False) -> pd.DataFrame:
    """GEMM times = H100 roofline / (tile-quantisation efficiency) x noise, grouped by n."""
    rng = np.random.default_rng(seed)
    dev = get_device("h100")
    m = rng.integers(1, 4096, n)
    nn = rng.choice([768, 1024, 3072, 4096, 5120, 11008], n)
    k = rng.choice([768, 1024, 4096, 8192], n)
    flops = 2.0 * m * nn * k
    bytes_ = 2.0 * (m * k + k * nn + m * nn)
    tiles = np.ceil(m / 128) * np.ceil(nn / 128)
    eff = tiles / (np.ceil(tiles / dev.sm_count) * dev.sm_count)
    t = np.maximum(flops / dev.peak("float16") / (0.7 * eff), bytes_ / dev.memory_bandwidth) + 5e-6
    df = pd.DataFrame({"op": "gemm", "m": m, "n": nn, "k": k, "b": 1, "dtype": "float16",
                       "time_s": t * rng.lognormal(0, 0.03, n), "group": nn.astype(str)})
    if power:
        df["power_w"] = 150 + 500 * eff * rng.lognormal(0, 0.02, n)
    return df


def test_gemm_features_match_the_op_formulas():
    dev = get_device("h100")
    df = pd.DataFrame({"op": ["gemm", "linear", "bmm"], "m": [4096, 7, 64], "n": [4096, 11, 64],
                       "k": [4096, 13, 128], "b": [1, 1, 12], "dtype": ["float16", "bfloat16", "float32"]})
    feats, t_r = build_features(df, "gemm", dev)
    for i, r in df.iterrows():
        cost = gemm_cost(r.m, r.n, r.k, r.b, dtype=r["dtype"])
        assert 2 ** feats["log_flops"][i] == pytest.approx(cost.flops, rel=1e-9)
        assert 2 ** feats["log_bytes"][i] == pytest.approx(cost.bytes, rel=1e-9)
        ref = op_roofline("gemm", dev, dtype=r["dtype"], m=r.m, n=r.n, k=r.k, b=r.b).time_s
        assert t_r[i] == pytest.approx(ref, rel=1e-9)
    # one 128x128 tile per SM: a full wave; one more tile starts a second, nearly empty wave
    one_wave = pd.DataFrame({"op": "gemm", "m": [128 * 12, 128 * 12 + 1], "n": [128 * 11] * 2,
                             "k": [512] * 2, "b": 1, "dtype": "float16"})
    f, _ = build_features(one_wave, "gemm", dev)
    assert f["t128x128_wave_fill"][0] == pytest.approx(1.0)
    assert f["t128x128_wave_fill"][1] == pytest.approx((132 + 11) / 264)
    assert f["align_m"][0] == 7 and f["align_m"][1] == 0


@pytest.fixture(scope="module")
def fitted():
    return perfmodel.fit(synthetic_gemms(power=True), device="h100", params=FAST)


def test_predict_columns_and_sources(fitted):
    ops = synthetic_gemms(50, seed=1).drop(columns=["time_s"])
    res = fitted.predict(ops)
    for c in PRED_COLUMNS:
        assert c in res.columns
    assert (res["source"] == "learned").all()
    assert (res["pred_time_lo_s"] <= res["pred_time_s"]).all()
    assert (res["pred_time_s"] <= res["pred_time_hi_s"]).all()
    np.testing.assert_allclose(res["pred_energy_j"], res["pred_power_w"] * res["pred_time_s"])


def test_save_load_round_trip(fitted, tmp_path):
    ops = synthetic_gemms(200, seed=2).drop(columns=["time_s"])
    path = fitted.save(tmp_path / "model")
    for f in path.iterdir():  # portable: JSON only, nothing to unpickle
        assert f.suffix == ".json"
        json.loads(f.read_text())
    loaded = perfmodel.load(path)
    a, b = fitted.predict(ops), loaded.predict(ops)
    for c in PRED_COLUMNS[:-1]:
        np.testing.assert_array_equal(a[c].to_numpy(), b[c].to_numpy())
    assert loaded.device == fitted.device


def test_corrupt_or_missing_files_are_refused(fitted, tmp_path):
    path = fitted.save(tmp_path / "model")
    booster = next(path.glob("time_*.json"))
    booster.write_text(booster.read_text()[:-20])
    with pytest.raises(PerfmodelError, match="corrupt"):
        perfmodel.load(path)
    booster.unlink()
    with pytest.raises(PerfmodelError, match="missing"):
        perfmodel.load(path)
    (path / "predictor.json").write_text("{not json")
    with pytest.raises(PerfmodelError, match="corrupt"):
        perfmodel.load(path)
    with pytest.raises(PerfmodelError, match="not a saved predictor"):
        perfmodel.load(tmp_path / "elsewhere")


def test_version_mismatch_warns(fitted, tmp_path):
    path = fitted.save(tmp_path / "model")
    meta = json.loads((path / "predictor.json").read_text())
    meta["versions"]["xgboost"] = "0.0.1"
    (path / "predictor.json").write_text(json.dumps(meta))
    with pytest.warns(UserWarning, match="xgboost 0.0.1"):
        perfmodel.load(path)


def test_other_device_warns(fitted):
    ops = synthetic_gemms(5, seed=3).drop(columns=["time_s"])
    with pytest.warns(UserWarning, match="fitted on h100-sxm"):
        res = fitted.predict(ops, device="a100")
    assert np.isfinite(res["pred_time_s"]).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fitted.predict(ops, device="NVIDIA H100 80GB HBM3")  # same device, other name: silent


def test_unfitted_kind_falls_back_to_roofline(fitted):
    dev = get_device("h100")
    ops = pd.DataFrame({"op": ["layer_norm", "gemm"], "numel": [2**20, None], "features": [1024, None],
                        "m": [None, 256], "n": [None, 256], "k": [None, 256], "dtype": "float16"})
    res = fitted.predict(ops)
    assert res["source"].tolist() == ["roofline", "learned"]
    ref = op_roofline("layer_norm", dev, dtype="float16", numel=2**20, features=1024).time_s
    assert res["pred_time_s"].iloc[0] == pytest.approx(ref, rel=1e-9)
    assert np.isnan(res["pred_power_w"].iloc[0])


def test_too_few_rows_of_a_kind_means_roofline():
    df = pd.concat([synthetic_gemms(100), pd.DataFrame({
        "op": ["softmax"] * 3, "numel": [1e6, 2e6, 4e6], "features": [1024] * 3,
        "dtype": "float32", "time_s": [3e-5, 5e-5, 9e-5], "group": "sm"})], ignore_index=True)
    pred = perfmodel.fit(df, device="h100", params=FAST)
    assert pred.kinds == ["gemm"]
    assert pred.info["roofline_kinds"] == ["elementwise"]


def test_linear_baseline_is_saved(fitted, tmp_path):
    ops = synthetic_gemms(20, seed=4).drop(columns=["time_s"])
    loaded = perfmodel.load(fitted.save(tmp_path / "m"))
    np.testing.assert_allclose(loaded.predict_baseline(ops, "linear"), fitted.predict_baseline(ops, "linear"))
    a, b, c = loaded.linear.coef["gemm"]["float16"]
    assert a > 0 and b >= 0 and c >= 0


def test_rows_without_costs_are_skipped_when_fitting():
    df = pd.concat([synthetic_gemms(60), pd.DataFrame({
        "op": ["RegNetX-400MF"] * 2, "dtype": "float32", "time_s": [0.1, 0.2], "group": "v"})], ignore_index=True)
    pred = perfmodel.fit(df, device="h100", params=FAST)
    assert pred.kinds == ["gemm"]
    assert "regnetx-400mf" in pred.info["skipped_kinds"]
    with pytest.raises(PerfmodelError, match="FLOPs"):
        pred.predict(df.drop(columns="time_s"))


def test_fit_needs_a_device():
    with pytest.raises(PerfmodelError, match="which device"):
        perfmodel.fit(synthetic_gemms(30))


def test_power_and_energy_intervals(fitted):
    ops = synthetic_gemms(30, seed=5).drop(columns=["time_s", "power_w"], errors="ignore")
    res = fitted.predict_intervals(ops)
    assert (res["pred_power_lo_w"] <= res["pred_power_w"]).all()
    assert (res["pred_power_w"] <= res["pred_power_hi_w"]).all()
    assert (res["pred_energy_lo_j"] <= res["pred_energy_j"]).all()
    assert (res["pred_energy_j"] <= res["pred_energy_hi_j"]).all()


def test_group_ids_with_missing_cells():
    """Rows whose grouping columns are missing (a GEMM row has no conv columns) still group."""
    import numpy as np
    import pandas as pd

    from perfmodel.learn.predictor import group_ids

    df = pd.DataFrame({"op": ["gemm", "conv2d", "gemm", "gemm"],
                       "m": pd.array([64, None, 64, 128], dtype="Int64"),
                       "c_in": [np.nan, 3.0, np.nan, np.nan]})
    ids = group_ids(df, ["op", "m", "c_in"])
    assert ids[0] == ids[2] and len(set(ids)) == 3
    assert list(group_ids(df)) == list(ids)  # default keys include the same columns


def synthetic_vector(n=300, seed=0) -> pd.DataFrame:
    """relu, residual-add and batch-norm rows on a CPU: bandwidth-bound, but a batch norm
    over a small map runs per channel-and-sample loops (slow per element)."""
    rng = np.random.default_rng(seed)
    numel = np.exp2(rng.uniform(10, 22, n)).astype(int)
    op = rng.choice(["relu", "elementwise", "batch_norm"], n)
    hw = np.exp2(rng.integers(0, 10, n))  # map size of a batch norm
    batch = rng.choice([1, 2, 4, 8], n)
    channels = np.maximum(1, numel // (batch * hw)).astype(int)
    t = numel * 8 / 2e10 + 2e-6
    t = np.where(op == "batch_norm", t * (1 + 8 / hw), t)
    df = pd.DataFrame({"op": op, "numel": numel, "dtype": "float32", "phase": "fwd",
                       "time_s": t * rng.lognormal(0, 0.03, n)})
    bn = op == "batch_norm"
    df["channels"] = np.where(bn, channels, np.nan)
    df["batch"] = np.where(bn, batch, np.nan)
    df["numel"] = np.where(bn, channels * batch * hw, numel).astype(int)
    df["training"] = pd.array(np.where(bn, False, None), dtype="boolean")
    df["inputs"] = np.where(op == "elementwise", 2, np.nan)
    df["group"] = op + df["numel"].astype(str)
    return df


def test_vector_model_prices_only_the_ops_it_was_fitted_on(tmp_path):
    """A relu and a softmax are both `elementwise` but run different kernels: an op the
    model never saw is priced by the roofline; the fitted ops survive save and load."""
    pred = perfmodel.fit(synthetic_vector(), device="cpu", params=FAST)
    assert pred.models["elementwise"].ops == ("batch_norm", "elementwise", "relu")
    ops = pd.DataFrame({"op": ["relu", "softmax", "batch_norm", "dropout"],
                        "numel": [2 ** 20] * 4, "channels": [None, None, 256, None],
                        "batch": [None, None, 4, None], "training": [None, None, False, None],
                        "dtype": "float32", "phase": "fwd"})
    for p in (pred, perfmodel.load(pred.save(tmp_path / "vec"))):
        res = p.predict(ops)
        assert res["source"].tolist() == ["learned", "roofline", "learned", "roofline"]
        roof = p.predict_baseline(ops, "roofline")
        assert res["pred_time_s"].iloc[1] == pytest.approx(roof[1], rel=1e-12)
        assert res["pred_time_s"].iloc[0] != pytest.approx(roof[0], rel=1e-3)


def test_batch_norm_over_small_maps_is_learned_slow():
    """The map extent (numel / channels / batch) is a feature: one element count and one
    channel count, two batch sizes, two maps."""
    pred = perfmodel.fit(synthetic_vector(600), device="cpu", params=FAST)
    ops = pd.DataFrame({"op": "batch_norm", "numel": [2 ** 20] * 3,
                        "channels": [2 ** 15, 2 ** 10, 2 ** 15], "batch": [8, 1, 1],
                        "training": False, "dtype": "float32", "phase": "fwd"})
    small, large, mid = pred.predict(ops)["pred_time_s"]
    assert small > 2.5 * large  # 4 pixels per map: x3 per element; 1024 pixels: x1.01
    assert mid < 0.7 * small  # the same channels over one sample: maps of 32 pixels


def test_vector_extent_reads_each_ops_columns():
    from perfmodel.learn.features import vector_extent

    df = pd.DataFrame({
        "op": ["reduction", "batch_norm", "batch_norm", "elementwise", "elementwise",
               "layer_norm", "relu"],
        "numel": [4096, 4096, 4096, 4096, 4096, 4096, 4096],
        "out_numel": [64, None, None, None, None, None, None],
        "channels": [None, 16, 16, None, None, None, None],
        "batch": [None, 4, None, None, None, None, None],
        "inputs": [None, None, None, 2, 2, None, None],
        "read_numel": [None, None, None, 4096 + 256, None, None, None],
        "features": [None, None, None, None, None, 512, None]})
    got = vector_extent(df, df["numel"].to_numpy(float))
    # a batch norm without its batch has no known map (not numel / channels: the suite's
    # rows always give the batch)
    np.testing.assert_array_equal(got, [64, 64, np.nan, 16, np.nan, 512, np.nan])


def test_optimizer_kernels_stay_on_the_roofline():
    """The optimizer's per-step streaming kernels are priced at DRAM bandwidth even when a
    learned model of `elementwise` kernels timed in a loop exists."""
    from perfmodel.predict.optimes import OpTimes

    pred = perfmodel.fit(synthetic_vector(), device="cpu", params=FAST)
    ot = OpTimes(pred.device, pred)
    row = {"op": "elementwise", "dtype": "float32", "direction": "fwd", "numel": 2 ** 20,
           "inputs": 2, "flops": 2 ** 20, "bytes": 3 * 4 * 2 ** 20}
    ops = pd.DataFrame([{**row, "phase": "optimizer"}, {**row, "phase": "fwd"}])
    t = ot.predict(ops)["time_s"].to_numpy()
    assert t[0] == pytest.approx(ot.roofline(ops.iloc[:1])[0], rel=1e-12)
    assert t[1] != pytest.approx(t[0], rel=1e-3)


def test_a_predictor_saved_before_op_names_prices_every_op(tmp_path):
    """A predictor.json without `ops` (saved by an earlier perfmodel) keeps pricing every
    op of its kinds with its model, as it did."""
    pred = perfmodel.fit(synthetic_vector(), device="cpu", params=FAST)
    path = pred.save(tmp_path / "old")
    meta = json.loads((path / "predictor.json").read_text())
    for entry in meta["kinds"].values():
        entry.pop("ops")
    (path / "predictor.json").write_text(json.dumps(meta))
    ops = pd.DataFrame({"op": ["softmax", "mean"], "numel": [2 ** 20] * 2,
                        "out_numel": [None, 64], "dtype": "float32", "phase": "fwd"})
    assert perfmodel.load(path).predict(ops)["source"].tolist() == ["learned", "learned"]


def test_the_op_guard_reads_aliases_as_their_op():
    """Fitted on `mean` rows, the model knows the counter's `reduction` (and `sum`): op
    names are compared by their canonical name in `perfmodel.ops`."""
    df = synthetic_vector()
    means = pd.DataFrame({"op": "mean", "numel": 2 ** np.arange(10, 40) // 2 ** 10 * 1024,
                          "out_numel": 64, "dtype": "float32", "phase": "fwd",
                          "time_s": 1e-6 * np.arange(1, 31), "group": "m"})
    means["group"] = means["group"] + means["numel"].astype(str)
    pred = perfmodel.fit(pd.concat([df, means], ignore_index=True), device="cpu", params=FAST)
    assert "reduction" in pred.models["elementwise"].ops
    assert pred.models["elementwise"].knows(
        pd.Series(["reduction", " Sum", "mean", "softmax"])).tolist() == [True, True, True, False]


def test_vector_op_codes_read_aliases_as_their_op():
    from perfmodel.learn.features import build_features

    df = pd.DataFrame({"op": ["add", "elementwise", "mean", "reduction", "log_softmax",
                              "softmax"], "numel": 4096, "inputs": [2, 2, None, None, None, None],
                       "out_numel": [None, None, 64, 64, None, None], "dtype": "float32"})
    code = build_features(df, "elementwise", get_device("cpu"))[0]["op_code"]
    assert code[0] == code[1] and code[2] == code[3] and code[4] == code[5]
    assert len({code[0], code[2], code[4]}) == 3


def test_in_place_ops_are_learned_apart_and_guarded(tmp_path):
    """relu_ rows at 0.5x the time of relu: the model prices a counted in-place relu at
    about half; silu_ (never timed in place) is priced as silu; a predictor saved before
    in-place ops existed prices relu_ as relu."""
    df = synthetic_vector(600)
    relu = df[df["op"] == "relu"]
    fast = relu.assign(time_s=relu["time_s"] * 0.5, inplace=True, group="i" + relu["group"])
    silu = relu.assign(op="silu", time_s=relu["time_s"] * 1.5, group="s" + relu["group"])
    pred = perfmodel.fit(pd.concat([df, fast, silu], ignore_index=True), device="cpu",
                         params=FAST)
    assert pred.models["elementwise"].inplace_ops == ("relu",)
    ops = pd.DataFrame({"op": ["relu", "relu", "silu", "silu"], "numel": 2 ** 20,
                        "inplace": [None, True, None, True], "dtype": "float32", "phase": "fwd"})
    for p in (pred, perfmodel.load(pred.save(tmp_path / "inplace"))):
        t = p.predict(ops)["pred_time_s"].to_numpy()
        assert 0.4 < t[1] / t[0] < 0.65
        assert t[3] == pytest.approx(t[2], rel=1e-9)
    path = pred.save(tmp_path / "old")
    meta = json.loads((path / "predictor.json").read_text())
    for entry in meta["kinds"].values():
        entry.pop("inplace_ops")
    (path / "predictor.json").write_text(json.dumps(meta))
    t = perfmodel.load(path).predict(ops)["pred_time_s"].to_numpy()
    assert t[1] == pytest.approx(t[0], rel=1e-9)


def test_fitting_another_devices_measurements_names_the_device_they_are_from():
    """Measurements of one device fitted as another: the error says which device they are
    from (not that two devices are mixed)."""
    df = synthetic_gemms(40).assign(device="h100-sxm")
    with pytest.raises(PerfmodelError, match="the measurements are from h100-sxm, not a100"):
        perfmodel.fit(df, device="a100")
    mixed = pd.concat([df, df.assign(device="a100")])
    with pytest.raises(PerfmodelError, match="mixed with"):
        perfmodel.fit(mixed, device="a100")
