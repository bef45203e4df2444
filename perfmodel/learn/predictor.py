"""The learned predictor of runtime, power and energy: `fit`, `Predictor.predict`, `save`, `load`.

One xgboost model per op kind learns log(time / roofline time) from `features.py` (or, with
`base="tiled"`, over the tile-quantised roofline); a second
learns log(power) where the training data has power (or energy). Energy = power x time.
Every prediction carries a split-conformal interval (`conformal.py`) calibrated on whole
groups of rows the model was not fitted on, then the model is refitted on all rows. An op
kind without a model is predicted by the roofline and marked `source = "roofline"`. A row the
calibration does not speak for, in a dtype its kind's model never saw or on another device
than the fitted one, is predicted by the model but marked `source = "extrapolated"`, with
the roofline as its only bound (fitted on A100 float16, the "90%" interval held 58% of H100
rows; fitted on H100 float16, 59% of its float32 rows); on another device it gets no power
or energy either.

A saved predictor is a directory: `predictor.json` (features, op kinds, device spec, library
versions, conformal quantiles, linear-baseline coefficients, SHA-256 of each model file) and
one xgboost JSON model per op kind and target. Loading executes nothing.
"""
from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

import perfmodel
from perfmodel.errors import PerfmodelError
from perfmodel.learn.baselines import LinearBaseline
from perfmodel.learn.conformal import Conformal, calibrate
from perfmodel.learn.features import BASES, Features, base_time, build_features, kinds_of
from perfmodel.learn.kinds import canonical_op
from perfmodel.learn.schema import (per_op_rows, read_measurements, validate_measurements,
                                    validate_ops)

FORMAT = "perfmodel-predictor"
FORMAT_VERSION = 1
META_FILE = "predictor.json"
MIN_ROWS = 20  # fewer measured rows of a kind: no model, roofline fallback
# kinds whose ops run different kernels (a relu and a softmax are both `elementwise`): an op
# the kind's model never saw is priced by the roofline, not by its neighbours' trees
GUARDED_KINDS = ("elementwise",)
CALIBRATION_FOLDS = 5  # group folds whose out-of-fold residuals calibrate the intervals
DEFAULT_COVERAGE = 0.9
PRED_COLUMNS = ("pred_time_s", "pred_time_lo_s", "pred_time_hi_s", "pred_power_w", "pred_energy_j", "source")
SOURCES = ("roofline", "learned", "extrapolated")  # the categories of `source`

# xgboost settings (hist): small enough to predict a million rows in well under a second.
XGB_PARAMS = dict(
    n_estimators=150, max_depth=7, learning_rate=0.12, subsample=0.8, colsample_bytree=0.8,
    min_child_weight=2.0, reg_lambda=1.0, tree_method="hist", max_bin=256,
)


class ExtrapolationWarning(UserWarning):
    """Rows of a kind in dtypes its model was not fitted on (`kind`, `dtypes`, `fitted`)."""

    def __init__(self, kind: str, dtypes: list[str], fitted: tuple[str, ...]):
        super().__init__(f"{kind} ops in {', '.join(dtypes)}: the {kind} model was fitted on "
                         f"{', '.join(fitted)}, none of which this device runs alike; priced "
                         "by extrapolation (source 'extrapolated'), with the roofline as the only "
                         "bound")
        self.kind, self.dtypes, self.fitted = kind, tuple(dtypes), tuple(fitted)


def _is_float(dtype: str) -> bool:
    return "float" in str(dtype) or str(dtype) == "tf32"


