"""Run suites on a device within a time budget, writing a crash-safe, resumable profile."""
from __future__ import annotations

from collections import Counter

import contextlib
import datetime as _dt
import os
import platform
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from perfmodel.errors import PerfmodelError
from profilers.budget import split_budget
from profilers.device import Device, open_device
from profilers.journal import Journal
from profilers.measure import DeviceLost, measure_point, point_columns
from profilers.merge import device_difference
from profilers.progress import fmt_seconds, make_progress
from profilers.repeat import add_noise, measure_repeat, repeat_budget
from profilers.schema import (JOURNAL, METADATA, SCHEMA_VERSION, dedupe, read_metadata,
                              read_profile, write_measurements, write_metadata)
from profilers.suites import get_suite

CRASHES_TO_FAIL = 2  # a point begun this often without a row is failed, not retried (`_run`)


@dataclass(frozen=True)
class ProfileConfig:
    """What to measure; two runs with equal configs into one directory are one profile."""

    out: Path
    device: str = "cpu"
    suites: tuple[str, ...] = ("gemm", "conv", "blocks", "validation")
    budget_s: float = 600.0
    flush_l2: bool = False
    threads: int | None = None  # torch CPU threads (None: torch's default)
    canary: bool = False  # time a canary GEMM around every CPU point (profilers.canary)
    # earlier profiles of this device: their measured points are skipped, so that a second
    # short run (another GPU lease) goes on past them instead of timing them again
    after: tuple[str, ...] = ()

    def key(self) -> dict:
        key = {"device": self.device, "suites": list(self.suites), "budget_s": self.budget_s,
               "flush_l2": self.flush_l2, "threads": self.threads}
        if self.canary:
            key["canary"] = True
        if self.after:
            key["after"] = [str(a) for a in self.after]
        return key


@dataclass
class SuiteState:
    """Budget bookkeeping of one suite (persisted in metadata.json)."""

    name: str
    budget_s: float
    spent_s: float = 0.0
    points: int = 0
    failed: int = 0
    reason: str = ""  # why it ended: "budget", "exhausted", "unavailable: ...", "stopped"
    # (`finish_profile`); "" = running
    repeated: int = 0  # points measured again in the repeat pass


class _Pause(Exception):
    """The invocation's own time limit (`stop_after_s`) passed between two points."""


