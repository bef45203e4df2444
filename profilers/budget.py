"""Durations like `90s`, `8m`, `1h30m`, `2.5m` or a bare number of seconds."""
from __future__ import annotations

import math
import re

from perfmodel.errors import PerfmodelError

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text, what: str = "budget") -> float:
    """Seconds in a duration string; PerfmodelError (naming the option `what`) when it is
    not one, or not positive and finite."""
    s = str(text).strip().lower().replace(" ", "")
    if s.startswith("-") and len(s) > 1:  # "-5s", "-1m": a duration, but not a positive one
        raise PerfmodelError(f"{what} {text!r}: must be positive")
    try:
        value = float(s)
    except ValueError:
        parts = re.findall(r"(\d+(?:\.\d+)?)([hms])", s)
        if not parts or "".join(a + b for a, b in parts) != s:
            raise PerfmodelError(f"{what} {text!r}: expected a duration like 90s, 8m, 1h30m") from None
        value = sum(float(num) * _UNITS[unit] for num, unit in parts)
    if not math.isfinite(value):  # "nan", "inf": a run that never ends, a NaN in metadata
        raise PerfmodelError(f"{what} {text!r}: expected a duration like 90s, 8m, 1h30m")
    if value <= 0:
        raise PerfmodelError(f"{what} {text!r}: must be positive")
    return value


DURATION_OPTIONS = ("--budget", "--stop-after", "--deadline", "--tests-time")


def join_duration_values(argv: list[str]) -> list[str]:
    """`--budget -5s` as `--budget=-5s`: argparse takes a value that starts with "-" (and is
    no plain negative number) for an option and stops with "expected one argument"; joined,
    the duration reaches `parse_duration` and its own message ("must be positive")."""
    out, i = [], 0
    while i < len(argv):
        a = argv[i]
        if (a in DURATION_OPTIONS and i + 1 < len(argv)
                and re.match(r"-[\d.]", str(argv[i + 1]))):
            out.append(f"{a}={argv[i + 1]}")
            i += 2
            continue
        out.append(a)
        i += 1
    return out


def split_budget(total_s: float, weights: dict[str, float]) -> dict[str, float]:
    """Each suite's share of the total, proportional to its weight."""
    norm = sum(weights.values())
    return {name: total_s * w / norm for name, w in weights.items()}
