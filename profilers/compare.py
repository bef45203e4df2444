"""Do two profiles agree within the noise they report? Each point's second measurement
against the first's band `time_s +- time_noise_s` (which claims 90%), both ways.

Profiles without `time_noise_s` (schema version 1) fall back to the interquartile range.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from perfmodel.errors import PerfmodelError
from profilers.repeat import BAND_COVERAGE
from profilers.schema import read_metadata, read_profile


@dataclass
class Comparison:
    """Per-point table (`frame`) and the headline numbers of an A/B comparison."""

    frame: pd.DataFrame  # point_id, suite, time_a, time_b, noise_a, noise_b, rel_diff, z, in_a, in_b, agree

    @property
    def n(self) -> int:
        return len(self.frame)

    @property
    def agree_fraction(self) -> float:
        """Share of points inside the other profile's band, averaged over both directions."""
        if not self.n:
            return float("nan")
        return float((self.frame["in_a"].mean() + self.frame["in_b"].mean()) / 2)

    @property
    def claimed(self) -> float:
        return BAND_COVERAGE

    def by_suite(self) -> pd.DataFrame:
        """Points, share inside the bands, median |relative difference|, band and z per suite."""
        g = self.frame.groupby("suite")
        return pd.DataFrame({
            "points": g.size(),
            "in_a": g["in_a"].mean(),
            "in_b": g["in_b"].mean(),
            "median_abs_rel_diff": g["rel_diff"].apply(lambda s: s.abs().median()),
            "median_rel_noise": g["rel_noise"].median(),
            "median_z": g["z"].median(),
        })

    def report(self) -> str:
        lines = [f"{self.n} points measured in both; {self.agree_fraction:.0%} agree "
                 f"(inside the other run's reported band time_s +- time_noise_s, which claims "
                 f"{self.claimed:.0%})"]
        lines.append(f"{'suite':<12}{'points':>7}{'B in A':>8}{'A in B':>8}{'|rel diff|':>12}"
                     f"{'band':>8}{'z':>7}")
        for suite, r in self.by_suite().iterrows():
            lines.append(f"{suite:<12}{int(r.points):>7}{r.in_a:>8.0%}{r.in_b:>8.0%}"
                         f"{r.median_abs_rel_diff:>12.1%}{r.median_rel_noise:>8.1%}"
                         f"{r.median_z:>7.2f}")
        lines.append("band = time_noise_s / time_s; z = |median_a - median_b| / "
                     "mean(noise_a, noise_b); medians over points")
        return "\n".join(lines)


def _noise(frame: pd.DataFrame) -> pd.Series:
    noise = pd.to_numeric(frame["time_noise_s"], errors="coerce")
    return noise.fillna(pd.to_numeric(frame["time_iqr_s"], errors="coerce"))


def compare_profiles(a, b) -> Comparison:
    """Compare the `ok` points two profiles share (by point id); both must be complete
    (their bands come from the repeat pass, computed when a run ends)."""
    for d in (a, b):
        if not read_metadata(d).get("complete"):
            raise PerfmodelError(f"{d} is not complete: its noise bands are computed when "
                                 f"the run ends; finish it (the same command again) first")
    fa, fb = read_profile(a), read_profile(b)
    fa, fb = fa[fa["status"] == "ok"].copy(), fb[fb["status"] == "ok"].copy()
    fa["noise"], fb["noise"] = _noise(fa), _noise(fb)
    cols = ["point_id", "suite", "time_s", "noise"]
    both = fa[cols].merge(fb[cols], on=["point_id", "suite"], suffixes=("_a", "_b"))
    if both.empty:
        raise PerfmodelError(f"{a} and {b} share no successfully measured point")
    ta, tb = both["time_s_a"].astype(float), both["time_s_b"].astype(float)
    na, nb = both["noise_a"].astype(float), both["noise_b"].astype(float)
    diff = (ta - tb).abs()
    mean_noise = (na + nb) / 2
    frame = pd.DataFrame({
        "point_id": both["point_id"], "suite": both["suite"], "time_a": ta, "time_b": tb,
        "noise_a": na, "noise_b": nb, "rel_diff": (tb - ta) / ta,
        "rel_noise": mean_noise / ((ta + tb) / 2),
        "z": np.where(mean_noise > 0, diff / mean_noise.where(mean_noise > 0, 1.0), np.inf),
        "in_a": diff <= na, "in_b": diff <= nb,
    })
    frame["agree"] = frame["in_a"] & frame["in_b"]
    return Comparison(frame.reset_index(drop=True))


def main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m profilers.compare",
                                     description="Compare two profiles point by point.")
    parser.add_argument("a")
    parser.add_argument("b")
    args = parser.parse_args(argv)
    print(compare_profiles(args.a, args.b).report())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
