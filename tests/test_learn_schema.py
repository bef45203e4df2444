"""Reading measurements: plain CSVs, parquet and profile directories, and their errors."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from perfmodel.errors import PerfmodelError
from perfmodel.learn.schema import read_measurements, validate_ops

GOOD = "op,m,n,k,b,dtype,time_s\ngemm,128,256,64,1,fp16,1.5e-5\nbmm,64,64,64,8,bfloat16,9e-6\n"


def _write(tmp_path, text, name="m.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_plain_csv_is_read_and_normalised(tmp_path):
    df = read_measurements(_write(tmp_path, GOOD))
    assert list(df["dtype"]) == ["float16", "bfloat16"]
    assert df["time_s"].tolist() == [1.5e-5, 9e-6]
    assert df["b"].tolist() == [1, 8]


def test_b_defaults_to_one(tmp_path):
    df = read_measurements(_write(tmp_path, "op,m,n,k,dtype,time_s\nlinear,8,8,8,float32,1e-6\n"))
    assert df["b"].tolist() == [1]


@pytest.mark.parametrize("text, words", [
    ("op,m,n,k,b,dtype\ngemm,1,2,3,1,float16\n", ["m.csv", "missing column", "time_s"]),
    ("op,m,n,k,b,dtype,time_s\ngemm,1,2,3,1,float16,-1\n", ["row 1", "line 2", "time_s", "positive"]),
    ("op,m,n,k,b,dtype,time_s\ngemm,1,2,3,1,float16,1e-6\ngemm,x,2,3,1,float16,1e-6\n", ["row 2", "'m'", "not a number"]),
    ("op,m,n,k,b,dtype,time_s\ngemm,1,2,3,1,float17,1e-6\n", ["row 1", "dtype", "float17"]),
    ("op,m,n,k,b,dtype,time_s\ngemm,1.5,2,3,1,float16,1e-6\n", ["row 1", "'m'", "positive integer"]),
    ("op,m,n,b,dtype,time_s\ngemm,1,2,1,float16,1e-6\n", ["needs column 'k'"]),
    ("op,m,n,k,b,dtype,time_s,power_w\ngemm,1,2,3,1,float16,1e-6,0\n", ["power_w", "positive"]),
    ("op,m,n,k,b,dtype,time_s\n", ["no rows"]),
])
def test_csv_schema_errors_name_the_problem(tmp_path, text, words):
    with pytest.raises(PerfmodelError) as exc:
        read_measurements(_write(tmp_path, text))
    msg = str(exc.value)
    assert "\n" not in msg
    for w in words:
        assert w in msg


def test_missing_file_and_unknown_type(tmp_path):
    with pytest.raises(PerfmodelError, match="no such file"):
        read_measurements(tmp_path / "nope.csv")
    with pytest.raises(PerfmodelError, match="unsupported file type"):
        read_measurements(_write(tmp_path, "x", "m.json"))


def test_profile_directory(tmp_path):
    prof = tmp_path / "prof"
    prof.mkdir()
    pd.DataFrame({
        "suite": ["gemm"] * 3, "op": ["gemm"] * 3, "phase": ["fwd"] * 3,
        "dtype": ["float16"] * 3, "m": [8, 16, 32], "n": [8, 16, 32], "k": [8, 16, 32],
        "b": [1, 1, 1], "time_s": [1e-5, None, 2e-5], "status": ["ok", "failed", "ok"],
    }).to_parquet(prof / "measurements.parquet")
    (prof / "metadata.json").write_text(json.dumps({"schema_version": 1, "catalogue_key": "h100-sxm"}))
    df = read_measurements(prof)
    assert len(df) == 2  # the failed point is dropped
    assert set(df["device"]) == {"h100-sxm"}
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(PerfmodelError, match="not a profile directory"):
        read_measurements(empty)


def test_parquet_and_csv_read_the_same(tmp_path):
    csv = read_measurements(_write(tmp_path, GOOD))
    pq = tmp_path / "m.parquet"
    pd.read_csv(tmp_path / "m.csv").to_parquet(pq)
    par = read_measurements(pq)
    cols = ["op", "m", "n", "k", "b", "dtype", "time_s"]
    pd.testing.assert_frame_equal(csv[cols], par[cols])


def test_ops_without_time_validate():
    df = validate_ops(pd.DataFrame({"op": ["GEMM"], "m": [4], "n": [4], "k": [4], "dtype": ["half"]}))
    assert df["op"].iloc[0] == "gemm" and df["dtype"].iloc[0] == "float16"


def _cpu_profile(path, name, threads, suites=("gemm",)):
    path.mkdir()
    rows = []
    for suite in suites:
        rows += [dict(suite=suite, op="gemm" if suite == "gemm" else "attention", phase="fwd",
                      dtype="float32", m=8 * i, n=8, k=8, b=1, time_s=1e-5 * i, status="ok")
                 for i in range(1, 31)]
    pd.DataFrame(rows).to_parquet(path / "measurements.parquet")
    (path / "metadata.json").write_text(json.dumps({
        "schema_version": 7, "catalogue_key": "cpu", "device_name": name,
        "torch_threads": threads}))
    return path


def test_profiles_of_two_cpus_or_thread_counts_are_not_read_as_one(tmp_path):
    """Every CPU's catalogue key is `cpu`: its name and thread count tell them apart."""
    amd = _cpu_profile(tmp_path / "amd", "AMD EPYC", 1)
    assert len(read_measurements([amd, _cpu_profile(tmp_path / "amd2", "AMD EPYC", 1)])) == 60
    intel = _cpu_profile(tmp_path / "intel", "Intel(R) Xeon(R) Processor", 1)
    with pytest.raises(PerfmodelError, match="device_name 'Intel.*fit one device"):
        read_measurements([amd, intel])
    with pytest.raises(PerfmodelError, match="torch_threads 2, but .*: 1"):
        read_measurements([amd, _cpu_profile(tmp_path / "two", "AMD EPYC", 2)])


