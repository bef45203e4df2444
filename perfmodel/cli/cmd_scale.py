"""`perfmodel scale NAME --factor S --strategy STRATEGY`: a scaled model and its cost."""
from __future__ import annotations

import sys

from perfmodel.cli.cmd_complexity import add_cost_options, print_context_note, print_report


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "scale", help="scale a named model (Fast and Accurate Model Scaling) and show its cost",
        description="Scale a model's FLOPs by FACTOR along the dimensions of STRATEGY: CNNs "
                    "d/w/r (depth, width, resolution) e.g. 'dw', 'dwr', or weighted "
                    "'d1_w8_g8_r1' (= 'dWr', fast compound scaling); transformers d/w/s "
                    "(layers, width, sequence), e.g. 'd1_w8_s1'.",
    )
    p.add_argument("name", help="model name, e.g. RegNetY-400MF, EN-B0, gpt2")
    p.add_argument("--factor", type=float, required=True, help="FLOPs multiplier s")
    p.add_argument("--strategy", required=True, help="e.g. d, w, r, dw, dwr, d1_w8_g8_r1")
    add_cost_options(p, "base image size / sequence length before scaling")
    p.set_defaults(func=run)


def run(args) -> int:
    from perfmodel.models.report import model_complexity

    r = model_complexity(args.name, args.factor, args.strategy, resolution=args.resolution,
                         batch=args.batch, dtype=args.dtype)
    base = model_complexity(args.name, resolution=args.resolution, batch=args.batch,
                            dtype=args.dtype)
    achieved = r.flops / base.flops
    if not 0.8 <= achieved / args.factor <= 1.25:
        print(f"perfmodel scale: warning: scaling gives {achieved:.4g}x the FLOPs, not the "
              f"{args.factor:g}x asked (dimensions round and have lower bounds; stems, heads "
              f"and embeddings do not scale, attention grows with the square of the sequence)",
              file=sys.stderr)
    print_context_note("scale", args.name, r)
    extra = {"base": args.name, "factor": args.factor, "strategy": args.strategy,
             "achieved_factor": float(f"{achieved:.6g}")}
    if not args.json:
        arch = r.architecture
        if "d_model" in arch:  # transformer
            keys = ["n_layers", "d_model", "n_heads", "n_kv_heads", "d_ff", "seq_len"]
        elif "hidden" in arch:  # ViT
            keys = ["depth", "hidden", "heads", "mlp", "resolution"]
        else:  # CNN
            keys = [k for k in ("depths", "widths", "group_ws", "bot_muls", "stem_w", "head_w",
                                "resolution") if k in arch]
        extra.update({k: arch[k] for k in keys})
    print_report(r, args.json, extra)
    return 0
