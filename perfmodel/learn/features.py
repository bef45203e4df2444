"""Features grounded in how GPUs execute an op, vectorised with numpy.

For every row: FLOPs, bytes, arithmetic intensity and the roofline time on the device's
datasheet (compute time at the dtype's peak, memory time at the DRAM bandwidth, plus the
launch overhead of `perfmodel.ops.roofline`). Per op kind, the shape features a kernel's
speed depends on:

- GEMM (also the implicit GEMM of a convolution): output tiles for common CTA tile sizes
  (64x64 ... 256x128), their count over the SMs (waves), the fill of the last wave, the
  padding waste of partial tiles, main-loop length over k, and the alignment of m, n, k
  (largest power of two dividing them, capped at 128: vector loads and tensor-core tiles
  need multiples of 8/16, the fast kernels 64/128).
- attention: query-block tiles over batch x heads, waves, head_dim, causal.
- elementwise/norm: elements, waves of a grid-stride launch, the normalised extent.

The model learns the log of time over roofline time, so what it has to learn is the
efficiency the roofline leaves out; dtype enters through its byte size and the peak of its
math mode, so two dtypes of the same throughput (float16, bfloat16) look alike.
"""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

from perfmodel.dtypes import DTYPE_BYTES
from perfmodel.errors import PerfmodelError
from perfmodel.learn.costs import row_number
from perfmodel.learn.kinds import ATTENTION_PARAMS, CONV_PARAMS, OP_KINDS, canonical_op, op_kind

# CTA tile shapes (rows x cols of the output) that cuBLAS/CUTLASS kernels commonly use.
TILES: tuple[tuple[int, int], ...] = ((64, 64), (128, 64), (64, 128), (128, 128), (128, 256), (256, 128))
K_BLOCK = 64  # k extent of one main-loop iteration (tensor-core kernels: 32-64)
ALIGN_CAP = 7  # alignment feature counts trailing zero bits up to 2**7 = 128
PHASES = {"fwd": 0, "inference": 0, "bwd": 1, "fwd_bwd": 2, "train_step": 3}
ATTN_BLOCK_Q = 128  # query rows per CTA of a flash-attention kernel
ELEMENTWISE_ITEMS_PER_SM = 2048 * 4  # resident threads per SM x elements per thread

COMMON_FEATURES = (
    "log_flops", "log_bytes", "log_intensity", "log_t_compute", "log_t_memory",
    "log_t_roofline", "compute_memory_ratio", "dtype_bytes", "log_peak", "tensor_core",
    "phase", "log_bytes_over_l2",
)


def _log2(x) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log2(np.asarray(x, dtype=float))


def _col(df: pd.DataFrame, name: str, default=np.nan) -> np.ndarray:
    if name in df.columns:
        return pd.to_numeric(df[name], errors="coerce").to_numpy(dtype=float)
    return np.full(len(df), default, dtype=float)


def _hw(value, default: float) -> tuple[float, float]:
    """(height, width) of one stride/padding/dilation cell: a scalar stands for both, a
    pair (tuple, list, array or its text "(1, 2)") gives each; NaN when unreadable."""
    if np.ndim(value) == 0 and not isinstance(value, str) and pd.isna(value):
        return default, default
    if isinstance(value, str):
        parts = re.findall(r"-?\d+(?:\.\d+)?", value)
        value = [float(x) for x in parts] if parts else value
    if np.ndim(value) == 0:
        try:
            v = float(value)
        except (TypeError, ValueError):
            return np.nan, np.nan
        return v, v
    v = [float(x) for x in np.ravel(value)]
    return (v[0], v[0]) if len(v) == 1 else (v[-2], v[-1]) if len(v) >= 2 else (np.nan, np.nan)


def hw_columns(df: pd.DataFrame, col: str, default: float) -> tuple[np.ndarray, np.ndarray]:
    """(height, width) arrays of a stride/padding/dilation column whose cells are scalars
    or per-dimension pairs (`_hw`); `default` where the column is absent or a cell empty."""
    if col not in df.columns:
        return np.full(len(df), default), np.full(len(df), default)
    seen: dict[str, tuple[float, float]] = {}
    hw = []
    for c in df[col].tolist():
        key = repr(c)
        if key not in seen:
            seen[key] = _hw(c, default)
        hw.append(seen[key])
    arr = np.array(hw, dtype=float).reshape(len(df), 2)
    return arr[:, 0], arr[:, 1]


