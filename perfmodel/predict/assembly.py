"""Whole-model scale: how much slower a whole model runs than the sum of its parts.

The calibrated sum of ops and the measured blocks describe parts timed in isolation, each
repeated with its own weights and activations warm in cache. In a whole training step
every part finds its data evicted by the parts before it, and the step adds glue that no
part measures (autograd bookkeeping, the allocator returning and faulting in memory). On
a shared cloud CPU this made whole training steps 5-10 % slower than their isolated parts
(Intel Xeon VM: measured / predicted 1.10 in one run, 1.05 over three runs pooled, over
the unscaled and x2 models); on the AMD EPYC VM the parts are slightly pessimistic (0.95;
0.938 in the profile of 2026-12-01).

The scale is one number per (phase, dtype): the median of measured / predicted over the
profile's measured whole models (`validation` suite) of one fold, at least `MIN_ROWS` of
them. It is applied only where it stands out of its own noise: |log scale| at least
`MIN_Z` standard errors of the median (from the log ratios' MAD); otherwise the parts'
sum stands (AMD inference: 0.985, z 1.1, left at 1; 0.993, z -0.8, in the profile of
2026-12-01). Folds split the suite by scale
factor, so a fitted scale is always scored on models it never saw:

- `base`: the unscaled models and the x2 candidates (factor < `HELD_OUT_FACTOR`). Every
  prediction uses the scale fitted on this fold.
- `x4`: the x4 candidates, a ranking's ground truth (the benchmark's target rows).
  `perfmodel validate` scores the `base` rows with the scale fitted on this fold, and the
  `x4` rows with the one fitted on `base`.
A held-out family (`targets.HELD_OUT_MODELS`, `row_fold`) is in no fold: it is scored
with the `base` fit, like the x4 rows.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

HELD_OUT_FACTOR = 4.0
FOLDS = ("base", "x4")
MIN_ROWS = 3
MIN_Z = 2.0


def fold_of(factor: float) -> str:
    """The fold of a validation model scaled by `factor`."""
    return "x4" if float(factor) >= HELD_OUT_FACTOR else "base"


def row_fold(r) -> str:
    """The fold of a validation-suite row: `held_out` for a family that is only scored
    (`targets.HELD_OUT_MODELS`), else `fold_of` its factor."""
    from perfmodel.predict.targets import HELD_OUT_MODELS

    return "held_out" if str(r["op"]) in HELD_OUT_MODELS else fold_of(row_factor(r))


def other_fold(fold: str) -> str:
    return FOLDS[1 - FOLDS.index(fold)]


@dataclass
class AssemblyScale:
    """Measured / predicted whole-model time per (phase, dtype), fitted on one fold."""

    fold: str = "base"
    factors: dict = field(default_factory=dict)  # "train_step|float32" -> applied scale
    rows: dict = field(default_factory=dict)  # same keys -> models fitted on
    fitted: dict = field(default_factory=dict)  # every fitted scale, applied or not
    z: dict = field(default_factory=dict)  # log(scale) / its standard error

    def scale(self, train: bool, dtype: str) -> float:
        """The scale of a phase and dtype: its own, else the phase's over all dtypes, else 1."""
        phase = "train_step" if train else "inference"
        for key in (f"{phase}|{dtype}", f"{phase}|*"):
            if key in self.factors:
                return float(self.factors[key])
        return 1.0

    def describe(self) -> str:
        own = {k: v for k, v in self.fitted.items() if not k.endswith("|*")}
        if not own:
            return "no whole-model scale (fewer than 3 measured models per phase)"
        parts = [f"{k.replace('|', ' ')} x{v:.3f} ({self.rows[k]} models, z {self.z[k]:+.1f}"
                 + ("" if k in self.factors else ", within its noise: not applied") + ")"
                 for k, v in sorted(own.items())]
        return f"whole-model scale fitted on the {self.fold} validation fold: " + ", ".join(parts)

    def to_json(self) -> str:
        return json.dumps({"fold": self.fold, "factors": self.factors, "rows": self.rows,
                           "fitted": self.fitted, "z": self.z})

    @classmethod
    def from_json(cls, text: str) -> "AssemblyScale":
        d = json.loads(text)
        num = lambda m, f: {str(k): f(v) for k, v in m.items()}  # noqa: E731
        return cls(str(d["fold"]), num(d["factors"], float), num(d["rows"], int),
                   num(d["fitted"], float), num(d["z"], float))


