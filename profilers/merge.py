"""Pool several complete profiles of one device into one (`profile merge A B --out C`).

On a shared machine one run's time for a point moves with the neighbours of the minutes it
was measured in: on a 2-vCPU cloud VM (Intel Xeon, KVM) a whole model's training step was
25 % slower in one 4-minute window than in the one before it, and a block's median of five
measurements in one run lay 14 % above that of a later run while its neighbours agreed.
Runs made at different times see different spells; pooling them shrinks what any single
spell does to a point.

A point measured in several runs gets:
- `time_center_s` and `time_repeat_s`: from two runs, the geometric mean of their values,
  each run weighted by its measurements of the point (1 + `repeats`); from three or more,
  the median of the runs' values (one run caught in a slow spell no longer moves it);
- `repeats`: every measurement after the first, over all runs;
- `time_noise_s`: the runs' mean (the band of one re-measurement does not shrink; at least
  `time_iqr_s`); the energy columns: the windows of the runs that measured the point's
  energy the way the first did (one `energy_source`) pooled as one window (`_pooled_energy`);
- every other column (`time_s`, the first measurement, included) from the first run that
  measured it `ok`.
A point only some runs measured is kept as that run measured it. The metadata is the first
run's with the sources listed under `merged_from`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from perfmodel.errors import PerfmodelError
from profilers.schema import (SCHEMA_VERSION, read_metadata, read_profile, write_measurements,
                              write_metadata)

SAME_DEVICE = ("device_kind", "device_name", "catalogue_key", "torch_threads")


def device_difference(theirs: dict, ours: dict) -> str | None:
    """How a profile's metadata (`theirs`) and this run's (`ours`) say they are of different
    devices (`SAME_DEVICE`: kind, name, catalogue entry, torch threads), or None."""
    for key in SAME_DEVICE:
        if theirs.get(key) != ours.get(key):
            return f"{key} {theirs.get(key)!r} there, {ours.get(key)!r} here"
    return None


@dataclass
class Merged:
    """The pooled rows, how many runs went in, and how many points more than one measured."""

    frame: pd.DataFrame
    runs: int
    pooled_points: int


def merge_profiles(sources: list, out) -> Merged:
    """Write the pooled profile of `sources` (complete profiles of one device) to `out`."""
    if len(sources) < 2:
        raise PerfmodelError("merge needs at least two profile directories")
    out = Path(out)
    metas, frames = [], []
    for src in sources:
        meta = read_metadata(src)
        if not meta.get("complete"):
            raise PerfmodelError(f"{src} is not complete: finish it (the same command again) "
                                 "before merging")
        diff = device_difference(meta, metas[0]) if metas else None
        if diff:
            where = diff.replace(" there,", f" in {src},").replace(" here", f" in {sources[0]}")
            raise PerfmodelError(f"not the same device: {where}")
        if Path(src).resolve() == out.resolve():
            raise PerfmodelError(f"--out {out} is one of the sources")
        same = [s for s in sources[:len(metas)] if Path(s).resolve() == Path(src).resolve()]
        if same:
            raise PerfmodelError(f"{src} is given twice (as {same[0]})")
        seen = {_run_key(run) for m in metas for run in _runs_of(m)}
        twice = [r for r in _runs_of(meta) if _run_key(r) in seen]
        if twice:
            raise PerfmodelError(f"{src}: its run of {twice[0].get('created')} is already in "
                                 "another source (a merge and one of its own sources)")
        f = read_profile(src)
        frames.append(f[f["status"] == "ok"].assign(_run=len(frames)))
        metas.append(meta)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise PerfmodelError(f"{out} exists and is not an empty directory")
    merged, runs = pool(pd.concat(frames, ignore_index=True))
    result = Merged(merged, len(sources), int((runs > 1).sum()))
    meta = _metadata(sources, metas, result)  # before anything is written
    out.mkdir(parents=True, exist_ok=True)
    write_measurements(merged, out)
    write_metadata(meta, out)
    return result


def _run_key(run: dict) -> tuple:
    """What tells one run from another: its `run_id`, else (older profiles) its start and
    end stamps."""
    return (run["run_id"],) if run.get("run_id") else (run.get("created"), run.get("finished"))


def _runs_of(meta: dict) -> list[dict]:
    """The runs a profile holds: the ones it was merged from, else itself."""
    merged = meta.get("merged_from")
    return merged if isinstance(merged, list) and merged else [meta]


def pool(rows: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """One row per point id from the `ok` rows of several runs (column `_run`), and the
    number of runs that measured each point."""
    rows = rows.sort_values(["_run"], kind="stable")
    first = rows.drop_duplicates("point_id", keep="first").set_index("point_id")
    n = (1 + pd.to_numeric(rows["repeats"], errors="coerce").fillna(0)).astype(float)
    g = rows.assign(_w=n).groupby("point_id", sort=False)

    def center(col: str) -> pd.Series:
        v = pd.to_numeric(rows[col], errors="coerce").astype(float)
        ok = v > 0
        logs = np.log(v.where(ok))
        lw = (logs * n).where(ok)
        num = lw.groupby(rows["point_id"]).sum(min_count=1)
        den = n.where(ok).groupby(rows["point_id"]).sum(min_count=1)
        weighted = np.exp(num / den)
        count = ok.groupby(rows["point_id"]).sum()
        median = np.exp(logs.groupby(rows["point_id"]).median())
        return median.where(count >= 3, weighted)

    def mean(col: str) -> pd.Series:
        return pd.to_numeric(rows[col], errors="coerce").astype(float).groupby(
            rows["point_id"]).mean()

    out = first.copy()
    runs = g.size()
    for col in ("time_center_s", "time_repeat_s"):
        pooled = center(col).reindex(out.index)
        out[col] = pooled.where(pooled.notna(), out[col])
    out["repeats"] = (g["_w"].sum() - 1).reindex(out.index).round().astype("Int64")
    noise = mean("time_noise_s").reindex(out.index)
    out["time_noise_s"] = np.maximum(noise, pd.to_numeric(out["time_iqr_s"], errors="coerce"))
    for col, v in _pooled_energy(rows).items():
        out[col] = v.reindex(out.index)
    out = out.reset_index().drop(columns=["_run"])
    return out.sort_values(["suite", "seq"], kind="stable").reset_index(drop=True), runs


ENERGY_WINDOW = ("energy_window_s", "energy_execs", "energy_tail_s", "energy_tail_j")


def _pooled_energy(rows: pd.DataFrame) -> dict[str, pd.Series]:
    """The energy columns of each point over the runs whose window measured it the way the
    first such run did (one `energy_source`): the windows pooled as one. `energy_j` and
    `energy_sampled_j` are the energy over all those executions (each run weighted by its
    `energy_execs`), `power_w` the windows' energy over their time, and the window columns
    (`ENERGY_WINDOW`) the runs' sums, so every column describes the same pooled window."""
    num = {c: pd.to_numeric(rows[c], errors="coerce").astype(float) if c in rows.columns
           else pd.Series(np.nan, index=rows.index) for c in
           ("energy_j", "power_w", "energy_sampled_j") + ENERGY_WINDOW}
    src = (rows["energy_source"].astype("string").fillna("") if "energy_source" in rows.columns
           else pd.Series("", index=rows.index))
    has = num["energy_j"].notna()
    first = src.where(has).groupby(rows["point_id"]).transform("first")
    use = has & (src == first)
    execs = num["energy_execs"].where(num["energy_execs"] > 0).fillna(1.0).where(use)
    secs = num["energy_window_s"].where(num["energy_window_s"] > 0)
    by = rows["point_id"]

    def weighted(v: pd.Series, w: pd.Series) -> pd.Series:
        ok = use & v.notna() & w.notna()
        return ((v * w).where(ok).groupby(by).sum(min_count=1)
                / w.where(ok).groupby(by).sum(min_count=1))

    out = {"energy_j": weighted(num["energy_j"], execs),
           "energy_sampled_j": weighted(num["energy_sampled_j"], execs)}
    # power: the windows' energy over their seconds where every pooled run gave its window's
    # length, else the runs' mean
    has_secs = (secs.notna() | ~use).groupby(by).all()
    timed = weighted(num["power_w"], secs)
    mean_w = num["power_w"].where(use).groupby(by).mean()
    out["power_w"] = timed.where(has_secs & timed.notna(), mean_w)
    for c in ENERGY_WINDOW:
        out[c] = num[c].where(use).groupby(by).sum(min_count=1)
    out["energy_source"] = first.groupby(by).first().replace("", pd.NA)
    return {c: v for c, v in out.items() if c in rows.columns}


