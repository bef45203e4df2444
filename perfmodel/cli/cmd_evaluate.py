"""`perfmodel evaluate`: grouped cross-validation of the learned model and the baselines."""
from __future__ import annotations

import sys

from perfmodel.cli.cmd_fit import add_measurement_options


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "evaluate", help="grouped cross-validation: learned model vs roofline, linear, random forest",
        description="Hold out whole groups (--group-by columns) in turn, fit every method on the rest "
                    "and score the held-out rows: MAPE, median/p90 APE, share within +-10%, R2 (log "
                    "time; linear power/energy), Spearman, interval coverage (over the rows "
                    "with both bounds: `intv` counts them) and `fallback`, the held-out rows a "
                    "method priced by the roofline (its op kind had too few training rows).")
    add_measurement_options(p, "comma-separated columns defining the groups (default: a `group` "
                               "column, else every shape column: op, m, n, k, b, c_in, h, w, "
                               "...; a sweep's neighbouring shapes then land in the training "
                               "part, so group by a family, e.g. op,n,k, for an honest score)")
    p.add_argument("--folds", type=int, default=5, help="folds (leave-one-group-out with fewer groups)")
    p.add_argument("--csv", metavar="PATH", help="also write the table to this CSV")
    p.set_defaults(func=run)


def run(args) -> int:
    from perfmodel.learn.evaluate import evaluate

    table = evaluate(args.profiles, device=args.device, group_by=args.group_by,
                     n_folds=args.folds, coverage=args.coverage, base=args.base)
    if args.csv:
        from perfmodel.learn.schema import write_table

        write_table(table, args.csv)
    from perfmodel.learn.evaluate import Grouping

    grouping = Grouping.of(table)
    if grouping is not None:
        print(grouping.describe())
        if grouping.warning():
            print(f"perfmodel evaluate: note: {grouping.warning()}", file=sys.stderr)
    print(format_table(table))
    return 0


def format_table(table) -> str:
    """Plain-text table of `evaluate`'s scores."""
    cols = ["method", "target", "n", "fallback", "mape", "median_ape", "p90_ape", "within_10", "r2", "r2_on",
            "spearman", "coverage", "interval_n"]
    head = ["method", "target", "n", "fallback", "MAPE%", "medAPE%", "p90APE%", "<=10%", "R2", "R2 on",
            "Spearman", "cover%", "intv"]
    rows = [head]
    for _, r in table[cols].iterrows():
        rows.append([
            r["method"], r["target"], str(int(r["n"])),
            "-" if r["fallback"] is None or r["fallback"] != r["fallback"] else str(int(r["fallback"])),
            f"{r['mape']:.2f}", f"{r['median_ape']:.2f}",
            f"{r['p90_ape']:.2f}", f"{r['within_10']:.1f}", f"{r['r2']:.3f}", r["r2_on"],
            f"{r['spearman']:.3f}", "-" if r["coverage"] != r["coverage"] else f"{r['coverage']:.1f}",
            str(int(r["interval_n"])) if r["interval_n"] else "-",
        ])
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))) for row in rows)
