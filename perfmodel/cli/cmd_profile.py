"""`perfmodel profile`: measure a device into a profile directory, export it, compare two."""
from __future__ import annotations


def register(subparsers) -> None:
    from profilers.cli import add_arguments

    parser = subparsers.add_parser(
        "profile", help="measure runtime, memory, power and energy on a GPU or the CPU",
        description="Measure suites within a time budget into a resumable profile directory "
                    "(rerun the same command to resume); `export DIR --csv`; `compare A B`; "
                    "`merge A B --out C` pools complete runs of one device; `finish DIR` ends a "
                    "paused or cut-short run with what it measured.")
    add_arguments(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    from profilers.cli import run as run_profile_command

    return run_profile_command(args)
