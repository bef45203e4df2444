"""Training memory of a decoder-only transformer: weights, gradients, optimizer states
and activations (closed forms).

Bytes per parameter (`STATE_BYTES`), following Rajbhandari et al. 2020 (ZeRO), sec. 3.1:
mixed precision (bf16/fp16 weights and gradients, fp32 master weights) with Adam keeps
2 + 2 + (4 master + 4 momentum + 4 variance) = 16 bytes per parameter; fp32 training
with Adam 4 + 4 + 8 = 16; SGD with momentum drops the variance; Adafactor (factored
second moment, no momentum) keeps O(rows + cols) per matrix, counted here as 0 bytes per
parameter plus its factored rows/columns.

Activations per transformer layer (Korthikanti et al. 2022, sec. 4, 16-bit activations,
s = sequence, b = micro-batch, h = d_model, a = heads, t = tensor-parallel size):
- no recomputation: s b h (34 + 5 a s / h), or with tensor parallelism
  s b h (10 + 24/t + 5 a s / (h t)), and with sequence parallelism s b h (34 + 5 a s/h) / t;
- selective recomputation (attention scores recomputed): s b h 34 (/ t with sequence par.);
- full recomputation: only each layer's input, 2 s b h.
The 34 and 5as/h come from a GPT layer (MHA, GELU MLP of 4h, dropout). For other shapes
the same tensors are counted from the config (`activation_bytes_per_layer`): GQA shrinks
K and V, SwiGLU stores gate, up and their product, `dropout=False` drops the masks, and
`flash=True` stores no s x s scores (only a float32 log-sum-exp per row).
"""
from __future__ import annotations

from dataclasses import dataclass

from perfmodel.errors import PerfmodelError
from perfmodel.llm.flops import parse_recompute
from perfmodel.llm.params import param_count
from perfmodel.models.transformer_config import TransformerConfig
from perfmodel.models.transformer_configs import as_transformer_config

GiB = 2**30

# precision -> (weight bytes, gradient bytes, master-weight bytes in the optimizer)
PRECISIONS: dict[str, tuple[int, int, int]] = {
    "fp32": (4, 4, 0),
    "tf32": (4, 4, 0),
    "bf16": (2, 2, 4),
    "fp16": (2, 2, 4),
    "fp8": (2, 2, 4),  # FP8 GEMMs (Transformer Engine) keep bf16 weights + fp32 master
}
_PRECISION_ALIASES = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16",
                      "mixed-bf16": "bf16", "mixed-fp16": "fp16", "float8_e4m3fn": "fp8",
                      "fp8-cs": "fp8", "amp": "bf16"}

# optimizer -> fp32 state bytes per parameter (besides master weights)
OPTIMIZERS: dict[str, int] = {"adam": 8, "adamw": 8, "sgd-momentum": 4, "sgd": 0,
                              "adafactor": 0}


def canonical_precision(precision: str) -> str:
    p = str(precision).strip().lower()
    p = _PRECISION_ALIASES.get(p, p)
    if p not in PRECISIONS:
        raise PerfmodelError(f"unknown precision {precision!r}; expected one of "
                             f"{', '.join(PRECISIONS)}")
    return p


@dataclass(frozen=True)
class StateBytes:
    """Model-state bytes for one full (unsharded) copy of the model."""

    params: int
    precision: str
    optimizer: str
    weights: float
    gradients: float
    optimizer_states: float  # incl. fp32 master weights in mixed precision

    @property
    def total(self) -> float:
        return self.weights + self.gradients + self.optimizer_states

    @property
    def bytes_per_param(self) -> float:
        return self.total / self.params


def state_bytes(cfg: TransformerConfig, precision: str = "bf16",
                optimizer: str = "adam") -> StateBytes:
    """Weights, gradients and optimizer states (ZeRO paper's accounting)."""
    p = canonical_precision(precision)
    opt = str(optimizer).strip().lower().replace("_", "-")
    if opt not in OPTIMIZERS:
        raise PerfmodelError(f"unknown optimizer {optimizer!r}; expected one of "
                             f"{', '.join(OPTIMIZERS)}")
    pc = param_count(cfg)
    n = pc.total
    w, g, master = PRECISIONS[p]
    opt_bytes = (master + OPTIMIZERS[opt]) * n
    if opt == "adafactor":  # factored second moment: one row and one column vector per matrix
        d, f = cfg.d_model, cfg.d_ff
        mats = cfg.n_layers * (4 * 2 * d + (3 if cfg.mlp == "swiglu" else 2) * (d + f))
        opt_bytes += 4 * (mats + 2 * (cfg.vocab_size + d))
    return StateBytes(params=n, precision=p, optimizer=opt, weights=float(w * n),
                      gradients=float(g * n), optimizer_states=float(opt_bytes))


