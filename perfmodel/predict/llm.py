"""Predicted step time of data-parallel transformer training (the predicted mode of MFU).

One optimizer step of a global batch of `batch` sequences on `gpus` GPUs, each running
`micro_batch` sequences per forward/backward (gradient accumulation when
`batch > gpus x micro_batch`):

    step = n_micro x (forward + backward [+ recomputed forward]) + optimizer + all-reduce

- forward/backward of one micro-batch: the whole-model prediction (`predict_model`'s
  parts, per-op predictor or roofline, block calibration of the device's profile) of the
  config at `micro_batch`, the precision's dtype (bf16 -> bfloat16, fp16 -> float16,
  tf32 -> tf32, fp32 -> float32); every layer is one counted block (counted once).
- recomputation: `full` re-runs each block's forward in backward (+ the blocks' forward
  time), `selective` re-runs attention (+ the attention ops' forward time).
- optimizer: Adam(W) pointwise kernels over every parameter in float32 (master weights in
  mixed precision, plus one cast back per parameter), `perfmodel.predict.optimizer`.
- all-reduce (gpus > 1): ring all-reduce of the gradients, `2 (N - 1) / N x grad bytes /
  bus bandwidth`, not overlapped with backward (an upper bound: Megatron/DDP overlap most
  of it). The bandwidth is `interconnect_bw` if given, else `DeviceSpec.extra
  ["interconnect_bandwidth"]`, else the documented per-direction NVLink/PCIe figures of
  `INTERCONNECT_BW` below.

Only data parallelism is modelled: tensor, pipeline or context parallel layouts raise.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from perfmodel.errors import PerfmodelError
from perfmodel.predict.calibration import features
from perfmodel.predict.counts import count_part, fuses_dropout
from perfmodel.predict.device import Backend, resolve_backend
from perfmodel.predict.model import assemble, optimizer_seconds
from perfmodel.predict.optimizer import optimizer_ops
from perfmodel.predict.parts import parts_of

PRECISION_DTYPE = {"fp32": "float32", "tf32": "tf32", "bf16": "bfloat16", "fp16": "float16"}

# Bytes/s per direction per GPU of the link a gradient all-reduce runs over, by catalogue key
# (vendor figures: NVLink 2/3/4/5 = 300/600/900/1800 GB/s both directions together on
# V100 SXM2 / A100 SXM / H100-H200 SXM / B200; PCIe Gen3/4/5 x16 = 16/32/64 GB/s per
# direction for the PCIe cards, without an NVLink bridge).
INTERCONNECT_BW: dict[str, float] = {
    "b200": 900e9, "h200": 450e9, "h100-sxm": 450e9, "a100-sxm-40gb": 300e9,
    "a100-sxm-80gb": 300e9, "v100-sxm2-32gb": 150e9, "v100-sxm2-16gb": 150e9,
    "h100-pcie": 64e9, "a100-pcie-40gb": 32e9, "a100-pcie-80gb": 32e9, "l40s": 32e9,
    "l4": 32e9, "a10": 32e9, "a10g": 32e9, "rtx-3090": 32e9, "rtx-4090": 32e9,
    "rtx-4070": 32e9, "v100-pcie-32gb": 16e9, "v100-pcie-16gb": 16e9, "t4": 16e9,
    "p100-pcie-16gb": 16e9, "p4": 16e9,
}
PCIE_GEN4_BW = 32e9  # fallback for a device not in the table (PCIe Gen4 x16 per direction)


@dataclass(frozen=True)
class StepPrediction:
    """Seconds of one training step and its terms."""

    step_s: float
    micro_steps: int
    forward_s: float  # one micro-batch
    backward_s: float  # one micro-batch (recomputation included)
    optimizer_s: float
    allreduce_s: float
    lo_s: float
    hi_s: float
    backend: str


def interconnect_bandwidth(device, override: float | None = None) -> float:
    """Bytes/s per direction for gradient all-reduce (see module docstring)."""
    if override:
        return float(override)
    extra = getattr(device, "extra", {}) or {}
    if extra.get("interconnect_bandwidth"):
        return float(extra["interconnect_bandwidth"])
    return INTERCONNECT_BW.get(device.key, PCIE_GEN4_BW)


def predict_training_step(cfg, *, batch: int, seq_len: int, gpus: int = 1,
                          micro_batch: int | None = None, precision: str = "bf16",
                          device=None, recompute="none", parallel=None,
                          interconnect_bw: float | None = None) -> StepPrediction:
    """Predicted step of data-parallel training of a `TransformerConfig`."""
    if parallel is not None and (parallel.tp > 1 or parallel.pp > 1 or parallel.cp > 1):
        raise PerfmodelError("predicted step time models data parallelism only "
                             f"(got tp={parallel.tp}, pp={parallel.pp}, cp={parallel.cp})")
    if precision not in PRECISION_DTYPE:
        raise PerfmodelError(f"predicted step time supports precisions "
                             f"{', '.join(PRECISION_DTYPE)}, not {precision!r}")
    dtype = PRECISION_DTYPE[precision]
    backend = device if isinstance(device, Backend) else resolve_backend(
        getattr(device, "key", device) or "h100-sxm")
    micro = int(micro_batch or max(1, batch // gpus))
    per_gpu = batch / gpus
    n_micro = max(1, int(np.ceil(per_gpu / micro)))
    c = cfg.scaled(seq_len=int(seq_len)) if seq_len != cfg.seq_len else cfg
    parts = parts_of(c)
    counts = [count_part(p, micro, dtype, True, fused_dropout=fuses_dropout(backend.device))
              for p in parts]
    pred = assemble(c.name, parts, counts, micro, dtype, True, "none", backend, True)
    fwd, bwd = pred.forward.value, pred.backward.value
    rec = str(recompute).lower()
    if rec == "full":
        bwd += sum(r["time_s"] for r in _forward_rows(backend, parts, counts, dtype, "block"))
    elif rec == "selective":
        bwd += sum(r["time_s"] for r in _forward_rows(backend, parts, counts, dtype, "attention"))
    elif rec not in ("none", "0", "0.0"):
        raise PerfmodelError(f"recompute must be none, selective or full, got {recompute!r}")
    numels = [n for cnt in counts for n in cnt.param_numels]
    opt_dtype = "float32"
    ops = optimizer_ops("adamw", numels, opt_dtype, master_cast=dtype not in ("float32", "tf32"))
    opt_s = optimizer_seconds(features(ops, backend.optimes.predict(ops)["time_s"].to_numpy()))
    grad_bytes = pred.memory.weights  # one gradient per unique weight, in the model dtype
    ar = 0.0
    if gpus > 1:
        ar = 2 * (gpus - 1) / gpus * grad_bytes / interconnect_bandwidth(backend.device,
                                                                          interconnect_bw)
    step = n_micro * (fwd + bwd) + opt_s + ar
    r_lo, r_hi = (pred.time.lo / pred.time.value, pred.time.hi / pred.time.value) \
        if pred.time.value > 0 else (np.nan, np.nan)
    compute = n_micro * (fwd + bwd) + opt_s
    return StepPrediction(step, n_micro, fwd, bwd, opt_s, ar, compute * r_lo + ar,
                          compute * r_hi + ar, backend.description)


def _forward_rows(backend, parts, counts, dtype, what: str):
    """Forward time of the transformer blocks (`block`) or of their attention ops."""
    beta = np.asarray(backend.calibration.get(dtype).beta)
    for part, c in zip(parts, counts):
        if part.group != "transformer_block" or not len(c.ops):
            continue
        ops = c.ops[c.ops["phase"] == "fwd"]
        if what == "attention":
            ops = ops[ops["op"] == "attention"]
        t = backend.optimes.predict(ops)["time_s"].to_numpy()
        yield {"time_s": float(beta @ features(ops, t))}


def step_time_hook(cfg, *, batch, seq_len, gpus, micro_batch, precision, device,
                   recompute="none", parallel=None) -> float:
    """`perfmodel.llm.mfu.register_step_time_predictor` signature: seconds per step."""
    return predict_training_step(cfg, batch=batch, seq_len=seq_len, gpus=gpus,
                                 micro_batch=micro_batch, precision=precision, device=device,
                                 recompute=recompute, parallel=parallel).step_s


def backend_description(device) -> str:
    """Which profile / predictor / roofline the predicted mode uses for a catalogue device."""
    return resolve_backend(getattr(device, "key", device) or "h100-sxm").description


def register() -> None:
    """Install `step_time_hook` as the predicted mode of `perfmodel mfu`."""
    from perfmodel.llm.mfu import register_step_time_predictor

    register_step_time_predictor(step_time_hook)


register()
