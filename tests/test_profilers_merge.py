"""Pooling runs of one device: `profile merge A B --out C`."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from perfmodel.errors import PerfmodelError
from profilers.merge import merge_profiles, pool
from profilers.schema import (SCHEMA_VERSION, read_metadata, read_profile, to_frame,
                              write_measurements, write_metadata)

ROOT = Path(__file__).resolve().parents[1]
DEVICE = {"device_kind": "cpu", "device_name": "Test CPU", "catalogue_key": "cpu",
          "torch_threads": 1}


def fake(path: Path, points: dict, complete=True, created="2026-01-01", **meta):
    """points: id -> (time_s, center, repeats, noise)."""
    path.mkdir()
    rows = [dict(point_id=f"blocks/{pid}", suite="blocks", op="b", seq=i, status="ok",
                 time_s=t, time_iqr_s=0.01, time_center_s=c, repeats=r, time_noise_s=q,
                 params=json.dumps({"i": i}))
            for i, (pid, (t, c, r, q)) in enumerate(points.items())]
    write_measurements(to_frame(rows), path)
    write_metadata({"schema_version": SCHEMA_VERSION, "complete": complete, "created": created,
                    "finished": created, "run_id": f"run-{path.name}", "suites": ["blocks"],
                    "repeat_bands": {"blocks": {"repeated": len(rows), "band": 0.2,
                                                "median_rel_diff": 0.1, "pooled": False}},
                    **{**DEVICE, **meta}}, path)


def test_pools_shared_points_weighted_by_their_measurements(tmp_path):
    fake(tmp_path / "a", {"x": (1.0, 1.0, 2, 0.2), "y": (2.0, 2.0, 0, 0.3)})
    fake(tmp_path / "b", {"x": (1.3, 1.2, 4, 0.4), "z": (5.0, 5.0, 1, 0.5)},
         created="2026-02-01")
    merged = merge_profiles([tmp_path / "a", tmp_path / "b"], tmp_path / "c")
    assert len(merged.frame) == 3 and merged.runs == 2 and merged.pooled_points == 1
    f = read_profile(tmp_path / "c").set_index("point_id")
    # x: 3 measurements at 1.0, 5 at 1.2 -> geometric mean weighted 3:5
    assert f.loc["blocks/x", "time_center_s"] == pytest.approx(
        math.exp((3 * math.log(1.0) + 5 * math.log(1.2)) / 8))
    assert f.loc["blocks/x", "repeats"] == 7  # 8 measurements, the first not a repeat
    assert f.loc["blocks/x", "time_s"] == 1.0  # the first run's first measurement
    assert f.loc["blocks/x", "time_noise_s"] == pytest.approx(0.3)
    assert f.loc["blocks/y", "time_center_s"] == 2.0 and f.loc["blocks/z", "repeats"] == 1
    meta = read_metadata(tmp_path / "c")
    assert meta["complete"] and [m["name"] for m in meta["merged_from"]] == ["a", "b"]
    assert meta["created"] == "2026-01-01" and meta["finished"] == "2026-02-01"
    assert meta["repeat_bands"]["blocks"]["runs"] == 2
    assert "1 points measured in more than one" in meta["notes"][-1]
    # merging a merge with a new run keeps every run in the history
    fake(tmp_path / "d", {"w": (3.0, 3.0, 1, 0.2)}, created="2026-03-01",
         repeat_bands={"blocks": {"repeated": 1, "band": 0.5, "median_rel_diff": 0.4,
                                  "pooled": False}})
    merge_profiles([tmp_path / "c", tmp_path / "d"], tmp_path / "e")
    e = read_metadata(tmp_path / "e")
    assert [m["name"] for m in e["merged_from"]] == ["a", "b", "d"]
    # the merged source's band weighs as its two runs: (2 x 0.2 + 0.5) / 3
    assert e["repeat_bands"]["blocks"]["runs"] == 3
    assert e["repeat_bands"]["blocks"]["band"] == pytest.approx(0.3)
    assert e["repeat_bands"]["blocks"]["median_rel_diff"] == pytest.approx(0.2)
    # one merge note over every run, the earlier merge's pooled points given apart
    assert [n for n in e["notes"] if n.startswith("merged from")] == [
        "merged from 3 runs: 0 points measured in more than one of this merge's 2 "
        "sources, 1 pooled by the earlier merges (a point may be in both)"]
    # and once more: the earlier merges' count carries through
    fake(tmp_path / "g", {"v": (3.0, 3.0, 1, 0.2)}, created="2026-04-01")
    merge_profiles([tmp_path / "e", tmp_path / "g"], tmp_path / "h")
    assert [n for n in read_metadata(tmp_path / "h")["notes"]
            if n.startswith("merged from")] == [
        "merged from 4 runs: 0 points measured in more than one of this merge's 2 "
        "sources, 1 pooled by the earlier merges (a point may be in both)"]


def test_three_runs_take_the_median_run(tmp_path):
    fake(tmp_path / "a", {"x": (1.0, 1.0, 14, 0.2)})
    fake(tmp_path / "b", {"x": (1.5, 1.5, 14, 0.2)})  # a run caught in a slow spell
    fake(tmp_path / "c", {"x": (1.1, 1.1, 1, 0.2)})
    m = merge_profiles([tmp_path / n for n in "abc"], tmp_path / "out")
    row = m.frame.set_index("point_id").loc["blocks/x"]
    assert row["time_center_s"] == pytest.approx(1.1) and row["repeats"] == 31


def test_refuses_what_cannot_be_pooled(tmp_path):
    fake(tmp_path / "a", {"x": (1.0, 1.0, 0, 0.1)})
    fake(tmp_path / "b", {"x": (1.0, 1.0, 0, 0.1)}, device_name="Other CPU")
    fake(tmp_path / "c", {"x": (1.0, 1.0, 0, 0.1)}, complete=False)
    fake(tmp_path / "d", {"x": (1.0, 1.0, 0, 0.1)})
    with pytest.raises(PerfmodelError, match="not the same device"):
        merge_profiles([tmp_path / "a", tmp_path / "b"], tmp_path / "out1")
    with pytest.raises(PerfmodelError, match="c is not complete"):
        merge_profiles([tmp_path / "a", tmp_path / "c"], tmp_path / "out2")
    with pytest.raises(PerfmodelError, match="at least two"):
        merge_profiles([tmp_path / "a"], tmp_path / "out3")
    with pytest.raises(PerfmodelError, match="is one of the sources"):
        merge_profiles([tmp_path / "a", tmp_path / "d"], tmp_path / "d")
    with pytest.raises(PerfmodelError, match="not an empty directory"):
        merge_profiles([tmp_path / "a", tmp_path / "d"], tmp_path / "b")
    (tmp_path / "f").write_text("x")
    with pytest.raises(PerfmodelError, match="not an empty directory"):
        merge_profiles([tmp_path / "a", tmp_path / "d"], tmp_path / "f")


def test_cli_merge_says_what_it_wrote_and_errors_in_one_line(tmp_path):
    fake(tmp_path / "a", {"x": (1.0, 1.0, 0, 0.1)})
    fake(tmp_path / "b", {"x": (1.2, 1.2, 0, 0.1)})
    cmd = [sys.executable, "-m", "profilers", "merge", str(tmp_path / "a"), str(tmp_path / "b")]
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    bad = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0
    assert "needs --out" in bad.stderr
    ok = subprocess.run(cmd + ["--out", str(tmp_path / "c")], capture_output=True, text=True,
                        cwd=ROOT, env=env)
    assert ok.returncode == 0, ok.stderr
    assert "1 points, 1 of them pooled over 2 sources" in ok.stdout


def _shipped(name: str) -> Path:
    d = ROOT / "datasets" / name
    if not (d / "measurements.parquet").is_file():
        pytest.skip(f"no shipped {name} profile")
    return d


def test_real_profiles_of_two_machines_are_not_pooled(tmp_path):
    with pytest.raises(PerfmodelError, match="device_name"):
        merge_profiles([_shipped("cpu-amd-epyc"), _shipped("cpu-intel-xeon")], tmp_path / "x")


def test_a_real_profile_pooled_with_itself_keeps_its_times(tmp_path):
    """The pooling arithmetic on real rows (`merge` itself refuses one run twice)."""
    src = _shipped("cpu-amd-epyc")
    with pytest.raises(PerfmodelError, match="given twice"):
        merge_profiles([src, src], tmp_path / "x")
    orig = read_profile(src)
    orig = orig[orig["status"] == "ok"]
    merged = pool(pd.concat([orig.assign(_run=0), orig.assign(_run=1)],
                            ignore_index=True))[0].set_index("point_id")
    orig = orig.set_index("point_id")
    assert len(merged) == len(orig)
    both = pd.concat([orig["time_center_s"], merged["time_center_s"]], axis=1).dropna()
    assert ((both.iloc[:, 0] / both.iloc[:, 1] - 1).abs() < 1e-9).all()
    rep = pd.to_numeric(orig["repeats"]).fillna(0)
    assert (merged.loc[orig.index, "repeats"].astype(int) == (2 * (rep + 1) - 1)).all()


def test_runs_with_different_allocator_settings_say_so(tmp_path):
    pinned = {"allocator": "glibc 2.36", "pinned": True, "mmap_threshold": 2 ** 28,
              "trim_threshold": 2 ** 30}
    fake(tmp_path / "a", {"x": (1.0, 1.0, 2, 0.2)})  # made before the allocator was pinned
    fake(tmp_path / "b", {"y": (1.0, 1.0, 2, 0.2)}, cpu_allocator=pinned)
    fake(tmp_path / "c", {"z": (1.0, 1.0, 2, 0.2)}, cpu_allocator=pinned)
    merge_profiles([tmp_path / "a", tmp_path / "b"], tmp_path / "ab")
    meta = read_metadata(tmp_path / "ab")
    assert "cpu_allocator" not in meta
    assert [m["cpu_allocator"] for m in meta["merged_from"]] == [None, pinned]
    assert any("different C allocator settings" in n for n in meta["notes"])
    merge_profiles([tmp_path / "b", tmp_path / "c"], tmp_path / "bc")
    meta = read_metadata(tmp_path / "bc")
    assert meta["cpu_allocator"] == pinned
    assert not any("allocator" in n for n in meta["notes"])
    # a mixed merge merged again with an older run still says so
    fake(tmp_path / "d", {"w": (1.0, 1.0, 2, 0.2)})
    merge_profiles([tmp_path / "d", tmp_path / "ab"], tmp_path / "dab")
    meta = read_metadata(tmp_path / "dab")
    assert [m["cpu_allocator"] for m in meta["merged_from"]] == [None, None, pinned]
    assert "cpu_allocator" not in meta
    assert any("different C allocator settings" in n for n in meta["notes"])


def test_a_merge_is_written_in_the_current_schema(tmp_path):
    """Runs of an older schema read with the new columns empty; the pool is the current
    version (its rows carry every column)."""
    fake(tmp_path / "a", {"x": (1.0, 1.0, 2, 0.2)}, schema_version=3)
    fake(tmp_path / "b", {"y": (2.0, 2.0, 0, 0.3)}, schema_version=3)
    merge_profiles([tmp_path / "a", tmp_path / "b"], tmp_path / "c")
    assert read_metadata(tmp_path / "c")["schema_version"] == SCHEMA_VERSION > 3
    assert "numel" in read_profile(tmp_path / "c").columns


def test_energy_windows_are_pooled_as_one_window_of_one_source(tmp_path):
    """Two GPU runs' counter windows of a point: energy per execution over all their
    executions, power over their seconds, the window and tail columns summed; a run whose
    window fell back to sampled power is left out of the pooled counter window."""
    def rows(run):
        return {"x": (1.0, 1.0, 0, 0.1), "y": (2.0, 2.0, 0, 0.1)}

    energy = {  # run -> point -> (energy_j, power_w, execs, window_s, tail_s, tail_j, source)
        "a": {"x": (2.0, 400.0, 10, 0.05, 0.02, 3.0, "nvml_counter"),
              "y": (5.0, 500.0, 4, 0.04, 0.01, 2.0, "nvml_counter")},
        "b": {"x": (3.0, 600.0, 30, 0.15, 0.03, 5.0, "nvml_counter"),
              "y": (9.0, 300.0, 4, 0.04, 0.01, 1.0, "nvml_sampled")},
    }
    for run, created in (("a", "2026-01-01"), ("b", "2026-02-01")):
        fake(tmp_path / run, rows(run), created=created)
        f = read_profile(tmp_path / run)
        for pid, (e, p, n, w, ts, tj, src) in energy[run].items():
            i = f.index[f["point_id"] == f"blocks/{pid}"][0]
            f.loc[i, ["energy_j", "power_w", "energy_execs", "energy_window_s", "energy_tail_s",
                      "energy_tail_j", "energy_source", "energy_sampled_j"]] = (
                e, p, n, w, ts, tj, src, e * 1.1)
        write_measurements(f, tmp_path / run)
    merge_profiles([tmp_path / "a", tmp_path / "b"], tmp_path / "c")
    f = read_profile(tmp_path / "c").set_index("point_id")
    x, y = f.loc["blocks/x"], f.loc["blocks/y"]
    assert x["energy_j"] == pytest.approx((2.0 * 10 + 3.0 * 30) / 40)
    assert x["energy_sampled_j"] == pytest.approx(1.1 * (2.0 * 10 + 3.0 * 30) / 40)
    assert x["power_w"] == pytest.approx((400 * 0.05 + 600 * 0.15) / 0.20)
    assert (x["energy_execs"], x["energy_window_s"]) == (40, pytest.approx(0.20))
    assert (x["energy_tail_s"], x["energy_tail_j"]) == (pytest.approx(0.05), pytest.approx(8.0))
    assert x["energy_source"] == "nvml_counter"
    # y: run b's sampled window is not pooled with run a's counter window
    assert (y["energy_j"], y["power_w"], y["energy_tail_j"]) == (5.0, 500.0, 2.0)
    assert y["energy_source"] == "nvml_counter" and y["energy_execs"] == 4


def test_power_is_the_runs_mean_when_a_run_lacks_its_window_length(tmp_path):
    """Time-weighted power needs every pooled run's window length; without one it is the
    runs' mean, not run A's power alone."""
    for run, (p, w, n) in (("a", (400.0, 0.5, 10)), ("b", (600.0, None, 30))):
        fake(tmp_path / run, {"x": (1.0, 1.0, 0, 0.1)}, created=f"2026-0{1 + (run == 'b')}-01")
        f = read_profile(tmp_path / run)
        f.loc[0, ["energy_j", "power_w", "energy_execs", "energy_source"]] = (
            1.0, p, n, "nvml_counter")
        f.loc[0, "energy_window_s"] = w
        write_measurements(f, tmp_path / run)
    merge_profiles([tmp_path / "a", tmp_path / "b"], tmp_path / "c")
    x = read_profile(tmp_path / "c").iloc[0]
    assert x["power_w"] == pytest.approx(500.0) and x["energy_execs"] == 40
