"""Rank resolution: ties sized on a profile's measured candidates, scored on candidates
the fit never saw."""
from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pandas as pd
import pytest

from perfmodel.predict.device import (cached_fold_predictions, datasets_dir, from_profile,
                                      profile_digest, read_profile_rows)
from perfmodel.predict.rank import rank_candidates
from perfmodel.predict.resolution import (RankResolution, fit_resolution, pair_errors,
                                          rank_bounds, score_ties)


def test_rank_bounds_by_hand():
    lo, hi = rank_bounds([1.0, 1.05, 1.2, 1.5, 1.52], math.log(1.1))
    assert lo.tolist() == [1, 1, 3, 4, 4] and hi.tolist() == [2, 2, 3, 5, 5]
    lo, hi = rank_bounds([1.2, 1.0, 1.0], None)  # no gap: own rank, equal times share it
    assert lo.tolist() == hi.tolist() == [3, 1, 1]


def _preds(errors, phase="train_step"):
    """One ranking of len(errors)+1 candidates whose log errors are 0 and `errors`."""
    rows = [("gpt2", phase, "float32", 4, 2.0, f"s{i}", 1.0 + i, (1.0 + i) * math.exp(e))
            for i, e in enumerate([0.0] + list(errors))]
    return pd.DataFrame(rows, columns=["model", "phase", "dtype", "batch", "factor",
                                       "strategy", "measured_s", "pred_s"])


def test_fit_takes_the_quantile_of_pair_ratio_errors_per_phase():
    errs = [0.01, -0.02, 0.03, 0.0, 0.05]  # 6 candidates, 15 pairs
    train = _preds(errs)
    pairs = pair_errors(train)
    assert len(pairs) == 15
    # an error common to every candidate (the device 30% off) cancels in every pair
    shifted = pair_errors(train.assign(pred_s=train["pred_s"] * math.exp(0.3)))
    assert np.allclose(shifted["error"], pairs["error"])
    res = fit_resolution(pd.concat([train, _preds([0.1, 0.2], "inference")]))
    assert res.gap(True) == pytest.approx(np.quantile(np.abs(pairs["error"]), 0.9))
    assert res.pairs == {"train_step": 15, "*": 18}  # inference: 3 pairs, too few alone
    assert res.gap(False) == res.gaps["*"]  # pooled
    assert RankResolution.from_json(res.to_json()) == res
    assert "tied" in res.describe(True) and RankResolution().gap(True) is None


def test_score_ties_counts_pairs_and_the_leader():
    rows = pd.DataFrame({"model": "m", "dtype": "float32", "batch": 1, "factor": 4.0,
                         "strategy": ["a", "b", "c"], "pred_s": [1.0, 1.02, 1.5],
                         "measured_s": [1.03, 1.0, 1.4]})
    s = score_ties(rows, math.log(1.05))
    assert (s.pairs, s.resolved, s.right) == (3, 2, 2)
    assert s.leader_ties == [["a", "b"]] and s.fastest_tied
    s0 = score_ties(rows, None)
    assert (s0.resolved, s0.right) == (3, 2) and not s0.fastest_tied


def _shipped_cpu_profiles():
    root = datasets_dir()
    out = []
    for meta in sorted(root.glob("*/metadata.json")) if root.is_dir() else []:
        m = json.loads(meta.read_text())
        if m.get("catalogue_key") == "cpu" and (meta.parent / "measurements.parquet").is_file():
            out.append(meta.parent)
    return out


@pytest.mark.parametrize("prof", _shipped_cpu_profiles(), ids=lambda p: p.name)
def test_ties_fitted_on_x1_x2_hold_on_the_x4_candidates(prof):
    """Real data: the gap fitted on the base fold, scored on the x4 candidates (held out):
    pairs predicted apart are ordered as measured (>= 90 %), and each ranking's measured
    fastest is tied with the predicted fastest."""
    backend = from_profile(prof)
    res = backend.resolution
    assert res is not None and res.fold == "base" and res.pairs["train_step"] >= 30
    gap = res.gap(True)
    assert 0 < gap < math.log(1.5)
    rows = read_profile_rows(prof)
    val = rows[rows["suite"].astype(str) == "validation"]
    x4 = cached_fold_predictions(dataclasses.replace(backend, assembly=None), val,
                                 profile_digest(prof, backend.device), "x4")
    x4 = x4[(x4["strategy"] != "") & (x4["phase"] == "train_step")]
    s = score_ties(x4, gap)
    assert s.pairs >= 30 and s.resolved >= 10
    assert s.right >= 0.9 * s.resolved
    assert s.fastest_tied
    # the ranking a user sees carries the same ties
    r = rank_candidates("RegNetX-400MF", 4, ["d", "w", "r"], batch=8, device=prof,
                        overrides={"resolution": 64})
    assert r.tie_gap == gap and "tied" in r.ties
    df = r.to_frame()
    assert ((df["rank_lo"] <= df["rank"]) & (df["rank"] <= df["rank_hi"])).all()
    assert df["rank_lo"].min() == 1
