"""Reading measurements: profile directories, parquet files and plain CSVs, read the same way.

The plain schema users bring is one row per measured op with columns
`op, m, n, k, b, dtype, time_s` and optionally `energy_j, power_w` (SI units: seconds,
joules, watts). GEMM shape C[m,n] = A[m,k] @ B[k,n] repeated `b` times; `b` defaults to 1
when the column is absent. Profiles written by `profilers` (a directory with
`measurements.parquet` and `metadata.json`) carry more columns, which pass through unchanged;
rows whose `status` is not `ok` are dropped. Every problem is a one-line `PerfmodelError`
naming the file, the row and the column.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from perfmodel.dtypes import canonical_dtype
from perfmodel.errors import PerfmodelError
from perfmodel.learn.kinds import GEMM_PARAMS, op_kind

REQUIRED = ("op", "dtype", "time_s")
OPTIONAL_POSITIVE = ("energy_j", "power_w")
# the largest shape value taken: floats (every cost and feature is one) hold each integer
# up to 2**53 exactly, and not every one above it
MAX_SHAPE = 2**53
# shape columns of the other op kinds (convolutions, attention, vector ops), bounded alike
SHAPE_COLUMNS = ("batch", "c_in", "d", "h", "w", "c_out", "kernel_d", "kernel_h", "kernel_w",
                 "stride", "padding", "dilation", "groups", "heads", "kv_heads", "seq_q",
                 "seq_k", "head_dim", "head_dim_v", "numel", "inputs", "features", "channels",
                 "out_numel", "read_numel", "rows", "cols", "tokens", "vocab")
PROFILE_FILE = "measurements.parquet"
METADATA_FILE = "metadata.json"


def read_measurements(paths: str | Path | Iterable[str | Path]) -> pd.DataFrame:
    """Read and validate measurements from profile dirs, .parquet or .csv files, concatenated.

    Adds a `profile` column (the path each row came from) and, when a profile's
    metadata names its device, a `device` column with the catalogue key.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    paths = [Path(p) for p in paths]
    frames = [_read_one(p) for p in paths]
    if not frames:
        raise PerfmodelError("no measurement files given")
    _same_device([(p, read_metadata(p)) for p in paths if p.is_dir()])
    return pd.concat(frames, ignore_index=True, sort=False)


# suites whose rows are not ops: a block (projections and glue included) or a whole model,
# timed to calibrate and check the sums of ops (`perfmodel.predict`), never learned per op
WHOLE_SUITES = ("blocks", "validation")

