"""Per-op accuracy on the project's own profiles: the learned per-op model against the
roofline, on shapes the fit never saw.

For every shipped profile (`datasets/*`), the per-op suites' rows (what `perfmodel`
fits its per-op predictor on: gemm, conv, vector, attention) are split into 5 folds of whole shapes
(a shape's dtypes and phases stay together, as `perfmodel.predict.device.from_profile`
groups them); each fold is predicted by a predictor fitted on the other four, and by the
device's roofline. As perfmodel prices them, 1x1 convolutions on PyTorch's native CPU path
get the line fitted on the training folds (`perfmodel.predict.native`: the prediction on a
single-threaded profile's small maps, a floor on a multi-threaded one; a `fwd_bwd` row: the
forward's line plus the backward's, under the backward's rule: where only the forward's line
is well supported perfmodel prices the two kernels apart and this bench does not, 10 of the
AMD profile's 262 small-map native rows), the interval scaled with the time. Rows: op
kind; for conv the off-grid set apart (input channels off the suite's width grid
`POW2_WIDTHS`: the off-grid widths and the 3-channel stems); for vector ops each op, in
place apart (`relu_`, `x += y`). `median` and `mean` are |predicted / measured - 1|;
`in 90%` is the share of measurements inside the learned model's 90% interval, over the rows
that have one (a roofline-priced row has no upper bound).

Run: python3 benchmarks/bench_profile_ops.py [--profile DIR ...]
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FOLDS = 5
POW2_WIDTHS = {8, 16, 32, 64, 128, 192, 256, 384, 512, 768, 1024}


def per_op_rows(profile: Path) -> pd.DataFrame:
    """The profile's per-op rows as `from_profile` fits on them (center times, groups)."""
    from perfmodel.predict.device import PER_OP_EXCLUDED, read_profile_rows
    from perfmodel.predict.measured import with_center_times

    rows = read_profile_rows(profile)
    rows = with_center_times(rows[~rows["suite"].astype(str).isin(PER_OP_EXCLUDED)]).copy()
    rows["group"] = rows["op"].astype(str) + "|" + rows["params"].astype(str)
    return rows.drop(columns=["flops", "bytes"]).reset_index(drop=True)


def row_class(r: pd.DataFrame) -> np.ndarray:
    """The table row each measurement counts in."""
    suite = r["suite"].astype(str).to_numpy()
    op = r["op"].astype(str).to_numpy()
    c_in = pd.to_numeric(r["c_in"], errors="coerce").to_numpy()
    off_grid = ~np.isin(c_in, list(POW2_WIDTHS))
    inplace = (r["inplace"].fillna(False).astype(bool).to_numpy() if "inplace" in r
               else np.zeros(len(r), bool))
    vector = np.char.add(np.char.add("vector: ", op.astype(str)),
                         np.where(inplace, " (in place)", ""))
    return np.where(suite == "conv", np.where(off_grid, "conv (off-grid widths)", "conv"),
                    np.where(suite == "vector", vector, suite))


def score(profile: Path) -> pd.DataFrame:
    from perfmodel.learn.predictor import fit, group_folds
    from perfmodel.predict.native import fit_native

    rows = per_op_rows(profile)
    device = _device(profile)
    groups = pd.factorize(rows["group"])[0]
    pred = np.full(len(rows), np.nan)
    roof = np.full(len(rows), np.nan)
    inside = np.full(len(rows), np.nan)  # NaN: no two-sided interval, no coverage claimed
    for test in group_folds(groups, FOLDS, seed=0):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = fit(rows[~test], device)
        res = model.predict(rows[test])
        t = res["pred_time_s"].to_numpy()
        native = fit_native(rows[~test], single_thread=_threads(profile) == 1)
        line = native_floor(native, rows[test])
        use = native.rule(rows[test], line, t, native.well_supported(rows[test]))
        up = np.where(use, line / t, 1.0)  # perfmodel's rule, on the fwd_bwd sum
        pred[test] = t * up
        roof[test] = model.predict_baseline(rows[test], "roofline")
        y = rows["time_s"].to_numpy()[test]
        lo, hi = res["pred_time_lo_s"].to_numpy() * up, res["pred_time_hi_s"].to_numpy() * up
        inside[test] = np.where(np.isfinite(lo) & np.isfinite(hi), (lo <= y) & (y <= hi), np.nan)
    y = rows["time_s"].to_numpy()
    frame = pd.DataFrame({"row": row_class(rows), "err": np.abs(pred / y - 1),
                          "roof": np.abs(roof / y - 1), "inside": inside})
    out = frame.groupby("row").agg(n=("err", "size"), median=("err", "median"),
                                   mean=("err", "mean"), inside=("inside", "mean"),
                                   roofline=("roof", "median"))
    total = pd.DataFrame({"n": [len(frame)], "median": [frame["err"].median()],
                          "mean": [frame["err"].mean()], "inside": [frame["inside"].mean()],
                          "roofline": [frame["roof"].median()]}, index=["all"])
    return pd.concat([out, total])


def native_floor(native, rows: pd.DataFrame) -> np.ndarray:
    """The native path's floor of each row (NaN where none): a `fwd_bwd` row is priced as
    its forward and backward kernels, as perfmodel prices a layer's two."""
    fwd = native.floor(rows.assign(phase="fwd"))
    bwd = native.floor(rows.assign(phase="bwd"))
    both = (rows["phase"].astype(str) == "fwd_bwd").to_numpy()
    return np.where(both, fwd + bwd, native.floor(rows))


def _threads(profile: Path):
    import json

    return json.loads((profile / "metadata.json").read_text()).get("torch_threads")


def _device(profile: Path) -> str:
    import json

    meta = json.loads((profile / "metadata.json").read_text())
    return meta.get("catalogue_key") or meta.get("device_name") or "cpu"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", action="append", type=Path,
                        help="profile directory (default: every profile in datasets/)")
    args = parser.parse_args(argv)
    profiles = args.profile or sorted(p for p in (ROOT / "datasets").iterdir()
                                      if (p / "metadata.json").is_file())
    for profile in profiles:
        t0 = time.perf_counter()
        table = score(profile)
        print(f"\n{profile.name}: per-op time, {FOLDS} folds of whole shapes "
              f"({time.perf_counter() - t0:.0f} s)")
        print(f"  {'row':32s} {'n':>5s} {'median':>7s} {'mean':>7s} {'in 90%':>7s} "
              f"{'roofline':>9s}")
        for name, r in table.iterrows():
            print(f"  {name:32s} {int(r['n']):5d} {r['median']:7.1%} {r['mean']:7.1%} "
                  f"{r['inside']:7.0%} {r['roofline']:9.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
