"""Shared fixtures: the `gpu` marker and the public validation data in ../shared/data."""
from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


def _cuda_available() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:  # torch missing or broken: no GPU either way
        return False


def pytest_collection_modifyitems(config, items):
    if _cuda_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (none found by torch.cuda.is_available())")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


class BriefSuite:
    """A suite wrapper with short timing and energy windows: a test measures that a point
    runs, not how fast."""

    def __init__(self, suite):
        self.suite = suite

    def __getattr__(self, name):
        return getattr(self.suite, name)

    def timing_budget_s(self, device):
        return 0.02

    def energy_window_s(self, device, time_s):
        return 0.05


@pytest.fixture(scope="session")
def brief():
    """`brief(suite)`: the suite with short timing and energy windows (`BriefSuite`)."""
    return BriefSuite


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path of ../shared/data; skips the test when it is absent (a user's machine)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"public validation data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture
def no_shipped_profiles(tmp_path, monkeypatch):
    """Predict with the catalogue + roofline only: no shipped datasets/, an empty cache."""
    from perfmodel.predict import device as device_mod

    monkeypatch.setenv("PERFMODEL_DATASETS", str(tmp_path / "no-datasets"))
    monkeypatch.setenv("PERFMODEL_CACHE", str(tmp_path / "cache"))
    device_mod._BACKENDS.clear()
    yield
    device_mod._BACKENDS.clear()


@pytest.fixture(scope="session")
def shipped_profile_cache(tmp_path_factory):
    """One prediction cache (`PERFMODEL_CACHE`) for the tests that fit the shipped CPU
    profiles: they fit each profile once per session, not once per module."""
    return tmp_path_factory.mktemp("shipped-profile-cache")


@pytest.fixture(scope="module")
def amd(shipped_profile_cache):
    """The backend of the shipped AMD CPU profile (skips without it)."""
    from perfmodel.predict.device import datasets_dir, from_profile

    prof = datasets_dir() / "cpu-amd-epyc"
    if not (prof / "measurements.parquet").is_file():
        pytest.skip("no AMD CPU profile under datasets/")
    mp = pytest.MonkeyPatch()
    mp.setenv("PERFMODEL_CACHE", str(shipped_profile_cache))
    yield from_profile(prof)
    mp.undo()


@pytest.fixture(scope="module")
def shipped(shipped_profile_cache):
    """The first shipped CPU profile with blocks and validation suites, predicted through
    the session's shared cache (skips without one)."""
    from tests.test_predict_validate import shipped_cpu_profile

    prof = shipped_cpu_profile()
    if prof is None:
        pytest.skip("no CPU profile with blocks and validation suites under datasets/")
    mp = pytest.MonkeyPatch()
    mp.setenv("PERFMODEL_CACHE", str(shipped_profile_cache))
    yield prof
    mp.undo()
