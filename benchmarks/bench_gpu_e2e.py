"""Whole-model GPU time against public end-to-end measurements (NeuSight's e2e labels).

NeuSight timed five Hugging Face models (BERT-Large, GPT-2-Large, its 3072-wide "gpt3_xl",
GPT-3 2.7B, OPT-1.3B) end to end on eight GPUs in float32 with TF32 off: inference
forwards and training forward + backward (no optimizer step), several batch sizes
(`benchmarks/hf_eager.py` says what ran). This benchmark predicts each of them with
perfmodel's whole-model pipeline (the model's parts counted op by op, each op priced,
summed by phase) and prints the error, for two ways of pricing ops:

- `roofline`: the catalogue's peaks and bandwidth only, what `perfmodel` does for a GPU
  without a profile (a lower bound by construction);
- `learned`: the GEMM kinds (linear and batched matmul, > 80% of the time here) from a
  perfmodel predictor fitted on NeuSight's per-op GEMM measurements of the same GPU
  (`neusight/{linear,bmm}.csv`), every other op (norms, softmax, GELU, dropout, copies,
  embeddings) on the roofline. The whole-model times were never part of the fit: the
  per-op table is the GPU's "profile", the e2e labels the held-out ground truth. NeuSight's
  per-op tables hold many of these models' own layer shapes (column `gemm_seen`: the
  model's distinct GEMM shapes the fit saw exactly), so:
- `unseen`: the same, fitted without any of the model's GEMM shape families (every token
  count of each of its layer weights, every batch count of each of its attention matmuls):
  a model whose layers the GPU's profile never measured.

Rows `fusion` (the same models under `torch.compile`, inference on A100-PCIe-40GB, H100 and
L4) are predicted with `compiled=True` (`perfmodel.predict.fusion`: the pointwise ops
between matrix ops fused into one kernel each), beside the eager prediction. The 4-GPU
rows (`dp4`, `tp4`, `pp4_1`: 4 pipeline stages, one micro-batch) ran through accelerate's
Megatron-LM plugin, which trains Megatron-LM's own GPT built from the Hugging Face config
(dropout on, its own attention), timed forward with the loss + backward; they are predicted
with perfmodel's LLM step model (`perfmodel.predict.llm.predict_training_step`, the product's
`mfu` path) on perfmodel's GPT of the same shape (SDPA attention, no dropout), minus its
optimizer step. Only a guide: neither model is exactly what ran.

No target of the issues applies to this public data (issue 5's GPU target is on the
project's own validation set); it shows where the whole-model GPU predictions stand before
one exists. Run: python3 benchmarks/bench_gpu_e2e.py [--csv PATH]
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import hf_eager  # noqa: E402
from common import load_neusight, load_neusight_e2e, shared_data  # noqa: E402

from perfmodel.hardware.catalogue import get_device, is_known  # noqa: E402
from perfmodel.predict.calibration import HALF, Calibrations  # noqa: E402
from perfmodel.predict.counts import count_part  # noqa: E402
from perfmodel.predict.device import Backend  # noqa: E402
from perfmodel.predict.llm import predict_training_step  # noqa: E402
from perfmodel.predict.model import assemble  # noqa: E402
from perfmodel.predict.optimes import OpTimes  # noqa: E402

DTYPE = "float32"
METHODS = ("roofline", "learned", "unseen")
GEMM_OPS = ("gemm", "bmm", "linear", "matmul", "mm", "addmm")


def learned_backend(spec, rows: pd.DataFrame, what: str) -> Backend:
    """GEMMs from a perfmodel predictor fitted on `rows`, everything else on the roofline."""
    import perfmodel

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pred = perfmodel.fit(rows.reset_index(drop=True), device=spec.key, group_by="group")
    return Backend(spec, OpTimes(spec, pred), Calibrations(), "predictor",
                   f"GEMMs learned on {len(rows)} NeuSight rows of {spec.key}{what}")


def backends(device: str, gemms: pd.DataFrame) -> dict[str, Backend]:
    """The roofline and the learned-GEMM backend of one GPU (torch device name)."""
    spec = get_device(device)
    out = {"roofline": Backend(spec, OpTimes(spec, None), Calibrations(), "roofline",
                               f"catalogue {spec.key} + roofline")}
    sub = gemms[gemms["device"] == device]
    if len(sub):
        out["learned"] = learned_backend(spec, sub, "")
    return out


def families(model: str, seq: int, batch: int, train: bool) -> set[str]:
    """NeuSight shape families (`common.neusight_family`) of the model's GEMMs: a linear
    layer's weight `linear:{in}x{out}`, a batched matmul's per-sample `bmm:{m}x{k}x{n}`."""
    out = set()
    for p in hf_eager.parts(model, seq, train):
        ops = count_part(p, batch, DTYPE, train, fused_kernels=True).ops
        if ops is None or not len(ops):
            continue
        for r in ops[ops["op"].astype(str).isin(GEMM_OPS)].itertuples(index=False):
            m, n, k = int(r.m), int(r.n), int(r.k)
            out.add(f"bmm:{m}x{k}x{n}" if str(r.op) == "bmm" else f"linear:{k}x{n}")
    return out


def predict(model: str, seq: int, batch: int, train: bool, backend: Backend,
            loss_forward: bool = False, compiled: bool = False) -> tuple[float, float]:
    """(forward s, backward s) of one NeuSight run; the loss's forward only if asked
    (NeuSight's single-GPU runs do not time it, its distributed runs do); `compiled`: the
    torch.compile'd model (`perfmodel.predict.fusion`)."""
    parts = hf_eager.parts(model, seq, train)
    counts = [count_part(p, batch, DTYPE, train, fused_kernels=True, compiled=compiled)
              for p in parts]
    pred = assemble(model, parts, counts, batch, DTYPE, train, "none", backend, True)
    fwd, bwd = pred.forward.value, pred.backward.value
    if train and not loss_forward:
        x = backend.part_features(parts[-1], counts[-1], batch, DTYPE, True)[0]
        fwd -= float(np.asarray(backend.calibration.get(DTYPE).beta)[:HALF] @ x[:HALF])
    return fwd, bwd


def gemm_shapes(model: str, seq: int, batch: int, train: bool) -> set[tuple]:
    """The (m, n, k, b) of every GEMM the model runs."""
    shapes = set()
    for p in hf_eager.parts(model, seq, train):
        ops = count_part(p, batch, DTYPE, train, fused_kernels=True).ops
        if ops is None or not len(ops):
            continue
        g = ops[ops["op"].astype(str).isin(GEMM_OPS)]
        if not len(g):
            continue
        shapes |= {tuple(int(v) for v in r) for r in g[["m", "n", "k", "b"]].itertuples(index=False)}
    return shapes


def multi_gpu(model: str, seq: int, batch: int, option: str, backend: Backend):
    """perfmodel's step prediction of a NeuSight 4-GPU run: `dp4` (batch / 4 per GPU),
    `tp4` (Megatron tensor parallel), `pp4_1` (4 stages, one micro-batch)."""
    from perfmodel.llm.memory import Parallelism
    from perfmodel.models.transformer_config import TransformerConfig

    c = hf_eager.CONFIGS[model]
    cfg = TransformerConfig(name=model, d_model=c.d_model, n_layers=c.n_layers,
                            n_heads=c.n_heads, d_ff=c.d_ff, vocab_size=c.vocab,
                            seq_len=c.positions)
    n = int(option[2]) if option[:2] in ("dp", "tp", "pp") else 1
    par = Parallelism(**{option[:2]: n})
    micro = batch // n if option.startswith("dp") else batch
    return predict_training_step(cfg, batch=batch, seq_len=seq, gpus=n, micro_batch=micro,
                                 precision="fp32", device=backend, parallel=par)


def err(pred: float, meas: float) -> float:
    return pred / meas - 1.0


def summary(df: pd.DataFrame, by: str | None) -> pd.DataFrame:
    rows = []
    groups = [("all", df)] if by is None else list(df.groupby(by, sort=False))
    for key, g in groups:
        row = {by or "rows": key, "n": len(g)}
        for m in METHODS:
            e = g[f"{m}_err"].dropna().abs()
            if len(e):
                row[f"{m} median"] = f"{np.median(e):.1%}"
                row[f"{m} mean"] = f"{e.mean():.1%}"
                row[f"{m} <=10%"] = f"{(e <= 0.10).mean():.0%}"
        rows.append(row)
    return pd.DataFrame(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--csv", help="also write the per-row table here")
    args = ap.parse_args()
    shared_data()
    t0 = time.time()
    e2e = load_neusight_e2e()
    gemms = pd.concat([load_neusight("linear"), load_neusight("bmm")], ignore_index=True)
    known = e2e["model"].isin(list(hf_eager.CONFIGS)) & e2e["device"].map(is_known)
    skipped = e2e[~known]
    e2e = e2e[known]
    single = e2e[e2e["option"] == ""].reset_index(drop=True)
    rows, fit_shapes, held = [], {}, {}
    for device, runs in single.groupby("device", sort=False):
        bk = backends(device, gemms)
        sub = gemms[gemms["device"] == device]
        fit_shapes[device] = {tuple(int(v) for v in r)
                              for r in sub[["m", "n", "k", "b"]].itertuples(index=False)}
        unseen = {}
        if len(sub):
            spec = get_device(device)
            for model, mr in runs.groupby("model", sort=False):
                fam = set().union(*(families(model, x.seq, x.batch, x.mode == "train")
                                    for x in mr.itertuples(index=False)))
                keep = sub[~sub["group"].isin(fam)]
                unseen[model] = learned_backend(spec, keep, f" without {model}'s shapes")
                held[(spec.key, model)] = len(sub) - len(keep)
        for r in runs.itertuples(index=False):
            train = r.mode == "train"
            bk_row = dict(bk, **({"unseen": unseen[r.model]} if r.model in unseen else {}))
            row = {"device": get_device(device).key, "model": r.model, "mode": r.mode,
                   "seq": r.seq, "batch": r.batch, "measured_s": r.e2e_s}
            for m, b in bk_row.items():
                fwd, bwd = predict(r.model, r.seq, r.batch, train, b)
                row[f"{m}_s"] = fwd + bwd
                row[f"{m}_err"] = err(fwd + bwd, r.e2e_s)
                if train and r.fwd_s > 0 and r.bwd_s > 0:
                    row[f"{m}_fwd_err"] = err(fwd, r.fwd_s)
                    row[f"{m}_bwd_err"] = err(bwd, r.bwd_s)
            shapes = gemm_shapes(r.model, r.seq, r.batch, train)
            row["gemm_seen"] = f"{len(shapes & fit_shapes[device])}/{len(shapes)}"
            rows.append(row)
    df = pd.DataFrame(rows)
    pd.set_option("display.width", 250)
    pd.set_option("display.max_rows", 500)
    print("Whole-model GPU time vs NeuSight end-to-end measurements (float32, TF32 off, "
          "single GPU, eager)\n")
    pct = lambda v: f"{v:+.1%}" if v == v else ""  # noqa: E731
    show = pd.DataFrame({c: df[c] for c in ("device", "model", "mode", "seq", "batch")})
    show["measured"] = (df["measured_s"] * 1e3).map("{:.1f} ms".format)
    show["learned"] = (df["learned_s"] * 1e3).map(lambda v: f"{v:.1f} ms" if v == v else "-")
    for m in METHODS:
        show[f"{m} err"] = df[f"{m}_err"].map(pct)
    for part in ("fwd", "bwd"):
        show[f"learned {part} err"] = df.get(f"learned_{part}_err", pd.Series(np.nan, df.index)).map(pct)
    show["gemm_seen"] = df["gemm_seen"]
    print(show.to_string(index=False))
    print("\nmedian / mean |error| and share within 10%, per method (e2e time):")
    print(summary(df, None).to_string(index=False))
    print(summary(df, "mode").to_string(index=False))
    print(summary(df, "device").to_string(index=False))
    tr = df[df["mode"] == "train"]
    for m in METHODS:
        if f"{m}_fwd_err" in tr:
            f, b = tr[f"{m}_fwd_err"].dropna().abs(), tr[f"{m}_bwd_err"].dropna().abs()
            print(f"  {m}: training forward median |error| {np.median(f):.1%}, backward "
                  f"{np.median(b):.1%} ({len(f)} runs that report both)")
    print("  gemm_seen: the model's distinct GEMM shapes (m, n, k, b) present exactly in the "
          "`learned` fit data; `unseen` fits dropped "
          + ", ".join(f"{n} rows ({k[0]} {k[1]})" for k, n in list(held.items())[:3])
          + f", ... ({min(held.values())}-{max(held.values())} rows per GPU and model)")

    multi = e2e[e2e["option"].str.match(r"^(dp|tp|pp)")].reset_index(drop=True)
    if len(multi):
        print("\n4-GPU runs (training step without the optimizer: forward with the loss, "
              "backward), predicted by perfmodel's LLM step model (`predict_training_step`, "
              "perfmodel's GPT of the same shape):")
        out = []
        for r in multi.itertuples(index=False):
            spec = get_device(r.device)
            row = {"device": spec.key, "model": r.model, "seq": r.seq, "batch": r.batch,
                   "option": r.option, "measured": f"{r.e2e_s * 1e3:.1f} ms"}
            for m, b in backends(r.device, gemms).items():
                p = multi_gpu(r.model, r.seq, r.batch, r.option, b)
                t = p.step_s - p.optimizer_s
                row[m] = f"{t * 1e3:.1f} ms ({err(t, r.e2e_s):+.1%})"
                row["comm"] = f"{(p.allreduce_s + p.tp_comm_s + p.pp_comm_s) * 1e3:.1f} ms"
            out.append(row)
        print(pd.DataFrame(out).fillna("").to_string(index=False))
    fused = e2e[e2e["option"] == "fusion"].reset_index(drop=True)
    if len(fused):
        print("\ntorch.compile runs (inference): predicted compiled, and eager for reference")
        out, errs, eager_errs = [], {m: [] for m in METHODS[:2]}, {m: [] for m in METHODS[:2]}
        for device, runs in fused.groupby("device", sort=False):
            bk = backends(device, gemms)
            for r in runs.itertuples(index=False):
                eager = single[(single["device"] == device) & (single["model"] == r.model)
                               & (single["seq"] == r.seq) & (single["batch"] == r.batch)
                               & (single["mode"] == r.mode)]
                row = {"device": get_device(device).key, "model": r.model, "seq": r.seq,
                       "batch": r.batch, "measured": f"{r.e2e_s * 1e3:.1f} ms",
                       "eager measured": (f"{eager['e2e_s'].iloc[0] * 1e3:.1f} ms"
                                          if len(eager) else "-")}
                for m, b in bk.items():
                    t = sum(predict(r.model, r.seq, r.batch, False, b, compiled=True))
                    te = sum(predict(r.model, r.seq, r.batch, False, b))
                    errs[m].append(err(t, r.e2e_s))
                    eager_errs[m].append(err(te, r.e2e_s))
                    row[f"{m}"] = f"{t * 1e3:.1f} ms ({err(t, r.e2e_s):+.1%})"
                    row[f"{m} eager"] = f"{err(te, r.e2e_s):+.1%}"
                out.append(row)
        print(pd.DataFrame(out).to_string(index=False))
        print("  median |error| against the compiled runs: " + ", ".join(
            f"{m} {np.median(np.abs(e)):.1%} compiled, {np.median(np.abs(eager_errs[m])):.1%} "
            f"eager ({len(e)} runs)" for m, e in errs.items() if e))
    print(f"\nnot predicted: {len(skipped)} runs of models or GPUs outside hf_eager / the "
          f"catalogue ({', '.join(sorted(skipped['model'].unique()))})")
    print(f"({time.time() - t0:.0f} s)")
    if args.csv:
        df.to_csv(args.csv, index=False)


if __name__ == "__main__":
    main()
