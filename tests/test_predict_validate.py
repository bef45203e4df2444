"""Validation against the shipped CPU profile (skipped until one is in datasets/)."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from perfmodel.predict import device as device_mod
from perfmodel.predict.device import datasets_dir, from_profile
from perfmodel.predict.validate import spearman, summarize, validate


def shipped_cpu_profile():
    root = datasets_dir()
    for meta in sorted(root.glob("*/metadata.json")) if root.is_dir() else []:
        m = json.loads(meta.read_text())
        rows = meta.parent / "measurements.parquet"
        if m.get("catalogue_key") == "cpu" and rows.is_file():
            suites = set(pd.read_parquet(rows, columns=["suite"])["suite"])
            if {"blocks", "validation"} <= suites:
                return meta.parent
    return None


@pytest.fixture(scope="module")
def small_profile(tmp_path_factory):
    """A slice of the shipped CPU profile: 160 float32 block rows and a few whole models
    (no per-op suites: roofline per op), with its own prediction cache."""
    prof = shipped_cpu_profile()
    if prof is None:
        pytest.skip("no CPU profile with blocks and validation suites under datasets/")
    root = tmp_path_factory.mktemp("validate")
    mp = pytest.MonkeyPatch()
    mp.setenv("PERFMODEL_CACHE", str(root / "cache"))
    device_mod._BACKENDS.clear()
    out = root / "prof"
    out.mkdir()
    shutil.copy(prof / "metadata.json", out / "metadata.json")
    df = pd.read_parquet(prof / "measurements.parquet")
    blocks = df[(df["suite"] == "blocks") & (df["dtype"] == "float32")]
    blocks = blocks.sample(n=min(160, len(blocks)), random_state=0)
    val = df[(df["suite"] == "validation") & (df["phase"] == "train_step")]
    keep = val.groupby("op").head(3)  # a few models per family keep the test fast
    pd.concat([blocks, keep]).to_parquet(out / "measurements.parquet")
    yield out
    device_mod._BACKENDS.clear()
    mp.undo()


def test_validate_reports_errors_on_the_shipped_profile(small_profile):
    rep = validate(small_profile, phases=("train_step",))
    t = rep.table
    assert len(t) >= 2 and set(t["phase"]) == {"train_step"}
    assert np.allclose(t["error"], t["pred_s"] / t["measured_s"] - 1)
    assert (t["pred_s"] > 0).all() and t["source"].str.contains("blocks").all()
    text = rep.format()
    assert "median |err|" in text and "calibrated on" in text


def test_validation_rows_never_enter_the_calibration(small_profile, monkeypatch):
    seen = []
    real = device_mod._cached_calibration

    def spy(blocks, optimes, digest):
        seen.append(set(blocks["suite"]))
        return real(blocks, optimes, digest)

    monkeypatch.setattr(device_mod, "_cached_calibration", spy)
    b = from_profile(small_profile)
    assert seen == [{"blocks"}]  # only the blocks suite calibrates; validation is evaluated
    assert b.calibration.calibrated and b.calibration.rows >= 12


def test_summary_metrics_by_hand():
    t = pd.DataFrame({"profile": "p", "model": "m", "phase": "train_step", "batch": 1,
                      "dtype": "float32", "measured_s": [1.0, 2.0, 3.0, 4.0],
                      "pred_s": [1.1, 1.9, 3.5, 3.9], "error": [0.1, -0.05, 1 / 6, -0.025],
                      "in_interval": [True, True, False, True]})
    s = summarize(t).iloc[0]
    assert s["candidates"] == 4 and s["top1"] and s["spearman"] == pytest.approx(1.0)
    assert s["median_abs_error"] == pytest.approx(np.median([0.1, 0.05, 1 / 6, 0.025]))
    assert s["coverage"] == pytest.approx(0.75)
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    # a row without a two-sided interval (a roofline's [lo, -]) claims no coverage
    one_sided = t.assign(in_interval=[1.0, float("nan"), 0.0, float("nan")])
    assert summarize(one_sided).iloc[0]["coverage"] == pytest.approx(0.5)
    none = summarize(t.assign(in_interval=float("nan"))).iloc[0]["coverage"]
    assert np.isnan(none)


def test_device_name_uses_the_matching_shipped_profile(small_profile, tmp_path, monkeypatch):
    from perfmodel.predict import resolve_backend

    root = tmp_path / "datasets"
    root.mkdir()
    shutil.copytree(small_profile, root / "cpu-test")  # same measurements: cached calibration
    monkeypatch.setenv("PERFMODEL_DATASETS", str(root))
    device_mod._BACKENDS.clear()
    b = resolve_backend("cpu")
    assert b.kind == "profile" and "shipped profile" in b.description
    assert str(root / "cpu-test") in b.description and b.calibration.calibrated
    device_mod._BACKENDS.clear()
    assert resolve_backend("h100").kind == "roofline"  # no GPU profile shipped here


def test_discordant_pairs_ignore_measured_ties_within_the_noise():
    from perfmodel.predict.validate import discordant_pairs

    measured = [1.00, 1.01, 1.50]
    predicted = [1.05, 1.00, 1.40]  # swaps the first two (a tie in the noise) only
    assert discordant_pairs(measured, predicted, [0.02, 0.02, 0.02]) == (0, 2)
    assert discordant_pairs(measured, predicted, [0.0, 0.0, 0.0]) == (1, 3)
    assert discordant_pairs(measured, [1.6, 1.5, 1.0], [float("nan")] * 3) == (3, 3)


def test_measured_time_is_the_center_of_all_measurements():
    from perfmodel.predict.measured import center_time

    assert center_time({"time_s": 1.0, "time_repeat_s": 1.3, "time_center_s": 1.2}) == 1.2
    # schema 2: no center, the mean of the first and the repeat median
    assert center_time({"time_s": 1.0, "time_repeat_s": 1.2}) == pytest.approx(1.1)
    assert center_time({"time_s": 1.0, "time_repeat_s": 1.2,
                        "time_center_s": float("nan")}) == pytest.approx(1.1)
    assert center_time({"time_s": 1.0, "time_repeat_s": float("nan")}) == 1.0
    assert center_time({"time_s": 1.0}) == 1.0


def test_per_op_rows_are_fitted_on_their_center_time():
    """The per-op predictor learns each point's median over its measurements: the
    vectorised `center_times` agrees with `center_time` row by row, on the shipped profile
    too; a row with energy but no power keeps the power of its first measurement."""
    from pathlib import Path

    from perfmodel.predict.measured import center_time, center_times, with_center_times

    df = pd.DataFrame({"time_s": [1.0, 1.0, 1.0, 2.0], "time_repeat_s": [1.3, 1.2, np.nan, np.nan],
                       "time_center_s": [1.2, np.nan, np.nan, np.nan],
                       "energy_j": [np.nan, np.nan, 5.0, np.nan],
                       "power_w": [np.nan, 9.0, np.nan, np.nan]})
    assert center_times(df).tolist() == pytest.approx([1.2, 1.1, 1.0, 2.0])
    out = with_center_times(df)
    assert out["time_s"].tolist() == pytest.approx([1.2, 1.1, 1.0, 2.0])
    assert out["power_w"].tolist()[1:3] == [9.0, 5.0] and np.isnan(out["power_w"].iloc[0])
    assert df["time_s"].tolist() == [1.0, 1.0, 1.0, 2.0]  # the input is left alone
    root = Path(__file__).resolve().parents[1]
    shipped = pd.read_parquet(root / "datasets" / "cpu-amd-epyc" / "measurements.parquet")
    rows = shipped[shipped["repeats"].fillna(0) > 0].head(200)
    assert (center_times(rows) != rows["time_s"]).any()
    assert center_times(rows).tolist() == pytest.approx([center_time(r) for _, r in rows.iterrows()])


def test_ties_scored_on_the_x4_candidates_with_the_base_fold_gap():
    """`validate` scores the rank resolution (as `rank` uses it) on the x4 candidates."""
    from perfmodel.predict.resolution import RankResolution
    from perfmodel.predict.validate import ValidationReport

    rows = [  # strategy, factor, measured, predicted
        ("", 1.0, 1.0, 1.0), ("w", 2.0, 1.5, 1.4),  # base fold: not scored
        ("d", 4.0, 2.0, 2.05), ("w", 4.0, 2.1, 2.0), ("r", 4.0, 3.0, 3.3)]
    t = pd.DataFrame([{"profile": "p", "model": "m", "phase": "train_step", "batch": 8,
                       "dtype": "float32", "factor": f, "strategy": s, "measured_s": ms,
                       "pred_s": ps, "pred_lo_s": ps, "pred_hi_s": ps, "error": ps / ms - 1,
                       "in_interval": True, "measured_parts": 0, "block_parts": 0,
                       "measured_act_bytes": np.nan, "pred_act_bytes": np.nan,
                       "measured_energy_j": np.nan, "pred_energy_j": np.nan}
                      for s, f, ms, ps in rows])
    res = RankResolution("base", {"train_step": float(np.log(1.10))}, {"train_step": 12})
    rep = ValidationReport(t, summarize(t), {"p": "desc"}, {"p": res})
    ties = rep.ties()
    assert len(ties) == 1
    r = ties.iloc[0]
    # d and w are 2.5% apart (tied); r is apart from both and slower, as measured
    assert (r["pairs"], r["apart"], r["ordered"]) == (3, 2, 2)
    assert r["tie_gap"] == pytest.approx(0.10)
    assert r["fastest_tied"] and r["leader_ties"] == "m: d,w"
    assert "within 10.0% tied; pairs predicted apart 2/3" in rep.format()
    assert rep.to_records()["ties"][0]["apart"] == 2


def test_against_another_run_scores_the_shipped_predictions(small_profile, tmp_path, capsys):
    """`validate --against`: a re-measured run (here the same models 25 % slower, as on a
    slow day) is scored with the profile's predictions as `step` makes them."""
    from perfmodel.cli import main
    from perfmodel.errors import PerfmodelError
    from perfmodel.predict.assembly import model_args
    from perfmodel.predict.model import predict_model

    df = pd.read_parquet(small_profile / "measurements.parquet")
    val = df[df["suite"] == "validation"].copy()
    for c in [c for c in val.columns if c.startswith("time_")]:
        val[c] = val[c] * 1.25
    other = tmp_path / "rerun"
    other.mkdir()
    shutil.copy(small_profile / "metadata.json", other / "metadata.json")
    val.to_parquet(other / "measurements.parquet")

    same_dir = tmp_path / "same"
    same_dir.mkdir()
    shutil.copy(small_profile / "metadata.json", same_dir / "metadata.json")
    shutil.copy(small_profile / "measurements.parquet", same_dir / "measurements.parquet")
    rep = validate(small_profile, against=same_dir)
    assert "not a test on unseen data" in rep.format()  # the profile's own run, copied
    same = rep.table
    slow = validate(small_profile, against=other).table
    assert len(slow) == len(val) and (slow["profile"] == "rerun").all()
    assert np.allclose(slow["pred_s"], same["pred_s"])
    assert np.allclose((1 + slow["error"]) * 1.25, 1 + same["error"])
    # the prediction is the shipped one: `perfmodel step` gives the same number
    a = model_args(val.iloc[0])
    shipped = from_profile(small_profile)
    step = predict_model(a.pop("model"), a.pop("batch"), device=shipped, **a)
    assert slow["pred_s"].iloc[0] == pytest.approx(step.time.value)
    assert slow["pred_lo_s"].iloc[0] == pytest.approx(step.time.lo)

    bare = validate(small_profile, against=other, assembly=False)
    assert "no whole-model scale, per-part interval" in bare.format()
    with pytest.raises(PerfmodelError, match="is the profile itself"):
        validate(small_profile, against=small_profile)
    meta = json.loads((other / "metadata.json").read_text())
    (other / "metadata.json").write_text(json.dumps({**meta, "created": None}))
    text = validate(small_profile, against=other).format()
    assert "which no fit saw" in text and "allocator" not in text
    (other / "metadata.json").write_text(json.dumps(
        {**meta, "cpu_allocator": {"allocator": "glibc 2.36", "pinned": True}}))
    assert "different C allocator settings" in validate(small_profile, against=other).format()
    (other / "metadata.json").write_text(json.dumps({**meta, "device_name": "Other CPU"}))
    with pytest.raises(PerfmodelError, match="device_name 'Other CPU'"):
        validate(small_profile, against=other)
    assert main(["validate", "--against", str(other)]) == 2
    assert "--against needs --profile" in capsys.readouterr().err


