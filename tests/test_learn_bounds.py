"""Out-of-range inputs: shapes past 2**53, huge costs without numpy warnings, and a
hand-edited predictor.json whose interval cannot be a calibration."""
from __future__ import annotations

import json
import shutil
import warnings

import numpy as np
import pandas as pd
import pytest

import perfmodel
from perfmodel.errors import PerfmodelError
from perfmodel.hardware.catalogue import get_device
from perfmodel.learn.conformal import Conformal, calibrate
from perfmodel.learn.features import _trailing_zeros, build_features
from perfmodel.learn.schema import read_measurements, validate_ops

HEADER = "op,m,n,k,b,dtype,time_s\n"


@pytest.mark.parametrize("cell", ["1e30", "9007199254740993", "9007199254740994"])
def test_a_shape_past_2_53_is_refused_naming_row_line_and_column(tmp_path, cell):
    f = tmp_path / "m.csv"
    f.write_text(HEADER + "gemm,64,64,64,1,float16,1e-6\n" + f"gemm,{cell},4096,4096,1,float16,1e-3\n")
    with pytest.raises(PerfmodelError) as exc:
        read_measurements(f)
    msg = str(exc.value)
    assert msg.startswith(f"{f}: row 2 (line 3): column 'm' must be at most 2**53")
    assert msg.endswith(f"for GEMM op 'gemm', got {float(cell)!r}" if "e" in cell else f"got {cell}")
    assert "\n" not in msg


def test_2_53_itself_is_taken_and_other_kinds_are_not_checked():
    ops = pd.DataFrame({"op": ["gemm", "relu"], "m": [2**53, 1e30], "n": [1, None],
                        "k": [2**53, None], "b": [None, 2**60], "numel": [None, 8], "dtype": "float16"})
    df = validate_ops(ops)
    assert df["m"].tolist()[0] == 2.0**53 and df["b"].tolist()[0] == 1.0
    with pytest.raises(PerfmodelError, match=r"^ops: row 1: column 'b' must be at most 2\*\*53 "
                       r"= 9007199254740992 for GEMM op 'bmm', got 9007199254740993$"):
        validate_ops(pd.DataFrame({"op": ["bmm"], "m": [8], "n": [8], "k": [8],
                                   "b": pd.array([2**53 + 1], dtype="Int64"), "dtype": "float32"}),
                     source="ops")


@pytest.mark.parametrize("e", [20, 53])
def test_huge_gemms_cost_exactly_and_warn_nothing(e):
    dev = get_device("h100")
    s = 2.0**e
    ops = validate_ops(pd.DataFrame({"op": ["gemm"], "m": [s], "n": [s], "k": [s], "b": [1],
                                     "dtype": ["float16"]}))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        feats, t_r = build_features(ops, "gemm", dev)
    assert feats["log_flops"][0] == 1 + 3 * e  # 2 x m x n x k
    assert 2 ** feats["log_bytes"][0] == pytest.approx(3 * s * s * 2, rel=1e-12)  # A, B, C: fp16
    assert np.isfinite(t_r).all() and t_r[0] == pytest.approx(2 * s**3 / dev.peak("float16"), rel=1e-6)
    assert feats["align_m"][0] == feats["align_k"][0] == 7
    for name, v in feats.items():
        assert np.isfinite(v).all(), name


