"""Published training-throughput figures that `perfmodel mfu` must reproduce.

Each case gives the run as its authors describe it (model, GPUs, global batch, sequence,
measured throughput) and one figure they report (MFU, HFU, or model/hardware TFLOP/s per
GPU) under their FLOP-counting convention. `reproduce(case)` recomputes that figure.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from perfmodel.llm.mfu import MfuReport, estimate_mfu
from perfmodel.models.transformer_config import TransformerConfig


def megatron_gpt(name: str, d: int, layers: int, heads: int) -> TransformerConfig:
    """GPT config of the Megatron-LM papers (vocab 51200, sequence 2048, d_ff = 4d)."""
    return TransformerConfig(name=name, d_model=d, n_layers=layers, n_heads=heads,
                             d_ff=4 * d, vocab_size=51200, seq_len=2048,
                             source="Megatron-LM papers (Narayanan et al. 2021, "
                                    "Korthikanti et al. 2022)")


@dataclass(frozen=True)
class PublishedCase:
    source: str
    label: str
    model: object  # published config name or TransformerConfig
    device: str
    gpus: int
    batch: int
    seq_len: int
    precision: str
    metric: str  # MfuReport attribute: mfu | hfu | model_tflops_per_gpu | hardware_...
    published: float
    tokens_per_s_per_gpu: float | None = None
    step_time: float | None = None
    attention: str = "causal"
    recompute: object = "none"
    hfu_convention: str = "physical"
    note: str = ""
    kwargs: dict = field(default_factory=dict)

    @property
    def layout_published(self) -> bool:
        """Whether the parallel layout is known, so the memory check is meaningful."""
        return "tp" in self.kwargs

    def run(self) -> MfuReport:
        return estimate_mfu(self.model, self.batch, self.seq_len, gpus=self.gpus,
                            precision=self.precision, device=self.device,
                            tokens_per_s=self.tokens_per_s_per_gpu, step_time=self.step_time,
                            attention=self.attention, recompute=self.recompute,
                            hfu_convention=self.hfu_convention, **self.kwargs)


def reproduce(case: PublishedCase) -> tuple[float, float]:
    """Our value of the case's metric and its relative error against the published one."""
    ours = float(getattr(case.run(), case.metric))
    return ours, ours / case.published - 1.0


_MB25_11 = "Megatron-Bridge performance summary, NeMo 25.11, DGX-H100 (FP8-CS)"
_MB25_09 = "Megatron-Bridge performance summary, NeMo 25.09, DGX-H100"
_MB_B200 = "Megatron-Bridge performance summary, NeMo 25.11, DGX-B200 (FP8-CS)"
_KORTH = ("Korthikanti et al. 2022 (and Megatron-LM README): selective recompute + sequence "
          "parallel, A100, Table 4 iteration time")
_NARAY = ("Narayanan et al. 2021 (Megatron-LM, SC'21) sec. 5.1: end-to-end time estimate")
_PALM = "Chowdhery et al. 2022 (PaLM), Table 3: 238.3K tokens/s on 6144 TPU v4"

_K22 = megatron_gpt("Megatron-GPT-22B", 6144, 48, 64)
_K175 = megatron_gpt("Megatron-GPT-175B", 12288, 96, 96)
_K530 = megatron_gpt("Megatron-GPT-530B", 20480, 105, 128)
_K1T = megatron_gpt("Megatron-GPT-1T", 25600, 128, 160)


def _mb(source, label, model, gpus, gbs, tok, tflops, device="h100-sxm", mbs=1, tp=1, pp=1,
        cp=1, fsdp=False):
    """A Megatron-Bridge row; its layout (FSDP = ZeRO-3, else Megatron's distributed
    optimizer = ZeRO-1, sequence parallel with tp > 1) feeds the memory check."""
    return PublishedCase(source, label, model, device, gpus, gbs, 8192, "fp8",
                         "model_tflops_per_gpu", tflops, tokens_per_s_per_gpu=tok,
                         note="tokens/s/GPU -> model TFLOP/s/GPU, causal attention",
                         kwargs={"micro_batch": mbs, "tp": tp, "pp": pp, "cp": cp,
                                 "sequence_parallel": tp > 1, "zero": 3 if fsdp else 1})


