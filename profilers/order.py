"""Deterministic measurement orders that cover a space early (so short budgets still span it)."""
from __future__ import annotations

import zlib

import numpy as np


def seed_of(text: str) -> int:
    """A stable seed from a string (Python's hash() is salted per process)."""
    return zlib.crc32(text.encode())


def spread_order(features, seed: int = 0) -> list[int]:
    """Greedy farthest-point order of the rows of `features`.

    Starts from a seeded random row, then repeatedly takes the row farthest from all rows
    taken so far (ties broken by a seeded random jitter), so every prefix of the order is
    spread over the whole space. Features should be scaled comparably (e.g. log2 sizes).
    """
    x = np.asarray(features, dtype=float)
    n = len(x)
    if n == 0:
        return []
    rng = np.random.default_rng(seed)
    jitter = rng.random(n) * 1e-6
    order = [int(rng.integers(n))]
    dist = np.linalg.norm(x - x[order[0]], axis=1)
    dist[order[0]] = -1.0
    for _ in range(n - 1):
        nxt = int(np.argmax(dist + jitter * (dist >= 0)))
        order.append(nxt)
        dist = np.minimum(dist, np.linalg.norm(x - x[nxt], axis=1))
        dist[nxt] = -1.0
    return order
