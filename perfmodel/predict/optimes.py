"""Per-op predicted time and energy of an op table, cached per distinct op.

Two sources: a learned `perfmodel.learn` Predictor (per-op xgboost models, roofline for
the kinds it has no model of), or the device's roofline (`perfmodel.ops.roofline`: FLOPs
at the dtype's peak, vector ops at the FP32 SIMT peak, bytes at the memory bandwidth,
plus the documented launch overhead). The counter's `direction` is the kernel that runs
(a backward GEMM is a forward GEMM kernel), so it is what the learned models see as phase.
Predictions are cached by (op, direction, dtype, shape parameters, whether it is an
optimizer kernel): a candidate that shares blocks with one already ranked costs a
dictionary lookup. An optimizer kernel (phase `optimizer`) streams parameters, gradients
and state from DRAM once per step: it is priced by the roofline, never by a learned model
of kernels timed in a loop.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from perfmodel.dtypes import canonical_dtype
from perfmodel.ops.registry import is_tensor_op
from perfmodel.ops.roofline import LAUNCH_OVERHEAD_S, VECTOR_MATH

TENSOR_KINDS = frozenset({"gemm", "bmm", "linear", "conv2d", "conv3d", "attention"})
# Shape columns that identify an op for the cache (those the counter writes).
KEY_COLUMNS = ("op", "direction", "dtype", "m", "n", "k", "b", "bias", "batch", "c_in", "d",
               "h", "w", "c_out", "kernel_d", "kernel_h", "kernel_w", "stride", "padding",
               "dilation", "groups", "transposed", "heads", "kv_heads", "seq_q", "seq_k",
               "head_dim", "head_dim_v", "causal", "numel", "inputs", "features", "channels",
               "out_numel", "read_numel", "training", "inplace", "tokens", "vocab", "flops",
               "bytes")
OUT = ("time_s", "time_lo_s", "time_hi_s", "energy_j")
EXTRAPOLATION_NOTED = ("gemm", "conv", "attention")  # learned kinds whose unmeasured dtypes are noted


def is_tensor(kinds) -> np.ndarray:
    """Whether each op kind runs on matrix units (GEMM, conv, attention)."""
    kinds = pd.Series(kinds, dtype=object)
    uniq = {k: _tensor_kind(k) for k in pd.unique(kinds)}
    return kinds.map(uniq).to_numpy(dtype=bool)


def _tensor_kind(kind) -> bool:
    try:
        return is_tensor_op(str(kind))
    except Exception:  # a kind the registry does not know (a block name): not a matrix op
        return str(kind) in TENSOR_KINDS


class OpTimes:
    """Predicts per-op seconds (and joules) for op tables on one device."""

    def __init__(self, device, predictor=None, power_w: float | None = None):
        self.device = device
        self.predictor = predictor
        self.power_w = power_w  # average watts when no per-op power model exists
        self.native = None  # NativeConv: floor of 1x1 convs off oneDNN (`native.py`)
        self._cache: dict[tuple, tuple] = {}
        self._noted: set[tuple] = set()  # (kind, dtypes, fitted dtypes) noted already
        self._warned: set[tuple] = set()  # the predictor's other warnings, each shown once

    @property
    def source(self) -> str:
        return "learned" if self.predictor is not None else "roofline"

    def predict(self, ops: pd.DataFrame) -> pd.DataFrame:
        """Columns time_s, time_lo_s, time_hi_s, energy_j (one row per op of `ops`)."""
        if not len(ops):
            return pd.DataFrame({c: np.zeros(0) for c in OUT})
        cols = [c for c in KEY_COLUMNS if c in ops.columns]
        keys = list(ops[cols].itertuples(index=False, name=None))
        streaming = _streaming(ops)
        keys = [tuple(None if (isinstance(v, float) and v != v) else v for v in k) + (bool(o),)
                for k, o in zip(keys, streaming)]
        missing = {}
        for i, k in enumerate(keys):
            if k not in self._cache and k not in missing:
                missing[k] = i
        if missing:
            idx = list(missing.values())
            sub = ops.iloc[idx].reset_index(drop=True)
            pred = self._predict_rows(sub)
            for j, k in enumerate(missing):
                self._cache[k] = tuple(pred[c][j] for c in OUT)
        values = np.array([self._cache[k] for k in keys], dtype=float)
        return pd.DataFrame(values, columns=list(OUT), index=ops.index)

    def _predict_rows(self, ops: pd.DataFrame) -> dict[str, np.ndarray]:
        roof = self.roofline(ops)
        if self.predictor is None:
            energy = roof * self.power_w if self.power_w else np.full(len(ops), np.nan)
            return {"time_s": roof, "time_lo_s": roof, "time_hi_s": np.full(len(ops), np.nan),
                    "energy_j": energy}
        frame = ops.copy()
        streaming = _streaming(frame)  # optimizer kernels: the roofline (module docstring)
        if "direction" in frame.columns:
            frame["phase"] = frame["direction"]
        frame = frame.drop(columns=[c for c in ("shapes", "aten", "module", "bytes_read",
                                                 "bytes_written", "macs", "acts")
                                    if c in frame.columns])
        for c in ("flops", "bytes"):
            # given costs spare the predictor recomputing them; as int64 (whole numbers),
            # because perfmodel.learn writes into the float array it reads (read-only under
            # pandas copy-on-write when the column is already float)
            if c in frame.columns:
                frame[c] = pd.to_numeric(frame[c], errors="coerce").fillna(0).round().astype("int64")
        res = self._learned(frame, roof, streaming)
        res = self._backward_as_difference(frame, res, roof)
        if self.native:
            res = self._native_floor(frame, res)
        t = res["pred_time_s"].to_numpy(dtype=float)
        bad = ~np.isfinite(t) | (t <= 0)
        t = np.where(bad, roof, t)
        lo = np.where(bad, roof, res["pred_time_lo_s"].to_numpy(dtype=float))
        hi = np.where(bad, np.nan, res["pred_time_hi_s"].to_numpy(dtype=float))
        e = res["pred_energy_j"].to_numpy(dtype=float)
        if self.power_w:
            e = np.where(np.isfinite(e), e, t * self.power_w)
        return {"time_s": t, "time_lo_s": lo, "time_hi_s": hi, "energy_j": e}

    def _learned(self, frame: pd.DataFrame, roof: np.ndarray,
                 streaming: np.ndarray | None = None) -> pd.DataFrame:
        """Predictor output for the rows of kinds it has a model of, except `streaming`
        (optimizer) rows; the roofline elsewhere (what the predictor itself falls back to,
        without the cost of asking it)."""
        from perfmodel.learn.kinds import op_kind

        learned = set(self.predictor.kinds)
        kinds = {o: op_kind(o) in learned for o in pd.unique(frame["op"])}
        mask = frame["op"].map(kinds).to_numpy(dtype=bool)
        if streaming is not None:
            mask = mask & ~streaming
        sel = np.flatnonzero(mask)
        res = pd.DataFrame({"pred_time_s": roof, "pred_time_lo_s": roof,
                            "pred_time_hi_s": np.nan, "pred_energy_j": np.nan})
        if len(sel):
            part = self._ask(frame.iloc[sel].reset_index(drop=True))
            for c in res.columns:
                res.iloc[sel, res.columns.get_loc(c)] = part[c].to_numpy(dtype=float)
        return res

    def _ask(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The predictor's output for `frame`. Its extrapolation warnings become one note per
        matrix-op kind and dtype set (per OpTimes, a backend): a whole-model interval is
        calibrated on whole models, not on per-op ones, and vector ops in another dtype (the
        int64 counter of a batch norm) are a negligible share of a step."""
        from perfmodel.learn.predictor import ExtrapolationWarning

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = self.predictor.predict(frame, device=None)
        for w in caught:
            if not isinstance(w.message, ExtrapolationWarning):
                key = (str(w.message), w.category)
                if key not in self._warned:  # (catch_warnings resets a registry each call)
                    self._warned.add(key)
                    warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
                continue
            key = (w.message.kind, w.message.dtypes, w.message.fitted)
            if w.message.kind in EXTRAPOLATION_NOTED and key not in self._noted:
                self._noted.add(key)
                warnings.warn(f"the per-op predictor was fitted on no {w.message.kind} ops in "
                              f"{', '.join(w.message.dtypes)} (only {', '.join(w.message.fitted)}): "
                              "their times are extrapolated", stacklevel=2)
        return res

    def _native_floor(self, frame: pd.DataFrame, res: pd.DataFrame) -> pd.DataFrame:
        """1x1 convolutions on PyTorch's native CPU path at their fitted line where it holds
        (`NativeConv.priced`), the interval and energy scaled with the time."""
        t = res["pred_time_s"].to_numpy(dtype=float)
        up, floor = self.native.priced(frame, t)
        if not up.any():
            return res
        res = res.copy()
        good = np.isfinite(t) & (t > 0)
        scale = np.where(up & good, floor / np.where(good, t, 1.0), 1.0)
        for col in ("pred_time_s", "pred_time_lo_s", "pred_time_hi_s", "pred_energy_j"):
            res[col] = res[col].to_numpy(dtype=float) * scale
        bare = up & ~good  # no learned time to scale: the line, no interval above it
        if bare.any():
            for col, value in (("pred_time_s", floor), ("pred_time_lo_s", floor),
                               ("pred_time_hi_s", np.nan), ("pred_energy_j", np.nan)):
                res.iloc[np.flatnonzero(bare), res.columns.get_loc(col)] = (
                    value[bare] if isinstance(value, np.ndarray) else value)
        return res

    def _backward_as_difference(self, frame: pd.DataFrame, res: pd.DataFrame,
                                roof: np.ndarray) -> pd.DataFrame:
        """Backward kernels of learned kinds: t(fwd_bwd) - t(fwd) of the same shape.

        Profiles measure a layer's backward as `fwd_bwd` (forward + backward) next to `fwd`;
        a learned model has seen those phases, not a lone backward, so the backward time is
        their difference (at least the backward's own roofline time).
        """
        from perfmodel.learn.kinds import op_kind

        learned = set(self.predictor.kinds)
        sel = np.flatnonzero((frame["phase"].astype(str) == "bwd").to_numpy()
                             & np.array([op_kind(o) in learned for o in frame["op"]], bool))
        if not len(sel):
            return res
        sub = frame.iloc[sel].drop(columns=[c for c in ("flops", "bytes", "bytes_read",
                                                         "bytes_written", "macs", "acts")
                                            if c in frame.columns])  # costs of these phases
        pair = self._ask(pd.concat([sub.assign(phase="fwd_bwd"), sub.assign(phase="fwd")],
                                   ignore_index=True))
        both, fwd = pair.iloc[:len(sub)], pair.iloc[len(sub):]
        res = res.copy()
        t_both = both["pred_time_s"].to_numpy(dtype=float)
        d = np.maximum(t_both - fwd["pred_time_s"].to_numpy(dtype=float), roof[sel])
        # the interval and energy of the difference scale like those of the fwd_bwd call
        for col in ("pred_time_s", "pred_time_lo_s", "pred_time_hi_s", "pred_energy_j"):
            ratio = both[col].to_numpy(dtype=float) / t_both
            value = d * ratio
            if col == "pred_time_lo_s":  # never below the backward's own roofline
                value = np.maximum(value, roof[sel])
            res.iloc[sel, res.columns.get_loc(col)] = value
        return res

    def roofline(self, ops: pd.DataFrame) -> np.ndarray:
        """Roofline seconds per op (vectorised `perfmodel.ops.roofline`)."""
        dev = self.device
        flops = pd.to_numeric(ops["flops"], errors="coerce").fillna(0).to_numpy(dtype=float)
        nbytes = pd.to_numeric(ops["bytes"], errors="coerce").fillna(0).to_numpy(dtype=float)
        tensor = is_tensor(ops["op"])
        dtypes = ops["dtype"].astype(str).to_numpy() if "dtype" in ops.columns else np.full(len(ops), "float32")
        peaks = {}
        peak = np.empty(len(ops))
        for i, (dt, t) in enumerate(zip(dtypes, tensor)):
            key = (dt, bool(t))
            if key not in peaks:
                peaks[key] = _peak(dev, dt, bool(t))
            peak[i] = peaks[key]
        overhead = LAUNCH_OVERHEAD_S.get(dev.kind, 0.0)
        return np.maximum(flops / peak, nbytes / float(dev.memory_bandwidth)) + overhead


def _streaming(ops: pd.DataFrame) -> np.ndarray:
    """Which rows are optimizer kernels (phase `optimizer`)."""
    if "phase" not in ops.columns:
        return np.zeros(len(ops), bool)
    return (ops["phase"].astype(str) == "optimizer").to_numpy()


def _peak(dev, dtype: str, tensor: bool) -> float:
    if not tensor:
        return dev.peak(VECTOR_MATH)
    try:
        dt = canonical_dtype(dtype)
    except Exception:
        dt = "float32"
    return dev.peak(dt) if dev.supports(dt) else dev.peak(VECTOR_MATH)
