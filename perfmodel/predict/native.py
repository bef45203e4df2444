"""CPU 1x1 convolutions that leave oneDNN: a floor fitted on the profile's conv suite.

PyTorch's CPU dispatch runs an unstrided, undilated 1x1 float32 convolution of fewer than
16 samples on its native kernel instead of oneDNN when it runs single-threaded. That
kernel runs one GEMM (c_out x out_h*out_w x c_in) per sample; with a small map (a few
pixels: the last stages of a CNN at low resolution) the BLAS runs it at a few GFLOP/s, an
order of magnitude below the oneDNN path, and a learned per-op model that has seen few
such shapes smooths the cliff away.

Per phase (`fwd`, `fwd_bwd`) and per output map size `n = out_h*out_w`, the conv suite's
rows of that kind give a line `t = a + F / rate` (F: the row's FLOPs, fwd x1, fwd_bwd x3),
fitted by non-negative least squares when at least `MIN_ROWS` rows span a factor
`MIN_SPAN` in F; a size between two fitted ones takes the line of the smaller. The
backward's line is the fwd_bwd line minus the fwd one, and no less than the fwd line (its
input gradient is the same per-sample GEMM).

On a single-threaded profile a convolution of that kind on a map of at most
`REPLACE_MAX_N` = 256 pixels is predicted by its line where the line is well supported
(below). The learned model, which sees the
map size only through m = batch x out_h x out_w, smooths the per-size steps away. In 5
folds of whole shapes (`bench_profile_ops`' folds) over the native rows of the AMD profile
(2026-12-01), median |error| (signed median):

| output map n | rows fwd / fwd_bwd | learned | raised to the line (before) | the line |
|---|---|---|---|---|
| 1-16 | 115 / 120 | 58-65% / 41% (-5 to -14%) | (+5 to +12%) | 4-6% / 9-12% |
| 17-256 | 151 / 142 | 8-21% / 8-14% | (+5 to +14%) | 2-3% / 4-6% |
| 257-1024 | 21 / 12 | 14% / 16% | (+9% / +29%) | 9% / 27% |
| > 1024 | 25 / 33 | 14-17% / 9-12% | (+13 to +17%) | 17% / 19-53% |

Above 256 pixels the suite has few rows per map size and the learned prediction does
better: there it stands, without the floor. A line replaces the learned time only where
it is well supported: fitted on at least `REPLACE_MIN_ROWS` rows whose FLOPs span the
row's within `FLOPS_MARGIN` (a backward needs its forward's and fwd_bwd line both);
elsewhere on small maps it stays a floor. On a profile measured with several threads
the rows run on oneDNN and the line is only a floor under the learned prediction (there it
lies below, so it does not bind). Only per-op suites are used, never blocks or validation.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from perfmodel.learn.features import hw_columns

MIN_ROWS = 2
# on a single-threaded profile a well-supported line is the prediction up to this output
# map size (16 x 16); above it the suite has few rows per size, the lines rest on two or
# three of them, and the learned prediction does better (module doc)
REPLACE_MAX_N = 256
REPLACE_MIN_ROWS = 4  # a line replaces the learned time only when fitted on this many rows,
FLOPS_MARGIN = 2.0  # and only for FLOPs within this factor of the range it was fitted on
MIN_SPAN = 8.0  # largest / smallest FLOPs of the rows a line is fitted on
PHASE_FLOPS = {"fwd": 1.0, "fwd_bwd": 3.0}


def _num(df: pd.DataFrame, col: str, default: float) -> np.ndarray:
    if col not in df.columns:
        return np.full(len(df), default)
    return pd.to_numeric(df[col], errors="coerce").fillna(default).to_numpy(dtype=float)


def native_shape(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mask of rows on the native 1x1 path, output map size n, forward FLOPs).

    Stride, padding and dilation may be per-dimension pairs (the counter writes a tuple
    where height and width differ); a transposed convolution is never on this path."""
    if not len(df) or "op" not in df.columns:
        z = np.zeros(len(df))
        return z.astype(bool), z, z
    batch = _num(df, "batch", np.nan)
    kh = _num(df, "kernel_h", np.nan)
    kw = np.where(np.isnan(_num(df, "kernel_w", np.nan)), kh, _num(df, "kernel_w", np.nan))
    (sh, sw), (dh, dw) = hw_columns(df, "stride", 1.0), hw_columns(df, "dilation", 1.0)
    ph, pw = hw_columns(df, "padding", 0.0)
    transposed = (df["transposed"].fillna(False).astype(bool).to_numpy()
                  if "transposed" in df.columns else np.zeros(len(df), dtype=bool))
    groups = _num(df, "groups", 1.0)
    dtype = df["dtype"].astype(str).to_numpy() if "dtype" in df.columns else np.full(len(df), "float32")
    h, w = _num(df, "h", np.nan), _num(df, "w", np.nan)
    w = np.where(np.isnan(w), h, w)
    n = (h + 2 * ph) * (w + 2 * pw)
    mask = ((df["op"].astype(str).to_numpy() == "conv2d") & (kh == 1) & (kw == 1)
            & (sh == 1) & (sw == 1) & (dh == 1) & (dw == 1) & ~transposed
            & (batch < 16) & (dtype == "float32") & np.isfinite(n) & (n > 0))
    flops = 2 * batch * _num(df, "c_out", np.nan) * _num(df, "c_in", np.nan) / groups * n
    return mask, np.where(mask, n, 0.0), np.where(mask, flops, 0.0)


