"""Shared helpers of the benchmarks: locate ../shared/data and turn each public source into
the plain measurement schema (`op, m, n, k, b, dtype, time_s`, plus `device` and `group`).

GEMM convention: C[m,n] = A[m,k] @ B[k,n], `b` batched GEMMs. The public data is only read
here, never copied into the repository; when it is absent the benchmarks print why and skip.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"

# Catalogue keys (perfmodel.hardware) of the GPUs in the public data. Vidur profiled on Azure
# VMs: its A100 is taken as the 80 GB PCIe part (NC A100 v4; 300 W, which fits the ~240
# TFLOP/s it reaches on large GEMMs), its H100 as the SXM5 (ND H100 v5). Same fp16 peaks as
# the SXM A100 either way; only the bandwidth (1935 vs 2039 GB/s) enters the features.
VIDUR_DEVICES = {"a100": "a100-pcie-80gb", "h100": "h100-sxm"}


def shared_data(required: bool = True) -> Path | None:
    """Path of ../shared/data; without it prints a message and exits 0 (or returns None)."""
    if SHARED_DATA.is_dir():
        return SHARED_DATA
    if required:
        print(f"skipped: public validation data not found at {SHARED_DATA}")
        sys.exit(0)
    return None


def _read(rel: str, **kw) -> pd.DataFrame:
    return pd.read_csv(shared_data() / rel, **kw)


def load_vidur() -> pd.DataFrame:
    """Vidur's fp16 projection GEMMs of 8 LLMs on A100 / H100.

    M = tokens, N = output features, K = reduction dim, so m=M, n=N, k=K, b=1; the time is
    the median of 20 timed runs (ms -> s). Group: the LLM. Devices: see VIDUR_DEVICES.
    """
    v = _read("vidur/llm_gemm_a100_h100.csv")
    return pd.DataFrame({
        "op": "linear", "m": v["M"], "n": v["N"], "k": v["K"], "b": 1,
        "dtype": v["dtype"].astype(str), "time_s": v["time_ms_median"] / 1e3,
        "device": v["gpu"].map(VIDUR_DEVICES), "group": v["model"].astype(str),
        "layer": v["op"].astype(str), "tp": v["tp"],
    })


def neusight_family(op: str, df: pd.DataFrame) -> pd.Series:
    """Shape family of NeuSight rows (before renaming to m,n,k,b).

    linear: the layer, i.e. the weight shape Linear(N -> K), all token counts together;
    bmm: the per-sample product (M,N)@(N,K), all batch sizes B together. A held-out family
    is a layer shape (linear) or a matrix shape (bmm) the fit never saw at any size.
    """
    if op == "linear":
        return "linear:" + df["N"].astype(str) + "x" + df["K"].astype(str)
    return "bmm:" + df["M"].astype(str) + "x" + df["N"].astype(str) + "x" + df["K"].astype(str)


def load_neusight(op: str) -> pd.DataFrame:
    """NeuSight fp32 (TF32 off) `nn.Linear` or `torch.bmm` latencies on 8 GPUs.

    linear: input (B, M, N) through Linear(N, K): m = B*M, k = N, n = K, b = 1.
    bmm: (B, M, N) @ (B, N, K): b = B, m = M, k = N, n = K. Latency ms -> s; dtype float32
    (SIMT FP32, TF32 disabled). `device` is the torch device name; group = shape family.
    """
    if op not in ("linear", "bmm"):
        raise ValueError(f"NeuSight has linear and bmm GEMMs, not {op!r}")
    d = _read(f"neusight/{op}.csv")
    if op == "linear":
        m, n, k, b = d["B"] * d["M"], d["K"], d["N"], 1
    else:
        m, n, k, b = d["M"], d["K"], d["N"], d["B"]
    return pd.DataFrame({
        "op": op, "m": m, "n": n, "k": k, "b": b, "dtype": "float32",
        "time_s": d["Latency"] / 1e3, "device": d["Device"].astype(str),
        "group": neusight_family(op, d),
    })


def load_neusight_e2e() -> pd.DataFrame:
    """NeuSight's end-to-end latencies of whole Hugging Face models (float32, TF32 off).

    One row per (GPU, model, mode, seq, batch, option): `e2e_s` (forward, plus backward when
    training), `fwd_s`, `bwd_s` (0 for inference and for the multi-GPU rows, which report
    only the total), ms -> s. `device` is the torch device name (NeuSight's folder name with
    spaces restored); `option` is empty for the plain single-GPU runs, `fusion` for
    `torch.compile`d ones, `dp4`/`tp4`/`pp4_1` for 4-GPU runs.
    """
    d = _read("neusight/e2e_labels.csv")
    return pd.DataFrame({
        "device": d["device_dir"].astype(str).str.replace("_", " "), "model": d["model"].astype(str),
        "mode": d["mode"].astype(str), "seq": d["seqlen"].astype(int), "batch": d["batch"].astype(int),
        "option": d["option"].fillna("").astype(str), "e2e_s": d["e2e_latency"] / 1e3,
        "fwd_s": d["fw_latency"] / 1e3, "bwd_s": d["bwall_latency"] / 1e3,
    })


_DEEPBENCH_DTYPES = {
    "Float": "float32",
    "16 bit inputs, 16 bit multiplication, 32 bit addition": "float16",
    "16 bit inputs, 32 bit multiplication, 32 bit addition": "float16",
    "GEMM, Conv: Int8 multiplication, 32 bit accumulation": "int8",
}


def load_deepbench_gemm() -> pd.DataFrame:
    """DeepBench cuBLAS GEMMs (old stacks, 2017-2019): C[M,N] with reduction K; ms -> s.

    dtype from `precision_note` (float32, float16 inputs, int8); group = the application
    the shape comes from (or the shape itself when unnamed).
    """
    d = _read("deepbench/deepbench_nvidia_gemm_tidy.csv")
    dtype = d["precision_note"].map(_DEEPBENCH_DTYPES)
    shape = d["M"].astype(str) + "x" + d["N"].astype(str) + "x" + d["K"].astype(str)
    app = d["app"].astype(object).where(d["app"].notna(), shape)
    out = pd.DataFrame({
        "op": "gemm", "m": d["M"], "n": d["N"], "k": d["K"], "b": 1, "dtype": dtype,
        "time_s": d["time_ms"] / 1e3, "device": d["gpu"].astype(str), "group": app.astype(str),
        "trans": d["transA"].astype(str) + d["transB"].astype(str),
    })
    return out[out["dtype"].notna() & (out["time_s"] > 0)].reset_index(drop=True)


def load_llmcompass_matmul(gpu: str = "A100") -> pd.DataFrame:
    """LLMCompass fp16 matmul sweep (headerless `M, N, K, 0.19ms, 101.7Tflops`) on A100 80GB.

    Taken as the SXM part: it reaches 290 TFLOP/s (93% of the fp16 peak), more than a 300 W
    PCIe card sustains.
    """
    path = shared_data() / f"llmcompass/matmul_{gpu}.csv"
    raw = pd.read_csv(path, header=None, names=["M", "N", "K", "time", "tflops"], skipinitialspace=True)
    ms = raw["time"].astype(str).str.replace("ms", "", regex=False).astype(float)
    return pd.DataFrame({
        "op": "gemm", "m": raw["M"], "n": raw["N"], "k": raw["K"], "b": 1, "dtype": "float16",
        "time_s": ms / 1e3, "device": "a100-sxm-80gb" if gpu == "A100" else gpu,
        "group": "llmcompass",
    })


def own_gpu_profiles() -> list[Path]:
    """The project's own GPU profiles under datasets/ (directories with measurements.parquet)."""
    found = []
    for meta in sorted((ROOT / "datasets").glob("*/metadata.json")):
        if (meta.parent / "measurements.parquet").exists():
            found.append(meta.parent)
    return found


def gflops(df: pd.DataFrame) -> np.ndarray:
    """Achieved GFLOP/s of GEMM rows (2*b*m*n*k / time)."""
    return 2.0 * df["b"] * df["m"] * df["n"] * df["k"] / df["time_s"] / 1e9
