"""A point to measure (suite, op, phase, dtype, parameters) and the workload that runs it."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Callable, ContextManager


@dataclass(frozen=True)
class Point:
    """One measurement; `id` is deterministic, so a resumed run recognises finished points."""

    suite: str
    op: str
    phase: str
    dtype: str
    params: tuple[tuple[str, object], ...]

    @classmethod
    def make(cls, suite: str, op: str, phase: str, dtype: str, **params) -> "Point":
        return cls(suite, op, phase, dtype, tuple(params.items()))

    @property
    def id(self) -> str:
        args = ",".join(f"{k}={v}" for k, v in self.params)
        return f"{self.suite}/{self.op}/{self.phase}/{self.dtype}/{args}"

    @property
    def p(self) -> dict:
        """The parameters as a dict."""
        return dict(self.params)


@dataclass
class Workload:
    """What the runner needs to measure a point.

    `run` is one execution (timed, and repeated in the energy window); `forward`, when
    given, runs the forward pass once so the bytes saved for backward can be counted
    (tensors in `not_activations`, such as weights, are excluded); `context` wraps every
    execution (e.g. the TF32 switch); `flops`/`bytes` are the point's op cost.
    """

    run: Callable[[], object]
    forward: Callable[[], object] | None = None
    not_activations: list = field(default_factory=list)
    context: Callable[[], ContextManager] = contextlib.nullcontext
    flops: float | None = None
    bytes: float | None = None
    extra: dict = field(default_factory=dict)  # more columns for the row