def launch_overhead_s(device) -> float:
    """Fixed per-kernel launch overhead the roofline adds (from `perfmodel.ops.roofline`)."""
    from perfmodel.learn.costs import launch_overhead

    return launch_overhead(device)


TENSOR_KINDS = ("gemm", "conv", "attention")  # run on matrix units; others on vector math
VECTOR_MATH = "float32"  # the math mode of vector ops (norms, activations), as in perfmodel.ops


def dtype_columns(dtypes: np.ndarray, device, tensor: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-row element bytes, peak FLOP/s of the math mode, and a tensor-core flag.

    Vector ops (`tensor=False`), and tensor ops in a dtype the device has no matrix mode
    for, use the FP32 vector peak, as `perfmodel.ops.roofline` does.
    """
    inv, uniq = pd.factorize(pd.Series(dtypes, dtype=object).astype(str))
    size = np.empty(len(uniq))
    peak = np.empty(len(uniq))
    tc = np.empty(len(uniq))
    for i, d in enumerate(uniq):
        if d not in DTYPE_BYTES:
            raise PerfmodelError(f"unknown dtype {d!r}")
        size[i] = DTYPE_BYTES[d]
        if (tensor and device.kind == "gpu" and not device.supports(d)
                and (d == "float64" or d.startswith("float8"))):
            # no such math on this GPU in the catalogue (float64 on an L4, FP8 on an A100):
            # its FP32 rate would be a wrong number, as the roofline says
            raise PerfmodelError(f"cannot predict {d} ops on {device.key}: the catalogue has "
                                 f"no {d} peak for it")
        mode = d if tensor and device.supports(d) else VECTOR_MATH
        try:
            peak[i] = device.peak(mode)
        except PerfmodelError as exc:
            raise PerfmodelError(f"cannot predict {d} ops on {device.key}: {exc}") from None
        tc[i] = float(device.kind == "gpu" and mode not in ("float32", "float64"))
    return size[inv], peak[inv], tc[inv]


def roofline_time(flops, bytes_, peak, bandwidth: float, overhead: float) -> np.ndarray:
    """max(compute time, memory time) + launch overhead, vectorised."""
    return np.maximum(flops / peak, bytes_ / bandwidth) + overhead


def common_features(flops, bytes_, dtype_cols, phase, device) -> tuple[dict, np.ndarray]:
    """Cost and roofline features shared by every kind; returns (features, roofline seconds).

    `dtype_cols` is the (bytes, peak, tensor-core) triple of `dtype_columns`.
    """
    size, peak, tc = dtype_cols
    flops = np.asarray(flops, dtype=float)
    bytes_ = np.asarray(bytes_, dtype=float)
    t_c = flops / peak
    t_m = bytes_ / device.memory_bandwidth
    t_r = np.maximum(t_c, t_m) + launch_overhead_s(device)
    l2 = float(device.l2_bytes) if device.l2_bytes else np.nan
    feats = {
        "log_flops": _log2(np.maximum(flops, 1.0)),
        "log_bytes": _log2(np.maximum(bytes_, 1.0)),
        "log_intensity": _log2(np.maximum(flops, 1.0) / np.maximum(bytes_, 1.0)),
        "log_t_compute": _log2(np.maximum(t_c, 1e-12)),
        "log_t_memory": _log2(np.maximum(t_m, 1e-12)),
        "log_t_roofline": _log2(t_r),
        "compute_memory_ratio": _log2(np.maximum(t_c, 1e-12) / np.maximum(t_m, 1e-12)),
        "dtype_bytes": size,
        "log_peak": _log2(peak),
        "tensor_core": tc,
        "phase": phase,
        "log_bytes_over_l2": _log2(np.maximum(bytes_, 1.0) / l2),
    }
    return feats, t_r


def _trailing_zeros(x: np.ndarray) -> np.ndarray:
    """Number of trailing zero bits of positive integers, capped at ALIGN_CAP; NaN stays NaN.

    Values from 2**62 up (a conv's implicit-GEMM m, a product of unchecked columns) are
    taken mod 2**ALIGN_CAP first (exact in float, and the capped count is the same): cast
    to int64 as they are, they overflow. The cast alone is 3x faster than the float mod,
    so only those values take it.
    """
    out = np.full(x.shape, np.nan)
    ok = np.isfinite(x) & (x >= 1)
    v = x[ok]
    big = v >= 2.0 ** 62
    if big.any():
        r = np.fmod(v[big], 2 ** ALIGN_CAP)  # in [0, 128): 0 when 128 divides it
        v[big] = np.where(r == 0, 2 ** ALIGN_CAP, r)
    xi = v.astype(np.int64)
    out[ok] = np.minimum(np.log2((xi & -xi).astype(float)), ALIGN_CAP)
    return out


def tile_features(m, n, k, b, sms: int, prefix: str = "") -> dict:
    """Tile, wave and alignment features of a GEMM C[m,n] = A[m,k] @ B[k,n], `b` times."""
    m, n, k, b = (np.asarray(v, dtype=float) for v in (m, n, k, b))
    f = {
        f"{prefix}log_m": _log2(m), f"{prefix}log_n": _log2(n),
        f"{prefix}log_k": _log2(k), f"{prefix}log_b": _log2(b),
        f"{prefix}log_min_mn": _log2(np.minimum(m, n)),
        f"{prefix}log_k_iters": _log2(np.ceil(k / K_BLOCK)),
        f"{prefix}align_m": _trailing_zeros(m), f"{prefix}align_n": _trailing_zeros(n),
        f"{prefix}align_k": _trailing_zeros(k),
    }
    best = np.zeros(m.shape)
    for tm, tn in TILES:
        rows = np.ceil(m / tm)
        cols = np.ceil(n / tn)
        tiles = b * rows * cols
        waves = np.ceil(tiles / sms)
        tag = f"{prefix}t{tm}x{tn}"
        wave_fill = tiles / (waves * sms)  # useful share of the SM-slots launched
        pad_fill = (m * n) / (rows * tm * cols * tn)  # useful share of the tile area
        f[f"{tag}_log_waves"] = _log2(tiles / sms)
        f[f"{tag}_wave_fill"] = wave_fill
        f[f"{tag}_pad_fill"] = pad_fill
        f[f"{tag}_eff"] = wave_fill * pad_fill
        best = np.fmax(best, wave_fill * pad_fill)
    f[f"{prefix}best_tile_eff"] = best  # the quantisation efficiency of the best tile choice
    return f


def gemm_cost_arrays(m, n, k, b, size) -> tuple[np.ndarray, np.ndarray]:
    """FLOPs (2 x MACs) and bytes (read A and B, write C once) of batched GEMMs."""
    flops = 2.0 * b * m * n * k
    bytes_ = b * (m * k + k * n + m * n) * size
    return flops, bytes_


def _phase(df: pd.DataFrame) -> np.ndarray:
    if "phase" not in df.columns:
        return np.zeros(len(df))
    codes, uniq = pd.factorize(df["phase"])
    return np.append(np.array([PHASES.get(str(p), np.nan) for p in uniq], dtype=float), np.nan)[codes]


def _given(df: pd.DataFrame, name: str) -> np.ndarray:
    v = _col(df, name)
    return np.where(v >= 0, v, np.nan)


def _costs(df: pd.DataFrame, kind: str, size: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """FLOPs and bytes: the row's own `flops`/`bytes` where given, else the op-cost formulas."""
    flops, bytes_ = _given(df, "flops"), _given(df, "bytes")
    missing = np.isnan(flops) | np.isnan(bytes_)
    if not missing.any():
        return flops, bytes_
    f = np.full(len(df), np.nan)
    by = np.full(len(df), np.nan)
    fast = missing & (_phase(df) == 0) if kind == "gemm" else np.zeros(len(df), bool)
    if fast.any():  # forward GEMMs: vectorised, the formula of perfmodel.ops.matmul
        f[fast], by[fast] = gemm_cost_arrays(*(a[fast] for a in (_col(df, "m"), _col(df, "n"), _col(df, "k"), _col(df, "b", 1.0), size)))
    slow = missing & ~fast
    if slow.any():
        from perfmodel.learn.costs import op_costs

        f[slow], by[slow] = op_costs(df[slow])
    flops = np.where(np.isnan(flops), f, flops)
    bytes_ = np.where(np.isnan(bytes_), by, bytes_)
    return flops, bytes_


def conv_gemm_dims(df: pd.DataFrame) -> tuple[np.ndarray, ...]:
    """Implicit-GEMM dims (m, n, k, groups) of a convolution: m = batch*out_h*out_w."""
    batch, c_in, h, w, c_out, kh, kw = (_col(df, c) for c in CONV_PARAMS[:7])
    groups = _col(df, "groups", 1.0)
    (sh, sw), (ph, pw), (dh, dw) = (hw_columns(df, c, d) for c, d in
                                    (("stride", 1.0), ("padding", 0.0), ("dilation", 1.0)))
    kw = np.where(np.isnan(kw), kh, kw)
    out_h = np.floor((h + 2 * ph - dh * (kh - 1) - 1) / sh + 1)
    out_w = np.floor((w + 2 * pw - dw * (kw - 1) - 1) / sw + 1)
    m = batch * out_h * out_w
    n = c_out / groups
    k = c_in / groups * kh * kw
    return m, n, k, groups


def _op_code(df: pd.DataFrame, kind: str) -> np.ndarray:
    ops = OP_KINDS.get(kind, ())
    codes, uniq = pd.factorize(df["op"])
    return np.array([float(ops.index(o)) if o in ops else np.nan for o in uniq])[codes]


class Features(dict):
    """Named feature columns (name -> float array) of the rows of one op kind."""

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self)

    def matrix(self, names=None) -> np.ndarray:
        """float32 matrix of the columns `names` (all by default; NaN for absent ones)."""
        names = self.names if names is None else names
        n = len(next(iter(self.values()))) if self else 0
        X = np.empty((n, len(names)), dtype=np.float32, order="F")
        for j, c in enumerate(names):
            X[:, j] = self[c] if c in self else np.nan
        return X


def build_features(df: pd.DataFrame, kind: str, device) -> tuple[Features, np.ndarray]:
    """Features and roofline seconds for rows of one op kind."""
    dcols = dtype_columns(df["dtype"].to_numpy(), device, tensor=kind in TENSOR_KINDS)
    size = dcols[0]
    flops, bytes_ = _costs(df, kind, size)
    bad = ~(np.isfinite(flops) & np.isfinite(bytes_))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise PerfmodelError(
            f"row {row_number(df, i)}: cannot work out FLOPs and bytes of op {df['op'].iloc[i]!r} "
            "(give `flops` and `bytes` columns or the op's shape parameters)"
        )
    feats, t_r = common_features(flops, bytes_, dcols, _phase(df), device)
    sms = max(int(device.sm_count), 1)
    if kind == "gemm":
        feats.update(tile_features(_col(df, "m"), _col(df, "n"), _col(df, "k"), _col(df, "b", 1.0), sms))
        feats["log_t_tiled"] = feats["log_t_compute"] - _log2(feats["best_tile_eff"])
    elif kind == "conv":
        m, n, k, g = conv_gemm_dims(df)
        feats.update(tile_features(m, n, k, g, sms))
        feats["log_t_tiled"] = feats["log_t_compute"] - _log2(feats["best_tile_eff"])
        feats["conv_kernel_h"] = _col(df, "kernel_h")
        feats["conv_stride"] = np.fmax(*hw_columns(df, "stride", 1.0))  # a (1, 2) stride: 2
        feats["conv_groups"] = _col(df, "groups")
        feats["conv_depthwise"] = (_col(df, "groups", 1.0) == _col(df, "c_in")).astype(float)
        feats["op_code"] = _op_code(df, kind)
    elif kind == "attention":
        batch, heads, sq, sk, hd, causal = (_col(df, c) for c in ATTENTION_PARAMS)
        tiles = batch * heads * np.ceil(sq / ATTN_BLOCK_Q)
        feats.update({
            "attn_log_seq_q": _log2(sq), "attn_log_seq_k": _log2(sk), "attn_head_dim": hd,
            "attn_log_bh": _log2(batch * heads), "attn_causal": causal,
            # grouped-query attention: query heads per key/value head (1 without kv_heads)
            "attn_log_group": _log2(heads / np.where(np.isnan(_col(df, "kv_heads")), heads,
                                                     _col(df, "kv_heads"))),
            "attn_log_waves": _log2(tiles / sms),
            "attn_wave_fill": tiles / (np.ceil(tiles / sms) * sms),
            "op_code": _op_code(df, kind),
        })
    elif kind == "elementwise":
        numel = _col(df, "numel")
        numel = np.where(np.isnan(numel), bytes_ / (2 * size), numel)  # read once, write once
        per_wave = sms * ELEMENTWISE_ITEMS_PER_SM
        feats.update({
            "ew_log_numel": _log2(numel),
            "ew_log_waves": _log2(numel / per_wave),
            "ew_wave_fill": numel / (np.ceil(numel / per_wave) * per_wave),
            "ew_log_features": _log2(_col(df, "features")),  # normalised extent of a norm
            "ew_log_extent": _log2(vector_extent(df, numel)),
            "ew_training": _flag(df, "training"),
            # relu_, add_: no fresh output buffer (AMD profile, float32, by size band:
            # relu_ 0.41-0.62x the time of relu, add_ 0.53-0.72x add)
            "ew_inplace": np.nan_to_num(_flag(df, "inplace"), nan=0.0),
            # by canonical name: an alias (`mean`, `add`) is the op the suite timed
            "op_code": _op_code(df.assign(op=df["op"].map(
                {o: canonical_op(o) for o in pd.unique(df["op"])})), kind),
        })
    return Features({k: np.asarray(v, dtype=float) for k, v in feats.items()}), t_r


def vector_extent(df: pd.DataFrame, numel: np.ndarray) -> np.ndarray:
    """Elements one statistic or one broadcast value of a vector op spans, NaN where none:
    a reduction's `numel / out_numel`, a batch norm's map `numel / (channels x batch)`, an
    elementwise op's output elements per element of its broadcast input (that input has
    `read_numel - (inputs - 1) x numel` elements), a layer norm's or softmax's row
    (`features`). On a CPU a mean over a 2x2 map runs far below the bandwidth a mean over
    56x56 reaches."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = _col(df, "features")
        out_numel = _col(df, "out_numel")
        reduced = np.where(out_numel > 0, numel / out_numel, np.nan)
        out = np.where(np.isfinite(reduced), reduced, out)
        maps = _col(df, "channels") * _col(df, "batch")  # NaN without the batch
        per_map = np.where(maps > 0, numel / maps, np.nan)
        out = np.where(np.isfinite(per_map), per_map, out)
        small = _col(df, "read_numel") - (_col(df, "inputs") - 1) * numel  # broadcast input
        bcast = np.where((small > 0) & (small < numel), numel / small, np.nan)
    return np.where(np.isfinite(bcast), bcast, out)


def _flag(df: pd.DataFrame, name: str) -> np.ndarray:
    """A boolean column as 1.0 / 0.0, NaN where absent."""
    if name not in df.columns:
        return np.full(len(df), np.nan)
    col = df[name]
    if col.dtype == object or pd.api.types.is_string_dtype(col):  # "True"/"false" from CSV
        col = col.map(lambda v: {"true": True, "false": False, "1": True, "0": False}.get(
            v.strip().lower(), v) if isinstance(v, str) else v)
    try:
        return col.astype("boolean").astype(float).to_numpy()
    except (TypeError, ValueError):  # not booleans: no flag
        return np.full(len(df), np.nan)


BASES = ("roofline", "tiled")  # what a learned model's log-time ratio is taken against


def base_time(feats: Features, t_r: np.ndarray, base: str, device) -> np.ndarray:
    """Seconds the learned ratio multiplies: the roofline, or the tile-quantised roofline.

    `tiled`: max(compute time / best tile-and-wave efficiency, memory time) + launch
    overhead, for kinds with tile features (GEMM, conv); others keep the roofline. The
    quantisation then sits in the analytic part, which extrapolates (to other dtypes, batch
    counts, sizes) where trees, piecewise constant, cannot.
    """
    if base == "roofline" or "log_t_tiled" not in feats:
        return t_r
    if base != "tiled":
        raise PerfmodelError(f"unknown base {base!r}; expected one of {', '.join(BASES)}")
    return np.maximum(np.exp2(feats["log_t_tiled"]), np.exp2(feats["log_t_memory"])) + launch_overhead_s(device)


def kinds_of(df: pd.DataFrame) -> np.ndarray:
    """The op kind of every row."""
    codes, uniq = pd.factorize(df["op"])
    return np.array([op_kind(op) for op in uniq], dtype=object)[codes]
