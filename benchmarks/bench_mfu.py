"""Published MFU / model-TFLOP/s figures against `perfmodel mfu` (target: within 3%).

Cases (perfmodel/llm/published.py): Megatron-Bridge/NeMo Llama-3 tables (tokens/s/GPU ->
model TFLOP/s/GPU, causal attention), Korthikanti et al. 2022 MFU/HFU (iteration time ->
MFU, HFU with Megatron's selective-recompute convention), Narayanan et al. 2021
(GPT-3 175B at 140 and 1T at 163 TFLOP/s/GPU, full recomputation) and PaLM-540B (46.2% MFU,
full attention). PaLM's 57.8% HFU is shown for reference with the recomputed fraction it
implies (PaLM does not state its rematerialisation policy, so it is not a pass/fail case).
The last column is the memory model's per-GPU estimate for the published layout (TP/PP/CP,
ZeRO-1 or FSDP); these runs did fit, so "does NOT fit" marks an over-estimate.

A second table (no target) runs the predicted mode on the same runs (no throughput given:
the step time comes from `perfmodel.predict.llm`, on the catalogue + roofline since no GPU
profile is shipped) and compares its model TFLOP/s per GPU with the published one, to show
how optimistic a roofline-only prediction is. The predicted step puts tensor-parallel all-reduces on the critical path (an upper bound where a
recipe overlaps them with GEMMs, as NeMo's Llama-3-70B one does), so a ratio can fall below
one.

Run: python3 benchmarks/bench_mfu.py
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from perfmodel.llm.mfu import estimate_mfu  # noqa: E402
from perfmodel.llm.published import PUBLISHED_CASES, reproduce  # noqa: E402

TOLERANCE = 0.03


def _fmt(metric: str, v: float) -> str:
    return f"{100 * v:.1f}%" if metric in ("mfu", "hfu") else f"{v:.1f}"


def main() -> int:
    head = (f"{'source':<58} {'case':<36} {'metric':<24} {'published':>9} {'ours':>9} "
            f"{'rel.err':>8}  memory/GPU (ours) vs device")
    print(head)
    print("-" * len(head))
    worst, failed = 0.0, 0
    for c in PUBLISHED_CASES:
        ours, err = reproduce(c)
        r = c.run()
        mem = (f"{r.memory.total / 2**30:6.1f} / {r.device.memory_bytes / 2**30:.0f} GiB "
               f"{'fits' if r.fits_in_memory else 'does NOT fit'}"
               if c.layout_published else "layout not published")
        worst = max(worst, abs(err))
        bad = abs(err) > TOLERANCE
        failed += bad
        print(f"{c.source[:58]:<58} {c.label:<36} {c.metric:<24} "
              f"{_fmt(c.metric, c.published):>9} {_fmt(c.metric, ours):>9} "
              f"{100 * err:+7.2f}%{' FAIL' if bad else '     '}  {mem}")
    # PaLM HFU 57.8%: which recomputed fraction of the forward would give it?
    r = estimate_mfu("PaLM-540B", 2048, 2048, gpus=6144, precision="bf16", device="tpu-v4",
                     tokens_per_s=238.3e3 / 6144, attention="full", micro_batch=1)
    frac = (0.578 / r.mfu - 1.0) * r.flops.training / r.flops.forward
    print(f"\nPaLM-540B HFU 57.8% (reference only): implies recomputing {frac:.2f} of the "
          f"forward pass (perfmodel mfu --recompute {frac:.2f})")
    print(f"\n{len(PUBLISHED_CASES)} cases, {failed} outside {100 * TOLERANCE:.0f}%, "
          f"worst |rel.err| {100 * worst:.2f}%")
    predicted_mode()
    return 1 if failed else 0


def predicted_mode() -> None:
    """The predicted mode on the published layouts (see module doc; no target)."""
    from perfmodel.errors import PerfmodelError

    print("\nPredicted mode on the published layouts (catalogue + roofline, no profile):")
    head = (f"{'case':<36} {'layout':<22} {'published':>10} {'predicted':>10} {'ratio':>6}  "
            f"predicted step")
    print(head)
    print("-" * len(head))
    seen = set()
    for c in PUBLISHED_CASES:
        key = (str(c.model), c.device, c.gpus, c.batch, c.precision, str(sorted(c.kwargs.items())),
               c.tokens_per_s_per_gpu, c.step_time)
        if not c.layout_published or key in seen:
            continue  # one row per run (a run may be listed for its MFU and its HFU)
        seen.add(key)
        k = c.kwargs
        layout = f"tp{k.get('tp', 1)} pp{k.get('pp', 1)} cp{k.get('cp', 1)} mb{k.get('micro_batch', 1)}"
        measured = c.run().model_tflops_per_gpu
        try:
            r = estimate_mfu(c.model, c.batch, c.seq_len, gpus=c.gpus, precision=c.precision,
                             device=c.device, attention=c.attention, recompute=c.recompute,
                             hfu_convention=c.hfu_convention, **k)
        except PerfmodelError as exc:
            why = str(exc).split(" (memory")[0]
            print(f"{c.label:<36} {layout:<22} {measured:>10.1f} {'-':>10} {'':>6}  {why}")
            continue
        p = r.model_tflops_per_gpu
        print(f"{c.label:<36} {layout:<22} {measured:>10.1f} {p:>10.1f} {p / measured:>6.2f}  "
              f"{r.step_time_s:.3g} s")
    print("(model TFLOP/s per GPU; ratio > 1: the prediction is faster than the published run)")


if __name__ == "__main__":
    sys.exit(main())