def per_op_rows(df: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """The rows of per-op suites only (`WHOLE_SUITES` left out; the index kept, so results
    line up with the input), and how many were left out."""
    if "suite" not in df.columns:
        return df, 0
    whole = df["suite"].astype(str).isin(WHOLE_SUITES).to_numpy()
    return (df[~whole] if whole.any() else df), int(whole.sum())


# what makes two profiles one device's: every CPU's catalogue key is `cpu`, so its name and
# the torch thread count its timings were taken with say which CPU and how it was run
DEVICE_FIELDS = ("device_name", "torch_threads")


def _same_device(metas: list) -> None:
    """PerfmodelError when profile directories were measured on different devices."""
    for path, meta in metas[1:]:
        first, ref = metas[0]
        for key in DEVICE_FIELDS:
            if meta.get(key) != ref.get(key):
                raise PerfmodelError(
                    f"{path}: {key} {meta.get(key)!r}, but {first}: {ref.get(key)!r}; fit one "
                    "device (and one thread count) at a time")


def read_metadata(path: str | Path) -> dict:
    """The `metadata.json` of a profile directory ({} for a plain file)."""
    path = Path(path)
    meta = path / METADATA_FILE if path.is_dir() else None
    if meta is None or not meta.exists():
        return {}
    try:
        data = json.loads(meta.read_text())
    except (OSError, ValueError) as exc:
        raise PerfmodelError(f"{meta}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise PerfmodelError(f"{meta}: expected a JSON object")
    return data


def _read_one(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise PerfmodelError(f"{path}: no such file or directory")
    meta = {}
    if path.is_dir():
        meta = read_metadata(path)
        file = path / PROFILE_FILE
        if not file.exists() and (path / "journal.jsonl").exists():
            raise PerfmodelError(f"{path}: profile not finished (no {PROFILE_FILE} yet): rerun "
                                 "the command that made it to resume it, or end it with what "
                                 f"it measured: `perfmodel profile finish {path}`")
        if not file.exists():
            raise PerfmodelError(f"{path}: not a profile directory (no {PROFILE_FILE})")
    else:
        file = path
    suffix = file.suffix.lower()
    df = read_table(file, "a profile directory")
    if "status" in df.columns:
        df = df[df["status"].astype(str) == "ok"].reset_index(drop=True)
    df = validate_measurements(df, source=str(file), csv=suffix != ".parquet")
    df["profile"] = str(path)
    device = meta.get("catalogue_key") or meta.get("device_key")
    if device and "device" not in df.columns:
        df["device"] = str(device)
    return df


CSV_SUFFIXES = (".csv", ".txt")


def read_table(file: str | Path, also: str = "") -> pd.DataFrame:
    """A .csv (or .txt) or .parquet file as a DataFrame; unreadable files raise PerfmodelError."""
    file = Path(file)
    if file.is_dir():
        raise PerfmodelError(f"{file}: is a directory, expected a .csv or .parquet file")
    if not file.exists():
        raise PerfmodelError(f"{file}: no such file")
    suffix = file.suffix.lower()
    if suffix != ".parquet" and suffix not in CSV_SUFFIXES:
        expected = f".csv, .parquet or {also}" if also else ".csv or .parquet"
        raise PerfmodelError(f"{file}: unsupported file type {suffix!r}; expected {expected}")
    try:
        if suffix == ".parquet":
            return pd.read_parquet(file)
        return pd.read_csv(file, skipinitialspace=True)
    except Exception as exc:  # parser errors of every flavour
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise PerfmodelError(f"{file}: cannot read ({msg})") from None


def write_table(df: pd.DataFrame, file: str | Path) -> Path:
    """Write `df` as .csv (or .txt) or .parquet by the file's suffix, creating its folder."""
    file = Path(file)
    suffix = file.suffix.lower()
    if suffix != ".parquet" and suffix not in CSV_SUFFIXES:
        raise PerfmodelError(f"{file}: unsupported output type {suffix!r}; use .csv or .parquet")
    if file.is_dir():
        raise PerfmodelError(f"{file}: is a directory, expected a file name")
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        if suffix == ".parquet":
            df.to_parquet(file, index=False)
        else:
            df.to_csv(file, index=False)
    except OSError as exc:
        raise PerfmodelError(f"{file}: cannot write ({exc.strerror or exc})") from None
    return file


def _where(source: str, i: int, csv: bool) -> str:
    return f"{source}: row {i + 1} (line {i + 2})" if csv else f"{source}: row {i + 1}"


def _show(v) -> str:
    """A cell as the user wrote it (no numpy scalar reprs)."""
    return repr(v.item() if isinstance(v, np.generic) else v)


def _numeric(df: pd.DataFrame, col: str, source: str, csv: bool) -> np.ndarray:
    """Column as float64, raising on the first entry that is not a number."""
    values = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=float)
    bad = np.isnan(values) & df[col].notna().to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise PerfmodelError(f"{_where(source, i, csv)}: column {col!r} is not a number: {_show(df[col].iloc[i])}")
    return values


def validate_measurements(df: pd.DataFrame, source: str = "<frame>", csv: bool = False) -> pd.DataFrame:
    """Check and normalise a measurement table (a copy): columns, types, positivity, dtypes."""
    df = _check_columns(df, source, need_time=True)
    time = _numeric(df, "time_s", source, csv)
    bad = ~(np.isfinite(time) & (time > 0))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise PerfmodelError(f"{_where(source, i, csv)}: column 'time_s' must be a positive number of seconds, got {_show(df['time_s'].iloc[i])}")
    df["time_s"] = time
    for col in OPTIONAL_POSITIVE:
        if col in df.columns:
            v = _numeric(df, col, source, csv)
            bad = ~np.isnan(v) & ~(np.isfinite(v) & (v > 0))
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise PerfmodelError(f"{_where(source, i, csv)}: column {col!r} must be positive or empty, got {_show(df[col].iloc[i])}")
            df[col] = v
    return _check_shapes(df, source, csv)


def validate_ops(df: pd.DataFrame, source: str = "<frame>", csv: bool = False) -> pd.DataFrame:
    """Check and normalise an op table to predict for (as measurements, without `time_s`)."""
    return _check_shapes(_check_columns(df, source, need_time=False), source, csv)


def _check_columns(df: pd.DataFrame, source: str, need_time: bool) -> pd.DataFrame:
    if not isinstance(df, pd.DataFrame):
        raise PerfmodelError(f"{source}: expected a pandas DataFrame, got {type(df).__name__}")
    df = df.copy(deep=False)  # new columns replace old ones; the caller's frame is untouched
    df.columns = [str(c).strip() for c in df.columns]
    need = REQUIRED if need_time else ("op", "dtype")
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise PerfmodelError(
            f"{source}: missing column(s) {', '.join(missing)}; the schema is op, m, n, k, b, dtype, time_s[, energy_j, power_w]"
        )
    if len(df) == 0:
        raise PerfmodelError(f"{source}: no rows")
    return df


def _check_shapes(df: pd.DataFrame, source: str, csv: bool) -> pd.DataFrame:
    ops = df["op"]
    if ops.isna().any():
        i = int(np.flatnonzero(ops.isna().to_numpy())[0])
        raise PerfmodelError(f"{_where(source, i, csv)}: column 'op' is empty")
    codes, uniq = pd.factorize(ops)
    df["op"] = _categorical(codes, [str(o).strip().lower() for o in uniq])
    codes, uniq = pd.factorize(df["dtype"])
    if (codes < 0).any():
        i = int(np.flatnonzero(codes < 0)[0])
        raise PerfmodelError(f"{_where(source, i, csv)}: column 'dtype' is empty")
    names = []
    for j, d in enumerate(uniq):
        try:
            names.append(canonical_dtype(d))
        except PerfmodelError as exc:
            i = int(np.flatnonzero(codes == j)[0])
            raise PerfmodelError(f"{_where(source, i, csv)}: column 'dtype': {exc}") from None
    df["dtype"] = _categorical(codes, names)
    if "phase" in df.columns:  # an unknown phase was priced as a forward pass
        from perfmodel.learn.features import PHASES

        phase = df["phase"].astype("string").str.strip().str.lower()
        bad = phase.notna() & ~phase.isin(list(PHASES))
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise PerfmodelError(f"{_where(source, i, csv)}: column 'phase': "
                                 f"{df['phase'].iloc[i]!r} is not one of {', '.join(PHASES)}")
        df["phase"] = phase.astype(object).where(phase.notna(), None)
    if "b" not in df.columns:
        df["b"] = 1
    gemm = _is_gemm(df["op"])
    for col in GEMM_PARAMS:
        if col not in df.columns:
            if gemm.any():
                i = int(np.flatnonzero(gemm)[0])
                raise PerfmodelError(f"{_where(source, i, csv)}: GEMM op {df['op'].iloc[i]!r} needs column {col!r}, which is missing")
            continue
        v = _numeric(df, col, source, csv)
        if col == "b":
            v = np.where(np.isnan(v), 1.0, v)  # an empty batch means one GEMM
        bad = gemm & ~(np.isfinite(v) & (v >= 1) & (v == np.round(v)))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise PerfmodelError(f"{_where(source, i, csv)}: column {col!r} must be a positive integer for GEMM op {df['op'].iloc[i]!r}, got {_show(df[col].iloc[i])}")
        big = gemm & (v >= MAX_SHAPE)
        if big.any():  # compared as read: 2**53 + 1 in an integer column is 2**53 as a float
            big &= (pd.to_numeric(df[col], errors="coerce") > MAX_SHAPE).fillna(False).to_numpy(dtype=bool)
        if big.any():
            i = int(np.flatnonzero(big)[0])
            raise PerfmodelError(f"{_where(source, i, csv)}: column {col!r} must be at most 2**53 = {MAX_SHAPE} for GEMM op {df['op'].iloc[i]!r}, got {_show(df[col].iloc[i])}")
        df[col] = v
    for col in SHAPE_COLUMNS:  # the other kinds' shapes: as exact as the GEMMs'
        if col in df.columns and df[col].dtype != bool:
            v = pd.to_numeric(df[col], errors="coerce")
            big = (v.abs() > MAX_SHAPE).fillna(False).to_numpy(dtype=bool)
            if big.any():
                i = int(np.flatnonzero(big)[0])
                raise PerfmodelError(f"{_where(source, i, csv)}: column {col!r} must be at most "
                                     f"2**53 = {MAX_SHAPE}, got {_show(df[col].iloc[i])}")
    _check_gemm_flops(df, gemm, source, csv)
    return df


def _check_gemm_flops(df: pd.DataFrame, gemm: np.ndarray, source: str, csv: bool) -> None:
    """A forward GEMM's own `flops` must be at least 2 x b x m x n x k (the column overrides
    the shape's cost: MACs there, as fvcore and ptflops export them, halved every
    prediction; the counter's addmm adds its bias on top);
    a negative `flops` or `bytes` is an error, not a value to ignore."""
    for col in ("flops", "bytes"):
        if col in df.columns:
            v = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=float)
            bad = np.isfinite(v) & (v < 0)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise PerfmodelError(f"{_where(source, i, csv)}: column {col!r} must not be "
                                     f"negative, got {_show(df[col].iloc[i])}")
    if "flops" not in df.columns or not gemm.any():
        return
    flops = pd.to_numeric(df["flops"], errors="coerce").to_numpy(dtype=float)
    fwd = np.ones(len(df), bool)
    if "phase" in df.columns:
        fwd = df["phase"].isin(["fwd", "inference"]).to_numpy() | df["phase"].isna().to_numpy()
    want = 2.0 * df["b"].to_numpy(dtype=float) * df["m"].to_numpy(dtype=float) * \
        df["n"].to_numpy(dtype=float) * df["k"].to_numpy(dtype=float)
    # fewer FLOPs than the product itself (a bias add may count on top: an addmm)
    bad = gemm & fwd & np.isfinite(flops) & (flops < 0.99 * want)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise PerfmodelError(
            f"{_where(source, i, csv)}: column 'flops' is {flops[i]:.6g}, fewer than the "
            f"2 x b x m x n x k = {want[i]:.6g} FLOPs this GEMM runs (FLOPs = 2 x MACs; a "
            "MAC count would halve the prediction): fix it or drop the column")


def _categorical(codes: np.ndarray, names: list[str]) -> pd.Categorical:
    """names[codes] as a categorical (names may repeat: 'GEMM' and 'gemm' both -> 'gemm')."""
    remap, cats = pd.factorize(pd.Series(names, dtype=object))
    return pd.Categorical.from_codes(remap[codes], categories=list(cats))


def _is_gemm(ops: pd.Series) -> np.ndarray:
    cat = ops.cat
    return np.array([op_kind(o) == "gemm" for o in cat.categories], dtype=bool)[cat.codes.to_numpy()]