@dataclass
class KindModel:
    """The fitted models of one op kind."""

    kind: str
    features: tuple[str, ...]
    time: object  # xgboost.Booster on log(time / roofline)
    time_interval: Conformal
    power: object | None = None  # xgboost.Booster on log(power)
    power_interval: Conformal | None = None
    energy_interval: Conformal | None = None
    rows: int = 0
    groups: int = 0
    ops: tuple[str, ...] = ()  # the op names it was fitted on (empty: not recorded)
    inplace_ops: tuple[str, ...] = ()  # those it was fitted on run in place too
    dtypes: tuple[str, ...] = ()  # the dtypes it was fitted on (empty: not recorded, all taken as seen)

    def dtype_seen(self, dtypes, device) -> np.ndarray:
        """Which rows are in a dtype the model was fitted on or, on a GPU, in one it runs
        alike (floating point or integer as a fitted one, with the same element bytes and
        math-mode peak: bfloat16 beside float16 on tensor cores; int8 is not FP8 though the
        catalogue gives them one peak); every row when the fitted dtypes were not recorded.
        On a CPU only the fitted dtypes: its kernels differ by dtype beyond the peaks
        (float16 GEMMs without a fast kernel ran 25x slower than bfloat16)."""
        from perfmodel.learn.features import TENSOR_KINDS, dtype_columns

        if not self.dtypes:
            return np.ones(len(dtypes), dtype=bool)
        if isinstance(getattr(dtypes, "dtype", None), pd.CategoricalDtype):  # validate_ops'
            codes = dtypes.cat.codes.to_numpy() if isinstance(dtypes, pd.Series) else dtypes.codes
            uniq = [str(c) for c in dtypes.dtype.categories]
        else:
            codes, uniq = pd.factorize(pd.Series(dtypes, dtype=object).astype(str))
        seen = np.array([d in self.dtypes for d in uniq], dtype=bool)
        if device.kind == "gpu" and not seen.all():
            tensor = self.kind in TENSOR_KINDS
            fitted = set(zip(*dtype_columns(np.array(self.dtypes, dtype=object), device, tensor)))
            floats = {_is_float(f) for f in self.dtypes}
            for i, d in enumerate(uniq):
                if not seen[i] and _is_float(d) in floats:  # int8 is no FP8, at any peak
                    try:
                        one = dtype_columns(np.array([d], dtype=object), device, tensor)
                        seen[i] = tuple(c[0] for c in one) in fitted
                    except PerfmodelError:
                        pass
        return seen[codes] if len(codes) else np.zeros(0, dtype=bool)

    def in_place_known(self, ops, inplace: np.ndarray) -> np.ndarray:
        """The `ew_inplace` flags it may use: an op (by canonical name) it never saw run in
        place is priced as the op out of place (silu_, where the suite timed relu_ and
        `x += y`). The counter records every pointwise aten op as `elementwise`, so its
        in-place rows (binary adds) stand for any in-place pointwise op: mul_, div_,
        clamp_, a scalar add_."""
        if not inplace.any():
            return inplace
        seen = set(self.inplace_ops)
        ops = pd.Series(ops, dtype=object)
        known = ops.map({o: canonical_op(o) in seen for o in pd.unique(ops)}).to_numpy(dtype=bool)
        return np.where(known, inplace, 0.0)

    def knows(self, ops) -> np.ndarray:
        """Which rows it may price: every row, except that a vector kind's model prices only
        the ops it was fitted on (`GUARDED_KINDS`)."""
        ops = pd.Series(ops, dtype=object)
        if self.kind not in GUARDED_KINDS or not self.ops:
            return np.ones(len(ops), dtype=bool)
        seen = set(self.ops)
        known = {o: canonical_op(o) in seen for o in pd.unique(ops)}
        return ops.map(known).to_numpy(dtype=bool)