def test_first_use_of_a_profile_says_it_is_fitting(tmp_path, monkeypatch, capsys):
    """Fitting a profile's per-op predictor takes about a minute on a laptop: the first use
    says so on stderr, in one line; a cached profile says nothing."""
    prof = shipped_cpu_profile()
    if prof is None:
        pytest.skip("no CPU profile under datasets/")
    df = pd.read_parquet(prof / "measurements.parquet")
    small = tmp_path / "small"
    small.mkdir()
    shutil.copy(prof / "metadata.json", small / "metadata.json")
    pd.concat([df[df["suite"] == "gemm"].head(80),
               df[df["suite"] == "blocks"].head(20)]).to_parquet(small / "measurements.parquet")
    monkeypatch.setenv("PERFMODEL_CACHE", str(tmp_path / "cache"))
    capsys.readouterr()
    b = from_profile(small)
    err = capsys.readouterr().err
    assert b.optimes.source.startswith("learned")
    assert err.count("\n") == 1 and err.startswith(f"perfmodel: first use of {small}: fitting")
    assert "80 + 20 measurements" in err
    from_profile(small)
    assert capsys.readouterr().err == ""


def test_the_text_report_has_one_section_per_profile():
    """Two profiles' rows are printed apart, each with its own summary lines and the base
    parameters its suite changed, not interleaved and pooled."""
    from perfmodel.predict.validate import ValidationReport, summarize

    def row(prof, model, err, over=""):
        return dict(profile=prof, model=model, phase="train_step", dtype="float32", batch=8,
                    factor=4.0, strategy="w", overrides=over, measured_s=1.0,
                    measured_noise_s=0.01, pred_s=1.0 + err, pred_lo_s=0.9, pred_hi_s=1.2,
                    error=err, in_interval=True, measured_energy_j=float("nan"),
                    pred_energy_j=float("nan"), measured_act_bytes=float("nan"),
                    pred_act_bytes=float("nan"), source="learned", measured_parts=1,
                    block_parts=1, assembly_scale=1.0, op_mix="conv", measured_share=1.0)

    t = pd.DataFrame([row("a", "RegNetX-400MF", 0.02, '{"resolution": 64}'),
                      row("a", "RegNetX-400MF", -0.04, '{"resolution": 64}'),
                      row("b", "RegNetX-400MF", 0.10)])
    text = ValidationReport(t, summarize(t), {"/x/a": "desc a", "/x/b": "desc b"}).format()
    a, b = text.split("\nprofile b: desc b\n")
    assert a.startswith("profile a: desc a") and "RegNetX-400MF as measured: resolution=64" in a
    assert "all: 2 measurements, median |error| 3.0%" in a
    assert "all: 1 measurements, median |error| 10.0%" in b and "as measured" not in b
