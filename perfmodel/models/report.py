"""One model's cost summary (params, MACs, FLOPs, acts, bytes) for the CLI and API.

CNNs and ViTs take params, MACs and acts from the pycls-style analytic complexity (exact
pycls figures); transformers from the op counter. Bytes always come from the op counter
(`perfmodel.counting.count_model`, run on the meta device).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, is_dataclass

import torch

from perfmodel.dtypes import canonical_dtype
from perfmodel.errors import PerfmodelError
from perfmodel.models.anynet import AnyNetParams
from perfmodel.models.effnet import EffNetParams
from perfmodel.models.regnet import RegNetParams
from perfmodel.models.registry import build_from_params, complexity, resolve
from perfmodel.models.transformer import Transformer
from perfmodel.models.transformer_config import TransformerConfig
from perfmodel.models.vit import ViTParams


@dataclass(frozen=True)
class ComplexityReport:
    """Cost of one forward pass of `batch` samples (params are per model)."""

    name: str
    input_size: tuple
    batch: int
    dtype: str
    params: int
    macs: int
    acts: int
    bytes: int | None
    method: str  # "analytic" (pycls rules) or "counted" (op counter)
    architecture: dict = field(default_factory=dict)

    @property
    def flops(self) -> int:
        return 2 * self.macs

    def to_dict(self) -> dict:
        d = asdict(self)
        d["flops"] = self.flops
        d["input_size"] = list(self.input_size)
        return d


def architecture(p) -> dict:
    """The parameters that define the (scaled) architecture, as plain values."""
    if isinstance(p, RegNetParams):
        p = p.to_anynet()
    d = asdict(p) if is_dataclass(p) else {}
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()
            if k not in ("source",)}


def _count(model, batch: int, dtype: str):
    try:
        from perfmodel.counting.counter import count_model
    except ImportError:
        return None
    try:
        if hasattr(model, "example_input"):
            return count_model(model, inputs=model.example_input(batch, device="meta"),
                               batch=batch, dtype=dtype)
        return count_model(model, model.input_size, batch=batch, dtype=dtype)
    except PerfmodelError as exc:
        if "value per channel" not in str(exc):
            raise
        raise PerfmodelError(f"input {tuple(model.input_size)} at batch {batch} shrinks to one "
                             f"value per channel before a batch norm (training mode): use a "
                             f"larger resolution or --batch 2 or more") from None


def model_complexity(name, factor: float = 1.0, strategy: str | None = None, *,
                     resolution: int | None = None, batch: int = 1, dtype: str = "float32",
                     **overrides) -> ComplexityReport:
    """Params, MACs, acts and bytes of a named (optionally scaled) model.

    `resolution` sets the image size of CNNs/ViTs (before scaling), or the sequence length
    a transformer runs on (after scaling; the model itself is unchanged).
    """
    if batch < 1:
        raise PerfmodelError(f"batch must be at least 1, got {batch}")
    dtype = canonical_dtype(dtype)
    p = resolve(name, **overrides)
    seq_len = None
    if resolution is not None:
        if resolution < 1:
            raise PerfmodelError(f"resolution must be positive, got {resolution}")
        if isinstance(p, TransformerConfig):
            seq_len = resolution
        else:
            p = resolve(p, resolution=resolution)
    p = resolve(p, factor, strategy)
    with torch.device("meta"):
        model = Transformer(p, seq_len) if seq_len else build_from_params(p)
    counted = _count(model, batch, dtype)
    if isinstance(p, (RegNetParams, AnyNetParams, EffNetParams, ViTParams)):
        cx = complexity(p)
        params, macs, acts, method = cx.params, cx.macs * batch, cx.acts * batch, "analytic"
    elif counted is not None:
        params, macs, acts, method = counted.params, counted.macs, counted.acts, "counted"
    else:
        raise PerfmodelError("counting a transformer needs perfmodel.counting (not installed)")
    return ComplexityReport(
        name=getattr(p, "name", str(name)), input_size=tuple(model.input_size), batch=batch,
        dtype=dtype, params=int(params), macs=int(macs), acts=int(acts),
        bytes=None if counted is None else int(counted.bytes), method=method,
        architecture=architecture(p),
    )