@dataclass
class Predictor:
    """A fitted predictor for one device; `predict(ops)` returns times, power, energy."""

    device: object  # perfmodel.hardware.DeviceSpec
    models: dict[str, KindModel]
    linear: LinearBaseline
    coverage: float = DEFAULT_COVERAGE
    info: dict = field(default_factory=dict)
    base: str = "roofline"  # the time the models' log ratio is taken against (features.base_time)

    @property
    def kinds(self) -> list[str]:
        """Op kinds with a learned model."""
        return sorted(self.models)

    def predict(self, ops: pd.DataFrame, device=None) -> pd.DataFrame:
        """`ops` with pred_time_s, pred_time_lo_s, pred_time_hi_s, pred_power_w, pred_energy_j, source.

        Interval bounds are NaN where no calibrated interval exists (a roofline row's lower
        bound is the roofline itself, as an extrapolated row's is); power and energy are NaN
        without a power model, and on another device than the fitted one.
        """
        dev = self._device_for(ops, device)
        other_device = dev.key != self.device.key
        df = validate_ops(ops, source="ops")
        out = {c: np.full(len(df), np.nan) for c in PRED_COLUMNS[:-1]}
        learned = np.zeros(len(df), dtype=np.int8)
        unseen: dict[str, tuple[list[str], tuple[str, ...]]] = {}
        kinds = kinds_of(df)
        for kind in pd.unique(kinds):
            sel = np.flatnonzero(kinds == kind)
            sub = df.iloc[sel] if len(sel) < len(df) else df
            feats, t_r = build_features(sub, kind, dev)
            model = self.models.get(kind)
            known = np.zeros(len(sel), bool) if model is None else model.knows(sub["op"])
            if not known.all():  # no model of the kind, or ops its model never saw
                out["pred_time_s"][sel[~known]] = t_r[~known]
                out["pred_time_lo_s"][sel[~known]] = t_r[~known]
                if not known.any():
                    continue
                sel, t_r = sel[known], t_r[known]
                feats = Features({k: v[known] for k, v in feats.items()})
            if "ew_inplace" in feats.names:
                feats["ew_inplace"] = model.in_place_known(sub["op"].to_numpy()[known],
                                                           feats["ew_inplace"])
            X = feats.matrix(model.features)
            log_t = np.log(base_time(feats, t_r, self.base, dev)) + _booster_predict(model.time, X)
            lo, hi = model.time_interval.bounds(log_t)
            dtype_col = df["dtype"].iloc[sel] if len(sel) < len(df) else df["dtype"]
            seen = (np.zeros(len(sel), dtype=bool) if other_device
                    else model.dtype_seen(dtype_col, dev))
            out["pred_time_s"][sel] = np.exp(log_t)
            out["pred_time_lo_s"][sel] = np.where(seen, np.exp(log_t + lo), t_r)
            out["pred_time_hi_s"][sel] = np.where(seen, np.exp(log_t + hi), np.nan)
            if model.power is not None and not other_device:
                power = np.exp(_booster_predict(model.power, X))
                out["pred_power_w"][sel] = power
                out["pred_energy_j"][sel] = power * np.exp(log_t)
            learned[sel] = np.where(seen, 1, 2)
            new = ([] if other_device or seen.all()
                   else sorted(set(dtype_col[~seen].astype(str))))
            if new:
                unseen[str(kind)] = (new, model.dtypes)
        for kind, (new, fitted) in unseen.items():
            warnings.warn(ExtrapolationWarning(kind, new, fitted), stacklevel=2)
        result = ops.copy(deep=False)
        for c in PRED_COLUMNS[:-1]:
            result[c] = out[c]
        result["source"] = pd.Categorical.from_codes(learned, categories=list(SOURCES))
        return result

    def predict_intervals(self, ops: pd.DataFrame, device=None) -> pd.DataFrame:
        """Like `predict`, plus power and energy intervals (pred_power_lo_w ... pred_energy_hi_j)."""
        res = self.predict(ops, device)
        df = validate_ops(ops, source="ops")
        for c in ("pred_power_lo_w", "pred_power_hi_w", "pred_energy_lo_j", "pred_energy_hi_j"):
            res[c] = np.nan
        kinds = kinds_of(df)
        for kind, model in self.models.items():
            sel = np.flatnonzero(kinds == kind)
            sel = sel[(res["source"].to_numpy()[sel] == "learned")]  # extrapolated: no interval
            if not len(sel) or model.power is None:
                continue
            p = np.log(res["pred_power_w"].to_numpy()[sel])
            e = np.log(res["pred_energy_j"].to_numpy()[sel])
            lo, hi = model.power_interval.bounds(p)
            res.iloc[sel, res.columns.get_loc("pred_power_lo_w")] = np.exp(p + lo)
            res.iloc[sel, res.columns.get_loc("pred_power_hi_w")] = np.exp(p + hi)
            lo, hi = model.energy_interval.bounds(e)
            res.iloc[sel, res.columns.get_loc("pred_energy_lo_j")] = np.exp(e + lo)
            res.iloc[sel, res.columns.get_loc("pred_energy_hi_j")] = np.exp(e + hi)
        return res

    def predict_baseline(self, ops: pd.DataFrame, method: str = "roofline", device=None) -> np.ndarray:
        """Seconds predicted by a saved baseline: `roofline` or `linear` (NaN for unfitted kinds)."""
        dev = self._device_for(ops, device, warn=False)
        df = validate_ops(ops, source="ops")
        kinds = kinds_of(df)
        out = np.full(len(df), np.nan)
        for kind in pd.unique(kinds):
            sel = np.flatnonzero(kinds == kind)
            feats, t_r = build_features(df.iloc[sel], kind, dev)
            if method == "roofline":
                out[sel] = t_r
            elif method == "linear":
                flops, bytes_ = np.exp2(feats["log_flops"]), np.exp2(feats["log_bytes"])
                out[sel] = self.linear.predict(kinds[sel], df["dtype"].to_numpy()[sel], flops, bytes_)
            else:
                raise PerfmodelError(f"unknown baseline {method!r}; expected roofline or linear")
        return out

    def _device_for(self, ops, device, warn: bool = True):
        """The spec to predict on: `device`, else the fitted one; warns on a different device."""
        from perfmodel.hardware.catalogue import get_device

        asked = device
        if asked is None and isinstance(ops, pd.DataFrame) and "device" in ops.columns:
            names = pd.unique(ops["device"].dropna().astype(str))
            if len(names) > 1:
                raise PerfmodelError(f"ops name several devices ({', '.join(names[:4])}); predict one device at a time")
            asked = names[0] if len(names) else None
        if asked is None:
            return self.device
        spec = get_device(asked)
        if spec.key != self.device.key:
            if warn:
                warnings.warn(
                    f"predictor was fitted on {self.device.key}, asked to predict for {spec.key}: "
                    "only the roofline features follow the device; its learned rows are "
                    "extrapolated (source 'extrapolated'): no interval above the roofline, "
                    "no power or energy",
                    stacklevel=3,
                )
            return spec
        return self.device

    # ---- persistence ----
    def save(self, path) -> Path:
        """Save to directory `path` (created): JSON metadata + xgboost JSON models, no pickle."""
        import sklearn
        import xgboost

        path = Path(path)
        if path.exists() and not path.is_dir():
            raise PerfmodelError(f"{path}: exists and is not a directory")
        path.mkdir(parents=True, exist_ok=True)
        kinds = {}
        for kind, m in self.models.items():
            entry = {
                "features": list(m.features), "rows": m.rows, "groups": m.groups,
                "ops": list(m.ops), "inplace_ops": list(m.inplace_ops), "dtypes": list(m.dtypes),
                "time_interval": m.time_interval.to_dict(),
            }
            files = {"time": m.time}
            if m.power is not None:
                files["power"] = m.power
                entry["power_interval"] = m.power_interval.to_dict()
                entry["energy_interval"] = m.energy_interval.to_dict()
            for target, booster in files.items():
                name = f"{target}_{_safe(kind)}.json"
                booster.save_model(str(path / name))
                entry[f"{target}_file"] = name
                entry[f"{target}_sha256"] = _sha256(path / name)
            kinds[kind] = entry
        meta = {
            "format": FORMAT, "format_version": FORMAT_VERSION,
            "versions": {"perfmodel": perfmodel.__version__, "xgboost": xgboost.__version__,
                         "sklearn": sklearn.__version__, "numpy": np.__version__},
            "device": self.device.to_dict(), "coverage": self.coverage,
            "kinds": kinds, "linear_baseline": self.linear.to_dict(), "info": self.info,
            "base": self.base,
        }
        (path / META_FILE).write_text(json.dumps(meta, indent=1, default=_json_default))
        return path


