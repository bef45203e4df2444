"""What to change so a training configuration fits in the GPU's memory.

When `perfmodel mfu` finds a configuration that does not fit, the user's next question is
which setting to change. `suggest_fit` searches the settings that shrink per-GPU memory
without changing the model, the GPUs or the global batch, cheapest first:

1. a smaller micro-batch (more gradient-accumulation steps; only divisors of the
   per-replica batch, so the global batch stays the same);
2. then, one at a time and kept once added, each with the largest micro-batch that fits:
   sequence parallelism (tp > 1: activations / tp, no extra FLOPs), ZeRO-1 (dp x cp > 1:
   optimizer states sharded), selective recomputation (attention re-run), ZeRO-3 (weights
   and gradients sharded too) and full recomputation (each block's forward re-run).

The memory model is `perfmodel.llm.memory.training_memory`, so a suggestion is as good as
that model (activations after Korthikanti et al. 2022; no allocator fragmentation).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from perfmodel.llm.memory import Parallelism, TrainingMemory, training_memory

_RECOMPUTE_ORDER = {"none": 0, "selective": 1, "full": 2}


@dataclass(frozen=True)
class FitSuggestion:
    """A configuration that fits: the settings changed from the one asked about."""

    micro_batch: int
    recompute: str
    sequence_parallel: bool
    zero: int
    memory: TrainingMemory
    changes: tuple[str, ...]  # command-line options, e.g. ("--micro-batch 2", "--zero 1")

    def describe(self) -> str:
        return (f"{' '.join(self.changes)} ({self.memory.total / 2**30:.1f} GiB per GPU)")

    def to_dict(self) -> dict:
        return {"micro_batch": self.micro_batch, "recompute": self.recompute,
                "sequence_parallel": self.sequence_parallel, "zero": self.zero,
                "total_bytes": self.memory.total, "changes": list(self.changes)}


def _divisors_desc(n: int) -> list[int]:
    small = [d for d in range(1, int(n ** 0.5) + 1) if n % d == 0]
    return sorted({*small, *(n // d for d in small)}, reverse=True)


def suggest_fit(cfg, micro_batch: int, per_replica: int, seq_len: int, capacity: float, *,
                precision: str, optimizer: str, recompute: str, flash: bool,
                parallel: Parallelism) -> FitSuggestion | None:
    """The cheapest change (module doc) that makes the configuration fit in `capacity`
    bytes, or None when none does. `per_replica`: sequences per optimizer step on one
    data-parallel replica (the micro-batch must divide it); `micro_batch` and the other
    keywords are the configuration as asked."""
    rec = str(recompute).lower()
    savers = []
    if parallel.tp > 1 and not parallel.sequence_parallel:
        savers.append(("sequence_parallel", True, "--sequence-parallel"))
    if parallel.dp * parallel.cp > 1 and parallel.zero < 1:
        savers.append(("zero", 1, "--zero 1"))
    if _RECOMPUTE_ORDER.get(rec, 3) < 1:
        savers.append(("recompute", "selective", "--recompute selective"))
    if parallel.dp * parallel.cp > 1 and parallel.zero < 3:
        savers.append(("zero", 3, "--zero 3"))
    if _RECOMPUTE_ORDER.get(rec, 3) < 2:
        savers.append(("recompute", "full", "--recompute full"))
    micro = [m for m in _divisors_desc(per_replica) if m <= micro_batch] or [1]
    state = {"sequence_parallel": parallel.sequence_parallel, "zero": parallel.zero,
             "recompute": recompute}
    flags: list[str] = []
    for step in [None, *savers]:
        if step is not None:
            key, value, flag = step
            state[key] = value
            flags = [f for f in flags if not f.startswith(flag.split()[0])] + [flag]
        par = replace(parallel, sequence_parallel=state["sequence_parallel"],
                      zero=state["zero"])
        for m in micro:
            mem = training_memory(cfg, m, seq_len, precision=precision, optimizer=optimizer,
                                  recompute=state["recompute"], flash=flash, parallel=par)
            if mem.fits(capacity):
                changes = ([f"--micro-batch {m}"] if m != micro_batch else []) + flags
                if not changes:
                    return None  # it fits as asked: nothing to suggest
                return FitSuggestion(m, str(state["recompute"]), state["sequence_parallel"],
                                     state["zero"], mem, tuple(changes))
    return None
