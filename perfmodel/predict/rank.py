"""Rank the scaled variants of a base model by predicted step time; Pareto front; plot.

    r = rank_candidates("RegNetX-400MF", factor=4, strategies=["d", "w", "r", "dw"], batch=8)
    r.to_frame(); r.to_records(); r.plot("rank.png")

One candidate per strategy and factor (`factor` may be a list: every strategy at every
factor), and, with `include_base`, the unscaled base. Candidates share
the backend (per-op predictions cached per distinct op) and the part counts (cached per
distinct part), so a strategy that reuses blocks costs little. Rank 1 = fastest step.
The Pareto front is over (predicted time, predicted energy), or (time, peak memory) when
the backend has no energy figure (a CPU without power measurements), among the candidates
of one factor (the unscaled base is never on it).
`rank_lo`..`rank_hi` are the places a candidate can take when candidates predicted closer
than the profile's rank resolution (`perfmodel.predict.resolution`) are tied.
"""
from __future__ import annotations

import dataclasses

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from perfmodel.errors import PerfmodelError
from perfmodel.predict.counts import fuses_kernels
from perfmodel.predict.device import Backend, resolve_backend
from perfmodel.predict.model import ModelPrediction, prepare
from perfmodel.predict.resolution import rank_bounds

CNN_DEFAULT = ("d", "w", "r", "dw", "dr", "wr", "dwr", "d1_w8_g8_r1")
VIT_DEFAULT = ("d", "w", "r", "dw", "dr", "wr", "dwr", "d1_w8_r1")  # no group widths
TRANSFORMER_DEFAULT = ("d", "w", "s", "dw", "ds", "ws", "dws")
JSON_KEYS = ("rank", "rank_lo", "rank_hi", "strategy", "factor", "achieved_factor", "params", "flops", "acts", "pred_time_s",
             "pred_time_s_lo", "pred_time_s_hi", "throughput", "pred_energy_j",
             "pred_energy_j_lo", "pred_energy_j_hi", "pred_peak_bytes", "fits_in_memory", "pareto")


def default_strategies(base: str, overrides: dict | None = None) -> tuple[str, ...]:
    """The strategy letters that apply to a base model's family."""
    from perfmodel.models.registry import resolve
    from perfmodel.models.transformer_config import TransformerConfig
    from perfmodel.models.vit import ViTParams

    p = resolve(base, 1.0, None, **(overrides or {}))
    if isinstance(p, TransformerConfig):
        return TRANSFORMER_DEFAULT
    return VIT_DEFAULT if isinstance(p, ViTParams) else CNN_DEFAULT


