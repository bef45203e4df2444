"""The Hugging Face models NeuSight timed end to end, rebuilt as plain torch modules.

NeuSight (`../shared/data/neusight/e2e_labels.csv`) timed whole models built by
`transformers` from a config, with `attn_implementation="eager"`, in float32 with TF32 off:
inference is `model(input_ids)` under `no_grad` in eval mode, training is the forward in
train mode (dropout on) plus `loss.backward()` of the cross-entropy of the logits against the
input ids (the loss's forward is not in either time, its backward is in the backward; no
optimizer step). Inference models: `BertForSequenceClassification`, `GPT2LMHeadModel`,
`OPTForCausalLM`; training swaps BERT for `BertForPreTraining`.

Each module here runs the same aten ops, in the same order and shapes, as the eager
`transformers` code of those classes (GPT-2 `Conv1D` as `addmm` with an (in, out) weight,
`torch.matmul` on permuted views, the `gelu_new` tanh formula op by op, GPT-2's boolean
causal mask through `torch.where`, BERT's post-norm residuals and additive mask, OPT's
scaled query, `torch.bmm` on (batch x heads) and `max` with the dtype's minimum), so
perfmodel's counter sees what the GPU ran. Two simplifications: the masks are buffers built
once, not per call (OPT builds a (batch, 1, seq, seq) mask per forward, under 0.5% of its
time), and OPT's position ids are an `arange` per sequence (what its cumulative-sum formula
gives for an all-ones mask).

A model is described as perfmodel `Part`s (embeddings, one block per layer, head), so a
block is counted once per shape, like the project's own transformer decomposition.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from perfmodel.predict.parts import ClassificationLoss, Part


@dataclass(frozen=True)
class HfConfig:
    """The fields of a NeuSight model config that shape the compute."""

    name: str
    family: str  # gpt2 | bert | opt
    d_model: int
    n_layers: int
    n_heads: int
    d_ff: int
    vocab: int
    positions: int


# NeuSight's own configs (scripts/asplos/data/DLmodel_configs/*.json): note its `gpt3_xl`
# is 3072 wide (24 layers, 24 heads), not GPT-3 XL's published 2048.
CONFIGS = {
    "bert_large": HfConfig("bert_large", "bert", 1024, 24, 16, 4096, 30522, 512),
    "gpt2_large": HfConfig("gpt2_large", "gpt2", 1280, 36, 20, 5120, 50257, 1024),
    "gpt3_xl": HfConfig("gpt3_xl", "gpt2", 3072, 24, 24, 12288, 50257, 2048),
    "gpt3_27": HfConfig("gpt3_27", "gpt2", 2560, 32, 32, 10240, 50257, 2048),
    "opt_13": HfConfig("opt_13", "opt", 2048, 24, 32, 8192, 50272, 2048),
}


class Conv1D(nn.Module):
    """GPT-2's linear layer: `addmm(bias, x, weight)` with an (in, out) weight."""

    def __init__(self, n_in: int, n_out: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_in, n_out))
        self.bias = nn.Parameter(torch.empty(n_out))

    def forward(self, x):
        out = torch.addmm(self.bias, x.view(-1, x.size(-1)), self.weight)
        return out.view(x.size()[:-1] + (self.weight.shape[1],))


def gelu_new(x):
    """`transformers` NewGELUActivation, op by op (tanh approximation)."""
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


def _heads(x, heads: int):
    """(b, s, heads*hd) -> (b, heads, s, hd) view."""
    b, s, _ = x.shape
    return x.view(b, s, heads, -1).permute(0, 2, 1, 3)


def _merge(x):
    """(b, heads, s, hd) -> (b, s, heads*hd), contiguous."""
    b, h, s, d = x.shape
    return x.permute(0, 2, 1, 3).contiguous().view(b, s, h * d)


