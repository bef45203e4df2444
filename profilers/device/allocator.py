"""Pin the C allocator's thresholds while a CPU is profiled (glibc malloc).

PyTorch's CPU tensors come from the C allocator. glibc's malloc serves a large request
with a fresh `mmap` (every page faulted in on first touch, returned to the kernel on free)
until a freed mapped block raises its *dynamic* threshold; it also trims the heap's top
back to the kernel past a threshold that moves with it. Which regime a workload runs in
therefore depends on what the process allocated and freed before. Measured on the AMD EPYC
VM (torch 2.13, one thread), RegNetY-400MF x4 by resolution, inference at batch 8: median
49.3, 59.0, 51.3 and 51.4 ms in four fresh processes, 40.2-41.8 ms in four with the
thresholds fixed; the shipped profile had timed that model at 51 ms in its first pass and
40 ms in its repeat pass.

A profile should time one regime, and the one a training or serving process spends its
hours in: freed memory reused, as PyTorch's caching allocator does on a GPU and jemalloc or
tcmalloc do on a CPU. So the profilers fix both thresholds high (`MMAP_THRESHOLD`,
`TRIM_THRESHOLD`, which also switches glibc's dynamic adjustment off) before measuring and
record it in the profile's metadata (`cpu_allocator`). A user's own process matches that
with `MALLOC_MMAP_THRESHOLD_=268435456 MALLOC_TRIM_THRESHOLD_=1073741824` in its
environment, or jemalloc/tcmalloc.

Not pinned (and said so): another C library (musl, macOS, Windows), an allocator
preloaded with `LD_PRELOAD` (jemalloc, tcmalloc, mimalloc: they keep freed memory
themselves), or malloc thresholds the user set through glibc's environment variables or
`GLIBC_TUNABLES` (respected as given). Other preloaded libraries are recorded (`preload`).
glibc offers no way back to its dynamic thresholds, so the pin lasts for the rest of the
process. It covers the main arena, where a one-thread profile's tensors live.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import re

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers (malloc.h)
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 256 * 2 ** 20  # bytes: requests below are served from the heap
TRIM_THRESHOLD = 2 ** 30  # bytes of free heap top kept rather than given back
ENV_KNOBS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")
TUNABLES = ("glibc.malloc.mmap_threshold", "glibc.malloc.trim_threshold")
ALLOCATORS = ("jemalloc", "tcmalloc", "mimalloc")


def _glibc():
    """(the C library handle, glibc version) or (None, None) when it is not glibc."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        version = libc.gnu_get_libc_version
    except (OSError, AttributeError):
        return None, None
    version.restype = ctypes.c_char_p
    return libc, version().decode()


def pin_allocator(environ=None) -> dict:
    """Fix glibc malloc's mmap and trim thresholds for this process (module doc).

    Returns what the profile records as `cpu_allocator`: `allocator`, `pinned`, and the
    thresholds set, or `note` saying why nothing was changed."""
    env = os.environ if environ is None else environ
    preload = [p for p in re.split(r"[:\s]+", env.get("LD_PRELOAD", "")) if p]
    chosen = next((p for p in preload if any(a in os.path.basename(p) for a in ALLOCATORS)),
                  None)
    if chosen is not None:
        return {"allocator": os.path.basename(chosen), "pinned": False,
                "note": "allocator preloaded with LD_PRELOAD: used as it is"}
    libc, version = _glibc()
    if libc is None:
        return {"allocator": "not glibc", "pinned": False,
                "note": "the C library is not glibc: its allocator used as it is"}
    name = f"glibc {version}"
    set_by_user = {k: env[k] for k in ENV_KNOBS if env.get(k)}
    if any(t in env.get("GLIBC_TUNABLES", "") for t in TUNABLES):
        set_by_user["GLIBC_TUNABLES"] = env["GLIBC_TUNABLES"]
    if set_by_user:
        return {"allocator": name, "pinned": False, "environment": set_by_user,
                "note": "malloc thresholds set in the environment: used as given"}
    ok = (libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
          and libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1)
    if not ok:
        return {"allocator": name, "pinned": False, "note": "mallopt refused the thresholds"}
    return {"allocator": name, "pinned": True, "mmap_threshold": MMAP_THRESHOLD,
            "trim_threshold": TRIM_THRESHOLD, **({"preload": preload} if preload else {})}
