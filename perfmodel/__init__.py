"""perfmodel: predict what a deep-learning run will cost before paying for it.

The public API is imported lazily so that `import perfmodel` stays light
(the profilers run on GPU machines that have torch and little else).
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_API = {
    "PerfmodelError": ("perfmodel.errors", "PerfmodelError"),
    "get_device": ("perfmodel.hardware.catalogue", "get_device"),
    "list_devices": ("perfmodel.hardware.catalogue", "list_devices"),
    "local_cpu": ("perfmodel.hardware.cpu", "local_cpu"),
    "build_model": ("perfmodel.models.registry", "build_model"),
    "list_models": ("perfmodel.models.registry", "list_models"),
    "get_transformer_config": ("perfmodel.models.transformer_configs", "get_transformer_config"),
    "param_count": ("perfmodel.llm.params", "param_count"),
    "flops_per_token": ("perfmodel.llm.flops", "flops_per_token"),
    "training_memory": ("perfmodel.llm.memory", "training_memory"),
    "estimate_mfu": ("perfmodel.llm.mfu", "estimate_mfu"),
    "count_model": ("perfmodel.counting.counter", "count_model"),
    "fit": ("perfmodel.learn.predictor", "fit"),
    "load": ("perfmodel.learn.predictor", "load"),
    "predict_model": ("perfmodel.predict.model", "predict_model"),
    "rank_candidates": ("perfmodel.predict.rank", "rank_candidates"),
    "resolve_backend": ("perfmodel.predict.device", "resolve_backend"),
}

__all__ = sorted(_API) + ["__version__"]


def __getattr__(name: str):
    if name in _API:
        module, attr = _API[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'perfmodel' has no attribute {name!r}")
