"""Predicted training step of data-parallel transformers (the predicted mode of `mfu`)."""
from __future__ import annotations

import pytest

from perfmodel.errors import PerfmodelError
from perfmodel.hardware.catalogue import get_device
from perfmodel.models.transformer_config import TransformerConfig
from perfmodel.predict.llm import (INTERCONNECT_BW, interconnect_bandwidth,
                                   predict_training_step)

CFG = TransformerConfig(name="tiny", d_model=128, n_layers=3, n_heads=4, d_ff=512,
                        vocab_size=256, seq_len=64)


pytestmark = pytest.mark.usefixtures("no_shipped_profiles")


def test_allreduce_and_accumulation_terms():
    h100 = get_device("h100")
    one = predict_training_step(CFG, batch=8, seq_len=64, gpus=1, precision="bf16", device=h100)
    assert one.allreduce_s == 0 and one.micro_steps == 1
    four = predict_training_step(CFG, batch=32, seq_len=64, gpus=4, precision="bf16",
                                 device=h100)
    params = 256 * 128 + 64 * 128 + 3 * (2 * 2 * 128 + 4 * 128 * 128 + 4 * 128
                                         + 2 * 128 * 512 + 512 + 128) + 2 * 128
    grad_bytes = 4 * params  # gradients reduced in float32 (Megatron's default)
    assert four.allreduce_s == pytest.approx(2 * 3 / 4 * grad_bytes / INTERCONNECT_BW["h100-sxm"])
    assert four.forward_s == pytest.approx(one.forward_s)  # 8 sequences per GPU either way
    acc = predict_training_step(CFG, batch=8, seq_len=64, gpus=1, micro_batch=2,
                                precision="bf16", device=h100)
    assert acc.micro_steps == 4
    assert acc.step_s == pytest.approx(4 * (acc.forward_s + acc.backward_s) + acc.optimizer_s)
    full = predict_training_step(CFG, batch=8, seq_len=64, gpus=1, precision="bf16",
                                 device=h100, recompute="full")
    assert full.backward_s > one.backward_s
    assert interconnect_bandwidth(h100, 1e9) == 1e9


def test_interconnect_table_uses_catalogue_keys():
    """Every GPU of the catalogue has its link, and every entry names a catalogue GPU (an
    entry under another spelling would silently fall back to PCIe Gen4)."""
    from perfmodel.hardware.catalogue import GPUS

    keys = {g.key for g in GPUS}
    assert set(INTERCONNECT_BW) == keys
    assert interconnect_bandwidth(get_device("A100-SXM4-40GB")) == 300e9
    assert interconnect_bandwidth(get_device("V100-PCIE-32GB")) == 16e9


def test_mfu_predicted_mode():
    import perfmodel.predict.llm  # noqa: F401  (registers the step-time predictor)
    from perfmodel.llm.mfu import estimate_mfu

    r = estimate_mfu(CFG, 16, 64, gpus=2, precision="bf16", device="h100")
    d = r.to_dict()
    assert d["mode"] == "predicted" and d["pred_step_time_s"] > 0
    assert d["fits_in_memory"] is True and 0 < d["mfu"] < 1 and d["hfu"] >= d["mfu"]


def test_unsupported_layouts_raise():
    from perfmodel.llm.memory import Parallelism

    with pytest.raises(PerfmodelError, match="context parallelism 3 must divide"):
        predict_training_step(CFG, batch=8, seq_len=64, gpus=3, precision="bf16",
                              device=get_device("h100"), parallel=Parallelism(dp=1, cp=3))
    with pytest.raises(PerfmodelError, match="must divide n_heads"):
        predict_training_step(CFG, batch=8, seq_len=64, gpus=8, precision="bf16",
                              device=get_device("h100"), parallel=Parallelism(tp=8))
    with pytest.raises(PerfmodelError, match="exceeds the 3 layers"):
        predict_training_step(CFG, batch=8, seq_len=64, gpus=4, precision="bf16",
                              device=get_device("h100"), parallel=Parallelism(pp=4))
    with pytest.raises(PerfmodelError, match="precisions"):
        predict_training_step(CFG, batch=8, seq_len=64, precision="fp4",
                              device=get_device("h100"))


MID = TransformerConfig(name="mid", d_model=256, n_layers=4, n_heads=8, d_ff=1024,
                        vocab_size=512, seq_len=128)
BIG = TransformerConfig(name="big", d_model=2048, n_layers=2, n_heads=16, d_ff=8192,
                        vocab_size=32000, seq_len=1024)


