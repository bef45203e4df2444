"""Closed-form op lists of the common parts, so ranking never waits for the meta device.

Counting a block on the meta device costs ~10 ms; a ranking of 100 scaled candidates meets
~1000 distinct blocks. For the parts of the target families in float32 (the pycls
simple stem, residual bottleneck blocks without SE, the plain head and classification loss;
the GPT-style transformer's embedding, pre-norm LayerNorm/GELU/MHA block with learned
positions and LM head) this module writes the same op rows `perfmodel.counting` records
(kinds, shape parameters, costs from `perfmodel.ops`) and the same saved-for-backward
bytes, from the part's constructor arguments alone. `tests/test_predict_analytic.py`
checks every supported part against the meta-device count; any other part (another
dtype, SE, SwiGLU, RMSNorm, RoPE, grouped-query attention, a user's module) is counted.
"""
from __future__ import annotations

import math
from functools import lru_cache

import pandas as pd

from perfmodel.ops.registry import op_cost
from perfmodel.predict.parts import Part

F32 = 4  # bytes of a float32 element (activations and BatchNorm/LayerNorm statistics)
I64 = 8


@lru_cache(maxsize=65536)
def _cost(kind: str, direction: str, dtype: str, items: tuple):
    return op_cost(kind, phase=direction, dtype=dtype, **dict(items))


class Rows:
    """Op rows in the counter's frame layout."""

    def __init__(self):
        self.rows: list[dict] = []

    def add(self, kind, module, phase, dtype="float32", direction=None, **params):
        direction = direction or phase
        c = _cost(kind, direction, dtype, tuple(params.items()))
        row = {"op": kind, "module": module, "phase": phase, "direction": direction,
               "dtype": dtype}
        row.update(params)
        row.update(flops=c.flops, macs=c.macs, bytes_read=c.bytes_read,
                   bytes_written=c.bytes_written, bytes=c.bytes,
                   acts=c.acts if phase == "fwd" else 0)  # gradients are not activations
        self.rows.append(row)

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows)

    def total(self, key: str, phase: str | None = None) -> float:
        return float(sum(r[key] for r in self.rows if phase is None or r["phase"] == phase))


def _conv(r: Rows, module, phase, b, c_in, h, c_out, k, stride, pad, groups, grad_input=True):
    p = dict(bias=False, batch=b, c_in=c_in, h=h, w=h, c_out=c_out, kernel_h=k, kernel_w=k,
             stride=stride, padding=pad, dilation=1, groups=groups)
    if phase == "bwd":
        p.update(grad_input=grad_input, grad_weight=True)
    r.add("conv2d", module, phase, **p)


def _bn(r: Rows, module, phase, numel, channels, train, batch):
    if phase == "fwd" and train:
        # num_batches_tracked += 1 (add_: in place)
        r.add("elementwise", module, "fwd", dtype="int64", numel=1, inputs=1, inplace=True)
    r.add("batch_norm", module, phase, numel=numel, channels=channels, affine=True,
          training=train, batch=batch)


def _linear(r: Rows, module, phase, m, n, k, bias, grad_input=True):
    """Forward addmm/mm, or the backward dgrad/wgrad GEMMs and the bias reduction."""
    if phase == "fwd":
        if bias:
            r.add("gemm", module, "fwd", m=m, n=n, k=k, b=1, bias=True)
        else:
            r.add("gemm", module, "fwd", m=m, n=n, k=k, b=1)
        return
    if grad_input:
        r.add("gemm", module, "bwd", direction="fwd", m=m, n=k, k=n, b=1)
    r.add("gemm", module, "bwd", direction="fwd", m=n, n=k, k=m, b=1)
    if bias:
        r.add("reduction", module, "bwd", direction="fwd", numel=m * n, out_numel=n)


