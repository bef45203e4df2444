"""The CPU profiler pins glibc malloc's thresholds: freed memory is reused (no page faults
on the second pass of a workload), the profile's metadata says so, and an allocator the
user chose is left alone."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from profilers.device.allocator import MMAP_THRESHOLD, TRIM_THRESHOLD, _glibc, pin_allocator

glibc = pytest.mark.skipif(_glibc()[0] is None, reason="the C library is not glibc")

# Allocate, touch and free activation-sized tensors several times; count the minor page
# faults of the passes after the first. Above 32 MiB glibc's dynamic threshold cannot
# follow (its ceiling on 64-bit), so by default every pass maps and faults them afresh.
PROBE = textwrap.dedent("""
    import resource, sys, torch
    if sys.argv[1] == "pin":
        from profilers.device.allocator import pin_allocator
        assert pin_allocator({})["pinned"]
    def one_pass():
        for mib in (40, 8, 64, 16, 40):
            t = torch.empty(mib * 2 ** 18)  # float32: mib MiB
            t.fill_(1.0)
            del t
    one_pass()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        one_pass()
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
""")


def _faults(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True,
                         check=True, env={"PATH": "", "PYTHONPATH": ":".join(sys.path)})
    return int(out.stdout.strip().splitlines()[-1])


def _thp_always() -> bool:
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
            return "[always]" in f.read()
    except OSError:
        return False


@glibc
@pytest.mark.skipif(_thp_always(), reason="transparent huge pages always on: 2 MiB faults")
def test_pinned_allocator_reuses_freed_memory():
    default, pinned = _faults("default"), _faults("pin")
    # default glibc: the 40 and 64 MiB blocks are mapped afresh, 36 k pages of 4 KiB a
    # pass; pinned: the heap keeps them (its growth faults once, seen: 0-43 k pages)
    assert default > 10 * 30000, default
    assert pinned < default / 5, (pinned, default)


@glibc
def test_pin_reports_what_it_set_and_respects_the_user():
    assert pin_allocator({}) == {"allocator": pin_allocator({})["allocator"], "pinned": True,
                                 "mmap_threshold": MMAP_THRESHOLD,
                                 "trim_threshold": TRIM_THRESHOLD}
    user = pin_allocator({"MALLOC_MMAP_THRESHOLD_": "131072"})
    assert not user["pinned"] and user["environment"] == {"MALLOC_MMAP_THRESHOLD_": "131072"}
    pre = pin_allocator({"LD_PRELOAD": "/lib/libfoo.so:/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"})
    assert pre == {"allocator": "libjemalloc.so.2", "pinned": False,
                   "note": "allocator preloaded with LD_PRELOAD: used as it is"}
    other = pin_allocator({"LD_PRELOAD": "/lib/libfoo.so /lib/libbar.so"})
    assert other["pinned"] and other["preload"] == ["/lib/libfoo.so", "/lib/libbar.so"]
    # tunables that say nothing about malloc's thresholds do not stop the pin
    assert pin_allocator({"GLIBC_TUNABLES": "glibc.pthread.rseq=0"})["pinned"]
    tuned = pin_allocator({"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=65536"})
    assert not tuned["pinned"] and "GLIBC_TUNABLES" in tuned["environment"]


def test_cpu_profile_metadata_records_the_allocator():
    from profilers.device.cpu import CpuDevice

    dev = CpuDevice(powercap="/nonexistent")
    try:
        meta = dev.metadata()
    finally:
        dev.close()
    alloc = meta["cpu_allocator"]
    assert set(alloc) >= {"allocator", "pinned"}
    if not alloc["pinned"]:
        assert any("C allocator not pinned" in n for n in meta["notes"])
