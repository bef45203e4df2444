"""What a profile run refuses, and how it stops: another device's unfinished profile, a
folder of other files, more threads than CPUs, durations that are no durations, a merge of
one run with itself, SIGTERM, and paths that cannot be written."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from perfmodel.errors import PerfmodelError
from profilers.merge import merge_profiles
from profilers.points import Point, Workload
from profilers.runner import ProfileConfig, finish_profile, run_profile
from profilers.schema import JOURNAL, METADATA, read_metadata
from profilers.suites import SUITES
from profilers.suites.base import Suite

ROOT = Path(__file__).resolve().parents[1]


class _Tiny(Suite):
    """Six small products, 10 ms of timing each."""

    name = "tiny_guard_test"

    def candidates(self, device):
        return [Point.make(self.name, "gemm", "fwd", "float32", m=4 * (i + 1), n=4, k=4, b=1)
                for i in range(6)]

    def features(self, point):
        return [float(point.p["m"])]

    def timing_budget_s(self, device):
        return 0.01

    def build(self, point, device):
        import torch

        a, b = torch.randn(point.p["m"], 4), torch.randn(4, 4)
        return Workload(lambda: a @ b)


@pytest.fixture
def tiny():
    SUITES[_Tiny.name] = _Tiny
    yield _Tiny
    del SUITES[_Tiny.name]


def _config(out, **kw):
    return ProfileConfig(out=out, suites=(_Tiny.name,), budget_s=10, **kw)


def test_an_unfinished_profile_of_another_device_is_not_continued(tmp_path, tiny):
    out = tmp_path / "p"
    paused = run_profile(_config(out), stop_after_s=1e-6)
    assert paused.paused and "run the same command again to continue" in paused.summary()
    assert "band:" not in paused.summary()  # no empty per-suite table
    meta = read_metadata(out)
    meta["device_name"] = "Intel(R) Xeon(R) Processor"  # begun on another machine
    (out / METADATA).write_text(json.dumps(meta))
    with pytest.raises(PerfmodelError, match="unfinished profile of another device"):
        run_profile(_config(out))


def test_a_folder_of_other_files_is_not_taken_for_a_profile(tmp_path, tiny):
    (tmp_path / "measurements.csv").write_text("mine")
    with pytest.raises(PerfmodelError, match="other files in it and no profile"):
        run_profile(_config(tmp_path))
    assert (tmp_path / "measurements.csv").read_text() == "mine"


def test_more_threads_than_cpus_are_refused(tmp_path, tiny):
    with pytest.raises(PerfmodelError, match="more than this machine's"):
        run_profile(_config(tmp_path / "p", threads=(os.cpu_count() or 1) + 1))


def test_a_merged_profile_reruns_quietly_and_merges_never_pool_a_run_twice(tmp_path, tiny):
    a, b = tmp_path / "a", tmp_path / "b"
    for out in (a, b):
        assert run_profile(_config(out)).frame["status"].eq("ok").all()
    with pytest.raises(PerfmodelError, match="is given twice"):
        merge_profiles([a, a], tmp_path / "aa")
    merge_profiles([a, b], tmp_path / "ab")
    with pytest.raises(PerfmodelError, match="already in another source"):
        merge_profiles([tmp_path / "ab", b], tmp_path / "abb")
    again = run_profile(_config(tmp_path / "ab"))  # the first run's command, on the merge
    assert again.resumed and len(again.frame) == 6


def _cli(*args, timeout=120):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "profilers", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("args,said", [
    (["--budget", "nan"], "budget 'nan': expected a duration"),
    (["--budget", "10s", "--stop-after", "inf"], "--stop-after 'inf': expected a duration"),
    (["--budget", "10s", "--out", "/proc/no/such/profile"], "/proc/no: No such file"),
    # a value that starts with "-": argparse alone said "expected one argument"
    (["--budget", "-5s"], "budget '-5s': must be positive"),
    (["--budget", "10s", "--stop-after", "-1m"], "--stop-after '-1m': must be positive"),
])
def test_bad_durations_and_unwritable_paths_are_one_line_errors(tmp_path, args, said):
    if "--out" not in args:
        args = args + ["--out", str(tmp_path / "p")]
    done = _cli("--suite", "gemm", *args)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("profilers: error: ") and said in lines[0]


def _start_gemm_run(out):
    """A 60 s gemm-suite run into `out`, in its own process."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-m", "profilers", "--suite", "gemm", "--budget",
                             "60s", "--threads", "1", "--out", str(out), "--progress", "none"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def test_sigterm_stops_a_run_like_an_interrupt(tmp_path):
    """`timeout`, `kill` and schedulers send SIGTERM: the point being measured is journalled
    as abandoned (measured again on resume, never taken for a crash) and the run says so."""
    out = tmp_path / "p"
    proc = _start_gemm_run(out)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and not (
            (out / JOURNAL).is_file() and (out / JOURNAL).read_text().count('"start"') >= 3):
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "terminated (rerun the same command to resume)" in err
    kinds = [json.loads(line).get("kind", "point") for line in (out / JOURNAL).read_text().splitlines()]
    assert kinds.count("start") == kinds.count("point") + kinds.count("abandon")


