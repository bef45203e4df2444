"""Dtype names as torch spells them, their sizes and the math mode they run on."""
from __future__ import annotations

from perfmodel.errors import PerfmodelError

# Storage bytes per element. `tf32` is float32 storage with TF32 tensor-core math.
DTYPE_BYTES: dict[str, float] = {
    "float64": 8,
    "float32": 4,
    "tf32": 4,
    "float16": 2,
    "bfloat16": 2,
    "float8_e4m3fn": 1,
    "float8_e5m2": 1,
    "int8": 1,
    "int32": 4,
    "int64": 8,
    "bool": 1,
}

_ALIASES = {
    "fp64": "float64", "double": "float64",
    "fp32": "float32", "float": "float32", "single": "float32",
    "fp16": "float16", "half": "float16",
    "bf16": "bfloat16",
    "fp8": "float8_e4m3fn", "float8": "float8_e4m3fn", "e4m3": "float8_e4m3fn",
    "e5m2": "float8_e5m2",
}


def canonical_dtype(name) -> str:
    """Return the canonical dtype name for a string or torch.dtype."""
    s = str(name).replace("torch.", "").strip().lower()
    s = _ALIASES.get(s, s)
    if s not in DTYPE_BYTES:
        raise PerfmodelError(
            f"unknown dtype {name!r}; expected one of {', '.join(sorted(DTYPE_BYTES))}"
        )
    return s


def dtype_bytes(name) -> float:
    """Bytes per element of a dtype."""
    return DTYPE_BYTES[canonical_dtype(name)]