def test_tensor_parallel_shard_and_its_all_reduces():
    from perfmodel.llm.memory import Parallelism
    from perfmodel.predict.llm import ring_seconds, tp_shard

    h100 = get_device("h100")
    shard = tp_shard(MID, 4)
    assert (shard.n_heads, shard.kv_heads, shard.head_dim, shard.d_ff, shard.vocab_size) == \
        (2, 2, 32, 256, 128)
    one = predict_training_step(BIG, batch=8, seq_len=1024, gpus=1, precision="bf16", device=h100)
    tp = predict_training_step(BIG, batch=8, seq_len=1024, gpus=4, precision="bf16", device=h100,
                               parallel=Parallelism(tp=4))
    # each GPU computes a quarter of the matmuls (norms and small kernels stay whole)
    assert 0.25 < (tp.forward_s + tp.backward_s) / (one.forward_s + one.backward_s) < 0.4
    act = 8 * 1024 * 2048 * 2  # one micro-batch of bf16 activations
    assert tp.tp_comm_s == pytest.approx((4 * 2 + 2) * ring_seconds(act, 4, 450e9))
    assert tp.allreduce_s == 0 and tp.pp_comm_s == 0 and tp.bubble_s == 0
    assert tp.step_s == pytest.approx(tp.forward_s + tp.backward_s + tp.optimizer_s
                                      + tp.tp_comm_s)


def test_pipeline_bubble_and_stage_split():
    from perfmodel.llm.memory import Parallelism

    h100 = get_device("h100")
    one = predict_training_step(MID, batch=8, seq_len=128, gpus=1, micro_batch=1,
                                precision="bf16", device=h100)
    pp = predict_training_step(MID, batch=8, seq_len=128, gpus=4, micro_batch=1,
                               precision="bf16", device=h100, parallel=Parallelism(pp=4))
    stage = pp.forward_s + pp.backward_s
    whole = one.forward_s + one.backward_s
    assert whole / 4 < stage < whole  # a quarter of the layers + the heavier end part
    slot = stage + pp.pp_comm_s / (8 + 3)
    assert pp.bubble_s == pytest.approx(3 * slot)
    assert pp.step_s == pytest.approx((8 + 3) * slot + pp.optimizer_s)
    # the same 8 micro-batches on one GPU take longer than on the pipeline, less than 4x
    assert pp.step_s < one.step_s < 4 * pp.step_s


def test_data_parallel_across_nodes_uses_the_network():
    """A data-parallel ring that leaves the node runs at the network share of its GPUs on
    each node (one NCCL ring per NIC), at most NVLink."""
    from perfmodel.llm.memory import Parallelism
    from perfmodel.predict.llm import INTER_NODE_BW

    h100 = get_device("h100")
    net = INTER_NODE_BW["h100-sxm"]
    inside = predict_training_step(MID, batch=64, seq_len=128, gpus=8, precision="bf16",
                                   device=h100)
    grads = inside.allreduce_s / (2 * 7 / 8) * 450e9  # bytes all-reduced in one node
    assert grads == pytest.approx(4 * inside_params(), rel=1e-6)
    two_nodes = predict_training_step(MID, batch=64, seq_len=128, gpus=16, micro_batch=4,
                                      precision="bf16", device=h100)
    assert two_nodes.allreduce_s == pytest.approx(2 * 15 / 16 * grads / (8 * net))
    sharded = predict_training_step(MID, batch=64, seq_len=128, gpus=16, micro_batch=8,
                                    precision="bf16", device=h100,
                                    parallel=Parallelism(dp=8, tp=2))
    # 4 of the 8 data-parallel ranks per node; each holds half of the (non-norm) weights
    assert sharded.allreduce_s < 2 * 7 / 8 * grads / (4 * net)
    assert sharded.allreduce_s > 2 * 7 / 8 * grads / 2 / (4 * net)


def inside_params() -> int:
    """MID's parameters, the tied LM head counted once."""
    d, f, v, s, n = 256, 1024, 512, 128, 4
    block = 2 * 2 * d + 4 * (d * d + d) + (d * f + f) + (f * d + d)
    return v * d + s * d + n * block + 2 * d


def test_tied_embedding_updated_once():
    """The optimizer prices the tied embedding / LM head weight once."""
    h100 = get_device("h100")
    one = predict_training_step(MID, batch=8, seq_len=128, precision="fp32", device=h100)
    untied = predict_training_step(MID.scaled(tied_embeddings=False), batch=8, seq_len=128,
                                   precision="fp32", device=h100)
    assert one.optimizer_s < untied.optimizer_s


