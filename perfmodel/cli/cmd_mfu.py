"""`perfmodel mfu`: model FLOPs utilisation of transformer training."""
from __future__ import annotations

import json
import sys

from perfmodel.llm.mfu import estimate_mfu


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "mfu", help="MFU/HFU and model TFLOP/s per GPU of transformer training",
        description="Model FLOPs per token (forward + backward, no recomputation, FLOPs = "
                    "2 x MACs), achieved model TFLOP/s per GPU, MFU against the catalogue's "
                    "dense peak and HFU (with recomputation). Give the measured throughput "
                    "(--tokens-per-s per GPU, or --step-time per global batch); without "
                    "either the step time is predicted (data, tensor and pipeline parallel, "
                    "perfmodel.predict.llm). Memory and the predicted step assume plain data "
                    "parallelism (every GPU holds all model states) unless --tp/--pp/--cp/"
                    "--zero describe the sharding.")
    p.add_argument("--model", required=True,
                   help="published config name (Llama-3-8B, GPT-3-175B, ...) or CONFIG.json")
    p.add_argument("--batch", type=int, required=True,
                   help="global batch: sequences per optimizer step over all GPUs")
    p.add_argument("--seq", type=int, default=None, help="sequence length (default: config's)")
    p.add_argument("--gpus", type=int, default=1, help="number of GPUs (default 1)")
    p.add_argument("--precision", default="bf16",
                   help="fp32 | tf32 | bf16 | fp16 | fp8 (default bf16)")
    p.add_argument("--device", default="h100-sxm", help="catalogue device (default h100-sxm)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--tokens-per-s", type=float, default=None,
                   help="measured training throughput, tokens per second per GPU")
    g.add_argument("--step-time", type=float, default=None,
                   help="measured seconds per optimizer step (global batch)")
    p.add_argument("--attention-flops", choices=["causal", "full"], default="causal",
                   help="causal (default): count the unmasked half of attention (NVIDIA); full: PaLM")
    p.add_argument("--recompute", default="none",
                   help="none | selective | full | fraction of the forward recomputed (HFU)")
    p.add_argument("--hfu-convention", choices=["physical", "megatron"], default="physical",
                   help="how selective recomputation counts in HFU (see perfmodel.llm.flops)")
    p.add_argument("--micro-batch", type=int, default=None,
                   help="sequences per micro-step per replica for the memory check and "
                        "the predicted step (pipeline bubble, gradient accumulation) "
                        "(default batch / data-parallel size)")
    p.add_argument("--tp", type=int, default=1,
                   help="tensor-parallel size (memory check, predicted step)")
    p.add_argument("--pp", type=int, default=1,
                   help="pipeline-parallel size (memory check, predicted step)")
    p.add_argument("--cp", type=int, default=1,
                   help="context-parallel size (memory check, predicted step)")
    p.add_argument("--sequence-parallel", action="store_true",
                   help="Megatron sequence parallelism (memory check)")
    p.add_argument("--zero", type=int, default=0, choices=[0, 1, 2, 3],
                   help="ZeRO stage over data parallelism; FSDP = 3 (memory check; >= 1 "
                        "shards the predicted optimizer step)")
    p.add_argument("--optimizer", default="adam",
                   help="adam | adamw | sgd-momentum | sgd | adafactor (memory check)")
    p.add_argument("--no-flash-attention", action="store_true",
                   help="memory check: attention keeps its s x s scores (Korthikanti's "
                        "5as/h term) instead of FlashAttention's per-row statistics")
    p.add_argument("--tp-comm-overlap", action="store_true",
                   help="predicted step: tensor-parallel communication hidden behind the "
                        "GEMMs (Megatron/Transformer Engine tp_comm_overlap)")
    p.add_argument("--compile", dest="compiled", action="store_true",
                   help="predicted step: the run uses torch.compile (pointwise ops fused)")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.set_defaults(func=run)