@dataclass
class ProfileResult:
    directory: Path
    frame: pd.DataFrame
    metadata: dict
    suites: list[SuiteState] = field(default_factory=list)
    resumed: bool = False
    paused: bool = False  # stopped by `stop_after_s`; the same command continues it


    def summary(self) -> str:
        """A short table: points, failures, time spent per suite, and the energy source."""
        lines = [f"profile {self.directory} ({self.metadata.get('device_name')}, "
                 f"{'complete' if self.metadata.get('complete') else 'incomplete'})"]
        bands = self.metadata.get("repeat_bands", {})
        if self.suites:  # a paused run has no per-suite totals yet
            lines.append(f"{'suite':<12}{'points':>8}{'failed':>8}{'repeated':>10}{'band':>8}"
                         f"{'spent':>10}{'budget':>10}  ended")
            for s in self.suites:
                band = (bands.get(s.name) or {}).get("band")
                band_txt = f"{band:.1%}" if band is not None else "-"
                lines.append(f"{s.name:<12}{s.points:>8}{s.failed:>8}{s.repeated:>10}"
                             f"{band_txt:>8}{fmt_seconds(s.spent_s):>10}"
                             f"{fmt_seconds(s.budget_s):>10}  {s.reason}")
            lines.append("band: a re-measurement lands within +-band of time_s 90% of the "
                         "time (from the repeat pass)")
        if self.paused:
            per_suite = self.frame.groupby("suite").size() if len(self.frame) else {}
            got = ", ".join(f"{k} {int(v)}" for k, v in dict(per_suite).items())
            lines.append("paused (--stop-after): run the same command again to continue; "
                         f"{len(self.frame)} points so far" + (f" ({got})" if got else ""))
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

    meta = {"schema_version": SCHEMA_VERSION, "created": _now(), "run_id": uuid.uuid4().hex,
            "config": config.key(),
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


def run_profile(config: ProfileConfig, progress: str = "auto",
                stop_after_s: float | None = None) -> ProfileResult:
    """Measure `config.suites` within `config.budget_s`; resume what a previous run left.

    `stop_after_s` bounds this invocation only (e.g. a machine that runs one command for at
    most 10 minutes): past it, the run pauses between two points, as if interrupted, and
    the same call continues it; the profile's own budget is unchanged."""
    out = Path(config.out)
    for name in config.suites:
        get_suite(name)  # unknown names fail before anything is measured
    if out.exists() and not out.is_dir():
        raise PerfmodelError(f"--out {out} exists and is not a directory")
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        with _exclusive(out) as lock:  # before the state is read: a run finishing meanwhile
            try:
                result = _run_profile(config, progress, stop_after_s, out)
                lock.done = bool(result.metadata.get("complete"))
                return result
            finally:
                if not (out / METADATA).is_file() or _complete(out):
                    lock.done = True  # nothing written, or a profile no run writes: no lock file
    finally:
        if created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()  # a run that failed before writing anything leaves no folder


def _complete(out: Path) -> bool:
    try:
        return bool(read_metadata(out).get("complete"))
    except Exception:  # noqa: BLE001  (unreadable metadata: not known complete)
        return False


def _run_profile(config: ProfileConfig, progress: str, stop_after_s: float | None,
                 out: Path) -> ProfileResult:
    """`run_profile` once `out` is locked."""
    journal = Journal(out / JOURNAL)
    resumed = (out / METADATA).is_file()
    if resumed:
        meta = read_metadata(out)
        if meta.get("config") != config.key():
            raise PerfmodelError(f"{out} holds a profile made with {meta.get('config')}; "
                                 f"rerun with those arguments to resume, or use another --out")
        if meta.get("complete"):
            frame = read_profile(out)
            states = [SuiteState(**s) for s in meta.get("suite_state", [])]  # none: a merge
            return ProfileResult(out, frame, meta, states, True)
    elif out.is_dir() and any(p.name not in (JOURNAL, LOCK) and not p.name.endswith(".tmp")
                              for p in out.iterdir()):  # .tmp: a write a kill cut short
        raise PerfmodelError(f"--out {out} is a directory with other files in it and no "
                             "profile: give a new or empty directory")
    if config.threads is not None:
        import torch

        if config.threads < 1:
            raise PerfmodelError(f"--threads must be at least 1, got {config.threads}")
        cpus = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                else os.cpu_count() or 1)  # the CPUs this process may run on (taskset, cgroups)
        if config.threads > cpus:
            raise PerfmodelError(f"--threads {config.threads} is more than this machine's "
                                 f"{cpus} logical CPUs this process may use: the timings would be of threads "
                                 "waiting for a core")
        torch.set_num_threads(config.threads)
    device = open_device(config.device)
    try:
        here = device.metadata()
        here["catalogue_key"] = catalogue_key(device, here)
        if resumed:  # a paused run is continued on the device it was begun on only
            diff = device_difference(meta, here)
            if diff:
                raise PerfmodelError(f"{out} is an unfinished profile of another device "
                                     f"({diff}): finish it with `profile finish {out}` or "
                                     "measure this device into another --out")
        skip = measured_before(config.after, here)  # before anything is written
        if not resumed:
            meta = collect_metadata(device, config)
            meta["idle_power_w"] = device.idle_power_w()
            meta["complete"] = False
            meta["suite_state"] = []
            write_metadata(meta, out)
        elif meta.get("idle_power_w") and hasattr(device, "idle_w"):  # as the first run had it
            device.idle_w = float(meta["idle_power_w"])
        notes = set(meta.get("notes", [])) | set(device.notes)
        if config.canary and device.kind != "cpu":
            notes.add("--canary applies to CPU runs only; on a GPU, NVML's clocks-event "
                      "reasons flag throttled points")
        meta["notes"] = sorted(notes)
        deadline = None if stop_after_s is None else time.monotonic() + stop_after_s
        try:
            return _run(config, device, meta, journal, out, progress, resumed, deadline, skip)
        except _Pause:
            write_metadata(meta, out)
            return ProfileResult(out, read_profile(out), meta, [], resumed, paused=True)
    finally:
        device.close()


