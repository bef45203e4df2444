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