class Analytic:
    """What an analytic part yields: op rows, parameter tensor sizes and the saved-bytes
    facts of `PartCount`."""

    def __init__(self, rows: Rows, saved: float, input_saved: bool, output_saved: bool,
                 output_numel: int, params: tuple = ()):
        self.rows, self.saved, self.input_saved = rows, saved, input_saved
        self.output_saved, self.output_numel = output_saved, output_numel
        self.params = tuple(int(p) for p in params)


def _stem(part: Part, batch: int, train: bool):
    _, stem_type, w, act, r = part.key
    if stem_type != "simple_stem_in" or act != "relu":
        return None
    ho = (r - 1) // 2 + 1
    n = batch * w * ho * ho
    rows = Rows()
    _conv(rows, "conv", "fwd", batch, 3, r, w, 3, 2, 1, 1)
    _bn(rows, "bn", "fwd", n, w, train, batch)
    rows.add("relu", "af", "fwd", numel=n)
    if train:
        rows.add("relu", "af", "bwd", numel=n)
        _bn(rows, "bn", "bwd", n, w, True, batch)
        _conv(rows, "conv", "bwd", batch, 3, r, w, 3, 2, 1, 1, grad_input=False)
    saved = (2 * n * F32 + 2 * w * F32) if train else 0.0
    return Analytic(rows, saved, True, True, n, (w * 3 * 9, w, w))


