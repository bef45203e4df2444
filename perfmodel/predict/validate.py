"""Validate whole-model predictions against measured whole models (`validation` suite).

Each profile under `datasets/` (or the one given) is its own backend: per-op predictor from
its per-op suites, calibration on its `blocks` suite. Its `validation` rows (whole-model
`train_step` / `inference` of scaled candidates) fit the whole-model scale (per phase,
dtype and op mix: `perfmodel.predict.assembly`) and the whole-model interval
(`perfmodel.predict.interval`), in two folds (unscaled and x2 models; x4 candidates): every
row is predicted with the scale and interval fitted on the other fold, so no row is scored
by a fit that saw it. A held-out family (`targets.HELD_OUT_MODELS`) is in neither fold and
is scored with the base fold's fits; the summary lines report it apart.

The measured time of a model is the median of all its measurements where the profile's
repeat pass timed it again (`measured.center_time`).

`ValidationReport.table`: one row per measured candidate: measured and predicted time (with
the interval and whether it covers the measurement), relative error, measured vs predicted
activation bytes and energy where measured. `ValidationReport.summary`: per (profile,
model, phase, batch, dtype) group: candidates, median |error|, Spearman rank correlation
of predicted vs measured time across the candidates, top-1 agreement (the fastest
candidate predicted is the fastest measured) and interval coverage.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from perfmodel.errors import PerfmodelError
from perfmodel.learn.schema import read_metadata
from perfmodel.predict.assembly import (FOLDS, fold_of, model_args, other_fold, row_factor,
                                        row_fold)
from perfmodel.predict.counts import fuses_kernels
from perfmodel.predict.device import (cached_assembly, cached_interval, datasets_dir,
                                      from_profile,
                                      is_profile, profile_digest, read_profile_rows)
from perfmodel.predict.measured import center_time
from perfmodel.predict.model import predict_model
from perfmodel.predict.targets import HELD_OUT_MODELS

GROUP = ["profile", "model", "phase", "batch", "dtype"]
BLOCK_GROUPS = ("res_bottleneck_block", "transformer_block", "mbconv")


def spearman(a, b) -> float:
    """Spearman rank correlation (average ranks for ties); NaN below 3 points."""
    a, b = pd.Series(np.asarray(a, float)), pd.Series(np.asarray(b, float))
    if len(a) < 3:
        return float("nan")
    return float(a.rank().corr(b.rank()))


def validation_profiles(profile=None) -> list[Path]:
    """The profile given, or every profile under datasets/ with validation rows."""
    if profile is not None:
        p = Path(profile)
        if not p.is_dir() or not is_profile(p):
            raise PerfmodelError(f"{p}: not a profile directory (no metadata.json)")
        return [p]
    root = datasets_dir()
    found = [m.parent for m in sorted(root.glob("*/metadata.json"))
             if (m.parent / "measurements.parquet").is_file()] if root.is_dir() else []
    return found


@dataclass
class ValidationReport:
    """Per-candidate error table and per-group summary."""

    table: pd.DataFrame
    summary: pd.DataFrame
    backends: dict
    resolutions: dict = dataclasses.field(default_factory=dict)  # profile name -> RankResolution

    def ties(self) -> pd.DataFrame:
        """The rank resolution (fitted on each profile's base fold, as `rank` uses it)
        scored on the x4 candidates: pairs predicted apart, of those ordered as measured,
        and whether each ranking's measured fastest is tied with its predicted fastest."""
        from perfmodel.predict.resolution import score_ties

        out = []
        t = self.table
        if t.empty:
            return pd.DataFrame()
        x4 = t[(t["strategy"].astype(str) != "") & (t["factor"].map(fold_of) == "x4")
               & ~t["model"].isin(HELD_OUT_MODELS)]
        for (prof, phase), g in x4.groupby(["profile", "phase"], sort=True):
            res = self.resolutions.get(prof)
            gap = res.gap(phase == "train_step") if res is not None else None
            if gap is None:
                continue
            sc = score_ties(g, gap)  # one ranking per (model, dtype, batch, factor), sorted
            names = [k[0] for k in g.groupby(["model", "dtype", "batch", "factor"],
                                             sort=True).groups]
            out.append({"profile": prof, "phase": phase, "tie_gap": float(np.expm1(gap)),
                        "pairs": sc.pairs, "apart": sc.resolved, "ordered": sc.right,
                        "fastest_tied": sc.fastest_tied,
                        "leader_ties": "; ".join(f"{n}: {','.join(x)}"
                                                 for n, x in zip(names, sc.leader_ties))})
        return pd.DataFrame(out)

    def format(self) -> str:
        """The error table and the summary as text, one section per profile."""
        if self.table.empty:
            return "no validation measurements found"
        t = self.table
        profiles = list(dict.fromkeys(t["profile"].astype(str)))
        descs = {Path(str(k)).name: v for k, v in self.backends.items()}
        ties = self.ties()
        lines = []
        for prof in profiles:
            if lines:
                lines.append("")
            desc = descs.get(prof) or (next(iter(descs.values())) if len(descs) == 1 else "")
            lines.append(f"profile {prof}: {desc}".rstrip(": "))
            lines += self._format_one(t[t["profile"].astype(str) == prof],
                                      self.summary[self.summary["profile"].astype(str) == prof]
                                      if "profile" in self.summary.columns else self.summary,
                                      ties[ties["profile"] == prof] if len(ties) else ties)
        return "\n".join(lines)

    @staticmethod
    def _format_one(t: pd.DataFrame, summary: pd.DataFrame, ties: pd.DataFrame) -> list[str]:
        lines = []
        if "overrides" in t.columns:  # the base parameters the suite changed, per model
            given = t[t["overrides"].astype(str) != ""].drop_duplicates("model")
            for r in given.itertuples(index=False):
                kv = ", ".join(f"{k}={v}" for k, v in json.loads(r.overrides).items())
                lines.append(f"  {r.model} as measured: {kv}")
            if len(given):
                lines.insert(0, "the suite's models, where it changed their base parameters "
                                "(`params.overrides`):")
        head = (f"{'model':<14} {'phase':<10} {'batch':>5} {'factor':>6} {'strategy':<12} "
                f"{'measured s':>11} {'predicted s [interval]':>32} {'error':>8} {'in':>3} "
                f"{'blocks measured':>15}")
        lines.append(head)
        for r in t.itertuples(index=False):
            iv = (f"[{r.pred_lo_s:.4g}, "
                  f"{f'{r.pred_hi_s:.4g}' if np.isfinite(r.pred_hi_s) else '-'}]"
                  if np.isfinite(r.pred_lo_s) else "")  # "-": no upper bound (a roofline's)
            lines.append(f"{r.model:<14} {r.phase:<10} {r.batch:>5} {r.factor:>6g} "
                         f"{r.strategy or 'base':<12} {r.measured_s:>11.4g} "
                         f"{f'{r.pred_s:.4g} {iv}':>32} {100 * r.error:>+7.1f}% "
                         f"{_yes_no(r.in_interval):>3} "
                         f"{f'{r.measured_parts}/{r.block_parts}':>15}")
        lines.append("")
        lines.append(f"{'model':<14} {'phase':<10} {'batch':>5} {'dtype':<9} {'n':>3} "
                     f"{'median |err|':>12} {'Spearman':>9} {'top-1':>6} {'coverage':>9}")
        for r in summary.itertuples(index=False):
            lines.append(f"{r.model:<14} {r.phase:<10} {r.batch:>5} {r.dtype:<9} "
                         f"{r.candidates:>3} {100 * r.median_abs_error:>11.1f}% "
                         f"{r.spearman:>9.3f} {'yes' if r.top1 else 'no':>6} "
                         f"{_percent(r.coverage):>9}")
        if len(ties):
            lines.append("ties on the x4 candidates (the rank resolution fitted on the base fold, "
                         "as `perfmodel rank` uses it):")
            for r in ties.itertuples(index=False):
                lines.append(f"  {r.profile} {r.phase}: within {100 * r.tie_gap:.1f}% tied; "
                             f"pairs predicted apart {r.apart}/{r.pairs}, ordered as measured "
                             f"{r.ordered}/{r.apart}; measured fastest tied with the predicted "
                             f"fastest: {'yes' if r.fastest_tied else 'no'} "
                             f"({r.leader_ties})")
        held = t["model"].isin(HELD_OUT_MODELS)
        for name, part in (("all", t[~held]), ("held-out families", t[held])):
            if len(part):
                err = np.abs(part["error"].to_numpy())
                lines.append(f"{name}: {len(part)} measurements, median |error| "
                             f"{100 * np.median(err):.1f}%, interval coverage "
                             f"{_percent(part['in_interval'].mean())}")
        a = t.dropna(subset=["measured_act_bytes"])
        a = a[a["measured_act_bytes"] > 0]
        if len(a):
            ae = np.abs(a["pred_act_bytes"] / a["measured_act_bytes"] - 1)
            lines.append(f"saved activations (bytes for backward): median |error| "
                         f"{100 * np.median(ae):.2f}%, max {100 * np.max(ae):.2f}% over "
                         f"{len(a)} models")
        e = t.dropna(subset=["measured_energy_j", "pred_energy_j"])
        if len(e):
            ee = np.abs(e["pred_energy_j"] / e["measured_energy_j"] - 1)
            lines.append(f"energy: median |error| {100 * np.median(ee):.1f}% over {len(e)} rows")
        return lines

    def to_records(self) -> dict:
        clean = lambda df: json.loads(df.to_json(orient="records"))  # noqa: E731
        return {"table": clean(self.table), "summary": clean(self.summary),
                "ties": clean(self.ties()), "backends": self.backends}


def validate(profile=None, *, phases=("train_step", "inference"),
             models: list[str] | None = None, measured_blocks: bool = True,
             assembly: bool = True, against=None) -> ValidationReport:
    """Predict every measured whole model of the profile(s) and compare.

    `measured_blocks=False` ignores the profile's measurement of each part itself (every
    part is its calibrated sum of ops; a transformer block, and a CNN block's forward pass,
    still takes the residual of its measured neighbours of other shapes, `neighbours.py`):
    how well the predictor composes parts it never saw whole.
    The whole-model scale (`perfmodel.predict.assembly`) and interval are fitted on the
    validation suite itself, one fold at a time: each row is predicted with the fits of the
    other fold, never on itself (a held-out family with the base fold's). `assembly=False`
    predicts without any scale, and with the per-part interval.

    `against`: another run of the same device (a profile directory with validation rows,
    e.g. the same suite re-measured another day, or on the user's own machine of that
    model). Its measured models are predicted by `profile` as shipped - the scale and
    interval fitted on `profile`'s own base fold, as `step` and `rank` use them - so every
    row is one no fit saw."""
    if against is not None:
        return _validate_against(profile, against, phases, models, assembly, measured_blocks)
    rows, backends, resolutions = [], {}, {}
    for prof in validation_profiles(profile):
        data = read_profile_rows(prof)
        all_val = data[data["suite"].astype(str) == "validation"]
        val = all_val[all_val["phase"].astype(str).isin(phases)]
        if models:
            val = val[val["op"].astype(str).isin(models)]
        if val.empty:
            continue
        shipped = from_profile(prof)
        resolutions[prof.name] = shipped.resolution
        desc = shipped.description  # without the scale's own words: validate fits its own
        if shipped.assembly is not None:
            desc = desc.removesuffix("; " + shipped.assembly.describe() + "; "
                                     + shipped.interval.describe())
        backend = dataclasses.replace(shipped, assembly=None, interval=None)
        if not measured_blocks:
            backend = dataclasses.replace(backend, measured={}, _parts={})
        by_fold = {f: backend for f in FOLDS}
        if assembly:
            digest = profile_digest(prof, shipped.device)
            for f in FOLDS:  # a row's scale and interval come from the other fold
                fit = cached_assembly(backend, all_val, digest, other_fold(f))
                iv = cached_interval(backend, all_val, digest, other_fold(f))
                by_fold[f] = dataclasses.replace(backend, assembly=fit, interval=iv)
            desc += ("; " + by_fold["x4"].assembly.describe() + "; "
                     + by_fold["x4"].interval.describe() + " (scores the x4 rows and any "
                     "held-out family; the others are scored with the scale and interval "
                     "fitted on the x4 fold)")
        else:
            desc += "; no whole-model scale, per-part interval"
        backends[str(prof)] = desc + (
            "" if measured_blocks else "; measured blocks NOT used (sum of ops; a transformer "
            "block and a CNN block's forward pass corrected by its measured neighbours of "
            "other shapes)")
        for _, r in val.iterrows():
            # a held-out family is scored as the x4 rows are: with the base fold's fits
            rows.append(_compare(prof, r, by_fold.get(row_fold(r), by_fold["x4"])))
    if not rows and profile is not None:
        raise PerfmodelError(f"{profile}: no validation measurements (run the profilers' "
                             "validation suite)")
    table = pd.DataFrame(rows)
    return ValidationReport(table, summarize(table), backends, resolutions)


def _validate_against(profile, against, phases, models, assembly=True,
                      measured_blocks=True) -> ValidationReport:
    """`validate(profile, against=...)`: the shipped `profile` scores `against`'s rows."""
    if profile is None:
        raise PerfmodelError("--against needs --profile: the profile whose predictions are "
                             "checked against the other run's measurements")
    prof, other = validation_profiles(profile)[0], validation_profiles(against)[0]
    if prof.resolve() == other.resolve():
        raise PerfmodelError(f"--against {other} is the profile itself: give another run")
    mine, theirs = read_metadata(prof), read_metadata(other)
    for key in ("device_name", "torch_threads"):
        if mine.get(key) != theirs.get(key):
            raise PerfmodelError(f"{other} was measured with {key} {theirs.get(key)!r}, "
                                 f"{prof} with {mine.get(key)!r}: compare runs of one device "
                                 "and thread count")
    created = str(theirs.get("created") or "?")[:19]
    seen = {(str(r.get("name")), str(r.get("created"))[:19])
            for r in mine.get("merged_from") or []}
    fitted = (other.name, created) in seen or str(mine.get("created") or "")[:19] == created
    data = read_profile_rows(other)
    val = data[data["suite"].astype(str) == "validation"]
    if val.empty:
        raise PerfmodelError(f"{other}: no validation measurements (run the profilers' "
                             "validation suite)")
    val = val[val["phase"].astype(str).isin(phases)]
    if models:
        val = val[val["op"].astype(str).isin(models)]
    if val.empty:
        raise PerfmodelError(f"{other}: no validation measurements of the phase or models "
                             "asked for")
    shipped = from_profile(prof)
    if not assembly:
        shipped = dataclasses.replace(shipped, assembly=None, interval=None)
    if not measured_blocks:
        shipped = dataclasses.replace(shipped, measured={}, _parts={})
    rows = []
    for _, r in val.iterrows():
        try:
            rows.append(dict(_compare(other, r, shipped), profile=other.name))
        except PerfmodelError as exc:
            raise PerfmodelError(f"{other}: {r['op']} {r['phase']}: {exc}") from None
    desc = (f"{shipped.description}; predicting the measurements of {other} ({created[:10]}), "
            + ("WHICH THIS PROFILE INCLUDES (its merged_from lists that run): not a test on "
               "unseen data" if fitted else "which no fit saw")
            + ("" if mine.get("cpu_allocator") == theirs.get("cpu_allocator") else
               "; the two runs used different C allocator settings (cpu_allocator)")
            + ("" if assembly else "; no whole-model scale, per-part interval")
            + ("" if measured_blocks else "; measured blocks NOT used"))
    table = pd.DataFrame(rows)
    return ValidationReport(table, summarize(table), {str(prof): desc},
                            {other.name: shipped.resolution})


def _compare(prof: Path, r, backend) -> dict:
    a = model_args(r)
    strategy, factor, overrides = a["strategy"], row_factor(r), a["overrides"]
    pred = predict_model(a.pop("model"), a.pop("batch"), device=backend, **a)
    measured = center_time(r)
    acts = _model_saved_bytes(str(r["op"]), pred.batch, str(r["dtype"]), factor, strategy,
                              overrides, fuses_kernels(backend.device))
    lo, hi = pred.time.lo, pred.time.hi
    # 1.0 / 0.0 inside or not; NaN without a two-sided interval (a roofline's has no upper
    # bound): it claims no coverage, and means over the column skip it
    inside = float(lo <= measured <= hi) if np.isfinite(lo) and np.isfinite(hi) else float("nan")
    e_meas = r.get("energy_j")
    e_meas = float(e_meas) if e_meas is not None and pd.notna(e_meas) else float("nan")
    noise = r.get("time_noise_s")
    noise = float(noise) if noise is not None and pd.notna(noise) else float("nan")
    a_meas = r.get("act_bytes")
    a_meas = float(a_meas) if a_meas is not None and pd.notna(a_meas) else float("nan")
    return {
        "profile": prof.name, "model": str(r["op"]), "phase": str(r["phase"]),
        "dtype": str(r["dtype"]), "batch": pred.batch, "factor": factor,
        "strategy": strategy or "",
        "overrides": json.dumps(overrides, sort_keys=True) if overrides else "",
        "measured_s": measured, "measured_noise_s": noise, "pred_s": pred.time.value,
        "pred_lo_s": lo, "pred_hi_s": hi, "error": pred.time.value / measured - 1.0,
        "in_interval": inside, "measured_energy_j": e_meas,
        "pred_energy_j": pred.energy.value,
        "measured_act_bytes": a_meas, "pred_act_bytes": acts,
        "source": pred.source, "measured_parts": pred.measured_parts,
        "block_parts": int(pred.by_module["group"].isin(BLOCK_GROUPS).sum()),
        "assembly_scale": pred.assembly_scale, "op_mix": pred.op_mix,
        "measured_share": pred.measured_share,
    }


def _model_saved_bytes(model, batch, dtype, factor, strategy, overrides,
                       fused_kernels: bool = False) -> float:
    """Bytes a training-mode forward saves for backward, without the loss: what the
    profilers' `act_bytes` measures (they run the model's forward alone, for both phases)."""
    from perfmodel.predict.counts import assemble_saved_bytes
    from perfmodel.predict.model import prepare

    prep = prepare(model, batch, dtype=dtype, train=True, factor=factor if strategy else 1.0,
                   strategy=strategy, overrides=overrides, fused_kernels=fused_kernels)
    saved = assemble_saved_bytes(prep.counts)
    return float(sum(b for p, b in zip(prep.parts, saved) if p.group != "loss"))


def discordant_pairs(measured, predicted, noise) -> tuple[int, int]:
    """(pairs ranked the other way by the prediction, of those whose measured gap exceeds
    the sum of both points' noise bands) over all candidate pairs; pairs inside the noise
    are ties a re-measurement could reorder. NaN noise counts as zero."""
    m, p = np.asarray(measured, float), np.asarray(predicted, float)
    q = np.nan_to_num(np.asarray(noise, float))
    wrong = resolved = 0
    for i in range(len(m)):
        for j in range(i + 1, len(m)):
            if abs(m[i] - m[j]) > q[i] + q[j]:
                resolved += 1
                wrong += (m[i] - m[j]) * (p[i] - p[j]) < 0
    return int(wrong), int(resolved)


def _yes_no(inside) -> str:
    return "-" if inside is None or inside != inside else ("y" if inside else "n")


def _percent(share) -> str:
    """A share as "89%", or "-" where no row had a two-sided interval."""
    return "-" if share is None or share != share else f"{100 * share:.0f}%"


def summarize(table: pd.DataFrame) -> pd.DataFrame:
    """Per-group median |error|, Spearman, top-1 agreement and coverage."""
    cols = GROUP + ["candidates", "median_abs_error", "spearman", "top1", "coverage"]
    if table.empty:
        return pd.DataFrame(columns=cols)
    out = []
    for key, g in table.groupby(GROUP, sort=True):
        top1 = g["measured_s"].idxmin() == g["pred_s"].idxmin()
        out.append(dict(zip(GROUP, key), candidates=len(g),
                        median_abs_error=float(np.median(np.abs(g["error"]))),
                        spearman=spearman(g["pred_s"], g["measured_s"]), top1=bool(top1),
                        coverage=float(pd.to_numeric(g["in_interval"], errors="coerce").mean())))
    return pd.DataFrame(out, columns=cols)
