"""Do two profiles agree within the noise they report? Per-point comparison of medians vs IQRs."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from perfmodel.errors import PerfmodelError
from profilers.schema import read_profile


@dataclass
class Comparison:
    """Per-point table (`frame`) and the headline numbers of an A/B comparison."""

    frame: pd.DataFrame  # point_id, suite, time_a, time_b, iqr_a, iqr_b, rel_diff, z, agree

    @property
    def n(self) -> int:
        return len(self.frame)

    @property
    def agree_fraction(self) -> float:
        return float(self.frame["agree"].mean()) if self.n else float("nan")

    def by_suite(self) -> pd.DataFrame:
        """Points, agreement fraction, median |relative difference| and median z per suite."""
        g = self.frame.groupby("suite")
        return pd.DataFrame({
            "points": g.size(),
            "agree": g["agree"].mean(),
            "median_abs_rel_diff": g["rel_diff"].apply(lambda s: s.abs().median()),
            "median_rel_iqr": g["rel_iqr"].median(),
            "median_z": g["z"].median(),
        })

    def report(self) -> str:
        lines = [f"{self.n} points measured in both; {self.agree_fraction:.0%} agree "
                 "(|median_a - median_b| <= iqr_a + iqr_b)"]
        table = self.by_suite()
        lines.append(f"{'suite':<12}{'points':>7}{'agree':>8}{'|rel diff|':>12}{'rel IQR':>10}{'z':>7}")
        for suite, r in table.iterrows():
            lines.append(f"{suite:<12}{int(r.points):>7}{r.agree:>8.0%}{r.median_abs_rel_diff:>12.1%}"
                         f"{r.median_rel_iqr:>10.1%}{r.median_z:>7.2f}")
        lines.append("z = |median_a - median_b| / (iqr_a + iqr_b), medians over points")
        return "\n".join(lines)


def compare_profiles(a, b) -> Comparison:
    """Compare the `ok` points two profiles share (by point id)."""
    fa, fb = read_profile(a), read_profile(b)
    cols = ["point_id", "suite", "time_s", "time_iqr_s"]
    fa = fa[fa["status"] == "ok"][cols]
    fb = fb[fb["status"] == "ok"][cols]
    both = fa.merge(fb, on=["point_id", "suite"], suffixes=("_a", "_b"))
    if both.empty:
        raise PerfmodelError(f"{a} and {b} share no successfully measured point")
    ta, tb = both["time_s_a"].astype(float), both["time_s_b"].astype(float)
    ia, ib = both["time_iqr_s_a"].astype(float), both["time_iqr_s_b"].astype(float)
    diff = (ta - tb).abs()
    noise = ia + ib
    frame = pd.DataFrame({
        "point_id": both["point_id"], "suite": both["suite"], "time_a": ta, "time_b": tb,
        "iqr_a": ia, "iqr_b": ib, "rel_diff": (tb - ta) / ta,
        "rel_iqr": noise / 2 / ((ta + tb) / 2),
        "z": np.where(noise > 0, diff / noise.where(noise > 0, 1.0), np.inf),
        "agree": diff <= noise,
    })
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
