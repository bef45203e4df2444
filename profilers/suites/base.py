"""The Suite base class, the registry and the helpers suites share."""
from __future__ import annotations

import contextlib
import math
from typing import ClassVar

from profilers.order import seed_of, spread_order
from profilers.points import Point, Workload
from profilers.repeat import MAX_REPEATS, REPEAT_FRACTION

SUITES: dict[str, type["Suite"]] = {}


def register_suite(cls: type["Suite"]) -> type["Suite"]:
    """Class decorator adding a suite to the registry under `cls.name`."""
    SUITES[cls.name] = cls
    return cls


class Suite:
    """A family of points. Subclasses define `candidates`, `features` and `build`."""

    name: ClassVar[str] = ""
    weight: ClassVar[float] = 1.0  # share of the run's budget relative to other suites
    repeat_fraction: ClassVar[float] = REPEAT_FRACTION  # of its budget: the repeat pass
    max_repeats: ClassVar[int] = MAX_REPEATS  # times a point is measured again, at most
    # repeats as the suite goes (lags from seconds on), or only in rounds after its points
    interleave_repeats: ClassVar[bool] = True
    # points of a ranking's ground truth (`ranked`): timed again this often (None: as
    # `max_repeats`)
    ranked_repeats: ClassVar[int | None] = None
    # on a CPU (a shared machine's slow spells): other `repeat_fraction` / `max_repeats` /
    # `ranked_repeats`
    cpu_repeats: ClassVar[dict | None] = None

    def ranked(self, point: Point) -> bool:
        """Whether `point` belongs to a ranking's ground truth (none by default)."""
        return False

    def repeats_of(self, point: Point) -> int:
        """How many times the repeat pass may measure `point` again: `max_repeats`, or
        `ranked_repeats` for a `ranked` point where that is more."""
        if self.ranked_repeats is not None and self.ranked(point):
            return max(self.ranked_repeats, self.max_repeats)
        return self.max_repeats

    def candidates(self, device) -> list[Point]:
        """Every point this suite could measure on `device` (any order, deterministic)."""
        raise NotImplementedError

    def features(self, point: Point) -> list[float]:
        """Coordinates of a point for the spread order (log2 sizes, categorical one-hots)."""
        raise NotImplementedError

    def build(self, point: Point, device) -> Workload:
        """Allocate inputs and return the workload that measures `point`."""
        raise NotImplementedError

    def timing_budget_s(self, device) -> float:
        """Seconds of warm-up plus timed repetitions for one point."""
        return 0.6 if device.kind == "cuda" else 0.4

    def energy_window_s(self, device, time_s: float) -> float:
        """Length of the energy window for a point taking `time_s` per execution."""
        if device.kind == "cuda":
            return max(getattr(device, "min_window_s", 0.5), 1.0 if time_s < 1e-3 else 0.5)
        return 0.3

    def points(self, device) -> list[Point]:
        """The candidates, spread-ordered: each prefix covers the space. On a CPU, sets
        this suite object's `cpu_repeats`."""
        if device.kind == "cpu" and self.cpu_repeats:
            for name, value in self.cpu_repeats.items():
                setattr(self, name, value)
        cands = self.candidates(device)
        order = spread_order([self.features(p) for p in cands], seed_of(self.name))
        return [cands[i] for i in order]


def log2(x: float) -> float:
    return math.log2(max(float(x), 1.0))


def one_hot(value, choices, scale: float = 4.0) -> list[float]:
    return [scale if value == c else 0.0 for c in choices]


def torch_dtype(dtype: str):
    """The storage dtype of a math-mode name (`tf32` is stored as float32)."""
    import torch

    return getattr(torch, "float32" if dtype == "tf32" else dtype)


@contextlib.contextmanager
def math_mode(dtype: str):
    """Allow TF32 tensor cores exactly when `dtype == "tf32"`; restore the settings after."""
    import torch

    old_mm = torch.get_float32_matmul_precision()
    old_cudnn = torch.backends.cudnn.allow_tf32
    tf32 = dtype == "tf32"
    torch.set_float32_matmul_precision("high" if tf32 else "highest")
    torch.backends.cudnn.allow_tf32 = tf32
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(old_mm)
        torch.backends.cudnn.allow_tf32 = old_cudnn


def randn(shape, dtype: str, device, requires_grad: bool = False):
    """Random normal data (never zeros: they can run faster than real data)."""
    import torch

    t = torch.randn(shape, dtype=torch.float32, device=device)
    t = t.to(torch_dtype(dtype))
    if requires_grad:
        t.requires_grad_(True)
    return t


def op_cost(kind: str, phase: str = "fwd", **params):
    """(flops, bytes) from perfmodel.ops' formulas, or (None, None) where unavailable."""
    try:
        from perfmodel.ops import op_cost as cost_fn
    except Exception:
        return None, None
    try:
        cost = cost_fn(kind, phase=phase, **params)
        return float(cost.flops), float(cost.bytes)
    except Exception:
        return None, None


def model_cost(module, inputs, dtype: str, backward: bool):
    """(flops, bytes) of a module from perfmodel.counting, or (None, None) where unavailable."""
    try:
        from perfmodel.counting.counter import count_model
    except Exception:
        return None, None
    try:
        count = count_model(module, inputs=inputs, dtype=dtype, backward=backward)
        return float(count.flops), float(count.bytes)
    except Exception:
        return None, None


def sample_grid(axes: dict, n: int, seed: int, accept) -> list[dict]:
    """Up to `n` distinct random combinations of `axes` values accepted by `accept(combo)`."""
    import numpy as np

    rng = np.random.default_rng(seed)
    seen, out = set(), []
    for _ in range(n):
        combo = {k: v[int(rng.integers(len(v)))] for k, v in axes.items()}
        key = tuple(combo.items())
        if key in seen or not accept(combo):
            continue
        seen.add(key)
        out.append(combo)
    return out
