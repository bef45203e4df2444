"""Whole-model prediction intervals, calibrated on the profile's measured whole models.

A whole-model prediction sums many parts. Their per-part intervals (the block
calibration's residual quantiles, or learned per-op intervals summed bound by bound) say
how far one part can be off, and the parts' errors partly cancel: on the shipped CPU
profiles those intervals ran from -22 % to +46 % around predictions whose measured error
was 2-6 %. What a user needs is how far a *whole model* can be off, and the profile's
`validation` suite measures exactly that.

For each measured whole model of one fold (`assembly.fold_predictions`: the base fold, the
unscaled and smaller-factor models; the x4 candidates and held-out families are never
fitted on), the residual is

    r = log(measured / (scale_-i x predicted)),

where `scale_-i` is the whole-model scale (`assembly.scale_of`) fitted without that model,
so the residual is out of sample for every number the prediction uses (the scale of the
model's op mix, `assembly.op_mix`). The interval's
half-width (in log) is the split-conformal quantile of |r|: the ceil((n + 1) x coverage)-th
smallest of n, which covers a new model with probability >= `coverage` when it is
exchangeable with the measured ones (Vovk et al.; Lei et al. 2018). With 15 models per
phase and 90 % that is the largest |r|. Quantiles are kept per phase and dtype, per phase
over all dtypes and over everything; a prediction takes the most specific one (a phase
or dtype with too few models for a finite quantile, n < 9 at 90 %, has none).

Two half-widths, because a model whose blocks the profile measured is predicted better
than one that is a sum of ops:
- `blocks`: residuals of the fold predicted as the product predicts it (measured blocks
  used where they exist: for the validation models, all of their blocks; their stem,
  head, loss and optimizer are predicted, so a model's measured share of its step is
  below 1: 0.67-0.78 for the CPU gpt2 models, 0.87-0.99 for RegNetX, a fold median of
  0.77-0.86 per phase);
- `ops`: the same models with none of their own block measurements used (every part its
  calibrated sum of ops, a transformer block and a CNN block's forward pass corrected by
  its measured neighbours of other shapes, `neighbours.py`), still under the whole-model
  scale fitted with blocks, as the product predicts a model the profile never measured;
  never narrower than `blocks`.
A prediction whose measured blocks give a share f of its step time gets
g x q_blocks + (1 - g) x q_ops with g = min(1, f / the fold's median share), a line between
the two calibrated ends. The validation models ran eager in the profile's dtypes: a
compiled or FP8 prediction keeps the per-part interval (`model.assemble`).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from perfmodel.predict.assembly import scale_of

COVERAGE = 0.9
MODEL_KEY = ("model", "phase", "dtype", "batch", "factor", "strategy")


def conformal_quantile(abs_residuals, coverage: float = COVERAGE) -> float:
    """The ceil((n + 1) x coverage)-th smallest of n absolute residuals; inf when n is too
    small for that rank to exist."""
    a = np.sort(np.abs(np.asarray(abs_residuals, dtype=float)))
    a = a[np.isfinite(a)]
    k = math.ceil((len(a) + 1) * coverage)
    return float(a[k - 1]) if 1 <= k <= len(a) else math.inf


def loo_residuals(preds: pd.DataFrame, scale_preds: pd.DataFrame) -> pd.DataFrame:
    """Phase and log(measured / (scale x predicted)) of every row of `preds`, the scale
    fitted on `scale_preds` without the same model (leave one out), for the row's op mix."""
    keys = scale_preds[list(MODEL_KEY)].astype(str).agg("|".join, axis=1)
    phases = scale_preds["phase"].astype(str)
    out = []
    for r, key in zip(preds.itertuples(index=False),
                      preds[list(MODEL_KEY)].astype(str).agg("|".join, axis=1)):
        # only the same phase's models enter that phase's scale
        keep = (keys != key) & (phases == str(r.phase))
        scale = scale_of(scale_preds[keep]).scale(r.phase == "train_step", r.dtype,
                                                  str(getattr(r, "mix", "*")))
        out.append((r.phase, math.log(r.measured_s / (scale * r.pred_s))))
    return pd.DataFrame(out, columns=["phase", "residual"])


