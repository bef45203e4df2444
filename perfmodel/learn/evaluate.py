"""Honest evaluation: grouped cross-validation of the learned model and every baseline.

Rows of one group (the `group_by` columns: an LLM, a shape family, a GPU ...) are always
all in the training or all in the test part, never split. With at most `n_folds` groups
every group is held out once (leave-one-group-out); with more, groups are dealt into
`n_folds` folds of similar size. Each fold fits the learned model (xgboost, with its
intervals calibrated inside the training part only), the linear baseline and the GPPerf-style
random forest on the training part; all methods predict the same held-out rows. Op kinds a
fold's training part lacks fall back to the roofline for every method.

Scores (see `metrics.py`): MAPE, median and p90 APE, share within +-10%, R2 (on log time;
on linear watts / joules for power and energy), Spearman, interval coverage (over the rows
with both bounds: a roofline fallback's interval has no upper bound), and per method the
held-out rows it priced by the roofline fallback (`fallback`). `cross_validate` and
`evaluate` say how they grouped in `attrs["grouping"]` (a `Grouping` as a plain dict, so
that the frames still write to parquet: `Grouping.of(frame)` reads it back).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from perfmodel.errors import PerfmodelError
from perfmodel.hardware.catalogue import get_device
from perfmodel.learn.baselines import ForestBaseline, rf_matrix
from perfmodel.learn.features import build_features, kinds_of
from perfmodel.learn.metrics import score
from perfmodel.learn.predictor import DEFAULT_COVERAGE, MIN_ROWS, _power, fit, group_folds, group_keys
from perfmodel.learn.schema import per_op_rows, read_measurements, validate_measurements

METHODS = ("xgboost", "roofline", "linear", "random_forest")


@dataclass(frozen=True)
class Grouping:
    """How `cross_validate` held rows out: whole groups of equal `columns` values."""

    columns: tuple[str, ...]
    groups: int
    folds: int
    rows: int
    largest_share: float  # share of the rows in the largest group, 0-1
    largest_key: str  # that group's values, "|"-joined ("<NA>" for a missing cell)

    @classmethod
    def of(cls, frame: pd.DataFrame) -> "Grouping | None":
        """The grouping `cross_validate` stored in a frame's attrs (None if it holds none)."""
        d = frame.attrs.get("grouping")
        return None if d is None else cls(**{**d, "columns": tuple(d["columns"])})

    def describe(self) -> str:
        return (f"grouped by {','.join(self.columns)}: {self.groups} groups of {self.rows} rows, "
                f"{self.folds} folds (largest group {100 * self.largest_share:.0f}% of the rows)")

    def warning(self) -> str | None:
        """A note when one group is more than a fold's share of the rows: its fold holds out
        all of it at once (often a whole op kind, whose rows then fall back to the roofline)."""
        if self.largest_share <= 1.0 / self.folds:
            return None
        why = ("missing cells (<NA>) in the --group-by columns join rows into one group: group "
               "by columns every row has" if "<NA>" in self.largest_key.split("|") else
               "its fold holds it out whole, and the other folds train without it")
        return (f"one group ({self.largest_key}) holds {100 * self.largest_share:.0f}% of the rows, "
                f"more than a fold's {100 / self.folds:.0f}%: {why}")