def activation_bytes_per_layer(cfg: TransformerConfig, micro_batch: int, seq_len: int,
                               recompute="none", *, tp: int = 1,
                               sequence_parallel: bool = False, dropout: bool = True,
                               flash: bool = False, bytes_per_element: int = 2,
                               implementation: str = "megatron") -> float:
    """Activation bytes one transformer layer keeps for backward.

    `implementation="megatron"`: Korthikanti et al.'s accounting (fused kernels: each
    norm keeps its 16-bit input, SwiGLU keeps gate, up and their product).
    `implementation="eager"`: what PyTorch eager autograd saves for
    `perfmodel.models.transformer.TransformerBlock` (checked in the tests with
    saved-tensor hooks): norms also keep their statistics, RMSNorm computes in float32
    (input and normalised output, 4 bytes each), SwiGLU keeps silu(gate) too, the SDPA
    output is kept besides the projection's input copy, and RoPE keeps cos/sin.
    """
    if implementation not in ("megatron", "eager"):
        raise PerfmodelError(f"unknown implementation {implementation!r}; "
                             f"expected megatron or eager")
    rc = parse_recompute(recompute)
    s, b, h, a = seq_len, micro_batch, cfg.d_model, cfg.n_heads
    e = bytes_per_element
    if tp < 1:
        raise PerfmodelError(f"tensor-parallel size must be >= 1, got {tp}")
    sbh = s * b * h
    if rc == "full":
        return float(e * sbh / (tp if sequence_parallel else 1))
    if not isinstance(rc, str):  # fraction f recomputed: interpolate none -> full
        kw = dict(tp=tp, sequence_parallel=sequence_parallel, dropout=dropout, flash=flash,
                  bytes_per_element=e, implementation=implementation)
        none = activation_bytes_per_layer(cfg, micro_batch, seq_len, "none", **kw)
        full = activation_bytes_per_layer(cfg, micro_batch, seq_len, "full", **kw)
        return (1.0 - rc) * none + rc * full
    d_attn = cfg.n_heads * cfg.head_dim
    kv = cfg.kv_heads * cfg.head_dim
    mask = 1 if dropout else 0
    # Replicated across tensor-parallel ranks unless sequence parallel: the two norm
    # inputs, the QKV input, the MLP input and the two dropout masks (10 sbh for GPT).
    replicated = 2 * e * sbh + e * sbh + e * sbh + 2 * mask * sbh
    # Split across tensor-parallel ranks: Q, K, V, attention-projection input and the
    # MLP internals (24 sbh for GPT).
    split = e * s * b * (d_attn + 2 * kv + d_attn)
    split += e * s * b * cfg.d_ff * (3 if cfg.mlp == "swiglu" else 2)
    if implementation == "eager":
        sb = s * b
        if cfg.norm == "rmsnorm":  # float32 input and normalised output, float32 rstd
            replicated += 2 * (2 * 4 * sbh + 4 * sb) - 2 * e * sbh
        else:  # 16-bit input (counted above) plus mean and rstd
            replicated += 2 * 2 * e * sb
        if cfg.position == "rope":
            replicated += 4 * e * s * cfg.head_dim  # cos and sin, for q and for k
        split += e * s * b * d_attn  # SDPA output besides the projection's input copy
        if cfg.mlp == "swiglu":
            split += e * s * b * cfg.d_ff  # silu(gate)
    # s x s attention scores: softmax output (+ dropout mask and output): 5 a s^2 b for GPT.
    if rc == "selective":
        scores = 0
    elif flash:
        scores = 4 * a * s * b  # float32 log-sum-exp per query row
    else:
        scores = (e + mask + (e if dropout else 0)) * a * s * s * b
    if sequence_parallel:
        return float((replicated + split + scores) / tp)
    return float(replicated + (split + scores) / tp)