LOCK = ".lock"  # held by the run writing a profile directory (removed once it is complete)


class _Lock:
    done = False  # set once the profile is complete: the lock file goes with the run


@contextlib.contextmanager
def _exclusive(out: Path):
    """Hold `out`'s lock while a run writes it: a second run into the same --out (two
    terminals, a retried job) would interleave its journal and overwrite the metadata.
    Advisory `flock`, released by the kernel when the process dies; none where the
    platform has no `fcntl`."""
    try:
        import fcntl
    except ImportError:
        yield _Lock()
        return
    path = out / LOCK
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            who = f.read().strip() or "another process"
            raise PerfmodelError(f"{out}: another run is writing this profile ({who}): let it "
                                 "finish, or measure into another --out") from None
        except OSError as exc:  # a file system without locks (NFS without its lock daemon)
            print(f"profilers: note: cannot lock {path} ({exc.strerror or exc}): nothing "
                  "keeps a second run out of this profile", file=sys.stderr)
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()} on {platform.node()}\n")
        f.flush()
        state = _Lock()
        try:
            yield state
        finally:
            if state.done:
                path.unlink(missing_ok=True)


def measured_before(profiles, meta: dict) -> set[str]:
    """Point ids measured ok in earlier profiles (`ProfileConfig.after`) of the device that
    `meta` describes; PerfmodelError for a directory that is no profile of it."""
    skip: set[str] = set()
    for prof in profiles:
        other = read_metadata(prof)
        diff = device_difference(other, meta)
        if diff:  # the points it skips would never be measured on this device
            raise PerfmodelError(f"--after {prof}: a profile of another device or thread "
                                 f"count ({diff})")
        frame = read_profile(prof)
        skip |= set(frame.loc[frame["status"] == "ok", "point_id"].astype(str))
    return skip


def _run(config, device, meta, journal, out, progress, resumed, deadline=None,
         skip=frozenset()) -> ProfileResult:
    """Measure the suites interleaved in time (`_SuiteRun`, `_budgets`), then compact."""
    weights = {n: get_suite(n).weight for n in config.suites}
    prior = read_profile(out).to_dict("records") if resumed else []
    records = journal.read()
    repeats = [r for r in records if r.get("kind") == "repeat"]
    ended = {r["name"]: r for r in records if r.get("kind") == "suite_end"}
    ended.update({s["name"]: s for s in meta.get("suite_state", []) if s.get("reason")})
    budgets = _budgets(config.budget_s, weights, ended)
    canary = _canary(device) if config.canary else None
    states, runs = [], []
    total = sum(float(r.get("wall_s") or 0) for r in prior + repeats)
    # points begun and never journalled nor abandoned (an interrupt): the process died
    # measuring them. Once may be a kill from outside: measured again; twice, the point
    # is taken to crash the process (a GPU kernel fault): a failed row, never retried
    starts: Counter = Counter()
    again: Counter = Counter()  # the same for repeats: begun less ended
    for r in records:
        kind, pid = r.get("kind"), r.get("point_id")
        if kind == "start":
            starts[pid] += 1
        elif kind in ("point", "abandon"):
            starts.pop(pid, None)
        elif kind == "repeat_start":
            again[pid] += 1
        elif kind in ("repeat", "repeat_abandon"):
            again[pid] = 0 if kind == "repeat_abandon" else max(0, again[pid] - 1)
    crashed = {p for p, n in starts.items() if n >= CRASHES_TO_FAIL} - {
        r.get("point_id") for r in prior}
    crashed |= {p for p, n in again.items() if n >= CRASHES_TO_FAIL}  # not repeated again
    for name in config.suites:
        rows, again = _points_of(prior, name), _points_of(repeats, name)
        state = _suite_state(name, budgets[name], rows, again, ended.get(name))
        if name not in ended:
            runs.append(_SuiteRun(get_suite(name), state, rows, again, config, device,
                                  journal, canary, skip, crashed))
        states.append(state)
    with make_progress(config.budget_s, progress) as bar:
        active = [r for r in runs if not r.state.reason]
        for r in runs:
            if r.state.reason:  # unavailable on this device
                journal.append({"kind": "suite_end", **asdict(r.state)})
        while active:
            # the suite furthest behind its share of the budget goes next
            run = min(active, key=lambda r: r.state.spent_s / max(r.state.budget_s, 1e-9))
            spent = run.state.spent_s
            if run.step(deadline):
                total += run.state.spent_s - spent
                bar.update(run.suite.name, run.state.points, run.state.failed, total)
                continue
            journal.append({"kind": "suite_end", **asdict(run.state)})
            active.remove(run)
            _pass_on(max(0.0, run.state.budget_s - run.state.spent_s), active, weights)
    frame = _compact(out, journal, meta, states, load_average_end=_load_average())
    return ProfileResult(out, frame, meta, states, resumed)


