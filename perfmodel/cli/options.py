"""Options shared by the commands that predict whole models (`rank`, `step`)."""
from __future__ import annotations

import json

from perfmodel.errors import PerfmodelError


def add_prediction_options(p, set_help: str) -> None:
    """--train/--infer, --device, --dtype, --optimizer, --set KEY=VALUE and --compile."""
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--train", dest="train", action="store_true", default=True,
                      help="predict a training step (default)")
    mode.add_argument("--infer", dest="train", action="store_false", help="predict inference")
    p.add_argument("--device", default="cpu", help="PROFILE dir | saved MODEL dir | GPU name | cpu")
    p.add_argument("--dtype", default="float32", help="float32, tf32, bfloat16, float16")
    p.add_argument("--optimizer", default=None,
                   help="sgd-momentum (CNN default), adamw (transformer default), adam, sgd, none")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=set_help)
    p.add_argument("--compile", dest="compiled", action="store_true",
                   help="predict under torch.compile (the pointwise ops between matrix ops "
                        "fused into one kernel each)")


def check_prediction_options(args) -> None:
    """One-line errors for option combinations that would be silently ignored."""
    if not args.train and args.optimizer is not None:
        raise PerfmodelError("--optimizer applies to a training step, not to --infer")


def parse_overrides(items) -> dict:
    """KEY=VALUE strings as a dict (values as JSON when they parse, else strings)."""
    out = {}
    for item in items or []:
        if "=" not in item:
            raise PerfmodelError(f"--set expects KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        try:
            out[k.strip()] = json.loads(v)
        except ValueError:
            out[k.strip()] = v
    return out