def pareto_front(x, y) -> np.ndarray:
    """Boolean mask of the points no other point beats in both (lower is better)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    n = len(x)
    mask = np.ones(n, bool)
    for i in range(n):
        if not (np.isfinite(x[i]) and np.isfinite(y[i])):
            mask[i] = False
            continue
        dominated = (x <= x[i]) & (y <= y[i]) & ((x < x[i]) | (y < y[i]))
        mask[i] = not dominated.any()
    return mask


@dataclass
class Ranking:
    """The candidates' predictions, in rank order, and what the front was computed on."""

    base: str
    factor: float  # the first factor (the only one, usually)
    batch: int
    train: bool
    predictions: list[ModelPrediction]
    strategies: list[str]
    backend: str
    pareto_axis: str  # "pred_energy_j" | "pred_peak_bytes"
    candidates: list = None  # (strategy, factor) per prediction
    tie_gap: float | None = None  # log ratio under which two candidates are tied
    ties: str = "no measured candidates to size ties on"  # how tie_gap was found
    # forward FLOPs per sample of the unscaled base: a candidate's `achieved_factor` is its
    # FLOPs over these (strategies round widths, depths and resolutions, so a "x4"
    # candidate may hold 3.4x or 4.4x the base's FLOPs)
    base_flops: float | None = None
    skipped: list = None  # candidates not ranked: a dimension past the scaling bound
    notes: list = None  # ranked candidates past the base's published context (`s`)

    def __post_init__(self):
        if self.candidates is None:
            self.candidates = [(s, self.factor) for s in self.strategies]

    def to_frame(self) -> pd.DataFrame:
        """One row per candidate, rank order."""
        rows = []
        for (strategy, factor), p in zip(self.candidates, self.predictions):
            d = p.to_dict()
            d["strategy"] = strategy or "base"
            d["factor"] = factor if strategy else 1.0
            rows.append(d)
        df = pd.DataFrame(rows)
        df["achieved_factor"] = (df["flops"] / self.base_flops if self.base_flops
                                 else np.nan)
        from perfmodel.predict.memory import device_capacity

        # a GPU's memory against each candidate's predicted peak (None on a CPU)
        capacity = device_capacity(self.predictions[0].device) if self.predictions else None
        df["fits_in_memory"] = (None if capacity is None else
                                [bool(v <= capacity) if v == v else None
                                 for v in df["pred_peak_bytes"]])
        df["rank"] = df["pred_time_s"].rank(method="min").astype(int)
        df["rank_lo"], df["rank_hi"] = rank_bounds(df["pred_time_s"], self.tie_gap)
        # the front among the candidates of one factor (the unscaled base, a fraction of
        # their compute, would dominate them all; other factors are other budgets)
        df["pareto"] = False
        for f, g in df[df["strategy"] != "base"].groupby("factor", sort=False):
            df.loc[g.index, "pareto"] = pareto_front(g["pred_time_s"].astype(float).to_numpy(),
                                                     g[self.pareto_axis].astype(float).to_numpy())
        first = [c for c in JSON_KEYS if c in df.columns]
        return df[first + [c for c in df.columns if c not in first]].sort_values(
            ["rank", "strategy"], ignore_index=True)

    def to_records(self) -> list[dict]:
        """JSON-friendly list of objects (NaN as None)."""
        out = []
        for r in self.to_frame().to_dict("records"):
            out.append({k: (None if isinstance(v, float) and not math.isfinite(v) else
                            v.item() if hasattr(v, "item") else v) for k, v in r.items()})
        return out

    def plot(self, path) -> None:
        """Time against energy (or peak memory) per strategy, Pareto front drawn (PNG)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        df = self.to_frame()
        x = df["pred_time_s"].astype(float).to_numpy()
        energy = self.pareto_axis == "pred_energy_j"
        y = df[self.pareto_axis].astype(float).to_numpy() / (1.0 if energy else 2**20)
        fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=110)
        lo, hi = df["pred_time_s_lo"].astype(float), df["pred_time_s_hi"].astype(float)
        if np.isfinite(lo).all() and np.isfinite(hi).all():
            ax.errorbar(x, y, xerr=[x - lo, hi - x], fmt="none", ecolor="0.7", elinewidth=1,
                        capsize=2, zorder=1, label="time interval")
            span = x.max() - x.min() or x.max()
            # keep the candidates readable when intervals are much wider than their spread
            ax.set_xlim(max(0.0, min(lo.min(), x.min() - 0.3 * span)),
                        min(hi.max(), x.max() + 0.3 * span) * 1.02)
        front = df["pareto"].to_numpy()
        ax.scatter(x[~front], y[~front], c="tab:blue", zorder=2, label="candidate")
        ax.scatter(x[front], y[front], c="tab:red", zorder=3, label="Pareto front")
        for f in pd.unique(df["factor"]):  # one front per factor
            sel = front & (df["factor"] == f).to_numpy()
            order = np.argsort(x[sel])
            ax.plot(x[sel][order], y[sel][order], c="tab:red", lw=1, zorder=2)
        factors = sorted({f for s, f in self.candidates if s})
        many = len(factors) > 1
        for xi, yi, s, f in zip(x, y, df["strategy"], df["factor"]):
            label = f"{s} x{f:g}" if many and s != "base" else s
            ax.annotate(label, (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=8)
        ax.set_xlabel("predicted step time (s)" if self.train else "predicted inference time (s)")
        ax.set_ylabel("predicted energy per step (J)" if energy else
                      "predicted peak memory (MiB)\n(no energy figure for this device)")
        scale = ", ".join(f"x{f:g}" for f in factors)
        ax.set_title(f"{self.base} {scale}, batch {self.batch}", fontsize=10)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        fig.text(0.01, 0.005, self.backend[:110], fontsize=6, color="0.4")
        fig.tight_layout(rect=(0, 0.02, 1, 1))
        fig.savefig(path)
        plt.close(fig)


def price_all(preps, backend: Backend) -> None:
    """Price the parts of many prepared candidates in one batched per-op prediction."""
    items, tensors = [], {}
    for p in preps:
        items += [(q, c, p.batch, p.dtype, p.train) for q, c in zip(p.parts, p.counts)]
        if p.train and p.optimizer != "none":
            tensors.setdefault((p.optimizer, p.dtype), []).extend(
                n for c in p.counts for n in c.param_numels)
    backend.price_parts(items)
    for (opt, dt), numels in tensors.items():
        backend.price_tensors(opt, dt, numels)


def rank_candidates(base: str, factor, strategies=None, *, batch: int = 1,
                    train: bool = True, dtype: str = "float32", device=None,
                    overrides: dict | None = None, include_base: bool = False,
                    optimizer: str | None = None, compiled: bool = False) -> Ranking:
    """Predict every `strategy` of `base` scaled by `factor` (one or several) and rank them
    (`compiled`: under torch.compile, `perfmodel.predict.fusion`)."""
    factors = [float(f) for f in (factor if isinstance(factor, (list, tuple)) else [factor])]
    if not factors or not all(f > 0 and math.isfinite(f) for f in factors):
        raise PerfmodelError(f"--factor must be positive and finite, got {factor}")
    if len(set(factors)) != len(factors):
        raise PerfmodelError("a factor is listed twice")
    strategies = list(strategies or default_strategies(base, overrides))
    if not strategies:
        raise PerfmodelError("no strategies to rank")
    if len(set(strategies)) != len(strategies):
        raise PerfmodelError("a strategy is listed twice")
    backend = device if isinstance(device, Backend) else resolve_backend(device)
    backend.check_dtype(dtype)
    from perfmodel.models.scaling import ScalingRangeError

    wanted = ([("", 1.0)] if include_base else []) + [(s, f) for f in factors for s in strategies]
    fused = fuses_kernels(backend.device)
    cands, preps, skipped = [], [], []
    for s, f in wanted:
        try:
            preps.append(prepare(base, batch, dtype=dtype, train=train, factor=f if s else 1.0,
                                 strategy=s or None, overrides=overrides, optimizer=optimizer,
                                 fused_kernels=fused, compiled=compiled))
            cands.append((s, f))
        except ScalingRangeError as exc:  # the other candidates are still ranked
            skipped.append(f"{s} x{f:g}: {str(exc).split(': ', 1)[0]}")
    if not preps:
        raise PerfmodelError("no candidate in range: " + "; ".join(skipped))
    price_all(preps, backend)
    preds = [p.assemble(backend) for p in preps]
    if include_base:
        base_flops = preds[0].flops
    else:  # counted only (the base's parts, not priced)
        b = prepare(base, batch, dtype=dtype, train=train, factor=1.0, strategy=None,
                    overrides=overrides, optimizer=optimizer, fused_kernels=fused,
                    compiled=compiled)
        base_flops = 2.0 * sum(float(c.fwd_macs) for c in b.counts) / batch
    energy = [p.energy.value for p in preds]
    axis = "pred_energy_j" if all(np.isfinite(energy)) else "pred_peak_bytes"
    res = backend.resolution
    gap = res.gap(train) if res is not None else None
    ties = res.describe(train) if res is not None else Ranking.ties
    if gap is not None and len(factors) > 1:
        ties += "; sized on candidates of one factor, so across factors only a guide"
    how = backend.description + ("; torch.compile: the pointwise ops between matrix ops "
                                 "fused, measured eager blocks not used (the whole-model "
                                 "scale and the ties come from eager runs)" if compiled else "")
    return Ranking(base, factors[0], batch, train, preds, [s for s, _ in cands],
                   how, axis, cands, gap, ties, base_flops, skipped,
                   context_notes(base, cands, overrides))


def context_notes(base, cands, overrides=None) -> list[str]:
    """One line per transformer candidate whose sequence is past the base's published
    context (a `s` candidate of gpt2 x4 runs 4096 tokens: its learned position table grows
    with it); the published config's context, not an override's `seq_len`, is the limit."""
    from perfmodel.models.registry import resolve
    from perfmodel.models.transformer_config import TransformerConfig

    if not isinstance(base, str):
        return []
    try:
        published = resolve(base)
    except PerfmodelError:
        return []
    if not isinstance(published, TransformerConfig):
        return []
    out = []
    for s, f in cands:
        cfg = resolve(base, f if s else 1.0, s or None, **(overrides or {}))
        note = dataclasses.replace(published, position=cfg.position).context_note(cfg.seq_len)
        if note:
            out.append(f"{s or 'base'} x{f:g}: {note}")
    return out
