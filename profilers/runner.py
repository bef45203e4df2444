"""Run suites on a device within a time budget, writing a crash-safe, resumable profile."""
from __future__ import annotations

import datetime as _dt
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from perfmodel.errors import PerfmodelError
from profilers.budget import split_budget
from profilers.device import Device, open_device
from profilers.journal import Journal
from profilers.measure import measure_point
from profilers.progress import fmt_seconds, make_progress
from profilers.schema import (JOURNAL, METADATA, SCHEMA_VERSION, dedupe, read_metadata,
                              read_profile, write_measurements, write_metadata)
from profilers.suites import get_suite


@dataclass(frozen=True)
class ProfileConfig:
    """What to measure; two runs with equal configs into one directory are one profile."""

    out: Path
    device: str = "cpu"
    suites: tuple[str, ...] = ("gemm", "conv", "blocks", "validation")
    budget_s: float = 600.0
    flush_l2: bool = False
    threads: int | None = None  # torch CPU threads (None: torch's default)

    def key(self) -> dict:
        return {"device": self.device, "suites": list(self.suites), "budget_s": self.budget_s,
                "flush_l2": self.flush_l2, "threads": self.threads}


@dataclass
class SuiteState:
    """Budget bookkeeping of one suite (persisted in metadata.json)."""

    name: str
    budget_s: float
    spent_s: float = 0.0
    points: int = 0
    failed: int = 0
    reason: str = ""  # why it ended: "budget", "exhausted", "unavailable: ..." ("" = running)


@dataclass
class ProfileResult:
    directory: Path
    frame: pd.DataFrame
    metadata: dict
    suites: list[SuiteState] = field(default_factory=list)
    resumed: bool = False

    def summary(self) -> str:
        """A short table: points, failures, time spent per suite, and the energy source."""
        lines = [f"profile {self.directory} ({self.metadata.get('device_name')}, "
                 f"{'complete' if self.metadata.get('complete') else 'incomplete'})"]
        lines.append(f"{'suite':<12}{'points':>8}{'failed':>8}{'spent':>10}{'budget':>10}  ended")
        for s in self.suites:
            lines.append(f"{s.name:<12}{s.points:>8}{s.failed:>8}{fmt_seconds(s.spent_s):>10}"
                         f"{fmt_seconds(s.budget_s):>10}  {s.reason}")
        ok = self.frame[self.frame["status"] == "ok"]
        if len(ok) and ok["energy_j"].notna().any():
            lines.append(f"energy measured for {int(ok['energy_j'].notna().sum())} of {len(ok)} points")
        else:
            lines.append("no energy measured (see notes)")
        for note in self.metadata.get("notes", []):
            lines.append(f"note: {note}")
        return "\n".join(lines)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def _load_average() -> list[float] | None:
    """The host's 1/5/15-minute load averages: other work on the machine skews timings."""
    import os

    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def catalogue_key(device: Device, meta: dict) -> str | None:
    """The perfmodel hardware catalogue key of this device, when the catalogue knows it."""
    try:
        if device.kind == "cpu":
            from perfmodel.hardware.cpu import local_cpu

            return local_cpu().key
        from perfmodel.hardware.catalogue import get_device

        return get_device(meta.get("device_name", "")).key
    except Exception:
        return None


def collect_metadata(device: Device, config: ProfileConfig) -> dict:
    """Everything about the machine and software a later fit needs (no hostnames or serials)."""
    import numpy
    import torch

    import perfmodel

    meta = {"schema_version": SCHEMA_VERSION, "created": _now(), "config": config.key(),
            "suites": list(config.suites), "budget_s": config.budget_s}
    meta.update(device.metadata())
    meta["catalogue_key"] = catalogue_key(device, meta)
    meta["load_average_start"] = _load_average()
    meta.update(torch=torch.__version__, numpy=numpy.__version__, pandas=pd.__version__,
                python=platform.python_version(), perfmodel=perfmodel.__version__,
                os=f"{platform.system()} {platform.release()}")
    return meta


def _points_of(rows: list[dict], suite: str) -> list[dict]:
    return [r for r in rows if r.get("suite") == suite]


