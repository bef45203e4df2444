"""What to change so a training configuration fits in the GPU's memory.

When `perfmodel mfu` finds a configuration that does not fit, the user's next question is
which setting to change. `suggest_fit` searches the settings that shrink per-GPU memory
without changing the model, the GPUs or the global batch, cheapest first:

1. a smaller micro-batch (more gradient-accumulation steps; only divisors of the
   per-replica batch, so the global batch stays the same);
2. then memory savers, in this order, each kept only if it lowers the memory, until some
   micro-batch fits (the largest that does): sequence parallelism (tp > 1: activations /
   tp, no extra FLOPs), ZeRO-1, ZeRO-2 (dp > 1: optimizer states, then gradients sharded
   over the data-parallel replicas, as `perfmodel.llm.memory` counts them), selective
   recomputation (attention re-run), ZeRO-3 (weights sharded too) and full recomputation
   (each block's forward re-run; the only recomputation offered after a fraction);
3. then every saver whose removal still fits is dropped again (the ZeRO stage lowered as
   far as it can go), and the micro-batch is the largest that fits with what is left.

The memory model is `perfmodel.llm.memory.training_memory`, so a suggestion is as good as
that model (activations after Korthikanti et al. 2022; no allocator fragmentation).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from perfmodel.llm.flops import parse_recompute
from perfmodel.llm.memory import Parallelism, TrainingMemory, training_memory


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
                precision: str, optimizer: str, recompute, flash: bool,
                parallel: Parallelism) -> FitSuggestion | None:
    """The cheapest change (module doc) that makes the configuration fit in `capacity`
    bytes, or None when none does (or it fits as asked). `per_replica`: sequences per
    optimizer step on one data-parallel replica (the micro-batch must divide it);
    `micro_batch` and the other keywords are the configuration as asked."""
    rec = parse_recompute(recompute)
    asked = {"sequence_parallel": parallel.sequence_parallel, "zero": parallel.zero,
             "recompute": rec}
    micro = [m for m in _divisors_desc(per_replica) if m <= micro_batch] or [1]

    def memory(state: dict, m: int) -> TrainingMemory:
        par = replace(parallel, sequence_parallel=state["sequence_parallel"],
                      zero=state["zero"])
        return training_memory(cfg, m, seq_len, precision=precision, optimizer=optimizer,
                               recompute=state["recompute"], flash=flash, parallel=par)

    def largest(state: dict) -> int | None:
        return next((m for m in micro if memory(state, m).fits(capacity)), None)

    savers = []
    if parallel.tp > 1 and not parallel.sequence_parallel:
        savers.append(("sequence_parallel", True))
    if parallel.dp > 1:
        savers += [("zero", z) for z in (1, 2) if parallel.zero < z]
    if rec == "none":
        savers.append(("recompute", "selective"))
    if parallel.dp > 1 and parallel.zero < 3:
        savers.append(("zero", 3))
    if rec != "full":
        savers.append(("recompute", "full"))
    state, m = dict(asked), largest(asked)
    for key, value in savers:
        if m is not None:
            break
        trial = {**state, key: value}
        if memory(trial, micro[-1]).total < memory(state, micro[-1]).total:
            state, m = trial, largest(trial)
    if m is None:
        return None
    for key in ("recompute", "zero", "sequence_parallel"):  # drop what is not needed
        for lower in _weaker(key, state[key], asked[key]):
            if memory({**state, key: lower}, m).fits(capacity):
                state = {**state, key: lower}
                break
    m = largest(state)
    changes = ([f"--micro-batch {m}"] if m != micro_batch else [])
    if state["sequence_parallel"] != asked["sequence_parallel"]:
        changes.append("--sequence-parallel")
    if state["zero"] != asked["zero"]:
        changes.append(f"--zero {state['zero']}")
    if state["recompute"] != asked["recompute"]:
        changes.append(f"--recompute {state['recompute']}")
    if not changes:
        return None  # it fits as asked: nothing to suggest
    return FitSuggestion(m, str(state["recompute"]), state["sequence_parallel"], state["zero"],
                         memory(state, m), tuple(changes))


def _weaker(key: str, value, asked) -> list:
    """Settings between `asked` and `value` that save less memory, weakest first."""
    if value == asked:
        return []
    if key == "zero":
        return list(range(asked, value))
    if key == "recompute":
        return [asked] + (["selective"] if value == "full" and asked == "none" else [])
    return [asked]
