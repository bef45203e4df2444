"""`perfmodel validate`: whole-model predictions against the measured validation sets."""
from __future__ import annotations

import json


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "validate", help="compare whole-model predictions with measured models in datasets/",
        description="Predict every whole model measured by the profilers' validation suite "
                    "(in the profile given, or in every profile under datasets/) with that "
                    "profile's own per-op predictor and block calibration, and print the "
                    "error table: measured, predicted (interval), error per candidate; "
                    "median |error|, Spearman and top-1 agreement per group, and the rank "
                    "ties scored on the x4 candidates. The "
                    "whole-model scale is fitted on the suite in two folds (unscaled and x2 "
                    "models; x4 candidates): each row is scored with the other fold's.")
    p.add_argument("--no-assembly-scale", dest="assembly", action="store_false",
                   help="predict without the whole-model scale (the parts' sum as it is)")
    p.add_argument("--profile", default=None, help="one profile directory (default: datasets/*)")
    p.add_argument("--against", default=None, metavar="DIR",
                   help="another run of the same device (a profile with validation rows): "
                        "score --profile's predictions, as shipped, on its measurements")
    p.add_argument("--phase", choices=["train_step", "inference", "all"], default="all",
                   help="which measured phase to validate (default all)")
    p.add_argument("--json", action="store_true", help="table and summary as JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    from perfmodel.predict.validate import validate

    phases = ("train_step", "inference") if args.phase == "all" else (args.phase,)
    report = validate(args.profile, phases=phases, assembly=args.assembly,
                      against=args.against)
    if args.json:
        print(json.dumps(report.to_records(), indent=1))
    else:
        print(report.format())
    return 0
