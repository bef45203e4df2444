"""MFU/HFU: published figures reproduced within 3%, CLI contract, predicted-mode hook."""
from __future__ import annotations

import json

import pytest

from perfmodel.cli import main
from perfmodel.errors import PerfmodelError
from perfmodel.llm import mfu as mfu_mod
from perfmodel.llm.mfu import estimate_mfu, register_step_time_predictor
from perfmodel.llm.published import PUBLISHED_CASES, reproduce


@pytest.mark.parametrize("case", PUBLISHED_CASES, ids=lambda c: f"{c.source[:20]}|{c.label}")
def test_reproduces_published_figures(case):
    ours, err = reproduce(case)
    assert abs(err) <= 0.03, f"{case.label}: ours {ours:.4g} vs published {case.published:.4g}"


def test_palm_hfu_needs_its_remat_fraction():
    """PaLM's 57.8% HFU: not full recomputation (that would be 61.6%)."""
    kw = dict(gpus=6144, precision="bf16", device="tpu-v4", tokens_per_s=238.3e3 / 6144,
              attention="full", micro_batch=1)
    full = estimate_mfu("PaLM-540B", 2048, 2048, recompute="full", **kw)
    assert full.mfu == pytest.approx(0.462, rel=0.01)
    assert full.hfu == pytest.approx(0.616, abs=0.005)
    part = estimate_mfu("PaLM-540B", 2048, 2048, recompute=0.75, **kw)
    assert part.hfu == pytest.approx(0.578, rel=0.01)


def test_step_time_and_tokens_per_s_agree():
    a = estimate_mfu("Llama-3-8B", 128, 8192, gpus=8, precision="bf16", device="h100",
                     tokens_per_s=10000)
    b = estimate_mfu("Llama-3-8B", 128, 8192, gpus=8, precision="bf16", device="h100",
                     step_time=a.step_time_s)
    assert b.mfu == pytest.approx(a.mfu)
    assert a.step_time_s == pytest.approx(128 * 8192 / (10000 * 8))
    assert a.mfu == pytest.approx(a.model_tflops_per_gpu * 1e12 / 989.4e12)
    causal = a.model_flops_per_token
    full = estimate_mfu("Llama-3-8B", 128, 8192, gpus=8, device="h100", tokens_per_s=10000,
                        attention="full").model_flops_per_token
    assert full - causal == pytest.approx(6 * 32 * 8192 * 4096)


def test_fits_in_memory():
    small = estimate_mfu("gpt2", 8, 1024, device="rtx-4090", step_time=0.5)
    assert small.fits_in_memory
    big = estimate_mfu("Llama-2-7B", 8, 4096, gpus=8, device="h100", step_time=1.0)
    assert not big.fits_in_memory  # 16 B/param alone is 100 GiB > 80 GiB without ZeRO
    assert big.memory.total > 6.7e9 * 16


def test_bad_inputs():
    with pytest.raises(PerfmodelError, match="not both"):
        estimate_mfu("gpt2", 8, step_time=1, tokens_per_s=5)
    with pytest.raises(PerfmodelError, match="positive"):
        estimate_mfu("gpt2", 8, step_time=-1)
    with pytest.raises(PerfmodelError, match="must be a number"):
        estimate_mfu("gpt2", 8, tokens_per_s="fast")
    with pytest.raises(PerfmodelError, match="smaller than"):
        estimate_mfu("gpt2", 2, gpus=8, step_time=1)
    with pytest.raises(PerfmodelError, match="no dense bfloat16"):
        estimate_mfu("gpt2", 8, device="v100", step_time=1)
    with pytest.raises(PerfmodelError, match="unknown device"):
        estimate_mfu("gpt2", 8, device="h1000", step_time=1)


def test_predicted_mode_hook(monkeypatch):
    monkeypatch.setattr(mfu_mod, "_STEP_TIME_PREDICTOR", None)
    with pytest.raises(PerfmodelError, match="predicted mode needs"):
        estimate_mfu("gpt2", 8, device="rtx-4090")
    calls = {}

    def fake(cfg, **kw):
        calls.update(kw)
        return 0.25

    register_step_time_predictor(fake)
    try:
        r = estimate_mfu("gpt2", 8, device="rtx-4090")
    finally:
        register_step_time_predictor(None)
    assert r.mode == "predicted" and r.to_dict()["pred_step_time_s"] == 0.25
    assert calls["batch"] == 8 and calls["seq_len"] == 1024 and calls["device"].key == "rtx-4090"
    assert calls["parallel"].dp == 1 and calls["micro_batch"] == 8


