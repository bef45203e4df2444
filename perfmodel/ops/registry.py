"""Registry of op cost formulas: one decorator registers a formula per op kind.

A formula is a function `f(<shape params>, *, dtype, phase) -> OpCost` where `phase` is
`"fwd"` or `"bwd"`; `op_cost` adds `"fwd_bwd"` (the sum of both) for every kind, checks
the parameters and canonicalises the dtype, so formulas stay short.

    @register("gemm", "bmm", "linear", tensor=True)
    def gemm(m, n, k, b=1, *, dtype, phase): ...
"""
from __future__ import annotations

import difflib
import inspect
from dataclasses import dataclass
from typing import Callable

from perfmodel.dtypes import canonical_dtype
from perfmodel.errors import PerfmodelError
from perfmodel.ops.cost import OpCost

PHASES = ("fwd", "bwd", "fwd_bwd")


@dataclass(frozen=True)
class OpFormula:
    """A registered formula: its kind names, shape parameters and math class."""

    kind: str
    fn: Callable[..., OpCost]
    names: tuple[str, ...]
    params: tuple[str, ...]  # shape parameters, in signature order
    required: tuple[str, ...]
    tensor: bool  # runs on matrix units (tensor cores); else vector/SIMT math

    def __call__(self, *, phase: str = "fwd", dtype: str = "float16", **params) -> OpCost:
        return _evaluate(self, phase, dtype, params)


_REGISTRY: dict[str, OpFormula] = {}


def register(*names: str, tensor: bool = False):
    """Decorator: register `fn` as the cost formula of op kinds `names` (first is canonical)."""
    if not names:
        raise TypeError("register() needs at least one op kind name")

    def deco(fn):
        sig = inspect.signature(fn)
        params = tuple(p for p in sig.parameters if p not in ("dtype", "phase"))
        required = tuple(p.name for p in sig.parameters.values()
                         if p.name not in ("dtype", "phase") and p.default is inspect.Parameter.empty)
        formula = OpFormula(names[0], fn, tuple(names), params, required, tensor)
        for name in names:
            if name in _REGISTRY:
                raise ValueError(f"op kind {name!r} is already registered")
            _REGISTRY[name] = formula
        return fn

    return deco


def get_formula(kind: str) -> OpFormula:
    """The formula registered for `kind` (PerfmodelError listing close names if unknown)."""
    try:
        return _REGISTRY[kind]
    except KeyError:
        close = difflib.get_close_matches(str(kind), list(_REGISTRY), n=4, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise PerfmodelError(
            f"unknown op kind {kind!r}{hint} (known: {', '.join(sorted(_REGISTRY))})"
        ) from None


def list_op_kinds() -> list[str]:
    """All registered op kind names (aliases included), sorted."""
    return sorted(_REGISTRY)


def is_tensor_op(kind: str) -> bool:
    """Whether `kind` runs on matrix units (GEMM, conv, attention) rather than vector math."""
    return get_formula(kind).tensor


def op_cost(kind: str, *, phase: str = "fwd", dtype: str = "float16", **params) -> OpCost:
    """Cost of one op of `kind` with shape `params`, for `phase` in fwd | bwd | fwd_bwd."""
    return _evaluate(get_formula(kind), phase, dtype, params)


def _evaluate(formula: OpFormula, phase: str, dtype, params: dict) -> OpCost:
    if phase not in PHASES:
        raise PerfmodelError(f"unknown phase {phase!r}; expected one of {', '.join(PHASES)}")
    unknown = [p for p in params if p not in formula.params]
    if unknown:
        raise PerfmodelError(
            f"{formula.kind}: unexpected parameter {unknown[0]!r} "
            f"(expected {', '.join(formula.params)})"
        )
    missing = [p for p in formula.required if p not in params]
    if missing:
        raise PerfmodelError(f"{formula.kind}: missing parameter {missing[0]!r} "
                             f"(needs {', '.join(formula.required)})")
    dt = canonical_dtype(dtype)
    if phase == "fwd_bwd":
        return formula.fn(**params, dtype=dt, phase="fwd") + formula.fn(**params, dtype=dt, phase="bwd")
    return formula.fn(**params, dtype=dt, phase=phase)


def dims(kind: str, **values) -> tuple[int, ...]:
    """The given dimensions as ints; PerfmodelError unless each is a positive integer."""
    out = []
    for name, v in values.items():
        try:
            ok = not isinstance(v, bool) and float(v).is_integer() and float(v) > 0
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise PerfmodelError(f"{kind}: {name} must be a positive integer, got {v!r}")
        out.append(int(v))
    return tuple(out)