def compare(train: pd.DataFrame, test: pd.DataFrame, device, *, group_by=None,
            coverage: float = DEFAULT_COVERAGE, params: dict | None = None,
            methods=METHODS, seed: int = 0, test_device=None, base: str = "roofline") -> pd.DataFrame:
    """Fit every method on `train`, predict `test`: one row per test row, columns per method.

    `test_device`: the device `test` was measured on when it is not the training device
    (the roofline and its features then follow that device's datasheet).

    Columns: `time_s`, `power_w`, `energy_j` (measured) and, per method, `<method>_time_s`,
    `<method>_lo_s`, `<method>_hi_s`, `<method>_power_w`, `<method>_energy_j` and
    `<method>_fallback` (True: the roofline priced the row: its op kind had too few training
    rows for the method, or, for xgboost, it is a vector op its kind's model never saw).
    """
    unknown = set(methods) - set(METHODS)
    if unknown:
        raise PerfmodelError(f"unknown method(s) {', '.join(sorted(unknown))}; expected {', '.join(METHODS)}")
    pred = fit(train, device=device, group_by=group_by, coverage=coverage, params=params, seed=seed, base=base)
    test = per_op_rows(test)[0]  # scored on what `fit` learns: no blocks, no whole models
    device = test_device or pred.device.key
    out = pd.DataFrame(index=test.index)
    out["time_s"] = test["time_s"].to_numpy(dtype=float)
    out["power_w"] = _power(test)
    out["energy_j"] = out["power_w"] * out["time_s"]
    nan = np.full(len(test), np.nan)
    for m in methods:
        for c in ("time_s", "lo_s", "hi_s", "power_w", "energy_j"):
            out[f"{m}_{c}"] = nan
        out[f"{m}_fallback"] = False
    if "xgboost" in methods:
        res = pred.predict(test, device=device)
        out["xgboost_time_s"] = res["pred_time_s"].to_numpy()
        out["xgboost_lo_s"] = res["pred_time_lo_s"].to_numpy()
        out["xgboost_hi_s"] = res["pred_time_hi_s"].to_numpy()
        out["xgboost_power_w"] = res["pred_power_w"].to_numpy()
        out["xgboost_energy_j"] = res["pred_energy_j"].to_numpy()
        out["xgboost_fallback"] = (res["source"] == "roofline").to_numpy()
    roof = pred.predict_baseline(test, "roofline", device=device)
    if "roofline" in methods:
        out["roofline_time_s"] = roof
    if "linear" in methods:
        lin = pred.predict_baseline(test, "linear", device=device)
        out["linear_time_s"] = np.where(np.isfinite(lin), lin, roof)
        out["linear_fallback"] = ~np.isfinite(lin)
    if "random_forest" in methods:
        out["random_forest_time_s"] = roof
        out["random_forest_fallback"] = True  # until a forest prices the row
        _forest(train, test, pred.device, get_device(device), out, seed)
    return out


def _forest(train, test, device, test_device, out, seed) -> None:
    """GPPerf-style forest per op kind and dtype (its inputs carry no dtype) fitted on `train`."""
    k_tr, k_te = kinds_of(train), kinds_of(test)
    d_tr, d_te = train["dtype"].astype(str).to_numpy(), test["dtype"].astype(str).to_numpy()
    p_tr = _power(train)
    for kind in pd.unique(k_te):
        for dt in pd.unique(d_te[k_te == kind]):
            tr = np.flatnonzero((k_tr == kind) & (d_tr == dt))
            if len(tr) < MIN_ROWS:  # too few of this dtype: one forest over the kind's dtypes
                tr = np.flatnonzero(k_tr == kind)
            te = np.flatnonzero((k_te == kind) & (d_te == dt))
            if len(tr) < MIN_ROWS:
                continue
            f_tr, _ = build_features(train.iloc[tr], kind, device)
            f_te, _ = build_features(test.iloc[te], kind, test_device)
            X_tr = rf_matrix(train.iloc[tr], *_fb(f_tr))
            X_te = rf_matrix(test.iloc[te], *_fb(f_te))
            power = p_tr[tr] if np.isfinite(p_tr[tr]).all() else None
            rf = ForestBaseline(seed=seed).fit(X_tr, train["time_s"].to_numpy(dtype=float)[tr], power)
            t, p = rf.predict(X_te)
            out.iloc[te, out.columns.get_loc("random_forest_time_s")] = t
            out.iloc[te, out.columns.get_loc("random_forest_power_w")] = p
            out.iloc[te, out.columns.get_loc("random_forest_energy_j")] = p * t
            out.iloc[te, out.columns.get_loc("random_forest_fallback")] = False


def _fb(feats) -> tuple[np.ndarray, np.ndarray]:
    return np.exp2(feats["log_flops"]), np.exp2(feats["log_bytes"])


