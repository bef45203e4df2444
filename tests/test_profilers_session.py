"""The one-command session for a lent machine (profilers.session), run on the CPU."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

from profilers.runner import ProfileConfig, run_profile
from profilers.schema import JOURNAL, read_metadata
from profilers.session import Session, device_slug

ROOT = Path(__file__).resolve().parents[1]


def test_device_slug_names_profiles_as_datasets_does():
    assert device_slug({"device_kind": "gpu", "device_name": "NVIDIA H200",
                        "catalogue_key": "h200"}) == "h200"
    assert device_slug({"device_kind": "gpu", "device_name": "NVIDIA H100 80GB HBM3",
                        "catalogue_key": None}) == "nvidia-h100-80gb-hbm3"
    assert device_slug({"device_kind": "cpu", "device_name": "Intel(R) Xeon(R) Processor",
                        "catalogue_key": "cpu"}) == "cpu-intel-xeon"


def test_session_checks_profiles_and_tests_inside_its_deadline(tmp_path):
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-m", "profilers.session", "--out", str(out),
                           "--device", "cpu", "--suite", "gemm",
                           "--deadline", "80s", "--tests-time", "12s"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    rec = json.loads((out / "session.json").read_text())
    assert [s["name"] for s in rec["steps"]] == ["check", "profile", "tests"]
    assert all(s["returncode"] == 0 for s in rec["steps"]), rec["steps"]
    assert rec["seconds"] < 80 + 5
    check = rec["check"]
    assert check["torch"] and check["device"]["device_kind"] == "cpu"
    assert check["energy"]["executions"] > 0 and check["energy"]["window_s"] >= 3.0
    prof = rec["profile"]
    assert prof["complete"] and prof["failed"] == 0 and prof["points"]["gemm"] > 10
    assert (out / check["slug"] / "measurements.parquet").is_file()
    assert read_metadata(out / check["slug"])["complete"]
    assert "deselected" in rec["tests"]  # the gpu tests ran (and, without a GPU, skipped)
    # what a lease brings back: at most 8 files, none deeper than two folders
    files = [p for p in out.rglob("*") if p.is_file()]
    assert len(files) <= 7 and all(len(p.relative_to(out).parts) <= 3 for p in files)
    assert "done in" in done.stdout


def test_session_finishes_a_profile_cut_short(tmp_path):
    out = tmp_path / "prof"
    config = ProfileConfig(out=out, device="cpu", suites=("gemm",), budget_s=60)
    assert run_profile(config, progress="none", stop_after_s=1.0).paused
    session = Session(tmp_path, "cpu", 60, 10)
    state = session.finish_profile(out)
    assert state["complete"] and state["stopped_early"] and state["points"]["gemm"] > 0
    assert not (out / JOURNAL).exists()
    frame = pd.read_parquet(out / "measurements.parquet")
    assert len(frame) == state["points"]["gemm"]
    assert session.finish_profile(tmp_path / "none") == {"dir": "none",
                                                         "error": "no profile written"}


def test_a_session_that_measured_nothing_says_why_and_fails(tmp_path):
    """No CUDA here: the check's error is printed (not only kept in session.json), and the
    session exits non-zero, since no profile was written."""
    import pytest

    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a GPU is visible: the cuda:0 session would measure")
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-m", "profilers.session", "--out", str(out),
                           "--deadline", "60s", "--no-tests"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    said = done.stdout + done.stderr
    assert "check: failed:" in said and "cuda" in said.lower()
    assert json.loads((out / "session.json").read_text())["profile"].get("points") is None


def test_a_child_past_its_time_gets_sigterm_then_sigkill(tmp_path):
    """A step past its limit is asked to stop (SIGTERM: a profile run journals its point as
    abandoned) and killed only if it does not; a grandchild holding the output does not
    keep the session waiting."""
    import time

    s = Session(tmp_path / "out", "cpu", 60.0, 10.0, tests=False)
    s.out.mkdir(parents=True)
    t0 = time.monotonic()
    rc, text, step = s.child("grandchild", ["-c", (
        "import subprocess, sys, time\n"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(20)'])\n"
        "print('started', flush=True)\ntime.sleep(30)")], 2.0)
    assert rc is None and step["timed_out"] and text == "started\n"
    assert time.monotonic() - t0 < 6  # SIGTERM ended it at once
    rc, text, step = s.child("deaf", ["-c", (
        "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('deaf', flush=True)\ntime.sleep(30)")], 1.0)
    assert rc is None and text == "deaf\n"
    from profilers.session import TERM_GRACE_S

    assert TERM_GRACE_S <= step["seconds"] < TERM_GRACE_S + 5  # then SIGKILL
