"""Typed configuration of a GPT/Llama-style decoder-only transformer."""
from __future__ import annotations

from dataclasses import dataclass, replace


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

    @property
    def kv_heads(self) -> int:
        return self.n_kv_heads or self.n_heads

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    def scaled(self, **changes) -> "TransformerConfig":
        """A copy with some fields changed (used by width/depth/sequence scaling)."""
        return replace(self, **changes)
