"""The repeat pass: how far a point's median moves when it is measured again later.

A point's samples are taken within a fraction of a second, so their interquartile range
misses what drifts over minutes (clock and turbo state, neighbours on a shared machine,
thermal state). Each suite therefore times some of its points again as it goes, with a
share of its budget (`Suite.repeat_fraction`: `REPEAT_FRACTION`; more for the
`validation` suite, whose whole models are the ground truth of model-level predictions),
up to `Suite.max_repeats` times each: after each point, while the repeats have had less
than their share of the time so far, a point from the first half of the points so far is
timed again, the one repeated fewest times (then the earliest); what is left of the share
at the end goes the same way over all points. Repeats thus span the run and lags from
seconds to its whole length. From the relative differences between each repeat's median
and the first median each suite gets its band: the `BAND_COVERAGE` quantile of
|repeat - first| / first.
Every ok row then reports `time_noise_s`, the half-width of the band in which a later
measurement of the point is expected to fall `BAND_COVERAGE` of the time: the suite's
band times `time_s`, and never less than the point's own `time_iqr_s`.
`time_s` itself stays the first measurement's median; `time_repeat_s` is the median of
the repeats, `repeats` their number, and `time_center_s` the median of all of the
point's measurements (first and repeats): its best estimate across the run.
"""
from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd

from profilers.device import Device
from profilers.measure import DeviceLost, device_alive, error_text, is_sticky
from profilers.points import Point
from profilers.canary import timed
from profilers.timer import Timer

REPEAT_FRACTION = 0.15  # of each suite's budget, reserved for the repeat pass
BAND_COVERAGE = 0.9  # a re-measurement falls inside time_s +- time_noise_s this often
MIN_REPEATS = 5  # fewer repeats in a suite: use the band pooled over all suites
MAX_REPEATS = 1  # repeat measurements per point (Suite.max_repeats)


def measure_repeat(suite, point: Point, device: Device, *, flush_l2: bool = False,
                   canary=None) -> dict:
    """A repeat record: the point timed again (no memory or energy), or its failure."""
    start = time.perf_counter()
    rec = {"kind": "repeat", "point_id": point.id, "suite": point.suite}
    workload = None
    try:
        workload = suite.build(point, device)
        with workload.context():
            timer = Timer(device, budget_s=suite.timing_budget_s(device), flush_l2=flush_l2)
            timing, speed = timed(timer, workload.run, canary)
        rec.update(time_s=timing.median_s, time_iqr_s=timing.iqr_s, reps=timing.reps,
                   speed_ratio=speed)
    except Exception as exc:
        rec.update(time_s=None, error=error_text(exc))
        failed, sticky = True, is_sticky(exc)  # flags only (the frames hold the workload)
    else:
        failed = sticky = False
    finally:
        del workload
    lost = failed and device.kind == "cuda" and (sticky or not device_alive(device))
    rec["wall_s"] = time.perf_counter() - start
    if lost:
        raise DeviceLost(rec)
    return rec


def repeat_bands(frame: pd.DataFrame, repeats: list[dict]) -> dict[str, dict]:
    """Per suite: repeat measurements and the band (BAND_COVERAGE quantile of the relative
    difference between a repeat's and the first median), from the repeat records (each
    repeat of a point counts)."""
    t = pd.to_numeric(frame["time_s"], errors="coerce")
    first = pd.Series(t.to_numpy(), index=frame["point_id"])
    ok_ids = set(frame.loc[(frame["status"] == "ok") & (t > 0), "point_id"])
    suite_of = pd.Series(frame["suite"].to_numpy(), index=frame["point_id"])
    pairs = [(r["point_id"], float(r["time_s"])) for r in repeats
             if r.get("time_s") is not None and float(r["time_s"]) > 0]
    pairs = [(pid, r) for pid, r in pairs if pid in ok_ids]
    rel = pd.Series([abs(r - first[pid]) / first[pid] for pid, r in pairs], dtype=float)
    suites = pd.Series([suite_of[pid] for pid, _ in pairs], dtype=object)
    out: dict[str, dict] = {}
    pooled = float(np.quantile(rel, BAND_COVERAGE)) if len(rel) >= MIN_REPEATS else None
    for name in sorted(set(frame["suite"].dropna())):
        r = rel[(suites == name).to_numpy()] if len(rel) else rel
        own = float(np.quantile(r, BAND_COVERAGE)) if len(r) >= MIN_REPEATS else None
        band = own if own is not None else pooled
        out[name] = {"repeated": int(len(r)), "band": band,
                     "median_rel_diff": float(r.median()) if len(r) else None,
                     "pooled": own is None and band is not None}
    return out


def add_noise(frame: pd.DataFrame, repeats: list[dict]) -> tuple[pd.DataFrame, dict]:
    """`frame` with `time_repeat_s`, `repeats`, `time_center_s` (from the repeat records)
    and `time_noise_s` filled in, and the per-suite bands for the metadata."""
    frame = frame.copy()
    t = pd.to_numeric(frame["time_s"], errors="coerce")
    times: dict[str, list[float]] = {}
    for r in repeats:
        if r.get("time_s") is not None:
            times.setdefault(r["point_id"], []).append(float(r["time_s"]))
    if times:
        med = frame["point_id"].map({k: float(np.median(v)) for k, v in times.items()})
        have = med.notna()
        frame.loc[have, "time_repeat_s"] = med[have].astype(float)
    count = frame["point_id"].map({k: len(v) for k, v in times.items()}).fillna(0)
    frame["repeats"] = count.astype("Int64").where(frame["status"] == "ok")
    center = [float(np.median([ti] + times.get(pid, []))) if ti == ti else np.nan
              for pid, ti in zip(frame["point_id"], t)]
    frame["time_center_s"] = pd.Series(center, index=frame.index, dtype="float64").where(
        frame["status"] == "ok")
    bands = repeat_bands(frame, repeats)
    iqr = pd.to_numeric(frame["time_iqr_s"], errors="coerce").fillna(0.0)
    band = frame["suite"].map({k: v["band"] for k, v in bands.items()}).astype(float)
    noise = np.maximum(band * t, iqr)
    frame["time_noise_s"] = noise.where((frame["status"] == "ok") & band.notna() & t.notna())
    frame["time_noise_s"] = frame["time_noise_s"].astype("float64")
    return frame, bands


def repeat_budget(budget_s: float, fraction: float = REPEAT_FRACTION) -> float:
    """Seconds of a suite's budget held back for its repeat pass."""
    return fraction * budget_s if math.isfinite(budget_s) else 0.0
