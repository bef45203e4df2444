"""CPU package energy from Linux RAPL (`/sys/class/powercap/intel-rapl:*`).

Counters are microjoules that wrap at `max_energy_range_uj`; unreadable files (root-only
since 2020 on many kernels) mean no CPU energy, with a note, never a crash.
"""
from __future__ import annotations

import re
from pathlib import Path

POWERCAP = Path("/sys/class/powercap")


class Rapl:
    """The top-level (package) RAPL zones that can be read."""

    def __init__(self, root: Path | str = POWERCAP):
        self.root = Path(root)
        self.zones: list[tuple[str, Path, int]] = []  # (name, energy file, wrap range uJ)
        self.note = ""
        self._discover()

    def _discover(self) -> None:
        tops = sorted(p for p in self.root.glob("intel-rapl:*")
                      if re.fullmatch(r"intel-rapl:\d+", p.name))
        if not tops:
            self.note = f"no RAPL zones under {self.root}: no CPU energy"
            return
        unreadable = []
        for zone in tops:
            name = _read_text(zone / "name") or zone.name
            if name.startswith("psys"):  # platform zone: would double-count the packages
                continue
            energy = zone / "energy_uj"
            if _read_int(energy) is None:
                unreadable.append(zone.name)
                continue
            wrap = _read_int(zone / "max_energy_range_uj") or 2**32
            self.zones.append((name, energy, wrap))
        if not self.zones:
            self.note = (f"RAPL energy files not readable ({', '.join(unreadable) or 'none'}; "
                         "root-only on this kernel?): no CPU energy")

    @property
    def available(self) -> bool:
        return bool(self.zones)

    def read(self) -> list[int | None]:
        """Raw counters (uJ), one per zone."""
        return [_read_int(path) for _, path, _ in self.zones]

    def energy_j(self, before: list[int | None], after: list[int | None]) -> float | None:
        """Joules between two `read()`s, unwrapping each counter once; None if a read failed."""
        total = 0
        for (_, _, wrap), a, b in zip(self.zones, before, after):
            if a is None or b is None:
                return None
            diff = b - a
            if diff < 0:
                diff += wrap
            total += diff
        return total / 1e6


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _read_int(path: Path) -> int | None:
    text = _read_text(path)
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None
