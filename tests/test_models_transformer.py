"""Decoder-only transformer and ViT modules, and the model registry."""
from __future__ import annotations

import pytest
import torch

from perfmodel.errors import PerfmodelError
from perfmodel.models.registry import build_model, complexity, get_params, list_models
from perfmodel.models.transformer import MLP, Attention, Transformer, TransformerBlock
from perfmodel.models.transformer_config import TransformerConfig
from perfmodel.models.vit import ViT, ViTParams


def _n(model):
    return sum(p.numel() for p in model.parameters())


# Parameter counts of the released checkpoints (Hugging Face `num_parameters()`,
# torchvision for ViT-B/16): published facts our modules must reproduce.
PUBLISHED_PARAMS = {
    "gpt2": 124_439_808,
    "gpt2-xl": 1_557_611_200,
    "Llama-2-7B": 6_738_415_616,
    "Llama-2-70B": 68_976_648_192,
    "Llama-3-8B": 8_030_261_248,
    "Llama-3-70B": 70_553_706_496,
    "ViT-B/16": 86_567_656,
}


@pytest.mark.parametrize("name", sorted(PUBLISHED_PARAMS))
def test_published_param_counts(name):
    model = build_model(name, device="meta")
    assert _n(model) == PUBLISHED_PARAMS[name]


def test_405b_on_meta():
    model = build_model("Llama-3.1-405B", device="meta")
    assert all(p.device.type == "meta" for p in model.parameters())
    assert 405e9 < _n(model) < 406e9
    assert model.input_size == (8192,)


SMALL = TransformerConfig("tiny", d_model=64, n_layers=2, n_heads=8, n_kv_heads=2, d_ff=96,
                          vocab_size=101, seq_len=16, mlp="swiglu", norm="rmsnorm",
                          position="rope", bias=False, tied_embeddings=False)


@pytest.mark.parametrize("cfg", [SMALL, SMALL.scaled(n_kv_heads=None, mlp="gelu",
                                                     norm="layernorm", position="learned",
                                                     bias=True, tied_embeddings=True)])
def test_forward_shape_and_causality(cfg):
    torch.manual_seed(0)
    model = Transformer(cfg).eval()
    idx = torch.randint(0, cfg.vocab_size, (2, cfg.seq_len))
    with torch.no_grad():
        out = model(idx)
        assert out.shape == (2, cfg.seq_len, cfg.vocab_size)
        idx2 = idx.clone()
        idx2[:, -1] = (idx2[:, -1] + 1) % cfg.vocab_size
        out2 = model(idx2)
    # Changing the last token changes only the last position's logits (causal mask).
    assert torch.allclose(out[:, :-1], out2[:, :-1], atol=1e-5)
    assert not torch.allclose(out[:, -1], out2[:, -1])
    assert model.example_input(3).shape == (3, cfg.seq_len)


def test_block_parts_param_counts():
    d, f, hd, kv = SMALL.d_model, SMALL.d_ff, SMALL.head_dim, SMALL.kv_heads
    assert _n(Attention(SMALL)) == 2 * d * d + 2 * d * kv * hd
    assert _n(MLP(SMALL)) == 3 * d * f
    assert _n(TransformerBlock(SMALL)) == _n(Attention(SMALL)) + _n(MLP(SMALL)) + 2 * d
    x = torch.randn(2, SMALL.seq_len, d)
    assert TransformerBlock(SMALL)(x).shape == x.shape


def test_bad_transformer_configs():
    with pytest.raises(PerfmodelError):
        Transformer(SMALL.scaled(n_heads=7))
    with pytest.raises(PerfmodelError):
        Transformer(SMALL.scaled(mlp="relu2"))


def test_vit_forward_and_complexity():
    p = ViTParams(patch_size=8, hidden=64, depth=2, heads=4, mlp=128, resolution=32,
                  num_classes=10)
    model = ViT(p).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    cx = complexity(p)
    assert cx.params == _n(model)
    n_tok = 17
    mats = 3 * 8 * 8 * 64 * 16 + 2 * (4 * 64 * 64 + 2 * 64 * 128) * n_tok + 64 * 10
    assert cx.macs > mats  # plus biases and the two attention matmuls
    with pytest.raises(PerfmodelError):
        ViTParams(patch_size=16, hidden=64, depth=1, heads=4, mlp=64, resolution=40)


def test_registry_names_and_errors():
    names = list_models()
    assert {"RegNetX-200MF", "R-50-1x64d", "EN-B0", "ViT-L/16", "gpt2-xl", "GPT-3-175B",
            "Llama-2-7B", "Llama-3-8B", "Llama-3.1-405B"} <= set(names)
    assert get_params("LLAMA-2-7b").d_model == 4096
    assert get_params("vit-b/16").hidden == 768
    with pytest.raises(PerfmodelError, match="RegNetY-200MF"):
        get_params("RegNetY-200")
    with pytest.raises(PerfmodelError, match="unknown parameter"):
        build_model("RegNetX-200MF", widht=3)


def test_overrides():
    m = build_model("gpt2", device="meta", n_layers=2, seq_len=128)
    assert len(m.blocks) == 2 and m.input_size == (128,)
    m = build_model("X-50-32x4d", device="meta", num_classes=10)
    assert m.head.fc.out_features == 10
    with pytest.raises(PerfmodelError):
        complexity("gpt2")  # transformers are counted, not analytic here


def test_shorter_sequence_keeps_position_table():
    cfg = SMALL.scaled(position="learned")
    model = Transformer(cfg, seq_len=8)
    assert model.input_size == (8,) and model.pos_emb.num_embeddings == cfg.seq_len
    assert model(model.example_input(2)).shape == (2, 8, cfg.vocab_size)
    with pytest.raises(PerfmodelError):
        model(torch.zeros(1, cfg.seq_len + 1, dtype=torch.long))


def test_module_params_match_closed_form():
    # Cross-check with perfmodel.llm's closed form on every named config (meta device).
    from perfmodel.llm.params import param_count
    from perfmodel.models.transformer_configs import TRANSFORMER_CONFIGS

    for name, cfg in TRANSFORMER_CONFIGS.items():
        if cfg.n_layers * cfg.d_model ** 2 > 2e11:  # the largest are built in their own tests
            cfg = cfg.scaled(n_layers=1)
        with torch.device("meta"):
            model = Transformer(cfg)
        assert _n(model) == param_count(cfg).total, name
