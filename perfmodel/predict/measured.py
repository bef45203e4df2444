"""Measured blocks: where the profile timed exactly a part of the model, use that time.

The `blocks` suite times perfmodel's own block classes (`profilers.suites.blocks`):
residual bottleneck blocks (ResNet, RegNetX/Y), GPT-style and Llama-style transformer
blocks (`llama`: the suite's `llama_cfg` of its width), forward
(`fwd`, eval mode, no autograd) and forward + backward with input and weight gradients
(`fwd_bwd`, train mode); and MBConv blocks (EfficientNet, SiLU), keyed the same way. A
part of a model with the same constructor arguments, input
shape, batch and dtype is the same workload, so its measured time replaces the calibrated
sum of its ops ("a measured block beats a sum of ops"); the forward/backward split keeps
the calibrated proportions. A block's time is its `center_time`: the median of all its
measurements where the repeat pass timed it again, the same estimate `perfmodel validate`
takes for a whole model. Unsteady blocks (a wide interquartile range) are used too: the
median of their samples is still a measurement of that exact workload, where the sum of
its ops would be a model of it. These are the same rows the calibration is fitted on: both
come from the `blocks` suite, never from the `validation` suite.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd

CNN_BLOCKS = ("resnet_bottleneck", "regnet_x_block", "regnet_y_block")  # mbconv: a key of its own


def center_time(r) -> float:
    """A profile row's best time estimate across its run: `time_center_s` (the median of
    all its measurements; schema 3), else the mean of `time_s` and the repeat's median
    (`time_repeat_s`; schema 2), else `time_s`."""
    t = float(r["time_s"])
    for col in ("time_center_s", "time_repeat_s"):
        v = r.get(col)
        if v is not None and pd.notna(v) and float(v) > 0:
            return float(v) if col == "time_center_s" else (t + float(v)) / 2
    return t


def center_times(df: pd.DataFrame) -> pd.Series:
    """`center_time` of every row of a profile frame, vectorised (seconds)."""
    t = pd.to_numeric(df["time_s"], errors="coerce").astype(float)
    out = t.copy()
    if "time_repeat_s" in df.columns:
        rep = pd.to_numeric(df["time_repeat_s"], errors="coerce").astype(float)
        out = out.where(~(rep > 0), (t + rep) / 2)
    if "time_center_s" in df.columns:
        cen = pd.to_numeric(df["time_center_s"], errors="coerce").astype(float)
        out = out.where(~(cen > 0), cen)
    return out


def with_center_times(per_op: pd.DataFrame) -> pd.DataFrame:
    """Per-op rows with `time_s` set to their `center_time`, the target the per-op predictor
    learns (the median of a point's measurements rather than its first one). Where a row
    has energy but no power, its power is worked out from the first measurement's time
    first, so the energy stays tied to the time it was measured over."""
    out = per_op.copy()
    if "energy_j" in out.columns:
        e = pd.to_numeric(out["energy_j"], errors="coerce").astype(float)
        p = (pd.to_numeric(out["power_w"], errors="coerce").astype(float)
             if "power_w" in out.columns else pd.Series(np.nan, index=out.index))
        derived = e / pd.to_numeric(out["time_s"], errors="coerce").astype(float)
        out["power_w"] = p.where(p.notna(), derived)
    out["time_s"] = center_times(out)
    return out


def block_table(blocks: pd.DataFrame) -> dict[tuple, float]:
    """Measured seconds (`center_time`) keyed like `part_block_key`, from a profile's
    `blocks` rows."""
    out: dict[tuple, float] = {}
    for _, r in blocks.iterrows():
        if r.get("status", "ok") != "ok" or not pd.notna(r["time_s"]):
            continue
        try:
            p = json.loads(r["params"])
        except (TypeError, ValueError):
            continue
        key = _row_key(str(r["op"]), p, str(r["dtype"]), str(r["phase"]))
        if key is not None:
            out[key] = center_time(r)
    return out


def _row_key(op: str, p: dict, dtype: str, phase: str):
    if op in CNN_BLOCKS:
        if p.get("h") != p.get("w") or p.get("kernel_h", 3) != 3:
            return None
        return ("cnn", int(p["c_in"]), int(p["c_out"]), int(p["stride"]), float(p["bot_mul"]),
                int(p["group_w"]), float(p["se_r"]), int(p["h"]), int(p["batch"]), dtype, phase)
    if op == "mbconv":
        if p.get("h") != p.get("w") or p.get("kernel_h") != p.get("kernel_w"):
            return None
        return ("mbconv", int(p["c_in"]), float(p["exp_r"]), int(p["kernel_h"]), int(p["stride"]),
                float(p["se_r"]), int(p["c_out"]), int(p["h"]), int(p["batch"]), dtype, phase)
    if op == "transformer_block":
        return ("transformer", int(p["d_model"]), int(p["seq_q"]), int(p["batch"]), dtype, phase)
    if op == "llama_block":
        return ("llama", int(p["d_model"]), int(p["seq_q"]), int(p["batch"]), dtype, phase)
    return None


def part_block_key(part, batch: int, dtype: str, train: bool, require_grad: bool = True):
    """The `block_table` key of a model part, or None when the suite has no such block.

    The suite's CNN blocks take an input that needs its gradient (a model's first block,
    after the stem, does too); `require_grad=False` gives the key of the block a part is
    like even when its input needs none (`neighbours.part_place`)."""
    phase = "fwd_bwd" if train else "fwd"
    kind = part.key[0] if part.key else None
    if kind == "res_bottleneck_block":
        (w_in, w_out, stride, bm, gw, se_r, act), h = part.key[1], part.key[2]
        if act != "relu" or (require_grad and not part.input_grad):
            return None
        return ("cnn", w_in, w_out, stride, float(bm or 1.0), int(gw or 1), float(se_r), h,
                batch, dtype, phase)
    if kind == "mbconv":  # the suite's MBConv: SiLU (`effnet.MBConv`'s default)
        (w_in, exp_r, k, stride, se_r, w_out, act), h = part.key[1], part.key[2]
        if act != "silu" or (require_grad and not part.input_grad):
            return None
        return ("mbconv", int(w_in), float(exp_r), int(k), int(stride), float(se_r), int(w_out),
                int(h), batch, dtype, phase)
    if kind == "transformer_block":
        cfg, seq = part.key[1], part.key[2]
        if suite_compatible(cfg):
            return ("transformer", cfg.d_model, seq, batch, dtype, phase)
        if suite_compatible(cfg, llama=True):
            return ("llama", cfg.d_model, seq, batch, dtype, phase)
    return None


BLOCK_FIELDS = ("n_heads", "d_ff", "kv_heads", "mlp", "norm", "bias", "causal", "head_dim")


def suite_compatible(cfg, llama: bool = False) -> bool:
    """Whether a block config is the blocks suite's GPT-style block of its width
    (`llama=True`: its Llama-style block). Learned or no positions are outside a block;
    rotary ones are inside its attention."""
    try:
        from profilers.suites.blocks import llama_cfg, transformer_cfg
    except ImportError:
        return False
    ref = (llama_cfg if llama else transformer_cfg)(cfg.d_model, cfg.seq_len)
    return (all(getattr(cfg, f) == getattr(ref, f) for f in BLOCK_FIELDS)
            and (cfg.position == "rope") == llama)
