"""Append-only JSON-lines journal: each finished point is flushed and fsynced at once.

A `kill -9` can only truncate the line being written; `read()` skips such a torn tail.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path


def _clean(value):
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        return value.item()  # numpy scalars
    return value


class Journal:
    def __init__(self, path: Path | str):
        self.path = Path(path)
        self._tail_checked = False

    def append(self, record: dict) -> None:
        """Write one record durably (flush + fsync) before returning."""
        line = (json.dumps({k: _clean(v) for k, v in record.items()}, default=str) + "\n").encode()
        if not self._tail_checked:  # a torn line from a crash must not swallow this record
            self._tail_checked = True
            if self.path.is_file() and self.path.stat().st_size:
                with open(self.path, "rb") as fh:
                    fh.seek(-1, os.SEEK_END)
                    if fh.read(1) != b"\n":
                        line = b"\n" + line
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)

    def read(self) -> list[dict]:
        """Every complete record; a torn last line (a crash mid-write) is ignored."""
        if not self.path.is_file():
            return []
        records = []
        for line in self.path.read_bytes().split(b"\n"):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return records

    def remove(self) -> None:
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
