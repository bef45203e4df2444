"""Unmeasured transformer blocks take their measured neighbours' residuals."""
from __future__ import annotations

import dataclasses
import math

import pytest

from perfmodel.predict.calibration import Calibration, Calibrations
from perfmodel.predict.neighbours import K, neighbour_scale, transformer_dims


def _entry(d, seq, batch, phase, r):
    key = ["transformer", d, seq, batch, "float32", phase]
    return [list(transformer_dims(d, seq, batch)), phase, key, r]


def test_nearest_within_the_radius_weighted_by_distance():
    table = [_entry(512, 128, 4, "fwd_bwd", math.log(0.8)),
             _entry(256, 128, 4, "fwd_bwd", math.log(0.9)),
             _entry(4096, 128, 4, "fwd_bwd", math.log(3.0)),  # 3 octaves away: ignored
             _entry(512, 128, 4, "fwd", math.log(2.0))]  # another phase: ignored
    at = transformer_dims(512, 128, 4)
    # the exact shape (distance 0, weight 1) and one an octave away (weight 1/2)
    want = math.exp((math.log(0.8) + 0.5 * math.log(0.9)) / 1.5)
    assert neighbour_scale(table, at, "fwd_bwd") == pytest.approx(want)
    # the part's own measured block is never its neighbour
    own = ["transformer", 512, 128, 4, "float32", "fwd_bwd"]
    assert neighbour_scale(table, at, "fwd_bwd", exclude=own) == pytest.approx(0.9)
    assert neighbour_scale(table, transformer_dims(64, 128, 4), "fwd_bwd") == 1.0  # none near
    assert neighbour_scale([], at, "fwd_bwd") == 1.0 and neighbour_scale(table, None, "fwd") == 1.0
    many = [_entry(512, 128, 4, "fwd", math.log(1 + i / 10)) for i in range(K + 3)]
    assert neighbour_scale(many, at, "fwd") == pytest.approx(
        math.exp(sum(math.log(1 + i / 10) for i in range(K)) / K))  # the K nearest


@pytest.fixture(scope="module")
def amd(shipped_profile_cache):
    from perfmodel.predict.device import datasets_dir, from_profile

    prof = datasets_dir() / "cpu-amd-epyc"
    if not (prof / "measurements.parquet").is_file():
        pytest.skip("no AMD CPU profile under datasets/")
    mp = pytest.MonkeyPatch()
    mp.setenv("PERFMODEL_CACHE", str(shipped_profile_cache))
    yield from_profile(prof)
    mp.undo()


def test_the_profile_keeps_its_transformer_blocks_residuals(amd):
    table = amd.calibration.get("float32").residuals
    assert len(table) > 50
    assert {e[2][0] for e in table} == {"transformer"} and {e[1] for e in table} == {"fwd", "fwd_bwd"}
    back = Calibrations.from_json(amd.calibration.to_json()).get("float32").residuals
    assert back == table


def test_an_unmeasured_block_is_scaled_and_a_measured_one_is_not(amd):
    from perfmodel.predict.model import predict_model

    llama = dict(n_layers=4, d_model=256, n_heads=4, n_kv_heads=2, d_ff=688, seq_len=128,
                 vocab_size=4096)
    bare = dataclasses.replace(amd, calibration=Calibrations(
        {k: dataclasses.replace(c, residuals=[]) for k, c in amd.calibration.by_dtype.items()},
        amd.calibration.pooled), _parts={})
    kw = dict(batch=4, dtype="float32", train=True, factor=4.0, strategy="w")
    with_nb = predict_model("Llama-3-8B", device=amd, overrides=llama, **kw)
    without = predict_model("Llama-3-8B", device=bare, overrides=llama, **kw)
    blocks = lambda p: p.by_module[p.by_module["group"] == "transformer_block"]  # noqa: E731
    ratio = blocks(with_nb)["time_s"].sum() / blocks(without)["time_s"].sum()
    # every block of the candidate has one shape: the blocks' time moves by exactly its
    # neighbours' correction, and that correction is a real one (AMD profile of
    # 2026-12-01: x0.962; of 2026-11-23: x0.864)
    from perfmodel.predict.model import prepare

    prep = prepare("Llama-3-8B", overrides=llama, **kw)
    part = next(p for p in prep.parts if p.group == "transformer_block")
    scale = amd.neighbour_scale(part, 4, "float32", True)
    assert ratio == pytest.approx(scale, rel=1e-9) and abs(math.log(scale)) > 0.02
    others = lambda p: p.by_module[p.by_module["group"] != "transformer_block"]  # noqa: E731
    assert others(with_nb)["time_s"].sum() == pytest.approx(others(without)["time_s"].sum())
    gpt = dict(n_layers=4, d_model=256, n_heads=4, d_ff=1024, seq_len=128, vocab_size=4096)
    g1 = predict_model("gpt2", device=amd, overrides=gpt, **kw)
    g0 = predict_model("gpt2", device=bare, overrides=gpt, **kw)
    assert g1.measured_parts > 0 and g1.time.value == pytest.approx(g0.time.value)
    assert Calibration().residuals == []


def test_only_neighbours_of_the_same_dtype():
    table = [_entry(512, 128, 4, "fwd", math.log(0.8)),
             [list(transformer_dims(512, 128, 4)), "fwd",
              ["transformer", 512, 128, 4, "bfloat16", "fwd"], math.log(2.0)]]
    at = transformer_dims(512, 128, 4)
    assert neighbour_scale(table, at, "fwd", dtype="float32") == pytest.approx(0.8)
    assert neighbour_scale(table, at, "fwd", dtype="bfloat16") == pytest.approx(2.0)


def test_calibration_keeps_power_per_dtype_and_residuals_of_each(monkeypatch):
    """A profile with energy: each dtype with enough blocks keeps its own power; a dtype
    with too few is priced by the pooled calibration, which then holds its residuals."""
    import json

    import numpy as np
    import pandas as pd

    from perfmodel.predict import device as device_mod

    def fake_ops(row):
        p = json.loads(row["params"])
        return pd.DataFrame({"op": ["linear"], "phase": ["fwd"], "dtype": [row["dtype"]],
                             "t": [p["d_model"] * 1e-5]})

    class Times:
        def predict(self, ops):
            return pd.DataFrame({"time_s": ops["t"].to_numpy()})

    monkeypatch.setattr(device_mod, "block_ops", fake_ops)
    rows = []
    for dtype, n, watts in (("bfloat16", 20, 100.0), ("float32", 5, 300.0)):
        for i in range(n):
            d = 64 * (i + 1)
            t = d * 1e-5 * (1.1 + 0.01 * (i % 3))
            rows.append({"op": "transformer_block", "phase": "fwd", "dtype": dtype,
                         "params": json.dumps({"batch": 4, "seq_q": 128, "seq_k": 128,
                                               "d_model": d}),
                         "time_s": t, "energy_j": watts * t})
    cal = device_mod.calibrate_on_blocks(pd.DataFrame(rows), Times())
    assert set(cal.by_dtype) == {"bfloat16"}
    assert cal.by_dtype["bfloat16"].power_w == pytest.approx(100.0)
    assert cal.pooled.power_w == pytest.approx(100.0)  # the median over all 25 blocks
    assert len(cal.by_dtype["bfloat16"].residuals) == 20
    assert len(cal.pooled.residuals) == 5  # float32 has no calibration of its own
    assert all(e[2][4] == "float32" for e in cal.pooled.residuals)
    assert np.isfinite([e[3] for e in cal.pooled.residuals]).all()
