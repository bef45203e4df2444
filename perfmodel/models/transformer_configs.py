"""Published decoder-only transformer configs, named as their authors spell them.

Sources: GPT-2 - Radford et al. 2019 and the released checkpoints' `config.json`
(vocab 50257, context 1024, tied embeddings, learned positions, GELU MLP of 4d);
GPT-3 - Brown et al. 2020, Table 2.1 (context 2048, GPT-2 BPE vocab 50257, d_ff = 4d);
Llama 2 - Touvron et al. 2023 and the released `config.json` (vocab 32000, context 4096,
SwiGLU, RMSNorm, RoPE, no biases, untied head; GQA with 8 KV heads for 70B);
Llama 3 / 3.1 - Meta, "The Llama 3 Herd of Models" 2024, Table 3 (vocab 128256, GQA with
8 KV heads; 405B: 126 layers, d 16384, FFN 53248, 128 heads); PaLM - Chowdhery et al.
2022, Table 1 (540B: 118 layers, d 18432, 48 heads of 256, multi-query attention, SwiGLU
with d_ff = 4d, vocab 256k, shared embeddings, no biases, sequence 2048).
"""
from __future__ import annotations

import difflib
from pathlib import Path

from perfmodel.errors import PerfmodelError
from perfmodel.models.transformer_config import TransformerConfig, load_transformer_config

_GPT2 = "Radford et al. 2019 (GPT-2) and the released config.json"
_GPT3 = "Brown et al. 2020 (GPT-3), Table 2.1"
_LLAMA2 = "Touvron et al. 2023 (Llama 2) and the released config.json"
_LLAMA3 = "Llama Team, Meta 2024 (The Llama 3 Herd of Models), Table 3, and config.json"


def _gpt2(name, d, layers, heads) -> TransformerConfig:
    return TransformerConfig(name=name, d_model=d, n_layers=layers, n_heads=heads,
                             d_ff=4 * d, vocab_size=50257, seq_len=1024, source=_GPT2)


def _gpt3(name, d, layers, heads, note="") -> TransformerConfig:
    return TransformerConfig(name=name, d_model=d, n_layers=layers, n_heads=heads,
                             d_ff=4 * d, vocab_size=50257, seq_len=2048,
                             source=_GPT3 + note)


def _llama(name, d, layers, heads, kv, ff, vocab, seq, source, max_context=None):
    return TransformerConfig(name=name, d_model=d, n_layers=layers, n_heads=heads,
                             n_kv_heads=kv, d_ff=ff, vocab_size=vocab, seq_len=seq,
                             mlp="swiglu", norm="rmsnorm", position="rope", bias=False,
                             tied_embeddings=False, max_context=max_context, source=source)