def run_profile(config: ProfileConfig, progress: str = "auto") -> ProfileResult:
    """Measure `config.suites` within `config.budget_s`; resume what a previous run left."""
    out = Path(config.out)
    for name in config.suites:
        get_suite(name)  # unknown names fail before anything is measured
    if out.exists() and not out.is_dir():
        raise PerfmodelError(f"--out {out} exists and is not a directory")
    journal = Journal(out / JOURNAL)
    resumed = (out / METADATA).is_file()
    if resumed:
        meta = read_metadata(out)
        if meta.get("config") != config.key():
            raise PerfmodelError(f"{out} holds a profile made with {meta.get('config')}; "
                                 f"rerun with those arguments to resume, or use another --out")
        if meta.get("complete"):
            frame = read_profile(out)
            return ProfileResult(out, frame, meta, [SuiteState(**s) for s in meta["suite_state"]], True)
    if config.threads is not None:
        import torch

        if config.threads < 1:
            raise PerfmodelError(f"--threads must be at least 1, got {config.threads}")
        torch.set_num_threads(config.threads)
    device = open_device(config.device)
    try:
        out.mkdir(parents=True, exist_ok=True)
        if not resumed:
            meta = collect_metadata(device, config)
            meta["idle_power_w"] = device.idle_power_w()
            meta["complete"] = False
            meta["suite_state"] = []
            write_metadata(meta, out)
        meta["notes"] = sorted(set(meta.get("notes", [])) | set(device.notes))
        return _run(config, device, meta, journal, out, progress, resumed)
    finally:
        device.close()


def _run(config, device, meta, journal, out, progress, resumed) -> ProfileResult:
    shares = split_budget(config.budget_s, {n: get_suite(n).weight for n in config.suites})
    prior = read_profile(out).to_dict("records") if resumed else []
    ended = {r["name"]: r for r in journal.read() if r.get("kind") == "suite_end"}
    ended.update({s["name"]: s for s in meta.get("suite_state", []) if s.get("reason")})
    states, carry = [], 0.0
    spent_before = sum(float(r.get("wall_s") or 0) for r in prior)
    with make_progress(config.budget_s, progress) as bar:
        for name in config.suites:
            rows = _points_of(prior, name)
            state = SuiteState(name, shares[name] + carry,
                               sum(float(r.get("wall_s") or 0) for r in rows), len(rows),
                               sum(r.get("status") == "failed" for r in rows))
            if name in ended:
                state.reason = ended[name]["reason"]
            else:
                spent_before = _run_suite(get_suite(name), state, rows, config, device,
                                          journal, bar, spent_before)
                journal.append({"kind": "suite_end", **asdict(state)})
            carry = max(0.0, state.budget_s - state.spent_s)
            states.append(state)
    frame = dedupe(read_profile(out))
    write_measurements(frame, out)
    meta.update(complete=True, finished=_now(), load_average_end=_load_average(),
                suite_state=[asdict(s) for s in states])
    write_metadata(meta, out)
    journal.remove()
    return ProfileResult(out, frame, meta, states, resumed)


def _run_suite(suite, state: SuiteState, rows, config, device, journal, bar, spent_total) -> float:
    """Measure the suite's points in order until its budget or its points run out."""
    done = {r["point_id"] for r in rows}
    try:
        points = suite.points(device)
    except Exception as exc:
        state.reason = f"unavailable: {type(exc).__name__}: {exc}"
        return spent_total
    if not points:
        state.reason = "unavailable: no points for this device"
        return spent_total
    per_point = state.spent_s / max(state.points, 1)
    for seq, point in enumerate(points):
        if point.id in done:
            continue
        left = state.budget_s - state.spent_s
        if left <= 0 or (state.points and left < 0.5 * per_point):
            state.reason = "budget"
            return spent_total
        row = measure_point(suite, point, seq, device, flush_l2=config.flush_l2)
        journal.append({"kind": "point", **row})
        state.points += 1
        state.failed += row["status"] == "failed"
        state.spent_s += row["wall_s"]
        spent_total += row["wall_s"]
        per_point = state.spent_s / state.points
        bar.update(suite.name, state.points, state.failed, spent_total)
    state.reason = "exhausted"
    return spent_total
