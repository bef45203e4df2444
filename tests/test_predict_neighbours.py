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
    assert ratio < 0.95  # the measured GPT blocks near it ran faster than their calibrated sum
    others = lambda p: p.by_module[p.by_module["group"] != "transformer_block"]  # noqa: E731
    assert others(with_nb)["time_s"].sum() == pytest.approx(others(without)["time_s"].sum())
    gpt = dict(n_layers=4, d_model=256, n_heads=4, d_ff=1024, seq_len=128, vocab_size=4096)
    g1 = predict_model("gpt2", device=amd, overrides=gpt, **kw)
    g0 = predict_model("gpt2", device=bare, overrides=gpt, **kw)
    assert g1.measured_parts > 0 and g1.time.value == pytest.approx(g0.time.value)
    assert Calibration().residuals == []
