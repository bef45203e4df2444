"""A user's own torch model named on the command line: `FILE.py:NAME` or `package.module:NAME`.

NAME is an `nn.Module` subclass or a function that returns a module (called without
arguments), or a module instance. A class or function is called under
`torch.device("meta")`, so a model of any size costs no memory: perfmodel counts it on
the meta device and never runs it.
"""
from __future__ import annotations

import importlib
import importlib.util
import re
import sys
from pathlib import Path

from perfmodel.errors import PerfmodelError

SPEC = re.compile(r"^(?P<where>.+?):(?P<name>[A-Za-z_][A-Za-z0-9_.]*)$")


def is_user_model(text: str) -> bool:
    """Whether `text` names a user model (`where:NAME`) rather than a registry name or a
    config file."""
    m = SPEC.match(text)
    return bool(m) and (m["where"].endswith(".py")
                        or re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", m["where"]) is not None)


def load_user_model(text: str):
    """The `nn.Module` that `FILE.py:NAME` or `package.module:NAME` names, built on the
    meta device; a one-line `PerfmodelError` for anything else."""
    import torch
    from torch import nn

    m = SPEC.match(text)
    if not m:
        raise PerfmodelError(f"{text!r}: expected FILE.py:NAME or package.module:NAME")
    where, name = m["where"], m["name"]
    mod = _import(where)
    obj = mod
    for attr in name.split("."):
        if not hasattr(obj, attr):
            public = sorted(k for k in vars(mod) if not k.startswith("_"))[:12]
            raise PerfmodelError(f"{where} has no {name!r}"
                                 + (f" (it defines: {', '.join(public)})" if public else ""))
        obj = getattr(obj, attr)
    if isinstance(obj, nn.Module):
        return obj
    if not callable(obj):
        raise PerfmodelError(f"{where}:{name} is {_a(type(obj).__name__)}, not an nn.Module, "
                             "a module class or a function that returns one")
    try:
        with torch.device("meta"):
            built = obj()
    except Exception as exc:  # noqa: BLE001  (the user's code: say what it raised)
        raise PerfmodelError(f"{where}:{name}() raised {type(exc).__name__}: "
                             f"{_first_line(exc)} (it is called without arguments)") from None
    if not isinstance(built, nn.Module):
        raise PerfmodelError(f"{where}:{name}() returned {_a(type(built).__name__)}, "
                             "not an nn.Module")
    return built


def _import(where: str):
    if where.endswith(".py"):
        path = Path(where)
        if not path.is_file():
            raise PerfmodelError(f"{where}: no such file")
        mod_name = f"perfmodel_user_{abs(hash(str(path.resolve())))}"
        spec = importlib.util.spec_from_file_location(mod_name, path)
        mod = importlib.util.module_from_spec(spec)
        sys.path.insert(0, str(path.resolve().parent))  # its own sibling imports
        try:
            spec.loader.exec_module(mod)
        except Exception as exc:  # noqa: BLE001
            raise PerfmodelError(f"{where}: importing it raised {type(exc).__name__}: "
                                 f"{_first_line(exc)}") from None
        finally:
            sys.path.remove(str(path.resolve().parent))
        return mod
    try:
        return importlib.import_module(where)
    except Exception as exc:  # noqa: BLE001
        raise PerfmodelError(f"{where}: importing it raised {type(exc).__name__}: "
                             f"{_first_line(exc)}") from None


def _a(word: str) -> str:
    return ("an " if word[:1].lower() in "aeiou" else "a ") + word


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else "(no message)"


def parse_shape(text: str) -> tuple[int, ...]:
    """`3,224,224` -> (3, 224, 224): one sample's input shape, positive integers."""
    try:
        shape = tuple(int(v) for v in text.replace("x", ",").split(",") if v.strip())
    except ValueError:
        shape = ()
    if not shape or any(v < 1 for v in shape):
        raise PerfmodelError(f"--input-shape expects positive integers such as 3,224,224 "
                             f"(one sample, no batch), got {text!r}")
    return shape
