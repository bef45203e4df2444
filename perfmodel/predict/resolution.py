"""Rank resolution: how far apart two candidates' predicted times must be before the
prediction can tell which is faster.

A ranking compares candidates of one base model, factor, batch and dtype, so what
matters is the error of a predicted *ratio*, not of each time: an error common to all
candidates (the device running faster than the profile, the whole-model scale) cancels.
For every pair (i, j) of measured candidates in a profile's validation suite, the
pair's error is

    log(pred_i / pred_j) - log(measured_i / measured_j),

which holds the prediction's own error and the measurement noise of the ground truth
alike (a user who re-measures sees both). The resolution of a phase is the
`COVERAGE` quantile of |pair error| over the pairs of one fold (`assembly.FOLDS`: the
unscaled and x2 candidates; the x4 candidates a ranking benchmark scores are never
fitted on): two candidates predicted closer than that can come out in either order,
farther apart the prediction's order held in at least 90 % of the fitted pairs.

`rank_bounds` turns it into the ranks each candidate can take: `rank_lo` is the best
rank of any candidate predicted at most the resolution faster, `rank_hi` the worst of
any at most the resolution slower.
"""
from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

COVERAGE = 0.9
MIN_PAIRS = 10  # fewer pairs in a phase: the resolution pooled over phases
PAIR_GROUP = ("model", "phase", "dtype", "batch", "factor")


@dataclass
class RankResolution:
    """|log ratio| below which two predicted candidates are tied, per phase."""

    fold: str = "base"
    gaps: dict = field(default_factory=dict)  # "train_step" | "inference" | "*" -> log gap
    pairs: dict = field(default_factory=dict)  # same keys -> pairs fitted on

    def gap(self, train: bool) -> float | None:
        """The log gap of a phase: its own, else pooled over phases, else None."""
        phase = "train_step" if train else "inference"
        for key in (phase, "*"):
            if key in self.gaps:
                return float(self.gaps[key])
        return None

    def describe(self, train: bool) -> str:
        g = self.gap(train)
        if g is None:
            return "no measured candidates to size ties on"
        phase = "train_step" if train else "inference"
        key = phase if phase in self.gaps else "*"
        return (f"candidates predicted within {100 * (math.exp(g) - 1):.1f}% of each other "
                f"are tied ({COVERAGE:.0%} quantile of the predicted-vs-measured ratio error "
                f"over {self.pairs[key]} pairs of the profile's measured {self.fold}-fold "
                f"candidates)")

    def to_json(self) -> str:
        return json.dumps({"fold": self.fold, "gaps": self.gaps, "pairs": self.pairs})

    @classmethod
    def from_json(cls, text: str) -> "RankResolution":
        d = json.loads(text)
        return cls(str(d["fold"]), {str(k): float(v) for k, v in d["gaps"].items()},
                   {str(k): int(v) for k, v in d["pairs"].items()})


def pair_errors(preds: pd.DataFrame) -> pd.DataFrame:
    """Every pair of scaled candidates of one (model, phase, dtype, batch, factor) group
    in `assembly.fold_predictions` rows: phase, predicted and measured log ratio, error."""
    rows = []
    scaled = preds[preds["strategy"].astype(str) != ""]
    for key, g in scaled.groupby(list(PAIR_GROUP), sort=True):
        lp, lm = np.log(g["pred_s"].to_numpy(float)), np.log(g["measured_s"].to_numpy(float))
        for i, j in itertools.combinations(range(len(g)), 2):
            rows.append((key[1], lp[i] - lp[j], lm[i] - lm[j]))
    out = pd.DataFrame(rows, columns=["phase", "pred_log_ratio", "measured_log_ratio"])
    out["error"] = out["pred_log_ratio"] - out["measured_log_ratio"]
    return out


def fit_resolution(preds: pd.DataFrame, fold: str = "base") -> RankResolution:
    """The resolution per phase (and pooled) from one fold's predictions."""
    pairs = pair_errors(preds)
    out = RankResolution(fold)
    if len(pairs) >= MIN_PAIRS:
        out.gaps["*"] = float(np.quantile(np.abs(pairs["error"]), COVERAGE))
        out.pairs["*"] = len(pairs)
    for phase, g in pairs.groupby("phase"):
        if len(g) >= MIN_PAIRS:
            out.gaps[str(phase)] = float(np.quantile(np.abs(g["error"]), COVERAGE))
            out.pairs[str(phase)] = len(g)
    return out


def rank_bounds(times, gap: float | None) -> tuple[np.ndarray, np.ndarray]:
    """(rank_lo, rank_hi) of each predicted time: the best and worst place it can take
    (1 = fastest) when every candidate within `gap` (a log ratio) of it may come out
    faster or slower. With no gap, both are its own rank (equal times share the best)."""
    t = np.asarray(times, float)
    rank = pd.Series(t).rank(method="min").to_numpy().astype(int)
    if gap is None or not np.isfinite(gap):
        return rank, rank.copy()
    lt = np.log(t)
    lo = np.array([1 + int(np.sum(lt < x - gap)) for x in lt])
    hi = np.array([int(np.sum(lt <= x + gap)) for x in lt])
    return lo, hi


@dataclass
class TieScore:
    """How a tie gap fared on measured candidates of one ranking (or several)."""

    pairs: int  # candidate pairs
    resolved: int  # pairs predicted farther apart than the gap
    right: int  # of those, ordered as measured
    leader_ties: list  # per ranking: the candidates tied with the predicted fastest
    fastest_tied: bool  # every ranking's measured fastest is among its leader's ties

    def describe(self) -> str:
        tied = "; ".join(",".join(t) for t in self.leader_ties)
        return (f"pairs predicted apart {self.resolved}/{self.pairs}, ordered as measured "
                f"{self.right}/{self.resolved}; tied with the predicted fastest: {tied} "
                f"(holds the measured fastest: {'yes' if self.fastest_tied else 'no'})")


def score_ties(rows: pd.DataFrame, gap: float | None,
               group=("model", "dtype", "batch", "factor")) -> TieScore:
    """Score a tie gap on measured rankings: `rows` with `strategy`, `pred_s`,
    `measured_s` and the `group` columns (one group = one ranking's candidates)."""
    g_ = 0.0 if gap is None else gap
    pairs = resolved = right = 0
    leaders, held = [], True
    for _, g in rows.groupby([c for c in group if c in rows], sort=True):
        lp, lm = np.log(g["pred_s"].to_numpy(float)), np.log(g["measured_s"].to_numpy(float))
        for i, j in itertools.combinations(range(len(g)), 2):
            pairs += 1
            if abs(lp[i] - lp[j]) > g_:
                resolved += 1
                right += (lp[i] - lp[j]) * (lm[i] - lm[j]) > 0
        lo, _ = rank_bounds(g["pred_s"], gap)
        tied = lo == 1
        leaders.append([str(s) for s in g["strategy"].to_numpy()[tied]])
        held &= bool(tied[int(np.argmin(lm))])
    return TieScore(pairs, resolved, int(right), leaders, held)