def test_a_run_that_repeated_nothing_merges_without_a_band():
    """A grid-only run (the blocks suite's grid points are never repeated) has band None;
    merging it with a run that has a band crashed on the None."""
    from profilers.merge import _pooled_band

    timed = {"repeated": 481, "band": 0.206, "median_rel_diff": 0.067, "pooled": False}
    grid = {"repeated": 0, "band": None, "median_rel_diff": None, "pooled": False}
    assert _pooled_band([timed, grid]) == {"repeated": 481, "band": 0.206,
                                           "median_rel_diff": 0.067, "pooled": False, "runs": 1}
    assert _pooled_band([grid, grid])["band"] is None
    merged = {"repeated": 10, "band": 0.1, "median_rel_diff": 0.05, "runs": 3}
    assert _pooled_band([timed, merged])["band"] == pytest.approx((0.206 + 3 * 0.1) / 4)
    # merged in any order: the same band
    other = {"repeated": 5, "band": 0.4, "median_rel_diff": 0.1, "pooled": False}
    at_once = _pooled_band([timed, grid, other])["band"]
    assert _pooled_band([_pooled_band([timed, grid]), other])["band"] == pytest.approx(at_once)


def test_a_second_run_into_the_same_out_is_refused_while_the_first_writes(tmp_path):
    """Two runs into one --out (two terminals, a retried job) would interleave one journal;
    the second is refused while the first holds the lock, and the lock file goes once the
    profile is complete."""
    out = tmp_path / "p"
    first = _start_gemm_run(out)
    try:
        deadline = time.monotonic() + 60
        while not (out / "metadata.json").is_file() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert (out / ".lock").is_file()
        second = _cli("--suite", "gemm", "--budget", "60s", "--threads", "1", "--out", str(out),
                      "--progress", "none")
        assert second.returncode == 2, second.stderr
        line = second.stderr.strip()
        assert line.count("\n") == 0 and "another run is writing this profile (pid " in line
        with pytest.raises(PerfmodelError, match="another run is writing"):
            finish_profile(out)
    finally:
        first.terminate()
        first.communicate(timeout=60)
    # the first run is gone (its lock with it): the profile can be finished, and is unlocked
    finish_profile(out)
    assert not (out / ".lock").exists()


def test_the_lock_file_stays_only_with_an_unfinished_profile(tmp_path, tiny):
    """A paused run keeps its (released) lock file; the run that completes the profile, a
    rerun of a complete one and a run that fails before writing leave none."""
    out = tmp_path / "p"
    assert run_profile(_config(out), stop_after_s=1e-6).paused
    assert (out / ".lock").is_file()
    assert read_metadata(out)["complete"] is False
    assert not run_profile(_config(out)).paused
    assert read_metadata(out)["complete"] and not (out / ".lock").exists()
    run_profile(_config(out))  # the first command again, on the complete profile
    assert not (out / ".lock").exists()
    with pytest.raises(PerfmodelError, match="holds a profile made with"):
        run_profile(_config(out, threads=1))
    assert not (out / ".lock").exists()
    never = tmp_path / "never"
    with pytest.raises(PerfmodelError, match="--threads must be at least 1"):
        run_profile(_config(never, threads=0))
    assert not never.exists()  # nothing written, no folder left
