"""A model as a list of parts (stem, blocks, head, loss), so each distinct part is counted once.

Counting a whole model with backward on the meta device costs about a second for a
RegNet; ranking 100 scaled candidates must take less than one. Most blocks of a network
repeat (every block of a stage after the first has the same shape), and candidates of
one base share many blocks, so a model is described here, without building it, as
`Part`s in execution order: a module path, a structural key (class, constructor arguments,
input shape), a builder and the input it takes. `perfmodel.predict.counts` counts each key
once per (batch, dtype, phase).

Decomposers exist for the pycls families (AnyNet/RegNet/ResNet and EfficientNet) and for
the decoder-only `Transformer`; any other model (ViT, a user's `nn.Module`) is one part.
The training loss (cross-entropy over classes or vocabulary) is a part of its own.
Ops a model runs between its parts (none for these families: their `forward`s only chain
children) are not represented; the generic single-part path counts everything.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from perfmodel.errors import PerfmodelError
from perfmodel.models.anynet import AnyNetParams
from perfmodel.models.effnet import EffNetParams
from perfmodel.models.transformer_config import TransformerConfig


@dataclass(frozen=True)
class Part:
    """One piece of a model: `build()` makes its module; it consumes `input_shape`.

    - `path`: module path inside the whole model (`""` for a single-part model).
    - `key`: hashable structural key; parts with equal keys and input shapes cost the same.
    - `input_shape`: shape of the part's input *without* the batch dimension.
    - `input_kind`: `"float"` (activations, in the model dtype) or `"long"` (token ids /
      class targets, `high` gives the id range).
    - `input_grad`: whether backward computes the input's gradient (False for the stem).
    - `shared_params`: parameters counted in an earlier part (tied weights).
    """

    path: str
    key: tuple
    build: Callable[[], nn.Module]
    input_shape: tuple
    input_kind: str = "float"
    input_grad: bool = True
    high: int = 1
    shared_params: int = 0
    group: str = ""  # block family name (stem, block, head, loss, model) for reports


class ClassificationLoss(nn.Module):
    """Cross-entropy of logits `(..., classes)` against class ids, as a training step computes it."""

    def __init__(self, classes: int):
        super().__init__()
        self.classes = classes

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        flat = logits.reshape(-1, logits.shape[-1]).float()
        target = torch.zeros(flat.shape[0], dtype=torch.long, device=flat.device)
        return F.cross_entropy(flat, target)


class TokenEmbedding(nn.Module):
    """The transformer's input: token embedding plus learned positions (if any)."""

    def __init__(self, tok_emb: nn.Embedding, pos_emb: nn.Embedding | None):
        super().__init__()
        self.tok_emb, self.pos_emb = tok_emb, pos_emb

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.tok_emb(idx)
        if self.pos_emb is not None:
            x = x + self.pos_emb(torch.arange(idx.shape[-1], device=idx.device))
        return x


class LMHead(nn.Module):
    """The transformer's output: final norm and the vocabulary projection."""

    def __init__(self, norm: nn.Module, lm_head: nn.Linear):
        super().__init__()
        self.norm, self.lm_head = norm, lm_head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lm_head(self.norm(x))


_DECOMPOSERS: dict[type, Callable] = {}


def decomposer(*types):
    """Register `fn(params) -> list[Part]` for parameter dataclasses of `types`."""
    def deco(fn):
        for t in types:
            _DECOMPOSERS[t] = fn
        return fn

    return deco


def parts_of(params, loss: bool = True) -> list[Part]:
    """The parts of the model described by a parameter dataclass (registered families)."""
    from perfmodel.models.regnet import RegNetParams

    if isinstance(params, RegNetParams):
        params = params.to_anynet()
    fn = _DECOMPOSERS.get(type(params))
    if fn is None:
        from perfmodel.models.registry import build_from_params

        return model_parts(lambda: build_from_params(params), params, loss=loss)
    parts = fn(params)
    if not loss:
        parts = [p for p in parts if p.group != "loss"]
    return parts


def model_parts(build: Callable[[], nn.Module], key, input_shape=None, input_kind=None,
                high: int = 1, loss: bool = True, classes: int | None = None) -> list[Part]:
    """A generic model as one part (plus its loss); `key` identifies it for caching."""
    with torch.device("meta"):
        probe = build()
    shape = tuple(input_shape or getattr(probe, "input_size", ()) or ())
    if not shape:
        raise PerfmodelError("the model has no `input_size`; give the input shape of one sample")
    cfg = transformer_cfg(probe)
    kind = input_kind or ("long" if cfg is not None else "float")
    if cfg is not None:
        high = cfg.vocab_size
    parts = [Part("", ("model", key, shape), build, shape, kind, False, high, group="model")]
    if loss:
        out = (shape[:1] + (classes,) if cfg is not None else (classes,)) if classes \
            else _output_shape(probe, shape, kind)
        if out:
            parts.append(Part("loss", ("loss", out[-1]), lambda: ClassificationLoss(out[-1]),
                              out, group="loss"))
    return parts


def transformer_cfg(module: nn.Module):
    """The module's `cfg` when it is one of perfmodel's transformer configs, else None (a
    user's model may hold a `cfg` of its own)."""
    from perfmodel.models.transformer_config import TransformerConfig

    cfg = getattr(module, "cfg", None)
    return cfg if isinstance(cfg, TransformerConfig) else None


