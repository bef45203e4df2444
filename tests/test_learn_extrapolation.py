"""What the learned predictor claims outside its calibration, and what `evaluate` reports.

A dtype the kind's model never saw (unless the device runs it alike) or another device than
the fitted one: source "extrapolated", the roofline as the only bound, and on another device
no power. `evaluate` counts a method's roofline-fallback rows, scores coverage over the rows
with both bounds, and says how it grouped.
"""
from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

import perfmodel.learn.predictor as predictor
from perfmodel.cli import main
from perfmodel.learn.evaluate import Grouping, compare, cross_validate, score_table
from perfmodel.learn.metrics import score
from perfmodel.learn.predictor import ExtrapolationWarning, fit, load
from test_learn_predictor import FAST, synthetic_gemms

OPS = pd.DataFrame({"op": "gemm", "m": [512, 512, 512, 512], "n": [4096] * 4, "k": [4096] * 4,
                    "b": 1, "dtype": ["float16", "bfloat16", "float32", "float8_e4m3fn"]})


@pytest.fixture(scope="module")
def fitted():
    return fit(synthetic_gemms(300, power=True), device="h100", params=FAST)


def test_an_unseen_dtype_is_extrapolated_without_an_interval(fitted):
    assert fitted.models["gemm"].dtypes == ("float16",)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = fitted.predict(OPS)
    # bfloat16 runs at float16's tensor-core rate and element size: as calibrated
    assert res["source"].tolist() == ["learned", "learned", "extrapolated", "extrapolated"]
    hi, lo = res["pred_time_hi_s"].to_numpy(), res["pred_time_lo_s"].to_numpy()
    assert np.isfinite(hi[:2]).all() and np.isnan(hi[2:]).all()
    roof = fitted.predict_baseline(OPS, "roofline")
    assert lo[2:] == pytest.approx(roof[2:])  # the roofline, the only bound left
    assert (res["pred_time_s"] > 0).all()
    assert np.isfinite(res["pred_power_w"]).all()  # the same device: power still priced
    extrap = [w.message for w in caught if isinstance(w.message, ExtrapolationWarning)]
    assert len(extrap) == 1 and extrap[0].dtypes == ("float32", "float8_e4m3fn")
    assert "fitted on float16" in str(extrap[0])


def test_another_device_is_extrapolated_without_power(fitted):
    with pytest.warns(UserWarning, match="fitted on h100.*a100.*no power or energy"):
        res = fitted.predict(OPS.iloc[:2], device="a100")
    assert res["source"].tolist() == ["extrapolated"] * 2
    assert res["pred_time_hi_s"].isna().all() and res["pred_power_w"].isna().all()
    assert res["pred_energy_j"].isna().all() and (res["pred_time_s"] > 0).all()
    with pytest.warns(UserWarning, match="fitted on h100"):
        ivs = fitted.predict_intervals(OPS.iloc[:2], device="a100")
    assert ivs["pred_power_hi_w"].isna().all()


def test_the_fitted_dtypes_survive_save_and_load_and_old_files_see_every_dtype(fitted, tmp_path):
    fitted.save(tmp_path / "m")
    assert load(tmp_path / "m").models["gemm"].dtypes == ("float16",)
    meta = json.loads((tmp_path / "m" / "predictor.json").read_text())
    del meta["kinds"]["gemm"]["dtypes"]  # saved before the field existed
    (tmp_path / "m" / "predictor.json").write_text(json.dumps(meta))
    old = load(tmp_path / "m")
    assert old.predict(OPS)["source"].tolist() == ["learned"] * 4


def test_predict_cli_counts_extrapolated_rows(fitted, tmp_path, capsys):
    fitted.save(tmp_path / "m")
    OPS.to_csv(tmp_path / "ops.csv", index=False)
    assert main(["predict", "--model", str(tmp_path / "m"), "--input", str(tmp_path / "ops.csv"),
                 "--output", str(tmp_path / "p.csv")]) == 0
    out, err = capsys.readouterr()
    assert "(2 learned, 2 extrapolated, 0 roofline)" in out
    said = [line for line in err.splitlines() if "extrapolat" in line]
    assert len(said) == 1 and "float32, float8_e4m3fn" in said[0]


