"""Device catalogue: look up a GPU by short key or by the name torch/NVML report.

`get_device("h100")`, `get_device("NVIDIA H100 80GB HBM3")` and `get_device("cpu")`
(the local CPU, see `perfmodel.hardware.cpu`) all return a `DeviceSpec`.
"""
from __future__ import annotations

import difflib
import re
from functools import lru_cache

from perfmodel.errors import PerfmodelError
from perfmodel.hardware.nvidia import GPUS, TPUS
from perfmodel.hardware.spec import MATH_MODES, DeviceSpec

__all__ = ["DeviceSpec", "MATH_MODES", "get_device", "list_devices", "normalize_name"]

_CPU_NAMES = {"cpu", "local-cpu", "host"}
_VENDOR_PREFIXES = ("nvidia-", "tesla-", "geforce-", "google-")


def normalize_name(name: str) -> str:
    """Lower-case, separators (space, `_`, `-`, `/`) collapsed to a single `-`."""
    return re.sub(r"[\s_\-/]+", "-", str(name).strip().lower()).strip("-")


def _strip_vendor(norm: str) -> str:
    changed = True
    while changed:
        changed = False
        for p in _VENDOR_PREFIXES:
            if norm.startswith(p):
                norm, changed = norm[len(p):], True
    return norm


@lru_cache(maxsize=1)
def _index() -> dict[str, DeviceSpec]:
    """Every accepted spelling (normalized, with and without vendor prefix) -> spec."""
    index: dict[str, DeviceSpec] = {}
    for spec in GPUS + TPUS:
        for n in (spec.key, spec.name, *spec.aliases):
            norm = normalize_name(n)
            for form in (norm, _strip_vendor(norm)):
                other = index.setdefault(form, spec)
                if other.key != spec.key:
                    raise AssertionError(f"catalogue name {n!r} is ambiguous: "
                                         f"{other.key} and {spec.key}")
    return index


def list_devices(include_cpu: bool = False, measure_cpu_bandwidth: bool = False
                 ) -> list[DeviceSpec]:
    """All catalogue entries (GPUs then TPUs), and the local CPU if asked."""
    devices = list(GPUS + TPUS)
    if include_cpu:
        from perfmodel.hardware.cpu import local_cpu

        devices.append(local_cpu(measure_bandwidth=measure_cpu_bandwidth))
    return devices


def is_known(name) -> bool:
    """Whether `get_device(name)` finds a device (no error raised)."""
    try:
        get_device(name)
    except PerfmodelError:
        return False
    return True


def get_device(name) -> DeviceSpec:
    """The spec of a device given its key, alias, torch/NVML name, or `cpu`."""
    if isinstance(name, DeviceSpec):
        return name
    norm = normalize_name(name)
    if not norm:
        raise PerfmodelError("empty device name")
    if norm in _CPU_NAMES:
        from perfmodel.hardware.cpu import local_cpu

        return local_cpu()
    index = _index()
    for form in (norm, _strip_vendor(norm)):
        if form in index:
            return index[form]
    keys = sorted({s.key for s in index.values()}) + ["cpu"]
    close = difflib.get_close_matches(_strip_vendor(norm), list(index), n=5, cutoff=0.5)
    close_keys = list(dict.fromkeys(index[c].key for c in close))
    hint = (f"close matches: {', '.join(close_keys)}" if close_keys
            else f"known devices: {', '.join(keys)}")
    raise PerfmodelError(f"unknown device {name!r}; {hint}")