def _k(label, cfg, gpus, batch, time, metric, value, pp):
    """Korthikanti et al. Table 3 layout: TP 8, sequence parallel, micro-batch 1, no DP."""
    return PublishedCase(_KORTH, label, cfg, "a100-sxm-80gb", gpus, batch, 2048, "bf16",
                         metric, value, step_time=time, attention="full",
                         recompute="selective", hfu_convention="megatron",
                         kwargs={"micro_batch": 1, "tp": 8, "pp": pp,
                                 "sequence_parallel": True, "flash_attention": False})


def _days(days: float, tokens: float, gpus: int, seq: int = 2048):
    """Tokens/s per GPU implied by `tokens` trained in `days` on `gpus` GPUs."""
    return tokens / (days * 86400.0 * gpus)


PUBLISHED_CASES: tuple[PublishedCase, ...] = (
    _mb(_MB25_11, "Llama-3-8B 8xH100", "Llama-3-8B", 8, 128, 14451, 744, fsdp=True),
    _mb(_MB25_11, "Llama-3-70B 64xH100", "Llama-3-70B", 64, 128, 1602, 719, tp=4, pp=8),
    _mb(_MB25_11, "Llama-3.1-405B 1024xH100", "Llama-3.1-405B", 1024, 512, 292, 737,
        tp=8, pp=8, cp=2),
    _mb(_MB25_09, "Llama-3-8B 8xH100", "Llama-3-8B", 8, 128, 14079, 725, fsdp=True),
    _mb(_MB25_09, "Llama-3-70B 64xH100", "Llama-3-70B", 64, 128, 1619, 727, tp=4, pp=8),
    _mb(_MB25_09, "Llama-3.1-405B 1024xH100", "Llama-3.1-405B", 1024, 512, 302, 763,
        tp=8, pp=8, cp=2),
    _mb(_MB_B200, "Llama-3-8B 8xB200", "Llama-3-8B", 8, 128, 30624, 1576, device="b200",
        mbs=2),
    _mb(_MB_B200, "Llama-3.1-405B 128xB200", "Llama-3.1-405B", 128, 64, 661, 1667,
        device="b200", tp=4, pp=8, cp=2),
    _k("GPT-22B MFU", _K22, 8, 4, 1.10, "mfu", 0.415, 1),
    _k("GPT-22B HFU", _K22, 8, 4, 1.10, "hfu", 0.437, 1),
    _k("GPT-175B MFU", _K175, 64, 64, 13.75, "mfu", 0.514, 8),
    _k("GPT-175B HFU", _K175, 64, 64, 13.75, "hfu", 0.528, 8),
    _k("GPT-530B MFU", _K530, 280, 280, 37.83, "mfu", 0.560, 35),
    _k("GPT-530B HFU", _K530, 280, 280, 37.83, "hfu", 0.570, 35),
    _k("GPT-1T MFU", _K1T, 512, 512, 71.49, "mfu", 0.563, 64),
    _k("GPT-1T HFU", _K1T, 512, 512, 71.49, "hfu", 0.570, 64),
    PublishedCase(_NARAY, "GPT-3 175B 1024xA100: 140 TFLOP/s", _K175, "a100-sxm-80gb", 1024,
                  1536, 2048, "bf16", "hardware_tflops_per_gpu", 140.0,
                  tokens_per_s_per_gpu=_days(34, 300e9, 1024), attention="full",
                  recompute="full",
                  note="their 34 days for 300B tokens; figure counts full recomputation "
                       "(96 B s l h^2 formula), i.e. it is a hardware (HFU-type) rate",
                  kwargs={"micro_batch": 1}),
    PublishedCase(_NARAY, "GPT 1T 3072xA100: 163 TFLOP/s", _K1T, "a100-sxm-80gb", 3072, 3072,
                  2048, "bf16", "hardware_tflops_per_gpu", 163.0,
                  tokens_per_s_per_gpu=_days(84, 450e9, 3072), attention="full",
                  recompute="full", note="their 84 days for 450B tokens",
                  kwargs={"micro_batch": 1}),
    PublishedCase(_PALM, "PaLM-540B MFU", "PaLM-540B", "tpu-v4", 6144, 2048, 2048, "bf16",
                  "mfu", 0.462, tokens_per_s_per_gpu=238.3e3 / 6144, attention="full",
                  note="PaLM's 6N + 12LHQT", kwargs={"micro_batch": 1}),
)
