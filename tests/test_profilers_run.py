"""End-to-end runs on the CPU: crash safety (kill -9 and resume), failed points, CLI, compare."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from perfmodel.errors import PerfmodelError
from profilers import compare_profiles
from profilers.device import open_device
from profilers.points import Point, Workload
from profilers.runner import ProfileConfig, run_profile
from profilers.schema import JOURNAL, MEASUREMENTS, read_metadata
from profilers.suites import SUITES, get_suite
from profilers.suites.base import Suite

ROOT = Path(__file__).resolve().parents[1]


def _cmd(out: Path, budget: str = "6s") -> list[str]:
    return [sys.executable, "-m", "profilers", "--device", "cpu", "--suite", "gemm",
            "--budget", budget, "--out", str(out), "--progress", "none"]


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _journal_points(out: Path) -> int:
    path = out / JOURNAL
    if not path.is_file():
        return 0
    return sum(1 for line in path.read_text().splitlines() if '"kind": "point"' in line)


def test_kill_9_then_same_command_resumes_without_duplicates(tmp_path):
    out = tmp_path / "prof"
    proc = subprocess.Popen(_cmd(out), cwd=ROOT, env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while _journal_points(out) < 4 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_with = _journal_points(out)
    assert killed_with >= 4
    assert not read_metadata(out)["complete"]

    done = subprocess.run(_cmd(out), cwd=ROOT, env=_env(), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert "complete" in done.stdout
    meta = read_metadata(out)
    assert meta["complete"] and (out / MEASUREMENTS).is_file() and not (out / JOURNAL).exists()
    frame = pd.read_parquet(out / MEASUREMENTS)
    assert frame["point_id"].is_unique
    assert len(frame) > killed_with
    # complete = an unbroken prefix of the suite's deterministic order, nothing skipped
    order = [p.id for p in get_suite("gemm").points(open_device("cpu"))]
    assert list(frame.sort_values("seq")["point_id"]) == order[:len(frame)]
    assert list(frame.sort_values("seq")["seq"]) == list(range(len(frame)))
    state = meta["suite_state"][0]
    assert state["points"] == len(frame) and state["reason"] in ("budget", "exhausted")
    # the second invocation only spent what the first had left (budget 6 s in all)
    assert state["spent_s"] < 6 + 3

    again = subprocess.run(_cmd(out), cwd=ROOT, env=_env(), capture_output=True, text=True,
                           timeout=120)
    assert again.returncode == 0
    assert len(pd.read_parquet(out / MEASUREMENTS)) == len(frame)  # nothing re-measured


class _FlakySuite(Suite):
    """Two points: a matmul of mismatched shapes (fails in the op) and a good one."""

    name = "flaky_test"

    def candidates(self, device):
        return [Point.make(self.name, "gemm", "fwd", "float32", m=4, n=4, k=4, b=1),
                Point.make(self.name, "gemm", "fwd", "float32", m=4, n=4, k=5, b=1)]

    def features(self, point):
        return [float(point.p["k"])]

    def build(self, point, device):
        import torch

        a = torch.randn(4, 4)
        b = torch.randn(point.p["k"], 4)
        return Workload(lambda: a @ b)


@pytest.fixture
def flaky_suite():
    SUITES[_FlakySuite.name] = _FlakySuite
    yield _FlakySuite.name
    del SUITES[_FlakySuite.name]


def test_failing_point_becomes_a_failed_row_and_the_run_goes_on(tmp_path, flaky_suite):
    result = run_profile(ProfileConfig(out=tmp_path, suites=(flaky_suite,), budget_s=5),
                         progress="none")
    frame = result.frame.set_index("point_id")
    bad = frame.loc[[i for i in frame.index if "k=5" in i][0]]
    good = frame.loc[[i for i in frame.index if "k=4" in i][0]]
    assert bad["status"] == "failed" and "RuntimeError" in bad["error"]
    assert pd.isna(bad["time_s"])
    assert good["status"] == "ok" and good["time_s"] > 0 and good["error"] == ""
    assert result.suites[0].failed == 1 and result.suites[0].reason == "exhausted"
    assert "failed" in result.summary()


class _Crash(BaseException):
    """Stands for the process dying inside a point (no row, no abandon record)."""


def test_a_point_that_crashes_the_process_twice_is_failed_not_retried(tmp_path, flaky_suite,
                                                                     monkeypatch):
    import profilers.runner as runner

    measure = runner.measure_point
    crashes = []

    def crashing(suite, point, *args, **kwargs):
        if "k=5" in point.id:
            crashes.append(point.id)
            raise _Crash
        return measure(suite, point, *args, **kwargs)

    config = ProfileConfig(out=tmp_path, suites=(flaky_suite,), budget_s=5)
    monkeypatch.setattr(runner, "measure_point", crashing)
    for _ in range(2):  # the first run dies in the point; the resumed one tries it again
        with pytest.raises(_Crash):
            run_profile(config, progress="none")
    result = run_profile(config, progress="none")  # the third: failed, the run completes
    assert len(crashes) == 2 and result.metadata["complete"]
    frame = result.frame.set_index("point_id")
    bad = frame.loc[crashes[0]]
    assert bad["status"] == "failed" and "ended while measuring it, 2 times" in bad["error"]
    assert (frame["status"] == "ok").sum() == 1 and frame.index.is_unique


def test_a_repeat_that_crashes_the_process_twice_is_not_tried_again(tmp_path, flaky_suite,
                                                                    monkeypatch):
    import profilers.runner as runner

    repeat, calls = runner.measure_repeat, []

    def crashing(suite, point, *args, **kwargs):
        calls.append(point.id)
        raise _Crash

    config = ProfileConfig(out=tmp_path, suites=(flaky_suite,), budget_s=5)
    monkeypatch.setattr(runner, "measure_repeat", crashing)
    for _ in range(2):
        with pytest.raises(_Crash):
            run_profile(config, progress="none")
    result = run_profile(config, progress="none")  # no third try: the run completes
    assert len(calls) == 2 and len(set(calls)) == 1 and result.metadata["complete"]
    assert (result.frame["status"] == "ok").sum() == 1
    monkeypatch.setattr(runner, "measure_repeat", repeat)


def test_a_point_killed_once_or_interrupted_is_measured_again(tmp_path, flaky_suite,
                                                              monkeypatch):
    import profilers.runner as runner

    measure = runner.measure_point
    for stop in (_Crash, KeyboardInterrupt, KeyboardInterrupt):
        def once(suite, point, *args, _stop=stop, **kwargs):
            if "k=4" in point.id:
                raise _stop
            return measure(suite, point, *args, **kwargs)

        monkeypatch.setattr(runner, "measure_point", once)
        with pytest.raises(stop):
            run_profile(ProfileConfig(out=tmp_path, suites=(flaky_suite,), budget_s=5),
                        progress="none")
    monkeypatch.setattr(runner, "measure_point", measure)
    result = run_profile(ProfileConfig(out=tmp_path, suites=(flaky_suite,), budget_s=5),
                         progress="none")
    good = result.frame.set_index("point_id").loc[
        [i for i in result.frame["point_id"] if "k=4" in i][0]]
    assert good["status"] == "ok" and good["time_s"] > 0  # one kill, two interrupts: retried


def test_other_arguments_into_the_same_directory_are_refused(tmp_path, flaky_suite):
    run_profile(ProfileConfig(out=tmp_path, suites=(flaky_suite,), budget_s=5), progress="none")
    with pytest.raises(PerfmodelError, match="rerun with those arguments"):
        run_profile(ProfileConfig(out=tmp_path, suites=(flaky_suite,), budget_s=9),
                    progress="none")


def test_cli_errors_are_one_line(tmp_path):
    from perfmodel.cli import main

    assert main(["profile", "--budget", "soon", "--out", str(tmp_path)]) == 2
    assert main(["profile", "--suite", "nope", "--budget", "5s", "--out", str(tmp_path)]) == 2
    assert main(["profile", "export"]) == 2


def test_cli_runs_exports_and_compares(tmp_path, flaky_suite, capsys):
    from perfmodel.cli import main

    a, b = tmp_path / "a", tmp_path / "b"
    for out in (a, b):
        assert main(["profile", "--suite", flaky_suite, "--budget", "5s", "--out", str(out),
                     "--progress", "none", "--csv"]) == 0
    assert (a / "measurements.csv").is_file()
    csv = pd.read_csv(a / "measurements.csv")
    assert {"op", "m", "n", "k", "b", "dtype", "time_s", "energy_j", "power_w"} <= set(csv.columns)
    assert main(["profile", "export", str(a), "--output", str(tmp_path / "x.csv")]) == 0
    assert main(["profile", "compare", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert "1 points measured in both" in out


def test_compare_reports_agreement_against_iqr(tmp_path):
    def fake(path, times, iqrs):
        from profilers.schema import SCHEMA_VERSION, to_frame, write_measurements, write_metadata

        path.mkdir()
        rows = [dict(point_id=f"s/op/fwd/float32/i={i}", suite="s", seq=i, status="ok",
                     time_s=t, time_iqr_s=q) for i, (t, q) in enumerate(zip(times, iqrs))]
        write_measurements(to_frame(rows), path)
        write_metadata({"schema_version": SCHEMA_VERSION, "complete": True}, path)

    fake(tmp_path / "a", [1.0, 2.0, 3.0], [0.1, 0.1, 0.1])
    fake(tmp_path / "b", [1.05, 2.5, 3.0], [0.1, 0.1, 0.0])
    cmp = compare_profiles(tmp_path / "a", tmp_path / "b")
    assert list(cmp.frame["agree"]) == [True, False, True]
    assert list(cmp.frame["in_b"]) == [True, False, True]  # version-1 rows: the IQR is the band
    assert cmp.agree_fraction == pytest.approx(2 / 3)
    assert cmp.frame["z"].iloc[1] == pytest.approx(0.5 / 0.1)
    assert "67% agree" in cmp.report()


def test_compare_uses_the_reported_noise_band_one_way_each(tmp_path):
    from profilers.schema import SCHEMA_VERSION, to_frame, write_measurements, write_metadata

    def fake(path, times, noise, complete=True):
        path.mkdir()
        rows = [dict(point_id=f"s/op/fwd/float32/i={i}", suite="s", seq=i, status="ok",
                     time_s=t, time_iqr_s=0.0, time_noise_s=q)
                for i, (t, q) in enumerate(zip(times, noise))]
        write_measurements(to_frame(rows), path)
        write_metadata({"schema_version": SCHEMA_VERSION, "complete": complete}, path)

    fake(tmp_path / "a", [1.0, 1.0], [0.2, 0.05])
    fake(tmp_path / "b", [1.1, 1.1], [0.05, 0.2])
    fake(tmp_path / "c", [1.1, 1.1], [0.05, 0.2], complete=False)
    with pytest.raises(PerfmodelError, match="c is not complete"):
        compare_profiles(tmp_path / "a", tmp_path / "c")
    cmp = compare_profiles(tmp_path / "a", tmp_path / "b")
    assert list(cmp.frame["in_a"]) == [True, False]
    assert list(cmp.frame["in_b"]) == [False, True]
    assert cmp.agree_fraction == pytest.approx(0.5)
    assert "claims 90%" in cmp.report()


def test_profilers_run_without_optional_packages(tmp_path):
    """The GPU machines have torch, numpy, pandas, pyarrow and NVML only."""
    code = (
        "import sys\n"
        "for name in ('sklearn', 'xgboost', 'rich', 'matplotlib', 'scipy', 'pynvml'):\n"
        "    sys.modules[name] = None\n"
        "import perfmodel.counting.counter, perfmodel.models.registry, perfmodel.ops\n"
        "from profilers.cli import main\n"
        f"sys.exit(main(['--suite', 'gemm', '--budget', '3s', '--out', {str(tmp_path)!r},"
        " '--progress', 'plain']))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=_env(), capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "complete" in done.stdout and "[gemm]" in done.stderr
    assert read_metadata(tmp_path)["complete"]


def test_after_an_earlier_profile_the_run_goes_on_past_its_points(tmp_path):
    """A second short run of one device (another GPU lease) measures new points."""
    first = run_profile(ProfileConfig(out=tmp_path / "a", suites=("gemm",), budget_s=3),
                        progress="none")
    ids_a = set(first.frame["point_id"])
    second = run_profile(ProfileConfig(out=tmp_path / "b", suites=("gemm",), budget_s=3,
                                       after=(str(tmp_path / "a"),)), progress="none")
    ids_b = set(second.frame["point_id"])
    assert len(ids_a) >= 3 and len(ids_b) >= 3 and not ids_a & ids_b
    order = [p.id for p in get_suite("gemm").points(open_device("cpu"))]
    assert [i for i in order if i not in ids_a][:len(ids_b)] == sorted(ids_b, key=order.index)
    assert read_metadata(tmp_path / "b")["config"]["after"] == [str(tmp_path / "a")]
    # another device's profile is refused before anything is written
    import json as _json

    meta = _json.loads((tmp_path / "a" / "metadata.json").read_text())
    meta["device_name"] = "NVIDIA H200"
    (tmp_path / "a" / "metadata.json").write_text(_json.dumps(meta))
    with pytest.raises(PerfmodelError, match="another device.*'NVIDIA H200' there"):
        run_profile(ProfileConfig(out=tmp_path / "c", suites=("gemm",), budget_s=3,
                                  after=(str(tmp_path / "a"),)), progress="none")
    assert not (tmp_path / "c").exists()