def test_fit_learns_ops_only_never_blocks_or_whole_models(tmp_path):
    """A profile's blocks suite calls its attention module `attention` (projections and
    glue included): learned as the per-op attention kind, it priced SDPA ops by blocks."""
    from perfmodel.learn.predictor import fit

    prof = _cpu_profile(tmp_path / "p", "AMD EPYC", 1, suites=("gemm", "blocks", "validation"))
    pred = fit(prof)
    assert pred.kinds == ["gemm"] and pred.info["whole_rows_left_out"] == 60
    only = _cpu_profile(tmp_path / "q", "AMD EPYC", 1, suites=("blocks",))
    with pytest.raises(PerfmodelError, match="no per-op rows: the 30 rows are blocks"):
        fit(only)


def test_a_profile_without_some_op_kinds_says_the_roofline_prices_them(tmp_path):
    """A GEMM-only profile prices a CNN's convolutions by the bare roofline: the backend's
    description says so, and a one-sided interval prints as one."""
    from perfmodel.predict.device import from_profile
    from perfmodel.predict.model import Estimate

    prof = _cpu_profile(tmp_path / "p", "AMD EPYC", 1)
    rows = pd.read_parquet(prof / "measurements.parquet")
    pd.concat([rows, rows.assign(m=rows["m"] + 4, time_s=rows["time_s"] * 1.1)]).to_parquet(
        prof / "measurements.parquet")
    desc = from_profile(prof).description
    assert "learned per-op predictor on 60 per-op rows (roofline for conv, attention, " \
           "elementwise ops" in desc
    assert str(Estimate(0.5, lo=0.5)) == "0.5 [0.5, -]" and str(Estimate(0.5)) == "0.5"


def test_a_profile_too_small_to_learn_from_says_why_it_is_roofline(tmp_path):
    """`fit` learns a kind from 20 rows; a backend fits a predictor from 50: a profile
    between the two says why its predictions are the roofline's."""
    from perfmodel.predict.device import from_profile

    desc = from_profile(_cpu_profile(tmp_path / "p", "AMD EPYC", 1)).description
    assert "roofline per op (30 per-op rows, under the 50 a learned predictor is fitted on)" in desc


def test_an_unknown_phase_is_an_error_not_a_forward_pass(tmp_path):
    """`train`, `forward` or `garbage` were priced as `fwd` (a conv 2.2x off)."""
    text = "op,m,n,k,b,dtype,phase,time_s\ngemm,8,8,8,1,float16,FWD,1e-6\ngemm,8,8,8,1,float16,train,1e-6\n"
    with pytest.raises(PerfmodelError, match=r"row 2 \(line 3\): column 'phase': 'train' is not one of fwd"):
        read_measurements(_write(tmp_path, text))
    ok = read_measurements(_write(tmp_path, text.replace("train", "bwd"), "ok.csv"))
    assert ok["phase"].tolist() == ["fwd", "bwd"]


def test_a_gpu_without_the_math_mode_refuses_its_gemms():
    """float64 on an L4, FP8 on an A100: no such peak in the catalogue; the FP32 rate they
    were priced at is 30-64x off. TF32 on a V100 runs as FP32 (no TF32 units): priced so."""
    import numpy as np

    from perfmodel.hardware.catalogue import get_device
    from perfmodel.learn.features import dtype_columns

    for dev, dt in (("l4", "float64"), ("a100", "float8_e4m3fn")):
        with pytest.raises(PerfmodelError, match=f"cannot predict {dt} ops on"):
            dtype_columns(np.array([dt]), get_device(dev))
    v100 = get_device("v100")
    assert dtype_columns(np.array(["tf32"]), v100)[1][0] == v100.peak("float32")
    assert dtype_columns(np.array(["float64"]), get_device("l4"), tensor=False)[1][0] > 0


def test_a_gemm_flops_column_must_be_its_shapes_flops(tmp_path):
    """The column overrides the shape's cost: MACs there (fvcore, ptflops) halved the
    prediction without a word."""
    head = "op,m,n,k,b,dtype,time_s,flops\n"
    ok = read_measurements(_write(tmp_path, head + "gemm,8,16,4,2,float16,1e-6,2048\n"
                                  "addmm,8,16,4,2,float16,1e-6,2304\n"))  # + its bias
    assert ok["flops"].tolist() == [2048, 2304]
    with pytest.raises(PerfmodelError, match=r"column 'flops' is 1024, fewer than the "
                                             r"2 x b x m x n x k = 2048 FLOPs"):
        read_measurements(_write(tmp_path, head + "gemm,8,16,4,2,float16,1e-6,1024\n", "macs.csv"))
    with pytest.raises(PerfmodelError, match="column 'flops' must not be negative"):
        read_measurements(_write(tmp_path, head + "gemm,8,16,4,2,float16,1e-6,-1\n", "neg.csv"))