def _compact(out: Path, journal: Journal, meta: dict, states, **extra) -> pd.DataFrame:
    """Fold the journal into measurements.parquet (noise bands from its repeats), mark the
    metadata complete, remove the journal; the compacted frame."""
    frame = dedupe(read_profile(out))
    repeats = [r for r in journal.read() if r.get("kind") == "repeat"]
    frame, bands = add_noise(frame, repeats)
    write_measurements(frame, out)
    # written in this version's columns, whichever version began the run
    meta.update(complete=True, finished=_now(), suite_state=[asdict(s) for s in states],
                repeat_bands=bands, schema_version=SCHEMA_VERSION, **extra)
    write_metadata(meta, out)
    journal.remove()
    return frame


def finish_profile(out) -> ProfileResult:
    """End a paused or interrupted profile where it stands, without measuring more: what
    the journal holds becomes the profile (noise bands from the repeats it has), suites
    that had not ended end with reason "stopped", and the metadata says `stopped_early`.
    For a run cut short on a machine that is gone (a lent GPU), so that the measurements
    it made are a profile that fits, compares and merges like any other."""
    out = Path(out)
    if not (out / METADATA).is_file():
        raise PerfmodelError(f"{out}: not a profile directory (no {METADATA})")
    with _exclusive(out) as lock:  # not while a run is still writing it
        meta = read_metadata(out)  # read under the lock: a run may have just completed it
        if meta.get("complete"):
            lock.done = True
            raise PerfmodelError(f"{out}: already complete, nothing to finish")
        result = _finish(out, meta)
        lock.done = True
    return result


def _finish(out: Path, meta: dict) -> ProfileResult:
    journal = Journal(out / JOURNAL)
    records = journal.read()
    rows = read_profile(out).to_dict("records")
    repeats = [r for r in records if r.get("kind") == "repeat"]
    ended = {r["name"]: r for r in records if r.get("kind") == "suite_end"}
    names = list(meta.get("suites") or (meta.get("config") or {}).get("suites") or [])
    weights = {n: get_suite(n).weight for n in names}
    budgets = _budgets(float(meta.get("budget_s") or 0.0), weights, ended)
    states = [_suite_state(name, budgets[name], _points_of(rows, name),
                           _points_of(repeats, name), ended.get(name), unended="stopped")
              for name in names]
    frame = _compact(out, journal, meta, states, stopped_early=True)
    return ProfileResult(out, frame, meta, states, resumed=True)


