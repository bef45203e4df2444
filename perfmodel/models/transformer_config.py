"""Typed configuration of a GPT/Llama-style decoder-only transformer."""
from __future__ import annotations

import json
import numbers
from dataclasses import MISSING, asdict, dataclass, fields, replace
from pathlib import Path

from perfmodel.errors import PerfmodelError


OPTIONAL_INTS = ("n_kv_heads", "max_context", "d_head")
CHOICES = {"mlp": ("gelu", "swiglu"), "norm": ("layernorm", "rmsnorm"),
           "position": ("learned", "rope", "none")}


@dataclass(frozen=True)
class TransformerConfig:
    """Architecture of a decoder-only transformer (published configs use these fields)."""

    name: str
    d_model: int
    n_layers: int
    n_heads: int
    d_ff: int
    vocab_size: int
    seq_len: int  # context length used by default (training sequence length)
    n_kv_heads: int | None = None  # grouped-query attention; None = n_heads (MHA)
    mlp: str = "gelu"  # "gelu" (2 matrices) or "swiglu" (3 matrices)
    norm: str = "layernorm"  # "layernorm" or "rmsnorm"
    position: str = "learned"  # "learned" absolute embeddings or "rope"
    bias: bool = True  # biases in linear layers and norms
    tied_embeddings: bool = True  # output head shares the input embedding
    causal: bool = True
    max_context: int | None = None  # longest supported context when larger than seq_len
    d_head: int | None = None  # per-head width when n_heads x d_head != d_model (PaLM)
    source: str = ""  # where the published figures come from

    def __post_init__(self):
        for key in ("d_model", "n_layers", "n_heads", "d_ff", "vocab_size", "seq_len",
                    "n_kv_heads", "max_context", "d_head"):
            v = getattr(self, key)
            if v is None and key in OPTIONAL_INTS:
                continue
            low = 0 if key == "vocab_size" else 1  # 0: no token embedding (ViT encoder)
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < low:
                raise PerfmodelError(f"transformer config {self.name!r}: {key} must be an "
                                     f"integer >= {low}, got {v!r}")
        if not self.d_head and self.d_model % self.n_heads:
            raise PerfmodelError(f"transformer config {self.name!r}: d_model {self.d_model} is "
                                 f"not a multiple of n_heads {self.n_heads}")
        if self.n_heads % self.kv_heads:
            raise PerfmodelError(f"transformer config {self.name!r}: n_heads {self.n_heads} is "
                                 f"not a multiple of n_kv_heads {self.kv_heads}")
        for key, allowed in CHOICES.items():
            if getattr(self, key) not in allowed:
                raise PerfmodelError(f"transformer config {self.name!r}: {key} must be one of "
                                     f"{', '.join(allowed)}, got {getattr(self, key)!r}")

    @property
    def kv_heads(self) -> int:
        return self.n_kv_heads or self.n_heads

    @property
    def head_dim(self) -> int:
        return self.d_head or self.d_model // self.n_heads

    def context_note(self, seq: int) -> str | None:
        """Why a sequence of `seq` tokens is past this model's published context (its
        `max_context`, else its `seq_len`), or None when it is not: learned positions then
        grow with it (more parameters than published), rotary ones run where the model was
        never trained."""
        limit = self.max_context or self.seq_len
        if seq <= limit:
            return None
        how = ("its learned position table grows with it (parameters beyond the published "
               "model's)" if self.position == "learned" else
               "its positions run past what it was trained on")
        return f"sequence {seq} is beyond {self.name}'s {limit}-token context: {how}"

    def scaled(self, **changes) -> "TransformerConfig":
        """A copy with some fields changed (used by width/depth/sequence scaling)."""
        return replace(self, **changes)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict, name: str | None = None) -> "TransformerConfig":
        """From our own field names or a Hugging Face `config.json` (GPT-2 or Llama style)."""
        own = {f.name for f in fields(cls)}
        if {"d_model", "n_layers"} <= set(d):
            unknown = set(d) - own
            if unknown:
                raise PerfmodelError(f"unknown transformer config fields: {sorted(unknown)}")
            missing = [f.name for f in fields(cls) if f.name not in d and f.name != "name"
                       and f.default is MISSING]
            if missing:
                raise PerfmodelError(f"transformer config lacks field(s) {', '.join(missing)}")
            return cls(**({"name": name or "custom"} | d))
        return _from_hf(d, name or d.get("_name_or_path") or d.get("model_type") or "custom")


def _from_hf(d: dict, name: str) -> TransformerConfig:
    """Map Hugging Face GPT-2 (`n_embd`, ...) or Llama (`hidden_size`, ...) keys."""
    try:
        if "n_embd" in d:  # GPT-2 family
            return TransformerConfig(
                name=name, d_model=d["n_embd"], n_layers=d["n_layer"], n_heads=d["n_head"],
                d_ff=d.get("n_inner") or 4 * d["n_embd"], vocab_size=d["vocab_size"],
                seq_len=d.get("n_positions", d.get("n_ctx", 1024)),
                tied_embeddings=d.get("tie_word_embeddings", True))
        act = str(d.get("hidden_act", "silu")).lower()
        return TransformerConfig(
            name=name, d_model=d["hidden_size"], n_layers=d["num_hidden_layers"],
            n_heads=d["num_attention_heads"], n_kv_heads=d.get("num_key_value_heads"),
            d_ff=d["intermediate_size"], vocab_size=d["vocab_size"],
            seq_len=d.get("max_position_embeddings", 2048),
            mlp="swiglu" if act in ("silu", "swish", "swiglu") else "gelu",
            norm="rmsnorm" if "rms_norm_eps" in d else "layernorm",
            position="rope" if "rope_theta" in d or d.get("model_type") == "llama" else "learned",
            bias=bool(d.get("attention_bias", d.get("mlp_bias", False))),
            tied_embeddings=bool(d.get("tie_word_embeddings", False)))
    except KeyError as exc:
        raise PerfmodelError(f"transformer config lacks field {exc.args[0]!r}") from None


def load_transformer_config(path) -> TransformerConfig:
    """Read a config JSON file (our field names or a Hugging Face config.json)."""
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except OSError as exc:
        raise PerfmodelError(f"cannot read {p}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise PerfmodelError(f"{p} is not valid JSON: {exc.msg} at line {exc.lineno}") from None
    if not isinstance(data, dict):
        raise PerfmodelError(f"{p} must hold one JSON object")
    return TransformerConfig.from_dict(data, name=data.get("name") or p.stem)
