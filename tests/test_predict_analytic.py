"""Closed-form part op lists equal the meta-device count, row for row."""
from __future__ import annotations

import pytest

from perfmodel.models.registry import resolve
from perfmodel.predict.counts import count_part
from perfmodel.predict.parts import parts_of

KEYS = ["op", "phase", "direction", "dtype", "flops", "bytes", "macs", "acts", "inplace"]
CASES = [
    ("RegNetX-400MF", 4.0, "d1_w8_g8_r1", {"resolution": 32}, 3),
    ("RegNetX-200MF", 2.0, "w", {"resolution": 32}, 2),
    ("gpt2", 4.0, "dws", dict(n_layers=2, d_model=64, n_heads=2, d_ff=256, seq_len=16,
                              vocab_size=128), 3),
    ("gpt2", 1.0, None, dict(n_layers=1, d_model=64, n_heads=4, d_ff=128, seq_len=8,
                             vocab_size=64, bias=False, position="none"), 2),
]


def _rows(df):
    df = df.assign(inplace=df["inplace"].fillna(False).astype(bool) if "inplace" in df
                   else False)
    return sorted(tuple(r) for r in df[KEYS].astype(str).itertuples(index=False))


@pytest.mark.parametrize("name, factor, strategy, overrides, batch", CASES)
@pytest.mark.parametrize("train", [True, False])
def test_analytic_equals_counted(name, factor, strategy, overrides, batch, train):
    p = resolve(name, factor, strategy, **overrides)
    checked = 0
    for part in {(q.key, q.input_shape): q for q in parts_of(p, loss=train)}.values():
        fast = count_part(part, batch, "float32", train, fast=True)
        slow = count_part(part, batch, "float32", train, fast=False)
        assert fast.rows is not None, part.key[0]  # every part of these models is closed-form
        assert _rows(fast.ops) == _rows(slow.ops), part.path
        assert sorted(fast.param_numels) == sorted(slow.param_numels), part.path
        for attr in ("saved_bytes", "input_saved", "output_saved", "input_bytes",
                     "output_bytes", "max_op_bytes", "params"):
            assert getattr(fast, attr) == pytest.approx(getattr(slow, attr)), (part.path, attr)
        checked += 1
    assert checked >= 3


def test_unsupported_parts_are_counted():
    p = resolve("RegNetY-200MF", 1.0, None, resolution=32)  # squeeze-excitation blocks
    blocks = [q for q in parts_of(p) if q.group == "res_bottleneck_block"]
    assert count_part(blocks[0], 1, "float32", True).rows is None
    bf16 = count_part(parts_of(resolve("RegNetX-200MF", resolution=32))[0], 1, "bfloat16", True)
    assert bf16.rows is None and bf16.n_ops > 0
