"""Model scaling ("Fast and Accurate Model Scaling", Dollar et al. 2021): factors,
rounding, and the growth exponents of activations and MACs the paper reports."""
from __future__ import annotations

import math

import pytest
import torch

from perfmodel.errors import PerfmodelError
from perfmodel.models.registry import build_model, complexity, get_params, resolve
from perfmodel.models.scaling import scale, scaling_factors, strategy_weights
from perfmodel.models.transformer_config import TransformerConfig

BASES = ("RegNetX-1.6GF", "RegNetY-4.0GF", "RegNetX-8.0GF")
# Expected exponent of acts in s: depth x s^e_d, width x s^(e_w/2), resolution x s^(e_r/2),
# acts ~ d * w * r^2 (normalised weights e_*).
EXPECTED_ACTS = {"d": 1.0, "r": 1.0, "w": 0.5, "dw": 0.75, "dwr": 5 / 6, "d1_w8_g8_r1": 0.6}


def _exponent(base, strategy, key, s_lo=4, s_hi=16):
    lo = getattr(complexity(scale(base, s_lo, strategy)), key)
    hi = getattr(complexity(scale(base, s_hi, strategy)), key)
    return math.log(hi / lo) / math.log(s_hi / s_lo)


def test_fast_compound_factors():
    f = scaling_factors("d1_w8_g8_r1", 16.0)
    assert f.d == pytest.approx(16 ** 0.1)
    assert f.w == pytest.approx(16 ** 0.4) and f.g == pytest.approx(16 ** 0.4)
    assert f.r == pytest.approx(16 ** 0.05)
    assert f.d * f.w ** 2 * f.r ** 2 == pytest.approx(16.0)
    assert scaling_factors("dWr", 16.0) == f


@pytest.mark.parametrize("strategy,d,w,r", [
    ("d", 1, 0, 0), ("w", 0, 0.5, 0), ("r", 0, 0, 0.5), ("dw", 0.5, 0.25, 0),
    ("dr", 0.5, 0, 0.25), ("wr", 0, 0.25, 0.25), ("dwr", 1 / 3, 1 / 6, 1 / 6),
])
def test_simple_strategy_factors(strategy, d, w, r):
    f = scaling_factors(strategy, 4.0)
    assert (f.d, f.w, f.g, f.r) == pytest.approx((4 ** d, 4 ** w, 1.0, 4 ** r))


@pytest.mark.parametrize("bad", ["", "x", "dd", "d1_q2", "d1_w", "w8-d1"])
def test_bad_strategy(bad):
    with pytest.raises(PerfmodelError):
        strategy_weights(bad)


def test_bad_factor():
    with pytest.raises(PerfmodelError):
        scaling_factors("d", 0)
    with pytest.raises(PerfmodelError):
        scale("RegNetX-200MF", 2.0, None)


@pytest.mark.parametrize("base", BASES)
@pytest.mark.parametrize("strategy", sorted(EXPECTED_ACTS))
def test_acts_exponent(base, strategy):
    # Slope between s=4 and s=16: fixed costs (stem, head, first blocks) that do not scale
    # weigh little there; rounding of depths/widths moves the slope by a few hundredths.
    assert _exponent(base, strategy, "acts") == pytest.approx(EXPECTED_ACTS[strategy], abs=0.07)


@pytest.mark.parametrize("base", BASES)
@pytest.mark.parametrize("strategy", ["d", "r", "d1_w8_g8_r1", "dwr"])
def test_macs_grow_like_s(base, strategy):
    assert _exponent(base, strategy, "macs") == pytest.approx(1.0, abs=0.1)


@pytest.mark.parametrize("base", BASES)
def test_macs_width_only(base):
    # 'w' keeps group widths, so the grouped 3x3 convs grow only linearly in width: MACs
    # grow a little slower than s (the reason fast compound scaling also scales g).
    assert 0.8 <= _exponent(base, "w", "macs") <= 1.02


@pytest.mark.parametrize("strategy", ["d1_w8_g8_r1", "dw", "w"])
def test_rounding_rules(strategy):
    p = scale("RegNetY-800MF", 10.0, strategy)
    assert all(w % 8 == 0 for w in p.widths)
    assert all(g in (1, 2, 4) or g % 8 == 0 for g in p.group_ws)
    assert all(int(round(w * b)) % g == 0 for w, b, g in zip(p.widths, p.bot_muls, p.group_ws))
    assert p.resolution % 4 == 0
    model = build_model("RegNetY-800MF", 10.0, strategy, device="meta")
    assert sum(q.numel() for q in model.parameters()) == complexity(p).params