def _suite_state(name: str, budget_s: float, rows: list[dict], again: list[dict],
                 end: dict | None, unended: str = "") -> SuiteState:
    """A suite's bookkeeping rebuilt from its point rows and repeat records; `end`, its
    `suite_end` record if it ended (its budget, reason and repeats stand), else the reason
    `unended`."""
    state = SuiteState(name, budget_s, sum(float(r.get("wall_s") or 0) for r in rows + again),
                       len(rows), sum(r.get("status") == "failed" for r in rows), unended,
                       len(again))
    if end is not None:
        state.budget_s = float(end.get("budget_s", state.budget_s))
        state.reason = end["reason"]
        state.repeated = int(end.get("repeated", state.repeated))
    return state


def _budgets(total_s: float, weights: dict[str, float], ended: dict[str, dict]) -> dict[str, float]:
    """Each suite's budget: its weighted share, plus, for suites still running, what the
    suites that already ended left unused, shared by weight."""
    budgets = split_budget(total_s, weights)
    left = sum(max(0.0, float(e.get("budget_s", budgets[n])) - float(e.get("spent_s", 0.0)))
               for n, e in ended.items() if n in budgets)
    running = {n: w for n, w in weights.items() if n not in ended}
    norm = sum(running.values())
    for n, w in running.items():
        budgets[n] += left * w / norm
    return budgets


def _pass_on(seconds: float, active: list, weights: dict[str, float]) -> None:
    """Share a finished suite's unused seconds among the suites still running, by weight."""
    norm = sum(weights[r.suite.name] for r in active)
    for r in active:
        r.state.budget_s += seconds * weights[r.suite.name] / norm


def _canary(device):
    """The run's canary (profilers.canary) on a CPU (`--canary`); None on a GPU, whose slow
    spells NVML's clocks-event reasons report."""
    if device.kind != "cpu":
        return None
    from profilers.canary import Canary

    return Canary(device)


def _pause_if_due(deadline) -> None:
    if deadline is not None and time.monotonic() >= deadline:
        raise _Pause()