def model_args(r) -> dict:
    """`predict_model` keyword arguments (with `model`) of one validation-suite row."""
    p = json.loads(r["params"]) if isinstance(r.get("params"), str) else {}
    overrides = p.get("overrides", {})
    if isinstance(overrides, str):
        overrides = json.loads(overrides)
    strategy = p.get("strategy") or None
    factor = float(p.get("factor", 1.0))
    return dict(model=str(r["op"]), batch=int(p.get("batch", r.get("batch", 1))),
                dtype=str(r["dtype"]), train=str(r["phase"]) == "train_step",
                factor=factor if strategy else 1.0, strategy=strategy,
                overrides=overrides or {})


def row_factor(r) -> float:
    """The scale factor of a validation row (1 for an unscaled base)."""
    a = model_args(r)
    return float(a["factor"]) if a["strategy"] else 1.0


PREDICTION_COLUMNS = ("model", "phase", "dtype", "batch", "factor", "strategy", "measured_s",
                      "pred_s", "measured_share")


def fold_predictions(backend, validation: pd.DataFrame, fold: str = "base") -> pd.DataFrame:
    """The `fold` rows of a profile's validation frame predicted by `backend` (as it is:
    give it no scale of its own to measure the parts alone), one row per measured model
    (`PREDICTION_COLUMNS`); what the whole-model scale and the rank resolution
    (`perfmodel.predict.resolution`) are fitted on."""
    from perfmodel.predict.measured import center_time
    from perfmodel.predict.model import predict_model

    if fold not in FOLDS:
        raise ValueError(f"unknown fold {fold!r} (one of {', '.join(FOLDS)})")
    out = []
    for _, r in validation.iterrows():
        factor = row_factor(r)
        if row_fold(r) != fold:
            continue
        a = model_args(r)
        measured = center_time(r)
        if not measured > 0:
            continue
        model, batch, strategy = a.pop("model"), a.pop("batch"), a["strategy"] or ""
        p = predict_model(model, batch, device=backend, **a)
        pred = p.time.value
        if pred > 0:
            out.append((model, str(r["phase"]), str(r["dtype"]), int(batch), float(factor),
                        strategy, float(measured), float(pred), float(p.measured_share)))
    return pd.DataFrame(out, columns=list(PREDICTION_COLUMNS))


def fit_assembly(backend, validation: pd.DataFrame, fold: str = "base") -> AssemblyScale:
    """Fit the scale on the `fold` rows of a profile's validation frame.

    `backend` must carry no scale of its own (`assembly=None`): the ratio is measured over
    what the parts alone predict."""
    return scale_of(fold_predictions(backend, validation, fold), fold)


def scale_of(preds: pd.DataFrame, fold: str = "base") -> AssemblyScale:
    """The whole-model scale of one fold's `fold_predictions`."""
    ratios: dict[str, list[float]] = {}
    for r in preds.itertuples(index=False):
        for key in (f"{r.phase}|{r.dtype}", f"{r.phase}|*"):
            ratios.setdefault(key, []).append(r.measured_s / r.pred_s)
    out = AssemblyScale(fold)
    for key, vals in ratios.items():
        if len(vals) < MIN_ROWS:
            continue
        logs = np.log(vals)
        med = float(np.median(logs))
        # standard error of a median: 1.2533 sigma / sqrt(n), sigma from the MAD
        se = 1.2533 * 1.4826 * float(np.median(np.abs(logs - med))) / np.sqrt(len(logs))
        z = med / se if se > 0 else (0.0 if med == 0 else np.sign(med) * np.inf)
        out.fitted[key], out.rows[key], out.z[key] = float(np.exp(med)), len(vals), float(z)
        if abs(z) >= MIN_Z:
            out.factors[key] = float(np.exp(med))
    return out