def test_scaled_model_runs_and_matches_params():
    model = build_model("RegNetX-200MF", 4.0, "d1_w8_g8_r1", resolution=64).eval()
    p = resolve("RegNetX-200MF", 4.0, "d1_w8_g8_r1", resolution=64)
    assert sum(q.numel() for q in model.parameters()) == complexity(p).params
    assert model.input_size == (3, p.resolution, p.resolution)
    with torch.no_grad():
        assert model(torch.randn(1, *model.input_size)).shape == (1, 1000)


def test_resnet_and_effnet_scale():
    r = scale("R-50-1x64d", 4.0, "d")
    assert r.depths == (12, 16, 24, 12)
    e = scale("EN-B0", 4.0, "d1_w8_g8_r1")
    assert e.resolution == round(224 * 4 ** 0.05 / 4) * 4
    assert all(w % 8 == 0 for w in (*e.widths, e.stem_w, e.head_w))
    cx0, cx1 = complexity("EN-B0"), complexity(e)
    assert 3.0 < cx1.macs / cx0.macs < 5.0


def _dense_flops(cfg: TransformerConfig) -> float:
    # Matrix FLOPs of the blocks per sequence (no attention-score term, no embeddings).
    q_out, kv_out = cfg.n_heads * cfg.head_dim, cfg.kv_heads * cfg.head_dim
    per_layer = 2 * cfg.d_model * (2 * q_out + 2 * kv_out)  # q, k, v, o
    per_layer += 2 * cfg.d_model * cfg.d_ff * (3 if cfg.mlp == "swiglu" else 2)
    return per_layer * cfg.n_layers * cfg.seq_len


@pytest.mark.parametrize("strategy,expect", [
    ("d", dict(n_layers=48)), ("s", dict(seq_len=4096)), ("w", dict(n_heads=24)),
])
def test_transformer_scaling(strategy, expect):
    base = TransformerConfig("t", d_model=768, n_layers=12, n_heads=12, d_ff=3072,
                             vocab_size=50257, seq_len=1024)
    cfg = scale(base, 4.0, strategy)
    for k, v in expect.items():
        assert getattr(cfg, k) == v
    assert cfg.head_dim == base.head_dim
    assert _dense_flops(cfg) / _dense_flops(base) == pytest.approx(4.0, rel=0.02)


def test_transformer_compound_and_gqa():
    base = get_params("Llama-3-8B")
    cfg = scale(base, 8.0, "d1_w8_s1")
    assert cfg.n_heads % cfg.kv_heads == 0 and cfg.head_dim == base.head_dim
    assert _dense_flops(cfg) / _dense_flops(base) == pytest.approx(8.0, rel=0.15)
    with pytest.raises(PerfmodelError):
        scale(base, 2.0, "r")  # images only


def test_vit_scaling():
    p = scale("ViT-B/16", 4.0, "r")
    assert p.resolution == 448 and p.resolution % p.patch_size == 0
    q = scale("ViT-B/16", 4.0, "w")
    assert q.hidden == 1536 and q.heads == 24 and q.mlp == 6144


@pytest.mark.parametrize("strategy", ["d1_w8_g8_r1", "dwr"])
def test_factor_one_is_identity_on_all_baselines(strategy):
    from perfmodel.models.cnn_configs import CNN_CONFIGS

    for name in CNN_CONFIGS:
        assert complexity(scale(name, 1.0, strategy)) == complexity(name), name


def test_transformer_with_explicit_head_width():
    base = get_params("PaLM-540B")
    cfg = scale(base, 4.0, "w")
    assert cfg.head_dim == base.head_dim == 256
    assert cfg.n_heads == 96 and cfg.d_model == 2 * base.d_model
    assert _dense_flops(cfg) / _dense_flops(base) == pytest.approx(4.0, rel=0.02)


def test_a_factor_that_would_grow_one_dimension_past_100x_is_refused():
    """A 1e9x deeper network would take minutes and gigabytes to count: refused at once,
    while the same factor spread over depth, width and resolution may stay in bounds."""
    import time

    t0 = time.perf_counter()
    with pytest.raises(PerfmodelError, match="multiplies the depth by 1e\\+09"):
        scale("RegNetX-400MF", 1e9, "d")
    assert time.perf_counter() - t0 < 5
    with pytest.raises(PerfmodelError, match="width"):
        scaling_factors("w", 1e5)
    assert scaling_factors("dwr", 1e5).d < 100
