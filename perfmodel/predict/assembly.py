"""Whole-model scale: how much slower a whole model runs than the sum of its parts.

The calibrated sum of ops and the measured blocks describe parts timed in isolation, each
repeated with its own weights and activations warm in cache. In a whole training step
every part finds its data evicted by the parts before it, and the step adds glue that no
part measures (autograd bookkeeping, the allocator returning and faulting in memory). On
a shared cloud CPU this made whole training steps 5-10 % slower than their isolated parts
(Intel Xeon VM: measured / predicted 1.10 in one run, 1.05 over three runs pooled, over
the unscaled and x2 models); on the AMD EPYC VM the parts are slightly pessimistic (0.95;
0.938 in the profile of 2026-12-01).

The scale is fitted per phase, dtype and op mix: the median of measured / predicted over
the profile's measured whole models (`validation` suite) of one fold, at least `MIN_ROWS`
of them. It is applied only where it stands out of its own noise: |log scale| at least
`MIN_Z` standard errors of the median (from the log ratios' MAD); otherwise the parts'
sum stands (AMD inference: 0.985, z 1.1, left at 1; 0.993, z -0.8, in the profile of
2026-12-01).

Op mix (`op_mix`): `conv` where convolutions take more of a model's calibrated forward
time than GEMMs and attention, else `matmul`. The two run differently against their
parts: on the Intel VM profile, conv models' inference was measured at x1.145 their
parts (z 3.2) and the matmul models' at x0.972; one pooled scale left its RegNetX x4
candidates' inference at 11.8 % median error, the conv models' own at 5.6 %.

A prediction takes the most specific fitted scale: its dtype's and op mix's own, else
pooled over dtypes, else over op mixes; 1 where that one is within its noise.

What the scale does not do: correct a model predicted as a sum of ops (no block of it
measured) by what the fold's models show as a sum of ops. On the AMD profile that end
would have been x1.113 (z 9.1) at inference for conv models, and it took the held-out
RegNetY (resolution 64) from 10.1 % to 4.1 % median error; but on the profile's held-out
CNNs at resolution 224 (ResNet-50, RegNetX-200MF, EfficientNet-B0, batch 8) the
calibrated sum of ops is right or slow, not fast, and that end took their median error
from 7.7 % to 12.2 % (RegNetX-200MF inference +8.3 % to +20.6 %, ResNet-50 +0.2 % to
+11.4 %). The sum of ops is fast on the suite's resolution-64 models because 1x1
convolutions on 2x2 and 3x3 maps run at 7-12 GFLOP/s on one thread against 50-97 on
larger ones; a constant cannot carry a resolution-dependent error to other resolutions.

Folds split the suite by scale factor, so a fitted scale is always scored on models it
never saw:

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
MIXES = ("conv", "matmul")


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


def op_mix(x) -> str:
    """`conv` when a model's convolutions take more of its predicted forward time than its
    matrix products (GEMMs and attention), else `matmul`; `x` its calibration features
    weighted by the calibration's coefficients (the calibrated seconds of each class)."""
    from perfmodel.predict.calibration import FEATURES

    f = dict(zip(FEATURES, np.asarray(x, dtype=float)))
    return "conv" if f["conv_fwd"] > f["gemm_fwd"] + f["attention_fwd"] else "matmul"


@dataclass
class AssemblyScale:
    """Measured / predicted whole-model time, fitted on one fold, per
    '<phase>|<dtype>|<mix>' ('*' pooled)."""

    fold: str = "base"
    factors: dict = field(default_factory=dict)  # "train_step|float32|conv" -> applied scale
    rows: dict = field(default_factory=dict)  # same keys -> models fitted on
    fitted: dict = field(default_factory=dict)  # every fitted scale, applied or not
    z: dict = field(default_factory=dict)  # log(scale) / its standard error

    def scale(self, train: bool, dtype: str, mix: str = "*") -> float:
        """The most specific fitted scale: the dtype's and the op mix's own, else pooled
        over dtypes, then over mixes; 1 where it is within its noise or none is fitted.

        Not the pooled scale where the own one is within its noise: the pooled one is set
        by whichever mix stands out (Intel inference: conv x1.145, z 3.2; matmul x0.972,
        z -0.6) and would hand one mix's scale to the other."""
        phase = "train_step" if train else "inference"
        for d, m in ((dtype, mix), ("*", mix), (dtype, "*"), ("*", "*")):
            key = f"{phase}|{d}|{m}"
            if key in self.fitted:
                return float(self.factors.get(key, 1.0))
        return 1.0

    def describe(self) -> str:
        # per phase and dtype: the scale of each op mix, and the pooled one unless both
        # mixes have their own
        own = [k.split("|") for k in self.fitted if k.split("|")[1] != "*"]
        mixes: dict = {}
        for phase, dtype, mix in own:
            mixes.setdefault((phase, dtype), set()).add(mix)
        shown = [k for k in own if k[2] != "*" or not set(MIXES) <= mixes[(k[0], k[1])]]
        if not shown:
            return "no whole-model scale (fewer than 3 measured models per phase)"
        parts = []
        for k in sorted(shown, key=lambda k: (k[0], k[1], k[2] == "*", k[2])):
            key = "|".join(k)
            what = "models" if k[2] == "*" else f"{k[2]} models"
            parts.append(f"{k[0]} {k[1]} {what} x{self.fitted[key]:.3f} "
                         f"({self.rows[key]} models, z {self.z[key]:+.1f}"
                         + ("" if key in self.factors else ", within its noise: not applied")
                         + ")")
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
                      "pred_s", "measured_share", "mix")


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
                        strategy, float(measured), float(pred), float(p.measured_share),
                        str(p.op_mix)))
    return pd.DataFrame(out, columns=list(PREDICTION_COLUMNS))


def fit_assembly(backend, validation: pd.DataFrame, fold: str = "base") -> AssemblyScale:
    """Fit the scale on the `fold` rows of a profile's validation frame.

    `backend` must carry no scale of its own (`assembly=None`): the ratio is measured over
    what the parts alone predict."""
    return scale_of(fold_predictions(backend, validation, fold), fold)


def scale_of(preds: pd.DataFrame, fold: str = "base") -> AssemblyScale:
    """The whole-model scale of one fold's `fold_predictions` (a frame without a `mix`
    column fits the pooled scales only)."""
    ratios: dict[str, list[float]] = {}
    for r in preds.itertuples(index=False):
        if not (r.measured_s > 0 and r.pred_s > 0):
            continue
        mix = str(getattr(r, "mix", "*"))
        for d in dict.fromkeys((str(r.dtype), "*")):
            for m in dict.fromkeys((mix, "*")):
                ratios.setdefault(f"{r.phase}|{d}|{m}", []).append(r.measured_s / r.pred_s)
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
