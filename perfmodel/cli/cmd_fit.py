"""`perfmodel fit`: learn runtime/power predictors from profiles or plain CSVs."""
from __future__ import annotations


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "fit", help="fit a runtime/power/energy predictor on measurements",
        description="Fit one xgboost model per op kind on profile directories, .parquet or plain "
                    "CSV files (op, m, n, k, b, dtype, time_s[, energy_j, power_w]) and save it "
                    "as a directory of JSON files (no pickle). time_s is in seconds: on a GPU, "
                    "rows over 10x faster than its datasheet peak allows are refused, and on any "
                    "device a median row over 300x its roofline time is flagged (milliseconds?).")
    add_measurement_options(p, "comma-separated columns whose rows stay together when calibrating "
                               "intervals (default: a `group` column, else the op's shape)")
    p.add_argument("--out", required=True, metavar="MODEL", help="directory to save the predictor to")
    p.set_defaults(func=run)


def add_measurement_options(p, group_help: str) -> None:
    """PROFILE..., --device, --group-by and --coverage (shared with `perfmodel evaluate`)."""
    p.add_argument("profiles", nargs="+", metavar="PROFILE", help="profile dir, .parquet or .csv")
    p.add_argument("--device", help="device the measurements come from (default: the profile's metadata)")
    p.add_argument("--group-by", metavar="COLS", help=group_help)
    p.add_argument("--coverage", type=float, default=0.9, help="interval coverage (default 0.9)")
    p.add_argument("--base", default="roofline", choices=("roofline", "tiled"),
                   help="time the model learns its ratio to: the roofline (default) or the "
                        "tile-and-wave-quantised roofline (carries better across dtypes and sources)")


def run(args) -> int:
    from perfmodel.learn.predictor import fit

    pred = fit(args.profiles, device=args.device, group_by=args.group_by, coverage=args.coverage,
               base=args.base)
    path = pred.save(args.out)
    kinds = ", ".join(f"{k} ({m.rows} rows)" for k, m in sorted(pred.models.items())) or "none"
    print(f"fitted on {pred.info['rows']} rows for {pred.device.key}: learned op kinds {kinds}")
    if pred.info.get("whole_rows_left_out"):
        print(f"left out {pred.info['whole_rows_left_out']} block and whole-model rows (suites "
              "blocks, validation: they calibrate and check `perfmodel step`/`rank`, they are "
              "not ops)")
    if pred.info.get("roofline_kinds"):
        print(f"too few rows, roofline fallback: {', '.join(pred.info['roofline_kinds'])}")
    for kind, why in pred.info.get("skipped_kinds", {}).items():
        print(f"skipped {kind}: {why}")
    print(f"saved to {path}")
    return 0
