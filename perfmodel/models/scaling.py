"""Model scaling as in "Fast and Accurate Model Scaling" (Dollar, Singh, Girshick 2021).

A strategy names the dimensions scaled and their relative weights; the factor `s` is the
target multiplier of FLOPs. For a CNN, FLOPs ~ d * w^2 * r^2 (depth, width, resolution),
so with weights `e_d, e_w, e_r` (normalised to sum 1):

    depth x s^e_d,   width x s^(e_w / 2),   group width x s^(e_g / 2),   resolution x s^(e_r / 2)

Strategy strings (as pycls writes them): letters of the scaled dimensions, each weight 1
(`d`, `w`, `r`, `dw`, `dr`, `wr`, `dwr`), or weighted parts `d1_w8_g8_r1` (fast compound
scaling, alpha = 0.8: parts out of 10, so d x s^0.1, w and g x s^0.4, r x s^0.05). `dWr`
is accepted as a name for `d1_w8_g8_r1`. Weights sum over d, w and r; `g` is extra (it
scales group widths along with widths). Rounding (pycls): depths `max(1, round(d * f))`,
widths to multiples of 8, group widths `round(g * f)` snapped to 1, 2, 4 or a multiple of
8, then `adjust_block_compatibility`; resolution to a multiple of 4.

Transformers (and ViT encoders) use their own letters: `d` = layers, `w` = width (d_model
with heads, KV heads and d_ff; head_dim fixed), `s` = sequence length (tokens). Dense
FLOPs per sequence ~ layers * d_model^2 * seq, so d x s^e_d, w x s^(e_w / 2),
seq x s^e_s. For ViT, `r` is the image resolution (tokens ~ r^2), scaled like a CNN's.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace

from perfmodel.errors import PerfmodelError
from perfmodel.models.anynet import AnyNetParams
from perfmodel.models.effnet import EffNetParams
from perfmodel.models.regnet import RegNetParams, adjust_block_compatibility
from perfmodel.models.transformer_config import TransformerConfig
from perfmodel.models.vit import ViTParams

FAST_COMPOUND = "d1_w8_g8_r1"
STRATEGY_ALIASES = {"dWr": FAST_COMPOUND}
CNN_LETTERS = "dwgr"
TRANSFORMER_LETTERS = "dws"
VIT_LETTERS = "dwr"


@dataclass(frozen=True)
class ScalingFactors:
    """Multipliers per dimension (before rounding). `r` is resolution or sequence length."""

    d: float = 1.0
    w: float = 1.0
    g: float = 1.0
    r: float = 1.0


def strategy_weights(strategy: str, letters: str = CNN_LETTERS) -> dict[str, float]:
    """Relative weights of each dimension in a strategy string."""
    strategy = STRATEGY_ALIASES.get(strategy, strategy)
    if not strategy:
        raise PerfmodelError("empty scaling strategy")
    if all(c in letters for c in strategy):
        if len(set(strategy)) != len(strategy):
            raise PerfmodelError(f"scaling strategy {strategy!r} repeats a dimension")
        return {c: 1.0 if c in strategy else 0.0 for c in letters}
    weights = {c: 0.0 for c in letters}
    for part in strategy.split("_"):
        m = re.fullmatch(r"([a-zA-Z])(\d+(?:\.\d+)?)", part)
        if not m or m.group(1) not in letters:
            example = "_".join(f"{c}{8 if c in 'wg' else 1}" for c in letters)
            raise PerfmodelError(
                f"bad scaling strategy {strategy!r}: use letters of {letters!r} "
                f"(e.g. 'dw') or weighted parts (e.g. {example!r})"
            )
        weights[m.group(1)] = float(m.group(2))
    return weights


# most one dimension may grow: a 1000x deeper model takes minutes and gigabytes to count
MAX_DIMENSION_FACTOR = 100.0


class ScalingRangeError(PerfmodelError):
    """A strategy would grow one dimension past `MAX_DIMENSION_FACTOR` (`rank` skips such a
    candidate and says so; a single model is refused)."""


def scaling_factors(strategy: str, factor: float, letters: str = CNN_LETTERS,
                    r_exponent: float = 2.0) -> ScalingFactors:
    """Per-dimension multipliers whose product d * w^2 * r^r_exponent equals `factor`.

    `letters[-1]` is the resolution-like dimension (`r` for images, `s` for sequences);
    `r_exponent` is how FLOPs grow with it (2 for image resolution, 1 for sequence length).
    """
    if not (factor > 0 and math.isfinite(factor)):
        raise PerfmodelError(f"scaling factor must be a positive finite number, got {factor}")
    wts = strategy_weights(strategy, letters)
    if not any(wts.values()):
        raise PerfmodelError(f"scaling strategy {strategy!r} gives every dimension weight 0")
    res = letters[-1]
    total = wts["d"] + wts["w"] + wts[res] or wts.get("g", 0.0) / 2 or 1.0
    f = ScalingFactors(
        d=factor ** (wts["d"] / total),
        w=factor ** (wts["w"] / total / 2),
        g=factor ** (wts.get("g", 0.0) / total / 2),
        r=factor ** (wts[res] / total / r_exponent),
    )
    for dim, value in (("depth", f.d), ("width", f.w), ("group width", f.g),
                       ("resolution" if res == "r" else "sequence length", f.r)):
        if value > MAX_DIMENSION_FACTOR:
            raise ScalingRangeError(
                f"scaling factor {factor:g} with strategy {strategy!r} multiplies the "
                f"{dim} by {value:.3g}: at most {MAX_DIMENSION_FACTOR:g}x per dimension "
                "(a smaller factor, or a strategy that spreads it over more dimensions)")
    return f


def _round_widths(ws, f):
    return [max(1, round(w * f / 8)) * 8 for w in ws]


def _round_groups(gs, f):
    gs = [max(1, round(g * f)) for g in gs]
    return [g if g <= 2 else 4 if g <= 5 else round(g / 8) * 8 for g in gs]


def _scale_resolution(r: int, f: float) -> int:
    return max(4, round(r * f / 4) * 4)


def _tag(name: str, factor: float, strategy: str) -> str:
    return f"{name}@{factor:g}x{strategy}"


def scale_anynet(p: AnyNetParams, factor: float, strategy: str) -> AnyNetParams:
    """Scale an AnyNet (RegNets are converted to AnyNets first, as pycls does)."""
    f = scaling_factors(strategy, factor)
    n = len(p.depths)
    ds = [max(1, round(d * f.d)) for d in p.depths]
    ws = _round_widths(p.widths, f.w)
    bs = list(p.bot_muls) if p.bot_muls else [1] * n
    gs = _round_groups(list(p.group_ws) if p.group_ws else [1] * n, f.g)
    ws, bs, gs = adjust_block_compatibility(ws, bs, gs)
    return replace(p, depths=tuple(ds), widths=tuple(ws), bot_muls=tuple(bs),
                   group_ws=tuple(gs), resolution=_scale_resolution(p.resolution, f.r),
                   name=_tag(p.name, factor, strategy))


def scale_effnet(p: EffNetParams, factor: float, strategy: str) -> EffNetParams:
    """Scale an EfficientNet: depths, widths (stem and head too), resolution."""
    f = scaling_factors(strategy, factor)
    ds = [max(1, round(d * f.d)) for d in p.depths]
    ws = _round_widths(p.widths, f.w)
    stem_w, head_w = _round_widths([p.stem_w, p.head_w], f.w)
    ws, bs, _ = adjust_block_compatibility(ws, list(p.exp_ratios), [1] * len(ds))
    return replace(p, depths=tuple(ds), widths=tuple(ws), exp_ratios=tuple(bs),
                   stem_w=stem_w, head_w=head_w,
                   resolution=_scale_resolution(p.resolution, f.r),
                   name=_tag(p.name, factor, strategy))


def _scale_heads(n_heads: int, kv_heads: int, f: float) -> tuple[int, int]:
    kv = max(1, round(kv_heads * f))
    heads = max(kv, round(n_heads * f / kv) * kv)
    return heads, kv


def scale_transformer(cfg: TransformerConfig, factor: float, strategy: str
                      ) -> TransformerConfig:
    """Scale layers (`d`), width (`w`: heads at fixed head_dim, d_ff) and sequence (`s`).

    Without an explicit `d_head`, d_model = heads x head_dim; with one (PaLM), d_model is
    scaled by the width factor and rounded to a multiple of 8.
    """
    f = scaling_factors(strategy, factor, TRANSFORMER_LETTERS, r_exponent=1.0)
    heads, kv = _scale_heads(cfg.n_heads, cfg.kv_heads, f.w)
    if getattr(cfg, "d_head", None):
        d_model = max(8, round(cfg.d_model * heads / cfg.n_heads / 8) * 8)
    else:
        d_model = heads * cfg.head_dim
    return cfg.scaled(
        name=_tag(cfg.name, factor, strategy),
        n_layers=max(1, round(cfg.n_layers * f.d)),
        n_heads=heads,
        n_kv_heads=None if cfg.n_kv_heads is None else kv,
        d_model=d_model,
        d_ff=max(8, round(cfg.d_ff * d_model / cfg.d_model / 8) * 8),
        seq_len=max(8, round(cfg.seq_len * f.r / 8) * 8),
    )


def scale_vit(p: ViTParams, factor: float, strategy: str) -> ViTParams:
    """Scale a ViT: depth (`d`), width (`w`: heads at fixed head_dim, MLP), resolution (`r`)."""
    f = scaling_factors(strategy, factor, VIT_LETTERS)
    heads = max(1, round(p.heads * f.w))
    hidden = heads * (p.hidden // p.heads)
    res = max(p.patch_size, round(p.resolution * f.r / p.patch_size) * p.patch_size)
    return replace(p, depth=max(1, round(p.depth * f.d)), heads=heads, hidden=hidden,
                   mlp=max(8, round(p.mlp * hidden / p.hidden / 8) * 8), resolution=res,
                   name=_tag(p.name, factor, strategy))


def scale_params(p, factor: float, strategy: str):
    """Scale any family's parameter dataclass; factor 1 returns it unchanged."""
    try:
        factor = float(factor)
    except (TypeError, ValueError):
        raise PerfmodelError(f"scaling factor must be a number, got {factor!r}") from None
    if factor == 1.0 and not strategy:
        return p
    if not strategy:
        raise PerfmodelError("a scaling factor needs a strategy (e.g. 'd1_w8_g8_r1', 'dw', 'd')")
    if isinstance(p, RegNetParams):
        p = p.to_anynet()
    if isinstance(p, AnyNetParams):
        return scale_anynet(p, factor, strategy)
    if isinstance(p, EffNetParams):
        return scale_effnet(p, factor, strategy)
    if isinstance(p, TransformerConfig):
        return scale_transformer(p, factor, strategy)
    if isinstance(p, ViTParams):
        return scale_vit(p, factor, strategy)
    raise PerfmodelError(f"cannot scale parameters of type {type(p).__name__}")


def scale(name_or_params, factor: float, strategy: str | None):
    """The scaled parameters (a dataclass) of a named model or of given parameters."""
    if isinstance(name_or_params, str):
        from perfmodel.models.registry import get_params

        name_or_params = get_params(name_or_params)
    return scale_params(name_or_params, factor, strategy)