class _SuiteRun:
    """One suite measured one step (a point or a repeat) at a time, so the runner can
    interleave the suites in time: every suite then sees the same mixture of the machine's
    states over the run (a slow spell or a drift of minutes biases none of them against
    another, e.g. the blocks against the whole models they predict).

    Within the suite: points in order until the budget (less the repeat pass's reserve) or
    the points run out, timing earlier points again as it goes (`profilers.repeat`): after
    each point, while the repeats have used less than their share of the time spent so
    far, a point measured in the first half of the points so far is timed again (so
    repeats span the run's length and lag), the one repeated fewest times, at most
    `suite.repeats_of(point)` times; what the reserve has left after the last point goes
    the same way over all points, in rounds. A suite with `interleave_repeats` False
    measures all its points first and then only rounds, so that each point's measurements
    lie far apart (the ground truth of whole models, the blocks that stand in for them)."""

    def __init__(self, suite, state: SuiteState, rows, again, config, device, journal, canary,
                 skip=frozenset(), crashed=frozenset()):
        self.suite, self.state, self.config, self.device = suite, state, config, device
        self.journal, self.canary = journal, canary
        self.done = {r["point_id"] for r in rows}
        self.ok = {r["point_id"] for r in rows if r.get("status") == "ok"}
        self.times_repeated = Counter(r["point_id"] for r in again)
        self.spent_main = sum(float(r.get("wall_s") or 0) for r in rows)
        self.spent_repeat = sum(float(r.get("wall_s") or 0) for r in again)
        self.next, self.last_seq, self.tail = 0, None, False
        try:
            self.points = suite.points(device)
        except Exception as exc:
            state.reason = f"unavailable: {type(exc).__name__}: {exc}"
            self.points = []
        if not self.points and not state.reason:
            state.reason = "unavailable: no points for this device"
        elif skip:  # measured in an earlier profile (`--after`): the order goes on past them
            self.points = [p for p in self.points if p.id not in skip]
            if not self.points and not state.reason:
                state.reason = "exhausted"
        self.share = suite.repeat_fraction  # after points(): a suite may set it per device
        for seq, point in enumerate(self.points):  # never retried: it may crash again
            if point.id in crashed and point.id in self.done:  # its repeats crashed
                self.times_repeated[point.id] = max(self.times_repeated[point.id],
                                                    suite.repeats_of(point))
            elif point.id in crashed:
                row = point_columns(point, seq)
                row.update(status="failed", wall_s=0.0,
                           error=f"the process ended while measuring it, {CRASHES_TO_FAIL} times")
                self.journal.append({"kind": "point", **row})
                self.done.add(point.id)
                state.points += 1
                state.failed += 1

    @property
    def reserve(self) -> float:
        return repeat_budget(self.state.budget_s, self.share)

    def step(self, deadline=None) -> bool:
        """Measure one point or repeat; False once the suite has ended (reason set)."""
        if not self.tail:
            if (self.suite.interleave_repeats and self.last_seq is not None
                    and self.spent_repeat < self.spent_main * self.share / (1 - self.share)
                    and self.spent_repeat < self.reserve
                    and self._repeat((self.last_seq + 1) // 2, deadline)):
                return True
            while self.next < len(self.points) and self.points[self.next].id in self.done:
                self.next += 1
            per_point = self.spent_main / max(self.state.points, 1)
            left = self.state.budget_s - self.reserve - self.spent_main
            if self.next >= len(self.points):
                self.tail, self.state.reason = True, "exhausted"
            elif left <= 0 or (self.state.points and left < 0.5 * per_point):
                self.tail, self.state.reason = True, "budget"
            else:
                self._measure(self.next, deadline)
                return True
        return (self.state.spent_s < self.state.budget_s and self.spent_repeat < self.reserve
                and self._repeat(len(self.points), deadline))

    def _measure(self, seq: int, deadline) -> None:
        point, state = self.points[seq], self.state
        _pause_if_due(deadline)
        self.journal.append({"kind": "start", "point_id": point.id, "suite": point.suite})
        try:
            row = measure_point(self.suite, point, seq, self.device,
                                flush_l2=self.config.flush_l2, canary=self.canary)
        except DeviceLost as lost:  # journalled as failed (never retried), then the run stops
            self.journal.append({"kind": "point", **lost.row})
            raise
        except KeyboardInterrupt:  # measured again on resume
            self.journal.append({"kind": "abandon", "point_id": point.id})
            raise
        self.journal.append({"kind": "point", **row})
        self.done.add(point.id)
        if row["status"] == "ok":
            self.ok.add(point.id)
        state.points += 1
        state.failed += row["status"] == "failed"
        state.spent_s += row["wall_s"]
        self.spent_main += row["wall_s"]
        self.last_seq, self.next = seq, seq + 1

    def _repeat(self, limit: int, deadline) -> bool:
        """Time again the ok point among the first `limit` repeated fewest times (below
        `suite.repeats_of(point)`; the earliest on ties); False if none."""
        todo = [p for p in self.points[:max(0, limit)]
                if p.id in self.ok and self.times_repeated[p.id] < self.suite.repeats_of(p)]
        if not todo:
            return False
        point = min(todo, key=lambda p: self.times_repeated[p.id])  # min keeps the earliest
        _pause_if_due(deadline)
        self.journal.append({"kind": "repeat_start", "point_id": point.id})
        try:
            rec = measure_repeat(self.suite, point, self.device,
                                 flush_l2=self.config.flush_l2, canary=self.canary)
        except DeviceLost as lost:
            self.journal.append(lost.row)
            raise
        except KeyboardInterrupt:
            self.journal.append({"kind": "repeat_abandon", "point_id": point.id})
            raise
        self.journal.append(rec)
        self.times_repeated[point.id] += 1
        self.state.repeated += rec.get("time_s") is not None
        self.state.spent_s += rec["wall_s"]
        self.spent_repeat += rec["wall_s"]
        return True