def test_compiled_runs_predict_a_shorter_step_and_old_hooks_still_work():
    from perfmodel.llm import mfu as mfu_mod
    from perfmodel.llm.mfu import estimate_mfu

    eager = predict_training_step(MID, batch=8, seq_len=128, precision="bf16",
                                  device=get_device("h100"))
    comp = predict_training_step(MID, batch=8, seq_len=128, precision="bf16",
                                 device=get_device("h100"), compiled=True)
    assert comp.step_s < eager.step_s
    r = estimate_mfu(MID, 8, 128, device="h100", compiled=True)
    assert r.step_time_s == pytest.approx(comp.step_s)
    seen = {}

    def old_hook(cfg, *, batch, seq_len, gpus, micro_batch, precision, device, recompute,
                 parallel):  # written before `compiled` existed
        seen["called"] = True
        return 1.0

    mfu_mod.register_step_time_predictor(old_hook)
    try:
        assert estimate_mfu(MID, 8, 128, device="h100").step_time_s == 1.0 and seen
    finally:
        mfu_mod.register_step_time_predictor(None)
        import perfmodel.predict.llm as llm

        llm.register()


def test_fp8_runs_the_layer_gemms_in_e4m3():
    """FP8 (Transformer Engine): the transformer layers' GEMMs in float8_e4m3fn, the rest
    (attention, norms, embedding, LM head) in bfloat16; a GPU without FP8 says so."""
    from perfmodel.predict.counts import count_part
    from perfmodel.predict.parts import parts_of

    h100 = get_device("h100")
    bf16 = predict_training_step(BIG, batch=8, seq_len=1024, precision="bf16", device=h100)
    fp8 = predict_training_step(BIG, batch=8, seq_len=1024, precision="fp8", device=h100)
    # the layers' GEMMs at twice the bf16 rate; attention, the LM head and the rest as before
    assert fp8.forward_s + fp8.backward_s < 0.9 * (bf16.forward_s + bf16.backward_s)
    block = parts_of(BIG)[1]
    ops = count_part(block, 8, "bfloat16", True, gemm_dtype="float8_e4m3fn").ops
    gemm = ops[ops["op"] == "gemm"]
    assert set(gemm["dtype"]) == {"float8_e4m3fn"}
    assert set(ops.loc[ops["op"] == "attention", "dtype"]) == {"bfloat16"}
    r = gemm.iloc[0]  # 1 byte per input element, the bf16 bias 2
    assert r["bytes_read"] == r["b"] * (r["m"] * r["k"] + r["k"] * r["n"]) + 2 * r["n"] * r["bias"]
    with pytest.raises(PerfmodelError, match="no dense float8_e4m3fn"):
        predict_training_step(BIG, batch=8, seq_len=1024, precision="fp8",
                              device=get_device("a100-sxm-80gb"))


def test_tp_comm_overlap_hides_the_tensor_parallel_all_reduces():
    from perfmodel.llm.memory import Parallelism
    from perfmodel.llm.mfu import estimate_mfu

    h100 = get_device("h100")
    exposed = predict_training_step(BIG, batch=8, seq_len=1024, gpus=4, precision="bf16",
                                    device=h100, parallel=Parallelism(tp=4))
    hidden = predict_training_step(BIG, batch=8, seq_len=1024, gpus=4, precision="bf16",
                                   device=h100, parallel=Parallelism(tp=4, tp_comm_overlap=True))
    assert exposed.tp_comm_s > 0 and hidden.tp_comm_s == 0
    assert hidden.step_s == pytest.approx(exposed.step_s - exposed.tp_comm_s)
    r = estimate_mfu(BIG, 8, 1024, gpus=4, tp=4, device="h100", tp_comm_overlap=True)
    assert r.step_time_s == pytest.approx(hidden.step_s)


def test_context_parallel_ranks_hold_part_of_the_sequence():
    """cp = 2: each rank runs half the tokens, its attention meets every key (twice its
    local attention), and the weights' gradients are reduced over dp x cp."""
    from perfmodel.llm.memory import Parallelism

    h100 = get_device("h100")
    one = predict_training_step(BIG, batch=2, seq_len=2048, precision="bf16", device=h100)
    half = predict_training_step(BIG, batch=2, seq_len=1024, precision="bf16", device=h100)
    cp = predict_training_step(BIG, batch=2, seq_len=2048, gpus=2, precision="bf16",
                               device=h100, parallel=Parallelism(cp=2))
    t = lambda p: p.forward_s + p.backward_s  # noqa: E731
    assert t(half) < t(cp) < t(one)  # more than half the tokens' work, less than all of it
    assert cp.allreduce_s > 0 and one.allreduce_s == 0
    # an uneven pipeline: the fullest stage (2 of 3 layers) sets the pace
    three = TransformerConfig(name="three", d_model=2048, n_layers=3, n_heads=16, d_ff=8192,
                              vocab_size=32000, seq_len=1024)
    pp = predict_training_step(three, batch=8, seq_len=1024, gpus=2, micro_batch=1,
                               precision="bf16", device=h100, parallel=Parallelism(pp=2))
    assert pp.step_s > 0 and pp.bubble_s > 0