def test_coverage_counts_only_rows_with_both_bounds():
    truth = np.array([1.0, 1.0, 1.0, 1.0])
    pred = np.ones(4)
    lo = np.array([0.9, 1.1, 0.5, 0.5])
    hi = np.array([1.1, 1.2, np.nan, np.nan])  # two one-sided rows claim nothing
    s = score(truth, pred, lo, hi)
    assert s.interval_n == 2 and s.coverage == pytest.approx(50.0)
    none = score(truth, pred, lo, np.full(4, np.nan))
    assert none.interval_n == 0 and np.isnan(none.coverage)


def test_compare_flags_roofline_fallback_rows(monkeypatch):
    train = synthetic_gemms(200, power=True)
    test = pd.concat([synthetic_gemms(20, seed=1),
                      pd.DataFrame({"op": "softmax", "numel": [65536] * 3, "features": 512,
                                    "dtype": "float16", "time_s": 1e-5})], ignore_index=True)
    res = compare(train, test, "h100", params=FAST, group_by="group", methods=("xgboost", "linear"))
    assert res["xgboost_fallback"].tolist() == [False] * 20 + [True] * 3
    assert res["linear_fallback"].tolist() == [False] * 20 + [True] * 3
    table = score_table(res, ("xgboost", "linear"))
    t = table[table["target"] == "time"].set_index("method")
    assert t.loc["xgboost", "fallback"] == 3 and t.loc["linear", "fallback"] == 3
    assert t.loc["xgboost", "interval_n"] == 20  # the softmax rows have no upper bound


def test_cross_validate_says_how_it_grouped(tmp_path):
    df = synthetic_gemms(240)
    preds = cross_validate(df, "h100", group_by="group", n_folds=3, params=FAST,
                           methods=("xgboost", "roofline"))
    g = Grouping.of(preds)
    assert isinstance(g, Grouping)
    assert g.columns == ("group",) and g.groups == 6 and g.folds == 3 and g.rows == 240
    assert "grouped by group: 6 groups of 240 rows, 3 folds" in g.describe()
    assert g.warning() is None  # no group holds more than a fold's third
    table = score_table(preds, ("xgboost", "roofline"))
    assert Grouping.of(table) == g
    preds.to_parquet(tmp_path / "p.parquet")  # attrs as plain data: the frames still write
    table.to_parquet(tmp_path / "t.parquet")


