"""FLOPs per token of a decoder-only transformer (FLOPs = 2 x MACs).

Forward, per token, sequence length s:
- dense: 2 x (weights of every linear layer + the LM head) = 2 N  (N = `ParamCount.matmul`)
- attention core: QK^T and AV, 2 x 2 x s x (n_heads x head_dim) per layer.
  `attention="full"` counts all s keys per query (PaLM's 6N + 12 L H Q T for training);
  `attention="causal"` counts only the unmasked half (s/2 per query on average), as
  NVIDIA's Megatron-Bridge/NeMo performance tables and Megatron-LM now do.
Training = forward + backward = 3 x forward (backward costs twice the forward).
Recomputation adds hardware FLOPs (HFU, not MFU):
- `full`: the forward of every transformer layer again (not the LM head) - Megatron's
  96 B s l h^2 (1 + s/6h + V/16lh) for GPT with full attention;
- `selective` (Korthikanti et al. 2022): the attention core's forward again
  (`hfu_convention="physical"`); Megatron-LM's published HFU instead counts it as the
  whole attention term once more, 72 B s l h^2 (1 + s/3h + V/12lh)
  (`hfu_convention="megatron"`, reproduces their MFU/HFU table).
- a number f in (0, 1]: that fraction of the forward recomputed (PaLM-style partial
  rematerialisation).
"""
from __future__ import annotations

from dataclasses import dataclass

from perfmodel.errors import PerfmodelError
from perfmodel.llm.params import param_count
from perfmodel.models.transformer_config import TransformerConfig
from perfmodel.models.transformer_configs import as_transformer_config

ATTENTION_CONVENTIONS = ("causal", "full")
RECOMPUTE_MODES = ("none", "selective", "full")
HFU_CONVENTIONS = ("physical", "megatron")


@dataclass(frozen=True)
class FlopsPerToken:
    """FLOPs per token (one token of one sequence) of a model at a sequence length."""

    seq_len: int
    attention: str
    recompute: str
    dense_forward: float  # 2 N
    attention_forward: float  # attention core, all layers, per the convention
    recompute_extra: float  # recomputed FLOPs per token (training only)

    @property
    def forward(self) -> float:
        return self.dense_forward + self.attention_forward

    @property
    def training(self) -> float:
        """Model FLOPs of one training token: forward + backward (3 x forward)."""
        return 3.0 * self.forward

    @property
    def hardware(self) -> float:
        """Training FLOPs including recomputation (the HFU numerator)."""
        return self.training + self.recompute_extra


def _check(value: str, allowed: tuple[str, ...], what: str) -> str:
    v = str(value).strip().lower()
    if v not in allowed:
        raise PerfmodelError(f"unknown {what} {value!r}; expected one of {', '.join(allowed)}")
    return v


def parse_recompute(recompute) -> str | float:
    """`none` | `selective` | `full` | a fraction in (0, 1] of the forward recomputed."""
    if isinstance(recompute, (int, float)) and not isinstance(recompute, bool):
        frac = float(recompute)
    else:
        text = str(recompute).strip().lower()
        if text in RECOMPUTE_MODES:
            return text
        try:
            frac = float(text)
        except ValueError:
            raise PerfmodelError(f"unknown recompute {recompute!r}; expected none, selective, "
                                 f"full or a fraction in (0, 1]") from None
    if not 0.0 < frac <= 1.0:
        raise PerfmodelError(f"recompute fraction {frac} is not in (0, 1]")
    return frac


def flops_per_token(cfg: TransformerConfig, seq_len: int | None = None, *,
                    attention: str = "causal", recompute="none",
                    hfu_convention: str = "physical") -> FlopsPerToken:
    """Closed-form FLOPs per token; see the module docstring for the conventions."""
    cfg = as_transformer_config(cfg)
    s = int(cfg.seq_len if seq_len is None else seq_len)
    if s <= 0:
        raise PerfmodelError(f"sequence length must be positive, got {s}")
    attention = _check(attention, ATTENTION_CONVENTIONS, "attention convention")
    hfu_convention = _check(hfu_convention, HFU_CONVENTIONS, "HFU convention")
    rc = parse_recompute(recompute)
    pc = param_count(cfg)
    d_attn = cfg.n_heads * cfg.head_dim
    keys = s if attention == "full" or not cfg.causal else s / 2.0
    dense = 2.0 * pc.matmul
    attn = cfg.n_layers * 4.0 * keys * d_attn
    layers_fwd = 2.0 * cfg.n_layers * (pc.attention_matmul + pc.mlp_matmul) + attn
    if rc == "none":
        extra = 0.0
    elif rc == "full":
        extra = layers_fwd
    elif rc == "selective":
        extra = attn if hfu_convention == "physical" else 3.0 * attn
    else:
        extra = rc * (dense + attn)
    return FlopsPerToken(seq_len=s, attention=attention,
                         recompute=rc if isinstance(rc, str) else f"{rc:g}",
                         dense_forward=dense, attention_forward=attn, recompute_extra=extra)


def training_flops(params: float, tokens: float) -> float:
    """The 6 N D approximation of total training FLOPs (Kaplan et al. 2020)."""
    return 6.0 * float(params) * float(tokens)


def model_training_flops(cfg: TransformerConfig, tokens: float, seq_len: int | None = None,
                         attention: str = "causal") -> float:
    """Training FLOPs of `tokens` tokens with the attention term (no recomputation)."""
    return flops_per_token(cfg, seq_len, attention=attention).training * float(tokens)