def run(args) -> int:
    from perfmodel.llm.mfu import PEAK_DTYPE

    r = estimate_mfu(args.model, args.batch, args.seq, gpus=args.gpus,
                     precision=args.precision, device=args.device,
                     tokens_per_s=args.tokens_per_s, step_time=args.step_time,
                     attention=args.attention_flops, recompute=args.recompute,
                     hfu_convention=args.hfu_convention, micro_batch=args.micro_batch,
                     optimizer=args.optimizer, flash_attention=not args.no_flash_attention,
                     tp=args.tp, pp=args.pp, cp=args.cp,
                     sequence_parallel=args.sequence_parallel, zero=args.zero,
                     compiled=args.compiled, tp_comm_overlap=args.tp_comm_overlap)
    context = _context_note(args.model, r.seq_len)
    if context:
        print(f"perfmodel mfu: warning: {context}", file=sys.stderr)
    if not r.fits_in_memory:
        p = r.memory.parallel
        print(f"perfmodel mfu: warning: {r.memory.total / 2**30:.1f} GiB per GPU does not fit "
              f"in {r.device.key}'s {r.device.memory_bytes / 2**30:.0f} GiB (dp {p.dp}, tp "
              f"{p.tp}, pp {p.pp}, cp {p.cp}, ZeRO {p.zero}, micro-batch {r.micro_batch}); "
              + (f"it would fit with {r.fit_suggestion.describe()}" if r.fit_suggestion
                 else "no micro-batch, recomputation, sequence parallelism or ZeRO stage "
                      "makes it fit: more GPUs or larger tp/pp"),
              file=sys.stderr)
    backend = _backend(r)
    if args.json:
        print(json.dumps({**r.to_dict(), **({"pred_backend": backend} if backend else {})},
                         indent=2))
        return 0
    m = r.memory
    rows = [
        ("model", f"{r.model} ({r.params / 1e9:.3f} B params)"),
        ("device", f"{r.gpus} x {r.device.name} ({r.device.key}), {r.precision} peak "
                   f"{r.peak_flops / 1e12:.3g} TFLOP/s dense"
                   + (f" ({r.peak_flops / r.device.peak(PEAK_DTYPE[r.precision]):.0%} of "
                      "its cores: the threads its profile was measured with)"
                      if r.device.kind == "cpu" and r.peak_flops
                      < r.device.peak(PEAK_DTYPE[r.precision]) else "")),
        ("step", f"{r.batch} x {r.seq_len} tokens, {r.step_time_s:.4g} s ({r.mode})"),
        *([("predicted with", backend)] if backend else []),
        ("throughput", f"{r.tokens_per_s:,.0f} tokens/s, {r.tokens_per_s_per_gpu:,.1f} per GPU"),
        ("model FLOPs/token", f"{r.model_flops_per_token:.4e} (attention {r.flops.attention})"),
        ("hardware FLOPs/token", f"{r.hardware_flops_per_token:.4e} "
                                 f"(recompute {r.flops.recompute})"),
        ("model TFLOP/s/GPU", f"{r.model_tflops_per_gpu:.1f}"),
        ("MFU", f"{100 * r.mfu:.1f} %" + (
            f" of the catalogue peak; {100 * r.mfu_measured_peak:.1f} % of the profile's "
            f"measured peak ({r.measured_peak_flops / 1e12:.3g} TFLOP/s, its fastest GEMM)"
            if r.measured_peak_flops else "")),
        ("HFU", f"{100 * r.hfu:.1f} %"),
        ("memory/GPU", f"{m.total / 2**30:.1f} GiB = weights {m.weights / 2**30:.1f} + grads "
                       f"{m.gradients / 2**30:.1f} + optimizer {m.optimizer_states / 2**30:.1f}"
                       f"{' (float32 master weights and moments)' if r.precision != 'fp32' else ''}"
                       f" + activations {m.activations / 2**30:.1f} (micro-batch "
                       f"{r.micro_batch}; dp {m.parallel.dp} tp {m.parallel.tp} pp "
                       f"{m.parallel.pp} cp {m.parallel.cp} ZeRO {m.parallel.zero})"),
        ("fits in memory", f"{'yes' if r.fits_in_memory else 'no'} "
                           f"({r.device.memory_bytes / 2**30:.0f} GiB)"),
        *([("would fit with", r.fit_suggestion.describe())] if r.fit_suggestion else []),
    ]
    w = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k.ljust(w)}  {v}")
    return 0


def _context_note(model, seq: int) -> str | None:
    """A warning when `seq` is past the model's published context."""
    from perfmodel.llm.mfu import resolve_model

    note = resolve_model(model).context_note(seq)
    return None if note is None else "--seq" + note.removeprefix("sequence")


def _backend(r) -> str | None:
    """Which profile, predictor or roofline priced a predicted step (None when measured)."""
    if r.mode != "predicted":
        return None
    try:
        from perfmodel.predict.llm import backend_description
    except ImportError:
        return None
    return backend_description(r.device)
