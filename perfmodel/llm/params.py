"""Parameter count of a decoder-only transformer from its config (closed form)."""
from __future__ import annotations

from dataclasses import dataclass

from perfmodel.models.transformer_config import TransformerConfig
from perfmodel.models.transformer_configs import as_transformer_config


@dataclass(frozen=True)
class ParamCount:
    """Parameters by part. `matmul` counts the weights every token multiplies through
    (all linear layers plus the LM head, even when tied) - the N of FLOPs = 6N."""

    embedding: int  # token embedding (shared with the head when tied)
    position: int  # learned absolute position embedding
    attention: int  # per layer: Q, K, V, O weights (+ biases)
    mlp: int  # per layer
    norms: int  # per layer (two norms)
    final_norm: int
    head: int  # untied LM head (0 when tied)
    n_layers: int
    attention_matmul: int  # per layer, weights only
    mlp_matmul: int  # per layer, weights only
    head_matmul: int  # vocab x d_model, counted whether tied or not

    @property
    def per_layer(self) -> int:
        return self.attention + self.mlp + self.norms

    @property
    def total(self) -> int:
        return (self.embedding + self.position + self.n_layers * self.per_layer
                + self.final_norm + self.head)

    @property
    def non_embedding(self) -> int:
        """Total minus token/position embeddings and the untied head (Kaplan et al.)."""
        return self.total - self.embedding - self.position - self.head

    @property
    def matmul(self) -> int:
        return self.n_layers * (self.attention_matmul + self.mlp_matmul) + self.head_matmul


def param_count(cfg: TransformerConfig) -> ParamCount:
    """Exact parameter count for the architecture `perfmodel.models.transformer` builds."""
    cfg = as_transformer_config(cfg)
    d, hd, f = cfg.d_model, cfg.head_dim, cfg.d_ff
    q_out, kv_out = cfg.n_heads * hd, cfg.kv_heads * hd
    attn_w = d * q_out + 2 * d * kv_out + q_out * d
    attn_b = (q_out + 2 * kv_out + d) if cfg.bias else 0
    n_mats = 3 if cfg.mlp == "swiglu" else 2
    mlp_w = n_mats * d * f
    mlp_b = ((n_mats - 1) * f + d) if cfg.bias else 0
    norm = d * (2 if cfg.norm == "layernorm" and cfg.bias else 1)
    return ParamCount(
        embedding=cfg.vocab_size * d,
        position=cfg.seq_len * d if cfg.position == "learned" else 0,
        attention=attn_w + attn_b, mlp=mlp_w + mlp_b, norms=2 * norm, final_norm=norm,
        head=0 if cfg.tied_embeddings else cfg.vocab_size * d, n_layers=cfg.n_layers,
        attention_matmul=attn_w, mlp_matmul=mlp_w, head_matmul=cfg.vocab_size * d,
    )
