"""The repeat pass: each suite times its first points again, and every row reports the
band a re-measurement falls in; interrupted repeat passes resume without repeating twice."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import pytest

from perfmodel.errors import PerfmodelError
from profilers.points import Point, Workload
from profilers.repeat import BAND_COVERAGE, REPEAT_FRACTION, add_noise
from profilers.runner import ProfileConfig, run_profile
from profilers.schema import JOURNAL, read_metadata
from profilers.suites import SUITES
from profilers.suites.base import Suite


class _SmallGemms(Suite):
    """Twenty tiny matmuls timed for 20 ms each; `interrupt_after` repeats raise Ctrl-C."""

    name = "small_gemms_test"
    builds: Counter = Counter()
    interrupt_after: int | None = None

    n_points = 20

    def candidates(self, device):
        return [Point.make(self.name, "gemm", "fwd", "float32", m=8 + i, n=8, k=8, b=1)
                for i in range(self.n_points)]

    def features(self, point):
        return [float(point.p["m"])]

    def timing_budget_s(self, device):
        return 0.02

    def build(self, point, device):
        import torch

        cls = type(self)
        cls.builds[point.id] += 1
        if cls.interrupt_after is not None and cls.builds[point.id] == 2:
            if sum(v >= 2 for v in cls.builds.values()) > cls.interrupt_after:
                raise KeyboardInterrupt
        a, b = torch.randn(point.p["m"], 8), torch.randn(8, 8)
        return Workload(lambda: a @ b)


@pytest.fixture
def small_suite():
    SUITES[_SmallGemms.name] = _SmallGemms
    _SmallGemms.builds = Counter()
    _SmallGemms.interrupt_after = None
    yield _SmallGemms
    del SUITES[_SmallGemms.name]


def test_repeat_pass_fills_repeat_and_noise_columns(tmp_path, small_suite):
    result = run_profile(ProfileConfig(out=tmp_path, suites=(small_suite.name,), budget_s=20),
                         progress="none")
    frame = result.frame
    ok = frame[frame["status"] == "ok"]
    assert len(ok) == 20
    repeated = ok[ok["time_repeat_s"].notna()]
    assert len(repeated) >= 5 and result.suites[0].repeated == len(repeated)
    # the repeats are the suite's first points in its measurement order
    assert set(repeated["seq"]) == set(range(len(repeated)))
    meta = read_metadata(tmp_path)
    band = meta["repeat_bands"][small_suite.name]
    rel = ((repeated["time_repeat_s"] - repeated["time_s"]).abs() / repeated["time_s"]).to_numpy()
    assert band["repeated"] == len(repeated)
    assert band["band"] == pytest.approx(np.quantile(rel, BAND_COVERAGE))
    assert (ok["time_noise_s"] >= ok["time_iqr_s"] - 1e-15).all()
    assert np.allclose(ok["time_noise_s"], np.maximum(band["band"] * ok["time_s"], ok["time_iqr_s"]))
    assert "repeated" in result.summary() and "band" in result.summary()


def test_a_suite_with_max_repeats_times_points_again_fewest_repeated_first(tmp_path, small_suite,
                                                                           monkeypatch):
    monkeypatch.setattr(small_suite, "max_repeats", 2, raising=False)
    monkeypatch.setattr(small_suite, "repeat_fraction", 0.6, raising=False)
    result = run_profile(ProfileConfig(out=tmp_path, suites=(small_suite.name,), budget_s=20),
                         progress="none")
    ok = result.frame[result.frame["status"] == "ok"]
    assert len(ok) == 20
    assert max(small_suite.builds.values()) == 3  # main + two repeats, never more
    counts = ok["repeats"].astype(int)
    assert counts.max() == 2 and (counts >= 1).all()  # everyone once before anyone twice
    twice = ok[counts == 2]
    assert set(twice["seq"]) == set(range(len(twice)))  # the earliest points first
    # the center is the median of the first and every repeat; with two repeats the middle one
    lo = np.minimum(twice["time_s"], twice["time_repeat_s"])
    hi = np.maximum(twice["time_s"], twice["time_repeat_s"])
    assert ((twice["time_center_s"] >= lo - 1e-15) & (twice["time_center_s"] <= hi + 1e-15)).all()
    once = ok[counts == 1]
    assert np.allclose(once["time_center_s"], (once["time_s"] + once["time_repeat_s"]) / 2)
    band = read_metadata(tmp_path)["repeat_bands"][small_suite.name]
    assert band["repeated"] == int(counts.sum()) == result.suites[0].repeated


def test_suites_take_turns_in_proportion_to_their_budgets(tmp_path, small_suite):
    """Every suite is spread over the whole run: none runs only at its start or its end."""
    order = []

    class _Other(small_suite):
        name = "small_gemms_other"
        weight = 2.0
        n_points = 200

        def build(self, point, device):
            order.append(self.name)
            return super().build(point, device)

    class _First(small_suite):
        n_points = 200

        def build(self, point, device):
            order.append(self.name)
            return super().build(point, device)

    SUITES[_First.name], SUITES[_Other.name] = _First, _Other
    try:
        result = run_profile(ProfileConfig(out=tmp_path, suites=(_First.name, _Other.name),
                                           budget_s=0.6), progress="none")
    finally:
        del SUITES[_Other.name]
    assert {s.name: s.reason for s in result.suites} == {_First.name: "budget",
                                                          _Other.name: "budget"}
    half = len(order) // 2
    for name in (_First.name, _Other.name):  # both in each half of the run
        assert name in order[:half] and name in order[half:]
    spent = {s.name: s.spent_s for s in result.suites}
    assert 1.3 < spent[_Other.name] / spent[_First.name] < 3.0  # weights 2 : 1


def test_a_suite_without_interleaved_repeats_measures_its_points_then_rounds(tmp_path, small_suite,
                                                                             monkeypatch):
    order = []
    build = small_suite.build

    def logged(self, point, device):
        order.append(point.id)
        return build(self, point, device)

    monkeypatch.setattr(small_suite, "build", logged)
    monkeypatch.setattr(small_suite, "max_repeats", 2, raising=False)
    monkeypatch.setattr(small_suite, "repeat_fraction", 0.6, raising=False)
    monkeypatch.setattr(small_suite, "interleave_repeats", False, raising=False)
    result = run_profile(ProfileConfig(out=tmp_path, suites=(small_suite.name,), budget_s=20),
                         progress="none")
    assert len(result.frame) == 20
    first = order[:20]
    assert len(set(first)) == 20  # every point once before any repeat
    rounds = order[20:]
    assert rounds[:20] == first and rounds[20:40] == first[:len(rounds) - 20]  # in rounds


def test_interrupted_repeat_pass_resumes_without_repeating_twice(tmp_path, small_suite):
    small_suite.interrupt_after = 3
    config = ProfileConfig(out=tmp_path, suites=(small_suite.name,), budget_s=20)
    with pytest.raises(KeyboardInterrupt):
        run_profile(config, progress="none")
    assert not read_metadata(tmp_path)["complete"]
    journal = (tmp_path / JOURNAL).read_text()
    assert journal.count('"kind": "repeat"') == 3
    small_suite.interrupt_after = None
    result = run_profile(config, progress="none")
    assert max(small_suite.builds.values()) == 3  # the interrupted one: main, repeat, repeat
    assert sum(v >= 2 for v in small_suite.builds.values()) == result.suites[0].repeated
    assert result.frame["point_id"].is_unique and len(result.frame) == 20


def test_noise_band_is_the_quantile_of_relative_repeat_differences():
    n = 10
    frame = pd.DataFrame({
        "point_id": [f"p{i}" for i in range(n + 2)], "suite": ["s"] * n + ["t", "t"],
        "status": ["ok"] * (n + 2), "time_s": [1.0] * n + [2.0, 4.0],
        "time_iqr_s": [0.0] * n + [0.5, 0.0], "time_repeat_s": [np.nan] * (n + 2)})
    repeats = [{"point_id": f"p{i}", "time_s": 1.0 + i / 100} for i in range(n)]
    out, bands = add_noise(frame, repeats)
    q = np.quantile(np.arange(n) / 100, BAND_COVERAGE)
    assert bands["s"]["band"] == pytest.approx(q) and not bands["s"]["pooled"]
    # suite t has no repeats: it takes the band pooled over all suites (here: s's)
    assert bands["t"]["pooled"] and bands["t"]["band"] == pytest.approx(q)
    assert out["time_noise_s"].tolist() == pytest.approx([q] * n + [0.5, 4 * q])
    assert 0 < REPEAT_FRACTION < 0.5


def test_stop_after_pauses_and_the_same_call_continues(tmp_path, small_suite):
    config = ProfileConfig(out=tmp_path, suites=(small_suite.name,), budget_s=20)
    calls, result = 0, None
    while calls < 200:
        calls += 1
        result = run_profile(config, progress="none", stop_after_s=0.1)
        if not result.paused:
            break
        assert not read_metadata(tmp_path)["complete"] and "paused" in result.summary()
    assert calls >= 2 and not result.paused
    assert read_metadata(tmp_path)["complete"]
    frame = result.frame
    assert frame["point_id"].is_unique and len(frame) == 20
    assert max(small_suite.builds.values()) == 2  # nothing measured twice but the repeats
    assert result.suites[0].repeated == int(frame["time_repeat_s"].notna().sum()) > 0


def test_finish_ends_a_paused_run_with_what_it_measured(tmp_path, small_suite):
    """A run cut short where the machine is gone (a lent GPU) is finished offline: its
    journal becomes the profile, nothing is measured again, unfinished suites say why."""
    from profilers.runner import finish_profile

    config = ProfileConfig(out=tmp_path, suites=(small_suite.name,), budget_s=20)
    journal = ""
    while journal.count('"kind": "point"') < 6:  # one point or repeat per call, about
        assert run_profile(config, progress="none", stop_after_s=0.05).paused
        journal = (tmp_path / JOURNAL).read_text()
    points = journal.count('"kind": "point"')
    assert points >= 1
    builds = sum(small_suite.builds.values())

    done = finish_profile(tmp_path)
    assert sum(small_suite.builds.values()) == builds  # nothing measured
    meta = read_metadata(tmp_path)
    assert meta["complete"] and meta["stopped_early"] and not (tmp_path / JOURNAL).exists()
    assert len(done.frame) == points and done.frame["point_id"].is_unique
    (state,) = meta["suite_state"]
    assert state["reason"] == "stopped" and state["points"] == points
    assert state["repeated"] == journal.count('"kind": "repeat"')
    assert "stopped" in done.summary()
    # the same run command now finds a complete profile and measures nothing more
    again = run_profile(config, progress="none")
    assert sum(small_suite.builds.values()) == builds and len(again.frame) == points
    with pytest.raises(PerfmodelError, match="already complete"):
        finish_profile(tmp_path)
    with pytest.raises(PerfmodelError, match="not a profile"):
        finish_profile(tmp_path / "nothing")