def _safe(kind: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in kind)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    return str(o)


def _booster_predict(booster, X: np.ndarray) -> np.ndarray:
    return booster.inplace_predict(X).astype(float)


# ---- fitting ----
def _power(df: pd.DataFrame) -> np.ndarray:
    """Measured watts per row: `power_w`, else `energy_j / time_s`, else NaN."""
    p = df["power_w"].to_numpy(dtype=float) if "power_w" in df.columns else np.full(len(df), np.nan)
    if "energy_j" in df.columns:
        e = df["energy_j"].to_numpy(dtype=float) / df["time_s"].to_numpy(dtype=float)
        p = np.where(np.isfinite(p), p, e)
    return p


def group_ids(df: pd.DataFrame, group_by=None) -> np.ndarray:
    """Integer group of each row: by the `group_by` columns, else a `group` column, else shape.

    Rows of one group are never split between fitting and calibration (or train and test).
    """
    return group_keys(df, group_by)[0]


def group_keys(df: pd.DataFrame, group_by=None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """`group_ids`, the key text of each group id ("conv2d|<NA>|..." ) and the columns used."""
    if isinstance(group_by, str):
        group_by = [c.strip() for c in group_by.split(",") if c.strip()]
    if not group_by:
        group_by = ["group"] if "group" in df.columns else [
            c for c in ("op", "m", "n", "k", "b", "batch", "c_in", "h", "w", "c_out", "kernel_h",
                        "stride", "heads", "seq_q", "seq_k", "head_dim", "numel", "rows", "cols")
            if c in df.columns
        ]
    missing = [c for c in group_by if c not in df.columns]
    if missing:
        raise PerfmodelError(f"group-by column(s) {', '.join(missing)} not in the data (have: {', '.join(map(str, df.columns))})")
    # Missing cells (a GEMM row has no conv columns) form their own key; pandas 3 keeps them
    # missing through astype(str), so they are filled first.
    cols = df[list(group_by)].astype(object)
    keys = cols.where(cols.notna(), "<NA>").astype(str).agg("|".join, axis=1)
    codes, uniq = pd.factorize(keys)
    return codes, np.asarray(uniq, dtype=object), list(group_by)


def group_folds(groups: np.ndarray, n_folds: int, seed: int = 0) -> list[np.ndarray]:
    """Boolean test masks of up to `n_folds` folds made of whole groups, balanced by rows."""
    uniq, sizes = np.unique(groups, return_counts=True)
    n_folds = min(n_folds, len(uniq))
    if n_folds < 2:
        return []
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(uniq))
    order = order[np.argsort(-sizes[order], kind="stable")]  # largest groups first
    load = np.zeros(n_folds)
    fold_of = np.empty(len(uniq), int)
    for i in order:  # greedy: each group to the lightest fold
        f = int(np.argmin(load))
        fold_of[i] = f
        load[f] += sizes[i]
    row_fold = fold_of[np.searchsorted(uniq, groups)]
    return [row_fold == f for f in range(n_folds)]


