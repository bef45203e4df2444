"""Progress display: a rich bar on a terminal when rich is installed, plain lines otherwise."""
from __future__ import annotations

import math
import sys
import time


def fmt_seconds(s: float) -> str:
    s = max(0, int(round(s)))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}h{m:02d}m{sec:02d}s" if h else (f"{m}m{sec:02d}s" if m else f"{sec}s")


class PlainProgress:
    """At most one line every `every_s` seconds: the suite measuring then (suites take
    turns) with its points so far, and the run's time against its budget."""

    def __init__(self, budget_s: float, stream=None, every_s: float = 5.0):
        self.budget_s = budget_s
        self.stream = stream or sys.stderr
        self.every_s = every_s
        self._last = -math.inf

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, suite: str, done: int, failed: int, spent_s: float) -> None:
        now = time.monotonic()
        if now - self._last < self.every_s:
            return
        self._last = now
        print(f"[{suite}] {done} points done ({failed} failed), "
              f"{fmt_seconds(spent_s)}/{fmt_seconds(self.budget_s)}, "
              f"ETA {fmt_seconds(self.budget_s - spent_s)}", file=self.stream, flush=True)


class RichProgress:
    """A rich progress bar over the time budget with the point count."""

    def __init__(self, budget_s: float):
        from rich.progress import BarColumn, Progress, TextColumn

        self.budget_s = budget_s
        self.bar = Progress(TextColumn("[bold]{task.fields[suite]:<10}"), BarColumn(),
                            TextColumn("{task.fields[points]} points ({task.fields[failed]} failed)"),
                            TextColumn("{task.fields[spent]} / {task.fields[budget]}  ETA {task.fields[eta]}"),
                            transient=False)
        self.task = None

    def __enter__(self):
        self.bar.__enter__()
        self.task = self.bar.add_task("profile", total=self.budget_s, suite="", points=0,
                                      failed=0, spent="0s", budget=fmt_seconds(self.budget_s),
                                      eta=fmt_seconds(self.budget_s))
        return self

    def __exit__(self, *exc):
        return self.bar.__exit__(*exc)

    def update(self, suite: str, done: int, failed: int, spent_s: float) -> None:
        self.bar.update(self.task, completed=min(spent_s, self.budget_s), suite=suite,
                        points=done, failed=failed, spent=fmt_seconds(spent_s),
                        eta=fmt_seconds(self.budget_s - spent_s))


class NoProgress(PlainProgress):
    def update(self, *args, **kwargs) -> None:
        pass


def make_progress(budget_s: float, mode: str = "auto"):
    """`rich` on an interactive terminal when importable, else plain lines; `none` is silent."""
    if mode == "none":
        return NoProgress(budget_s)
    if mode in ("auto", "rich") and sys.stderr.isatty():
        try:
            return RichProgress(budget_s)
        except ImportError:
            pass
    return PlainProgress(budget_s)
