"""Named models: lookup (case-insensitive), parameters, building and analytic complexity.

Families: pycls CNNs (RegNetX/Y, ResNet, ResNeXt, EfficientNet; `cnn_configs.py`), ViT
(`vit.py`), and decoder-only transformers (`transformer_configs.py`, kept by the hardware
helper). `build_model(name, factor, strategy, **overrides)` returns the `nn.Module` with an
`input_size` attribute (one sample's shape).
"""
from __future__ import annotations

import difflib
from dataclasses import fields, replace

import torch
from torch import nn

from perfmodel.errors import PerfmodelError
from perfmodel.models.anynet import AnyNet, AnyNetParams
from perfmodel.models.cnn_configs import CNN_ALIASES, CNN_CONFIGS
from perfmodel.models.complexity import Complexity
from perfmodel.models.effnet import EffNet, EffNetParams
from perfmodel.models.regnet import RegNetParams
from perfmodel.models.scaling import scale_params
from perfmodel.models.transformer import Transformer
from perfmodel.models.transformer_config import TransformerConfig
from perfmodel.models.vit import VIT_CONFIGS, ViT, ViTParams


def _transformer_configs() -> dict[str, TransformerConfig]:
    try:
        from perfmodel.models.transformer_configs import TRANSFORMER_CONFIGS
    except ImportError:  # the named table is written by another module owner
        return {}
    return dict(TRANSFORMER_CONFIGS)


def _catalogue() -> dict[str, object]:
    return {**CNN_CONFIGS, **VIT_CONFIGS, **_transformer_configs()}


def list_models() -> list[str]:
    """Every named model, as its authors spell it."""
    return list(_catalogue())


def _normalise(name: str) -> str:
    return name.strip().lower()


def get_params(name: str):
    """The parameter dataclass of a named model (case-insensitive; aliases accepted)."""
    if not isinstance(name, str) or not name.strip():
        raise PerfmodelError("model name must be a non-empty string")
    cat = _catalogue()
    index = {_normalise(k): k for k in cat}
    index.update({_normalise(a): t for a, t in CNN_ALIASES.items()})
    key = index.get(_normalise(name))
    if key is None:
        try:  # the transformer table's own lookup knows its aliases
            from perfmodel.models.transformer_configs import get_transformer_config

            return get_transformer_config(name)
        except (ImportError, PerfmodelError):
            pass
        close = difflib.get_close_matches(_normalise(name), list(index), n=5, cutoff=0.5)
        if close:
            hint = "close matches: " + ", ".join(index[c] for c in close)
        else:
            families = dict.fromkeys(k.split("-")[0] + "*" for k in cat)
            hint = f"known families: {', '.join(families)} (list_models() names them all)"
        raise PerfmodelError(f"unknown model {name!r}; {hint}")
    return cat[key]


def _override(p, overrides: dict):
    if not overrides:
        return p
    known = {f.name for f in fields(p)}
    bad = sorted(set(overrides) - known)
    if bad:
        raise PerfmodelError(
            f"unknown parameter(s) {', '.join(bad)} for {type(p).__name__}; "
            f"known: {', '.join(sorted(known))}"
        )
    return replace(p, **{k: _typed(p, k, v) for k, v in overrides.items()})


def _typed(p, key: str, value):
    """`value` for field `key` of `p`, checked against the field's current value's type."""
    current = getattr(p, key)
    if isinstance(value, list):
        value = tuple(value)
    if current is None or value is None:
        return value
    if isinstance(current, bool):
        ok = isinstance(value, bool)
    elif isinstance(current, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(current, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(current, tuple):
        ok = isinstance(value, tuple) and len(value) == len(current)
    else:
        ok = isinstance(value, type(current))
    if not ok:
        raise PerfmodelError(f"{type(p).__name__}.{key} must be like {current!r}, got {value!r}")
    return value


def resolve(name_or_params, factor: float = 1.0, strategy: str | None = None, **overrides):
    """Parameters after overrides and scaling (RegNets stay RegNets when unscaled)."""
    p = get_params(name_or_params) if isinstance(name_or_params, str) else name_or_params
    p = _override(p, overrides)
    return scale_params(p, factor, strategy)


def build_from_params(p) -> nn.Module:
    """The torch module for a parameter dataclass."""
    if isinstance(p, RegNetParams):
        p = p.to_anynet()
    if isinstance(p, AnyNetParams):
        return AnyNet(p)
    if isinstance(p, EffNetParams):
        return EffNet(p)
    if isinstance(p, ViTParams):
        return ViT(p)
    if isinstance(p, TransformerConfig):
        return Transformer(p)
    raise PerfmodelError(f"cannot build a model from {type(p).__name__}")


def build_model(name, factor: float = 1.0, strategy: str | None = None, *,
                device: str | torch.device | None = None, **overrides) -> nn.Module:
    """Build a named (optionally scaled) model; `device="meta"` allocates no weights.

    `overrides` replace fields of the model's parameter dataclass before scaling (e.g.
    `resolution=256`, `num_classes=10`, `seq_len=2048`, `n_layers=4`).
    """
    p = resolve(name, factor, strategy, **overrides)
    if device is None:
        return build_from_params(p)
    with torch.device(device):
        return build_from_params(p)


def complexity(name_or_params, resolution: int | None = None) -> Complexity:
    """pycls-style analytic complexity (MACs, params, acts) of a CNN or ViT, one sample."""
    p = get_params(name_or_params) if isinstance(name_or_params, str) else name_or_params
    if isinstance(p, RegNetParams):
        p = p.to_anynet()
    if isinstance(p, AnyNetParams):
        return AnyNet.complexity(p, resolution)
    if isinstance(p, EffNetParams):
        return EffNet.complexity(p, resolution)
    if isinstance(p, ViTParams):
        return ViT.complexity(p, resolution)
    raise PerfmodelError(
        f"no analytic complexity for {type(p).__name__}; count the built module instead"
    )
