"""Measured blocks: where the profile timed exactly a part of the model, use that time.

The `blocks` suite times perfmodel's own block classes (`profilers.suites.blocks`):
residual bottleneck blocks (ResNet, RegNetX/Y) and GPT-style transformer blocks, forward
(`fwd`, eval mode, no autograd) and forward + backward with input and weight gradients
(`fwd_bwd`, train mode). A part of a model with the same constructor arguments, input
shape, batch and dtype is the same workload, so its measured time replaces the calibrated
sum of its ops ("a measured block beats a sum of ops"); the forward/backward split keeps
the calibrated proportions. Only steady measurements are used (interquartile range at
most `MAX_REL_IQR` of the median). These are the same rows the calibration is fitted on:
both come from the `blocks` suite, never from the `validation` suite.
"""
from __future__ import annotations

import json

import pandas as pd

MAX_REL_IQR = 0.25
CNN_BLOCKS = ("resnet_bottleneck", "regnet_x_block", "regnet_y_block")


def block_table(blocks: pd.DataFrame) -> dict[tuple, float]:
    """Measured seconds keyed like `part_block_key`, from a profile's `blocks` rows."""
    out: dict[tuple, float] = {}
    for _, r in blocks.iterrows():
        t = float(r["time_s"])
        iqr = r.get("time_iqr_s")
        if iqr is not None and pd.notna(iqr) and float(iqr) > MAX_REL_IQR * t:
            continue
        try:
            p = json.loads(r["params"])
        except (TypeError, ValueError):
            continue
        key = _row_key(str(r["op"]), p, str(r["dtype"]), str(r["phase"]))
        if key is not None:
            out[key] = t
    return out


def _row_key(op: str, p: dict, dtype: str, phase: str):
    if op in CNN_BLOCKS:
        if p.get("h") != p.get("w") or p.get("kernel_h", 3) != 3:
            return None
        return ("cnn", int(p["c_in"]), int(p["c_out"]), int(p["stride"]), float(p["bot_mul"]),
                int(p["group_w"]), float(p["se_r"]), int(p["h"]), int(p["batch"]), dtype, phase)
    if op == "transformer_block":
        return ("transformer", int(p["d_model"]), int(p["seq_q"]), int(p["batch"]), dtype, phase)
    return None


def part_block_key(part, batch: int, dtype: str, train: bool):
    """The `block_table` key of a model part, or None when the suite has no such block."""
    phase = "fwd_bwd" if train else "fwd"
    kind = part.key[0] if part.key else None
    if kind == "res_bottleneck_block":
        (w_in, w_out, stride, bm, gw, se_r, act), h = part.key[1], part.key[2]
        if act != "relu" or not part.input_grad:
            return None
        return ("cnn", w_in, w_out, stride, float(bm or 1.0), int(gw or 1), float(se_r), h,
                batch, dtype, phase)
    if kind == "transformer_block":
        cfg, seq = part.key[1], part.key[2]
        if not suite_compatible(cfg):
            return None
        return ("transformer", cfg.d_model, seq, batch, dtype, phase)
    return None


def suite_compatible(cfg) -> bool:
    """Whether a block config is the blocks suite's GPT-style block of its width."""
    try:
        from profilers.suites.blocks import transformer_cfg
    except ImportError:
        return False
    ref = transformer_cfg(cfg.d_model, cfg.seq_len)
    fields = ("n_heads", "d_ff", "kv_heads", "mlp", "norm", "bias", "causal", "head_dim")
    return all(getattr(cfg, f) == getattr(ref, f) for f in fields) and cfg.position != "rope"
