"""`perfmodel predict`: add predicted time, interval, power and energy columns to an op table."""
from __future__ import annotations

import sys


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "predict", help="predict runtime, power and energy of ops with a fitted predictor",
        description="Read an op table (CSV or parquet: op, m, n, k, b, dtype, ...) and write it back "
                    "with pred_time_s, pred_time_lo_s, pred_time_hi_s, pred_power_w, pred_energy_j "
                    "and source (learned | extrapolated: a dtype or device the model was not "
                    "fitted on, no interval above the roofline | roofline).")
    p.add_argument("--model", required=True, metavar="MODEL", help="directory saved by `perfmodel fit`")
    p.add_argument("--input", required=True, metavar="OPS", help="op table, .csv or .parquet")
    p.add_argument("--output", required=True, metavar="PRED", help="where to write (.csv or .parquet)")
    p.add_argument("--device", help="predict for this device (default: the one the model was fitted on)")
    p.set_defaults(func=run)


def run(args) -> int:
    import warnings

    from perfmodel.learn.predictor import load
    from perfmodel.learn.schema import read_table, write_table

    with warnings.catch_warnings(record=True) as caught:  # each printed as one line
        warnings.simplefilter("always")
        pred = load(args.model)
        res = pred.predict(read_table(args.input), device=args.device)
    for w in caught:
        print(f"perfmodel predict: warning: {w.message}", file=sys.stderr)
    out = write_table(res, args.output)
    n = res["source"].value_counts()
    print(f"predicted {len(res)} ops ({n.get('learned', 0)} learned, {n.get('extrapolated', 0)} "
          f"extrapolated, {n.get('roofline', 0)} roofline) -> {out}")
    return 0
