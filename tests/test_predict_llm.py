"""Predicted training step of data-parallel transformers (the predicted mode of `mfu`)."""
from __future__ import annotations

import pytest

from perfmodel.errors import PerfmodelError
from perfmodel.hardware.catalogue import get_device
from perfmodel.models.transformer_config import TransformerConfig
from perfmodel.predict.llm import (INTERCONNECT_BW, interconnect_bandwidth,
                                   predict_training_step)

CFG = TransformerConfig(name="tiny", d_model=128, n_layers=3, n_heads=4, d_ff=512,
                        vocab_size=256, seq_len=64)


pytestmark = pytest.mark.usefixtures("no_shipped_profiles")


def test_allreduce_and_accumulation_terms():
    h100 = get_device("h100")
    one = predict_training_step(CFG, batch=8, seq_len=64, gpus=1, precision="bf16", device=h100)
    assert one.allreduce_s == 0 and one.micro_steps == 1
    four = predict_training_step(CFG, batch=32, seq_len=64, gpus=4, precision="bf16",
                                 device=h100)
    params = 256 * 128 + 64 * 128 + 3 * (2 * 2 * 128 + 4 * 128 * 128 + 4 * 128
                                         + 2 * 128 * 512 + 512 + 128) + 2 * 128
    grad_bytes = 2 * params  # bf16 gradients
    assert four.allreduce_s == pytest.approx(2 * 3 / 4 * grad_bytes / INTERCONNECT_BW["h100-sxm"])
    assert four.forward_s == pytest.approx(one.forward_s)  # 8 sequences per GPU either way
    acc = predict_training_step(CFG, batch=8, seq_len=64, gpus=1, micro_batch=2,
                                precision="bf16", device=h100)
    assert acc.micro_steps == 4
    assert acc.step_s == pytest.approx(4 * (acc.forward_s + acc.backward_s) + acc.optimizer_s)
    full = predict_training_step(CFG, batch=8, seq_len=64, gpus=1, precision="bf16",
                                 device=h100, recompute="full")
    assert full.backward_s > one.backward_s
    assert interconnect_bandwidth(h100, 1e9) == 1e9


def test_interconnect_table_uses_catalogue_keys():
    """Every GPU of the catalogue has its link, and every entry names a catalogue GPU (an
    entry under another spelling would silently fall back to PCIe Gen4)."""
    from perfmodel.hardware.catalogue import GPUS

    keys = {g.key for g in GPUS}
    assert set(INTERCONNECT_BW) == keys
    assert interconnect_bandwidth(get_device("A100-SXM4-40GB")) == 300e9
    assert interconnect_bandwidth(get_device("V100-PCIE-32GB")) == 16e9


def test_mfu_predicted_mode():
    import perfmodel.predict.llm  # noqa: F401  (registers the step-time predictor)
    from perfmodel.llm.mfu import estimate_mfu

    r = estimate_mfu(CFG, 16, 64, gpus=2, precision="bf16", device="h100")
    d = r.to_dict()
    assert d["mode"] == "predicted" and d["pred_step_time_s"] > 0
    assert d["fits_in_memory"] is True and 0 < d["mfu"] < 1 and d["hfu"] >= d["mfu"]


def test_unsupported_layouts_raise():
    from perfmodel.llm.memory import Parallelism

    with pytest.raises(PerfmodelError, match="data parallelism only"):
        predict_training_step(CFG, batch=8, seq_len=64, gpus=2, precision="bf16",
                              device=get_device("h100"), parallel=Parallelism(dp=1, tp=2))
    with pytest.raises(PerfmodelError, match="precisions"):
        predict_training_step(CFG, batch=8, seq_len=64, precision="fp8",
                              device=get_device("h100"))