def _train(X: np.ndarray, y: np.ndarray, params: dict, seed: int):
    from xgboost import XGBRegressor

    model = XGBRegressor(**{**XGB_PARAMS, **(params or {})}, random_state=seed, n_jobs=_threads())
    model.fit(X, y)
    return model.get_booster()


def _threads() -> int:
    import os

    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def fit(data, device=None, *, group_by=None, coverage: float = DEFAULT_COVERAGE,
        params: dict | None = None, min_rows: int = MIN_ROWS, seed: int = 0,
        base: str = "roofline") -> Predictor:
    """Fit a predictor on measurements (a DataFrame, or profile dirs / .parquet / .csv paths).

    `device`: the catalogue name of the measured device (default: the `device` column or the
    profile's metadata). `group_by`: columns whose rows stay together when holding out
    calibration rows (default: a `group` column, else the op's shape). `coverage`: target
    share of measurements inside the intervals. `base`: what the model learns the time
    ratio to, `roofline` or `tiled` (the tile-quantised roofline of `features.base_time`,
    which carries better to other dtypes and batch counts than the data's own range).
    """
    from perfmodel.hardware.catalogue import get_device

    if isinstance(data, pd.DataFrame):
        df = validate_measurements(data, source="data")
    else:
        df = read_measurements(data)
    df, left_out = per_op_rows(df)  # a profile's blocks and whole models are no per-op rows
    if left_out:
        df = df.reset_index(drop=True)
        if df.empty:
            raise PerfmodelError(f"no per-op rows: the {left_out} rows are blocks and whole "
                                 "models (suites blocks, validation), which calibrate "
                                 "`perfmodel step`/`rank` but are not ops to learn")
    if not 0.0 < coverage < 1.0:
        raise PerfmodelError(f"coverage must be between 0 and 1, got {coverage}")
    if base not in BASES:
        raise PerfmodelError(f"unknown base {base!r}; expected one of {', '.join(BASES)}")
    if device is None:
        names = pd.unique(df["device"].dropna().astype(str)) if "device" in df.columns else []
        if len(names) != 1:
            raise PerfmodelError("say which device the measurements come from (device=... / --device)")
        device = names[0]
    spec = _measured_cpu(get_device(device), data)
    if "device" in df.columns:
        others = {str(d) for d in pd.unique(df["device"].dropna())} - {spec.key}
        others = {d for d in others if get_device(d).key != spec.key}
        if others and len(others) == len({str(d) for d in pd.unique(df["device"].dropna())}):
            raise PerfmodelError(f"the measurements are from {', '.join(sorted(others))}, "
                                 f"not {spec.key}: give --device {sorted(others)[0]} (or "
                                 "leave it out)")
        if others:
            raise PerfmodelError(f"measurements from {', '.join(sorted(others))} mixed with {spec.key}; fit one device at a time")
    groups = group_ids(df, group_by)
    power = _power(df)
    time = df["time_s"].to_numpy(dtype=float)
    kinds = kinds_of(df)
    models: dict[str, KindModel] = {}
    all_flops = np.full(len(df), np.nan)
    all_bytes = np.full(len(df), np.nan)
    skipped: dict[str, str] = {}
    for kind in pd.unique(kinds):
        sel = np.flatnonzero(kinds == kind)
        sub = df.iloc[sel]
        try:
            feats, t_r = build_features(sub, kind, spec)
        except PerfmodelError as exc:  # e.g. whole-model rows without FLOPs: nothing to learn from
            skipped[str(kind)] = str(exc)
            kinds[sel] = None
            continue
        all_flops[sel] = np.exp2(feats["log_flops"])
        all_bytes[sel] = np.exp2(feats["log_bytes"])
        _check_units(sub, kind, spec, all_flops[sel], time[sel], t_r)
        if len(sel) < min_rows:
            continue
        models[kind] = _fit_kind(kind, feats, base_time(feats, t_r, base, spec), time[sel], power[sel],
                                 groups[sel], coverage, params, seed)
        models[kind].ops = tuple(sorted({canonical_op(o) for o in pd.unique(sub["op"])}))
        models[kind].dtypes = tuple(sorted({str(d) for d in pd.unique(sub["dtype"])}))
        if "ew_inplace" in feats.names:
            ran = sub["op"].to_numpy()[feats["ew_inplace"] == 1]
            models[kind].inplace_ops = tuple(sorted({canonical_op(o) for o in pd.unique(ran)}))
    usable = np.array([k is not None for k in kinds])
    if not usable.any():
        raise PerfmodelError(f"no usable rows: {'; '.join(f'{k}: {v}' for k, v in skipped.items())}")
    linear = LinearBaseline().fit(kinds[usable], df["dtype"].to_numpy()[usable], all_flops[usable],
                                  all_bytes[usable], time[usable])
    info = {
        "fitted": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "rows": int(len(df)), "group_by": group_by if group_by else "default",
        "xgb_params": {**XGB_PARAMS, **(params or {})}, "min_rows": min_rows,
        "roofline_kinds": sorted({str(k) for k in kinds[usable]} - set(models)),
        "skipped_kinds": skipped, "whole_rows_left_out": left_out,
    }
    return Predictor(device=spec, models=models, linear=linear, coverage=coverage, info=info, base=base)


