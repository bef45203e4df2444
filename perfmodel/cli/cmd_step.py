"""`perfmodel step MODEL`: one training step (or inference) of one model, predicted."""
from __future__ import annotations

import json
from pathlib import Path

from perfmodel.cli.options import (add_prediction_options, check_prediction_options,
                                   parse_overrides)
from perfmodel.errors import PerfmodelError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "step", help="predict one training step or inference of a model: time, energy, "
                     "memory, by part",
        description="Predict one training step (forward, loss, backward, optimizer) or one "
                    "inference of MODEL at --batch on --device: time with its interval, "
                    "forward/backward/optimizer split, throughput, energy, peak memory and "
                    "the time of each part of the model. The device is a profile directory, "
                    "a saved predictor directory or a device name (its shipped profile under "
                    "datasets/, else catalogue + roofline); the output says which was used.")
    p.add_argument("model", help="model name (RegNetX-400MF, EN-B0, gpt2, Llama-3-8B, ...), "
                                 "a transformer CONFIG.json (ours or Hugging Face's), or your "
                                 "own torch model: FILE.py:NAME or package.module:NAME (an "
                                 "nn.Module class, or a function returning a module, called "
                                 "without arguments on the meta device)")
    p.add_argument("--input-shape", default=None, metavar="SHAPE",
                   help="your model's one input tensor, one sample without the batch (e.g. "
                        "3,224,224; with --tokens the sequence length); default: its "
                        "`input_size`")
    p.add_argument("--tokens", action="store_true",
                   help="your model takes token ids (a sequence model: tokens/s, AdamW by "
                        "default; --optimizer chooses another)")
    p.add_argument("--batch", type=int, default=1, help="samples per step (default 1)")
    p.add_argument("--factor", type=float, default=None,
                   help="scale the model's FLOPs by this factor (with --strategy)")
    p.add_argument("--strategy", default=None,
                   help="scaling strategy for --factor (d, w, r, dwr, d1_w8_g8_r1, s, dws, ...)")
    add_prediction_options(p, "override a model parameter (e.g. resolution=64, seq_len=2048)")
    p.add_argument("--parts", action="store_true",
                   help="list every part (default: parts of one kind summed)")
    p.add_argument("--json", action="store_true",
                   help="one JSON object on stdout (with a `parts` list)")
    p.set_defaults(func=run)


def _model(text: str):
    """A registry name, a user's model (`FILE.py:NAME`), or a transformer config read from
    a JSON file."""
    from perfmodel.cli.user_model import is_user_model, load_user_model

    if is_user_model(text) and not Path(text).is_file():
        return load_user_model(text)
    if text.lower().endswith(".json") or Path(text).is_file():
        from perfmodel.models.transformer_config import load_transformer_config

        return load_transformer_config(text)
    return text


