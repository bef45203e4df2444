"""Suites on the CPU: deterministic spread-ordered points covering the asked-for space,
and every block and validation model measurable."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from profilers.device import open_device
from profilers.measure import measure_point
from profilers.suites import get_suite, suite_names

CPU = open_device("cpu")


def test_registry_lists_the_six_suites():
    from profilers.suites import DEFAULT_SUITES

    assert suite_names()[:6] == ["gemm", "conv", "vector", "attention", "blocks", "validation"]
    assert DEFAULT_SUITES == "gemm,conv,vector,attention,blocks,validation"


@pytest.mark.parametrize("name", ["gemm", "conv", "vector", "attention", "blocks", "validation"])
def test_points_are_deterministic_unique_and_finite(name):
    suite = get_suite(name)
    a, b = suite.points(CPU), suite.points(CPU)
    assert a == b and len(a) > 10
    ids = [p.id for p in a]
    assert len(set(ids)) == len(ids)
    assert all(math.isfinite(v) for p in a[:50] for v in suite.features(p))


def test_gemm_space_on_cpu():
    pts = get_suite("gemm").points(CPU)
    p = [(x.p["m"], x.p["n"], x.p["k"], x.p["b"], x.dtype) for x in pts]
    assert {d for *_, d in p} == {"float32", "bfloat16", "float16"}  # no tf32/fp8 on a CPU
    assert any(m == n == k and m & (m - 1) == 0 for m, n, k, b, _ in p)  # power-of-two squares
    assert any(m == n == k and m % 2 for m, n, k, b, _ in p)  # odd squares
    assert any(m <= 4 and n >= 768 and k >= 768 for m, n, k, b, _ in p)  # LLM decode-like
    assert any(b > 1 for _, _, _, b, _ in p)  # batched
    assert all((x.op == "bmm") == (x.p["b"] > 1) for x in pts)
    # the first 10% of the order already spans most of the size range
    head = pts[: len(pts) // 10]
    ms = [x.p["m"] for x in head]
    assert min(ms) <= 32 and max(ms) >= 512


def test_conv_space_on_cpu():
    pts = get_suite("conv").points(CPU)
    assert any(x.p["groups"] == x.p["c_in"] == x.p["c_out"] > 1 for x in pts)  # depthwise
    assert any(1 < x.p["groups"] < x.p["c_in"] for x in pts)  # grouped
    assert {x.p["kernel_h"] for x in pts} == {1, 3, 5, 7}
    assert {x.p["stride"] for x in pts} == {1, 2}
    assert {x.phase for x in pts} == {"fwd", "fwd_bwd"}


@pytest.mark.parametrize("kind", ["cpu", "cuda"])
def test_conv_space_holds_off_grid_widths(kind):
    """Widths like real networks' (multiples of 8, not powers of two) and RGB stems, in
    every grouping: without them a model reads low channel alignment as 'narrow'."""
    from profilers.suites.conv import ConvSuite

    class _Dev:  # the candidates read the kind and the dtypes only
        def __init__(self, kind):
            self.kind = kind

        def supports(self, dtype):
            return (True, "")

    pts = ConvSuite().candidates(CPU if kind == "cpu" else _Dev(kind))
    odd = [x for x in pts if x.p["c_in"] & (x.p["c_in"] - 1)
           and x.p["c_in"] % 64 and x.p["c_in"] != 3]
    assert len(odd) > 150
    assert all(x.p["c_in"] % 8 == 0 for x in odd)
    assert any(x.p["groups"] == x.p["c_in"] for x in odd)  # depthwise
    assert any(1 < x.p["groups"] < x.p["c_in"] for x in odd)  # grouped
    assert any(x.p["kernel_h"] == 1 and x.p["groups"] == 1 and x.p["c_out"] != x.p["c_in"]
               for x in odd)  # pointwise projections
    stems = [x for x in pts if x.p["c_in"] == 3]
    assert stems and all(x.p["stride"] == 2 and x.p["groups"] == 1 for x in stems)


def test_conv_space_holds_large_maps_on_cpu():
    """Convolutions beyond the L3 on maps of 28-224 pixels, as a CNN's early stages at 224
    run them (`CPU_MAPS`): depthwise, pointwise and stems, float32 mostly; a GPU's grid
    covers them already and draws none."""
    from profilers.suites.conv import CPU_MAPS, ConvSuite

    pts = get_suite("conv").points(CPU)
    big = [x for x in pts if x.p["batch"] * max(x.p["c_in"], x.p["c_out"]) * x.p["h"] ** 2
           > 4e6]
    assert len(big) > 60 and max(x.p["h"] for x in big) == 224
    dw = [x for x in big if x.p["groups"] == x.p["c_in"] > 1]
    assert {56, 112} <= {x.p["h"] for x in dw} and {x.phase for x in dw} == {"fwd", "fwd_bwd"}
    assert any(x.p["kernel_h"] == 1 and x.p["c_out"] > x.p["c_in"] >= 16 for x in big)
    assert sum(x.dtype == "float32" for x in big) > 0.6 * len(big)
    own = ConvSuite()._map_points(set(), ["float32"])
    assert all(x.p["batch"] * max(x.p["c_in"], x.p["c_out"]) * x.p["h"] ** 2
               >= CPU_MAPS["min_elems"] for x in own)

    class _Gpu:
        kind = "cuda"

        def supports(self, dtype):
            return (True, "")

    # batch 16 is the map points' own (neither batch grid has it)
    assert any(x.p["batch"] == 16 for x in pts)
    assert not any(x.p["batch"] == 16 for x in ConvSuite().candidates(_Gpu()))


def test_conv_points_of_the_shipped_profile_are_still_drawn():
    """The large-map points come from their own seed, after the others: every convolution
    the AMD profile measured before them is still a candidate."""
    from perfmodel.predict.device import datasets_dir

    path = datasets_dir() / "cpu-amd-epyc" / "measurements.parquet"
    if not path.is_file():
        pytest.skip("no AMD CPU profile under datasets/")
    rows = pd.read_parquet(path, columns=["suite", "point_id"])
    measured = set(rows.loc[rows["suite"] == "conv", "point_id"])
    assert len(measured) > 2000 and measured <= {x.id for x in get_suite("conv").candidates(CPU)}


def test_vector_space_holds_large_maps_on_cpu():
    """Batch norms, activations and SE ops on NCHW maps of 28-112 pixels and 16-512
    channels, up to 2^25 elements (`CPU_MAPS`): the main pool's large batch norms sit on
    small maps with thousands of channels."""
    pts = get_suite("vector").points(CPU)
    bn = [x for x in pts if x.op == "batch_norm" and x.p["training"] and x.p["numel"] > 4e6
          and x.p["numel"] // (x.p["channels"] * x.p["batch"]) >= 56 * 56
          and x.p["channels"] <= 512]
    assert len(bn) >= 10 and {x.phase for x in bn} == {"fwd", "fwd_bwd"}
    assert max(x.p["numel"] for x in pts) > 2 ** 24
    assert any(x.op == "silu" and x.phase == "fwd_bwd" and x.p["numel"] > 2 ** 24 for x in pts)


def test_vector_space_on_cpu():
    """Every vector op the counter records for CNNs and transformers, in both phases where
    it has a backward, from cache-resident to DRAM-sized, with the counter's columns."""
    from profilers.suites.vector import INPLACE_OPS, OPS, _COST_KEYS

    pts = get_suite("vector").points(CPU)
    kinds = {(x.op, x.p["variant"], x.phase) for x in pts}
    assert kinds == {(op, v, ph) for op, v, phases in OPS + INPLACE_OPS for ph in phases}
    sizes = [x.p["numel"] for x in pts]
    assert min(sizes) < 4096 and max(sizes) > 8e6  # L1 to beyond the L3
    for x in pts:
        assert set(_COST_KEYS[x.op]) - {"read_numel", "batch", "inplace"} <= set(x.p) | {"inputs"}
    maps = [x for x in pts if x.op == "batch_norm"]
    assert {x.p["training"] for x in maps} == {True, False}
    assert all(x.p["numel"] > x.p["channels"] for x in maps if x.p["training"])  # statistics
    assert len({x.p["numel"] // (x.p["channels"] * x.p["batch"]) for x in maps}) >= 8
    inplace = [x for x in pts if x.p.get("inplace")]
    assert {x.p["variant"] for x in inplace} == {"inplace", "add_inplace"}
    assert min(x.p["numel"] for x in inplace) < 4096 and max(x.p["numel"] for x in inplace) > 8e6


def test_vector_points_of_the_shipped_profile_are_still_drawn():
    """New points (the in-place ones, the large maps) come from their own seeds: every
    vector point the AMD profile measured before them is still a candidate, so `--after`
    adds only new ones."""
    from perfmodel.predict.device import datasets_dir

    path = datasets_dir() / "cpu-amd-epyc" / "measurements.parquet"
    if not path.is_file():
        pytest.skip("no AMD CPU profile under datasets/")
    rows = pd.read_parquet(path, columns=["suite", "point_id", "params"])
    measured = rows[(rows["suite"] == "vector") & ~rows["params"].str.contains('"inplace"')]
    ids = {x.id for x in get_suite("vector").candidates(CPU)}
    assert len(measured) > 1000 and set(measured["point_id"]) <= ids


@pytest.mark.parametrize("variant", ["relu/unary", "elementwise/add", "elementwise/scale",
                                     "batch_norm/train", "batch_norm/eval", "layer_norm/rows",
                                     "softmax/rows", "reduction/spatial", "reduction/rows",
                                     "relu/inplace", "elementwise/add_inplace"])
def test_every_vector_op_measures_on_cpu(variant, brief):
    """The smallest point of each variant runs and is priced; a fwd_bwd point saves
    activations (its columns against the counter's: the test below)."""
    suite = get_suite("vector")
    op, v = variant.split("/")
    pts = [x for x in suite.points(CPU) if x.op == op and x.p["variant"] == v]
    for phase in sorted({x.phase for x in pts}):
        point = min((x for x in pts if x.phase == phase), key=lambda x: x.p["numel"])
        row = measure_point(brief(suite), point, 0, CPU)
        assert row["status"] == "ok", row["error"]
        assert row["time_s"] > 0 and row["numel"] == point.p["numel"]
        assert row["flops"] > 0 and row["bytes"] >= 2 * point.p["numel"]  # costs priced
        if phase == "fwd_bwd":  # the forward saves what its backward reads
            assert row["act_bytes"] > 0


def _counted(forward, dtype: str) -> pd.DataFrame:
    """The op table `perfmodel.counting` records for a workload's forward closure."""
    import torch

    from perfmodel.counting.counter import count_model

    class Run(torch.nn.Module):
        def __init__(self, f):
            super().__init__()
            self.f = f

        def forward(self, _):
            return self.f()

    return count_model(Run(forward), inputs=(torch.zeros(1),), dtype=dtype).to_frame()


VECTOR_COLUMNS = ("numel", "channels", "batch", "features", "out_numel", "read_numel",
                  "inputs", "training", "inplace")


@pytest.mark.parametrize("variant", ["relu/unary", "gelu/unary", "elementwise/add",
                                     "elementwise/scale", "batch_norm/train", "batch_norm/eval",
                                     "layer_norm/rows", "softmax/rows", "reduction/spatial",
                                     "reduction/rows", "relu/inplace", "elementwise/add_inplace"])
def test_vector_points_carry_the_columns_the_counter_records(variant):
    """What the learned model is fitted on (a suite row) and what it is asked about (a
    counted op of a model) have the same columns, or its features differ between the two."""
    suite = get_suite("vector")
    op, v = variant.split("/")
    point = min((x for x in suite.points(CPU) if x.op == op and x.p["variant"] == v
                 and x.phase == "fwd"), key=lambda x: x.p["numel"])
    counted = _counted(suite.build(point, CPU).forward, point.dtype)
    counted = counted[counted["op"] == op]
    assert len(counted) == 1, counted
    row = counted.iloc[0]
    for col in VECTOR_COLUMNS:
        have = row.get(col) if col in counted.columns and pd.notna(row.get(col)) else None
        assert have == point.p.get(col), (col, have, point.p.get(col))


ATTENTION_COLUMNS = ("batch", "heads", "kv_heads", "seq_q", "seq_k", "head_dim", "causal")


def test_attention_space_on_cpu():
    """Grouped-query and plain heads, causal and not, both phases and dtypes, within the
    FLOP cap; the GPU grid reaches long sequences and every math mode."""
    from profilers.suites.attention import CPU as G
    from profilers.suites.attention import attention_points

    pts = get_suite("attention").points(CPU)
    assert {(x.phase, x.dtype) for x in pts} == {(ph, dt) for ph in ("fwd", "fwd_bwd")
                                                  for dt in ("float32", "bfloat16")}
    assert {x.p["heads"] // x.p["kv_heads"] for x in pts} == {1, 2, 4}
    assert {x.p["causal"] for x in pts} == {True, False}
    assert all(4 * x.p["batch"] * x.p["heads"] * x.p["seq_q"] ** 2 * x.p["head_dim"]
               <= G["max_flops"] for x in pts)

    class Gpu:
        kind = "cuda"

        def supports(self, dtype):
            return True, ""

    gpu = attention_points(Gpu())
    assert max(x.p["seq_q"] for x in gpu) == 8192
    assert {x.dtype for x in gpu} == {"float32", "tf32", "float16", "bfloat16"}
    assert {x.p["heads"] // x.p["kv_heads"] for x in gpu} == {1, 4, 8}


@pytest.mark.parametrize("phase", ["fwd", "fwd_bwd"])
def test_attention_points_measure_on_cpu_with_the_counters_columns(phase, brief):
    """The smallest grouped-query point of each phase runs and is priced, and the op the
    counter records for its SDPA call has the point's columns: what the learned model is
    fitted on and what it is asked about are the same."""
    suite = get_suite("attention")
    point = min((x for x in suite.points(CPU) if x.phase == phase
                 and x.p["kv_heads"] < x.p["heads"]),
                key=lambda x: x.p["batch"] * x.p["heads"] * x.p["seq_q"])
    row = measure_point(brief(suite), point, 0, CPU)
    assert row["status"] == "ok", row["error"]
    assert row["time_s"] > 0 and row["flops"] > 0 and row["bytes"] > 0
    assert row["kv_heads"] == point.p["kv_heads"] < row["heads"]
    if phase == "fwd_bwd":
        assert row["act_bytes"] > 0
    counted = _counted(suite.build(point, CPU).forward, point.dtype)
    counted = counted[counted["op"] == "attention"]
    assert len(counted) == 1, counted
    for col in ATTENTION_COLUMNS:
        assert counted.iloc[0][col] == point.p[col], col


def test_every_block_kind_measures_on_cpu(brief):
    suite = get_suite("blocks")
    pts = suite.points(CPU)
    smallest = {}
    for p in pts:
        size = p.p["batch"] * p.p.get("c_out", p.p.get("d_model")) * p.p.get("h", p.p.get("seq_q"))
        if p.dtype == "float32" and p.phase == "fwd_bwd" and (
                p.op not in smallest or size < smallest[p.op][0]):
            smallest[p.op] = (size, p)
    assert set(smallest) == {"resnet_bottleneck", "regnet_x_block", "regnet_y_block", "mbconv",
                             "attention", "transformer_mlp", "transformer_block", "llama_block"}
    for _, point in smallest.values():
        row = measure_point(brief(suite), point, 0, CPU)
        assert row["status"] == "ok", row["error"]
        assert row["time_s"] > 0 and row["act_bytes"] > 0 and row["n_params"] > 0


def test_validation_models_measure_on_cpu(brief):
    suite = get_suite("validation")
    pts = suite.points(CPU)
    for model in ("RegNetX-400MF", "gpt2"):
        point = min((p for p in pts if p.op == model and p.phase == "inference"),
                    key=lambda p: (p.p["factor"], p.p["batch"]))
        row = measure_point(brief(suite), point, 0, CPU)
        assert row["status"] == "ok", row["error"]
        assert row["time_s"] > 0 and row["act_bytes"] > 0
    train = [p for p in pts if p.phase == "train_step"]
    assert {p.p["strategy"] for p in train if p.op == "RegNetX-400MF"} >= {"d", "w", "r"}
    assert {p.p["strategy"] for p in train if p.op == "gpt2"} >= {"d", "w", "s"}


def test_ground_truth_suites_repeat_more_on_a_cpu_than_on_a_gpu():
    """Whole models and their blocks are timed again in rounds: five and three times in
    all on a shared CPU, twice on a GPU (whose time is scarcer and noise smaller); on a
    CPU the ranked candidates' training steps 16 times and their blocks 6 times."""
    import types

    from profilers.device import open_device
    from profilers.suites import get_suite
    from profilers.suites.validation import is_ranked

    gpu = types.SimpleNamespace(kind="cuda", supports=lambda dtype: (True, ""))
    for name, on_cpu, on_gpu in (("validation", {4, 15}, {1}), ("blocks", {0, 2, 5}, {0, 1})):
        for device, want in ((open_device("cpu"), on_cpu), (gpu, on_gpu)):
            suite = get_suite(name)
            points = suite.points(device)
            assert not suite.interleave_repeats
            assert {suite.repeats_of(p) for p in points} == want, (name, device.kind)
    suite = get_suite("validation")
    points = suite.points(open_device("cpu"))
    ranked = [p for p in points if suite.repeats_of(p) == 15]
    assert len(ranked) == 26  # 6 RegNetX + 7 gpt2 + 7 Llama + 6 RegNetY strategies at x4
    assert all(is_ranked(p.p["factor"], p.p["strategy"], p.phase) for p in ranked)
    assert {(p.p["factor"], p.phase) for p in ranked} == {(4.0, "train_step")}
    assert get_suite("validation").max_repeats == 1  # the class is left as it was


def test_validation_suite_measures_one_complete_ranking_first():
    """Scarce GPU time or a short run must still leave a whole set of strategies to rank:
    the ranked candidates at each family's middle batch, in every dtype, come first."""
    import types

    from profilers.device import open_device
    from profilers.suites import get_suite
    from profilers.suites.validation import CNN_STRATEGIES, GPT_STRATEGIES, is_ranked

    gpu = types.SimpleNamespace(kind="cuda", supports=lambda dtype: (True, ""))
    families = (("RegNetX-400MF", CNN_STRATEGIES), ("gpt2", GPT_STRATEGIES),
                ("Llama-3-8B", GPT_STRATEGIES), ("RegNetY-400MF", CNN_STRATEGIES))
    for device, dtypes, batch in ((open_device("cpu"), {"float32"},
                                   {"RegNetX-400MF": 8, "gpt2": 4, "Llama-3-8B": 4,
                                    "RegNetY-400MF": 8}),
                                  (gpu, {"tf32", "bfloat16"},
                                   {"RegNetX-400MF": 64, "gpt2": 8, "Llama-3-8B": 8,
                                    "RegNetY-400MF": 64})):
        points = get_suite("validation").points(device)
        n = sum(len(ss) for _, ss in families) * len(dtypes)
        head, rest = points[:n], points[n:]
        assert all(is_ranked(p.p["factor"], p.p["strategy"], p.phase) for p in head)
        assert {(p.op, p.p["strategy"], p.dtype) for p in head} == {
            (m, s, dt) for m, ss in families for s in ss for dt in dtypes}
        for model, b in batch.items():
            assert {p.p["batch"] for p in head if p.op == model} == {b}
        assert len({p.id for p in points}) == len(points) and not {p.id for p in head} & {p.id for p in rest}
        # set by set: gpt2 then RegNetX (the target families), bfloat16 before tf32, so
        # any prefix of the head is whole sets and at most one part-measured set
        sets = [(p.op, p.dtype) for p in head]
        order = list(dict.fromkeys(sets))
        assert sets == sorted(sets, key=order.index)  # each set contiguous
        assert [m for m, _ in order][:1] == ["gpt2"] and order[1][0] in ("gpt2", "RegNetX-400MF")
        if len(dtypes) > 1:
            assert order[:2] == [("gpt2", "bfloat16"), ("RegNetX-400MF", "bfloat16")]
            assert order[-1] == ("Llama-3-8B", "tf32")
