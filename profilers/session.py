"""A lent machine's whole measuring session in one command, inside one deadline.

    PYTHONPATH=. python3 -m profilers.session --out $OUT --deadline 9m

GPU time is lent in short leases (here: one command of at most 10 minutes, 15 minutes of
device time in all, a machine's start included), so the checks, the profile (whole-model
ground truth included) and the GPU tests must fit one command, and what it measured must
come back even when it is cut short. Every step runs in a child process with its own
time limit, so a crash or a hang in one (a CUDA error, a deadlocked NVML call) costs that
step only. In order:

1. `check`: versions (Python, torch, CUDA, cuDNN, driver, NVML), the device, and whether
   its energy counter and power readings answer: a sustained GEMM is measured by both,
   and they should agree (`check.energy_ratio`, counter / integrated power); the short
   windows every point gets are checked against one long one (`check.tail_check`).
2. `profile`: `python -m profilers` over every suite into `OUT/<slug>/` (slug: the
   catalogue key, e.g. `h200-sxm`), with the time left minus what the tests need; the
   validation suite measures one complete set of ranked candidates first. If it is cut
   short, `profile finish` makes a profile of what its journal holds.
3. `tests`: the `gpu`-marked tests (`pytest -m gpu tests/`).

`OUT/session.json` (rewritten after every step) records each step's result, seconds and
error; `OUT/session.log` holds the children's output; `OUT/nvidia-smi.txt` and
`OUT/gpu-tests.txt` the raw outputs. At most 7 files, two folders deep: what a lease
gives back. Runs on a CPU too (`--device cpu`), which is how it is tested.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from perfmodel.errors import PerfmodelError
from profilers.suites import DEFAULT_SUITES as SUITES

ROOT = Path(__file__).resolve().parents[1]
FINISH_MARGIN_S = 20.0  # compacting a journal and writing the summary
STARTUP_S = 15.0  # the profile child's start: imports, CUDA context, idle power
LAST_POINT_S = 15.0  # a point begun just before the pause (a big whole model on a GPU)
BUDGET_SHARE = 0.92  # of the profile's time: the rest absorbs the budget's overrun
PROFILE_ATTEMPTS = 3  # the profile run and up to two resuming reruns (a lost device, a crash)
MIN_PROFILE_S = 5.0  # less measuring time left than this: skip the profile
TERM_GRACE_S = 5.0  # a child past its time: SIGTERM, then SIGKILL after this long


def device_slug(meta: dict) -> str:
    """`datasets/<slug>` of a device from its metadata: a GPU's catalogue key, else its
    name; `cpu-<model>` for a CPU (as `profilers.device.cpu.cpu_slug`)."""
    from profilers.device.cpu import slug

    if meta.get("device_kind") == "cpu":  # the catalogue has one key for every CPU
        return "cpu-" + slug(str(meta.get("device_name") or ""))
    return slug(str(meta.get("catalogue_key") or meta.get("device_name") or "device"))


# -- the check step (runs in a child) ------------------------------------------------
def check(device: str, seconds: float = 3.0) -> dict:
    """Versions, the device's metadata, and an energy-counter / sampled-power check over
    `seconds` of a sustained matrix product."""
    import platform

    import torch

    from profilers.device import open_device
    from profilers.runner import catalogue_key

    out = {"python": platform.python_version(), "torch": torch.__version__,
           "torch_cuda": torch.version.cuda, "kernel": platform.release()}
    try:
        import pynvml

        pynvml.nvmlInit()
        text = lambda v: v.decode() if isinstance(v, bytes) else str(v)  # noqa: E731
        out["driver"] = text(pynvml.nvmlSystemGetDriverVersion())
        out["nvml"] = text(pynvml.nvmlSystemGetNVMLVersion())
        cuda = pynvml.nvmlSystemGetCudaDriverVersion()
        out["cuda_driver"] = f"{cuda // 1000}.{cuda % 1000 // 10}"
        pynvml.nvmlShutdown()
    except Exception as exc:
        out["nvml_error"] = f"{type(exc).__name__}: {exc}"
    dev = open_device(device)
    try:
        meta = dev.metadata()
        meta["catalogue_key"] = catalogue_key(dev, meta)
        out["device"] = meta
        out["slug"] = device_slug(meta)
        if device.startswith("cuda"):
            a = torch.randn(8192, 8192, device=dev.torch_device, dtype=torch.bfloat16)
            b = torch.randn(8192, 8192, device=dev.torch_device, dtype=torch.bfloat16)
        else:
            a = b = torch.randn(512, 512)
        work = lambda: a @ b  # noqa: E731
        end = time.perf_counter() + 1.0  # warm up to a steady clock and power
        while time.perf_counter() < end:
            work()
            dev.synchronize()
        n = 0
        dev.begin_window("check")
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            work()
            n += 1
            dev.synchronize()
        win = dev.end_window("check")
        out["energy"] = {
            "has_energy": dev.has_energy, "window_s": win.duration_s, "executions": n,
            "energy_j": win.energy_j, "source": win.source,
            "counter_j": win.energy_counter_j, "sampled_j": win.energy_sampled_j,
            "samples": win.n_samples, "power_w": win.power_w,
            "energy_ratio": (win.energy_counter_j / win.energy_sampled_j
                             if win.energy_counter_j and win.energy_sampled_j else None),
            "sm_clock_hz": win.state.sm_clock_hz, "temp_c": win.state.temp_c,
            "throttle_reasons": win.state.throttle_reasons}
        if dev.has_energy and n:
            try:  # a self-check: its failure must not cost the check step's versions
                out["tail_check"] = tail_check(dev, work, win.duration_s / n)
            except Exception as exc:  # noqa: BLE001
                out["tail_check"] = {"error": f"{type(exc).__name__}: {exc}"}
    finally:
        dev.close()
    return out


TAIL_CHECK_WINDOWS = 5
TAIL_CHECK_LONG_S = 4.0


def tail_check(dev, work, time_s: float, windows: int = TAIL_CHECK_WINDOWS,
               long_s: float = TAIL_CHECK_LONG_S) -> dict:
    """A self-check of the short energy windows every point gets: `work`'s energy per
    execution in `windows` windows of a point's length (`measure_energy`, the tail from
    the work's end to the counter's tick taken off) against one window of `long_s`, whose
    tail and edges weigh a few percent at most. `short_over_long` near 1: the tail pricing
    and the alignment hold; off by more than the run-to-run spread: re-price the tails
    (the rows keep `energy_tail_s`, `energy_tail_j`)."""
    import statistics

    from profilers.timer import measure_energy

    short_s = max(float(getattr(dev, "min_window_s", 0.5) or 0.5), 0.5)
    long = measure_energy(dev, work, time_s, long_s)
    short = [measure_energy(dev, work, time_s, short_s) for _ in range(windows)]
    per = [e.energy_j for e in short if e.energy_j]
    mid = statistics.median(per) if per else None
    return {
        "time_s": time_s, "long_window_s": long.window_s, "long_j": long.energy_j,
        "long_execs": long.executions, "long_source": long.source, "long_tail_s": long.tail_s,
        "short_window_s": [e.window_s for e in short], "short_j": [e.energy_j for e in short],
        "short_sources": [e.source for e in short],
        "short_tail_s": [e.tail_s for e in short], "short_tail_j": [e.tail_j for e in short],
        "short_over_long": mid / long.energy_j if mid and long.energy_j else None,
        "short_spread": (max(per) - min(per)) / mid if mid and len(per) > 1 else None}


# -- the session (parent) -------------------------------------------------------------
SERIAL_FIELDS = ("serial number", "gpu uuid", "gpu pdi", "board part number", "gpu part number",
                 "module id", "board id", "inforom image version", "minor number")


def without_serials(text: str) -> str:
    """`nvidia-smi -q` output with the fields that identify one board blanked, so the file
    can be committed beside the profile (its metadata names no serials either)."""
    out = []
    for line in text.splitlines():
        key = line.split(":", 1)[0].strip().lower()
        if ":" in line and key in SERIAL_FIELDS:
            line = line.split(":", 1)[0] + ": (removed)"
        elif "GPU-" in line and "UUID" in line:  # the summary table's `-L` style lines
            line = line.split("(UUID", 1)[0] + "(UUID removed)"
        out.append(line)
    return "\n".join(out) + ("\n" if text.endswith("\n") else "")


class Session:
    """Runs the steps in children, each bounded by what is left of the deadline."""

    def __init__(self, out: Path, device: str, deadline_s: float, tests_s: float,
                 tests: bool = True, suites: str = SUITES, after=()):
        self.out, self.device, self.tests, self.suites = out, device, tests, suites
        self.after = [Path(a).resolve() for a in after]
        self.start = time.monotonic()
        self.deadline_s, self.tests_s = deadline_s, tests_s
        self.record = {"device": device, "deadline_s": deadline_s, "steps": []}
        self.log = out / "session.log"

    def left(self) -> float:
        return self.deadline_s - (time.monotonic() - self.start)

    def say(self, text: str) -> None:
        line = f"[session {time.monotonic() - self.start:6.1f}s] {text}"
        print(line, flush=True)
        with open(self.log, "a") as fh:
            fh.write(line + "\n")

    def save(self) -> None:
        (self.out / "session.json").write_text(json.dumps(self.record, indent=1, default=str))

    def child(self, name: str, args: list[str], timeout: float, capture: Path | None = None):
        """Run `python args...` from the repository root; (returncode or None on timeout,
        output). Its output goes to the log (and to `capture`)."""
        env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
                   PYTHONUNBUFFERED="1")
        self.say(f"{name}: start (limit {timeout:.0f} s)")
        t0 = time.monotonic()
        # output to a file, not a pipe: waiting on a pipe waits for every process holding
        # it (a grandchild), where waiting on the child ends when it does
        with tempfile.TemporaryFile() as fh:
            proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, stdout=fh,
                                    stderr=subprocess.STDOUT)
            try:
                rc = proc.wait(timeout=max(1.0, timeout))
            except subprocess.TimeoutExpired:
                rc = None
                proc.terminate()  # SIGTERM first: a profile run journals its point abandoned
                try:
                    proc.wait(timeout=TERM_GRACE_S)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            except BaseException:  # the session itself interrupted: no orphaned child
                proc.kill()
                proc.wait()
                raise
            fh.seek(0)
            text = fh.read().decode("utf-8", errors="replace")  # a killed child may cut a char
        with open(self.log, "a") as fh:
            fh.write(text)
        if capture is not None:
            capture.write_text(text)
        step = {"name": name, "returncode": rc, "seconds": round(time.monotonic() - t0, 1),
                "timed_out": rc is None}
        self.record["steps"].append(step)
        self.say(f"{name}: {'timed out' if rc is None else f'exit {rc}'} after "
                 f"{step['seconds']} s")
        self.save()
        return rc, text, step

    def nvidia_smi(self) -> None:
        if not self.device.startswith("cuda"):
            return
        parts = []
        for args in (["nvidia-smi"], ["nvidia-smi", "-q"]):
            try:
                p = subprocess.run(args, capture_output=True, text=True, timeout=30)
                parts.append(f"$ {' '.join(args)}\n{p.stdout}{p.stderr}")
            except Exception as exc:
                parts.append(f"$ {' '.join(args)}\nfailed: {type(exc).__name__}: {exc}")
        (self.out / "nvidia-smi.txt").write_text(without_serials("\n".join(parts)))

    def run(self) -> dict:
        self.out.mkdir(parents=True, exist_ok=True)
        self.save()
        self.nvidia_smi()
        # 1. check
        rc, text, step = self.child("check", ["-m", "profilers.session", "--step", "check",
                                              "--device", self.device,
                                              "--out", str(self.out)], min(90.0, self.left()))
        found = self.out / "check.json"
        if found.is_file():
            self.record["check"] = json.loads(found.read_text())
            found.unlink()  # folded into session.json: one file fewer to bring back
        if rc != 0:
            tail = text.strip().splitlines()
            step["error"] = tail[-1] if tail else "no output"
            self.say(f"check: failed: {step['error']}")  # the profile is tried all the same
        energy = (self.record.get("check") or {}).get("energy") or {}
        tails = (self.record.get("check") or {}).get("tail_check") or {}
        if energy.get("has_energy"):
            ratio, short = energy.get("energy_ratio"), tails.get("short_over_long")
            self.say(f"check: energy {energy.get('source')}, counter / sampled "
                     f"{ratio if ratio is None else round(ratio, 3)}, short / long windows "
                     f"{short if short is None else round(short, 3)}")
        slug = (self.record.get("check") or {}).get("slug") or self.device.replace(":", "")
        # 2. profile
        prof = self.out / slug
        span = self.left() - (self.tests_s if self.tests else 0.0) - FINISH_MARGIN_S
        stop = span - STARTUP_S - LAST_POINT_S  # measuring time: pause past it
        if stop > MIN_PROFILE_S:
            budget = f"{BUDGET_SHARE * stop:.0f}s"  # the same on a rerun: it keys the profile
            end = time.monotonic() + span
            for attempt in range(PROFILE_ATTEMPTS):  # reruns resume (the journal)
                rc, text, step = self.child(
                    "profile", ["-m", "profilers", "--device", self.device, "--suite",
                                self.suites, "--budget", budget,
                                "--stop-after", f"{stop:.0f}s", "--out", str(prof),
                                "--progress", "plain"]
                    + [a for prev in self.after for a in ("--after", str(prev))], span)
                span = end - time.monotonic()
                stop = span - STARTUP_S - LAST_POINT_S
                # a lost device (rc 2, its point journalled as failed) or a crash (a signal):
                # a fresh process resumes after the last journalled point
                if (rc in (0, None) or stop <= MIN_PROFILE_S or attempt + 1 == PROFILE_ATTEMPTS
                        or (rc > 0 and "cannot go on" not in text)):
                    break
                self.say(f"profile: exit {rc}; resuming, {stop:.0f} s left to measure")
            self.record["profile"] = self.finish_profile(prof)
        else:
            why = (f"{max(stop, 0.0):.0f} s left to measure, under the {MIN_PROFILE_S:.0f} s "
                   "a profile needs")
            self.say(f"profile: skipped: {why}")
            self.record["profile"] = {"skipped": why}
        self.save()
        # 3. tests
        if self.tests:
            limit = self.left() - 5.0
            if limit > 15:
                rc, text, step = self.child(
                    "tests", ["-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider",
                              "tests/"], limit, capture=self.out / "gpu-tests.txt")
                lines = [ln for ln in text.strip().splitlines() if ln.strip()]
                self.record["tests"] = lines[-1] if lines else "no output"
            else:
                self.record["tests"] = f"skipped: {limit:.0f} s left"
        self.record["seconds"] = round(time.monotonic() - self.start, 1)
        self.save()
        prof = self.record.get("profile") or {}
        self.say(f"done in {self.record['seconds']} s: profile {prof.get('dir')} "
                 f"{'complete' if prof.get('complete') else 'NOT complete'}"
                 f"{' (stopped early)' if prof.get('stopped_early') else ''}, points "
                 f"{prof.get('points')}, failed {prof.get('failed')}, with energy "
                 f"{prof.get('energy_points')}{'; ' + prof['error'] if prof.get('error') else ''}"
                 f"; tests: {self.record.get('tests')}")
        return self.record

    def finish_profile(self, prof: Path) -> dict:
        """The profile's state; a run cut short is finished from its journal."""
        from profilers.runner import finish_profile
        from profilers.schema import read_metadata, read_profile

        if not (prof / "metadata.json").is_file():
            return {"dir": prof.name, "error": "no profile written"}
        try:
            meta = read_metadata(prof)
            if not meta.get("complete"):
                finish_profile(prof)
                self.say("profile: finished from its journal (cut short)")
            meta = read_metadata(prof)
            frame = read_profile(prof)
            ok = frame["status"] == "ok"
            return {"dir": prof.name, "complete": bool(meta.get("complete")),
                    "stopped_early": bool(meta.get("stopped_early")),
                    "points": {s: int(n) for s, n in frame.groupby("suite").size().items()},
                    "failed": int((~ok).sum()),
                    "energy_points": int(frame.loc[ok, "energy_j"].notna().sum()),
                    "errors": sorted(set(frame.loc[~ok, "error"].astype(str)))[:10],
                    "suite_state": meta.get("suite_state"), "repeat_bands": meta.get("repeat_bands")}
        except Exception as exc:
            return {"dir": prof.name, "error": f"{type(exc).__name__}: {exc}"}