PEAK_MARGIN = 10.0  # a row this much faster than its FLOPs at the peak allow: not seconds
UNITS_RATIO = 300.0  # a kind's median time this many times its roofline: milliseconds?


def _check_units(sub, kind, spec, flops, time, t_r) -> None:
    """Refuse rows over PEAK_MARGIN times faster than the datasheet's fastest math for their
    dtype allows (float32 at the TF32 rate), and warn when a kind's median time is over
    UNITS_RATIO times its roofline: times stored in other units than seconds (x1000).

    The margin is wide on purpose: real rows beat `flops / peak` where FLOPs count work a
    kernel skips or does another way: Winograd convolutions (DeepBench's cuDNN float32 convs
    ran up to 2.35x the V100's peak), padded taps, causal attention counted whole. The public
    GEMM sweeps come to 1.00x (NeuSight V100). A CPU's peaks are this host's rough
    estimates, which move with the process's CPU affinity and the clock it reads (and
    another CPU's profile may beat them: an Intel profile's AMX bfloat16 GEMMs ran 3.4x this
    AMD host's estimate): no CPU row is held to them. Median time over roofline: the public
    sweeps 1.4x, the CPU profiles' kinds 1.3-7.4x; a sweep stored in ms, 1455x."""
    from perfmodel.learn.features import TENSOR_KINDS, dtype_columns

    if spec.kind != "cpu":  # a datasheet's peaks
        peak = dtype_columns(sub["dtype"].to_numpy(), spec, kind in TENSOR_KINDS)[1]
        if kind in TENSOR_KINDS and spec.supports("tf32"):  # float32 may run on TF32 cores
            f32 = (sub["dtype"].astype(str) == "float32").to_numpy()
            peak = np.where(f32, np.maximum(peak, spec.peak("tf32")), peak)
        floor = flops / peak
        bad = np.flatnonzero(time * PEAK_MARGIN < floor)
        if len(bad):
            i = bad[np.argmax(floor[bad] / time[bad])]
            r = sub.iloc[i]
            raise PerfmodelError(
                f"{len(bad)} {kind} row(s) run over {PEAK_MARGIN:g}x faster than {spec.key}'s "
                f"peak allows (e.g. {r['op']} in {r['dtype']}: {time[i]:.3g} s for "
                f"{flops[i]:.3g} FLOPs, which take {floor[i]:.3g} s at "
                f"{peak[i] / 1e12:.4g} TFLOP/s): is time_s in seconds, and is this the "
                "device they were measured on?")
    ratio = float(np.median(time / t_r))
    if len(time) >= MIN_ROWS and ratio > UNITS_RATIO:
        warnings.warn(f"{kind}: the median row takes {ratio:.0f}x its roofline time on "
                      f"{spec.key}: is time_s in seconds (not milliseconds)?", stacklevel=3)


