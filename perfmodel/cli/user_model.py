"""A user's own torch model named on the command line: `FILE.py:NAME` or `package.module:NAME`.

NAME is an `nn.Module` subclass or a function that returns a module (called without
arguments), or a module instance. The file is imported and a class or function called
under `torch.device("meta")`, so a model of any size costs no memory: perfmodel counts
it on the meta device and never runs it.
"""
from __future__ import annotations

import hashlib
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
    if not m or m["name"].lower().endswith((".py", ".json")):
        return False
    return (m["where"].lower().endswith(".py")
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
            public = sorted(k for k, v in vars(mod).items() if not k.startswith("_") and (
                isinstance(v, nn.Module)
                or (callable(v) and getattr(v, "__module__", None) == mod.__name__)))[:12]
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
    except (Exception, SystemExit) as exc:  # noqa: BLE001  (the user's code: say what it raised)
        hint = " (it is called without arguments)" if isinstance(exc, TypeError) else ""
        raise PerfmodelError(f"{where}:{name}() raised {type(exc).__name__}: "
                             f"{_first_line(exc)}{hint}") from None
    if not isinstance(built, nn.Module):
        raise PerfmodelError(f"{where}:{name}() returned {_a(type(built).__name__)}, "
                             "not an nn.Module")
    return built


def _import(where: str):
    """The module of a file (imported under `torch.device("meta")`, so module-level
    models cost no memory either; its folder stays on `sys.path` for its own imports,
    lazy ones included) or of a dotted name (found from the current folder too)."""
    import torch

    if where.lower().endswith(".py"):
        path = Path(where).resolve()
        if not path.is_file():
            raise PerfmodelError(f"{where}: no such file")
        mod_name = "perfmodel_user_" + hashlib.sha1(str(path).encode()).hexdigest()[:12]
        spec = importlib.util.spec_from_file_location(mod_name, path)
        mod = importlib.util.module_from_spec(spec)
        if str(path.parent) not in sys.path:
            sys.path.insert(0, str(path.parent))
        sys.modules[mod_name] = mod  # dataclasses and pickling look their module up here
        try:
            with torch.device("meta"):
                spec.loader.exec_module(mod)
        except (Exception, SystemExit) as exc:  # noqa: BLE001
            del sys.modules[mod_name]
            hint = (" (a file with relative imports: name it as package.module:NAME)"
                    if isinstance(exc, ImportError) and "relative import" in str(exc) else "")
            raise PerfmodelError(f"{where}: importing it raised {type(exc).__name__}: "
                                 f"{_first_line(exc)}{hint}") from None
        return mod
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))  # the console script does not put it there
    try:
        with torch.device("meta"):
            return importlib.import_module(where)
    except (Exception, SystemExit) as exc:  # noqa: BLE001
        raise PerfmodelError(f"{where}: importing it raised {type(exc).__name__}: "
                             f"{_first_line(exc)}") from None


def _a(word: str) -> str:
    return ("an " if word[:1].lower() in "aeiou" else "a ") + word


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else "(no message)"


def parse_shape(text: str) -> tuple[int, ...]:
    """`3,224,224` (or `3x224x224`) -> (3, 224, 224): one sample's input shape, positive
    integers; an empty or non-integer field is an error, not skipped."""
    import re

    fields = [v.strip() for v in re.split(r"[,x]", text.strip())]
    try:
        shape = tuple(int(v) for v in fields) if all(fields) else ()
    except ValueError:
        shape = ()
    if not shape or any(v < 1 for v in shape):
        raise PerfmodelError(f"--input-shape expects positive integers such as 3,224,224 "
                             f"(one sample, no batch), got {text!r}")
    return shape


def token_vocab(model) -> int:
    """The vocabulary of a model that takes token ids: the smallest `nn.Embedding` (ids
    must index every embedding they may reach); a one-line error when it has none."""
    from torch import nn

    sizes = [m.num_embeddings for m in model.modules()
             if isinstance(m, (nn.Embedding, nn.EmbeddingBag))]
    if not sizes:
        raise PerfmodelError(f"{type(model).__name__} has no nn.Embedding: --tokens is for a "
                             "model that takes token ids")
    return min(sizes)
