"""Predicted step time of transformer training, data, tensor and pipeline parallel (the
predicted mode of MFU).

One optimizer step of a global batch of `batch` sequences on `gpus` = dp x tp x pp GPUs
(`perfmodel.llm.memory.Parallelism`), each data-parallel replica running `micro_batch`
sequences per forward/backward, `n_micro = batch / dp / micro_batch` micro-batches:

    step = (n_micro + pp - 1) x (stage + tp comm + pp p2p) + optimizer + gradient all-reduce

- stage: forward + backward of one micro-batch on one GPU (`compiled`: under
  torch.compile, `perfmodel.predict.fusion`): the whole-model prediction
  (`assemble`: per-op predictor or roofline, block calibration of the device's profile)
  of the config's tensor-parallel shard (Megatron-LM's layout: each GPU holds
  `n_heads / tp` query heads, `max(1, n_kv_heads / tp)` KV heads, `d_ff / tp` of the MLP
  and `vocab / tp` of the embedding and LM head; norms replicated), at the precision's
  dtype (bf16 -> bfloat16, fp16 -> float16, tf32 -> tf32, fp32 -> float32; fp8: the
  layers' GEMMs in float8_e4m3fn, the rest in bfloat16, as Transformer Engine runs it), with its
  `ceil(n_layers / pp)` layers (the fullest stage sets the pace) plus the heavier of the
  first stage's embedding and the last
  stage's LM head and loss. With pp = 1 that is the whole model. 1F1B and GPipe both
  take `n_micro + pp - 1` stage slots per step (the pipeline bubble).
- recomputation: `full` re-runs each block's forward in backward (+ the blocks' forward
  time), `selective` re-runs attention (+ the attention ops' forward time).
- tp comm (tp > 1): Megatron's two all-reduces per layer in the forward and two in the
  backward (two more with full recomputation; sequence parallelism turns each into a
  reduce-scatter + all-gather, the same bytes), of `micro_batch x seq x d_model`
  activations, plus one each for the embedding and the LM head's input gradient; ring
  all-reduce `2 (tp - 1) / tp x bytes / bandwidth`, on the critical path (an upper bound
  where backward all-reduces overlap weight-gradient GEMMs); with
  `Parallelism.tp_comm_overlap` (Megatron/Transformer Engine's `tp_comm_overlap`) all of it
  is taken as hidden behind the GEMMs (a lower bound).
- pp p2p (pp > 1): each stage boundary sends the activation forward and its gradient back,
  `micro_batch x seq x d_model` elements each.
- optimizer: Adam(W) pointwise kernels over this GPU's parameters in float32 (master
  weights in mixed precision, plus one cast back per parameter), launched multi-tensor on a
  GPU, `perfmodel.predict.optimizer`; divided by dp x cp with ZeRO >= 1 (distributed
  optimizer).
- gradient all-reduce (dp > 1): ring all-reduce (ZeRO-1/2: reduce-scatter + all-gather,
  the same bytes; ZeRO-3 1.5x, weights gathered for forward and backward) of this GPU's
  gradients in float32 (Megatron's default; PyTorch AMP keeps float32 parameters) over
  dp, not overlapped with backward (an upper bound: Megatron/DDP overlap most of it).

Links: Megatron orders ranks tp fastest, then cp, dp, pp; a group whose ranks span at most
`gpus_per_node` (default 8) GPUs talks over the node's GPU link (`interconnect_bw` if
given, else `DeviceSpec.extra["interconnect_bandwidth"]`, else the documented
per-direction NVLink/PCIe figures of `INTERCONNECT_BW`). A wider group runs over the
network at the GPU's share of its node's InfiniBand (`inter_node_bw`, else
`INTER_NODE_BW`) times the group's GPUs per node (NCCL runs a ring per NIC), at most the
node's link; a pipeline send that crosses nodes gets one GPU's share.

Context parallelism (cp > 1, Megatron's ring attention): each rank runs `seq / cp` tokens
through every op, its attention meets all `seq` keys (cp times the local attention work;
causal load balancing keeps it even), the ring's K/V exchange is taken as hidden behind
attention (Transformer Engine overlaps it), and the gradient all-reduce and the
distributed optimizer span dp x cp.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from perfmodel.errors import PerfmodelError
from perfmodel.predict.calibration import features
from perfmodel.predict.counts import count_part, fuses_kernels
from perfmodel.predict.device import Backend, resolve_backend
from perfmodel.predict.model import assemble, optimizer_seconds, owned_numels
from perfmodel.predict.optimizer import optimizer_ops, uses_foreach
from perfmodel.predict.parts import parts_of

PRECISION_DTYPE = {"fp32": "float32", "tf32": "tf32", "bf16": "bfloat16", "fp16": "float16",
                   "fp8": "bfloat16"}
# precision -> the dtype of the transformer layers' GEMMs when it is not PRECISION_DTYPE's
# (Transformer Engine FP8: fprop, dgrad and wgrad GEMMs in e4m3, everything else bf16;
# attention, embedding and LM head stay bf16)
GEMM_DTYPE = {"fp8": "float8_e4m3fn"}

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


# Bytes/s per direction per GPU between nodes: the GPU's share of its node's InfiniBand
# (DGX H100/H200/B200: one 400 Gb/s ConnectX-7 per GPU; DGX A100: 200 Gb/s HDR per GPU).
INTER_NODE_BW: dict[str, float] = {"b200": 50e9, "h200": 50e9, "h100-sxm": 50e9,
                                   "a100-sxm-40gb": 25e9, "a100-sxm-80gb": 25e9}
INTER_NODE_DEFAULT = 25e9  # any other GPU (200 Gb/s per GPU)
GPUS_PER_NODE = 8


@dataclass(frozen=True)
class StepPrediction:
    """Seconds of one training step and its terms (per-GPU view)."""

    step_s: float
    micro_steps: int
    forward_s: float  # one micro-batch, one pipeline stage's share (the whole model at pp = 1)
    backward_s: float  # one micro-batch, same share (recomputation included)
    optimizer_s: float
    allreduce_s: float  # data-parallel gradient all-reduce
    lo_s: float
    hi_s: float
    backend: str
    tp_comm_s: float = 0.0  # per step: tensor-parallel all-reduces on the critical path
    pp_comm_s: float = 0.0  # per step: pipeline sends on the critical path
    bubble_s: float = 0.0  # per step: the pipeline's idle slots, (pp - 1) stage slots


def interconnect_bandwidth(device, override: float | None = None) -> float:
    """Bytes/s per direction for gradient all-reduce (see module docstring)."""
    if override:
        return float(override)
    extra = getattr(device, "extra", {}) or {}
    if extra.get("interconnect_bandwidth"):
        return float(extra["interconnect_bandwidth"])
    return INTERCONNECT_BW.get(device.key, PCIE_GEN4_BW)


def tp_shard(cfg, tp: int):
    """One tensor-parallel GPU's share of `cfg` (Megatron-LM layout, module docstring)."""
    if tp == 1:
        return cfg
    if cfg.n_heads % tp or cfg.d_ff % tp:
        raise PerfmodelError(f"tensor parallelism {tp} must divide n_heads {cfg.n_heads} and "
                             f"d_ff {cfg.d_ff}")
    kv = cfg.kv_heads
    if (kv >= tp and kv % tp) or (kv < tp and tp % kv):
        raise PerfmodelError(f"tensor parallelism {tp} and the {kv} KV heads must divide one "
                             "another (fewer KV heads than tp are replicated)")
    return cfg.scaled(n_heads=cfg.n_heads // tp, n_kv_heads=max(1, cfg.kv_heads // tp),
                      d_head=cfg.head_dim, d_ff=cfg.d_ff // tp,
                      vocab_size=-(-cfg.vocab_size // tp))


def ring_seconds(nbytes: float, n: int, bw: float) -> float:
    """Ring all-reduce of `nbytes` over `n` GPUs at `bw` bytes/s per direction."""
    return 2 * (n - 1) / n * nbytes / bw if n > 1 else 0.0


def predict_training_step(cfg, *, batch: int, seq_len: int, gpus: int = 1,
                          micro_batch: int | None = None, precision: str = "bf16",
                          device=None, recompute="none", parallel=None,
                          compiled: bool = False,
                          interconnect_bw: float | None = None,
                          inter_node_bw: float | None = None,
                          gpus_per_node: int = GPUS_PER_NODE) -> StepPrediction:
    """Predicted step of training a `TransformerConfig` (module docstring)."""
    from perfmodel.llm.memory import Parallelism

    par = parallel or Parallelism(dp=gpus)
    if par.gpus != gpus:
        raise PerfmodelError(f"{gpus} GPUs do not match dp {par.dp} x tp {par.tp} x pp {par.pp}"
                             f" x cp {par.cp} = {par.gpus}")
    cp = par.cp
    if int(seq_len) % cp:
        raise PerfmodelError(f"context parallelism {cp} must divide the sequence of {seq_len}")
    if precision not in PRECISION_DTYPE:
        raise PerfmodelError(f"predicted step time supports precisions "
                             f"{', '.join(PRECISION_DTYPE)}, not {precision!r}")
    tp, pp, dp = par.tp, par.pp, par.dp
    if pp > cfg.n_layers:
        raise PerfmodelError(f"pipeline parallelism {pp} exceeds the {cfg.n_layers} layers")
    layers = -(-cfg.n_layers // pp)  # the fullest stage's layers (uneven splits allowed)
    dtype = PRECISION_DTYPE[precision]
    gemm_dtype = GEMM_DTYPE.get(precision)
    backend = device if isinstance(device, Backend) else resolve_backend(
        getattr(device, "key", device) or "h100-sxm")
    if gemm_dtype:
        backend.device.peak(gemm_dtype)  # a device without the math mode says so
    micro = int(micro_batch or max(1, batch // dp))
    n_micro = max(1, int(np.ceil(batch / dp / micro)))
    local = int(seq_len) // cp  # each context-parallel rank holds seq / cp tokens
    c = cfg.scaled(seq_len=local) if local != cfg.seq_len else cfg
    shard = tp_shard(c, tp)
    parts = parts_of(shard)
    fused = fuses_kernels(backend.device)
    counts = [count_part(p, micro, dtype, True, fused_kernels=fused, compiled=compiled,
                         gemm_dtype=gemm_dtype if p.group == "transformer_block" else None)
              for p in parts]
    pred = assemble(shard.name, parts, counts, micro, dtype, True, "none", backend, True)
    rows = pred.by_module
    blocks = float(rows.loc[rows["group"] == "transformer_block", "time_s"].sum())
    first = float(rows.loc[rows["group"] == "embed", "time_s"].sum())
    last = float(rows.loc[rows["group"].isin(["head", "loss"]), "time_s"].sum())
    rec = str(recompute).lower()
    extra = 0.0
    if rec == "full":
        extra = sum(r["time_s"] for r in _forward_rows(backend, parts, counts, dtype, "block"))
    elif rec == "selective":
        extra = sum(r["time_s"] for r in _forward_rows(backend, parts, counts, dtype, "attention"))
    elif rec not in ("none", "0", "0.0"):
        raise PerfmodelError(f"recompute must be none, selective or full, got {recompute!r}")
    if cp > 1:  # a rank's queries meet all seq keys, not only its own seq / cp
        att = _attention_time(backend, parts, counts, dtype)
        extra += (cp - 1) * att
    whole = pred.forward.value + pred.backward.value + extra
    stage = whole if pp == 1 else (blocks + extra) * layers / c.n_layers + max(first, last)
    share = stage / whole if whole > 0 else 1.0
    # links: tp ranks are adjacent, cp ranks stride tp, dp ranks stride tp x cp, pp ranks
    # stride tp x cp x dp (Megatron's tp-cp-dp-pp order)
    node_bw = interconnect_bandwidth(backend.device, interconnect_bw)
    net_bw = float(inter_node_bw or INTER_NODE_BW.get(backend.device.key, INTER_NODE_DEFAULT))

    def group_bw(size: int, stride: int) -> float:
        """Bytes/s per GPU of a ring over `size` ranks `stride` apart: the node's link when
        they share a node, else the network share of the group's GPUs on each node (NCCL
        runs one ring per NIC), at most the node's link."""
        if (size - 1) * stride < gpus_per_node:
            return node_bw
        return min(node_bw, net_bw * max(1, min(size, gpus_per_node // stride)))

    elt = 4 if dtype in ("float32", "tf32") else 2  # bytes per activation element
    act = micro * c.seq_len * c.d_model * elt
    # Megatron: 2 all-reduces per layer forward, 2 backward, 2 more when the forward is
    # recomputed; the embedding's forward and the LM head's input gradient add one each
    n_ar = 4 * layers + 2 + (2 * layers if rec == "full" else 0)
    tp_stage = n_ar * ring_seconds(act, tp, group_bw(tp, 1)) if tp > 1 else 0.0
    if par.tp_comm_overlap:
        tp_stage = 0.0  # hidden behind the GEMMs it is pipelined with (a lower bound)
    p2p = 2 * act / (node_bw if tp * cp * dp * pp <= gpus_per_node else net_bw) if pp > 1 else 0.0
    slots = n_micro + pp - 1
    numels = owned_numels(parts, counts)  # a tied weight is updated once, by its owner
    ops = optimizer_ops("adamw", numels, "float32", master_cast=dtype not in ("float32", "tf32"),
                        foreach=uses_foreach(backend.device))
    opt_s = optimizer_seconds(features(ops, backend.optimes.predict(ops)["time_s"].to_numpy()))
    opt_s = opt_s / pp / (dp * cp if par.zero >= 1 else 1)  # the optimizer shards over dp x cp
    # this GPU's gradients, reduced in float32 (Megatron's default; PyTorch AMP keeps
    # float32 parameters); ZeRO-3 also gathers the weights for forward and backward
    grad_bytes = 4.0 * pred.params / pp * (1.5 if par.zero >= 3 else 1.0)
    ar = ring_seconds(grad_bytes, dp * cp, group_bw(dp * cp, tp))  # cp ranks share weights
    step = slots * (stage + tp_stage + p2p) + opt_s + ar
    r_lo, r_hi = (pred.time.lo / pred.time.value, pred.time.hi / pred.time.value) \
        if pred.time.value > 0 else (np.nan, np.nan)
    compute = slots * stage + opt_s
    comm = step - compute
    return StepPrediction(step, n_micro, pred.forward.value * share,
                          (pred.backward.value + extra) * share, opt_s, ar,
                          compute * r_lo + comm, compute * r_hi + comm, backend.description,
                          tp_comm_s=slots * tp_stage, pp_comm_s=slots * p2p,
                          bubble_s=(pp - 1) * (stage + tp_stage + p2p))


def _attention_time(backend, parts, counts, dtype) -> float:
    """Forward + backward time of the transformer blocks' attention ops (calibrated)."""
    beta = np.asarray(backend.calibration.get(dtype).beta)
    total = 0.0
    for part, c in zip(parts, counts):
        if part.group != "transformer_block" or not len(c.ops):
            continue
        ops = c.ops[c.ops["op"] == "attention"]
        if len(ops):
            total += float(beta @ features(ops, backend.optimes.predict(ops)["time_s"].to_numpy()))
    return total


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
                   recompute="none", parallel=None, compiled=False) -> float:
    """`perfmodel.llm.mfu.register_step_time_predictor` signature: seconds per step."""
    return predict_training_step(cfg, batch=batch, seq_len=seq_len, gpus=gpus,
                                 micro_batch=micro_batch, precision=precision, device=device,
                                 recompute=recompute, parallel=parallel,
                                 compiled=compiled).step_s


def backend_description(device) -> str:
    """Which profile / predictor / roofline the predicted mode uses for a catalogue device."""
    return resolve_backend(getattr(device, "key", device) or "h100-sxm").description


def register() -> None:
    """Install `step_time_hook` as the predicted mode of `perfmodel mfu`."""
    from perfmodel.llm.mfu import register_step_time_predictor

    register_step_time_predictor(step_time_hook)


register()