def _measured_cpu(spec, data):
    """The spec to fit rows with. A CPU profile measured on another CPU (by its metadata's `device_name`; a DataFrame's
    `profile` column names its profiles) gets a spec named for that CPU. Its peaks and
    bandwidth stay this host's estimates (every CPU's catalogue entry is the local one):
    the learned models' reference scale, which predictions reuse from the saved spec, so
    they do not depend on where they run."""
    import dataclasses

    from perfmodel.learn.schema import read_metadata

    if spec.kind != "cpu":
        return spec
    if isinstance(data, pd.DataFrame):
        paths = list(pd.unique(data["profile"].dropna().astype(str))) if "profile" in data.columns else []
    else:
        paths = [data] if isinstance(data, (str, Path)) else list(data)
    names = {read_metadata(p).get("device_name") for p in paths if Path(p).is_dir()} - {None}
    if len(names) != 1 or spec.name in names:
        return spec
    measured = names.pop()
    return dataclasses.replace(
        spec, name=str(measured),
        notes=(f"measured on {measured}; peaks and bandwidth are the fitting host's ({spec.name}) "
               f"estimates, the learned models' reference; {spec.notes}").rstrip("; "))


def _fit_kind(kind, feats, t_r, time, power, groups, coverage, params, seed) -> KindModel:
    """Cross-fit on group folds for out-of-fold residuals (the intervals), then fit on all rows."""
    names = feats.names
    X = np.ascontiguousarray(feats.matrix())
    y = np.log(time) - np.log(t_r)
    has_p = np.isfinite(power) & (power > 0)
    fit_power = has_p.sum() >= MIN_ROWS
    folds = group_folds(groups, CALIBRATION_FOLDS, seed)
    if len(folds) < 2 or min(f.sum() for f in folds) < 1:
        folds = group_folds(np.arange(len(y)), CALIBRATION_FOLDS, seed)  # one group: rows
    oof_t = np.full(len(y), np.nan)
    oof_p = np.full(len(y), np.nan)
    for test in folds:
        oof_t[test] = _booster_predict(_train(X[~test], y[~test], params, seed), X[test])
        tr_p = ~test & has_p
        if fit_power and tr_p.sum() >= 2 and (test & has_p).any():
            oof_p[test] = _booster_predict(_train(X[tr_p], np.log(power[tr_p]), params, seed), X[test])
    log_t = np.log(t_r) + oof_t
    time_iv = calibrate(np.log(time) - log_t, log_t, coverage)
    power_booster = power_iv = energy_iv = None
    if fit_power:
        c = has_p & np.isfinite(oof_p)
        log_p = oof_p[c]
        power_iv = calibrate(np.log(power[c]) - log_p, log_p, coverage)
        log_e = log_p + log_t[c]
        energy_iv = calibrate(np.log(power[c] * time[c]) - log_e, log_e, coverage)
        power_booster = _train(X[has_p], np.log(power[has_p]), params, seed)
    booster = _train(X, y, params, seed)
    return KindModel(
        kind=kind, features=names, time=booster, time_interval=time_iv, power=power_booster,
        power_interval=power_iv, energy_interval=energy_iv, rows=int(len(y)),
        groups=int(len(np.unique(groups))),
    )