def run(args) -> int:
    check_prediction_options(args)
    from perfmodel.predict import predict_model
    from perfmodel.predict.memory import device_capacity

    if (args.factor is None) != (args.strategy is None):
        raise PerfmodelError("--factor and --strategy go together (e.g. --factor 4 "
                             "--strategy dwr)")
    if args.batch < 1:
        raise PerfmodelError(f"--batch must be >= 1, got {args.batch}")
    from torch import nn

    from perfmodel.cli.user_model import parse_shape, token_vocab

    model = _model(args.model)
    user = isinstance(model, nn.Module)
    overrides = parse_overrides(args.set)
    if overrides and not isinstance(model, str):
        raise PerfmodelError("--set applies to a named model; edit the "
                             + ("model's code" if user else "config file") + " instead")
    if not user and (args.input_shape is not None or args.tokens):
        raise PerfmodelError("--input-shape and --tokens are for your own model "
                             "(FILE.py:NAME); a named model knows its input")
    if user and args.factor is not None:
        raise PerfmodelError("--factor/--strategy scale a named model; scale your own "
                             "model in its code")
    shape = parse_shape(args.input_shape) if args.input_shape is not None else None
    if user and shape is None and not getattr(model, "input_size", None):
        raise PerfmodelError(f"{args.model} has no `input_size`: give --input-shape (one "
                             "sample without the batch, e.g. 3,224,224)")
    vocab = token_vocab(model) if user and args.tokens else None
    from perfmodel.predict.device import resolve_backend

    backend = resolve_backend(args.device)  # its errors are not the model's
    try:
        p = predict_model(model, args.batch, dtype=args.dtype, train=args.train,
                          device=backend, factor=args.factor, strategy=args.strategy,
                          overrides=overrides or None, optimizer=args.optimizer,
                          compiled=args.compiled, input_shape=shape, input_vocab=vocab)
    except Exception as exc:  # noqa: BLE001  (a user's forward may raise anything)
        if not user:
            raise
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if not isinstance(exc, PerfmodelError):
            text = f"{type(exc).__name__}: {text}"
        given = f"token ids {(args.batch,) + tuple(shape or model.input_size)}" if args.tokens \
            else f"one float tensor {(args.batch,) + tuple(shape or model.input_size)}"
        hint = ""
        if not args.tokens and any(isinstance(m, (nn.Embedding, nn.EmbeddingBag))
                                   for m in model.modules()):
            hint = " (it has an nn.Embedding: if it takes token ids, add --tokens)"
        raise PerfmodelError(f"{args.model}: counting it on the meta device, given {given}, "
                             f"failed: {text}{hint}") from None
    rows = p.by_module
    capacity = device_capacity(p.device)
    fits = None if capacity is None else bool(p.memory.peak <= capacity)
    if args.json:
        d = p.to_dict()
        d["fits_in_memory"] = fits
        d["parts"] = json.loads(rows.to_json(orient="records"))  # NaN -> null
        print(json.dumps(d, indent=1, allow_nan=False))
        return 0
    what = "training step" if p.train else "inference"
    print(f"{p.name}, batch {p.batch}, {what}, {p.dtype}"
          + (", torch.compile" if p.compiled else "") + f", on {p.device}")
    print(f"predicted with: {p.backend}")
    unit = "sequences/s" if p.tokens else "samples/s"
    lines = [("time", f"{p.time} s")]
    if p.train:
        lines.append(("", f"forward {p.forward.value:.4g} s, backward {p.backward.value:.4g} s, "
                          f"optimizer ({p.optimizer}) {p.optimizer_time.value:.4g} s"))
    lines.append(("throughput", f"{p.throughput:.4g} {unit}"
                  + (f", {p.tokens / p.time.value:,.0f} tokens/s" if p.tokens else "")))
    basis = {"TDP": "at the device's TDP: no power measured, an upper bound on its draw",
             "measured average power": "at the profile's measured average power",
             "per-op power model": "from the profile's measured energy per op"}
    lines.append(("energy", f"{p.energy} J ({basis.get(p.energy_basis, p.energy_basis)})"
                  if p.energy.value == p.energy.value
                  else "- (no power figure for this device)"))
    m = p.memory
    gib = 2.0 ** 30
    lines.append(("peak memory", f"{m.peak / gib:.3g} GiB = weights {m.weights / gib:.3g} + "
                  f"gradients {m.gradients / gib:.3g} + optimizer {m.optimizer_states / gib:.3g} "
                  f"+ activations {m.activations / gib:.3g} + workspace {m.workspace / gib:.3g}"))
    if p.train and m.optimizer_states > 0 and p.dtype in ("bfloat16", "float16"):
        lines.append(("", f"optimizer states in {p.dtype}, as torch keeps them for {p.dtype} "
                          "parameters (mixed precision with float32 master weights: "
                          "`perfmodel mfu`)"))
    if fits is not None:
        lines.append(("fits", f"{'yes' if fits else 'NO'}: {p.memory.peak / gib:.3g} of "
                              f"{capacity / gib:.3g} GiB on {p.device}"))
    lines.append(("model", f"{p.params / 1e6:.2f} M params, {p.flops / 1e9:.4g} GFLOPs and "
                           f"{p.acts / 1e6:.4g} M activations per sample (forward)"))
    if p.measured_parts:
        lines.append(("measured", f"{p.measured_parts} parts timed as the profile measured them"))
    for k, v in lines:
        print(f"{k:<12} {v}")
    table = rows.drop(columns=["ops"], errors="ignore") if args.parts else _by_group(rows)
    table = table.rename(columns={"flops": "GFLOPs", "act_bytes": "saved MiB"})
    print()
    print(table.to_string(index=False, formatters={
        "params": lambda v: f"{v / 1e6:.2f}M", "GFLOPs": lambda v: f"{v / 1e9:.4g}",
        "saved MiB": lambda v: f"{v / 2**20:.1f}", "time_s": lambda v: f"{v:.4g}",
        "share": lambda v: f"{100 * v:.1f}%"}))
    return 0


def _by_group(rows):
    """Parts of one kind (consecutive, same group) summed: `blocks.0-11` for 12 blocks."""
    import pandas as pd

    out, run = [], []

    def flush():
        if not run:
            return
        first, last = run[0]["module"], run[-1]["module"]
        stem, tail = last.rsplit(".", 1) if "." in last else ("", last)
        short = first.startswith(stem + ".") if stem else False
        name = first if len(run) == 1 else f"{first}..{tail if short else last}"
        out.append({"module": name, "group": run[0]["group"], "parts": len(run),
                    "params": sum(r["params"] for r in run),
                    "flops": sum(r["flops"] for r in run),
                    "time_s": sum(r["time_s"] for r in run),
                    "share": sum(r["share"] for r in run)})
        run.clear()

    for r in rows.to_dict(orient="records"):
        if run and r["group"] != run[-1]["group"]:
            flush()
        run.append(r)
    flush()
    return pd.DataFrame(out)