@dataclass
class NativeConv:
    """Lines `t = a + F / rate` per (phase, n); `replace`: the line is the prediction (a
    single-threaded profile, whose rows of this kind ran on the native kernel), else only
    a floor under the learned one."""

    lines: dict[tuple[str, int], tuple[float, float]] = field(default_factory=dict)  # (a s, s/FLOP)
    replace: bool = False
    # per line: (rows, least FLOPs, most FLOPs) it was fitted on (forward FLOPs)
    support: dict[tuple[str, int], tuple[int, float, float]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.lines)

    def priced(self, frame: pd.DataFrame, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(which rows of `frame` take their line, the line) given the learned seconds `t`
        (`rule`)."""
        line = self.floor(frame)
        return self.rule(frame, line, t, self.well_supported(frame)), line

    def rule(self, frame: pd.DataFrame, line: np.ndarray, t: np.ndarray,
             strong: np.ndarray) -> np.ndarray:
        """Which rows take `line` over the learned `t`: with `replace`, the `strong` rows
        (`well_supported`), and as a floor the other rows on maps of at most
        `REPLACE_MAX_N` pixels; without, every row whose line lies above `t`."""
        ok = np.isfinite(line) & (line > 0)
        above = ok & ~(t >= line)  # NaN learned times too
        if not self.replace:
            return above
        small = native_shape(frame)[1] <= REPLACE_MAX_N
        return ok & (strong | (small & above))

    def well_supported(self, frame: pd.DataFrame) -> np.ndarray:
        """Rows on maps of at most `REPLACE_MAX_N` pixels whose lines (the forward's, and
        the fwd_bwd one for a backward or a fwd_bwd row) rest on `REPLACE_MIN_ROWS` rows
        whose FLOPs span theirs within `FLOPS_MARGIN` (else the line is only a floor)."""
        mask, n, flops = native_shape(frame)
        phase = (frame["phase"].astype(str).to_numpy() if "phase" in frame.columns
                 else np.full(len(frame), "fwd"))
        out = np.zeros(len(frame), dtype=bool)
        for i in np.flatnonzero(mask & (n <= REPLACE_MAX_N)):
            need = ("fwd",) if phase[i] == "fwd" else ("fwd", "fwd_bwd")
            out[i] = all(self._supports(ph, n[i], flops[i]) for ph in need)
        return out

    def _supports(self, phase: str, n: float, flops: float) -> bool:
        key = self._key(phase, n)
        if key is None or key not in self.support:
            return False
        rows, lo, hi = self.support[key]
        return rows >= REPLACE_MIN_ROWS and lo / FLOPS_MARGIN <= flops <= hi * FLOPS_MARGIN

    def _key(self, phase: str, n: float):
        """The (phase, size) whose line prices size `n` (`line`'s rule), None if none."""
        if (phase, int(n)) in self.lines:
            return (phase, int(n))
        sizes = sorted(k for p, k in self.lines if p == phase)
        below = [k for k in sizes if k < n]
        if not below or not any(k > n for k in sizes):
            return None
        return (phase, below[-1])

    def floor(self, frame: pd.DataFrame) -> np.ndarray:
        """Least seconds of each row of a counted op table (NaN where no line applies)."""
        out = np.full(len(frame), np.nan)
        if not self.lines or not len(frame):
            return out
        mask, n, flops = native_shape(frame)
        phase = (frame["phase"].astype(str).to_numpy() if "phase" in frame.columns
                 else np.full(len(frame), "fwd"))
        for i in np.flatnonzero(mask):
            f = self.line("fwd", n[i])
            if f is None:
                continue
            t_fwd = f[0] + f[1] * flops[i]
            if phase[i] == "fwd":
                out[i] = t_fwd
            elif phase[i] == "bwd":
                # the input gradient alone is the forward's small-n GEMM again (W^T @ dY
                # per sample), so the backward is no faster than the forward line
                b = self.line("fwd_bwd", n[i])
                diff = b[0] + b[1] * 3 * flops[i] - t_fwd if b is not None else 0.0
                out[i] = max(diff, t_fwd)
        return out

    def line(self, phase: str, n: float) -> tuple[float, float] | None:
        """(a, seconds per FLOP) at map size n: its fitted line, else that of the nearest
        fitted size below it (BLAS small-n kernels change speed in steps, and a size between
        two fitted ones runs like the smaller until the next step); None outside the fitted
        range (never extrapolated)."""
        key = self._key(phase, n)
        return None if key is None else self.lines[key]


def fit_native(per_op: pd.DataFrame, single_thread: bool = False) -> NativeConv:
    """Lines of the native 1x1 path from a profile's per-op rows (conv suite);
    `single_thread`: the profile ran on one thread (its metadata's `torch_threads`), so
    the lines replace the learned prediction."""
    from scipy.optimize import nnls

    out = NativeConv(replace=single_thread)
    if not len(per_op) or "phase" not in per_op.columns:
        return out
    mask, n, flops = native_shape(per_op)
    t = _num(per_op, "time_s", np.nan)
    phase = per_op["phase"].astype(str).to_numpy()
    for ph, mult in PHASE_FLOPS.items():
        sel = mask & (phase == ph) & np.isfinite(t) & (t > 0) & (flops > 0)
        for key in np.unique(n[sel]):
            rows = sel & (n == key)
            f, y = flops[rows] * mult, t[rows]
            if rows.sum() < MIN_ROWS or f.max() < MIN_SPAN * f.min():
                continue
            A = np.column_stack([np.ones_like(f), f]) / y[:, None]  # relative error
            coef, _ = nnls(A, np.ones(len(y)))
            if coef[1] > 0:
                out.lines[(ph, int(key))] = (float(coef[0]), float(coef[1]))
                base = flops[rows]
                out.support[(ph, int(key))] = (int(rows.sum()), float(base.min()), float(base.max()))
    return out
