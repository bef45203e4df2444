"""Whole-model GPU predictions against NeuSight's end-to-end measurements (public data)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import bench_gpu_e2e as bench  # noqa: E402
import hf_eager  # noqa: E402
from perfmodel.predict.counts import count_part  # noqa: E402


@pytest.mark.parametrize("name,train,params", [
    # the Hugging Face models' own parameter counts (tied LM heads counted once)
    ("gpt2_large", False, 774_030_080),
    ("opt_13", False, 1_315_758_080),
    ("bert_large", False, 335_143_938),  # BertForSequenceClassification, 2 labels
])
def test_rebuilt_models_have_the_hf_parameter_counts(name, train, params):
    parts = hf_eager.parts(name, 128, train)
    total = sum(count_part(p, 1, "float32", train).params - p.shared_params for p in parts)
    assert total == params


def test_training_runs_dropout_and_the_lm_loss_backward():
    parts = hf_eager.parts("gpt2_large", 256, True)
    assert parts[-1].group == "loss"
    block = count_part(parts[1], 2, "float32", True, fused_kernels=True).ops
    aten = block["aten"].astype(str)
    assert aten.str.contains("native_dropout").sum() == 3 * 2  # three dropouts, fwd + bwd
    infer = count_part(hf_eager.parts("gpt2_large", 256, False)[1], 2, "float32", False,
                       fused_kernels=True).ops
    assert not infer["aten"].astype(str).str.contains("dropout").any()


def test_h100_whole_models_within_10_percent(shared_data):
    """On H100, the GEMMs learned from NeuSight's per-op table put the whole-model times of
    its 18 single-GPU runs within 10% median; the bare roofline is below every one."""
    from common import load_neusight, load_neusight_e2e

    e2e = load_neusight_e2e()
    runs = e2e[(e2e["device"] == "NVIDIA H100 80GB HBM3") & (e2e["option"] == "")
               & e2e["model"].isin(list(hf_eager.CONFIGS))]
    assert len(runs) == 18
    gemms = pd.concat([load_neusight("linear"), load_neusight("bmm")], ignore_index=True)
    bk = bench.backends("NVIDIA H100 80GB HBM3", gemms)
    errs, roof = [], []
    for r in runs.itertuples(index=False):
        train = r.mode == "train"
        errs.append(sum(bench.predict(r.model, r.seq, r.batch, train, bk["learned"])) / r.e2e_s - 1)
        roof.append(sum(bench.predict(r.model, r.seq, r.batch, train, bk["roofline"])) / r.e2e_s - 1)
    assert np.median(np.abs(errs)) <= 0.10
    assert max(roof) < 0


def test_h100_compiled_runs_within_10_percent(shared_data):
    """NeuSight's torch.compile'd inference runs on H100, predicted with compiled=True."""
    from common import load_neusight, load_neusight_e2e

    e2e = load_neusight_e2e()
    runs = e2e[(e2e["device"] == "NVIDIA H100 80GB HBM3") & (e2e["option"] == "fusion")]
    assert len(runs) == 4
    gemms = pd.concat([load_neusight("linear"), load_neusight("bmm")], ignore_index=True)
    learned = bench.backends("NVIDIA H100 80GB HBM3", gemms)["learned"]
    errs, eager = [], []
    for r in runs.itertuples(index=False):
        errs.append(sum(bench.predict(r.model, r.seq, r.batch, False, learned, compiled=True))
                    / r.e2e_s - 1)
        eager.append(sum(bench.predict(r.model, r.seq, r.batch, False, learned)) / r.e2e_s - 1)
    assert np.median(np.abs(errs)) <= 0.10
    assert np.median(np.abs(errs)) < np.median(np.abs(eager))
