"""The blocks suite's Llama-style block (RMSNorm, rotary positions, SwiGLU, grouped-query
attention): its points, how perfmodel keys and counts them, and the neighbour family of a
Llama-style model part."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from perfmodel.models.registry import resolve
from perfmodel.predict.calibration import Calibration, Calibrations
from perfmodel.predict.measured import _row_key, part_block_key, suite_compatible
from perfmodel.predict.neighbours import NeighbourIndex, part_place, transformer_dims
from perfmodel.predict.parts import parts_of
from profilers.device import open_device
from profilers.suites.blocks import (LLAMA_BLOCKS, BlocksSuite, build_block, candidate_blocks,
                                     llama_cfg)
from profilers.suites.validation import CPU, GPU

DATASETS = Path(__file__).resolve().parents[1] / "datasets"


@pytest.fixture(scope="module")
def cpu_points():
    return BlocksSuite().candidates(open_device("cpu"))


@pytest.mark.parametrize("profile", ["cpu-amd-epyc", "cpu-intel-xeon"])
def test_the_llama_grid_leaves_the_measured_points_as_they_were(cpu_points, profile):
    """Every block the shipped profiles measured is still a point of the suite, under the
    same id: a resumed run or `--after` still recognises them."""
    ids = {p.id for p in cpu_points} | {p.id for p in candidate_blocks(open_device("cpu"))}
    rows = pd.read_parquet(DATASETS / profile / "measurements.parquet", columns=["suite", "point_id"])
    measured = rows.loc[rows["suite"] == "blocks", "point_id"]
    assert len(measured) > 1000 and measured.isin(ids).all()


def test_llama_points_are_their_config(cpu_points):
    llama = [p for p in cpu_points if p.op in LLAMA_BLOCKS]
    assert len(llama) > 100
    assert {p.phase for p in llama} == {"fwd", "fwd_bwd"}
    assert {p.dtype for p in llama} == {"float32", "bfloat16"}
    assert len({p.p["d_model"] for p in llama}) >= 4 and len({p.p["seq_q"] for p in llama}) >= 3
    for p in llama:
        cfg = llama_cfg(p.p["d_model"], p.p["seq_q"])
        assert (p.p["heads"], p.p["kv_heads"], p.p["d_ff"], p.p["head_dim"]) == (
            cfg.n_heads, cfg.kv_heads, cfg.d_ff, cfg.head_dim)
    # no grid block sits exactly at a block of the held-out Llama family
    from profilers.suites.blocks import held_out_llama_dims

    held = held_out_llama_dims(open_device("cpu"))
    assert (256, 128, 4) in held and (512, 128, 4) in held  # the base and `w` x4
    assert not {(p.p["d_model"], p.p["seq_q"], p.p["batch"]) for p in llama} & held
    cfg = llama_cfg(512, 128)
    assert (cfg.n_heads, cfg.kv_heads, cfg.d_ff) == (8, 2, 1408)  # 8/3 x 512, up to 64
    assert (cfg.mlp, cfg.norm, cfg.position, cfg.bias) == ("swiglu", "rmsnorm", "rope", False)
    assert suite_compatible(cfg, llama=True) and not suite_compatible(cfg)


def test_a_llama_block_row_is_counted_as_a_llama_block():
    from perfmodel.predict.device import block_ops
    from profilers.suites.blocks import transformer_point_args

    p = transformer_point_args("llama_block", 2, 512, 64)
    row = dict(op="llama_block", phase="fwd_bwd", dtype="float32", params=json.dumps(p))
    ops = block_ops(row)
    att = ops[(ops["op"] == "attention") & (ops["phase"] == "fwd")]
    assert len(att) == 1
    assert (int(att["heads"].iloc[0]), int(att["kv_heads"].iloc[0])) == (8, 2)
    assert (ops["op"] == "silu").any()  # SwiGLU's gate
    gemms = ops[(ops["op"] == "gemm") & (ops["phase"] == "fwd")]
    assert len(gemms) == 7  # q, k, v, o, gate, up, down
    module = build_block("llama_block", p)
    assert sum(q.numel() for q in module.parameters()) == (
        512 * 512 * 2 + 512 * 128 * 2 + 3 * 512 * 1408 + 2 * 512)  # no biases, two RMSNorms


def _llama_parts(overrides, factor=1.0, strategy=None):
    return [p for p in parts_of(resolve("Llama-3-8B", factor, strategy, **overrides), loss=False)
            if p.group == "transformer_block"]


def test_parts_key_to_a_measured_llama_block_only_when_they_are_the_suites_block():
    cfg = llama_cfg(512, 128)
    same = dict(n_layers=2, d_model=512, n_heads=cfg.n_heads, n_kv_heads=cfg.kv_heads,
                d_ff=cfg.d_ff, seq_len=128, vocab_size=4096)
    part = _llama_parts(same)[0]
    key = part_block_key(part, 4, "float32", True)
    p = dict(batch=4, seq_q=128, d_model=512)
    assert key == ("llama", 512, 128, 4, "float32", "fwd_bwd") == _row_key(
        "llama_block", p, "float32", "fwd_bwd")
    # the held-out validation family (CPU and GPU shapes, base and x4) is never the suite's
    for g in (CPU, GPU):
        for factor, strategy in ((1.0, None), (4.0, "w"), (4.0, "d"), (4.0, "s")):
            for part in _llama_parts(g["llama_overrides"], factor, strategy):
                assert part_block_key(part, 4, "float32", True) is None


def test_llama_parts_take_llama_neighbours_and_else_the_gpt_blocks():
    from perfmodel.predict.device import Backend

    llama = _llama_parts(CPU["llama_overrides"])[0]
    gpt = [p for p in parts_of(resolve("gpt2", 1.0, None, n_layers=2, d_model=256, n_heads=4,
                                       d_ff=1024, seq_len=128, vocab_size=4096), loss=False)
           if p.group == "transformer_block"][0]
    dims = transformer_dims(256, 128, 4)
    assert part_place(llama, 4) == ("llama", dims) and part_place(gpt, 4) == ("transformer", dims)

    def entry(kind, r, dtype="float32"):  # a block an octave longer than the parts
        return [list(transformer_dims(256, 256, 4)), "fwd_bwd",
                [kind, 256, 256, 4, dtype, "fwd_bwd"], math.log(r)]

    def scale(table, part, dtype="float32"):
        backend = Backend(device=None, optimes=None, kind="profile", description="",
                          calibration=Calibrations(pooled=Calibration(residuals=table)))
        return backend.neighbour_scale(part, 4, dtype, True)

    gpt_only = [entry("transformer", 1.3)]
    both = gpt_only + [entry("llama", 0.8)]
    assert scale(gpt_only, llama) == pytest.approx(1.3)  # a profile without Llama blocks
    assert scale(both, llama) == pytest.approx(0.8)  # its own family when measured
    assert scale(both, gpt) == pytest.approx(1.3)  # GPT-style blocks never take Llama's
    # Llama entries of another dtype only: the GPT-style blocks of this dtype stand in
    mixed = gpt_only + [entry("llama", 0.8, "bfloat16")]
    assert scale(mixed, llama) == pytest.approx(1.3)
    # Llama blocks measured, but none near this part (its own row excluded, another 3
    # octaves away): the GPT-style neighbours, not no correction at all
    own = ["llama", 256, 128, 4, "float32", "fwd_bwd"]
    far = [list(transformer_dims(4096, 128, 4)), "fwd_bwd",
           ["llama", 4096, 128, 4, "float32", "fwd_bwd"], math.log(0.5)]
    mine = [list(dims), "fwd_bwd", own, math.log(0.7)]
    index = NeighbourIndex(gpt_only + [far, mine])
    assert index.scale(dims, "fwd_bwd", exclude=own, dtype="float32", family="llama",
                       fallback="transformer") == pytest.approx(1.3)
    assert index.scale(dims, "fwd_bwd", exclude=own, dtype="float32", family="llama") == 1.0
