"""`perfmodel` command line: a thin shell over the Python API.

Each subcommand lives in its own module `perfmodel/cli/cmd_<name>.py` defining
`register(subparsers)`, which adds a parser and sets `func=run(args) -> int`.
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import warnings

from perfmodel.errors import PerfmodelError


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage block), as every other error is printed."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def _one_line_warning(message, category, filename, lineno, file=None, line=None):
    print(f"perfmodel: warning: {message}", file=file or sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every discovered subcommand."""
    parser = _Parser(
        prog="perfmodel",
        description="Predict runtime, energy, memory and MFU of deep-learning workloads.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    pkg = sys.modules[__name__]
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name):
        if info.name.startswith("cmd_"):
            importlib.import_module(f"{__name__}.{info.name}").register(sub)
    return parser


try:  # SIGTERM handled as an interrupt: a profile run stopped by `timeout` or a scheduler
    # journals its point as abandoned (`profilers.cli`, installed beside perfmodel)
    from profilers.budget import join_duration_values
    from profilers.cli import Terminated, os_error, sigterm_interrupts
except ImportError:  # perfmodel alone: no profile command, default signal handling
    import contextlib

    class Terminated(KeyboardInterrupt):
        pass

    def sigterm_interrupts():
        return contextlib.nullcontext()

    def os_error(exc: OSError) -> str:
        return str(exc)

    def join_duration_values(argv: list[str]) -> list[str]:
        return argv


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `perfmodel` console script."""
    parser = build_parser()
    args = parser.parse_args(join_duration_values(sys.argv[1:] if argv is None else list(argv)))
    warnings.showwarning = _one_line_warning
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        with sigterm_interrupts():
            return int(args.func(args) or 0)
    except PerfmodelError as exc:
        print(f"perfmodel {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a path that cannot be written or read
        if isinstance(exc, BrokenPipeError):
            return 0
        print(f"perfmodel {args.command}: error: {os_error(exc)}", file=sys.stderr)
        return 2
    except Terminated:
        print(f"perfmodel {args.command}: terminated", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print(f"perfmodel {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