class Gpt2Block(nn.Module):
    def __init__(self, c: HfConfig, seq: int):
        super().__init__()
        d = c.d_model
        self.heads = c.n_heads
        self.ln_1, self.ln_2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.c_attn, self.attn_proj = Conv1D(d, 3 * d), Conv1D(d, d)
        self.c_fc, self.mlp_proj = Conv1D(d, c.d_ff), Conv1D(c.d_ff, d)
        self.attn_drop, self.resid_drop, self.mlp_drop = (nn.Dropout(0.1) for _ in range(3))
        self.register_buffer("bias", torch.tril(torch.ones(seq, seq, dtype=torch.bool))
                             .view(1, 1, seq, seq), persistent=False)

    def forward(self, x):
        h = self.ln_1(x)
        q, k, v = self.c_attn(h).split(x.shape[-1], dim=2)
        q, k, v = _heads(q, self.heads), _heads(k, self.heads), _heads(v, self.heads)
        w = torch.matmul(q, k.transpose(-1, -2))
        w = w / torch.full([], v.size(-1) ** 0.5, dtype=w.dtype, device=w.device)
        w = torch.where(self.bias, w, torch.full([], torch.finfo(w.dtype).min, dtype=w.dtype,
                                                 device=w.device))
        w = self.attn_drop(F.softmax(w, dim=-1).type(v.dtype))
        a = self.resid_drop(self.attn_proj(_merge(torch.matmul(w, v))))
        x = a + x
        m = self.mlp_drop(self.mlp_proj(gelu_new(self.c_fc(self.ln_2(x)))))
        return x + m


class Gpt2Embed(nn.Module):
    def __init__(self, c: HfConfig):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(c.vocab, c.d_model), nn.Embedding(c.positions, c.d_model)
        self.drop = nn.Dropout(0.1)

    def forward(self, ids):
        pos = torch.arange(ids.shape[-1], device=ids.device).unsqueeze(0)
        return self.drop(self.wte(ids) + self.wpe(pos))


class CausalLmHead(nn.Module):
    """Final LayerNorm and the (tied, bias-free) vocabulary projection."""

    def __init__(self, c: HfConfig):
        super().__init__()
        self.ln_f = nn.LayerNorm(c.d_model)
        self.lm_head = nn.Linear(c.d_model, c.vocab, bias=False)

    def forward(self, x):
        return self.lm_head(self.ln_f(x))


class BertLayer(nn.Module):
    def __init__(self, c: HfConfig, seq: int):
        super().__init__()
        d = c.d_model
        self.heads = c.n_heads
        self.query, self.key, self.value = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)
        self.attn_out, self.inter, self.out = nn.Linear(d, d), nn.Linear(d, c.d_ff), nn.Linear(c.d_ff, d)
        self.ln_attn, self.ln_out = nn.LayerNorm(d, eps=1e-12), nn.LayerNorm(d, eps=1e-12)
        self.attn_drop, self.hid_drop, self.out_drop = (nn.Dropout(0.1) for _ in range(3))
        # the extended attention mask of an all-ones mask: zeros, added to every score
        self.register_buffer("mask", torch.zeros(1, 1, 1, seq), persistent=False)

    def forward(self, x):
        q = _heads(self.query(x), self.heads)
        k = _heads(self.key(x), self.heads)
        v = _heads(self.value(x), self.heads)
        s = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
        p = self.attn_drop(F.softmax(s + self.mask, dim=-1))
        a = self.ln_attn(self.hid_drop(self.attn_out(_merge(torch.matmul(p, v)))) + x)
        return self.ln_out(self.out_drop(self.out(F.gelu(self.inter(a)))) + a)


class BertEmbed(nn.Module):
    def __init__(self, c: HfConfig):
        super().__init__()
        d = c.d_model
        self.word, self.pos, self.token_type = (nn.Embedding(c.vocab, d), nn.Embedding(c.positions, d),
                                          nn.Embedding(2, d))
        self.ln, self.drop = nn.LayerNorm(d, eps=1e-12), nn.Dropout(0.1)

    def forward(self, ids):
        s = ids.shape[-1]
        types = torch.zeros(1, s, dtype=torch.long, device=ids.device).expand(ids.shape[0], s)
        e = self.word(ids) + self.token_type(types)
        e = e + self.pos(torch.arange(s, device=ids.device).unsqueeze(0))
        return self.drop(self.ln(e))


class BertClassifierHead(nn.Module):
    """Inference: pooler (first token, dense, tanh) and a 2-way classifier."""

    def __init__(self, c: HfConfig):
        super().__init__()
        self.pool, self.cls = nn.Linear(c.d_model, c.d_model), nn.Linear(c.d_model, 2)
        self.drop = nn.Dropout(0.1)

    def forward(self, x):
        return self.cls(self.drop(torch.tanh(self.pool(x[:, 0]))))


