"""Memory of one op or block: bytes saved for backward, and the CUDA allocation peak."""
from __future__ import annotations

from typing import Callable, Iterable


def _storage_key(t) -> tuple:
    try:
        st = t.untyped_storage()
        return (str(t.device), st.data_ptr()), int(st.nbytes())
    except Exception:  # tensor subclasses without a plain storage
        return (str(t.device), id(t)), int(t.numel() * t.element_size())


def _is_parameter(t) -> bool:
    """A parameter or a view of one (e.g. `weight.t()` saved by a linear layer)."""
    import torch

    return isinstance(t, torch.nn.Parameter) or isinstance(getattr(t, "_base", None), torch.nn.Parameter)


def activation_bytes(fn: Callable[[], object], params: Iterable = ()) -> int:
    """Bytes autograd saves for backward while `fn()` runs forward.

    Counted through `torch.autograd.graph.saved_tensors_hooks`; tensors sharing a storage
    count once (the whole storage, as that is what stays alive), and parameters, views of
    parameters and any tensor sharing a storage with `params` do not count.
    """
    import torch

    skip = {_storage_key(p)[0] for p in params}
    seen: dict[tuple, int] = {}

    def pack(t):
        key, nbytes = _storage_key(t)
        if key not in skip and not _is_parameter(t):
            seen[key] = max(seen.get(key, 0), nbytes)
        return t

    with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    total = sum(seen.values())
    del out
    return total


def module_activation_bytes(module, *inputs) -> int:
    """`activation_bytes` of `module(*inputs)`, excluding the module's parameters and buffers."""
    held = list(module.parameters()) + list(module.buffers())
    return activation_bytes(lambda: module(*inputs), held)
