"""The whole-model scale: fitted on one fold of the validation suite, applied where it
stands out of its noise, and never scored on the rows it was fitted on."""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from perfmodel.predict import assembly
from perfmodel.predict.assembly import AssemblyScale, fit_assembly, fold_of, row_factor
from perfmodel.predict.device import from_profile, read_profile_rows
from perfmodel.predict.model import predict_model
from perfmodel.predict.validate import validate


def test_scale_lookup_falls_back_to_the_phase_then_one():
    a = AssemblyScale("base", {"train_step|float32": 1.1, "train_step|*": 1.05},
                      {"train_step|float32": 15, "train_step|*": 15, "inference|float32": 15},
                      {"train_step|float32": 1.1, "train_step|*": 1.05,
                       "inference|float32": 1.02}, {"train_step|float32": 3.0,
                                                    "train_step|*": 2.5,
                                                    "inference|float32": 0.4})
    assert a.scale(True, "float32") == 1.1
    assert a.scale(True, "bfloat16") == 1.05  # no own scale: the phase's over all dtypes
    assert a.scale(False, "float32") == 1.0  # fitted but within its noise: not applied
    assert "not applied" in a.describe() and "x1.100" in a.describe()
    assert AssemblyScale.from_json(a.to_json()) == a


def test_folds_split_the_suite_by_factor():
    assert [fold_of(f) for f in (1.0, 2.0, 4.0, 8.0)] == ["base", "base", "x4", "x4"]
    row = {"op": "gpt2", "phase": "train_step", "dtype": "float32",
           "params": '{"batch": 4, "factor": 4.0, "strategy": ""}'}
    assert row_factor(row) == 1.0  # no strategy: the unscaled base, whatever factor says


def test_the_held_out_family_is_in_no_fold_and_not_a_target():
    from perfmodel.predict.assembly import row_fold
    from perfmodel.predict.targets import HELD_OUT_BASE, held_out_rows, target_rows

    def row(model, factor, strategy):
        return {"op": model, "phase": "train_step", "dtype": "float32",
                "params": f'{{"batch": 4, "factor": {factor}, "strategy": "{strategy}"}}'}

    assert row_fold(row("gpt2", 2.0, "w")) == "base" and row_fold(row("gpt2", 4.0, "w")) == "x4"
    assert row_fold(row(HELD_OUT_BASE, 1.0, "")) == "held_out"
    assert row_fold(row(HELD_OUT_BASE, 4.0, "w")) == "held_out"
    table = pd.DataFrame({"model": ["gpt2", HELD_OUT_BASE, HELD_OUT_BASE],
                          "phase": "train_step", "factor": [4.0, 4.0, 1.0],
                          "strategy": ["w", "w", ""]})
    assert list(target_rows(table)["model"]) == ["gpt2"]
    assert list(held_out_rows(table)["model"]) == [HELD_OUT_BASE]


class _Backend:
    """Stands in for a backend: `predict_model` is replaced by one that reads this."""


def test_fit_takes_the_median_ratio_of_its_fold_and_tests_it(monkeypatch):
    rows, preds = [], {}
    for i, (factor, strat) in enumerate([(1.0, ""), (2.0, "d"), (2.0, "w"), (2.0, "s"),
                                         (4.0, "d"), (4.0, "w")]):
        r = 1.10 + 0.01 * (i % 3 - 1) if factor < 4 else 3.0  # x4 rows must not count
        rows.append({"op": "gpt2", "phase": "train_step", "dtype": "float32",
                     "time_s": r, "time_center_s": r,
                     "params": f'{{"batch": 4, "factor": {factor}, "strategy": "{strat}"}}'})
        preds[(factor if strat else 1.0, strat or None)] = 1.0

    class P:
        def __init__(self, v):
            self.time = type("E", (), {"value": v})()
            self.measured_share = 0.0

    def fake_predict(model, batch, *, device, factor, strategy, **kw):
        return P(preds[(factor, strategy)])

    monkeypatch.setattr("perfmodel.predict.model.predict_model", fake_predict)
    fit = fit_assembly(_Backend(), pd.DataFrame(rows), "base")
    assert fit.rows["train_step|float32"] == 4
    assert fit.fitted["train_step|float32"] == pytest.approx(1.10, abs=0.011)
    assert fit.scale(True, "float32") == pytest.approx(1.10, abs=0.011)  # z far above 2
    x4 = fit_assembly(_Backend(), pd.DataFrame(rows), "x4")
    assert x4.rows == {}  # two rows: fewer than MIN_ROWS
    # a scale inside its own scatter is fitted but not applied
    noisy = [dict(r, time_s=v, time_center_s=v)
             for r, v in zip(rows[:4], (0.7, 1.4, 0.9, 1.25))]
    n = fit_assembly(_Backend(), pd.DataFrame(noisy), "base")
    assert abs(n.z["train_step|float32"]) < assembly.MIN_Z
    assert n.scale(True, "float32") == 1.0


