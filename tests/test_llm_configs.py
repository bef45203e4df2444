"""Named transformer configs: lookup and the published architecture figures."""
from __future__ import annotations

import json

import pytest

from perfmodel.errors import PerfmodelError
from perfmodel.models.transformer_config import TransformerConfig, load_transformer_config
from perfmodel.models.transformer_configs import (TRANSFORMER_CONFIGS, get_transformer_config,
                                                  list_transformer_configs)


@pytest.mark.parametrize("name", ["gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl",
                                  "GPT-3-Small", "GPT-3-175B", "Llama-2-7B", "Llama-2-13B",
                                  "Llama-2-70B", "Llama-3-8B", "Llama-3-70B", "Llama-3.1-405B"])
def test_names_as_authors_spell_them(name):
    assert get_transformer_config(name).name == name
    assert get_transformer_config(name.upper()).name == name
    assert get_transformer_config(name.lower().replace("-", "_")).name == name


def test_aliases_and_errors():
    assert get_transformer_config("GPT-3-125M").name == "GPT-3-Small"
    assert get_transformer_config("gpt3-1.3b").name == "GPT-3-XL"
    with pytest.raises(PerfmodelError, match="Llama-2-7B"):
        get_transformer_config("Llama-2-8B")


def test_published_shapes():
    c = get_transformer_config("Llama-3.1-405B")
    assert (c.d_model, c.n_layers, c.n_heads, c.kv_heads, c.d_ff, c.vocab_size) == (
        16384, 126, 128, 8, 53248, 128256)
    c = get_transformer_config("GPT-3-175B")
    assert (c.d_model, c.n_layers, c.n_heads, c.head_dim, c.seq_len) == (12288, 96, 96, 128, 2048)
    c = get_transformer_config("Llama-2-70B")
    assert (c.kv_heads, c.d_ff, c.vocab_size, c.seq_len) == (8, 28672, 32000, 4096)
    for cfg in TRANSFORMER_CONFIGS.values():
        assert cfg.d_model % cfg.n_heads == 0 and cfg.n_heads % cfg.kv_heads == 0, cfg.name
        assert cfg.source
    assert len(list_transformer_configs()) == len(TRANSFORMER_CONFIGS) >= 17


def test_config_json_round_trip_and_hf(tmp_path):
    cfg = get_transformer_config("Llama-3-8B")
    p = tmp_path / "mine.json"
    p.write_text(json.dumps(cfg.to_dict()))
    assert load_transformer_config(p) == cfg
    hf = {"model_type": "llama", "hidden_size": 4096, "num_hidden_layers": 32,
          "num_attention_heads": 32, "num_key_value_heads": 8, "intermediate_size": 14336,
          "vocab_size": 128256, "max_position_embeddings": 8192, "rms_norm_eps": 1e-5,
          "rope_theta": 500000.0, "hidden_act": "silu", "tie_word_embeddings": False}
    p.write_text(json.dumps(hf))
    got = load_transformer_config(p)
    assert got.scaled(name=cfg.name, source=cfg.source, max_context=None) == cfg
    gpt2 = {"n_embd": 768, "n_layer": 12, "n_head": 12, "vocab_size": 50257, "n_positions": 1024}
    p.write_text(json.dumps(gpt2))
    assert load_transformer_config(p).scaled(name="gpt2", source="") == \
        get_transformer_config("gpt2").scaled(source="")
    p.write_text("{not json")
    with pytest.raises(PerfmodelError, match="not valid JSON"):
        load_transformer_config(p)
    with pytest.raises(PerfmodelError, match="lacks field"):
        TransformerConfig.from_dict({"hidden_size": 8})
