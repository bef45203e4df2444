"""`perfmodel predict`: add predicted time, interval, power and energy columns to an op table."""
from __future__ import annotations


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "predict", help="predict runtime, power and energy of ops with a fitted predictor",
        description="Read an op table (CSV or parquet: op, m, n, k, b, dtype, ...) and write it back "
                    "with pred_time_s, pred_time_lo_s, pred_time_hi_s, pred_power_w, pred_energy_j "
                    "and source (learned | roofline).")
    p.add_argument("--model", required=True, metavar="MODEL", help="directory saved by `perfmodel fit`")
    p.add_argument("--input", required=True, metavar="OPS", help="op table, .csv or .parquet")
    p.add_argument("--output", required=True, metavar="PRED", help="where to write (.csv or .parquet)")
    p.add_argument("--device", help="predict for this device (default: the one the model was fitted on)")
    p.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    import pandas as pd

    from perfmodel.errors import PerfmodelError
    from perfmodel.learn.predictor import load

    pred = load(args.model)
    src = Path(args.input)
    if not src.is_file():
        raise PerfmodelError(f"{src}: no such file")
    try:
        ops = pd.read_parquet(src) if src.suffix.lower() == ".parquet" else pd.read_csv(src, skipinitialspace=True)
    except Exception as exc:
        raise PerfmodelError(f"{src}: cannot read ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    res = pred.predict(ops, device=args.device)
    out = Path(args.output)
    if out.suffix.lower() == ".parquet":
        res.to_parquet(out, index=False)
    else:
        res.to_csv(out, index=False)
    learned = int((res["source"] == "learned").sum())
    print(f"predicted {len(res)} ops ({learned} learned, {len(res) - learned} roofline) -> {out}")
    return 0