class BertPretrainHead(nn.Module):
    """Training: pooler + next-sentence logits (computed, not in the loss) and the masked-LM
    head (dense, gelu, LayerNorm, tied decoder with its own bias); returns the LM logits."""

    def __init__(self, c: HfConfig):
        super().__init__()
        d = c.d_model
        self.pool, self.nsp = nn.Linear(d, d), nn.Linear(d, 2)
        self.transform, self.ln = nn.Linear(d, d), nn.LayerNorm(d, eps=1e-12)
        self.decoder = nn.Linear(d, c.vocab)

    def forward(self, x):
        self.nsp(torch.tanh(self.pool(x[:, 0])))
        return self.decoder(self.ln(F.gelu(self.transform(x))))


class OptLayer(nn.Module):
    def __init__(self, c: HfConfig, seq: int):
        super().__init__()
        d = c.d_model
        self.heads, self.hd = c.n_heads, d // c.n_heads
        self.scaling = self.hd ** -0.5
        self.ln_attn, self.ln_mlp = nn.LayerNorm(d), nn.LayerNorm(d)
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(d, d) for _ in range(4))
        self.fc1, self.fc2 = nn.Linear(d, c.d_ff), nn.Linear(c.d_ff, d)
        self.drop, self.mlp_drop = nn.Dropout(0.1), nn.Dropout(0.1)
        mask = torch.full((seq, seq), torch.finfo(torch.float32).min).triu(1)
        self.register_buffer("mask", mask.view(1, 1, seq, seq), persistent=False)

    def _shape(self, x, b, s):
        return x.view(b, s, self.heads, self.hd).transpose(1, 2).contiguous()

    def forward(self, x):
        b, s, d = x.shape
        h = self.ln_attn(x)
        q = self._shape(self.q_proj(h) * self.scaling, b, s).view(b * self.heads, s, self.hd)
        k = self._shape(self.k_proj(h), b, s).view(b * self.heads, s, self.hd)
        v = self._shape(self.v_proj(h), b, s).view(b * self.heads, s, self.hd)
        w = torch.bmm(q, k.transpose(1, 2)).view(b, self.heads, s, s) + self.mask
        w = torch.max(w, torch.tensor(torch.finfo(w.dtype).min, device=w.device))
        w = F.softmax(w.view(b * self.heads, s, s), dim=-1)
        a = torch.bmm(w, v).view(b, self.heads, s, self.hd).transpose(1, 2).reshape(b, s, d)
        x = x + self.drop(self.out_proj(a))
        flat = x.reshape(-1, d)
        m = self.mlp_drop(self.fc2(F.relu(self.fc1(self.ln_mlp(flat)))))
        return (flat + m).view(b, s, d)


class OptEmbed(nn.Module):
    def __init__(self, c: HfConfig):
        super().__init__()
        self.tokens = nn.Embedding(c.vocab, c.d_model)
        self.positions = nn.Embedding(c.positions + 2, c.d_model)  # OPT's offset of 2

    def forward(self, ids):
        pos = torch.arange(ids.shape[-1], device=ids.device).expand(ids.shape) + 2
        return self.tokens(ids) + self.positions(pos)


BLOCKS = {"gpt2": Gpt2Block, "bert": BertLayer, "opt": OptLayer}
EMBEDS = {"gpt2": Gpt2Embed, "bert": BertEmbed, "opt": OptEmbed}


def head_of(c: HfConfig, train: bool) -> nn.Module:
    if c.family == "bert":
        return BertPretrainHead(c) if train else BertClassifierHead(c)
    return CausalLmHead(c)


def parts(name: str, seq: int, train: bool) -> list[Part]:
    """The model NeuSight timed, as perfmodel parts; with the loss part when training."""
    c = CONFIGS[name]
    if seq > c.positions:
        raise ValueError(f"{name}: sequence {seq} exceeds its {c.positions} positions")
    d, v = c.d_model, c.vocab
    out = [Part("embed", ("hf-embed", c, seq), lambda: EMBEDS[c.family](c), (seq,), "long",
                False, v, group="embed")]
    for i in range(c.n_layers):
        out.append(Part(f"layers.{i}", ("hf-block", c, seq), lambda: BLOCKS[c.family](c, seq),
                        (seq, d), group="transformer_block"))
    head_out = v if c.family != "bert" or train else 2
    out.append(Part("head", ("hf-head", c, seq, train), lambda: head_of(c, train), (seq, d),
                    shared_params=d * v if head_out == v else 0, group="head"))
    if train:
        out.append(Part("loss", ("loss", v), lambda: ClassificationLoss(v), (seq, v),
                        group="loss"))
    return out
