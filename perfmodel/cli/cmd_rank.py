"""`perfmodel rank BASE --factor S`: rank scaling strategies by predicted step time."""
from __future__ import annotations

import json
import sys

from perfmodel.cli.options import (add_prediction_options, check_prediction_options,
                                   parse_overrides)
from perfmodel.errors import PerfmodelError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "rank", help="rank the scaled variants of a model by predicted time, energy, memory",
        description="Scale BASE by FACTOR with each strategy, predict one training step (or "
                    "inference) of every candidate, and rank them by predicted time. The "
                    "device is a profile directory, a saved predictor directory or a device "
                    "name (its shipped profile under datasets/, else catalogue + roofline); "
                    "the output says which was used.")
    p.add_argument("base", help="model name, e.g. RegNetX-400MF, EN-B0, gpt2")
    p.add_argument("--factor", required=True,
                   help="FLOPs multiplier s, or several (2,4,8): every strategy at each")
    p.add_argument("--strategies", default=None,
                   help="comma-separated strategies (default: all of the family: CNN "
                        "d,w,r,dw,dr,wr,dwr,d1_w8_g8_r1; ViT d,w,r,dw,dr,wr,dwr,d1_w8_r1; "
                        "transformer d,w,s,dw,ds,ws,dws)")
    p.add_argument("--batch", type=int, default=1, help="samples per step (default 1)")
    add_prediction_options(p, "override a base parameter before scaling (e.g. resolution=64)")
    p.add_argument("--base-row", action="store_true", help="also list the unscaled base")
    p.add_argument("--json", action="store_true", help="a JSON list of candidates on stdout")
    p.add_argument("--plot", default=None, metavar="FILE.png",
                   help="plot time vs energy (or peak memory) with the Pareto front")
    p.set_defaults(func=run)


def check_plot_path(path: str) -> None:
    """Fail before any work when matplotlib cannot write the plot file's format."""
    from pathlib import Path

    suffix = Path(path).suffix.lower().lstrip(".")
    supported = ("png", "pdf", "svg", "jpg", "jpeg", "eps", "ps", "webp", "tif", "tiff")
    if suffix not in supported:
        raise PerfmodelError(f"--plot {path!r}: unsupported image format {suffix or '(none)'!r}; "
                             f"use one of .{', .'.join(supported)}")
    import os

    folder = Path(path).parent
    if not folder.is_dir():
        raise PerfmodelError(f"--plot {path!r}: no folder {str(folder)!r} to write it in")
    if not os.access(folder, os.W_OK):
        raise PerfmodelError(f"--plot {path!r}: folder {str(folder)!r} is not writable")
    if Path(path).is_dir():
        raise PerfmodelError(f"--plot {path!r} is a folder")


def run(args) -> int:
    check_prediction_options(args)
    from perfmodel.predict.rank import rank_candidates

    if args.plot:
        check_plot_path(args.plot)
    strategies = None
    if args.strategies:
        strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    try:
        factors = [float(f) for f in str(args.factor).split(",") if f.strip()]
    except ValueError:
        raise PerfmodelError(f"--factor expects numbers, got {args.factor!r}") from None
    r = rank_candidates(args.base, factors, strategies, batch=args.batch, train=args.train,
                        dtype=args.dtype, device=args.device,
                        overrides=parse_overrides(args.set), include_base=args.base_row,
                        optimizer=args.optimizer, compiled=args.compiled)
    if args.plot:
        r.plot(args.plot)
    for note in r.skipped or []:
        print(f"perfmodel rank: skipped {note}", file=sys.stderr)
    for note in r.notes or []:
        print(f"perfmodel rank: note: {note}", file=sys.stderr)
    if args.json:
        print(json.dumps(r.to_records(), indent=1))
        return 0
    df = r.to_frame()
    unit = "seqs/s" if "tokens_per_s" in df and df["tokens_per_s"].notna().any() else "samples/s"
    scale = ", ".join(f"x{f:g}" for f in sorted({f for s, f in r.candidates if s}))
    print(f"{r.base} {scale}, batch {r.batch}, "
          f"{'training step' if r.train else 'inference'}, {args.dtype}")
    print(f"predicted with: {r.backend}")
    print(f"ties: {r.ties}" + ("; 'could be' gives the places a candidate can take"
                               if r.tie_gap is not None else ""))
    axis = ("energy" if r.pareto_axis == "pred_energy_j"
            else "peak memory (no energy figure for this device)")
    print(f"pareto: * where no other candidate is both faster and lower in {axis}; x base: "
          "the candidate's FLOPs over the base's (strategies round widths, depths and "
          "resolutions)")
    gpu = df["fits_in_memory"].notna().any()
    if gpu and not df["fits_in_memory"].astype(bool).all():
        print(f"fits: NO marks a candidate whose predicted peak memory exceeds the "
              f"{r.predictions[0].device}'s memory (activation checkpointing, a smaller "
              f"micro-batch or sharding would be needed)")
    head = (f"{'rank':>4} {'could be':>8}  {'strategy':<12} {'params':>9} {'GFLOPs':>8} {'x base':>6} {'acts(M)':>8} "
            f"{'time s [interval]':>28} {unit:>12} {'energy J':>9} {'peak MiB':>9}"
            + ("  fits" if gpu else "") + "  pareto"
            + ("  factor" if len({f for _, f in r.candidates}) > 1 else ""))
    print(head)
    for row in df.itertuples(index=False):
        iv = f"[{_g(row.pred_time_s_lo)}, {_g(row.pred_time_s_hi)}]"
        t = f"{_g(row.pred_time_s)} {iv}"
        could = f"{row.rank_lo}-{row.rank_hi}" if row.rank_lo != row.rank_hi else ""
        print(f"{row.rank:>4} {could:>8}  {row.strategy:<12} {row.params / 1e6:>8.2f}M "
              f"{row.flops / 1e9:>8.3f} {_x(row.achieved_factor):>6} {row.acts / 1e6:>8.2f} {t:>28} {_g(row.throughput):>12} "
              f"{_g(row.pred_energy_j):>9} {row.pred_peak_bytes / 2**20:>9.1f}"
              + (f"  {'yes' if row.fits_in_memory else 'NO':<4}" if gpu else "")
              + f"  {'*' if row.pareto else ' ':<6}"
              + (f"  x{row.factor:g}" if len({f for _, f in r.candidates}) > 1 else ""))
    if args.plot:
        print(f"wrote {args.plot} (time vs {r.pareto_axis.replace('pred_', '')})")
    return 0


def _x(v) -> str:
    """A candidate's FLOPs over the base's, as 3.37x; '-' when unknown."""
    return "-" if v is None or v != v else f"{v:.2f}x"


def _g(v) -> str:
    """4 significant digits, '-' for a missing value."""
    return "-" if v is None or v != v else f"{v:.4g}"
