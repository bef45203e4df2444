"""GPT/Llama-style decoder-only transformer built from a `TransformerConfig`.

Pre-norm blocks: `x + Attention(norm(x))`, then `x + MLP(norm(x))`. Attention has
separate q/k/v/o projections (grouped-query attention when `n_kv_heads < n_heads`),
rotary embeddings when `position == "rope"`, and calls
`torch.nn.functional.scaled_dot_product_attention`. The MLP is `gelu` (two matrices) or
`swiglu` (three). `Transformer` maps token ids `(batch, seq)` to logits
`(batch, seq, vocab)`; its `input_size` is `(seq_len,)`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from perfmodel.errors import PerfmodelError
from perfmodel.models.transformer_config import TransformerConfig

ROPE_THETA = 10000.0


def make_norm(cfg: TransformerConfig) -> nn.Module:
    """LayerNorm (with bias when `cfg.bias`) or RMSNorm over `d_model`."""
    if cfg.norm == "rmsnorm":
        return nn.RMSNorm(cfg.d_model, eps=1e-5)
    return nn.LayerNorm(cfg.d_model, eps=1e-5, bias=cfg.bias)


def apply_rope(x: torch.Tensor, theta: float = ROPE_THETA) -> torch.Tensor:
    """Rotary position embedding on `(batch, heads, seq, head_dim)` (rotate-half form)."""
    seq, dim = x.shape[-2], x.shape[-1]
    inv = 1.0 / theta ** (torch.arange(0, dim, 2, device=x.device, dtype=torch.float32) / dim)
    ang = torch.outer(torch.arange(seq, device=x.device, dtype=torch.float32), inv)
    cos = torch.cat([ang.cos(), ang.cos()], -1).to(x.dtype)
    sin = torch.cat([ang.sin(), ang.sin()], -1).to(x.dtype)
    x1, x2 = x[..., : dim // 2], x[..., dim // 2:]
    return x * cos + torch.cat([-x2, x1], -1) * sin


class Attention(nn.Module):
    """Multi-head (or grouped-query) self-attention with an output projection."""

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.n_heads, self.kv_heads, self.head_dim = cfg.n_heads, cfg.kv_heads, cfg.head_dim
        self.causal, self.rope = cfg.causal, cfg.position == "rope"
        d, hd = cfg.d_model, cfg.head_dim
        self.q_proj = nn.Linear(d, cfg.n_heads * hd, bias=cfg.bias)
        self.k_proj = nn.Linear(d, cfg.kv_heads * hd, bias=cfg.bias)
        self.v_proj = nn.Linear(d, cfg.kv_heads * hd, bias=cfg.bias)
        self.o_proj = nn.Linear(cfg.n_heads * hd, d, bias=cfg.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, s, _ = x.shape
        q = self.q_proj(x).view(b, s, self.n_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, s, self.kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, s, self.kv_heads, self.head_dim).transpose(1, 2)
        if self.rope:
            q, k = apply_rope(q), apply_rope(k)
        gqa = self.kv_heads != self.n_heads
        y = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal, enable_gqa=gqa)
        return self.o_proj(y.transpose(1, 2).reshape(b, s, self.n_heads * self.head_dim))


class MLP(nn.Module):
    """Feed-forward: `fc2(gelu(fc1(x)))` or SwiGLU `down(silu(gate(x)) * up(x))`."""

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.swiglu = cfg.mlp == "swiglu"
        d, f = cfg.d_model, cfg.d_ff
        if self.swiglu:
            self.gate = nn.Linear(d, f, bias=cfg.bias)
            self.up = nn.Linear(d, f, bias=cfg.bias)
            self.down = nn.Linear(f, d, bias=cfg.bias)
        else:
            self.fc1 = nn.Linear(d, f, bias=cfg.bias)
            self.fc2 = nn.Linear(f, d, bias=cfg.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.swiglu:
            return self.down(F.silu(self.gate(x)) * self.up(x))
        return self.fc2(F.gelu(self.fc1(x)))


class TransformerBlock(nn.Module):
    """Pre-norm block: attention then MLP, each with a residual connection."""

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.norm1 = make_norm(cfg)
        self.attn = Attention(cfg)
        self.norm2 = make_norm(cfg)
        self.mlp = MLP(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class Transformer(nn.Module):
    """Decoder-only language model: embeddings, `n_layers` blocks, final norm, LM head.

    `seq_len` (default `cfg.seq_len`) is the sequence length of `input_size`; a learned
    position table keeps `max(cfg.seq_len, seq_len)` rows, so running a model on shorter
    sequences does not change its parameter count.
    """

    def __init__(self, cfg: TransformerConfig, seq_len: int | None = None):
        super().__init__()
        self.cfg = cfg
        seq_len = seq_len or cfg.seq_len
        if seq_len < 1:
            raise PerfmodelError(f"sequence length must be positive, got {seq_len}")
        self.input_size = (seq_len,)
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.n_positions = max(cfg.seq_len, seq_len)
        self.pos_emb = (nn.Embedding(self.n_positions, cfg.d_model)
                        if cfg.position == "learned" else None)
        self.blocks = nn.ModuleList(TransformerBlock(cfg) for _ in range(cfg.n_layers))
        self.norm = make_norm(cfg)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        if cfg.tied_embeddings:
            self.lm_head.weight = self.tok_emb.weight

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        s = idx.shape[-1]
        if self.pos_emb is not None and s > self.n_positions:
            raise PerfmodelError(f"sequence of {s} tokens exceeds the {self.n_positions} "
                                 "learned positions")
        x = self.tok_emb(idx)
        if self.pos_emb is not None:
            x = x + self.pos_emb(torch.arange(s, device=idx.device))
        for blk in self.blocks:
            x = blk(x)
        return self.lm_head(self.norm(x))

    def example_input(self, batch: int = 1, device="cpu") -> torch.Tensor:
        """Token ids of shape `(batch, *input_size)`."""
        return torch.zeros(batch, *self.input_size, dtype=torch.long, device=device)
