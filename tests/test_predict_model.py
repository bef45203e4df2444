"""Whole-model prediction: breakdowns add up, roofline fallback, memory on a hand-checked model."""
from __future__ import annotations

import math

import pytest
from torch import nn

from perfmodel.errors import PerfmodelError
from perfmodel.predict import predict_model, resolve_backend
from perfmodel.predict.counts import assemble_saved_bytes, count_part
from perfmodel.predict.parts import model_parts, parts_of


pytestmark = pytest.mark.usefixtures("no_shipped_profiles")


def mlp():
    return nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))


def test_roofline_fallback_says_so():
    b = resolve_backend("h100")
    assert b.kind == "roofline" and b.source == "roofline"
    assert "roofline" in b.description and "h100-sxm" in b.description
    p = predict_model(mlp(), 8, input_shape=(16,), device="h100")
    assert p.source == "roofline" and p.backend == b.description
    assert p.time.lo == pytest.approx(p.time.value)  # roofline: a lower bound ...
    assert math.isnan(p.time.hi)  # ... and no upper bound without measurements
    assert p.energy.value == pytest.approx(p.time.value * b.device.tdp_w)


def test_breakdowns_sum_to_totals():
    p = predict_model("RegNetX-200MF", 4, device="h100", overrides={"resolution": 32})
    total = p.time.value
    assert p.forward.value + p.backward.value + p.optimizer_time.value == pytest.approx(total)
    assert p.by_module["time_s"].sum() == pytest.approx(total)
    assert p.by_module["share"].sum() == pytest.approx(1.0)
    assert set(p.by_module["group"]) >= {"stem", "head", "loss", "optimizer"}
    assert p.forward.value > 0 and p.backward.value > p.forward.value * 0.5
    m = p.memory
    assert m.peak == pytest.approx(m.weights + m.gradients + m.optimizer_states + m.activations
                                   + m.workspace)
    assert p.params == 2_684_792  # pycls RegNetX-200MF
    infer = predict_model("RegNetX-200MF", 4, device="h100", train=False,
                          overrides={"resolution": 32})
    assert infer.backward.value == 0 and infer.optimizer_time.value == 0
    assert infer.time.value == pytest.approx(infer.forward.value)
    assert infer.time.value < p.time.value and infer.memory.activations == 0


def test_parts_match_whole_model_counts():
    """Counting distinct parts once gives the same MACs and params as the whole model."""
    from perfmodel.counting.counter import count_model
    from perfmodel.models.registry import build_model, resolve

    p = resolve("RegNetX-200MF", 2.0, "dw", resolution=32)
    parts = parts_of(p, loss=False)
    counts = [count_part(q, 2, "float32", False) for q in parts]
    whole = count_model(build_model("RegNetX-200MF", 2.0, "dw", resolution=32), batch=2)
    assert sum(c.macs for c in counts) == pytest.approx(whole.total().macs)
    assert sum(c.params for c in counts) == whole.params
    assert len({(q.key, q.input_shape) for q in parts}) < len(parts)  # repeats counted once


def test_memory_of_a_hand_checked_mlp():
    """Linear(16,32) -> ReLU -> Linear(32,4), batch 8, float32, SGD with momentum."""
    parts = model_parts(mlp, "mlp", (16,), loss=False)
    counts = [count_part(q, 8, "float32", True) for q in parts]
    # saved for backward: the input x (8x16, for the first weight gradient) and the ReLU
    # output (8x32, saved by ReLU and by the second linear: one storage), float32
    assert assemble_saved_bytes(counts) == [(8 * 16 + 8 * 32) * 4]
    p = predict_model(mlp(), 8, input_shape=(16,), device="h100", optimizer="sgd-momentum")
    params = 16 * 32 + 32 + 32 * 4 + 4
    assert p.params == params
    assert p.memory.weights == p.memory.gradients == p.memory.optimizer_states == params * 4
    m = mlp()
    adam = predict_model(m, 8, input_shape=(16,), device="h100", optimizer="adamw")
    assert next(m.parameters()).device.type == "cpu"  # the caller's model is left alone
    assert adam.memory.optimizer_states == 2 * params * 4
    # the loss part adds its log-softmax output (8x4 float32), target ids and a weight total
    assert p.memory.activations >= (8 * 16 + 8 * 32) * 4 + 8 * 4 * 4


def test_transformer_tied_embeddings_counted_once():
    over = dict(n_layers=2, d_model=64, n_heads=2, d_ff=256, seq_len=16, vocab_size=128)
    p = predict_model("gpt2", 2, device="h100", overrides=over)
    d, v, s, f = 64, 128, 16, 256
    block = 2 * 2 * d + (4 * d * d + 4 * d) + (d * f + f + f * d + d)
    assert p.params == v * d + s * d + 2 * block + 2 * d  # tied LM head not counted twice
    assert p.tokens == 2 * 16 and p.optimizer == "adamw"


def test_bad_input_is_one_line_error():
    with pytest.raises(PerfmodelError, match="batch"):
        predict_model("RegNetX-200MF", 0, device="h100")
    with pytest.raises(PerfmodelError, match="unknown device"):
        predict_model("RegNetX-200MF", 1, device="no-such-gpu")
    with pytest.raises(PerfmodelError, match="no such profile"):
        resolve_backend("./missing/profile")
    with pytest.raises(PerfmodelError, match="scale a named model"):
        predict_model(mlp(), 1, input_shape=(16,), factor=2.0, strategy="d", device="h100")


def test_a_measured_block_replaces_the_sum_of_its_ops():
    from perfmodel.predict.measured import part_block_key

    over = dict(n_layers=2, d_model=64, n_heads=1, d_ff=256, seq_len=16, vocab_size=128)
    b = resolve_backend("h100")
    before = predict_model("gpt2", 2, device=b, overrides=over)
    from perfmodel.models.registry import resolve

    block = [q for q in parts_of(resolve("gpt2", **over)) if q.group == "transformer_block"][0]
    key = part_block_key(block, 2, "float32", True)
    assert key == ("transformer", 64, 16, 2, "float32", "fwd_bwd")  # the suite's block
    b.measured[key] = 0.5
    try:
        after = predict_model("gpt2", 2, device=b, overrides=over)
    finally:
        b.measured.clear()
    rows = after.by_module.set_index("module")
    assert rows.loc["blocks.0", "time_s"] == pytest.approx(0.5)
    assert after.measured_parts == 2
    assert after.forward.value + after.backward.value + after.optimizer_time.value == \
        pytest.approx(after.time.value)
    assert after.time.value == pytest.approx(before.time.value - 2 * before.by_module.set_index(
        "module").loc["blocks.0", "time_s"] + 1.0)


def test_single_part_model_breakdown_by_child_module():
    p = predict_model(mlp(), 8, input_shape=(16,), device="h100")
    rows = p.by_module.set_index("module")
    assert {"0", "1", "2", "loss", "optimizer"} <= set(rows.index)
    assert rows.loc["0", "params"] == 16 * 32 + 32 and rows.loc["2", "params"] == 32 * 4 + 4
    assert p.by_module["time_s"].sum() == pytest.approx(p.time.value)