def _pooled_band(bands: list[dict]) -> dict:
    """One suite's repeat band over several runs: the runs' bands averaged, a source that is
    itself a merge weighing as the runs it pooled; a run that repeated nothing (its band
    is None: a grid-only run) adds no band."""
    runs = [int(b.get("runs", 1)) for b in bands]
    timed = [(b, w) for b, w in zip(bands, runs) if b.get("band") is not None]
    # `runs`: the runs the band is the mean of (a grid-only run adds none), so a later merge
    # weighs it the same whichever order the runs were merged in
    weight = sum(w for _, w in timed) if timed else sum(runs)

    def average(key: str):
        vals = [(float(b[key]), w) for b, w in timed if b.get(key) is not None]
        if not vals:
            return None
        return float(np.average([v for v, _ in vals], weights=[w for _, w in vals]))

    return {"repeated": int(sum(b.get("repeated", 0) or 0 for b in bands)),
            "band": average("band"), "median_rel_diff": average("median_rel_diff"),
            "pooled": bool(any(b.get("pooled") for b in bands)), "runs": int(weight)}


def _metadata(sources, metas: list[dict], merged: Merged) -> dict:
    meta = dict(metas[0])
    meta.pop("run_id", None)  # a merge is its runs (`merged_from`), not the first of them
    meta["schema_version"] = SCHEMA_VERSION  # the rows are written in this version's columns
    meta["created"] = min(str(m.get("created", "")) for m in metas)
    meta["finished"] = max(str(m.get("finished", "")) for m in metas)
    meta["suites"] = sorted({s for m in metas for s in m.get("suites", [])})
    # a source that is itself a merge contributes its own runs, so the history stays whole
    meta["merged_from"] = [
        run for src, m in zip(sources, metas) for run in (m.get("merged_from") or [
            {"name": Path(src).name, "run_id": m.get("run_id"), "created": m.get("created"),
             "finished": m.get("finished"), "suites": m.get("suites"),
             "torch": m.get("torch"), "flush_denormal": m.get("flush_denormal"),
             "cpu_allocator": m.get("cpu_allocator")}])]
    allocators = [run.get("cpu_allocator") for run in meta["merged_from"]]
    if any(a != allocators[0] for a in allocators):  # the runs say which each used
        meta.pop("cpu_allocator", None)
        meta["notes"] = sorted(set(meta.get("notes", [])) | {
            "runs made with different C allocator settings: see merged_from"})
    bands: dict = {}
    for m in metas:
        for suite, b in (m.get("repeat_bands") or {}).items():
            bands.setdefault(suite, []).append(b)
    meta["repeat_bands"] = {suite: _pooled_band(bs) for suite, bs in bands.items()}
    meta.pop("suite_state", None)
    meta["complete"] = True
    # a source's own merge note is replaced by one over every run. A merged source keeps
    # one row per point, so which of its points several runs measured is not known here:
    # the note gives this merge's pooled points and the earlier merges' apart (a point
    # may be in both)
    earlier = 0
    notes = []
    for m in [meta] + metas[1:]:  # the first source's notes, with any allocator note
        for note in m.get("notes", []):
            hit = re.match(r"merged from \d+ runs: (\d+) points", note)
            if hit:  # and the pooled points of the merges before that one, if it says so
                before = re.search(r", (\d+) pooled by the earlier merges", note)
                earlier += int(hit[1]) + (int(before[1]) if before else 0)
            elif note not in notes:
                notes.append(note)
    runs = len(meta["merged_from"])
    if runs == len(metas):
        notes.append(f"merged from {runs} runs: {merged.pooled_points} points measured in "
                     "more than one")
    else:
        notes.append(f"merged from {runs} runs: {merged.pooled_points} points measured in "
                     f"more than one of this merge's {len(metas)} sources, {earlier} pooled "
                     "by the earlier merges (a point may be in both)")
    meta["notes"] = notes
    return meta