def test_predictions_use_the_scale_fitted_on_the_base_fold_only(shipped):
    b = from_profile(shipped)
    val = read_profile_rows(shipped)
    val = val[(val["suite"] == "validation") & (val["phase"] == "train_step")]
    n_base = sum(assembly.row_fold(r) == "base" for _, r in val.iterrows())
    assert b.assembly.fold == "base" and b.assembly.rows["train_step|float32"] == n_base
    assert "whole-model scale" in b.description
    raw = dataclasses.replace(b, assembly=None)
    kw = dict(batch=8, dtype="float32", train=True, factor=4.0, strategy="w",
              overrides={"resolution": 64})
    with_scale = predict_model("RegNetX-400MF", device=b, **kw)
    without = predict_model("RegNetX-400MF", device=raw, **kw)
    s = b.assembly.scale(True, "float32")
    assert with_scale.assembly_scale == s
    assert with_scale.time.value == pytest.approx(s * without.time.value, rel=1e-9)
    assert with_scale.by_module["time_s"].sum() == pytest.approx(with_scale.time.value, rel=1e-6)


def test_validate_scores_every_row_with_the_other_folds_scale(shipped):
    rep = validate(shipped, phases=("train_step",))
    b = from_profile(shipped)
    t = rep.table
    x4, base = t[t["factor"] >= 4], t[t["factor"] < 4]
    assert len(x4) and len(base)
    assert np.allclose(x4["assembly_scale"], b.assembly.scale(True, "float32"))
    assert "x4 fold" in next(iter(rep.backends.values()))


def test_the_scale_lowers_held_out_training_step_error_on_real_profiles(shipped):
    """On every shipped CPU profile, the x4 candidates' training steps (never fitted on) and
    the base rows (scored with the x4 fold's scale) are closer with the scale than without:
    measured medians 3.3 % vs 3.9 % (AMD EPYC) and 6.4 % vs 9.2 % (Intel Xeon VM)."""
    from perfmodel.predict.device import datasets_dir

    profiles = [p.parent for p in sorted(datasets_dir().glob("cpu-*/metadata.json"))]
    for prof in profiles:
        with_s = validate(prof, phases=("train_step",)).table
        without = validate(prof, phases=("train_step",), assembly=False).table
        e1, e0 = np.median(np.abs(with_s["error"])), np.median(np.abs(without["error"]))
        assert e1 < e0, f"{prof.name}: {e1:.3f} with the scale, {e0:.3f} without"


def test_the_held_out_llama_family_is_scored_with_the_base_fits(shipped):
    """The AMD profile measured a Llama-style family (RMSNorm, SwiGLU, RoPE, GQA) whose
    blocks no suite timed: it enters no fit and is scored as a sum of ops. Measured on
    2026-12-01: inference median |error| 3.2 %, training steps over-predicted by 7.3 %
    (median; 23 % with one vector calibration class and no neighbour correction,
    `perfmodel/predict/neighbours.py`), the x4 training ranking Spearman 1.000 with the
    same fastest candidate."""
    from perfmodel.predict.device import datasets_dir
    from perfmodel.predict.targets import HELD_OUT_BASE, HELD_OUT_MODELS

    found = [p.parent for p in sorted(datasets_dir().glob("cpu-*/metadata.json"))
             if (read_profile_rows(p.parent)["op"].astype(str) == HELD_OUT_BASE).any()]
    if not found:
        pytest.skip("no shipped CPU profile measured the held-out family")
    prof = found[0]
    b = from_profile(prof)
    val = read_profile_rows(prof)
    val = val[val["suite"] == "validation"]
    n_base = sum(assembly.row_fold(r) == "base" for _, r in val.iterrows()
                 if r["phase"] == "train_step")
    assert b.assembly.rows["train_step|float32"] == n_base  # the family fitted nothing
    assert not val[val["op"].isin(HELD_OUT_MODELS)].empty
    t = validate(prof).table
    held = t[t["model"] == HELD_OUT_BASE]
    assert len(held) == 16 and (held["measured_parts"] == 0).all()
    assert np.allclose(held[held["phase"] == "train_step"]["assembly_scale"],
                       b.assembly.scale(True, "float32"))
    infer, train = held[held["phase"] == "inference"], held[held["phase"] == "train_step"]
    assert np.median(np.abs(infer["error"])) <= 0.10
    assert np.median(np.abs(train["error"])) <= 0.12
    x4 = train[train["factor"] >= 4]
    from perfmodel.predict.validate import spearman

    assert spearman(x4["pred_s"], x4["measured_s"]) >= 0.9
    assert x4["measured_s"].idxmin() == x4["pred_s"].idxmin()
