"""Vision Transformer (Dosovitskiy et al. 2021): patch embedding (conv p x p / p), class
token, learned position embeddings, pre-norm encoder blocks, final LayerNorm, linear head
on the class token. Encoder blocks are `TransformerBlock`s (non-causal, LayerNorm, GELU).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from perfmodel.errors import PerfmodelError
from perfmodel.models.complexity import Complexity, conv2d_cx, layernorm_cx, linear_cx
from perfmodel.models.transformer import TransformerBlock
from perfmodel.models.transformer_config import TransformerConfig


@dataclass(frozen=True)
class ViTParams:
    """A ViT: patch size, hidden width, depth, heads, MLP width, resolution."""

    patch_size: int
    hidden: int
    depth: int
    heads: int
    mlp: int
    resolution: int = 224
    num_classes: int = 1000
    name: str = field(default="vit", compare=False)

    def __post_init__(self):
        if self.resolution % self.patch_size:
            raise PerfmodelError(
                f"resolution {self.resolution} is not a multiple of patch size {self.patch_size}"
            )
        if self.hidden % self.heads:
            raise PerfmodelError(f"hidden {self.hidden} is not a multiple of heads {self.heads}")

    @property
    def seq_len(self) -> int:
        """Patches plus the class token."""
        return (self.resolution // self.patch_size) ** 2 + 1

    @property
    def input_size(self) -> tuple[int, int, int]:
        return (3, self.resolution, self.resolution)

    def encoder_config(self) -> TransformerConfig:
        return TransformerConfig(
            name=self.name, d_model=self.hidden, n_layers=self.depth, n_heads=self.heads,
            d_ff=self.mlp, vocab_size=0, seq_len=self.seq_len, mlp="gelu",
            norm="layernorm", position="learned", bias=True, tied_embeddings=False,
            causal=False,
        )


# Published configs (Dosovitskiy et al. 2021, Table 1), ImageNet-1k head, 224x224.
VIT_CONFIGS = {
    f"ViT-{size}/{p}": ViTParams(p, h, d, n, m, name=f"ViT-{size}/{p}")
    for size, h, d, n, m in (("B", 768, 12, 12, 3072), ("L", 1024, 24, 16, 4096),
                             ("H", 1280, 32, 16, 5120))
    for p in ((14,) if size == "H" else (16, 32))
}


class ViT(nn.Module):
    """Vision Transformer built from `ViTParams`; `input_size` is (3, R, R)."""

    def __init__(self, p: ViTParams):
        super().__init__()
        self.params = p
        self.input_size = p.input_size
        cfg = p.encoder_config()
        self.patchify = nn.Conv2d(3, p.hidden, p.patch_size, stride=p.patch_size)
        self.class_token = nn.Parameter(torch.zeros(1, 1, p.hidden))
        self.pos_embedding = nn.Parameter(torch.zeros(1, p.seq_len, p.hidden))
        self.blocks = nn.ModuleList(TransformerBlock(cfg) for _ in range(p.depth))
        self.norm = nn.LayerNorm(p.hidden, eps=1e-6)
        self.head = nn.Linear(p.hidden, p.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patchify(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.class_token.expand(x.shape[0], -1, -1), x], dim=1)
        x = x + self.pos_embedding
        for blk in self.blocks:
            x = blk(x)
        return self.head(self.norm(x)[:, 0])

    @staticmethod
    def complexity(p: ViTParams, resolution: int | None = None) -> Complexity:
        """pycls-style count: linear layers and the two attention matmuls (acts = outputs)."""
        r = resolution or p.resolution
        if r % p.patch_size:
            raise PerfmodelError(f"resolution {r} is not a multiple of patch size {p.patch_size}")
        n_tok = (r // p.patch_size) ** 2 + 1
        h, hd = p.hidden, p.hidden // p.heads
        cx = Complexity(r, r)
        cx = conv2d_cx(cx, 3, h, p.patch_size, stride=p.patch_size, bias=True)
        cx = cx.add(params=h + n_tok * h, h=1, w=1)  # class token, position embeddings
        for _ in range(p.depth):
            cx = layernorm_cx(cx, h)
            cx = linear_cx(cx, h, 3 * h, bias=True, num_locations=n_tok)
            cx = cx.add(macs=2 * p.heads * n_tok * n_tok * hd,
                        acts=p.heads * n_tok * n_tok + n_tok * h)
            cx = linear_cx(cx, h, h, bias=True, num_locations=n_tok)
            cx = layernorm_cx(cx, h)
            cx = linear_cx(cx, h, p.mlp, bias=True, num_locations=n_tok)
            cx = linear_cx(cx, p.mlp, h, bias=True, num_locations=n_tok)
        cx = layernorm_cx(cx, h)
        return linear_cx(cx, h, p.num_classes, bias=True)