def _output_shape(module: nn.Module, shape: tuple, kind: str) -> tuple | None:
    """One sample's output shape (the logits the loss reads: `(classes,)` or, a logit per
    token, `(seq, classes)`), run on meta copies of the state; None when the output is not
    one tensor of at least two dimensions or the model cannot run on meta."""
    try:
        x = (torch.zeros((1,) + shape, dtype=torch.long, device="meta") if kind == "long"
             else torch.empty((1,) + shape, device="meta"))
        state = {n: torch.empty(t.shape, dtype=t.dtype, device="meta")
                 for n, t in list(module.named_parameters()) + list(module.named_buffers())}
        with torch.no_grad(), torch.device("meta"):
            out = torch.func.functional_call(module, state, (x,))
        return tuple(out.shape[1:]) if isinstance(out, torch.Tensor) and out.dim() >= 2 else None
    except Exception:  # a model that cannot run on meta gets no loss part
        return None


def _out(h: int, stride: int) -> int:
    """Spatial size after a block: its strided conv is k x k with "same" padding (k odd)."""
    return (h - 1) // stride + 1


def _cx(h: int):
    from perfmodel.models.complexity import Complexity

    return Complexity(h, h)


@decomposer(AnyNetParams)
def _anynet_parts(p) -> list[Part]:
    from perfmodel.models.anynet import BLOCKS, STEMS, AnyHead

    stem_cls, block_cls = STEMS[p.stem_type], BLOCKS[p.block_type]
    r, act = p.resolution, p.activation
    parts = [Part("stem", ("stem", p.stem_type, p.stem_w, act, r),
                  lambda: stem_cls(3, p.stem_w, act), (3, r, r), input_grad=False,
                  group="stem")]
    h = stem_cls.complexity(_cx(r), 3, p.stem_w).h
    w_prev = p.stem_w
    for i, (d, w, s, bm, gw) in enumerate(p.stages()):
        w_in, stride = w_prev, s
        for j in range(d):
            args = (w_in, w, stride, bm, gw, p.se_r, act)
            parts.append(Part(f"s{i + 1}.b{j + 1}", (p.block_type, args, h),
                              (lambda a=args: block_cls(*a)), (w_in, h, h), group=p.block_type))
            h = _out(h, stride)
            w_in, stride = w, 1
        w_prev = w
    head = (w_prev, p.head_w, p.num_classes, act)
    parts.append(Part("head", ("any_head", head, h), lambda: AnyHead(*head), (w_prev, h, h),
                      group="head"))
    parts.append(Part("loss", ("loss", p.num_classes), lambda: ClassificationLoss(p.num_classes),
                      (p.num_classes,), group="loss"))
    return parts


@decomposer(EffNetParams)
def _effnet_parts(p) -> list[Part]:
    from perfmodel.models.effnet import EffHead, EffStem, MBConv

    r, act = p.resolution, p.activation
    parts = [Part("stem", ("eff_stem", p.stem_w, act, r), lambda: EffStem(3, p.stem_w, act),
                  (3, r, r), input_grad=False, group="stem")]
    h = EffStem.complexity(_cx(r), 3, p.stem_w).h
    w_prev = p.stem_w
    for i, (d, w, e, s, k) in enumerate(p.stages()):
        w_in, stride = w_prev, s
        for j in range(d):
            args = (w_in, e, k, stride, p.se_r, w, act)
            parts.append(Part(f"s{i + 1}.b{j + 1}", ("mbconv", args, h),
                              (lambda a=args: MBConv(*a)), (w_in, h, h), group="mbconv"))
            h = _out(h, stride)
            w_in, stride = w, 1
        w_prev = w
    head = (w_prev, p.head_w, p.num_classes, act)
    parts.append(Part("head", ("eff_head", head, h), lambda: EffHead(*head), (w_prev, h, h),
                      group="head"))
    parts.append(Part("loss", ("loss", p.num_classes), lambda: ClassificationLoss(p.num_classes),
                      (p.num_classes,), group="loss"))
    return parts


@decomposer(TransformerConfig)
def _transformer_parts(cfg) -> list[Part]:
    from perfmodel.models.transformer import TransformerBlock, make_norm

    s, d, v = cfg.seq_len, cfg.d_model, cfg.vocab_size
    block_cfg = cfg.scaled(name="block", n_layers=1, vocab_size=1, seq_len=s, source="")

    def embed():
        pos = nn.Embedding(s, d) if cfg.position == "learned" else None
        return TokenEmbedding(nn.Embedding(v, d), pos)

    def head():
        return LMHead(make_norm(cfg), nn.Linear(d, v, bias=False))

    tied = d * v if cfg.tied_embeddings else 0
    parts = [Part("embed", ("embed", v, d, s, cfg.position), embed, (s,), "long", False, v,
                  group="embed")]
    for i in range(cfg.n_layers):
        parts.append(Part(f"blocks.{i}", ("transformer_block", block_cfg, s),
                          lambda: TransformerBlock(block_cfg), (s, d), group="transformer_block"))
    parts.append(Part("head", ("lm_head", d, v, cfg.norm, cfg.bias), head, (s, d),
                      shared_params=tied, group="head"))
    parts.append(Part("loss", ("loss", v), lambda: ClassificationLoss(v), (s, v), group="loss"))
    return parts