_ALL = (
    _gpt2("gpt2", 768, 12, 12),
    _gpt2("gpt2-medium", 1024, 24, 16),
    _gpt2("gpt2-large", 1280, 36, 20),
    _gpt2("gpt2-xl", 1600, 48, 25),
    _gpt3("GPT-3-Small", 768, 12, 12),
    _gpt3("GPT-3-Medium", 1024, 24, 16),
    _gpt3("GPT-3-Large", 1536, 24, 16),
    # Table 2.1 prints 24 heads of d_head 128 for d_model 2048, which cannot both hold;
    # we keep d_head 128 (16 heads). Head count does not change params or FLOPs.
    _gpt3("GPT-3-XL", 2048, 24, 16, "; 16 heads of 128 (the table's 24 x 128 != 2048)"),
    _gpt3("GPT-3-2.7B", 2560, 32, 32),
    _gpt3("GPT-3-6.7B", 4096, 32, 32),
    # Table 2.1 prints d_model 5140 with 40 heads of 128; 40 x 128 = 5120 (as Megatron uses).
    _gpt3("GPT-3-13B", 5120, 40, 40, "; d_model 5120 = 40 x 128 (the table prints 5140)"),
    _gpt3("GPT-3-175B", 12288, 96, 96),
    _llama("Llama-2-7B", 4096, 32, 32, 32, 11008, 32000, 4096, _LLAMA2),
    _llama("Llama-2-13B", 5120, 40, 40, 40, 13824, 32000, 4096, _LLAMA2),
    _llama("Llama-2-70B", 8192, 80, 64, 8, 28672, 32000, 4096, _LLAMA2),
    _llama("Llama-3-8B", 4096, 32, 32, 8, 14336, 128256, 8192, _LLAMA3),
    _llama("Llama-3-70B", 8192, 80, 64, 8, 28672, 128256, 8192, _LLAMA3),
    _llama("Llama-3.1-8B", 4096, 32, 32, 8, 14336, 128256, 8192, _LLAMA3, 131072),
    _llama("Llama-3.1-70B", 8192, 80, 64, 8, 28672, 128256, 8192, _LLAMA3, 131072),
    _llama("Llama-3.1-405B", 16384, 126, 128, 8, 53248, 128256, 8192, _LLAMA3, 131072),
    TransformerConfig(name="PaLM-540B", d_model=18432, n_layers=118, n_heads=48, d_head=256,
                      n_kv_heads=1,
                      d_ff=73728, vocab_size=256000, seq_len=2048, mlp="swiglu",
                      norm="layernorm", position="rope", bias=False, tied_embeddings=True,
                      source="Chowdhery et al. 2022 (PaLM), Table 1; parallel attention/MLP "
                             "layers are modelled as sequential (same params and FLOPs)"),
)

TRANSFORMER_CONFIGS: dict[str, TransformerConfig] = {c.name: c for c in _ALL}

# Other spellings people use -> canonical name.
_ALIASES = {
    "gpt2-small": "gpt2", "gpt-2": "gpt2", "gpt-2-small": "gpt2", "gpt2-124m": "gpt2",
    "gpt-2-medium": "gpt2-medium", "gpt2-355m": "gpt2-medium",
    "gpt-2-large": "gpt2-large", "gpt2-774m": "gpt2-large",
    "gpt-2-xl": "gpt2-xl", "gpt2-1.5b": "gpt2-xl",
    "gpt-3-125m": "GPT-3-Small", "gpt-3-350m": "GPT-3-Medium", "gpt-3-760m": "GPT-3-Large",
    "gpt-3-1.3b": "GPT-3-XL", "gpt-3": "GPT-3-175B", "gpt3": "GPT-3-175B",
    "llama-3.1-8b": "Llama-3.1-8B", "palm": "PaLM-540B",
}


def _norm(name: str) -> str:
    s = str(name).strip().lower().replace("_", "-").replace(" ", "-")
    return s.replace("gpt3", "gpt-3").replace("llama2", "llama-2").replace("llama3", "llama-3")


_INDEX = {_norm(k): k for k in TRANSFORMER_CONFIGS} | {_norm(a): k for a, k in _ALIASES.items()}


def get_transformer_config(name: str) -> TransformerConfig:
    """The named published config (case-insensitive; `_`/space/`-` interchangeable)."""
    key = _INDEX.get(_norm(name))
    if key is None:
        close = difflib.get_close_matches(_norm(name), list(_INDEX), n=4, cutoff=0.5)
        names = list(dict.fromkeys(_INDEX[c] for c in close))
        hint = (f"close matches: {', '.join(names)}" if names
                else f"known: {', '.join(TRANSFORMER_CONFIGS)}")
        raise PerfmodelError(f"unknown transformer config {name!r}; {hint}")
    return TRANSFORMER_CONFIGS[key]


def as_transformer_config(model) -> TransformerConfig:
    """A TransformerConfig from a config, a published name, or a JSON file path."""
    if isinstance(model, TransformerConfig):
        return model
    text = str(model)
    if text.lower().endswith(".json") or Path(text).is_file():
        return load_transformer_config(text)
    return get_transformer_config(text)


def list_transformer_configs() -> list[str]:
    """Names of the published configs."""
    return list(TRANSFORMER_CONFIGS)
