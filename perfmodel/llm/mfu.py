"""Model and hardware FLOPs utilisation (MFU, HFU) of transformer training.

MFU = model FLOPs per second per GPU / the GPU's dense catalogue peak for the training
precision, where model FLOPs count one forward and one backward pass and no
recomputation (Chowdhery et al. 2022, PaLM, appendix B); HFU counts recomputed FLOPs
too (Korthikanti et al. 2022). Conventions are in `perfmodel.llm.flops`.

Two modes: *measured* (a tokens/s per GPU or a step time is given) and *predicted*
(neither given: the step time comes from `predict_step_time`, which delegates to the
step-time predictor that `perfmodel.predict` registers with
`register_step_time_predictor`, loaded on first use; without one that mode raises a
PerfmodelError naming what is missing).
Memory (`fits_in_memory`, `perfmodel.llm.memory.training_memory`) by default assumes
plain data parallelism: each of the `gpus` GPUs holds all weights, gradients and
optimizer states and the activations of `batch / gpus` sequences at once (no ZeRO, no
tensor/pipeline/context parallelism, no gradient accumulation). Give `tp`, `pp`, `cp`,
`sequence_parallel`, `zero` and `micro_batch` to describe a sharded run.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from perfmodel.errors import PerfmodelError
from perfmodel.hardware.catalogue import get_device
from perfmodel.hardware.spec import DeviceSpec
from perfmodel.llm.flops import FlopsPerToken, flops_per_token
from perfmodel.llm.fit import FitSuggestion, suggest_fit
from perfmodel.llm.memory import (Parallelism, TrainingMemory, canonical_precision,
                                  training_memory)
from perfmodel.llm.params import param_count
from perfmodel.models.transformer_config import TransformerConfig

# training precision -> the math mode whose peak MFU is measured against
PEAK_DTYPE = {"fp32": "float32", "tf32": "tf32", "bf16": "bfloat16", "fp16": "float16",
              "fp8": "float8_e4m3fn"}

StepTimePredictor = Callable[..., float]
_UNSET = object()  # nothing installed yet: perfmodel.predict's model is loaded on first use
_STEP_TIME_PREDICTOR: StepTimePredictor | None | object = _UNSET


def register_step_time_predictor(fn: StepTimePredictor | None) -> None:
    """Install the function `predict_step_time` delegates to (None removes it; until
    anything is installed, `perfmodel.predict.llm`'s model is installed on first use).

    It is called as fn(cfg, *, batch, seq_len, gpus, micro_batch, precision, device,
    recompute, parallel) (`device` a DeviceSpec, `parallel` a
    `perfmodel.llm.memory.Parallelism`), plus `compiled=True` for a torch.compile'd run,
    and returns the predicted seconds of one optimizer step of the global batch.
    """
    global _STEP_TIME_PREDICTOR
    _STEP_TIME_PREDICTOR = fn


def predict_step_time(cfg: TransformerConfig, *, batch: int, seq_len: int, gpus: int,
                      micro_batch: int, precision: str, device: DeviceSpec,
                      recompute="none", parallel: Parallelism | None = None,
                      compiled: bool = False) -> float:
    """Predicted seconds of one training step (global batch) - the predicted-mode hook."""
    if _STEP_TIME_PREDICTOR is _UNSET:
        try:
            from perfmodel.predict.llm import register
        except ImportError:
            pass
        else:
            register()
    fn = None if _STEP_TIME_PREDICTOR is _UNSET else _STEP_TIME_PREDICTOR
    if fn is None:
        raise PerfmodelError(
            "predicted mode needs a step-time predictor (perfmodel.predict registers one; "
            "none is available yet): pass --tokens-per-s or --step-time")
    extra = {"compiled": True} if compiled else {}  # hooks written before it keep working
    t = float(fn(cfg, batch=batch, seq_len=seq_len, gpus=gpus, micro_batch=micro_batch,
                 precision=precision, device=device, recompute=recompute,
                 parallel=parallel or Parallelism(dp=gpus), **extra))
    if not math.isfinite(t) or t <= 0:
        raise PerfmodelError(f"step-time predictor returned an invalid time {t!r}")
    return t


def resolve_model(model) -> TransformerConfig:
    """A TransformerConfig from a config, a published name, or a JSON file path."""
    from perfmodel.models.transformer_configs import as_transformer_config

    return as_transformer_config(model)


@dataclass(frozen=True)
class MfuReport:
    """Throughput, model/hardware FLOP/s per GPU, MFU, HFU and the memory check."""

    model: str
    params: int
    device: DeviceSpec
    precision: str
    peak_flops: float  # per GPU, dense, for the precision's math mode
    gpus: int
    batch: int  # sequences per optimizer step, all GPUs together
    micro_batch: int  # sequences per GPU (data-parallel assumption)
    seq_len: int
    step_time_s: float
    mode: str  # "measured" | "predicted"
    flops: FlopsPerToken
    memory: TrainingMemory
    hfu_convention: str = "physical"
    fit_suggestion: FitSuggestion | None = None  # when it does not fit: what would
    # the device's profile: its fastest measured GEMM in the precision (FLOP/s), None
    # without a profile; MFU against it is what the device delivers, not its datasheet
    measured_peak_flops: float | None = None

    @property
    def tokens_per_step(self) -> int:
        return self.batch * self.seq_len

    @property
    def tokens_per_s(self) -> float:
        return self.tokens_per_step / self.step_time_s

    @property
    def tokens_per_s_per_gpu(self) -> float:
        return self.tokens_per_s / self.gpus

    @property
    def model_flops_per_token(self) -> float:
        return self.flops.training

    @property
    def hardware_flops_per_token(self) -> float:
        return self.flops.hardware

    @property
    def model_flops_per_s_per_gpu(self) -> float:
        return self.model_flops_per_token * self.tokens_per_s_per_gpu

    @property
    def model_tflops_per_gpu(self) -> float:
        return self.model_flops_per_s_per_gpu / 1e12

    @property
    def hardware_tflops_per_gpu(self) -> float:
        return self.hardware_flops_per_token * self.tokens_per_s_per_gpu / 1e12

    @property
    def mfu(self) -> float:
        return self.model_flops_per_s_per_gpu / self.peak_flops

    @property
    def mfu_measured_peak(self) -> float | None:
        """MFU against the profile's measured peak (None without one)."""
        if not self.measured_peak_flops:
            return None
        return self.model_flops_per_s_per_gpu / self.measured_peak_flops

    @property
    def hfu(self) -> float:
        return self.hardware_tflops_per_gpu * 1e12 / self.peak_flops

    @property
    def fits_in_memory(self) -> bool:
        return self.memory.fits(self.device.memory_bytes)

    def to_dict(self) -> dict:
        return {
            "model": self.model, "params": self.params, "device": self.device.key,
            "device_name": self.device.name, "precision": self.precision,
            "peak_tflops": self.peak_flops / 1e12, "gpus": self.gpus, "batch": self.batch,
            "micro_batch": self.micro_batch, "seq_len": self.seq_len, "mode": self.mode,
            "attention_flops": self.flops.attention, "recompute": self.flops.recompute,
            "hfu_convention": self.hfu_convention,
            "step_time_s": self.step_time_s,
            "pred_step_time_s": self.step_time_s if self.mode == "predicted" else None,
            "tokens_per_s": self.tokens_per_s,
            "tokens_per_s_per_gpu": self.tokens_per_s_per_gpu,
            "model_flops_per_token": self.model_flops_per_token,
            "hardware_flops_per_token": self.hardware_flops_per_token,
            "model_tflops_per_gpu": self.model_tflops_per_gpu,
            "hardware_tflops_per_gpu": self.hardware_tflops_per_gpu,
            "mfu": self.mfu, "hfu": self.hfu,
            "measured_peak_tflops": (self.measured_peak_flops / 1e12
                                     if self.measured_peak_flops else None),
            "mfu_measured_peak": self.mfu_measured_peak,
            "fits_in_memory": self.fits_in_memory,
            "device_memory_bytes": self.device.memory_bytes,
            "memory": self.memory.to_dict(),
            "fit_suggestion": (self.fit_suggestion.to_dict()
                               if self.fit_suggestion is not None else None),
        }


def _positive(value, what: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise PerfmodelError(f"{what} must be a number, got {value!r}") from None
    if not math.isfinite(v) or v <= 0:
        raise PerfmodelError(f"{what} must be a positive number, got {value!r}")
    return v


def _whole(value, what: str) -> int:
    """A count (batch, GPUs, tokens) as an int >= 1."""
    try:
        ok = not isinstance(value, bool) and float(value).is_integer() and float(value) >= 1
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok:
        raise PerfmodelError(f"{what} must be a whole number >= 1, got {value!r}")
    return int(value)


def _profile_facts(dev: DeviceSpec) -> tuple[int | None, dict]:
    """(torch threads, per-dtype fastest GEMM FLOP/s) of the profile perfmodel predicts
    `dev` with (its shipped profile), read from its files without fitting anything;
    (None, {}) without one."""
    try:
        import json

        from perfmodel.predict.device import find_shipped_profile, gemm_peaks, read_profile_rows

        path, _ = find_shipped_profile(dev)
        if path is None:
            return None, {}
        threads = json.loads((path / "metadata.json").read_text()).get("torch_threads")
        return (threads if isinstance(threads, int) and threads > 0 else None,
                gemm_peaks(read_profile_rows(path)))
    except (ImportError, OSError, ValueError, PerfmodelError):
        return None, {}


def _cpu_share(threads: int | None, dev: DeviceSpec) -> float:
    """Share of a CPU's cores (its catalogue peak counts them all) that `threads` use: a
    time predicted from a one-thread profile is set against one core."""
    cores = max(int(dev.sm_count or 1), 1)
    return min(threads, cores) / cores if threads else 1.0


def estimate_mfu(model, batch: int, seq_len: int | None = None, *, gpus: int = 1,
                 precision: str = "bf16", device="h100-sxm",
                 tokens_per_s: float | None = None, step_time: float | None = None,
                 attention: str = "causal", recompute="none",
                 hfu_convention: str = "physical", micro_batch: int | None = None,
                 optimizer: str = "adam", flash_attention: bool = True, tp: int = 1,
                 pp: int = 1, cp: int = 1, sequence_parallel: bool = False,
                 zero: int = 0, compiled: bool = False,
                 tp_comm_overlap: bool = False) -> MfuReport:
    """MFU/HFU of training `model` with `batch` sequences per step on `gpus` GPUs.

    `tokens_per_s` is per GPU; `step_time` is seconds per step of the global batch.
    Neither given: predicted mode (see `predict_step_time`; `compiled`: the run uses
    torch.compile). `flash_attention` (the
    default, as PyTorch SDPA and Megatron use) keeps no s x s scores for backward.
    """
    cfg = resolve_model(model)
    batch, gpus = _whole(batch, "batch"), _whole(gpus, "gpus")
    s = _whole(cfg.seq_len if seq_len is None else seq_len, "seq")
    prec = canonical_precision(precision)
    dev = get_device(device)
    peak = dev.peak(PEAK_DTYPE[prec])
    par = Parallelism.for_gpus(gpus, tp=tp, pp=pp, cp=cp,
                               sequence_parallel=sequence_parallel, zero=zero,
                               tp_comm_overlap=tp_comm_overlap)
    measured = tokens_per_s is not None or step_time is not None
    if micro_batch is None:
        if batch < par.dp:
            raise PerfmodelError(
                f"global batch {batch} is smaller than the {par.dp} data-parallel replicas "
                f"({gpus} GPUs / tp {par.tp} / pp {par.pp} / cp {par.cp}): give the model-"
                "parallel sizes (--tp, --pp)"
                + (" or a --micro-batch" if measured else ""))
        if batch % par.dp:
            raise PerfmodelError(f"global batch {batch} is not a multiple of the {par.dp} "
                                 f"data-parallel replicas")
        micro_batch = batch // par.dp
    else:
        micro_batch = _whole(micro_batch, "micro-batch")
        per_replica = batch // par.dp
        if not measured and (batch % par.dp or micro_batch > per_replica
                             or per_replica % micro_batch):
            raise PerfmodelError(
                f"micro-batch {micro_batch} does not divide the {batch} / {par.dp} = "
                f"{batch / par.dp:g} sequences per data-parallel replica (gradient "
                "accumulation runs whole micro-batches)")
    micro_batch = int(micro_batch)
    mem = training_memory(cfg, micro_batch, s, precision=prec, optimizer=optimizer,
                          recompute=recompute, flash=flash_attention, parallel=par)
    suggestion = None
    if not mem.fits(dev.memory_bytes):
        per_replica = batch // par.dp if batch % par.dp == 0 else micro_batch
        suggestion = suggest_fit(cfg, micro_batch, max(per_replica, 1), s, dev.memory_bytes,
                                 precision=prec, optimizer=optimizer, recompute=recompute,
                                 flash=flash_attention, parallel=par)
    fl = flops_per_token(cfg, s, attention=attention, recompute=recompute,
                         hfu_convention=hfu_convention)
    if tokens_per_s is not None and step_time is not None:
        raise PerfmodelError("give either --tokens-per-s or --step-time, not both")
    if tokens_per_s is not None:
        step = batch * s / (_positive(tokens_per_s, "tokens per second") * gpus)
        mode = "measured"
    elif step_time is not None:
        step, mode = _positive(step_time, "step time"), "measured"
    else:
        try:
            step = predict_step_time(cfg, batch=batch, seq_len=s, gpus=gpus,
                                     micro_batch=micro_batch, precision=prec, device=dev,
                                     recompute=recompute, parallel=par, compiled=compiled)
        except PerfmodelError as exc:
            fit = "fits" if mem.fits(dev.memory_bytes) else "does NOT fit"
            raise PerfmodelError(
                f"{exc} (memory {mem.total / 2**30:.1f} GiB per GPU {fit} in "
                f"{dev.key}'s {dev.memory_bytes / 2**30:.0f} GiB)") from None
        mode = "predicted"
    threads, peaks = _profile_facts(dev)
    measured_peak = peaks.get(PEAK_DTYPE[prec])
    if dev.kind == "cpu":
        if mode == "predicted":  # a step predicted on the profile's threads
            peak = peak * _cpu_share(threads, dev)
        elif measured_peak and threads:  # a measured run's throughput uses every core
            measured_peak = measured_peak / _cpu_share(threads, dev)
    report = MfuReport(model=cfg.name, params=param_count(cfg).total, device=dev,
                       precision=prec, peak_flops=peak, gpus=gpus, batch=batch,
                       micro_batch=micro_batch, seq_len=s, step_time_s=step, mode=mode,
                       flops=fl, memory=mem, hfu_convention=hfu_convention,
                       fit_suggestion=suggestion,
                       measured_peak_flops=measured_peak)
    if report.hfu > 1:
        raise PerfmodelError(
            f"{report.hardware_tflops_per_gpu:.4g} TFLOP/s per GPU is above {dev.key}'s dense "
            f"{prec} peak of {peak / 1e12:.4g}: check the throughput (tokens/s are per GPU), "
            f"--gpus and --precision")
    return report