def test_alignment_never_goes_through_int64():
    """A conv's implicit-GEMM m is a product of columns the schema does not bound."""
    x = np.array([1, 12, 96, 12.5, 2**53 - 1, 2**53, 2.0**63, 3 * 2.0**70, 1e30, np.nan, 0.5])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = _trailing_zeros(x)
    np.testing.assert_array_equal(got, [0, 2, 5, 2, 0, 7, 7, 7, 7, np.nan, np.nan])
    conv = pd.DataFrame({"op": ["conv2d"], "batch": [2**40], "c_in": [64], "h": [2**20],
                         "w": [2**20], "c_out": [64], "kernel_h": [1], "kernel_w": [1],
                         "dtype": ["float16"]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        feats, _ = build_features(validate_ops(conv), "conv", get_device("h100"))
    assert feats["align_m"][0] == 7 and feats["log_m"][0] == 80


# ---- the interval of a saved predictor ----
GOOD = {"coverage": 0.9, "edges": [-10.0], "q_lo": [-0.3, -0.1], "q_hi": [0.4, 0.2], "n": 400}


@pytest.mark.parametrize("change, words", [
    ({"q_lo": []}, "0 q_lo and 2 q_hi for 2 bin(s)"),
    ({"q_hi": [0.4, 0.2, 0.1]}, "2 q_lo and 3 q_hi for 2 bin(s)"),
    ({"edges": []}, "2 q_lo and 2 q_hi for 1 bin(s)"),
    ({"edges": [-10.0, -10.0], "q_lo": [-1, -1, -1], "q_hi": [1, 1, 1]}, "not finite and strictly increasing"),
    ({"edges": [float("nan")]}, "not finite and strictly increasing"),
    ({"coverage": 1.0}, "coverage 1.0 is not between 0 and 1"),
    ({"coverage": 0}, "coverage 0.0 is not between 0 and 1"),
    ({"q_hi": [0.4, float("inf")]}, "are not all finite"),
    ({"q_lo": [0.5, -0.1]}, "q_lo [0.5, -0.1] exceeds q_hi [0.4, 0.2]"),
    ({"n": 0}, "n = 0 rows"),
])
def test_an_interval_that_cannot_be_a_calibration_is_refused(change, words):
    Conformal.from_dict(GOOD)
    with pytest.raises(ValueError) as exc:
        Conformal.from_dict({**GOOD, **change})
    assert words in str(exc.value)


def test_a_calibrated_interval_reads_back():
    rng = np.random.default_rng(0)
    c = calibrate(rng.normal(0, 0.1, 900), rng.uniform(-12, -3, 900))
    assert len(c.edges) == 3
    assert Conformal.from_dict(json.loads(json.dumps(c.to_dict()))) == c


def tiny_gemms(n=80, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    m = rng.integers(16, 4096, n)
    nn = rng.choice([1024, 4096], n)
    t = 2.0 * m * nn * 1024 / 5e14 + 5e-6
    return pd.DataFrame({"op": "gemm", "m": m, "n": nn, "k": 1024, "b": 1, "dtype": "float16",
                         "time_s": t * rng.lognormal(0, 0.05, n), "group": nn.astype(str)})


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    pred = perfmodel.fit(tiny_gemms(), device="h100", params={"n_estimators": 5, "max_depth": 2})
    return pred.save(tmp_path_factory.mktemp("bounds") / "model")


def test_a_hand_edited_interval_is_a_corrupt_predictor_not_a_traceback(saved, tmp_path):
    ops = tiny_gemms(3, seed=1).drop(columns="time_s")
    assert np.isfinite(perfmodel.load(saved).predict(ops)["pred_time_lo_s"]).all()
    saved = shutil.copytree(saved, tmp_path / "edited")
    meta_path = saved / "predictor.json"
    meta = json.loads(meta_path.read_text())
    meta["kinds"]["gemm"]["time_interval"]["q_lo"] = []
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(PerfmodelError) as exc:
        perfmodel.load(saved)
    msg = str(exc.value)
    assert msg.startswith(f"{meta_path}: corrupt or incomplete (ValueError: interval has 0 q_lo and 1 q_hi")
    assert "\n" not in msg


def test_predicting_a_shape_past_2_53_is_an_error_not_a_warning(saved):
    pred = perfmodel.load(saved)
    ops = pd.DataFrame({"op": ["gemm"], "m": [1e30], "n": [4096], "k": [4096], "b": [1],
                        "dtype": ["float16"]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(PerfmodelError, match=r"row 1: column 'm' must be at most 2\*\*53 .* got 1e\+30"):
            pred.predict(ops)


# ---- measured times against the device's peak -------------------------------------------

def test_times_faster_than_the_peak_are_refused_and_milliseconds_are_flagged():
    from test_learn_predictor import FAST, synthetic_gemms

    from perfmodel.learn.predictor import fit

    df = synthetic_gemms(120)
    fast = df.assign(time_s=df["time_s"] / 1000)  # times divided by 1000 somewhere upstream
    with pytest.raises(PerfmodelError, match=r"^120 gemm row\(s\) run over 10x faster than "
                                             r"h100-sxm's peak allows .*is time_s in seconds"):
        fit(fast, device="h100", params=FAST)
    with pytest.warns(UserWarning, match=r"gemm: the median row takes \d+x its roofline time on "
                                         r"h100-sxm: is time_s in seconds \(not milliseconds\)"):
        fit(df.assign(time_s=df["time_s"] * 1000), device="h100", params=FAST)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the data as measured: no error, no warning
        fit(df, device="h100", params=FAST)


def test_rows_that_beat_flops_over_peak_for_real_reasons_are_accepted():
    """Winograd convolutions (DeepBench: 2.35x a V100's peak), float32 on TF32 tensor cores
    (up to 8x the A100's SIMT float32 peak) and CPU profiles, whose peaks are this host's
    rough estimates, are fitted."""
    from test_learn_predictor import FAST

    from perfmodel.learn.predictor import fit

    a100 = get_device("a100")
    m = np.arange(1, 61) * 256
    flops = 2.0 * m * 4096 * 4096
    gemm = pd.DataFrame({"op": "gemm", "m": m, "n": 4096, "k": 4096, "b": 1, "group": m % 5})
    tf32 = gemm.assign(dtype="float32", time_s=flops / (0.7 * a100.peak("tf32")))
    assert (flops / tf32["time_s"] > 5 * a100.peak("float32")).all()
    assert fit(tf32, device="a100", params=FAST).kinds == ["gemm"]
    winograd = gemm.assign(dtype="float16", time_s=flops / (2.35 * a100.peak("float16")))
    assert fit(winograd, device="a100", params=FAST).kinds == ["gemm"]
    cpu = gemm.assign(dtype="float32", time_s=flops / 1e15)  # no CPU is held to its estimate
    assert fit(cpu, device="cpu", params=FAST).kinds == ["gemm"]


def test_other_kinds_shapes_above_2_53_are_refused_too():
    ok = validate_ops(pd.DataFrame({"op": ["relu"], "numel": [2**53], "dtype": ["float32"]}))
    assert len(ok) == 1
    with pytest.raises(PerfmodelError, match=r"row 1: column 'numel' must be at most 2\*\*53"):
        validate_ops(pd.DataFrame({"op": ["relu"], "numel": [1e30], "dtype": ["float32"]}))
    with pytest.raises(PerfmodelError, match=r"column 'h' must be at most 2\*\*53"):
        validate_ops(pd.DataFrame({"op": ["conv2d"], "batch": [1], "c_in": [3], "h": [1e20],
                                   "w": [8], "c_out": [8], "kernel_h": [3], "dtype": ["float32"]}))


def test_float32_is_bounded_by_the_tf32_peak_where_a_gpu_has_one(monkeypatch):
    """float32 convolutions and matmuls run on TF32 tensor cores by default (cuDNN): the
    bound is the TF32 rate, not the SIMT float32 one (checked at a 2x margin, where the
    two differ: 8x on an A100)."""
    from test_learn_predictor import FAST

    import perfmodel.learn.predictor as predictor
    from perfmodel.learn.predictor import fit

    monkeypatch.setattr(predictor, "PEAK_MARGIN", 2.0)
    a100 = get_device("a100")
    m = np.arange(1, 61) * 256
    flops = 2.0 * m * 4096 * 4096
    gemm = pd.DataFrame({"op": "gemm", "m": m, "n": 4096, "k": 4096, "b": 1, "group": m % 5,
                         "dtype": "float32"})
    assert fit(gemm.assign(time_s=flops / (0.7 * a100.peak("tf32"))), device="a100",
               params=FAST).kinds == ["gemm"]  # 5.6x the SIMT peak: TF32 speed
    with pytest.raises(PerfmodelError, match="over 2x faster than a100"):
        fit(gemm.assign(time_s=flops / (3 * a100.peak("tf32"))), device="a100", params=FAST)


def test_a_profile_of_this_very_cpu_is_not_bounded_by_its_estimate_either(tmp_path):
    """A CPU's peaks are estimates that move with the process's CPU affinity (taskset -c 0
    halved them, and the shipped profile was refused): no CPU profile is held to them."""
    import json

    from test_learn_predictor import FAST

    from perfmodel.learn.predictor import fit

    host = get_device("cpu")
    m = np.arange(1, 61) * 64
    df = pd.DataFrame({"op": "gemm", "m": m, "n": 1024, "k": 1024, "b": 1, "dtype": "float32",
                       "time_s": 2.0 * m * 1024 * 1024 / 1e15, "suite": "gemm"})
    prof = tmp_path / "host"
    prof.mkdir()
    df.to_parquet(prof / "measurements.parquet")
    (prof / "metadata.json").write_text(json.dumps(
        {"catalogue_key": "cpu", "device_name": host.name, "torch_threads": 1}))
    pred = fit(prof, params=FAST)
    assert pred.kinds == ["gemm"] and pred.device.name == host.name