def cross_validate(data, device=None, *, group_by=None, n_folds: int = 5,
                   coverage: float = DEFAULT_COVERAGE, params: dict | None = None,
                   methods=METHODS, seed: int = 0, base: str = "roofline") -> pd.DataFrame:
    """Out-of-fold predictions of every method under grouped cross-validation (+ `fold`)."""
    if isinstance(n_folds, bool) or not isinstance(n_folds, (int, np.integer)) or n_folds < 2:
        raise PerfmodelError(f"folds must be an integer >= 2, got {n_folds!r}")
    if device is not None:
        get_device(device)  # an unknown name fails before any fitting
    df = validate_measurements(data, source="data") if isinstance(data, pd.DataFrame) else read_measurements(data)
    df = per_op_rows(df)[0]  # scored on what `fit` learns from: no blocks, no whole models
    if df.empty:
        raise PerfmodelError("no per-op rows to cross-validate (only blocks and whole models)")
    groups, keys, columns = group_keys(df, group_by)
    if len(keys) < 2:
        raise PerfmodelError("grouped cross-validation needs at least two groups; choose --group-by columns with several values")
    folds = group_folds(groups, n_folds, seed)
    sizes = np.bincount(groups)
    grouping = Grouping(columns=tuple(columns), groups=len(keys), folds=len(folds), rows=len(df),
                        largest_share=float(sizes.max() / len(df)), largest_key=str(keys[sizes.argmax()]))
    parts = []
    for i, test in enumerate(folds):
        tr, te = df[~test], df[test]
        res = compare(tr, te, device, group_by=group_by, coverage=coverage, params=params, methods=methods,
                      seed=seed, base=base)
        res["fold"] = i
        parts.append(res)
    out = pd.concat(parts).sort_index()
    out.attrs["grouping"] = asdict(grouping)
    return out


def score_table(preds: pd.DataFrame, methods=METHODS) -> pd.DataFrame:
    """One row per method and target (time, power, energy) with the metrics of `metrics.Scores`
    and `fallback`: the held-out rows the method priced by the roofline (missing for the
    roofline itself). Keeps `preds.attrs` (the grouping)."""
    rows = []
    for target, unit, log in (("time", "s", True), ("power", "w", False), ("energy", "j", False)):
        truth = preds[f"{target}_{unit}"].to_numpy(dtype=float)
        if not np.isfinite(truth).any():
            continue
        for m in methods:
            col = f"{m}_{target}_{unit}"
            if col not in preds.columns or not np.isfinite(preds[col].to_numpy(dtype=float)).any():
                continue
            lo = preds[f"{m}_lo_s"] if target == "time" else None
            hi = preds[f"{m}_hi_s"] if target == "time" else None
            s = score(truth, preds[col], lo, hi, log=log)
            fb = preds.get(f"{m}_fallback")
            scored = np.isfinite(truth) & (truth > 0) & np.isfinite(preds[col].to_numpy(dtype=float))
            fallback = (int(np.asarray(fb, dtype=bool)[scored].sum())
                        if fb is not None and m != "roofline" else None)
            rows.append({"method": m, "target": target, **s.as_dict(), "r2_on": "log" if log else "linear",
                         "fallback": fallback})
    table = pd.DataFrame(rows)
    table.attrs.update(preds.attrs)
    return table


def evaluate(data, device=None, *, group_by=None, n_folds: int = 5,
             coverage: float = DEFAULT_COVERAGE, params: dict | None = None,
             methods=METHODS, seed: int = 0, base: str = "roofline") -> pd.DataFrame:
    """Grouped cross-validation scores of the learned model and every baseline, side by side."""
    preds = cross_validate(data, device, group_by=group_by, n_folds=n_folds, coverage=coverage,
                           params=params, methods=methods, seed=seed, base=base)
    return score_table(preds, methods)


def error_breakdown(preds: pd.DataFrame, by, method: str = "xgboost") -> pd.DataFrame:
    """Where a method's error sits: per value of `by` (an array aligned with `preds`),
    rows, MAPE, share within +-10% and mean signed error (bias), in %."""
    truth = preds["time_s"].to_numpy(dtype=float)
    signed = 100.0 * (preds[f"{method}_time_s"].to_numpy(dtype=float) / truth - 1.0)
    t = pd.DataFrame({"by": np.asarray(by), "ape": np.abs(signed), "signed": signed})
    t = t[np.isfinite(t["ape"])]
    out = t.groupby("by", observed=True).agg(
        n=("ape", "size"), mape=("ape", "mean"),
        within_10=("ape", lambda a: 100.0 * float(np.mean(a <= 10.0))), bias=("signed", "mean"),
    )
    out["share_of_error"] = 100.0 * out["mape"] * out["n"] / float(t["ape"].sum())
    return out.reset_index()

