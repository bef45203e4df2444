"""Command line shared by `perfmodel profile` and `python -m profilers` (same arguments).

    profile [run] --device cpu|cuda:N --suite gemm,conv,vector,attention,blocks,validation --budget 10m --out DIR
                  [--stop-after 9m]
    profile export DIR [--csv] [--output FILE]
    profile compare DIR_A DIR_B
    profile merge DIR_A DIR_B [...] --out DIR   (pool runs of one device)
    profile finish DIR   (end a paused or cut-short run with what it measured)
"""
from __future__ import annotations

import argparse
import contextlib
import signal
import sys
from pathlib import Path

from perfmodel.errors import PerfmodelError
from profilers.budget import join_duration_values

ACTIONS = ("run", "export", "compare", "merge", "finish")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of the profile command."""
    parser.add_argument("action", nargs="?", choices=ACTIONS, default="run",
                        help="run (default): measure; export: write CSV; compare: two "
                             "profiles; merge: pool complete runs of one device into --out; "
                             "finish: end a paused or cut-short run with what it measured")
    parser.add_argument("paths", nargs="*", help="profile directories (export, compare, merge)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    from profilers.suites import DEFAULT_SUITES

    parser.add_argument("--suite", default=DEFAULT_SUITES,
                        help="comma-separated suites (default: all)")
    parser.add_argument("--budget", default="10m", help="time for the whole run, e.g. 90s, 8m, 1h")
    parser.add_argument("--out", help="profile directory to write (or resume)")
    parser.add_argument("--csv", action="store_true", help="also write measurements.csv")
    parser.add_argument("--output", help="export: CSV path (default DIR/measurements.csv)")
    parser.add_argument("--flush-l2", action="store_true", help="flush the GPU L2 before every sample")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--canary", action="store_true",
                        help="CPU: time a canary GEMM around every point, wait out slow spells "
                             "and flag points caught in one (speed_ratio, throttled)")
    parser.add_argument("--stop-after", help="pause this invocation after this long (e.g. 9m); "
                                             "the same command continues the profile")
    parser.add_argument("--after", action="append", default=[], metavar="DIR",
                        help="an earlier profile of this device: skip the points it measured "
                             "(a second short run covers new ones; pool them with merge)")
    parser.add_argument("--progress", choices=("auto", "plain", "none"), default="auto",
                        help="progress display: a live table on a terminal (auto), one line "
                             "every few seconds (plain), or none")


def run(args) -> int:
    """Dispatch the action; PerfmodelError for bad input."""
    from profilers import schema

    if args.action == "export":
        if len(args.paths) != 1:
            raise PerfmodelError("export needs exactly one profile directory")
        path = schema.export_csv(args.paths[0], args.output)
        print(f"wrote {path}")
        return 0
    if args.action == "compare":
        if len(args.paths) != 2:
            raise PerfmodelError("compare needs two profile directories")
        from profilers.compare import compare_profiles

        print(compare_profiles(*args.paths).report())
        return 0
    if args.action == "merge":
        if not args.out:
            raise PerfmodelError("merge needs --out DIR for the pooled profile")
        from profilers.merge import merge_profiles

        m = merge_profiles(args.paths, args.out)
        print(f"wrote {args.out}: {len(m.frame)} points, {m.pooled_points} of them pooled "
              f"over {m.runs} sources")
        return 0
    if args.action == "finish":
        if len(args.paths) != 1:
            raise PerfmodelError("finish needs exactly one profile directory")
        from profilers.runner import finish_profile

        print(finish_profile(args.paths[0]).summary())
        return 0
    if args.paths:
        raise PerfmodelError(f"unexpected arguments {' '.join(args.paths)}; did you mean --out?")
    if not args.out:
        raise PerfmodelError("--out DIR is required")
    from profilers.budget import parse_duration
    from profilers.runner import ProfileConfig, run_profile

    suites = tuple(dict.fromkeys(s.strip() for s in args.suite.split(",") if s.strip()))
    if not suites:
        raise PerfmodelError("--suite names no suite")
    args.device = str(args.device).strip().lower()  # `CPU` and `cpu`: one profile's key
    if args.flush_l2 and not args.device.startswith("cuda"):
        raise PerfmodelError("--flush-l2 flushes a GPU's L2 cache: it is for --device cuda[:N]")
    config = ProfileConfig(out=Path(args.out), device=args.device, suites=suites,
                           budget_s=parse_duration(args.budget), flush_l2=args.flush_l2,
                           threads=args.threads, canary=args.canary,
                           after=tuple(args.after))
    stop = parse_duration(args.stop_after, "--stop-after") if args.stop_after else None
    result = run_profile(config, progress=args.progress, stop_after_s=stop)
    print(result.summary())
    if args.csv:
        print(f"wrote {schema.export_csv(result.directory)}")
    return 0


class Terminated(KeyboardInterrupt):
    """SIGTERM (`timeout`, `kill`, a batch scheduler), handled as an interrupt: the point
    being measured is journalled as abandoned, not taken for one that crashed the process."""


def _terminate(signum, frame):
    raise Terminated()


@contextlib.contextmanager
def sigterm_interrupts():
    """Within: SIGTERM raises `Terminated` (a KeyboardInterrupt); the old handler after."""
    try:
        old = signal.signal(signal.SIGTERM, _terminate)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def main(argv=None) -> int:
    """`python -m profilers`: the profile command without perfmodel's CLI."""
    try:
        with sigterm_interrupts():
            parser = argparse.ArgumentParser(prog="python -m profilers",
                                             description="Measure runtime, memory, power and energy.")
            add_arguments(parser)
            args = parser.parse_args(join_duration_values(sys.argv[1:] if argv is None else argv))
            return run(args)
    except PerfmodelError as exc:
        print(f"profilers: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # an --out or --output that cannot be written, say
        print(f"profilers: error: {os_error(exc)}", file=sys.stderr)
        return 2
    except Terminated:
        print("profilers: terminated (rerun the same command to resume)", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("profilers: interrupted (rerun the same command to resume)", file=sys.stderr)
        return 130


def os_error(exc: OSError) -> str:
    """One line for a file-system error: the path and what is wrong with it."""
    return f"{exc.filename}: {exc.strerror}" if exc.filename and exc.strerror else str(exc)