def test_a_group_bigger_than_a_fold_is_noted(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(predictor.XGB_PARAMS, "n_estimators", 20)
    df = synthetic_gemms(200)
    df.loc[:119, "group"] = "big"  # 60% of the rows in one group: a fold holds it whole
    df.to_csv(tmp_path / "d.csv", index=False)
    assert main(["evaluate", str(tmp_path / "d.csv"), "--device", "h100", "--group-by", "group",
                 "--folds", "3"]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[0].startswith("grouped by group: ")
    assert "largest group 60% of the rows" in out.splitlines()[0]
    assert "note: one group (big) holds 60% of the rows" in err and "<NA>" not in err
    assert "fallback" in out and "intv" in out


def test_a_cpu_profile_of_another_cpu_keeps_its_name(tmp_path):
    """Fitted here, an Intel profile's predictor names the Intel CPU, not this host; its peaks
    stay this host's estimates (the models' reference), and the notes say so."""
    from perfmodel.hardware.catalogue import get_device

    host = get_device("cpu")
    rng = np.random.default_rng(0)
    m = rng.integers(16, 1024, 60)
    df = pd.DataFrame({"op": "gemm", "m": m, "n": 512, "k": 256, "b": 1, "dtype": "float32",
                       "time_s": 2.0 * m * 512 * 256 / 5e10, "suite": "gemm"})
    for name in ("Some Other CPU 9000", host.name):
        prof = tmp_path / name.replace(" ", "_")
        prof.mkdir()
        df.to_parquet(prof / "measurements.parquet")
        (prof / "metadata.json").write_text(json.dumps(
            {"catalogue_key": "cpu", "device_name": name, "torch_threads": 1}))
        pred = fit(prof, params=FAST)
        assert pred.device.name == name
        # (peaks follow the current clock where /proc/cpuinfo gives one: compare per hertz)
        assert (pred.device.peak("float32") / pred.device.boost_clock_hz
                == pytest.approx(host.peak("float32") / host.boost_clock_hz))
        assert ("fitting host" in pred.device.notes) == (name != host.name)


def test_step_notes_an_extrapolated_matrix_kind_once_per_backend(fitted):
    """`perfmodel step`/`rank` price ops through OpTimes: a GEMM dtype the predictor was not
    fitted on is noted once per backend, however many candidates ask."""
    from perfmodel.predict.optimes import OpTimes

    def ops(m):
        return pd.DataFrame({"op": "gemm", "direction": "fwd", "dtype": "float32", "m": [m],
                             "n": 4096, "k": 4096, "b": 1, "flops": 2 * m * 4096 * 4096,
                             "bytes": 4 * (2 * m * 4096 + 4096 * 4096)})

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = OpTimes(fitted.device, fitted)
        t = first.predict(ops(512))
        first.predict(ops(1024))  # another candidate's op: no second note
        OpTimes(fitted.device, fitted).predict(ops(512))  # another backend: its own note
    notes = [str(w.message) for w in caught if "fitted on no gemm ops in float32" in str(w.message)]
    assert len(notes) == 2 and "(only float16)" in notes[0]
    assert not any(isinstance(w.message, ExtrapolationWarning) for w in caught)
    assert t["time_s"].iloc[0] > 0 and np.isnan(t["time_hi_s"].iloc[0])


def test_another_device_never_checks_the_fitted_dtypes_there():
    """A model fitted on H100 float16 and FP8 rows, asked for an A100 (no FP8): float16 rows
    are extrapolated, not refused for the FP8 it was also fitted on."""
    rows = synthetic_gemms(200)
    fp8 = rows.assign(dtype="float8_e4m3fn", time_s=rows["time_s"] / 1.8)
    pred = fit(pd.concat([rows, fp8], ignore_index=True), device="h100", params=FAST)
    assert pred.models["gemm"].dtypes == ("float16", "float8_e4m3fn")
    with pytest.warns(UserWarning, match="fitted on h100"):
        res = pred.predict(OPS.iloc[:1], device="a100")
    assert res["source"].tolist() == ["extrapolated"]


def test_on_a_cpu_only_the_fitted_dtypes_are_seen():
    """CPU kernels differ by dtype beyond the peaks (float16 GEMMs without a fast kernel ran
    25x slower than bfloat16): a dtype is never taken as 'alike' there."""
    from perfmodel.hardware.catalogue import get_device

    pred = fit(synthetic_gemms(120).assign(dtype="bfloat16"), device="cpu", params=FAST)
    cpu = get_device("cpu")
    seen = pred.models["gemm"].dtype_seen(["bfloat16", "float16", "float32"], cpu)
    assert seen.tolist() == [True, False, False]


def test_int8_is_not_alike_fp8_though_the_peaks_match(fitted):
    """On an H100 the catalogue gives int8 and FP8 one peak and one byte: different kernels."""
    from perfmodel.hardware.catalogue import get_device

    h100 = get_device("h100")
    assert h100.peak("int8") == h100.peak("float8_e4m3fn")
    rows = synthetic_gemms(200)
    fp8 = fit(rows.assign(dtype="float8_e4m3fn", time_s=rows["time_s"] / 1.8), device="h100",
              params=FAST)
    seen = fp8.models["gemm"].dtype_seen(["float8_e4m3fn", "float8_e5m2", "int8"], h100)
    assert seen.tolist() == [True, True, False]
