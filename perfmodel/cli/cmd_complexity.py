"""`perfmodel complexity NAME`: params, MACs, FLOPs, acts and bytes of a named model."""
from __future__ import annotations

import json
import sys


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "complexity", help="params, MACs, FLOPs, activations and bytes of a named model",
        description="Forward-pass cost of one batch of a named model (pycls CNNs exactly as "
                    "pycls counts them; transformers counted op by op on the meta device).",
    )
    p.add_argument("name", help="model name, e.g. RegNetX-200MF, R-50-1x64d, EN-B0, "
                                "ViT-B/16, gpt2-xl, Llama-2-7B (case-insensitive)")
    add_cost_options(p, "image size (CNN/ViT) or sequence length (transformer)")
    p.set_defaults(func=run)


def add_cost_options(p, resolution_help: str) -> None:
    """--resolution, --batch, --dtype and --json (shared with `perfmodel scale`)."""
    p.add_argument("--resolution", type=int, default=None, help=resolution_help)
    p.add_argument("--batch", type=int, default=1, help="samples per batch (default 1)")
    p.add_argument("--dtype", default="float32", help="dtype for bytes (default float32)")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")


def print_report(r, as_json: bool, extra: dict | None = None) -> None:
    """Print a ComplexityReport as text or as one JSON object."""
    if as_json:
        print(json.dumps({**(extra or {}), **r.to_dict()}))
        return
    bytes_ = "n/a (op counter unavailable)" if r.bytes is None else f"{r.bytes:,}"
    rows = [*(extra or {}).items(),
            ("model", r.name), ("input", f"batch {r.batch} x {tuple(r.input_size)}  ({r.dtype})"),
            ("params", f"{r.params:,}"), ("MACs", f"{r.macs:,}"),
            ("FLOPs", f"{r.flops:,}  (2 x MACs)"), ("acts", f"{r.acts:,}"), ("bytes", bytes_),
            ("method", r.method)]
    width = max(12, *(len(k) for k, _ in rows))
    for key, value in rows:
        print(f"{key:<{width}} {value}")


def print_context_note(command: str, name: str, r) -> None:
    """A stderr note when a transformer's sequence is past its published model's context
    (the sequence run; with learned positions, the longer of it and the position table's
    rows, which add parameters); none for CNNs and ViTs."""
    from perfmodel.models.registry import resolve
    from perfmodel.models.transformer_config import TransformerConfig

    published = resolve(name)
    if isinstance(published, TransformerConfig):
        seq = r.input_size[0]
        if published.position == "learned":
            seq = max(seq, r.architecture["seq_len"])
        note = published.context_note(seq)
        if note:
            print(f"perfmodel {command}: note: {note}", file=sys.stderr)


def run(args) -> int:
    from perfmodel.models.report import model_complexity

    r = model_complexity(args.name, resolution=args.resolution, batch=args.batch,
                         dtype=args.dtype)
    print_context_note("complexity", args.name, r)
    print_report(r, args.json)
    return 0