def test_cli_json(capsys, tmp_path):
    rc = main(["mfu", "--model", "Llama-3-70B", "--batch", "128", "--seq", "8192", "--gpus",
               "64", "--precision", "fp8", "--tokens-per-s", "1602", "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("model_flops_per_token", "model_tflops_per_gpu", "mfu", "hfu",
                "fits_in_memory", "pred_step_time_s"):
        assert key in out
    assert out["model_tflops_per_gpu"] == pytest.approx(719, rel=0.01)
    assert out["pred_step_time_s"] is None and out["fits_in_memory"] is False
    cfg = tmp_path / "tiny.json"
    cfg.write_text(json.dumps({"name": "tiny", "d_model": 256, "n_layers": 4, "n_heads": 4,
                               "d_ff": 1024, "vocab_size": 1000, "seq_len": 128}))
    assert main(["mfu", "--model", str(cfg), "--batch", "4", "--step-time", "0.1",
                 "--device", "t4", "--precision", "fp16", "--recompute", "full"]) == 0
    text = capsys.readouterr().out
    assert "MFU" in text and "tiny" in text


def test_cli_errors_are_one_line(capsys):
    assert main(["mfu", "--model", "llama-9b", "--batch", "8", "--step-time", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "close matches" in err
    assert main(["mfu", "--model", "gpt2", "--batch", "8", "--seq", "0", "--step-time", "1"]) == 2
    assert "seq must be a whole number >= 1" in capsys.readouterr().err


def test_cli_predicted_mode_names_its_backend(capsys):
    """Without a measured throughput the step time comes from perfmodel.predict."""
    assert main(["mfu", "--model", "gpt2", "--batch", "8", "--device", "rtx-4090"]) == 0
    out = capsys.readouterr().out
    assert "(predicted)" in out and "predicted with" in out and "rtx-4090" in out


def test_published_layouts_fit_in_memory():
    """Runs with a published layout happened, so they must fit: all A100/H100 ones do; the
    B200 405B run is estimated within 1% above its 180 GiB (see the report). Without their
    sharding they need more memory, and do not fit where Adam states exceed one GPU."""
    cases = [c for c in PUBLISHED_CASES if c.layout_published]
    assert len(cases) == 16
    for c in cases:
        r = c.run()
        assert r.memory.total <= 1.01 * r.device.memory_bytes, c.label
        if r.device.key != "b200":
            assert r.fits_in_memory, c.label
        plain = estimate_mfu(c.model, c.batch, c.seq_len, gpus=c.gpus, precision=c.precision,
                             device=c.device, tokens_per_s=c.tokens_per_s_per_gpu,
                             step_time=c.step_time, micro_batch=1)
        assert plain.memory.total > r.memory.total, c.label
        if 16 * r.params > r.device.memory_bytes:  # Adam states alone exceed one GPU
            assert not plain.fits_in_memory, c.label


def test_parallel_layout_errors():
    with pytest.raises(PerfmodelError, match="multiple of tp x pp x cp"):
        estimate_mfu("Llama-3-70B", 128, gpus=64, tp=3, step_time=1)
    with pytest.raises(PerfmodelError, match="ZeRO"):
        estimate_mfu("Llama-3-70B", 128, gpus=64, zero=4, step_time=1)


def test_mfu_against_the_profiles_measured_peak(monkeypatch):
    """Beside the catalogue peak, MFU against the fastest GEMM the device's profile
    measured (`gemm_peaks`). A CPU profile measured on one thread sets a predicted step
    against one core's share of the catalogue peak; a measured run's throughput (every
    core) against the one-thread GEMM peak times the cores."""
    from perfmodel.hardware.catalogue import get_device

    monkeypatch.setattr(mfu_mod, "_profile_facts", lambda dev: (1, {"float32": 1.0e11}))
    monkeypatch.setattr(mfu_mod, "_STEP_TIME_PREDICTOR", lambda cfg, **kw: 10.0)
    r = estimate_mfu("gpt2", 8, 128, device="cpu", precision="fp32")
    cpu = get_device("cpu")
    cores = max(cpu.sm_count, 1)
    assert r.peak_flops == pytest.approx(cpu.peak("float32") / cores)
    assert r.mfu_measured_peak == pytest.approx(r.model_flops_per_s_per_gpu / 1.0e11)
    d = r.to_dict()
    assert d["measured_peak_tflops"] == pytest.approx(0.1) and d["mfu_measured_peak"] > 0
    m = estimate_mfu("gpt2", 8, 128, device="cpu", precision="fp32", step_time=10.0)
    assert m.peak_flops == pytest.approx(cpu.peak("float32"))
    assert m.measured_peak_flops == pytest.approx(1.0e11 * cores)
    # a GPU without a profile: no measured peak, the full catalogue peak
    monkeypatch.setattr(mfu_mod, "_profile_facts", lambda dev: (None, {}))
    g = estimate_mfu("gpt2", 8, 128, device="h100", step_time=1.0)
    assert g.mfu_measured_peak is None and g.to_dict()["measured_peak_tflops"] is None
    assert g.peak_flops == get_device("h100").peak("bfloat16")


def test_gemm_peaks_of_a_real_profile():
    """The AMD profile's fastest GEMMs (one thread): float32 near 100 GFLOP/s, bfloat16
    faster; the float16 rows (no fast CPU kernel) are slower still."""
    from perfmodel.predict.device import datasets_dir, gemm_peaks, read_profile_rows

    prof = datasets_dir() / "cpu-amd-epyc"
    if not prof.is_dir():
        pytest.skip("no AMD profile")
    peaks = gemm_peaks(read_profile_rows(prof))
    assert set(peaks) >= {"float32", "bfloat16"}
    assert 5e10 < peaks["float32"] < peaks["bfloat16"] < 1e12
    assert peaks.get("float16", 0) < peaks["float32"]


def test_cli_warns_past_the_published_context(capsys):
    """A sequence past the model's context is answered, with a warning that says what it
    means for the model (learned positions grow; rotary ones run untrained)."""
    assert main(["mfu", "--model", "gpt2", "--batch", "8", "--seq", "4096", "--device",
                 "h100", "--step-time", "1"]) == 0
    err = capsys.readouterr().err
    assert "beyond gpt2's 1024-token context: its learned position table grows" in err
    assert main(["mfu", "--model", "Llama-3.1-8B", "--batch", "1", "--seq", "16384",
                 "--device", "h100", "--step-time", "1"]) == 0
    assert "context" not in capsys.readouterr().err  # 128k context
    assert main(["mfu", "--model", "gpt2", "--batch", "8", "--device", "h100",
                 "--step-time", "1"]) == 0
    assert "context" not in capsys.readouterr().err