def _bottleneck(part: Part, batch: int, train: bool):
    _, (w_in, w_out, stride, bm, gw, se_r, act), h = part.key
    if se_r or act != "relu":
        return None
    from perfmodel.models.anynet import bottleneck_dims

    w_b, groups = _dims(w_in, w_out, bm, gw, bottleneck_dims)
    ho = (h - 1) // stride + 1
    proj = w_in != w_out or stride != 1
    n_in, n_a, n_b, n_out = batch * w_in * h * h, batch * w_b * h * h, batch * w_b * ho * ho, \
        batch * w_out * ho * ho
    r = Rows()
    if proj:
        _conv(r, "proj.conv", "fwd", batch, w_in, h, w_out, 1, stride, 0, 1)
        _bn(r, "proj.bn", "fwd", n_out, w_out, train, batch)
    _conv(r, "a", "fwd", batch, w_in, h, w_b, 1, 1, 0, 1)
    _bn(r, "a_bn", "fwd", n_a, w_b, train, batch)
    r.add("relu", "a_af", "fwd", numel=n_a)
    _conv(r, "b", "fwd", batch, w_b, h, w_b, 3, stride, 1, groups)
    _bn(r, "b_bn", "fwd", n_b, w_b, train, batch)
    r.add("relu", "b_af", "fwd", numel=n_b)
    _conv(r, "c", "fwd", batch, w_b, ho, w_out, 1, 1, 0, 1)
    _bn(r, "c_bn", "fwd", n_out, w_out, train, batch)
    r.add("elementwise", "", "fwd", numel=n_out, inputs=2)
    r.add("relu", "af", "fwd", numel=n_out)
    saved = 0.0
    if train:
        r.add("relu", "af", "bwd", numel=n_out)
        _bn(r, "c_bn", "bwd", n_out, w_out, True, batch)
        _conv(r, "c", "bwd", batch, w_b, ho, w_out, 1, 1, 0, 1)
        r.add("relu", "b_af", "bwd", numel=n_b)
        _bn(r, "b_bn", "bwd", n_b, w_b, True, batch)
        _conv(r, "b", "bwd", batch, w_b, h, w_b, 3, stride, 1, groups)
        r.add("relu", "a_af", "bwd", numel=n_a)
        _bn(r, "a_bn", "bwd", n_a, w_b, True, batch)
        _conv(r, "a", "bwd", batch, w_in, h, w_b, 1, 1, 0, 1)
        if proj:
            _bn(r, "proj.bn", "bwd", n_out, w_out, True, batch)
            _conv(r, "proj.conv", "bwd", batch, w_in, h, w_out, 1, stride, 0, 1)
        r.add("elementwise", "proj.conv" if proj else "", "bwd", direction="fwd",
              numel=n_in, inputs=2)
        stats = 2 * (w_b + w_b + w_out + (w_out if proj else 0)) * F32
        saved = F32 * (2 * n_a + 2 * n_b + 2 * n_out + (n_out if proj else 0)) + stats
    params = ((w_out * w_in, w_out, w_out) if proj else ()) + (
        w_b * w_in, w_b, w_b, w_b * (w_b // groups) * 9, w_b, w_b, w_out * w_b, w_out, w_out)
    return Analytic(r, saved, True, True, n_out, params)


def _dims(w_in, w_out, bm, gw, bottleneck_dims):
    w_b, g = bottleneck_dims(w_in, w_out, bm or 1.0, gw or 1, 0.0)[:2]
    return int(w_b), int(g)


def _head(part: Part, batch: int, train: bool):
    _, (w_in, head_w, classes, _act), h = part.key
    if head_w:
        return None
    r = Rows()
    r.add("reduction", "avg_pool", "fwd", numel=batch * w_in * h * h, out_numel=batch * w_in)
    _linear(r, "fc", "fwd", batch, classes, w_in, True)
    if train:
        _linear(r, "fc", "bwd", batch, classes, w_in, True)
        r.add("elementwise", "avg_pool", "bwd", direction="fwd", numel=batch * w_in * h * h,
              inputs=1)
    saved = batch * w_in * F32 if train else 0.0
    return Analytic(r, saved, False, False, batch * classes, (classes * w_in, classes))


def _loss(part: Part, batch: int, train: bool):
    classes = part.key[1]
    n = batch * math.prod(part.input_shape[:-1])  # one logit vector per sample or token
    nc = n * classes
    r = Rows()
    r.add("fill", "", "fwd", dtype="int64", numel=n)
    r.add("softmax", "", "fwd", numel=nc)
    r.add("memory", "", "fwd", read_numel=nc + n, write_numel=1)
    if train:
        r.add("memory", "", "bwd", direction="fwd", read_numel=nc + n + 2, write_numel=nc)
        r.add("softmax", "", "bwd", numel=nc)
    saved = (nc * F32 + n * I64 + F32) if train else 0.0
    return Analytic(r, saved, False, False, 1, ())


def _embed(part: Part, batch: int, train: bool):
    _, vocab, d, s, position = part.key
    if position not in ("learned", "none"):
        return None
    r = Rows()
    r.add("embedding", "tok_emb", "fwd", features=d, tokens=batch * s, vocab=vocab)
    if position == "learned":
        r.add("fill", "", "fwd", dtype="int64", numel=s)
        r.add("embedding", "pos_emb", "fwd", features=d, tokens=s, vocab=s)
        r.add("elementwise", "", "fwd", numel=batch * s * d, inputs=2,
              read_numel=batch * s * d + s * d)
    if train:
        if position == "learned":
            r.add("reduction", "", "bwd", direction="fwd", numel=batch * s * d, out_numel=s * d)
            r.add("embedding", "pos_emb", "bwd", features=d, tokens=s, vocab=s)
        r.add("embedding", "tok_emb", "bwd", features=d, tokens=batch * s, vocab=vocab)
    saved = (s * I64 if position == "learned" else 0.0) if train else 0.0
    params = (vocab * d,) + ((s * d,) if position == "learned" else ())
    return Analytic(r, saved, train, False, batch * s * d, params)


def _block(part: Part, batch: int, train: bool):
    cfg, s = part.key[1], part.key[2]
    if (cfg.mlp != "gelu" or cfg.norm != "layernorm" or cfg.position == "rope"
            or cfg.kv_heads != cfg.n_heads or not cfg.causal or cfg.d_head):
        return None
    d, f, heads, hd, bias = cfg.d_model, cfg.d_ff, cfg.n_heads, cfg.head_dim, cfg.bias
    t = batch * s
    r = Rows()
    att = dict(batch=batch, heads=heads, kv_heads=heads, seq_q=s, seq_k=s, head_dim=hd,
               head_dim_v=hd, causal=True)
    r.add("layer_norm", "norm1", "fwd", numel=t * d, features=d, affine=True)
    for proj in ("q_proj", "k_proj", "v_proj"):
        _linear(r, f"attn.{proj}", "fwd", t, heads * hd, d, bias)
    r.add("attention", "attn", "fwd", **att)
    _linear(r, "attn.o_proj", "fwd", t, d, heads * hd, bias)
    r.add("elementwise", "", "fwd", numel=t * d, inputs=2)
    r.add("layer_norm", "norm2", "fwd", numel=t * d, features=d, affine=True)
    _linear(r, "mlp.fc1", "fwd", t, f, d, bias)
    r.add("gelu", "mlp", "fwd", numel=t * f)
    _linear(r, "mlp.fc2", "fwd", t, d, f, bias)
    r.add("elementwise", "", "fwd", numel=t * d, inputs=2)
    saved = 0.0
    if train:
        _linear(r, "mlp.fc2", "bwd", t, d, f, bias)
        r.add("gelu", "mlp", "bwd", numel=t * f)
        _linear(r, "mlp.fc1", "bwd", t, f, d, bias)
        r.add("layer_norm", "norm2", "bwd", numel=t * d, features=d, affine=True)
        r.add("elementwise", "norm2", "bwd", direction="fwd", numel=t * d, inputs=2)
        _linear(r, "attn.o_proj", "bwd", t, d, heads * hd, bias)
        r.add("attention", "attn", "bwd", **att)
        for proj in ("v_proj", "k_proj", "q_proj"):
            _linear(r, f"attn.{proj}", "bwd", t, heads * hd, d, bias)
            if proj != "v_proj":
                r.add("elementwise", f"attn.{proj}", "bwd", direction="fwd", numel=t * d,
                      inputs=2)
        r.add("layer_norm", "norm1", "bwd", numel=t * d, features=d, affine=True)
        r.add("elementwise", "norm1", "bwd", direction="fwd", numel=t * d, inputs=2)
        # norm1/norm2 outputs, residual x1, q, k, v, attention output (heads x head_dim
        # each), fc1 and GELU outputs; float32 mean/rstd per token for both norms and the
        # attention's log-sum-exp per (head, query)
        saved = F32 * (3 * t * d + 4 * t * heads * hd + 2 * t * f) + F32 * (4 * t + t * heads)
    norm = (d, d) if bias else (d,)
    lin = lambda o, i: (o * i, o) if bias else (o * i,)  # noqa: E731
    params = norm + lin(heads * hd, d) * 1 + lin(heads * hd, d) + lin(heads * hd, d) + \
        lin(d, heads * hd) + norm + lin(f, d) + lin(d, f)
    return Analytic(r, saved, True, False, t * d, params)


def _lm_head(part: Part, batch: int, train: bool):
    _, d, v, norm, bias = part.key
    if norm != "layernorm":
        return None
    t = batch * part.input_shape[0]
    r = Rows()
    r.add("layer_norm", "norm", "fwd", numel=t * d, features=d, affine=True)
    _linear(r, "lm_head", "fwd", t, v, d, False)
    if train:
        _linear(r, "lm_head", "bwd", t, v, d, False)
        r.add("layer_norm", "norm", "bwd", numel=t * d, features=d, affine=True)
    saved = (F32 * t * d + 2 * t * F32) if train else 0.0
    return Analytic(r, saved, True, False, t * v, ((d, d) if bias else (d,)) + (v * d,))


GENERATORS = {"stem": _stem, "res_bottleneck_block": _bottleneck, "any_head": _head,
              "loss": _loss, "embed": _embed, "transformer_block": _block, "lm_head": _lm_head}


def analytic_part(part: Part, batch: int, dtype: str, train: bool):
    """An `Analytic` for a supported float32 part, else None (count it instead)."""
    if dtype != "float32" or not part.key:
        return None
    gen = GENERATORS.get(part.key[0])
    return gen(part, batch, train) if gen is not None else None
