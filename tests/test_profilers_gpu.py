"""GPU paths of the profilers (skipped without a CUDA GPU)."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.gpu


def test_cuda_timer_matches_event_timing():
    import torch

    from profilers.device import open_device
    from profilers.timer import Timer

    dev = open_device("cuda:0")
    a = torch.randn(4096, 4096, device="cuda", dtype=torch.float16)
    timing = Timer(dev, budget_s=1.0).measure(lambda: a @ a)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(50):
        a @ a
    end.record()
    torch.cuda.synchronize()
    per = start.elapsed_time(end) / 1e3 / 50
    assert timing.median_s == pytest.approx(per, rel=0.15)
    assert timing.reps >= 3 and timing.iqr_s < timing.median_s


def test_cuda_timer_l2_flush_runs_one_execution_per_sample():
    import torch

    from profilers.device import open_device
    from profilers.timer import Timer

    dev = open_device("cuda:0")
    a = torch.randn(1024, 1024, device="cuda")
    timing = Timer(dev, budget_s=0.3, flush_l2=True).measure(lambda: a @ a)
    assert timing.inner == 1 and timing.median_s > 0


def test_fp8_gemm_where_supported():
    from profilers.device import open_device
    from profilers.measure import measure_point
    from profilers.points import Point
    from profilers.suites import get_suite

    dev = open_device("cuda:0")
    ok, why = dev.supports("float8_e4m3fn")
    if not ok:
        pytest.skip(why)
    suite = get_suite("gemm")
    assert any(p.dtype == "float8_e4m3fn" for p in suite.points(dev))
    point = Point.make("gemm", "gemm", "fwd", "float8_e4m3fn", m=4096, n=4096, k=4096, b=1)
    row = measure_point(suite, point, 0, dev)
    assert row["status"] == "ok", row["error"]
    assert row["flops"] == 2 * 4096 ** 3
    assert row["flops"] / row["time_s"] > 100e12  # FP8 tensor cores, far above fp32 SIMT


def test_gpu_profile_has_energy_memory_and_state(tmp_path):
    from profilers.runner import ProfileConfig, run_profile

    result = run_profile(ProfileConfig(out=tmp_path, device="cuda:0", suites=("gemm", "blocks"),
                                       budget_s=30), progress="none")
    ok = result.frame[result.frame["status"] == "ok"]
    assert len(ok) >= 5
    assert (ok["peak_bytes"] > 0).all() and ok["sm_clock_hz"].notna().all()
    if result.metadata.get("energy_counter"):
        assert (ok["energy_j"] > 0).all() and (ok["power_w"] > 0).all()
        # the counter's value, aligned; a window whose closing tick came late falls back
        # to the sampled power, so most rather than all
        assert ok["energy_source"].eq("nvml_counter").mean() >= 0.8
        counted = ok[ok["energy_source"] == "nvml_counter"]
        assert (counted["energy_tail_s"] >= 0).all() and (counted["energy_tail_s"] < 1.0).all()
    assert result.metadata["idle_power_w"] is None or result.metadata["idle_power_w"] > 0
    assert result.metadata["cuda_runtime"] and result.metadata["compute_capability"]
    if "energy_counter" in result.metadata:  # NVML answered
        assert result.metadata["driver"] and result.metadata["power_limit_w"] > 0


def test_every_vector_op_measures_on_the_gpu(brief):
    """The largest point of each vector op, phase and dtype runs on the GPU (float16 batch
    norm with half parameters, fwd_bwd of up to 2^28 elements), timed briefly."""
    from profilers.device import open_device
    from profilers.measure import measure_point
    from profilers.suites import get_suite

    dev = open_device("cuda:0")
    suite = get_suite("vector")
    largest = {}
    for p in suite.points(dev):
        key = (p.op, p.p["variant"], p.phase, p.dtype)
        if key not in largest or p.p["numel"] > largest[key].p["numel"]:
            largest[key] = p
    from profilers.suites.vector import GPU

    assert {k[3] for k in largest} == {d for d in GPU["dtypes"] if dev.supports(d)[0]}
    failed = []
    for point in largest.values():  # every point, so that one failure hides no other
        row = measure_point(brief(suite), point, 0, dev)
        if row["status"] != "ok" or not row["time_s"] > 0 or not row["peak_bytes"] > 0:
            failed.append((point.id, row["status"], row["error"]))
    assert not failed, failed


def test_attention_points_measure_on_the_gpu(brief):
    """The largest attention point of each phase, dtype, causal mask and grouped-query
    ratio runs on the GPU (flash, memory-efficient or cuDNN kernels; float32 and tf32
    with `enable_gqa`), timed briefly; its peak memory stays near the fused kernel's
    (no seq x seq score matrix per head: that is SDPA's math fallback)."""
    from profilers.device import open_device
    from profilers.measure import measure_point
    from profilers.suites import get_suite

    dev = open_device("cuda:0")
    suite = get_suite("attention")
    largest = {}
    for p in suite.points(dev):
        key = (p.phase, p.dtype, p.p["causal"], p.p["heads"] // p.p["kv_heads"])
        size = p.p["batch"] * p.p["heads"] * p.p["seq_q"] ** 2 * p.p["head_dim"]
        if key not in largest or size > largest[key][0]:
            largest[key] = (size, p)
    failed, math_path = [], []
    for _, point in largest.values():
        row = measure_point(brief(suite), point, 0, dev)
        if row["status"] != "ok" or not row["time_s"] > 0 or not row["peak_bytes"] > 0:
            failed.append((point.id, row["status"], row["error"]))
            continue
        p = point.p
        scores = 4.0 * p["batch"] * p["heads"] * p["seq_q"] * p["seq_k"]  # float32 scores
        if row["peak_bytes"] > scores and scores > 2 ** 30:
            math_path.append((point.id, row["peak_bytes"]))
    assert not failed, failed
    # reported, not failed: which shapes fell back to the math kernel on this torch
    print("math-path attention points:", math_path or "none")