@dataclass
class ModelInterval:
    """Log half-widths of whole-model intervals, per '<phase>|<dtype>|<kind>' ('*' pooled)."""

    fold: str = "base"
    coverage: float = COVERAGE
    q: dict = field(default_factory=dict)  # "train_step|float32|blocks" -> log half-width
    n: dict = field(default_factory=dict)  # same keys -> models it is the quantile of
    share: dict = field(default_factory=dict)  # "<phase>|<dtype>" -> median measured share

    def _key(self, phase: str, dtype: str) -> str | None:
        """The most specific '<phase>|<dtype>' with both ends fitted."""
        for key in (f"{phase}|{dtype}", f"{phase}|*", "*|*"):
            if f"{key}|blocks" in self.q and f"{key}|ops" in self.q:
                return key
        return None

    def half_width(self, train: bool, measured_share: float = 1.0,
                   dtype: str = "*") -> float | None:
        """Log half-width for a prediction whose measured blocks give `measured_share` of
        its step time; None when this phase has no calibrated interval.

        The `blocks` end was fitted on models whose measured share is the fold's median
        (the stem, head, loss and optimizer are never measured), so a share is read
        relative to it: that median or more is the `blocks` end, 0 the `ops` end."""
        key = self._key("train_step" if train else "inference", dtype)
        if key is None:
            return None
        qb, qo = self.q[f"{key}|blocks"], self.q[f"{key}|ops"]
        ref = self.share.get(key, 1.0)
        share = max(0.0, float(measured_share))
        f = min(1.0, share / ref) if ref > 0 else (1.0 if share > 0 else 0.0)
        return f * qb + (1.0 - f) * qo

    def ratio(self, train: bool, measured_share: float = 1.0,
              dtype: str = "*") -> tuple[float, float] | None:
        """(lower, upper) multipliers of the predicted value, or None."""
        h = self.half_width(train, measured_share, dtype)
        return None if h is None else (math.exp(-h), math.exp(h))

    def describe(self) -> str:
        if not self.q:
            return "no whole-model interval (too few measured models)"
        pct = lambda q: f"-{100 * -math.expm1(-q):.1f}%/+{100 * math.expm1(q):.1f}%"  # noqa: E731
        parts = []
        keys = sorted({k.rsplit("|", 1)[0] for k in self.q})
        own = [k for k in keys if not k.endswith("|*")]  # per phase and dtype
        for key in own or keys:  # the pooled fallbacks only where nothing more specific is
            b, o = self.q.get(f"{key}|blocks"), self.q.get(f"{key}|ops")
            if b is None or o is None:
                continue
            name = "pooled" if key == "*|*" else key.replace("|*", "").replace("|", " ")
            parts.append(f"{name} {pct(b)} with its blocks measured, {pct(o)} as a sum of ops "
                         f"({self.n[f'{key}|blocks']} models)")
        return (f"whole-model {self.coverage:.0%} interval (conformal, {self.fold} fold): "
                + ", ".join(parts))

    def to_json(self) -> str:
        return json.dumps({"fold": self.fold, "coverage": self.coverage, "q": self.q,
                           "n": self.n, "share": self.share})

    @classmethod
    def from_json(cls, text: str) -> "ModelInterval":
        d = json.loads(text)
        return cls(str(d["fold"]), float(d["coverage"]),
                   {str(k): float(v) for k, v in d["q"].items()},
                   {str(k): int(v) for k, v in d["n"].items()},
                   {str(k): float(v) for k, v in d.get("share", {}).items()})


def _groups(frame: pd.DataFrame):
    """('<phase>|<dtype>' key, row mask) for each phase and dtype, each phase over all
    dtypes, and everything."""
    phase, dtype = frame["phase"].astype(str), frame["dtype"].astype(str)
    for (p, d), _ in frame.groupby(["phase", "dtype"], sort=True):
        yield f"{p}|{d}", ((phase == p) & (dtype == d)).to_numpy()
    for p in sorted(set(phase)):
        yield f"{p}|*", (phase == p).to_numpy()
    yield "*|*", np.ones(len(frame), bool)


def fit_model_interval(blocks: pd.DataFrame, ops: pd.DataFrame, fold: str = "base",
                       coverage: float = COVERAGE) -> ModelInterval:
    """Fit on one fold's `assembly.fold_predictions`: `blocks` as the product predicts
    them, `ops` with no block measurement used (both under the scale fitted on `blocks`
    without the model).
    A sum of ops is never given a narrower interval than measured blocks: q_ops >= q_blocks."""
    out = ModelInterval(fold, coverage)
    for kind, preds in (("blocks", blocks), ("ops", ops)):
        if preds is None or not len(preds):
            continue
        res = loo_residuals(preds, blocks)
        for key, mask in _groups(preds):
            r = res["residual"].to_numpy()[mask]
            r = r[np.isfinite(r)]
            q = conformal_quantile(r, coverage)
            if math.isfinite(q):
                out.q[f"{key}|{kind}"], out.n[f"{key}|{kind}"] = q, int(len(r))
                if kind == "blocks" and "measured_share" in preds.columns:
                    out.share[key] = float(np.median(preds["measured_share"].to_numpy()[mask]))
    for key in [k for k in out.q if k.endswith("|ops")]:
        b = out.q.get(key[:-len("ops")] + "blocks")
        if b is not None:
            out.q[key] = max(out.q[key], b)
    return out