@dataclass(frozen=True)
class Parallelism:
    """How training is split: data (dp), tensor (tp), pipeline (pp) and context (cp)
    parallel sizes, Megatron sequence parallelism, the ZeRO stage over dp (1 shards
    optimizer states, 2 also gradients, 3 also weights; FSDP = 3), and whether the
    tensor-parallel communication overlaps the GEMMs (Megatron/TE `tp_comm_overlap`; the
    step time only)."""

    dp: int = 1
    tp: int = 1
    pp: int = 1
    cp: int = 1
    sequence_parallel: bool = False
    zero: int = 0
    tp_comm_overlap: bool = False

    def __post_init__(self):
        for name in ("dp", "tp", "pp", "cp"):
            if int(getattr(self, name)) < 1:
                raise PerfmodelError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.zero not in (0, 1, 2, 3):
            raise PerfmodelError(f"ZeRO stage must be 0, 1, 2 or 3, got {self.zero}")

    @property
    def gpus(self) -> int:
        return self.dp * self.tp * self.pp * self.cp

    @classmethod
    def for_gpus(cls, gpus: int, tp: int = 1, pp: int = 1, cp: int = 1, **kw) -> "Parallelism":
        """The data-parallel size follows from the GPU count and the model-parallel sizes."""
        for key, v in (("gpus", gpus), ("tp", tp), ("pp", pp), ("cp", cp)):
            if v < 1:
                raise PerfmodelError(f"{key} must be >= 1, got {v}")
        mp = tp * pp * cp
        if gpus % mp:
            raise PerfmodelError(f"{gpus} GPUs is not a multiple of tp x pp x cp = {mp}")
        return cls(dp=gpus // mp, tp=tp, pp=pp, cp=cp, **kw)


@dataclass(frozen=True)
class TrainingMemory:
    """Per-GPU training memory: model states sharded by tp x pp (and ZeRO over dp), and
    the activations of the first pipeline stage, which holds pp micro-batches of L/pp
    layers in flight under the 1F1B schedule, i.e. L layers' worth (Korthikanti et al.
    2022, sec. 4.2.3), divided by tp (sequence parallel) and cp."""

    states: StateBytes  # one full, unsharded copy
    parallel: Parallelism
    activations_per_layer: float  # on one GPU
    activations: float  # all in-flight layers + embedding output + LM-head logits
    micro_batch: int
    seq_len: int
    recompute: str

    @property
    def _mp(self) -> int:
        return self.parallel.tp * self.parallel.pp

    def _zero(self, stage: int) -> int:
        return self.parallel.dp if self.parallel.zero >= stage else 1

    @property
    def weights(self) -> float:
        return self.states.weights / self._mp / self._zero(3)

    @property
    def gradients(self) -> float:
        return self.states.gradients / self._mp / self._zero(2)

    @property
    def optimizer_states(self) -> float:
        return self.states.optimizer_states / self._mp / self._zero(1)

    @property
    def total(self) -> float:
        return self.weights + self.gradients + self.optimizer_states + self.activations

    def fits(self, memory_bytes: float) -> bool:
        return self.total <= memory_bytes

    def to_dict(self) -> dict:
        p = self.parallel
        return {"weights_bytes": self.weights, "gradients_bytes": self.gradients,
                "optimizer_bytes": self.optimizer_states,
                "activation_bytes": self.activations,
                "activation_bytes_per_layer": self.activations_per_layer,
                "total_bytes": self.total, "micro_batch": self.micro_batch,
                "seq_len": self.seq_len, "recompute": self.recompute,
                "dp": p.dp, "tp": p.tp, "pp": p.pp, "cp": p.cp,
                "sequence_parallel": p.sequence_parallel, "zero": p.zero}


def training_memory(cfg: TransformerConfig, micro_batch: int, seq_len: int | None = None, *,
                    precision: str = "bf16", optimizer: str = "adam", recompute="none",
                    dropout: bool | None = None, flash: bool = False,
                    parallel: Parallelism | None = None,
                    implementation: str = "megatron") -> TrainingMemory:
    """Model states + activations per GPU for `micro_batch` sequences per micro-step.

    Default `parallel`: one GPU / plain data parallelism (every GPU holds everything).
    Beyond the layers: the embedding output (input of layer 1) and the 16-bit LM-head
    logits kept for the loss, 2 s b (h + V/tp) bytes (/cp). `dropout` defaults to True
    for learned-position (GPT-style) configs and False for RoPE (Llama-style) ones.
    """
    cfg = as_transformer_config(cfg)
    s = int(cfg.seq_len if seq_len is None else seq_len)
    if micro_batch < 1 or s < 1:
        raise PerfmodelError(f"micro-batch and sequence length must be >= 1, "
                             f"got {micro_batch} and {s}")
    par = parallel or Parallelism()
    states = state_bytes(cfg, precision, optimizer)
    if dropout is None:
        dropout = cfg.position == "learned"
    rc = parse_recompute(recompute)
    per_layer = activation_bytes_per_layer(cfg, micro_batch, s, rc, dropout=dropout,
                                           flash=flash, tp=par.tp,
                                           sequence_parallel=par.sequence_parallel,
                                           implementation=implementation) / par.cp
    head = 2.0 * s * micro_batch * (cfg.d_model + cfg.vocab_size / par.tp) / par.cp
    return TrainingMemory(states=states, parallel=par, activations_per_layer=per_layer,
                          activations=cfg.n_layers * per_layer + head, micro_batch=micro_batch,
                          seq_len=s, recompute=rc if isinstance(rc, str) else f"{rc:g}")
