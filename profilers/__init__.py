"""profilers: measure runtime, activation memory, power and energy on a GPU or the CPU.

Runs with torch, numpy, pandas, pyarrow and (optionally) nvidia-ml-py only.

    from profilers import ProfileConfig, run_profile, read_profile
    run_profile(ProfileConfig(out="prof", device="cuda:0", budget_s=600))
"""
from __future__ import annotations

import importlib

_API = {
    "ProfileConfig": ("profilers.runner", "ProfileConfig"),
    "ProfileResult": ("profilers.runner", "ProfileResult"),
    "run_profile": ("profilers.runner", "run_profile"),
    "read_profile": ("profilers.schema", "read_profile"),
    "read_metadata": ("profilers.schema", "read_metadata"),
    "export_csv": ("profilers.schema", "export_csv"),
    "compare_profiles": ("profilers.compare", "compare_profiles"),
    "open_device": ("profilers.device", "open_device"),
    "Timer": ("profilers.timer", "Timer"),
    "activation_bytes": ("profilers.memory", "activation_bytes"),
    "SCHEMA_VERSION": ("profilers.schema", "SCHEMA_VERSION"),
}

__all__ = sorted(_API)


def __getattr__(name: str):
    if name in _API:
        module, attr = _API[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'profilers' has no attribute {name!r}")
