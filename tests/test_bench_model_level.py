"""The model-level benchmark's scoring: candidates compete only within one base, factor,
batch and dtype."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_model_level.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_model_level", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _rows(dtype, measured, pred):
    return [dict(model="gpt2", batch=8, factor=4.0, dtype=dtype, strategy=s, measured_s=m,
                 pred_s=p, measured_noise_s=0.01 * m, error=p / m - 1, in_interval=True)
            for s, m, p in zip(("d", "w", "s"), measured, pred)]


def test_score_ranks_each_dtype_on_its_own():
    # bfloat16 runs everything 2x faster; within each dtype the prediction orders correctly
    rows = pd.DataFrame(_rows("tf32", (1.0, 1.2, 1.4), (1.0, 1.2, 1.4))
                        + _rows("bfloat16", (0.5, 0.6, 0.7), (0.52, 0.61, 0.72)))
    s = _bench().score(rows)
    assert s["top1"] and s["spearman"] == 1.0 and s["wrong"] == 0
    # one dtype ranked wrongly shows up
    bad = pd.DataFrame(_rows("tf32", (1.0, 1.2, 1.4), (1.3, 1.2, 1.4))
                       + _rows("bfloat16", (0.5, 0.6, 0.7), (0.52, 0.61, 0.72)))
    s = _bench().score(bad)
    assert not s["top1"] and s["spearman"] < 1.0 and s["wrong"] == 1