# ---- loading ----
def load(path) -> Predictor:
    """Load a predictor saved by `Predictor.save`; refuses a corrupt or incomplete directory."""
    from perfmodel.hardware.spec import DeviceSpec

    path = Path(path)
    meta_path = path / META_FILE
    if not path.is_dir():
        raise PerfmodelError(f"{path}: not a saved predictor (no such directory)")
    if not meta_path.exists():
        raise PerfmodelError(f"{path}: not a saved predictor ({META_FILE} is missing)")
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as exc:
        raise PerfmodelError(f"{meta_path}: corrupt ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise PerfmodelError(f"{meta_path}: not a perfmodel predictor file")
    if meta.get("format_version") != FORMAT_VERSION:
        raise PerfmodelError(f"{meta_path}: format version {meta.get('format_version')} is not supported (this perfmodel reads {FORMAT_VERSION})")
    try:
        _check_versions(meta["versions"])
        d = dict(meta["device"])
        device = DeviceSpec(
            key=d["key"], name=d["name"], kind=d["kind"], sm_count=int(d["sm_count"]),
            boost_clock_hz=_num(d["boost_clock_hz"]),
            peak_flops={k: _num(v) for k, v in d["peak_flops"].items()},
            memory_bytes=int(d["memory_bytes"]), memory_bandwidth=_num(d["memory_bandwidth"]),
            l2_bytes=int(d["l2_bytes"] or 0), tdp_w=_num(d["tdp_w"]),
            aliases=tuple(d.get("aliases", ())), source=d.get("source", ""),
            architecture=d.get("architecture", ""), notes=d.get("notes", ""),
        )
        models = {kind: _load_kind(path, kind, e) for kind, e in meta["kinds"].items()}
        linear = LinearBaseline.from_dict(meta["linear_baseline"])
        coverage = float(meta["coverage"])
        base = str(meta.get("base", "roofline"))  # files saved before `base` existed: roofline
        if base not in BASES:
            raise PerfmodelError(f"{meta_path}: unknown base {base!r}")
    except PerfmodelError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise PerfmodelError(f"{meta_path}: corrupt or incomplete ({type(exc).__name__}: {exc})") from None
    return Predictor(device=device, models=models, linear=linear, coverage=coverage, info=meta.get("info", {}),
                     base=base)


def _num(v) -> float:
    return float("nan") if v is None else float(v)


def _check_versions(saved: dict) -> None:
    import sklearn
    import xgboost

    now = {"perfmodel": perfmodel.__version__, "xgboost": xgboost.__version__, "sklearn": sklearn.__version__}
    diff = [f"{k} {saved.get(k)} (now {v})" for k, v in now.items() if saved.get(k) != v]
    if diff:
        warnings.warn(f"predictor was saved with {', '.join(diff)}; predictions may differ", stacklevel=3)


def _load_kind(path: Path, kind: str, e: dict) -> KindModel:
    from xgboost import Booster

    boosters = {}
    for target in ("time", "power"):
        name = e.get(f"{target}_file")
        if name is None:
            continue
        file = path / name
        if Path(name).name != name or not file.exists():
            raise PerfmodelError(f"{path}: model file {name!r} of op kind {kind!r} is missing")
        if _sha256(file) != e.get(f"{target}_sha256"):
            raise PerfmodelError(f"{file}: corrupt (checksum differs from {META_FILE})")
        b = Booster()
        try:
            b.load_model(str(file))
        except Exception as exc:  # xgboost raises its own error type
            raise PerfmodelError(f"{file}: corrupt ({str(exc).splitlines()[0]})") from None
        b.set_param({"nthread": _threads()})
        boosters[target] = b
    if "time" not in boosters:
        raise PerfmodelError(f"{path}: op kind {kind!r} has no time model file")
    has_power = "power" in boosters
    return KindModel(
        kind=kind, features=tuple(e["features"]), time=boosters["time"],
        time_interval=Conformal.from_dict(e["time_interval"]),
        power=boosters.get("power"),
        power_interval=Conformal.from_dict(e["power_interval"]) if has_power else None,
        energy_interval=Conformal.from_dict(e["energy_interval"]) if has_power else None,
        rows=int(e.get("rows", 0)), groups=int(e.get("groups", 0)),
        ops=tuple(str(o) for o in e.get("ops", ())),
        inplace_ops=tuple(str(o) for o in e.get("inplace_ops", ())),
        dtypes=tuple(str(d) for d in e.get("dtypes", ())),
    )