def main(argv=None) -> int:
    from profilers.budget import join_duration_values, parse_duration

    parser = argparse.ArgumentParser(prog="python -m profilers.session",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="folder for everything measured ($OUT)")
    parser.add_argument("--device", default="cuda:0", help="cuda:N (default cuda:0) or cpu")
    parser.add_argument("--deadline", default="9m",
                        help="the whole session, e.g. 9m (default): leave the lease's margin")
    parser.add_argument("--tests-time", default="100s",
                        help="kept for the gpu tests after the profile (default 100s)")
    parser.add_argument("--no-tests", action="store_true", help="skip the gpu tests")
    parser.add_argument("--suite", default=SUITES, help=f"suites to profile (default {SUITES})")
    parser.add_argument("--after", action="append", default=[], metavar="DIR",
                        help="an earlier profile of this device (e.g. datasets/h200): "
                             "measure past its points")
    parser.add_argument("--step", choices=("check",), help=argparse.SUPPRESS)
    args = parser.parse_args(join_duration_values(sys.argv[1:] if argv is None else list(argv)))
    out = Path(args.out)
    try:
        if args.step == "check":
            out.mkdir(parents=True, exist_ok=True)
            (out / "check.json").write_text(json.dumps(check(args.device), indent=1, default=str))
            return 0
        if out.exists() and not out.is_dir():
            raise PerfmodelError(f"--out {out} exists and is not a directory")
        record = Session(out, args.device, parse_duration(args.deadline, "--deadline"),
                         parse_duration(args.tests_time, "--tests-time"),
                         tests=not args.no_tests, suites=args.suite, after=args.after).run()
        # nothing measured (no device, no time, every point failed): not a success
        prof = record.get("profile") or {}
        measured = sum((prof.get("points") or {}).values()) - int(prof.get("failed") or 0)
        return 0 if measured > 0 else 1
    except PerfmodelError as exc:
        print(f"profilers.session: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
