"""Whole-model prediction intervals, calibrated on the profile's measured whole models.

A whole-model prediction sums many parts. Their per-part intervals (the block
calibration's residual quantiles, or learned per-op intervals summed bound by bound) say
how far one part can be off, and the parts' errors partly cancel: on the shipped CPU
profiles those intervals ran from -22 % to +46 % around predictions whose measured error
was 2-6 %. What a user needs is how far a *whole model* can be off, and the profile's
`validation` suite measures exactly that.

For each measured whole model of one fold (`assembly.fold_predictions`: the unscaled and
x2 models; the x4 candidates are never fitted on), the residual is

    r = log(measured / (scale_-i x predicted)),

where `scale_-i` is the whole-model scale (`assembly.scale_of`) fitted without that model,
so the residual is out of sample for every number the prediction uses. The interval's
half-width (in log) is the split-conformal quantile of |r|: the ceil((n + 1) x coverage)-th
smallest of n, which covers a new model with probability >= `coverage` when it is
exchangeable with the measured ones (Vovk et al.; Lei et al. 2018). With 15 models per
phase and 90 % that is the largest |r|.

Two half-widths per phase, because a model whose blocks the profile measured is predicted
better than one that is a sum of ops:
- `blocks`: residuals of the fold predicted as the product predicts it (measured blocks
  used where they exist: for the validation models, all of them);
- `ops`: the same models with no block measurement used (every part its calibrated sum of
  ops), still under the whole-model scale fitted with blocks, as the product predicts a
  model the profile never measured.
A prediction whose measured blocks make up a share f of its parts' time gets
f x q_blocks + (1 - f) x q_ops, a line between the two calibrated ends. A phase with too
few models for a finite quantile at this coverage (n < 9 at 90 %) uses the quantile pooled
over phases.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from perfmodel.predict.assembly import scale_of

COVERAGE = 0.9
KINDS = ("blocks", "ops")
PHASES = ("train_step", "inference")
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
    fitted on `scale_preds` without the same model (leave one out)."""
    keys = scale_preds[list(MODEL_KEY)].astype(str).agg("|".join, axis=1)
    out = []
    for r, key in zip(preds.itertuples(index=False),
                      preds[list(MODEL_KEY)].astype(str).agg("|".join, axis=1)):
        scale = scale_of(scale_preds[keys != key]).scale(r.phase == "train_step", r.dtype)
        out.append((r.phase, math.log(r.measured_s / (scale * r.pred_s))))
    return pd.DataFrame(out, columns=["phase", "residual"])


@dataclass
class ModelInterval:
    """Log half-widths of whole-model intervals, per '<phase>|<kind>' ('*' pooled)."""

    fold: str = "base"
    coverage: float = COVERAGE
    q: dict = field(default_factory=dict)  # "train_step|blocks" -> log half-width
    n: dict = field(default_factory=dict)  # same keys -> models it is the quantile of

    def _get(self, phase: str, kind: str) -> float | None:
        for key in (f"{phase}|{kind}", f"*|{kind}"):
            if key in self.q:
                return float(self.q[key])
        return None

    def half_width(self, train: bool, measured_share: float = 1.0) -> float | None:
        """Log half-width for a prediction whose measured blocks make up `measured_share`
        of its parts' time; None when this phase has no calibrated interval."""
        phase = "train_step" if train else "inference"
        qb, qo = self._get(phase, "blocks"), self._get(phase, "ops")
        if qb is None or qo is None:
            return None
        f = min(1.0, max(0.0, float(measured_share)))
        return f * qb + (1.0 - f) * qo

    def ratio(self, train: bool, measured_share: float = 1.0) -> tuple[float, float] | None:
        """(lower, upper) multipliers of the predicted value, or None."""
        h = self.half_width(train, measured_share)
        return None if h is None else (math.exp(-h), math.exp(h))

    def describe(self) -> str:
        if not self.q:
            return "no whole-model interval (too few measured models)"
        parts = []
        for phase in PHASES + ("*",):
            b, o = self.q.get(f"{phase}|blocks"), self.q.get(f"{phase}|ops")
            if b is None or o is None:
                continue
            name = "pooled" if phase == "*" else phase
            parts.append(f"{name} +-{100 * math.expm1(b):.1f}% with its blocks measured, "
                         f"+-{100 * math.expm1(o):.1f}% as a sum of ops "
                         f"({self.n[f'{phase}|blocks']} models)")
        return (f"whole-model {self.coverage:.0%} interval (conformal, {self.fold} fold): "
                + ", ".join(parts))

    def to_json(self) -> str:
        return json.dumps({"fold": self.fold, "coverage": self.coverage, "q": self.q,
                           "n": self.n})

    @classmethod
    def from_json(cls, text: str) -> "ModelInterval":
        d = json.loads(text)
        return cls(str(d["fold"]), float(d["coverage"]),
                   {str(k): float(v) for k, v in d["q"].items()},
                   {str(k): int(v) for k, v in d["n"].items()})


def fit_model_interval(blocks: pd.DataFrame, ops: pd.DataFrame, fold: str = "base",
                       coverage: float = COVERAGE) -> ModelInterval:
    """Fit on one fold's `assembly.fold_predictions`: `blocks` as the product predicts
    them, `ops` with no block measurement used (both under the scale fitted on `blocks`)."""
    out = ModelInterval(fold, coverage)
    for kind, preds in (("blocks", blocks), ("ops", ops)):
        if preds is None or not len(preds):
            continue
        res = loo_residuals(preds, blocks)
        groups = [(p, res[res["phase"] == p]["residual"]) for p in PHASES]
        groups.append(("*", res["residual"]))
        for phase, r in groups:
            q = conformal_quantile(r, coverage)
            if math.isfinite(q):
                out.q[f"{phase}|{kind}"], out.n[f"{phase}|{kind}"] = q, int(len(r))
    return out
