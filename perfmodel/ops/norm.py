"""Normalizations: layer, RMS, batch and group norm.

FLOPs per element (reductions count one add per element, rsqrt per row is ignored):

| op | forward | backward |
|---|---|---|
| layer/group/batch norm (training) | mean 1, variance 3 (sub, square, add), normalise 2 (sub, mul) = 6; affine +2 (mul, add) | x-hat recomputed 2, two row sums 3, dx 4 = 9; affine +4 (dy*gamma, dgamma 2, dbeta 1) |
| RMS norm | mean square 2, scale 1 = 3; affine +1 | x-hat 1, row sum 2, dx 3 = 6; affine +3 (dy*gamma, dgamma 2) |
| batch norm (eval) | scale and shift with running statistics: 2 | dy * scale 1; affine +3 |

Bytes: x and y once each, the affine parameters, and float32 per-row (per-channel for
batch norm) statistics saved for backward. Norms produce no pycls activations.
"""
from __future__ import annotations

from perfmodel.dtypes import dtype_bytes
from perfmodel.errors import PerfmodelError
from perfmodel.ops.cost import OpCost
from perfmodel.ops.registry import dims, register

_STAT_BYTES = 4.0  # statistics (mean, rstd) are kept in float32


def _norm_cost(numel, params, stats, fwd_flops, bwd_flops, dtype, phase) -> OpCost:
    """A norm over `numel` elements with `params` affine parameters and `stats` saved floats."""
    s = dtype_bytes(dtype)
    if phase == "fwd":
        return OpCost(fwd_flops * numel, numel * s + params * s,
                      numel * s + stats * _STAT_BYTES)
    return OpCost(bwd_flops * numel, 2 * numel * s + params * s + stats * _STAT_BYTES,
                  numel * s + params * s)


def _rows(kind: str, numel: int, features: int) -> int:
    if numel % features:
        raise PerfmodelError(f"{kind}: numel={numel} is not a multiple of {features}")
    return numel // features


@register("layer_norm")
def layer_norm(numel, features, affine=True, *, dtype, phase) -> OpCost:
    """LayerNorm over the last `features` elements of a tensor of `numel` elements."""
    numel, features = dims("layer_norm", numel=numel, features=features)
    rows = _rows("layer_norm", numel, features)
    return _norm_cost(numel, 2 * features if affine else 0, 2 * rows,
                      8 if affine else 6, 13 if affine else 9, dtype, phase)


@register("rms_norm")
def rms_norm(numel, features, affine=True, *, dtype, phase) -> OpCost:
    """RMSNorm over the last `features` elements of a tensor of `numel` elements."""
    numel, features = dims("rms_norm", numel=numel, features=features)
    rows = _rows("rms_norm", numel, features)
    return _norm_cost(numel, features if affine else 0, rows,
                      4 if affine else 3, 9 if affine else 6, dtype, phase)


@register("batch_norm")
def batch_norm(numel, channels, training=True, affine=True, batch=None, *, dtype,
               phase) -> OpCost:
    """BatchNorm of a tensor of `numel` elements with `channels` channels (`batch`: its
    samples, when known; it does not change the cost, a learned model reads the map size
    `numel / (channels x batch)` from it).

    Training mode computes batch statistics (and updates the running ones); eval mode
    applies the running statistics as a per-channel scale and shift.
    """
    numel, channels = dims("batch_norm", numel=numel, channels=channels)
    _rows("batch_norm", numel, channels)
    params = 2 * channels if affine else 0
    if training:  # save_mean, save_invstd, and read+write of running mean and var
        return _norm_cost(numel, params, 6 * channels, 8 if affine else 6,
                          13 if affine else 9, dtype, phase)
    return _norm_cost(numel, params, 2 * channels, 2, 4 if affine else 1, dtype, phase)


@register("group_norm")
def group_norm(numel, channels, groups, batch, affine=True, *, dtype, phase) -> OpCost:
    """GroupNorm of x[batch, channels, ...] with `groups` groups (statistics per batch, group)."""
    numel, channels, groups, batch = dims("group_norm", numel=numel, channels=channels,
                                          groups=groups, batch=batch)
    if channels % groups:
        raise PerfmodelError(f"group_norm: groups={groups} must divide channels={channels}")
    return _norm_cost(numel, 2 * channels if affine else 0, 2 * batch * groups,
                      8 if affine else 6, 13 if affine else 9, dtype, phase)
