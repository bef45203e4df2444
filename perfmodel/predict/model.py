"""Whole-model prediction: time, energy and peak memory of a training step or an inference.

    from perfmodel.predict import predict_model
    p = predict_model("RegNetX-400MF", batch=8, factor=4, strategy="dw", device="cpu")
    p.time.value, p.time.lo, p.time.hi, p.forward, p.backward, p.optimizer, p.memory.peak
    p.by_module            # one row per part (stem, blocks, head, loss, optimizer)

Pipeline: the model's parts (`parts.py`) are counted on the meta device (`counts.py`,
once per distinct part), each op is priced by the backend's per-op predictor or roofline
(`optimes.py`), and the six calibration sums of the whole step go through the backend's
block calibration (`calibration.py`). The training step is forward (train mode) + loss +
backward + the optimizer's pointwise updates (`optimizer.py`); inference is the forward
in eval mode. Phase times are the calibrated contributions of their ops, so
forward + backward + optimizer == total exactly, and so do the per-part rows.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from torch import nn

from perfmodel.dtypes import canonical_dtype
from perfmodel.errors import PerfmodelError
from perfmodel.predict.assembly import op_mix
from perfmodel.predict.calibration import FEATURES, HALF, IDENTITY, features
from perfmodel.predict.counts import PartCount, assemble_saved_bytes, count_part, fuses_kernels
from perfmodel.predict.device import Backend, resolve_backend
from perfmodel.predict.memory import MemoryEstimate, memory_estimate
from perfmodel.predict.optimizer import default_optimizer, optimizer_ops, uses_foreach
from perfmodel.predict.parts import Part, model_parts, parts_of


@dataclass(frozen=True)
class Estimate:
    """A predicted value with its interval (`lo`/`hi` NaN when unknown)."""

    value: float
    lo: float = float("nan")
    hi: float = float("nan")

    def to_dict(self, prefix: str) -> dict:
        return {prefix: _num(self.value), f"{prefix}_lo": _num(self.lo),
                f"{prefix}_hi": _num(self.hi)}

    def __str__(self) -> str:
        if math.isfinite(self.lo) and math.isfinite(self.hi):
            return f"{self.value:.4g} [{self.lo:.4g}, {self.hi:.4g}]"
        if math.isfinite(self.lo) or math.isfinite(self.hi):  # one side: a roofline's bound
            lo, hi = (f"{v:.4g}" if math.isfinite(v) else "-" for v in (self.lo, self.hi))
            return f"{self.value:.4g} [{lo}, {hi}]"
        return f"{self.value:.4g}"


def _num(v):
    v = float(v)
    return v if math.isfinite(v) else None


@dataclass
class ModelPrediction:
    """Predicted step of one model on one device (times in s, energy in J, memory in B)."""

    name: str
    batch: int
    dtype: str
    train: bool
    optimizer: str
    params: int
    flops: float  # forward FLOPs (2 x MACs) per sample
    acts: int  # pycls activations per sample
    step_flops: float  # every counted FLOP of the step (vector ops included)
    time: Estimate
    forward: Estimate
    backward: Estimate
    optimizer_time: Estimate
    energy: Estimate
    memory: MemoryEstimate
    by_module: pd.DataFrame
    device: str
    backend: str  # how it was predicted (profile / predictor / roofline, calibration)
    source: str  # short: learned|roofline[+blocks]
    samples: int = 0  # samples (images or sequences) per step
    measured_parts: int = 0  # parts whose time is the profile's own block measurement
    tokens: int = 0  # tokens per step for sequence models (0 for images)
    assembly_scale: float = 1.0  # whole model / sum of its parts, from measured models
    ops: pd.DataFrame = field(default=None, repr=False)
    compiled: bool = False  # predicted under torch.compile (fused pointwise ops)
    measured_share: float = 0.0  # share of the step's time that measured blocks give
    interval_kind: str = "parts"  # "whole-model" (interval.py) | "parts" (per-part/per-op)
    op_mix: str = "matmul"  # "conv" | "matmul": which ops dominate (`assembly.op_mix`)
    # what the energy rests on: "per-op power model" (the profile's measured energy per op),
    # "measured average power" (the profile's blocks), "TDP" (no power measured: the
    # device's board power, an upper bound on its draw), or "" (no energy figure)
    energy_basis: str = ""

    @property
    def throughput(self) -> float:
        """Samples per second (sequences for a transformer)."""
        return self.samples / self.time.value if self.time.value > 0 else float("nan")

    def to_dict(self) -> dict:
        d = {"model": self.name, "batch": self.batch, "dtype": self.dtype,
             "mode": "train" if self.train else "infer", "optimizer": self.optimizer,
             "params": self.params, "flops": self.flops, "acts": self.acts,
             "step_flops": self.step_flops}
        d.update(self.time.to_dict("pred_time_s"))
        d.update(self.forward.to_dict("pred_forward_s"))
        d.update(self.backward.to_dict("pred_backward_s"))
        d.update(self.optimizer_time.to_dict("pred_optimizer_s"))
        d.update(self.energy.to_dict("pred_energy_j"))
        d["throughput"] = _num(self.throughput)
        if self.tokens:
            d["tokens_per_s"] = _num(self.tokens / self.time.value)
        d.update(self.memory.to_dict())
        d.update(device=self.device, backend=self.backend, source=self.source,
                 measured_parts=self.measured_parts, assembly_scale=self.assembly_scale,
                 compiled=self.compiled, measured_share=self.measured_share,
                 interval_kind=self.interval_kind, op_mix=self.op_mix,
                 energy_basis=self.energy_basis)
        return d


def _resolve_parts(model, factor, strategy, overrides, input_shape, loss: bool,
                   input_vocab: int | None = None, batch: int | None = None,
                   dtype: str = "float32", train: bool = True, compiled: bool = False):
    """(name, parts, is a sequence model) for a name, a params dataclass or an nn.Module
    (split into its blocks, checked at `batch`, `dtype` and `train`, where given)."""
    if isinstance(model, nn.Module):
        if factor not in (None, 1.0) or strategy:
            raise PerfmodelError("scale a named model or its parameters, not a built module")
        if input_vocab is not None and int(input_vocab) < 1:
            raise PerfmodelError(f"the input vocabulary must be >= 1, got {input_vocab}")
        name = type(model).__name__
        from perfmodel.predict.chain import module_token

        parts = model_parts(lambda: model, ("module", module_token(model)), input_shape,
                            input_kind="long" if input_vocab else None,
                            high=int(input_vocab or 1), loss=loss)
        if batch is not None and not compiled:  # its blocks as parts (chain.py)
            from perfmodel.predict.chain import split_module

            chained = split_module(model, parts[0], batch, dtype, train)
            if chained:
                parts = chained + parts[1:]
        from perfmodel.predict.parts import transformer_cfg

        return name, parts, transformer_cfg(model) is not None or bool(input_vocab)
    if isinstance(model, str):
        from perfmodel.models.registry import resolve

        p = resolve(model, 1.0 if factor is None else factor, strategy or None,
                    **(overrides or {}))
    else:
        from perfmodel.models.scaling import scale_params

        p = scale_params(model, 1.0 if factor is None else float(factor), strategy or None)
    from perfmodel.models.transformer_config import TransformerConfig

    name = getattr(p, "name", str(model))
    return name, parts_of(p, loss=loss), isinstance(p, TransformerConfig)


def predict_model(model, batch: int = 1, *, dtype: str = "float32", train: bool = True,
                  device=None, factor: float | None = None, strategy: str | None = None,
                  overrides: dict | None = None, optimizer: str | None = None,
                  input_shape: tuple | None = None, keep_ops: bool = False,
                  compiled: bool = False, input_vocab: int | None = None) -> ModelPrediction:
    """Predict one training step (`train=True`) or one inference of `batch` samples.

    `model`: a registry name (with optional `factor`, `strategy`, `overrides`), a model
    parameter dataclass, or any `nn.Module` (with `input_shape` of one sample if it has no
    `input_size`; `input_vocab`: its input is token ids below this, a sequence model whose
    first input dimension is the sequence). `device`: profile dir, saved predictor dir,
    device name or a `Backend`.
    `optimizer`: `sgd-momentum` (CNN default), `adamw` (transformer default), `adam`,
    `sgd` or `none`. `compiled`: predict the model under `torch.compile` (the pointwise
    ops between matrix ops fused, `perfmodel.predict.fusion`; measured eager blocks unused).
    """
    backend = device if isinstance(device, Backend) else resolve_backend(device)
    backend.check_dtype(dtype)
    prep = prepare(model, batch, dtype=dtype, train=train, factor=factor, strategy=strategy,
                   overrides=overrides, optimizer=optimizer, input_shape=input_shape,
                   fused_kernels=fuses_kernels(backend.device), compiled=compiled,
                   input_vocab=input_vocab)
    return prep.assemble(backend, keep_ops)


@dataclass
class Prepared:
    """A model counted part by part at one batch size, ready to be priced on a backend of
    the device kind it was counted for (`fused_kernels`: a GPU's dropout and RMSNorm)."""

    name: str
    parts: list
    counts: list
    batch: int
    dtype: str
    train: bool
    optimizer: str
    is_seq: bool

    def price(self, backend: Backend) -> None:
        """Price every part (and the optimizer's tensors) in batched calls."""
        backend.price_parts([(p, c, self.batch, self.dtype, self.train)
                             for p, c in zip(self.parts, self.counts)])
        if self.train and self.optimizer != "none":
            backend.price_tensors(self.optimizer, self.dtype,
                                  [n for c in self.counts for n in c.param_numels])

    def assemble(self, backend: Backend, keep_ops: bool = False) -> "ModelPrediction":
        return assemble(self.name, self.parts, self.counts, self.batch, self.dtype, self.train,
                        self.optimizer, backend, self.is_seq, keep_ops)


def prepare(model, batch: int = 1, *, dtype: str = "float32", train: bool = True,
            factor: float | None = None, strategy: str | None = None,
            overrides: dict | None = None, optimizer: str | None = None,
            input_shape: tuple | None = None, fused_kernels: bool = False,
            compiled: bool = False, input_vocab: int | None = None) -> Prepared:
    """Decompose and count a model (see `predict_model` for the arguments; `fused_kernels`
    counts dropout and RMSNorm as a GPU runs them, `counts.fuses_kernels(device)`)."""
    from perfmodel.predict.optimizer import canonical_optimizer

    batch = int(batch)
    if batch < 1:
        raise PerfmodelError(f"batch must be >= 1, got {batch}")
    dt = canonical_dtype(dtype)
    name, parts, is_seq = _resolve_parts(model, factor, strategy, overrides, input_shape, train,
                                         input_vocab, batch, dt, train, compiled)
    opt = (canonical_optimizer(optimizer or default_optimizer(is_seq or _is_vit(model)))
           if train else "none")
    counts = [count_part(p, batch, dt, train, fused_kernels=fused_kernels, compiled=compiled)
              for p in parts]
    return Prepared(name, parts, counts, batch, dt, train, opt, is_seq)


def owned_numels(parts, counts) -> list[int]:
    """Sizes of the trainable parameter tensors, a tied weight once (by its owner)."""
    return [n for part, c in zip(parts, counts) for n in c.owned_numels(part)]


def _is_vit(model) -> bool:
    """Whether `model` names or describes a Vision Transformer (trained with AdamW)."""
    from perfmodel.models.vit import ViT, ViTParams

    if isinstance(model, (ViT, ViTParams)):
        return True
    return isinstance(model, str) and model.lower().startswith("vit")


def assemble(name: str, parts: list[Part], counts: list[PartCount], batch: int, dtype: str,
             train: bool, optimizer: str, backend: Backend, is_seq: bool = False,
             keep_ops: bool = False) -> ModelPrediction:
    """Put counted parts together: per-op times, calibration, phases, energy, memory."""
    cal = backend.calibration.get(dtype)
    beta = np.asarray(cal.beta)
    rows, x_total, e_raw, t_raw = [], np.zeros(len(FEATURES)), 0.0, 0.0
    x_ops = np.zeros(len(FEATURES))  # the calibrated sum of ops, no measurement in it
    op_frames = []
    numels = []
    saved = assemble_saved_bytes(counts) if train else [0.0] * len(counts)
    t_lo = t_hi = 0.0
    n_measured = 0
    t_parts = t_measured = 0.0  # the parts' time, and the share of it measured blocks give
    for part, c, sv in zip(parts, counts, saved):
        x, e, t_sum, lo_sum, hi_sum = backend.part_features(part, c, batch, dtype, train)
        x_ops += x
        # a measured block beats a sum of ops (the profile measures eager blocks only)
        m = None if c.fused or c.gemm_dtype else backend.measured_time(part, batch, dtype, train)
        if m is not None and beta @ x > 0:
            x = x * (m / float(beta @ x))
            n_measured += 1
            t_measured += m
        elif m is None and not c.fused and not c.gemm_dtype:
            x = x * backend.neighbour_scale(part, batch, dtype, train)
        t_parts += float(beta @ x)
        t_lo += lo_sum
        t_hi += hi_sum
        x_total += x
        e_raw += e
        t_raw += t_sum
        if part.group == "model" and c.n_ops:  # a whole module: split by its children
            rows.extend(_child_rows(backend, part, c, beta, float(beta @ x)))
        else:
            rows.append(_part_row(part, c, x, beta, sv))
        numels.extend(c.param_numels)
        if keep_ops and c.n_ops:
            f = c.ops.copy()
            f["module"] = [_join(part.path, m) for m in f["module"]]
            f["pred_time_s"] = backend.optimes.predict(c.ops)["time_s"].to_numpy()
            op_frames.append(f)
    x_opt = np.zeros(len(FEATURES))
    if train and optimizer != "none":
        foreach = uses_foreach(backend.device)
        if foreach:  # multi-tensor launches over the whole model's parameters
            f = optimizer_ops(optimizer, owned_numels(parts, counts), dtype, foreach=True)
            x_opt = features(f, backend.optimes.predict(f)["time_s"].to_numpy())
        else:  # one launch per tensor and kernel, priced per tensor (cached)
            for part, c in zip(parts, counts):
                x_opt += backend.optimizer_features(part, c, optimizer, dtype)
        rows.append({"module": "optimizer", "group": "optimizer", "params": 0, "flops": 0.0,
                     "ops": int(x_opt[HALF - 1]), "act_bytes": 0.0,
                     "time_s": optimizer_seconds(x_opt)})
        if keep_ops:
            f = optimizer_ops(optimizer, owned_numels(parts, counts), dtype, foreach=foreach)
            f["pred_time_s"] = backend.optimes.predict(f)["time_s"].to_numpy()
            op_frames.append(f)
    # the share of the step's time (optimizer included, never measured) measured blocks give
    t_step = t_parts + optimizer_seconds(x_opt)
    share = t_measured / t_step if t_step > 0 else 0.0
    mix = op_mix(beta * x_ops)  # the same whether or not blocks were measured
    # a whole model runs slower than its isolated parts (cold caches, glue): the profile's
    # measured whole models of the same op mix give the scale (`assembly`), 1 where it has
    # none
    scale = backend.assembly_scale(train, dtype, mix)
    opt_t = scale * optimizer_seconds(x_opt)
    total = scale * float(beta @ x_total) + opt_t
    fwd = scale * float(beta[:HALF] @ x_total[:HALF])
    bwd = scale * float(beta[HALF:] @ x_total[HALF:])
    ratio = cal.interval(1.0)
    if not cal.calibrated:
        # Learned per-op intervals summed as if their errors were perfectly correlated
        # (sum of lower bounds, sum of upper bounds: the widest consistent interval, not a
        # naive independent sum); the roofline alone gives a lower bound and no upper one.
        ratio = ((t_lo / t_raw, t_hi / t_raw) if t_raw > 0 else (float("nan"), float("nan")))
    compiled = any(c.fused for c in counts)
    kind = "parts"
    if backend.interval is not None and not compiled and not any(c.gemm_dtype for c in counts):
        # the profile's measured whole models size it (`interval`); they ran eager, in the
        # profile's dtypes
        whole = backend.interval.ratio(train, share, dtype)
        if whole is not None:
            ratio, kind = whole, "whole-model"
    est = lambda v: Estimate(v, v * ratio[0], v * ratio[1])  # noqa: E731
    power = _power(backend, e_raw, t_raw)
    basis = _energy_basis(backend, e_raw, t_raw, power)
    energy = Estimate(total * power, total * power * ratio[0], total * power * ratio[1])
    for r in rows:  # scaled in place: one frame built, no column arithmetic per prediction
        r["time_s"] *= scale
        r["share"] = r["time_s"] / total if total > 0 else np.nan
    by_module = pd.DataFrame(rows)
    shared = sum(p.shared_params for p in parts)
    size = (sum(c.param_bytes for c in counts) / max(1, sum(c.params for c in counts)))
    mem = memory_estimate(counts, train, optimizer, saved if train else None, shared * size)
    params = sum(c.params for c in counts) - shared
    fwd_macs = sum(_fwd_macs(c) for c in counts)
    acts = sum(_fwd_acts(c) for c in counts)
    step_flops = float(sum(c.all_flops for c in counts))
    seq = parts[0].input_shape[0] if is_seq and parts and parts[0].input_shape else 0
    return ModelPrediction(
        name=name, batch=batch, dtype=dtype, train=train, optimizer=optimizer, params=params,
        flops=2 * fwd_macs / batch, acts=int(acts // batch), step_flops=step_flops,
        time=est(total), forward=est(fwd), backward=est(bwd), optimizer_time=est(opt_t),
        energy=energy, memory=mem, by_module=by_module, device=backend.device.key,
        backend=backend.description, source=backend.source, samples=batch,
        measured_parts=n_measured, tokens=batch * seq if is_seq else 0, assembly_scale=scale,
        ops=pd.concat(op_frames, ignore_index=True) if op_frames else None,
        compiled=compiled, measured_share=share, interval_kind=kind, op_mix=mix,
        energy_basis=basis)


def optimizer_seconds(x_opt: np.ndarray) -> float:
    """The optimizer's kernels at their per-op times, uncalibrated.

    They stream every parameter, gradient and state through DRAM once, the regime the
    roofline at the device's bandwidth describes (`OpTimes` never gives them to a learned
    model: the vector suite times kernels in a loop, cache-warm); the block coefficients
    of vector ops are fitted on cache-resident norms and activations and do not transfer
    (on the CPU profile they would halve or double this term).
    """
    return float(np.dot(IDENTITY, x_opt))


def _join(prefix: str, path) -> str:
    path = "" if path is None or (isinstance(path, float) and path != path) else str(path)
    return ".".join(p for p in (prefix, path) if p)


def _part_row(part: Part, c: PartCount, x: np.ndarray, beta: np.ndarray, saved: float) -> dict:
    return {"module": part.path or "model", "group": part.group,
            "params": c.params - part.shared_params, "flops": 2 * _fwd_macs(c),
            "ops": c.n_ops, "act_bytes": saved, "time_s": float(beta @ x)}


def _child_rows(backend: Backend, part: Part, c: PartCount, beta: np.ndarray,
                total: float) -> list[dict]:
    """Rows per top-level child module of a single-part model; they add up to `total`."""
    import torch

    from perfmodel.predict.calibration import feature_columns

    with torch.device("meta"):
        module = part.build()
    params: dict[str, int] = {}
    for n, q in module.named_parameters():
        key = n.split(".")[0] if "." in n else "(root)"
        params[key] = params.get(key, 0) + q.numel()
    ops = c.ops
    t = backend.optimes.predict(ops)["time_s"].to_numpy()
    per_op = np.column_stack(feature_columns(ops, t)) @ beta
    top = ops["module"].fillna("").astype(str).str.split(".").str[0].replace("", "(root)")
    out = []
    for name, idx in top.groupby(top, sort=False).groups.items():
        sel = ops.loc[idx]
        fwd = sel["phase"] == "fwd"
        out.append({"module": name, "group": "module", "params": params.get(name, 0),
                    "flops": float(2 * sel.loc[fwd, "macs"].sum()), "ops": len(sel),
                    "act_bytes": float("nan"), "time_s": float(per_op[ops.index.get_indexer(idx)].sum())})
    s = sum(r["time_s"] for r in out)
    for r in out:  # measured-block scaling, if any, applies to the whole part
        r["time_s"] *= total / s if s > 0 else 0.0
    return out


def _fwd_macs(c: PartCount) -> float:
    return float(c.fwd_macs)


def _fwd_acts(c: PartCount) -> float:
    return float(c.fwd_acts)


def _energy_basis(backend: Backend, e_raw: float, t_raw: float, power: float) -> str:
    """Which of `_power`'s sources gave `power` (`ModelPrediction.energy_basis`)."""
    if not math.isfinite(power):
        return ""
    pred = backend.optimes.predictor
    if (t_raw > 0 and e_raw > 0 and pred is not None
            and any(getattr(m, "power", None) is not None
                    for m in getattr(pred, "models", {}).values())):
        return "per-op power model"
    if np.isfinite(backend.calibration.power_w):
        return "measured average power"
    return "TDP"


def _power(backend: Backend, e_raw: float, t_raw: float) -> float:
    """Average watts: per-op energy over per-op time, else the backend's power figure."""
    if t_raw > 0 and e_raw > 0:
        return e_raw / t_raw
    return backend.energy_power_w()
